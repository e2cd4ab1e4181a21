"""Synthetic augmentation sources: coloured noise and simulated room impulse responses (numpy, seeded).

lhotse 1.33 has a fast random RIR generator (lhotse.augmentation.utils.FastRandomRIRGenerator, FRA-RIR), but
it needs torchaudio and draws from torch's global RNG; `simulated_rir` is the same FRA-RIR method (Luo et
al. 2022, arXiv:2208.04101) in numpy/scipy, drawing only from the Generator it is given.
"""
from __future__ import annotations

import numpy as np

NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectral density ~ 1 / f^exponent
SOUND_SPEED = 340.0  # m/s


def coloured_noise(num_samples: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as 1/f^k (white k=0, pink 1, brown 2); unit power."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"unknown noise colour '{colour}' (choose from {', '.join(NOISE_COLOURS)})")
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.fft.rfftfreq(num_samples)
    freqs[0] = freqs[1] if num_samples > 1 else 1.0
    spectrum *= freqs ** (-NOISE_COLOURS[colour] / 2)
    spectrum[0] = 0.0  # no DC
    noise = np.fft.irfft(spectrum, num_samples)
    rms = np.sqrt(np.mean(noise ** 2))
    return noise / rms if rms > 0 else noise


def simulated_rir(rate: int, rng: np.random.Generator, max_t60: float = 0.8, direct_range_ms=(-6, 50),
                  alpha: float = 0.25, a: float = -2.0, b: float = 2.0, tau: float = 0.2) -> np.ndarray:
    """A random room impulse response (FRA-RIR): T60 in [0.1, max_t60] s, source 0.2-12 m away.

    Virtual sources at random distances (more of them far away) with a random number of reflections each
    make a Dirac comb at 64x the rate, which is downsampled, high-passed at 80 Hz and downsampled again.
    Returns float64 samples at `rate`, peak-normalised to 1 (Kaldi scales RIRs by 1/2^15 anyway).
    """
    from scipy.signal import butter, lfilter, resample_poly

    ratio = 64
    sample_sr = rate * ratio
    eps = np.finfo(np.float16).eps
    t60 = rng.uniform(0.1, max_t60)
    room_r = rng.uniform(0.1, 1.2)
    direct_dist = rng.uniform(0.2, 12.0)
    image = rate * 2  # number of virtual sources
    rir_length = int(np.ceil(sample_sr * t60))
    reflect_coef = np.sqrt(1 - (1 - np.exp(-0.16 * room_r / t60)) ** 2)
    dist_range = np.linspace(1.0, SOUND_SPEED * t60 / direct_dist - 1, image)
    dist_prob = np.linspace(alpha, 1.0, image) ** 2
    dist_ratio = dist_range[rng.choice(image, size=image, p=dist_prob / dist_prob.sum())]
    dist = direct_dist * dist_ratio
    reflect_max = (np.log10(SOUND_SPEED * t60) - np.log10(direct_dist) - 3) / np.log10(reflect_coef + eps)
    reflect_ratio = (dist / (SOUND_SPEED * t60)) ** 2 * (reflect_max - 1) + 1
    reflect_ratio = np.maximum(reflect_ratio + rng.uniform(a, b, size=image) * dist_ratio ** tau, 1.0)
    dist = np.concatenate([[direct_dist], dist])
    reflect_ratio = np.concatenate([[0.0], reflect_ratio])
    rir = np.zeros(rir_length)
    delta_idx = np.minimum(np.ceil(dist * sample_sr / SOUND_SPEED), rir_length - 1).astype(int)
    np.add.at(rir, delta_idx, reflect_coef ** reflect_ratio / dist)
    step = int(np.sqrt(ratio))
    rir = resample_poly(rir, 1, step)
    bb, aa = butter(2, 80.0, btype="highpass", fs=sample_sr // step)
    rir = resample_poly(lfilter(bb, aa, rir), 1, step)
    peak = np.abs(rir).max()
    return rir / peak if peak > 0 else rir
