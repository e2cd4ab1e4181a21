"""Kaldi's wav-reverberate on float waveforms: RIR convolution, peak shift, noise at an SNR, normalisation.

Mirrors src/featbin/wav-reverberate.cc (and FFTbasedBlockConvolveSignals of src/feat/signal.cc):
  * reverberation is the full linear convolution (length n + m - 1) with the RIR;
  * the speech power used for SNRs is the "early reverberation" power: the signal convolved with the RIR
    from 1 ms before its peak to 50 ms after it, over the length of that convolution; without RIR, the
    input power;
  * each noise is scaled so that its power (over its own length) is `power * 10^(-snr/10)` and added from
    `int(start_time * rate)`, never extending the signal;
  * the result is scaled back to the input power (normalize_output) or by `volume`, then cut from the RIR
    peak (shift_output) to the output length, repeating the signal when `duration` asks for more.
Waveforms may be in any scale (Kaldi uses int16 values); RIRs in [-1, 1] (Kaldi divides by 2^15).
Sample counts follow Kaldi's float32 arithmetic (`int(float32(rate) * float32(seconds))`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EARLY_BEFORE_PEAK = 0.001  # seconds of RIR before its peak counted as direct sound (Kaldi)
EARLY_AFTER_PEAK = 0.05  # seconds of early reflections after the peak (Kaldi)


def seconds_to_samples(seconds: float, rate: float) -> int:
    """`int32(seconds * rate)` computed in float32, as Kaldi does (16000 * 2.3 -> 36800, not 36799)."""
    return int(np.float32(seconds) * np.float32(rate))


def convolve(signal: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Full linear convolution (length len(signal) + len(rir) - 1), by FFT in float64."""
    n = len(signal) + len(rir) - 1
    size = 1 << max(n - 1, 1).bit_length()
    spec = np.fft.rfft(np.asarray(signal, np.float64), size) * np.fft.rfft(np.asarray(rir, np.float64), size)
    return np.fft.irfft(spec, size)[:n]


def power(signal: np.ndarray) -> float:
    """Mean square of a signal (Kaldi's VecVec(x, x) / Dim)."""
    signal = np.asarray(signal, np.float64)
    return float(np.dot(signal, signal) / len(signal))


def rir_peak(rir: np.ndarray) -> int:
    """Index of the RIR's maximum (signed, as Kaldi's Vector::Max), the direct-path arrival."""
    return int(np.argmax(rir))


def early_reverb_power(rir: np.ndarray, signal: np.ndarray, rate: float) -> float:
    """Power of the signal convolved with the early part of the RIR (1 ms before to 50 ms after its peak)."""
    peak = rir_peak(rir)
    # int32(peak - 0.001f * rate): float32 arithmetic, truncation toward zero
    start = max(int(np.float32(peak) - np.float32(EARLY_BEFORE_PEAK) * np.float32(rate)), 0)
    end = min(int(np.float32(peak) + np.float32(EARLY_AFTER_PEAK) * np.float32(rate)), len(rir))
    return power(convolve(signal, rir[start:end]))


def scale_to_snr(noise: np.ndarray, signal_power: float, snr_db: float) -> np.ndarray:
    """The noise scaled so that signal_power / power(noise) is snr_db decibels."""
    noise_power = power(noise)
    if not np.isfinite(noise_power):
        raise ValueError("the additive signal has non-finite samples (NaN or inf)")
    if not noise_power > 0:
        raise ValueError("the additive signal is silent (zero energy); it cannot be scaled to an SNR")
    return np.asarray(noise, np.float64) * np.sqrt(10 ** (-snr_db / 10) * signal_power / noise_power)


def add_at(signal: np.ndarray, addition: np.ndarray, offset: int) -> None:
    """Add `addition` into `signal` from `offset`, in place, never extending it (AddVectorsWithOffset)."""
    length = min(len(signal) - offset, len(addition))
    if length > 0:
        signal[offset:offset + length] += addition[:length]


def repeat_to(signal: np.ndarray, length: int) -> np.ndarray:
    """The signal repeated (and cut) to `length` samples (AddVectorsOfUnequalLength on zeros)."""
    if length == len(signal):
        return signal
    return np.resize(signal, length)  # cyclic repetition, allocating `length` samples only


def reverberate(wave: np.ndarray, rate: float, rir: np.ndarray | None = None, rir_rate: float | None = None,
                noises: Sequence[np.ndarray] = (), snrs: Sequence[float] = (), start_times: Sequence[float] = (),
                shift_output: bool = True, normalize_output: bool = True, volume: float = 0.0,
                duration: float = 0.0) -> np.ndarray:
    """One output channel of wav-reverberate (float64, same scale as `wave`). See the module docstring.

    As in Kaldi, with shift_output=False (and no duration) the output has n + m - 1 samples (m = 0 without
    RIR): the first n reverberated samples, then their start repeated (Kaldi's AddVectorsOfUnequalLength).
    """
    base, num_out = reverberate_parts(wave, rate, rir, rir_rate, noises, snrs, start_times, shift_output,
                                      normalize_output, volume, duration)
    return repeat_to(base, num_out)


def reverberate_parts(wave: np.ndarray, rate: float, rir: np.ndarray | None = None, rir_rate: float | None = None,
                      noises: Sequence[np.ndarray] = (), snrs: Sequence[float] = (),
                      start_times: Sequence[float] = (), shift_output: bool = True, normalize_output: bool = True,
                      volume: float = 0.0, duration: float = 0.0) -> tuple[np.ndarray, int]:
    """(base, num_out): the output of `reverberate` is `base` repeated cyclically to num_out samples, so a long
    --duration costs memory only when the repetition is materialised (see spkid.kaldi.audio.write_kaldi_wav)."""
    if not (len(noises) == len(snrs) == len(start_times)):
        raise ValueError(f"{len(noises)} additive signals need as many SNRs and start times "
                         f"(got {len(snrs)} and {len(start_times)})")
    signal = np.asarray(wave, np.float64)
    num_in = len(signal)
    if num_in == 0:
        raise ValueError("the input wave is empty")
    power_before = power(signal)
    speech_power, shift = power_before, 0
    if rir is not None:
        speech_power = early_reverb_power(rir, signal, rate if rir_rate is None else rir_rate)
        signal = convolve(signal, rir)
        if shift_output:
            shift = rir_peak(rir)
    for noise, snr, start in zip(noises, snrs, start_times):
        add_at(signal, scale_to_snr(noise, speech_power, snr), seconds_to_samples(start, rate))
    power_after = power(signal)
    if volume > 0:
        signal = signal * volume
    elif normalize_output and power_after > 0:
        signal = signal * np.sqrt(power_before / power_after)
    if duration > 0:
        num_out = seconds_to_samples(duration, rate)
    else:
        num_out = num_in if shift_output else num_in + (0 if rir is None else len(rir)) - 1
    if num_out <= num_in:
        return signal[shift:shift + num_out], num_out
    return signal[shift:shift + num_in], num_out
