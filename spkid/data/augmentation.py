"""On-the-fly augmentation of training crops (config section `augment:`), applied in the DataLoader workers.

A training setting, never part of a checkpoint's front-end: extraction does not augment. The section holds
every `spkid.augment.transforms.AugmentConfig` key (per-kind probabilities, noise/music/babble data dirs,
SNR lists or ranges with `snr_uniform`, `rir_list` or simulated RIRs, speeds) and:

- `prob`: the share of crops that go through the waveform kinds at all (WeSpeaker's aug_prob); each kind
  then applies with its own `<kind>_prob`. Speed perturbation and SpecAugment have their own probabilities.
- `babble_dir`: null takes the babble from the training data dir itself.
- `speed_as_new_speakers`: a crop played at `speeds[k]` is labelled speaker + (k + 1) x num_speakers
  (WeSpeaker: speakers x 3 classes with speeds [0.9, 1.1]); classification only.
- `specaugment`: time and frequency masks (set to 0, the mean after CMN) on the crop's features.

Waveform kinds and speed need audio (AudioSource); with feats.scp only SpecAugment applies. Each crop's
draws come from a Generator seeded by (train.seed, rank, the item's crop seed): the same run gives the same
crops whatever the number of workers, and DDP ranks get different ones.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from spkid.augment.transforms import AugmentConfig, augment
from spkid.errors import SpkidError

WAVE_KINDS = ("reverb", "noise", "music", "babble", "coloured_noise")
SPECAUGMENT = {"prob": 0.0, "time_masks": 1, "max_time_width": 10, "freq_masks": 1, "max_freq_width": 8}


def augment_defaults() -> dict:
    """The `augment:` section of every task's defaults: nothing enabled."""
    fields = {f.name: list(v) if isinstance(v, tuple) else v
              for f, v in ((f, getattr(AugmentConfig(), f.name)) for f in dataclasses.fields(AugmentConfig))}
    return {"prob": 1.0, **fields, "speed_as_new_speakers": False, "specaugment": dict(SPECAUGMENT)}


def needs_audio(section: dict) -> bool:
    """Whether the section enables a kind that works on the waveform (speed or a WAVE_KINDS kind)."""
    return float(section.get("speed_prob", 0)) > 0 or (
        float(section.get("prob", 1)) > 0 and any(float(section.get(f"{k}_prob", 0)) > 0 for k in WAVE_KINDS))


class TrainAugmentation:
    """The draws of one training process: `rng(item_seed)`, then `draw_speed`, `augment_wave`, `spec_augment`."""

    def __init__(self, section: dict, seed: int = 0, rank: int = 0, babble_from: str | None = None):
        self.section = dict(section)
        values = dict(section)
        self.prob = float(values.pop("prob", 1.0))
        self.new_speakers = bool(values.pop("speed_as_new_speakers", False))
        spec = dict(values.pop("specaugment", None) or {})
        unknown = sorted(set(spec) - set(SPECAUGMENT))
        if unknown:
            raise SpkidError(f"augment.specaugment: unknown options {unknown} (known: {sorted(SPECAUGMENT)})")
        self.spec = {**SPECAUGMENT, **spec}
        if not 0 <= self.prob <= 1 or not 0 <= float(self.spec["prob"]) <= 1:
            raise SpkidError("augment.prob and augment.specaugment.prob must be between 0 and 1")
        if min(int(v) for k, v in self.spec.items() if k != "prob") < 0:
            raise SpkidError(f"augment.specaugment: mask counts and widths must be >= 0, got {self.spec}")
        if float(values.get("babble_prob", 0)) > 0 and not values.get("babble_dir"):
            values["babble_dir"] = babble_from
        self.config = AugmentConfig.from_dict(values)
        self.wave_config = dataclasses.replace(self.config, speed_prob=0.0)  # speed: by draw_speed, before the crop
        self.seed, self.rank = int(seed), int(rank)

    @property
    def speed_enabled(self) -> bool:
        return self.config.speed_prob > 0

    @property
    def needs_audio(self) -> bool:
        return needs_audio(self.section)

    @property
    def label_blocks(self) -> int:
        """Classes per speaker: 1 + the number of speeds with `speed_as_new_speakers`, else 1."""
        return 1 + len(self.config.speeds) if self.new_speakers and self.speed_enabled else 1

    def rng(self, item_seed: int) -> np.random.Generator:
        """The Generator of one crop: a function of (train.seed, rank, the sampler's crop seed)."""
        return np.random.default_rng([self.seed, self.rank, int(item_seed), 0x61756720])

    def draw_speed(self, rng: np.random.Generator) -> tuple[int, float]:
        """(label block, factor): (0, 1.0) unperturbed, (k + 1, speeds[k]) played at speeds[k]."""
        if not self.speed_enabled or rng.random() >= self.config.speed_prob:
            return 0, 1.0
        k = int(rng.integers(len(self.config.speeds)))
        factor = float(self.config.speeds[k])
        return (0, 1.0) if factor == 1.0 else (k + 1, factor)

    def augment_wave(self, wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        """With probability `prob`, the waveform kinds (reverb, noise, music, babble, coloured noise) each with
        its probability; the same length out. The hook for any reader of training audio (shards too)."""
        if self.prob <= 0 or rng.random() >= self.prob:
            return wave
        return augment(wave, rate, rng, self.wave_config)

    def spec_augment(self, feats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """SpecAugment's time and frequency masks (zeros), with probability specaugment.prob."""
        spec = self.spec
        if float(spec["prob"]) <= 0 or rng.random() >= float(spec["prob"]):
            return feats
        feats = np.array(feats, copy=True)
        for axis, count, width in ((0, spec["time_masks"], spec["max_time_width"]),
                                   (1, spec["freq_masks"], spec["max_freq_width"])):
            size = feats.shape[axis]
            for _ in range(int(count)):
                w = int(rng.integers(0, min(int(width), size) + 1))
                start = int(rng.integers(0, size - w + 1))
                if axis == 0:
                    feats[start:start + w] = 0.0
                else:
                    feats[:, start:start + w] = 0.0
        return feats


def training_augmentation(config: dict, data_dir: str, rank: int, source,
                          new_speakers_ok: bool = False) -> TrainAugmentation | None:
    """The run's TrainAugmentation, or None when the `augment:` section enables nothing. One-line errors for
    what cannot work: waveform kinds on precomputed features, new speaker labels outside classification."""
    from spkid.data.sources import AudioSource

    section = config.get("augment") or {}
    aug = TrainAugmentation(section, int(config["train"]["seed"]), rank, babble_from=str(data_dir))
    if not aug.needs_audio and float(aug.spec["prob"]) <= 0:
        return None
    if getattr(source, "streamed", False) and float(section.get("babble_prob", 0)) > 0 \
            and not section.get("babble_dir"):
        raise SpkidError(f"{data_dir}: shards have no wav.scp to draw babble from; set augment.babble_dir "
                         "(a data dir of speech)")
    if aug.needs_audio and not isinstance(source, AudioSource) and not getattr(source, "streamed", False):
        raise SpkidError(f"{data_dir}: augment (speed, reverb or noise) works on audio, but the training crops come "
                         "from feats.scp; set data.source: audio (the data dir's wav.scp) or keep only "
                         "augment.specaugment")
    if aug.label_blocks > 1 and not new_speakers_ok:
        raise SpkidError(f"augment.speed_as_new_speakers is for task: classification, not {config['task']} "
                         "(set it false: speed-perturbed crops keep their speaker)")
    return aug
