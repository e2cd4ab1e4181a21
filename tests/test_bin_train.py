"""Adding a model as a user would: one new encoder file (and one new head file) in spkid/models/ and
spkid/losses/ of a copy of the package, no other edit; `spkid train --opts model.name ...` trains it,
`spkid extract-embeddings` embeds with it, and a margin head gets the scheduled margin every step."""
from __future__ import annotations

import math
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROOT, speaker_split_dirs, spkid_env, test_seed

ENCODER = '''
import torch
from spkid.models import register_model


@register_model("mean_linear")
class MeanLinear(torch.nn.Module):
    def __init__(self, feat_dim: int, embed_dim: int = 32):
        super().__init__()
        self.proj = torch.nn.Linear(feat_dim, embed_dim)

    def forward(self, feats):
        return self.proj(feats.mean(1))
'''

HEAD = '''
import torch
from torch.nn import functional as F
from spkid.losses import register_head


@register_head("toy_margin")
class ToyMargin(torch.nn.Module):
    def __init__(self, embed_dim: int, num_classes: int, margin: float = 0.2, scale: float = 8.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(num_classes, embed_dim))
        self.margin, self.scale = margin, scale

    def set_margin(self, margin: float) -> None:
        self.margin = margin

    def logits(self, embeds):
        return self.scale * F.normalize(embeds) @ F.normalize(self.weight).T

    def forward(self, embeds, labels):
        logits = self.logits(embeds) - self.scale * self.margin * F.one_hot(labels, self.weight.shape[0])
        return F.cross_entropy(logits, labels), logits
'''

CONFIG = """task: classification
features: {num_mel_bins: 40, vad: null, cmn: false}   # a mean of mean-normalised frames is 0
data: {crop_frames: 60, num_workers: 0}
classification: {batch_size: 32}
optim: {lr: 0.01}
train: {max_steps: 150, log_every: 10, checkpoint_every: 150, valid_every: 150}
"""


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, shared_data):
    return speaker_split_dirs(tmp_path_factory.mktemp("plugins"), shared_data, ["--num-mel-bins=40"])


def run_cmd(args: list[str], env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env or spkid_env(), capture_output=True)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr.decode()[-3000:])
    return proc


def metric(log: str, key: str) -> list[float]:
    return [float(x) for x in re.findall(rf"\b{key}=([-\d.e]+)", log)]


@pytest.mark.learning
def test_new_encoder_and_head_files_are_found_with_no_other_edit(dirs, tmp_path):
    """The plug-in encoder learns: over SPKID_TEST_SEED 0-4 (1 thread; 2 threads identical, seeds 0 and 3)
    the mean loss of steps 80-150 is 1.94-2.15 and the validation accuracy 0.29-0.62 (12-26 of 42
    utterances); untrained (lr 1e-9) the loss is 6-11 (random logits), the accuracy 0.071 (chance, 3)."""
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "spkid", pkg / "spkid", ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "spkid" / "models" / "mean_linear.py").write_text(ENCODER)
    (pkg / "spkid" / "losses" / "toy_margin.py").write_text(HEAD)
    env = {**spkid_env(), "PYTHONPATH": str(pkg)}
    conf = tmp_path / "conf.yaml"
    conf.write_text(CONFIG)
    exp = tmp_path / "exp"
    train = ["spkid", "train", "--config", str(conf), "--data", str(dirs / "train"), "--device", "cpu"]
    valid = ["--valid-data", str(dirs / "valid"), "--valid-trials", str(dirs / "valid" / "trials")]
    # the repository's own package does not know the model: the new file is what makes it exist
    proc = run_cmd([*train, "--output", str(tmp_path / "no"), "--opts", "model.name", "mean_linear"], check=False)
    assert proc.returncode == 1 and b"unknown model 'mean_linear'" in proc.stderr

    run_cmd([*train, "--output", str(exp), *valid, "--opts", "model.name", "mean_linear", "model.args.embed_dim", "8",
             "train.seed", str(test_seed())], env=env)
    log = (exp / "train.log").read_text()
    losses, accuracy = metric(log, "loss"), metric(log, "valid_accuracy")
    print(f"mean_linear seed {test_seed()}: losses {losses}, valid accuracy {accuracy}")
    # below ln 14 (a uniform guess over the 14 speakers) by 0.49 at the worst seed
    assert len(losses) == 15 and np.mean(losses[7:]) < math.log(14), losses
    assert accuracy[-1] > 6 / 42, accuracy  # at least 7 right: 5 fewer than the worst seed, 4 more than chance
    out = tmp_path / "emb"
    run_cmd(["spkid", "extract-embeddings", "--model", str(exp), "--data", str(dirs / "valid"), "--use-feats",
             f"--output=ark,scp:{out}.ark,{out}.scp"], env=env)
    from spkid.kaldi.io import read_dict
    from spkid.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(exp)
    assert ckpt["model"] == {"name": "mean_linear", "config": {"feat_dim": 40, "embed_dim": 8}}
    emb = read_dict(f"scp:{out}.scp")
    assert len(emb) == 42 and all(v.shape == (8,) and abs(np.linalg.norm(v) - 1) < 1e-5 for v in emb.values())
    trials = [line.split() for line in (dirs / "valid" / "trials").read_text().splitlines()]
    (tmp_path / "scores").write_text("".join(f"{a} {b} {float(emb[a] @ emb[b])}\n" for a, b, _ in trials))
    eer = float(run_cmd(["spkid", "compute-eer", "--trials", str(dirs / "valid" / "trials"),
                         str(tmp_path / "scores")]).stdout)
    assert eer == pytest.approx(metric(log, "valid_eer")[-1], abs=0.01)  # extraction = the validator

    # a margin head: the margin ramps from 0 (step 2) to the head's 0.2 (step 6), logged every step
    margin_exp = tmp_path / "margin"
    run_cmd([*train, "--output", str(margin_exp), "--opts", "model.name", "mean_linear", "head.name", "toy_margin",
             "head.margin_schedule.start_step", "2", "head.margin_schedule.end_step", "6", "train.max_steps", "8",
             "train.log_every", "1", "train.valid_every", "0"], env=env)
    margins = metric((margin_exp / "train.log").read_text(), "margin")
    assert margins == pytest.approx([0, 0, 0, 0.05, 0.1, 0.15, 0.2, 0.2]), margins
