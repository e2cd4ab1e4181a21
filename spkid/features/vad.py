"""Kaldi's energy VAD (ivector/voice-activity-detection.cc, compute-vad) and select-voiced-frames.

The decision uses log energy: column 0 of the features (MFCC c0 or fbank with --use-energy), or the
raw log energy computed from audio with compute-fbank's framing, so the frames line up with fbank.
Arithmetic follows Kaldi's float32 (BaseFloat) evaluation order, so decisions match bit for bit.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spkid.errors import SpkidError
from spkid.features.fbank import FbankOptions, FrameOptions, compute_fbank, opt


@dataclass
class VadOptions:
    """Kaldi VadEnergyOptions with Kaldi's defaults (src/ivector/voice-activity-detection.h); recipes set
    theirs in conf/vad.conf (the VoxCeleb recipes: threshold 5.5, 2 frames of context)."""

    vad_energy_threshold: float = opt(5.0, "Constant term in energy threshold for VAD")
    vad_energy_mean_scale: float = opt(0.5, "If nonzero, add this times the mean log-energy to the threshold")
    vad_frames_context: int = opt(0, "Number of frames of context on each side of the central frame")
    vad_proportion_threshold: float = opt(0.6, "Proportion of frames in the window that must be above "
                                                "the threshold")

    def check(self) -> None:
        if self.vad_energy_mean_scale < 0:
            raise SpkidError("--vad-energy-mean-scale must be >= 0")
        if self.vad_frames_context < 0:
            raise SpkidError("--vad-frames-context must be >= 0")
        if not 0.0 < self.vad_proportion_threshold < 1.0:
            raise SpkidError("--vad-proportion-threshold must be in (0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


def compute_vad_energy(log_energy: np.ndarray, opts: VadOptions) -> np.ndarray:
    """Kaldi ComputeVadEnergy: 1.0 for voiced frames, 0.0 otherwise (float32 vector)."""
    opts.check()
    log_energy = np.asarray(log_energy, dtype=np.float32)
    t_len = len(log_energy)
    if t_len == 0:
        return np.zeros(0, dtype=np.float32)
    f32 = np.float32
    threshold = f32(opts.vad_energy_threshold)
    if opts.vad_energy_mean_scale != 0.0:
        total = f32(np.sum(log_energy, dtype=np.float64))  # Kaldi sums in double, returns float
        threshold = f32(threshold + f32(f32(f32(opts.vad_energy_mean_scale) * total) / f32(t_len)))
    above = (log_energy > threshold).astype(np.int64)
    context = opts.vad_frames_context
    kernel = np.ones(2 * context + 1, dtype=np.int64)
    num = np.convolve(above, kernel, mode="same") if t_len >= len(kernel) else \
        np.array([above[max(0, t - context):t + context + 1].sum() for t in range(t_len)])
    t = np.arange(t_len)
    den = np.minimum(t + context, t_len - 1) - np.maximum(t - context, 0) + 1
    voiced = num.astype(np.float32) >= den.astype(np.float32) * f32(opts.vad_proportion_threshold)
    return voiced.astype(np.float32)


def log_energy_from_audio(wave: np.ndarray, frame_opts: FrameOptions) -> np.ndarray:
    """Kaldi's raw log energy per frame (as MFCC c0 / fbank --use-energy), with fbank's framing."""
    opts = FbankOptions(**{k: getattr(frame_opts, k) for k in FrameOptions.__dataclass_fields__},
                        use_energy=True, num_mel_bins=23, low_freq=0.0, high_freq=0.0)
    return compute_fbank(wave, opts)[:, 0]


def select_voiced_frames(feats: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Rows of feats whose VAD value is non-zero (Kaldi select-voiced-frames)."""
    if len(feats) != len(voiced):
        raise ValueError(f"mismatch in number of frames: {len(feats)} for features and {len(voiced)} for VAD")
    keep = np.asarray(voiced) != 0.0
    if not keep.any():
        raise ValueError("no frames were judged voiced")
    return feats[keep]
