"""`spkid train` from shards (spkid make-shards): classification, GE2E and random triplets, exact resume,
and the Slurm multi-node template (one torchrun per node, c10d) on this machine."""
from __future__ import annotations

import os
import re
import textwrap

import pytest
import torch
from conftest import ROOT, shard_data_dir

from spkid.data.shards import make_shards

HEAD = "head: {name: aam_softmax, args: {margin: 0.2, scale: 16}, margin_schedule: {start_step: 0, end_step: 4}}\n"
CLASSIFICATION = """\
task: classification
model: {name: rescnn_small, args: {channels: [8, 16, 16, 16], blocks_per_stage: 1, embed_dim: 32}}
""" + HEAD + """\
features: {num_mel_bins: 24, vad: null}
data: {crop_frames: 60, num_workers: 2}
classification: {batch_size: 8}
optim: {lr: 0.01}
train: {max_steps: 6, log_every: 1, checkpoint_every: 3, valid_every: 1000}
"""


@pytest.fixture(scope="module")
def shards(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("shards")
    assert not make_shards(shard_data_dir(root, shared_data), root / "sh", shard_size=6)  # 10 shards
    return root / "sh"


def train(run, config: str, shards, exp, *opts, check=True):
    conf = exp.parent / f"{exp.name}.yaml"
    conf.write_text(textwrap.dedent(config))
    return run(["spkid", "train", "--config", str(conf), "--data", str(shards), "--output", str(exp),
                "--device", "cpu", *(["--opts", *opts] if opts else [])], check=check)


def losses(exp) -> list[float]:
    return [float(x) for x in re.findall(r"\bloss=([-\d.e]+)", (exp / "train.log").read_text())]


def weights(exp, step: int) -> dict:
    return torch.load(exp / "checkpoints" / f"step-{step:08d}.pt", weights_only=True)["state_dict"]


def test_classification_from_shards_resumes_exactly(run, shards, tmp_path):
    train(run, CLASSIFICATION, shards, tmp_path / "straight")
    assert len(losses(tmp_path / "straight")) == 6
    # the same run stopped after 3 steps and resumed: the same batches, so the same weights
    train(run, CLASSIFICATION, shards, tmp_path / "resumed", "train.max_steps", "3")
    train(run, CLASSIFICATION, shards, tmp_path / "resumed", "train.max_steps", "6")
    a, b = weights(tmp_path / "straight", 6), weights(tmp_path / "resumed", 6)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert losses(tmp_path / "resumed")[3:] == losses(tmp_path / "straight")[3:]
    ckpt = torch.load(tmp_path / "straight" / "checkpoints" / "step-00000006.pt", weights_only=True)
    assert len(ckpt["speakers"]) == 10
    proc = run(["spkid", "extract-embeddings", "--model", str(tmp_path / "straight"), "--data",
                str(shards.parent / "data"), "--output", f"ark,scp:{tmp_path}/e.ark,{tmp_path}/e.scp"])
    assert proc.returncode == 0 and len((tmp_path / "e.scp").read_text().splitlines()) == 58


def test_ge2e_and_random_triplets_from_shards(run, shards, tmp_path):
    ge2e = """\
    task: ge2e
    model: {name: ge2e, args: {hidden_size: 16, embed_dim: 16, num_layers: 1}}
    features: {num_mel_bins: 24}
    data: {speakers_per_batch: 3, utterances_per_speaker: 2, crop_frames: 40, num_workers: 1}
    train: {max_steps: 3, log_every: 1, checkpoint_every: 3, valid_every: 1000}
    """
    train(run, ge2e, shards, tmp_path / "ge2e")
    assert len(losses(tmp_path / "ge2e")) == 3
    triplet = CLASSIFICATION.replace("task: classification", "task: triplet").replace(
        "classification: {batch_size: 8}", "triplet: {batch: random, random: {triplets: 4}}").replace(HEAD, "")
    train(run, triplet, shards, tmp_path / "triplet", "train.max_steps", "2")
    assert len(losses(tmp_path / "triplet")) == 2
    proc = train(run, triplet.replace("batch: random", "batch: hard"), shards, tmp_path / "hard", check=False)
    assert proc.returncode == 1 and "not with shards" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()


def test_too_few_shards_for_the_reading_slots_is_one_line(run, shards, tmp_path):
    proc = train(run, CLASSIFICATION, shards, tmp_path / "x", "data.num_workers", "11", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "every slot needs a shard" in err and "Traceback" not in err


def test_slurm_template_runs_one_torchrun_per_node(run, shards, tmp_path):
    """sid/train_multinode.sbatch on one 'node' with fake scontrol/srun: torchrun starts 2 gloo ranks that
    meet at the c10d rendezvous and train from the shards, as on a cluster."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 127.0.0.1\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nwhile [ $# -gt 0 ]; do case $1 in --*) shift;; *) break;; esac; done\n"
                                  "exec \"$@\"\n")
    for f in ("scontrol", "srun"):
        os.chmod(bin_dir / f, 0o755)
    conf = tmp_path / "c.yaml"
    conf.write_text(CLASSIFICATION.replace("num_workers: 2", "num_workers: 1"))
    env = f"PATH={bin_dir}:$PATH SLURM_JOB_NODELIST=node1 SLURM_JOB_NUM_NODES=1 SLURM_JOB_ID=7 " \
          f"SPKID_NPROC_PER_NODE=2 SPKID_RDZV_PORT=0 OMP_NUM_THREADS=1"
    proc = run(f"{env} {ROOT}/sid/train_multinode.sbatch train --config {conf} --data {shards} "
               f"--output {tmp_path}/exp --device cpu --opts train.max_steps 3")
    assert "1 node(s) x 2 process(es)" in proc.stderr.decode()
    log = (tmp_path / "exp" / "train.log").read_text()
    assert "world size 2" in log and len(losses(tmp_path / "exp")) == 3


def test_augmented_training_from_shards(run, shards, tmp_path, shared_data):
    """Noise, reverb, speed (as new speakers) and SpecAugment on shard crops: the run trains, the head has
    speakers x 3 classes, and the augmented batches are reproducible."""
    from spkid.data.augmentation import TrainAugmentation
    from spkid.data.shard_stream import ShardBatches, ShardIndex, make_shard_loader

    section = {"prob": 1.0, "noise_prob": 1.0, "noise_dir": None, "reverb_prob": 0.5, "speed_prob": 1.0,
               "speed_as_new_speakers": True, "specaugment": {"prob": 1.0}}
    noise = tmp_path / "noise"
    run(["python", str(ROOT / "egs/mini/v1/local/make_noise_sources.py"), str(noise)])
    section["noise_dir"] = str(noise / "noise_synth")
    index = ShardIndex(shards)
    features = {"type": "kaldi-fbank", "num_mel_bins": 24, "dither": 0.0, "cmn": True}

    def first_batches(aug_seed: int):
        aug = TrainAugmentation(section, seed=aug_seed)
        ds = ShardBatches(index, features, ("fixed", 4), crop_frames=50, seed=3, augmentation=aug)
        loader = make_shard_loader(ds, 1)
        return [b for _, b in zip(range(2), loader)]

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    assert all(torch.equal(x["feats"], y["feats"]) for x, y in zip(a, b))
    assert not all(torch.equal(x["feats"], y["feats"]) for x, y in zip(a, c))
    labels = torch.cat([x["speakers"] for x in a])
    assert labels.max() >= len(index.speakers)  # speed-perturbed crops are new speakers
    conf = CLASSIFICATION + f"augment: {{prob: 1.0, noise_prob: 0.5, noise_dir: {noise}/noise_synth, " \
                            "speed_prob: 0.5, speed_as_new_speakers: true}\n"
    train(run, conf, shards, tmp_path / "aug", "train.max_steps", "2")
    ckpt = torch.load(tmp_path / "aug" / "checkpoints" / "step-00000002.pt", weights_only=True)
    assert len(ckpt["speakers"]) == 30 and len(losses(tmp_path / "aug")) == 2
