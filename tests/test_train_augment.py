"""On-the-fly augmentation of training crops (config `augment:`, spkid.data.augmentation): the SNR and speed a
crop really gets, speaker labels of speed-perturbed crops, determinism per (seed, rank, crop seed) whatever
the workers, the refusals, and a short `spkid train` with augmentation on."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import flac_files, run_cmd, write_data_dir

from spkid.augment.sources import synthetic_noise_dir
from spkid.data.augmentation import TrainAugmentation, augment_defaults, training_augmentation
from spkid.data.loader import CropDataset, collate, make_loader
from spkid.data.sources import open_source
from spkid.errors import SpkidError

FEATS = {"type": "kaldi-fbank", "num_mel_bins": 40, "dither": 0.0, "sample_frequency": 16000.0, "cmn": True}
RATE = 16000


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory, shared_data):
    """3 LibriSpeech speakers x 3 utterances (16 kHz, several seconds each), audio only."""
    root = tmp_path_factory.mktemp("aug")
    return write_data_dir(root / "train", [(s, u, str(p)) for s, u, p in
                                           flac_files(shared_data, "librispeech_test_other", 3, 3)])


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory):
    return synthetic_noise_dir(tmp_path_factory.mktemp("noise") / "noise", RATE, count=3, seconds=(4, 5), seed=3)


def augmentation(seed=7, rank=0, **values):
    return TrainAugmentation({**augment_defaults(), **values}, seed, rank)


class Recorder:
    """A transform hook that keeps the waves it saw (before and after augmentation)."""

    def __init__(self, aug, rng):
        self.aug, self.rng, self.seen = aug, rng, []

    def __call__(self, wave, rate):
        out = self.aug.augment_wave(wave, rate, self.rng)
        self.seen.append((np.array(wave, np.float64), np.array(out, np.float64)))
        return out


def test_background_noise_crop_has_the_drawn_snr(speech_dir, noise_dir):
    source = open_source(speech_dir, FEATS, "audio")
    aug = augmentation(music_prob=1.0, music_dir=str(noise_dir), music_snrs=[6, 6], snr_uniform=True)
    for item_seed in (1, 2, 3):
        hook = Recorder(aug, aug.rng(item_seed))
        noisy = source.crop(0, 50, 200, transform=hook)
        clean, out = hook.seen[0]
        # out = c (clean + k noise): c from the projection on the clean wave (noise and speech uncorrelated)
        c = float(out @ clean / (clean @ clean))
        residual = out - c * clean
        snr = 10 * np.log10(np.sum((c * clean) ** 2) / np.sum(residual ** 2))
        assert abs(snr - 6.0) < 0.5, snr
        assert np.isclose(np.mean(out ** 2), np.mean(clean ** 2), rtol=1e-3)  # output at the input's power
        assert np.abs(noisy - source.crop(0, 50, 200)).mean() > 0.1  # the features changed


def test_snr_range_draws_inside_it(speech_dir, noise_dir):
    source = open_source(speech_dir, FEATS, "audio")
    aug = augmentation(music_prob=1.0, music_dir=str(noise_dir), music_snrs=[0, 15], snr_uniform=True)
    snrs = []
    for item_seed in range(6):
        hook = Recorder(aug, aug.rng(item_seed))
        source.crop(1, 0, 150, transform=hook)
        clean, out = hook.seen[0]
        c = float(out @ clean / (clean @ clean))
        snrs.append(10 * np.log10(np.sum((c * clean) ** 2) / np.sum((out - c * clean) ** 2)))
    assert -0.5 < min(snrs) and max(snrs) < 15.5 and max(snrs) - min(snrs) > 2, snrs


def test_speed_perturbed_crop_duration_pitch_and_label(tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(3 * RATE) / RATE)
    entries = []
    for spk in ("a", "b"):
        sf.write(tmp_path / f"{spk}.wav", tone, RATE, subtype="PCM_16")
        entries.append((spk, f"{spk}-1", str(tmp_path / f"{spk}.wav")))
    source = open_source(write_data_dir(tmp_path / "d", entries), FEATS, "audio")
    need = int(round(((100 - 1) * 0.01 + 0.025) * RATE))  # samples of a 100-frame crop
    for speed in (0.9, 1.1):
        aug = augmentation(speed_prob=1.0, speeds=[speed])
        hook = Recorder(aug, aug.rng(0))
        feats = source.crop(0, 10, 100, speed=speed, transform=hook)
        wave = hook.seen[0][0]
        assert abs(len(wave) - need) <= 4  # need x speed samples of audio, played speed times faster
        peak = np.argmax(np.abs(np.fft.rfft(wave))) * RATE / len(wave)
        assert abs(peak - 1000 * speed) < 5, peak
        assert feats.shape == (100, 40)
    aug = augmentation(speed_prob=1.0, speeds=[0.9, 1.1], speed_as_new_speakers=True)
    dataset = CropDataset(source, 100, aug)
    labels = {dataset[(1, seed)][1] for seed in range(12)}
    assert labels == {1 + 2, 1 + 4}  # speaker b (1) + k x 2 speakers, k = 1 (0.9) or 2 (1.1)
    assert aug.label_blocks == 3
    assert {CropDataset(source, 100)[(1, s)][1] for s in range(4)} == {1}


def test_same_seed_same_crops_other_rank_other_crops(speech_dir, noise_dir):
    source = open_source(speech_dir, FEATS, "audio")
    values = dict(prob=1.0, noise_prob=0.7, noise_dir=str(noise_dir), reverb_prob=0.5, speed_prob=0.5,
                  specaugment={"prob": 0.5})
    items = [(i % 9, 1000 + i) for i in range(8)]

    def crops(rank, workers, seed=7):
        sampler = [items[:4], items[4:]]
        loader = make_loader(source, sampler, 80, num_workers=workers, prefetch=1,
                             augmentation=augmentation(seed, rank, **values))
        return torch.cat([b["feats"] for b in loader])

    first = crops(0, 0)
    assert torch.equal(first, crops(0, 2))  # the workers do not change the crops
    assert torch.equal(first, crops(0, 0))
    other_rank, other_seed = crops(1, 0), crops(0, 0, seed=8)
    clean = collate([CropDataset(source, 80)[item] for item in items])["feats"]
    augmented = [i for i in range(8) if not torch.equal(first[i], clean[i])]
    assert len(augmented) >= 4
    assert all(not torch.equal(first[i], other_rank[i]) for i in augmented)
    assert sum(not torch.equal(first[i], other_seed[i]) for i in range(8)) >= 4


def test_refusals_and_feats_scp(speech_dir, noise_dir, tmp_path):
    from spkid.tasks import open_training_data, task_module
    from spkid.train.config import load_config

    with pytest.raises(SpkidError, match="noise_prob > 0 needs noise_dir"):
        augmentation(noise_prob=0.5)
    with pytest.raises(SpkidError, match="snr_uniform"):
        augmentation(noise_prob=0.5, noise_dir=str(noise_dir), noise_snrs=[10, 0], snr_uniform=True)
    with pytest.raises(SpkidError, match="specaugment: unknown"):
        augmentation(specaugment={"width": 3})
    ge2e = load_config(task_module("ge2e").DEFAULTS, opts=("augment.speed_prob", "0.5",
                                                           "augment.speed_as_new_speakers", "true"))
    ge2e["task"] = "ge2e"
    source = open_source(speech_dir, FEATS, "audio")
    with pytest.raises(SpkidError, match="speed_as_new_speakers is for task: classification"):
        training_augmentation(ge2e, str(speech_dir), 0, source)
    # with feats.scp: auto reads the audio when augmenting the waveform, `feats` is refused
    run_cmd(["spkid", "compute-fbank", "--num-mel-bins=40", "--dither=0", "--data", str(speech_dir),
             f"ark,scp:{tmp_path}/feats.ark,{speech_dir}/feats.scp"])
    try:
        config = load_config(task_module("classification").DEFAULTS, opts=(
            "features", "{num_mel_bins: 40, vad: null}", "augment.reverb_prob", "0.5"))
        config["task"] = "classification"
        assert type(open_training_data(config, str(speech_dir))[1]).__name__ == "AudioSource"
        config["data"]["source"] = "feats"
        feats_source = open_training_data(config, str(speech_dir))[1]
        with pytest.raises(SpkidError, match="works on audio, but the training crops come from feats.scp"):
            training_augmentation(config, str(speech_dir), 0, feats_source)
        config["augment"] = {**augment_defaults(), "specaugment": {"prob": 1.0}}
        spec = training_augmentation(config, str(speech_dir), 0, feats_source)
        masked = CropDataset(feats_source, 60, spec)[(0, 5)][0]
        assert (masked == 0).all(axis=0).any() and (masked == 0).all(axis=1).any()  # a band and a time span
    finally:
        (speech_dir / "feats.scp").unlink()


def test_spkid_train_with_augmentation(speech_dir, noise_dir, tmp_path):
    config = tmp_path / "aug.yaml"
    config.write_text(f"""task: classification
model: {{name: ecapa_tdnn, args: {{channels: 16, scale: 4, mfa_channels: 48, attention_dim: 8, embed_dim: 16}}}}
features: {{num_mel_bins: 40, vad: null}}
data: {{crop_frames: 60, num_workers: 2}}
classification: {{batch_size: 8}}
train: {{max_steps: 6, log_every: 3, checkpoint_every: 6, valid_every: 0}}
augment:
  prob: 0.8
  noise_prob: 0.5
  noise_dir: {noise_dir}
  babble_prob: 0.5
  babble_count: [3, 4]
  reverb_prob: 0.5
  speed_prob: 0.67
  speed_as_new_speakers: true
  specaugment: {{prob: 0.5}}
""")
    exp = tmp_path / "exp"
    run_cmd(["spkid", "train", "--config", str(config), "--data", str(speech_dir), "--output", str(exp)])
    import yaml

    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["augment"]["babble_prob"] == 0.5 and saved["augment"]["speed_as_new_speakers"] is True
    from spkid.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(exp)
    assert not any("augment" in str(k) or "speed" in str(k) for k in ckpt["features"])  # extraction never augments
    assert len(ckpt["speakers"]) == 9 and ckpt["speakers"][3].endswith("-sp0.9")  # 3 speakers x 3 speeds
    assert max(t.shape[0] for t in ckpt["criterion"].values()) == 9  # the head's classes
    out = tmp_path / "emb.scp"
    run_cmd(["spkid", "extract-embeddings", "--model", str(exp), "--data", str(speech_dir),
             "--output", f"ark,scp:{tmp_path}/emb.ark,{out}"])
    assert len(out.read_text().splitlines()) == 9
    # resuming with other label blocks: one line, not a torch size-mismatch traceback
    proc = run_cmd(["spkid", "train", "--config", str(config), "--data", str(speech_dir), "--output", str(exp),
                    "--opts", "augment.speed_as_new_speakers", "false", "train.max_steps", "8"], check=False, text=True)
    assert proc.returncode == 1 and "head does not fit this run's" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_mini_augment_compare_configs_differ_only_in_augment():
    from conftest import ROOT

    from spkid.train.config import resolve_config

    conf = ROOT / "egs" / "mini" / "v1" / "conf"
    clean = resolve_config(str(conf / "augment_compare.yaml"))
    aug = resolve_config(str(conf / "augment_compare_aug.yaml"))
    assert {k for k in clean if clean[k] != aug[k]} == {"augment"}
    assert clean["augment"] == augment_defaults() and aug["augment"]["speed_as_new_speakers"] is True
    TrainAugmentation(aug["augment"])  # valid as written
