"""Fine-tuning the imported pretrained models with `spkid train --init`: the run takes the model, front-end
and extraction of the imported checkpoint, and before any update its embeddings are the imported model's.

- campplus-zh-en with `task: classification` and a new AAM-softmax head, the encoder frozen for the first
  step (`classification.freeze_encoder_steps: 1`): the checkpoint after that step embeds as the import;
  resumed for one more (unfrozen) step it no longer does.
- resemblyzer-ge2e with `task: ge2e` at a negligible learning rate (1e-9) for one step.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import flac_files, write_data_dir

MIN_COSINE = 0.99999


def embeddings(run, model, data, out) -> dict[str, np.ndarray]:
    import kaldiio

    run(["spkid", "extract-embeddings", "--model", str(model), "--data", str(data), "--num-workers", "1",
         "--output", f"ark,scp:{out}.ark,{out}.scp"])
    return dict(kaldiio.load_scp(f"{out}.scp"))


def min_cosine(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b) and a
    return min(float(a[u] @ b[u] / np.linalg.norm(a[u]) / np.linalg.norm(b[u])) for u in a)


@pytest.fixture(scope="module")
def audio_dirs(shared_data, tmp_path_factory):
    """train: 3 utterances of 4 LibriSpeech speakers (audio, no features); probe: 4 other utterances."""
    root = tmp_path_factory.mktemp("ft")
    files = flac_files(shared_data, "librispeech_test_other", 4, 4)
    train = write_data_dir(root / "train", [(s, u, str(p)) for s, u, p in files if not u.endswith(("3", "7"))][:12])
    probe = write_data_dir(root / "probe", [(s, u, str(p)) for s, u, p in files[3::4]])
    return train, probe


def test_finetune_imported_campplus_starts_from_it(run, tmp_path, audio_dirs):
    from spkid.pretrained import cached_path
    from spkid.train.checkpoint import load_checkpoint

    if not cached_path("campplus-zh-en").is_file():
        pytest.skip("pretrained CAM++ weights absent: run `make pretrained`")
    train, probe = audio_dirs
    pre, exp = tmp_path / "campplus", tmp_path / "ft"
    run(["spkid", "import-pretrained", "campplus-zh-en", "--output", str(pre)])
    config = tmp_path / "ft.yaml"
    config.write_text("task: classification\nhead: {name: aam_softmax, args: {margin: 0.2, scale: 32.0}}\n"
                      "data: {crop_frames: 100, num_workers: 0}\n"
                      "classification: {batch_size: 4, freeze_encoder_steps: 1}\n"
                      "optim: {lr: 0.01}\ntrain: {max_steps: 1, log_every: 1, checkpoint_every: 1, valid_every: 0}\n")
    base = ["spkid", "train", "--config", str(config), "--data", str(train), "--output", str(exp), "--device", "cpu"]
    run([*base, "--init", str(pre)])
    imported, tuned = load_checkpoint(pre), load_checkpoint(exp)
    assert tuned["model"] == imported["model"] and tuned["features"] == imported["features"]
    assert tuned["features"]["waveform_scale"] == 1.0 and tuned["extraction"]["scheme"] == "full"  # + max_frames
    assert tuned["config"]["head"]["name"] == "aam_softmax" and len(tuned["speakers"]) == 4
    want = embeddings(run, pre, probe, tmp_path / "imported")
    assert min_cosine(embeddings(run, exp, probe, tmp_path / "step1"), want) >= MIN_COSINE
    run([*base, "--opts", "train.max_steps", "2"])  # resumed: step 2 trains the encoder
    assert load_checkpoint(exp)["step"] == 2
    assert min_cosine(embeddings(run, exp, probe, tmp_path / "step2"), want) < MIN_COSINE


def test_finetune_imported_resemblyzer_ge2e_starts_from_it(run, tmp_path, audio_dirs):
    from spkid.models.windows import extraction_config
    from spkid.train.checkpoint import load_checkpoint

    train, probe = audio_dirs
    pre, exp = tmp_path / "ge2e", tmp_path / "ft"
    run(["spkid", "import-pretrained", "resemblyzer-ge2e", "--output", str(pre)])
    config = tmp_path / "ft.yaml"
    config.write_text("task: ge2e\nfeatures: {type: resemblyzer-mel}\noptim: {lr: 1.0e-9}\n"
                      "data: {speakers_per_batch: 2, utterances_per_speaker: 2, num_workers: 0}\n"
                      "train: {max_steps: 1, log_every: 1, checkpoint_every: 1, valid_every: 0}\n")
    run(["spkid", "train", "--init", str(pre), "--config", str(config), "--data", str(train), "--output", str(exp),
         "--device", "cpu"])
    imported, tuned = load_checkpoint(pre), load_checkpoint(exp)
    assert tuned["model"] == imported["model"] and tuned["features"] == imported["features"]
    assert tuned["extraction"] == extraction_config(imported["extraction"]) and tuned["step"] == 1
    assert tuned["extraction"]["scheme"] == "resemblyzer"
    want = embeddings(run, pre, probe, tmp_path / "imported")
    assert min_cosine(embeddings(run, exp, probe, tmp_path / "step1"), want) >= MIN_COSINE
