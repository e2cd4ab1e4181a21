"""On-the-fly augmentation of float waveforms, seeded by an explicit numpy Generator.

Every mix goes through `spkid.augment.reverberate.reverberate`, the code of `spkid wav-reverberate`, so an
SNR means what it means in Kaldi's wav-reverberate (speech power, or early-reverberation power with an RIR,
over the noise's power; the output scaled back to the input's power). `augment(wave, rate, rng, config)`
applies the kinds an `AugmentConfig` enables, each with its own probability, ready for a dataset worker.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from spkid.augment.reverberate import repeat_to, reverberate
from spkid.augment.simulate import NOISE_COLOURS, coloured_noise, simulated_rir
from spkid.errors import SpkidError


def fit_to_length(noise: np.ndarray, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """The noise cut to `length` (at a random start when rng is given) or repeated to it, as Kaldi's --duration."""
    if len(noise) >= length:
        start = int(rng.integers(0, len(noise) - length + 1)) if rng is not None else 0
        return noise[start:start + length]
    return repeat_to(noise, length)


def add_noise(wave: np.ndarray, rate: int, noise: np.ndarray, snr_db: float,
              rng: np.random.Generator | None = None) -> np.ndarray:
    """Add a noise (cut or repeated to the wave's length) at snr_db, then rescale to the input power."""
    return reverberate(wave, rate, noises=[fit_to_length(noise, len(wave), rng)], snrs=[snr_db], start_times=[0])


def add_babble(wave: np.ndarray, rate: int, others: list[np.ndarray], snrs: list[float],
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Overlap other utterances, each at its own SNR against the speech (Kaldi's babble: --num-bg-noises)."""
    fitted = [fit_to_length(o, len(wave), rng) for o in others]
    return reverberate(wave, rate, noises=fitted, snrs=snrs, start_times=[0] * len(fitted))


def add_reverb(wave: np.ndarray, rate: int, rir: np.ndarray) -> np.ndarray:
    """Convolve with an RIR (peak in [-1, 1]), shifted by its peak and rescaled to the input power."""
    return reverberate(wave, rate, rir=rir)


def speed_perturb(wave: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """sox `speed FACTOR`: played FACTOR times faster (pitch too); the length becomes len / FACTOR."""
    from spkid.kaldi.audio import resample

    return resample(np.asarray(wave, np.float32), int(round(rate * factor)), rate)


@dataclass
class AugmentConfig:
    """Kinds of augmentation, each applied with its probability (0 disables it). YAML-friendly.

    Noise sources are Kaldi data dirs (wav.scp; e.g. MUSAN's noise/music/speech as made for Kaldi's
    recipes); rir_list is a Kaldi RIR list (`--rir-id X --room-id Y file.wav`), simulated RIRs when None.
    SNR lists are drawn from uniformly, as Kaldi's augment_data_dir.py does; with `snr_uniform` each SNR
    list is a range [min, max] dB and an SNR is drawn uniformly in it.
    """

    speed_prob: float = 0.0
    speeds: tuple[float, ...] = (0.9, 1.1)
    reverb_prob: float = 0.0
    rir_list: str | None = None
    noise_prob: float = 0.0  # foreground noises one after another, noise_interval s apart (Kaldi's --fg-*)
    noise_dir: str | None = None
    noise_snrs: tuple[float, ...] = (15, 10, 5, 0)
    noise_interval: float = 1.0
    music_prob: float = 0.0  # one background music covering the utterance
    music_dir: str | None = None
    music_snrs: tuple[float, ...] = (15, 10, 8, 5)
    babble_prob: float = 0.0  # babble_count[0]..babble_count[1] other utterances
    babble_dir: str | None = None
    babble_snrs: tuple[float, ...] = (20, 17, 15, 13)
    babble_count: tuple[int, int] = (3, 7)
    coloured_noise_prob: float = 0.0
    coloured_noise_snrs: tuple[float, ...] = (20, 15, 10, 5)
    coloured_noise_colours: tuple[str, ...] = ("white", "pink", "brown")
    snr_uniform: bool = False

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
            if f.name.endswith("_prob") and not 0 <= float(value) <= 1:
                raise SpkidError(f"augmentation: {f.name} must be between 0 and 1, got {value}")
        for kind in ("noise", "music", "babble"):
            if getattr(self, f"{kind}_prob") > 0 and not getattr(self, f"{kind}_dir"):
                raise SpkidError(f"augmentation: {kind}_prob > 0 needs {kind}_dir (a Kaldi data dir)")
        lo, hi = self.babble_count
        if not 1 <= lo <= hi:
            raise SpkidError(f"augmentation: babble_count must be [min, max] with 1 <= min <= max, got {lo}, {hi}")
        if not self.speeds or min(self.speeds) <= 0:
            raise SpkidError("augmentation: speeds must be positive factors")
        for kind in ("noise", "music", "babble", "coloured_noise"):
            snrs = getattr(self, f"{kind}_snrs")
            if getattr(self, f"{kind}_prob") > 0 and (
                    not snrs or self.snr_uniform and (len(snrs) != 2 or snrs[0] > snrs[1])):
                want = "[min, max] with min <= max (snr_uniform)" if self.snr_uniform else "a list of dB values"
                raise SpkidError(f"augmentation: {kind}_snrs must be {want}, got {list(snrs)}")
        bad = set(self.coloured_noise_colours) - set(NOISE_COLOURS)
        if bad:
            raise SpkidError(f"augmentation: unknown noise colours {sorted(bad)} (choose from {list(NOISE_COLOURS)})")

    @classmethod
    def from_dict(cls, values: dict) -> AugmentConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SpkidError(f"augmentation: unknown options {unknown} (known: {sorted(names)})")
        return cls(**values)


@lru_cache(maxsize=16)
def source_recordings(data_dir: str) -> tuple[tuple[str, str], ...]:
    """(id, rxfilename) of a noise source: a data dir's wav.scp, or a wav.scp itself (cached)."""
    from spkid.augment.kaldi_datadir import wav_scp_entries

    path = Path(data_dir) / "wav.scp" if Path(data_dir).is_dir() else Path(data_dir)
    entries = tuple(wav_scp_entries(path))
    if not entries:
        raise SpkidError(f"{path}: no recordings")
    return entries


@lru_cache(maxsize=16)
def rir_list_entries(rir_list: str) -> tuple[str, ...]:
    """The rxfilenames of a Kaldi RIR list (cached)."""
    from spkid.augment.reverberate_data_dir import parse_list_file

    return tuple(item.rspecifier for item in parse_list_file(rir_list, "rir", None))


def load_source(rx: str, rate: int) -> np.ndarray:
    """A recording (first channel) at `rate`."""
    from spkid.augment.command import load_wave
    from spkid.kaldi.audio import resample

    data, source_rate = load_wave(rx, "augmentation source")
    return resample(data[:, 0], source_rate, rate).astype(np.float64)


@lru_cache(maxsize=512)
def load_rir(rx: str, rate: int) -> np.ndarray:
    """An RIR (short: they stay cached in the worker)."""
    return load_source(rx, rate)


class _SourceCache:
    """Recordings already loaded in this process (least recently used dropped beyond `budget` bytes): a
    training worker draws the same noise and babble recordings again and again."""

    def __init__(self, budget: int = 128 << 20):
        self.budget, self.items = budget, OrderedDict()

    def get(self, rx: str, rate: int) -> np.ndarray:
        key = (rx, rate)
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        wave = load_source(rx, rate).astype(np.float32)
        self.items[key] = wave
        while sum(w.nbytes for w in self.items.values()) > self.budget and len(self.items) > 1:
            self.items.popitem(last=False)
        return wave


_SOURCES = _SourceCache()


def pick_source(source: str, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A recording of a noise source drawn with rng, at `rate` (cached in the process)."""
    entries = source_recordings(source)
    return _SOURCES.get(entries[int(rng.integers(len(entries)))][1], rate).astype(np.float64)


def _choice(values, rng: np.random.Generator):
    return values[int(rng.integers(len(values)))]


def _snr(snrs, rng: np.random.Generator, config: AugmentConfig) -> float:
    """One of the SNR list, or uniform in [min, max] with config.snr_uniform."""
    return float(rng.uniform(snrs[0], snrs[1]) if config.snr_uniform else _choice(snrs, rng))


def augment(wave: np.ndarray, rate: int, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Apply the configured kinds, each with its probability: speed, then one wav-reverberate mix of
    reverberation (RIR list or simulated) and the additive noises (noise, music, babble, coloured noise).

    Takes a numpy array or a CPU torch tensor and returns the same kind, float32; the length changes only
    with speed perturbation (len / factor). Same rng state, same output.
    """
    if type(wave).__module__.startswith("torch"):
        import torch

        return torch.from_numpy(augment(wave.detach().cpu().numpy(), rate, rng, config))
    out = np.asarray(wave, np.float32)
    if config.speed_prob and rng.random() < config.speed_prob:
        out = speed_perturb(out, rate, float(_choice(config.speeds, rng)))
    n = len(out)
    if n == 0:
        return out
    rir = None
    if config.reverb_prob and rng.random() < config.reverb_prob:
        if config.rir_list:
            entries = rir_list_entries(config.rir_list)
            rir = load_rir(_choice(entries, rng), rate)
        else:
            rir = simulated_rir(rate, rng)
    noises, snrs, starts = [], [], []
    if config.noise_prob and rng.random() < config.noise_prob:
        start = 0.0
        while start < n / rate:
            noise = pick_source(config.noise_dir, rate, rng)
            noises.append(noise)
            snrs.append(_snr(config.noise_snrs, rng, config))
            starts.append(start)
            start += len(noise) / rate + config.noise_interval
    if config.music_prob and rng.random() < config.music_prob:
        noises.append(fit_to_length(pick_source(config.music_dir, rate, rng), n, rng))
        snrs.append(_snr(config.music_snrs, rng, config))
        starts.append(0.0)
    if config.babble_prob and rng.random() < config.babble_prob:
        lo, hi = config.babble_count
        for _ in range(int(rng.integers(lo, hi + 1))):
            noises.append(fit_to_length(pick_source(config.babble_dir, rate, rng), n, rng))
            snrs.append(_snr(config.babble_snrs, rng, config))
            starts.append(0.0)
    if config.coloured_noise_prob and rng.random() < config.coloured_noise_prob:
        noises.append(coloured_noise(n, _choice(config.coloured_noise_colours, rng), rng))
        snrs.append(_snr(config.coloured_noise_snrs, rng, config))
        starts.append(0.0)
    audible = [i for i, noise in enumerate(noises) if np.any(noise)]  # a silent file has no SNR: skipped
    noises, snrs, starts = [noises[i] for i in audible], [snrs[i] for i in audible], [starts[i] for i in audible]
    if rir is None and not noises:
        return out
    return reverberate(out, rate, rir=rir, noises=noises, snrs=snrs, start_times=starts).astype(np.float32)
