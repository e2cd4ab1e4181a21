"""`spkid train` configs and exp dirs: precedence (defaults < EXPDIR/config.yaml < --config < --opts), old
shapes, range checks before anything is written, resume refusing a changed front-end (--fresh starts over),
one run per exp dir (lock, stale lock taken over), old checkpoints still extracting."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import flac_files, speaker_split_dirs, spkid_env, write_data_dir

from spkid.errors import SpkidError
from spkid.kaldi.io import read_dict
from spkid.train.checkpoint import load_checkpoint, save_checkpoint
from spkid.train.config import resolve_config

SMALL = """task: ge2e
model: {name: ge2e, args: {hidden_size: 16, num_layers: 1, embed_dim: 16}}
data: {speakers_per_batch: 4, utterances_per_speaker: 2, crop_frames: 40, num_workers: 0}
train: {max_steps: 2, log_every: 1, checkpoint_every: 1, valid_every: 0}
"""


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, shared_data):
    return speaker_split_dirs(tmp_path_factory.mktemp("traincfg"), shared_data, ["--num-mel-bins=40"])


@pytest.fixture
def small(tmp_path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    return path


def spkid(*args, check=True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(["spkid", *map(str, args)], env=spkid_env(), capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def fake_run(exp: Path, config: dict) -> None:
    """An exp dir as a training run leaves it: config.yaml and a checkpoint."""
    exp.mkdir(parents=True, exist_ok=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    save_checkpoint(exp / "checkpoints" / "step-00000001.pt", model_name="ge2e", model_config={},
                    feature_config={}, state_dict={"x": torch.zeros(1)}, step=1)


def test_precedence_defaults_saved_config_opts(tmp_path):
    exp = tmp_path / "exp"
    saved = resolve_config(None, ("model.args.hidden_size", "32", "optim.lr", "0.5", "train.seed", "7"),
                           default_task="ge2e")
    fake_run(exp, saved)
    conf = tmp_path / "c.yaml"
    conf.write_text("task: ge2e\noptim: {lr: 0.25}\ntrain: {max_steps: 10}\n")
    cfg = resolve_config(str(conf), ("train.max_steps", "20"), exp_dir=exp)
    assert cfg["train"]["seed"] == 7  # saved (over the default 1234)
    assert cfg["optim"]["lr"] == 0.25  # --config over saved
    assert cfg["train"]["max_steps"] == 20  # --opts over --config
    assert cfg["model"]["args"] == {"hidden_size": 32} and cfg["optim"]["grad_clip"] == 3.0  # saved; default
    # extending a finished run: --opts alone keeps everything else of the saved config
    assert resolve_config(None, ("train.max_steps", "30"), exp_dir=exp, default_task="ge2e")["model"]["args"] == {
        "hidden_size": 32}
    # --fresh (or no checkpoint) leaves the saved config out
    assert resolve_config(str(conf), exp_dir=exp, fresh=True)["train"]["seed"] == 1234
    assert resolve_config(str(conf), exp_dir=tmp_path / "none")["train"]["seed"] == 1234
    # another model: the args of the old one are dropped; another front-end type: its keys start afresh
    cfg = resolve_config(None, ("model.name", "rescnn_small", "model.args.blocks_per_stage", "1"), exp_dir=exp,
                         default_task="ge2e")
    assert cfg["model"] == {"name": "rescnn_small", "args": {"blocks_per_stage": 1}}
    cfg = resolve_config(None, ("features.type", "resemblyzer-mel"), default_task="ge2e")
    assert cfg["features"] == {"type": "resemblyzer-mel"}
    cfg = resolve_config(None, ("features.num_mel_bins", "24"), default_task="ge2e")
    assert cfg["features"]["num_mel_bins"] == 24 and cfg["features"]["cmn"] is False  # merged key by key
    # a saved run of another task or stage is not silently continued
    with pytest.raises(SpkidError, match="holds a 'ge2e' stage run; this is stage 'triplet'"):
        resolve_config(None, ("task", "triplet"), exp_dir=exp)


def test_old_shapes_translate_to_the_new(tmp_path, caplog):
    old = tmp_path / "old.yaml"
    old.write_text("stage: softmax\nmodel:\n  name: rescnn_small\n  rescnn: {channels: [1, 2, 3, 4]}\n"
                   "  rescnn_small: {blocks_per_stage: 1, embedding_dim: 64}\nsoftmax: {batch_size: 32, dropout: 0.5}\n"
                   "triplet: {margin: 0.2}\n")
    cfg = resolve_config(str(old), ("model.rescnn_small.channels", "[8, 8, 8, 8]", "model.gru.hidden_size", "3"))
    assert cfg["task"] == "classification" and cfg["classification"]["batch_size"] == 32
    assert cfg["model"] == {"name": "rescnn_small",
                            "args": {"blocks_per_stage": 1, "embed_dim": 64, "channels": [8, 8, 8, 8]}}
    assert "old config shape, deprecated" in caplog.text
    flat = tmp_path / "ge2e.yaml"
    flat.write_text("model: {name: ge2e, hidden_size: 8, embedding_dim: 4}\nloss: {init_w: 5.0}\n")
    cfg = resolve_config(str(flat))
    assert cfg["task"] == "ge2e" and cfg["model"]["args"] == {"hidden_size": 8, "embed_dim": 4}
    cfg = resolve_config(None, ("stage", "freeze"))
    assert cfg["task"] == "classification" and cfg["classification"]["freeze_encoder"] is True


@pytest.mark.parametrize("key,value,msg", [
    ("optim.lr", "-1", "config key 'optim.lr' must be > 0, got -1.0"),
    ("data.speakers_per_batch", "0", "config key 'data.speakers_per_batch' must be >= 2, got 0"),
    ("data.crop_frames", "0", "config key 'data.crop_frames' must be >= 1, got 0"),
    ("train.checkpoint_every", "0", "config key 'train.checkpoint_every' must be >= 1, got 0"),
    ("train.log_every", "0", "config key 'train.log_every' must be >= 1, got 0"),
    ("data.num_workers", "-1", "config key 'data.num_workers' must be >= 0, got -1"),
    ("model.args.hiden_size", "3", "model 'ge2e' takes no argument 'hiden_size' (its arguments: feat_dim, embed_dim, "
                                   "hidden_size, num_layers)"),
    ("model.name", "nosuch", "unknown model 'nosuch' (known: "),
    # issue 22 UX 3: these were refused only after EXPDIR/.lock and train.log existed
    ("model.args.hidden_size", "-1", "model 'ge2e' with {'feat_dim': 40, 'embed_dim': 256, 'hidden_size': -1, "
                                     "'num_layers': 3}: hidden_size must be greater than zero"),
    ("model.args.num_layers", "0", "model 'ge2e' with "),
    ("features.num_mel_bins", "-5", "config section 'features': --num-mel-bins must be at least 3"),
    ("features.frame_length", "0", "config section 'features': --frame-length and --frame-shift must give"),
    ("features.sample_frequency", "0", "config section 'features': --sample-frequency must be > 0, got 0"),
    ("features.type", "mfcc", "config section 'features': unknown front-end type 'mfcc'"),
    ("augment.prob", "5", "augment.prob and augment.specaugment.prob must be between 0 and 1"),
    ("optim.name", "lbfgs", "optim.name must be adam or sgd, not 'lbfgs'"),
    # issue 22 UX 1: these were tracebacks
    ("features.num_mel_bins", "abc", "config section 'features': --num-mel-bins wants a whole number, got 'abc'"),
    ("train.seed", "-1", "config key 'train.seed' must be in [0, 2147483647], got -1"),
    ("train.seed", "99999999999", "config key 'train.seed' must be in [0, 2147483647], got 99999999999"),
    # issue 22 UX 2: out-of-memory requests were only stopped by the allocator (or the kernel)
    ("model.args.hidden_size", "100000", "model 'ge2e' (embed_dim=256, hidden_size=100000, num_layers=3) has "
                                         "200,044,000,256 parameters (745 GiB of float32 weights), more than"),
    ("data.crop_frames", "10000000", "a batch of "),
    ("data.speakers_per_batch", "100000000", "a batch of "),
])
def test_out_of_range_options_are_one_line_errors_before_the_exp_dir(dirs, tmp_path, key, value, msg):
    exp = tmp_path / "exp"
    proc = spkid("train-ge2e", "--data", dirs / "train", "--output", exp, "--device", "cpu", "--opts", key, value,
                 check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(f"Error: {msg}"), proc.stderr
    assert "Traceback" not in proc.stderr and not exp.exists()


def test_missing_paths_and_a_binary_config_are_one_line_errors_before_the_exp_dir(dirs, tmp_path):
    """Issue 22 UX 3 / UX 1: a missing --data or --checkpoint (after .lock and train.log), a binary --config
    (UnicodeDecodeError)."""
    exp = tmp_path / "exp"
    (tmp_path / "binary.yaml").write_bytes(b"\x00\xff\xfe\x80 binary")
    (tmp_path / "empty").mkdir()
    for args, msg in (
        (["--data", tmp_path / "nosuch"], f"--data {tmp_path / 'nosuch'}: does not exist"),
        (["--data", tmp_path / "empty"], f"--data {tmp_path / 'empty'}: no wav.scp, feats.scp or shards.json"),
        (["--data", dirs / "train", "--checkpoint", tmp_path / "nosuch.pt"], "--checkpoint"),
        (["--data", dirs / "train", "--valid-data", dirs / "train" / "wav.scp", "--valid-trials", "x"],
         "--valid-data"),
        (["--data", dirs / "train", "--valid-data", dirs / "train", "--valid-trials", tmp_path / "nosuch"],
         f"--valid-trials {tmp_path / 'nosuch'}: does not exist"),
        (["--data", dirs / "train", "--config", tmp_path / "binary.yaml"], f"{tmp_path}/binary.yaml: not a text"),
    ):
        proc = spkid("train-ge2e", *args, "--output", exp, "--device", "cpu", check=False)
        assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(f"Error: {msg}"), proc.stderr
        assert "Traceback" not in proc.stderr and not exp.exists()


def test_training_that_cannot_fit_in_memory_is_refused_on_the_cpu(monkeypatch):
    """Issue 22 UX 2: about 16 bytes a parameter (weights, gradients, Adam's moments) against the memory
    available; a realistic-looking hidden_size 8000 (259 M parameters) with 1 GiB left."""
    from spkid.train import preflight

    config = resolve_config(None, ("task", "ge2e", "model.args.hidden_size", "8000", "model.args.num_layers", "1"))
    monkeypatch.setattr(preflight, "_available_memory", lambda: 2**30)
    with pytest.raises(SpkidError, match=r"has 259,392,256 parameters: training needs about 3.9 GiB .* more than "
                                         r"the 1.0 GiB of memory available"):
        preflight._memory(config, preflight._meta_encoder(config, 40), "cpu")
    monkeypatch.setattr(preflight, "_available_memory", lambda: 2**40)
    preflight._memory(config, preflight._meta_encoder(config, 40), "cpu")


def test_resume_extend_refuse_changed_front_end_and_fresh(dirs, small, tmp_path):
    exp = tmp_path / "exp"
    base = ["--data", dirs / "train", "--output", exp, "--device", "cpu"]
    spkid("train", *base, "--config", small)
    assert load_checkpoint(exp)["step"] == 2
    spkid("train", *base, "--opts", "train.max_steps", "3")  # the saved config (task, model) is kept
    assert load_checkpoint(exp)["step"] == 3 and "resumed from" in (exp / "train.log").read_text()
    proc = spkid("train", *base, "--config", small, "--opts", "features.cmn", "true", "train.max_steps", "4",
                 check=False)
    assert proc.returncode == 1 and "features differ from this run's (cmn: False -> True)" in proc.stderr
    assert "--fresh" in proc.stderr and load_checkpoint(exp)["step"] == 3
    spkid("train", *base, "--config", small, "--fresh", "--opts", "features.cmn", "true")
    ckpt = load_checkpoint(exp)
    assert ckpt["step"] == 2 and ckpt["features"]["cmn"] is True
    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == ["step-00000001.pt", "step-00000002.pt"]
    # a checkpoint of the old encoder contract (input_dim / embedding_dim) still extracts, identically
    legacy = dict(ckpt)
    legacy["model"] = {"name": "ge2e", "config": {"input_dim": 40, "hidden_size": 16, "num_layers": 1,
                                                  "embedding_dim": 16}}
    torch.save(legacy, tmp_path / "legacy.pt")
    out = {}
    for name, model in (("new", exp), ("old", tmp_path / "legacy.pt")):
        spkid("extract-embeddings", "--model", model, "--data", dirs / "valid", "--use-feats",
              f"--output=ark,scp:{tmp_path}/{name}.ark,{tmp_path}/{name}.scp")
        out[name] = read_dict(f"scp:{tmp_path}/{name}.scp")
    assert len(out["new"]) == 42 and all(np.array_equal(out["new"][u], out["old"][u]) for u in out["new"])


def test_one_run_per_exp_dir_and_stale_lock_taken_over(dirs, small, tmp_path):
    exp = tmp_path / "exp"
    base = ["--data", dirs / "train", "--output", exp, "--device", "cpu", "--config", small]
    first = subprocess.Popen(["spkid", "train", *map(str, base), "--opts", "train.max_steps", "1000000"],
                             env=spkid_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((exp / "checkpoints").glob("step-*.pt")):
            time.sleep(0.05)
        assert f"pid={first.pid}" in (exp / ".lock").read_text()
        proc = spkid("train", *base, "--opts", "train.max_steps", "1000000", check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert f"is in use by another training run (pid {first.pid} on" in proc.stderr.splitlines()[-1]
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    last = load_checkpoint(exp)["step"]
    proc = spkid("train", *base, "--opts", "train.max_steps", str(last + 1))  # the dead run's lock is stale
    assert f"taking over a stale lock (pid {first.pid} on" in proc.stderr and load_checkpoint(exp)["step"] == last + 1
    assert (exp / ".lock").read_text() == ""  # released at the end


def test_init_takes_model_front_end_extraction_and_wb_from_the_checkpoint(dirs, small, tmp_path, shared_data):
    from spkid.data.sources import open_source
    from spkid.features.frontend import build_frontend

    base, exp = tmp_path / "base", tmp_path / "ft"
    spkid("train", "--config", small, "--data", dirs / "train", "--output", base, "--device", "cpu", "--opts",
          "features.cmn", "true", "extraction.window_frames", "40")
    ft = tmp_path / "ft.yaml"
    ft.write_text("task: ge2e\noptim: {lr: 1.0e-9}\n"
                  "data: {speakers_per_batch: 4, utterances_per_speaker: 2, crop_frames: 40, num_workers: 0}\n"
                  "train: {max_steps: 1, log_every: 1, checkpoint_every: 1, valid_every: 0}\n")
    spkid("train-ge2e", "--init", base, "--config", ft, "--data", dirs / "train", "--output", exp, "--device", "cpu")
    before, after = load_checkpoint(base), load_checkpoint(exp)
    assert after["model"] == before["model"] and after["model"]["config"]["hidden_size"] == 16  # not 256
    assert after["features"] == before["features"] and after["features"]["cmn"] is True  # not the default
    assert after["extraction"] == before["extraction"] and after["extraction"]["window_frames"] == 40
    for key in ("w", "b"):  # GE2E's scale and bias continue (lr 1e-9), not 10 and -5 again
        assert float(after["criterion"][key]) == pytest.approx(float(before["criterion"][key]), abs=1e-4)
    assert float(before["criterion"]["w"]) != 10.0
    # the pretrained Resemblyzer GE2E: its mel front-end (no Kaldi keys merged in), windows, LSTM, w and b
    pre = tmp_path / "pretrained"
    spkid("import-resemblyzer", "--output", pre)
    ft.write_text("task: ge2e\nfeatures: {type: resemblyzer-mel}\n")
    cfg = resolve_config(str(ft), init=str(pre))
    imported = load_checkpoint(pre)
    assert cfg["features"] == imported["features"] and cfg["extraction"]["scheme"] == "resemblyzer"
    assert cfg["model"]["args"]["hidden_size"] == 256
    assert cfg["loss"]["init_w"] == pytest.approx(imported["ge2e_loss"]["w"]) != 10.0
    audio = write_data_dir(tmp_path / "audio", [(s, u, str(p)) for s, u, p in flac_files(
        shared_data, "librispeech_test_other", 2, 2)])
    source = open_source(audio, build_frontend(cfg["features"]).to_config(), "audio")
    assert source.dim == 40 and len(source.utts) == 4  # once "unknown resemblyzer-mel option(s): cmn"


def test_margin_schedule_is_a_linear_ramp():
    from spkid.losses.margin import margin_at

    assert [margin_at(s, 0.2, 2, 6) for s in range(8)] == pytest.approx([0, 0, 0, 0.05, 0.1, 0.15, 0.2, 0.2])
    assert margin_at(0, 0.3, 0, 0) == 0.3  # no schedule: the full margin from the start
