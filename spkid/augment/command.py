"""The wav-reverberate command as a function: options -> output wave (used by `spkid wav-reverberate` and by
wav.scp pipes run in-process, see spkid.augment.pipes)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spkid.augment.reverberate import repeat_to, reverberate_parts
from spkid.errors import SpkidError


@dataclass
class WavReverberateOptions:
    """Kaldi's wav-reverberate options and defaults."""

    multi_channel_output: bool = False
    shift_output: bool = True
    input_wave_channel: int = 0
    rir_channel: int = 0
    noise_channel: int = 0
    impulse_response: str = ""
    additive_signals: str = ""
    snrs: str = ""
    start_times: str = ""
    normalize_output: bool = True
    volume: float = 0.0
    duration: float = 0.0


def comma_floats(text: str, option: str) -> list[float]:
    """Kaldi's ReadCommaSeparatedCommand: comma-separated reals, empty fields skipped."""
    try:
        return [float(x) for x in text.split(",") if x != ""]
    except ValueError:
        raise SpkidError(f"{option}: expected comma-separated numbers, got '{text}'") from None


def load_wave(rx: str, what: str) -> tuple[np.ndarray, int]:
    """(float32 (samples, channels), rate) of an rxfilename; errors name it."""
    from spkid.kaldi.audio import AudioError, read_audio_channels

    try:
        data, rate = read_audio_channels(rx)
    except AudioError as err:
        raise SpkidError(f"{what}: {err}") from None
    if len(data) == 0:
        raise SpkidError(f"{what} '{rx}' is empty")
    return data, rate


def _channel(data: np.ndarray, index: int, what: str, rx: str) -> np.ndarray:
    """Channel `index` of a wave; refused when it has NaN or infinite samples (they would become silence)."""
    if not 0 <= index < data.shape[1]:
        raise SpkidError(f"{what} '{rx}' has {data.shape[1]} channel(s), no channel {index}")
    samples = data[:, index]
    finite = np.isfinite(samples)
    if not finite.all():
        raise SpkidError(f"{what} '{rx}' has {int((~finite).sum())} non-finite samples (NaN or inf), the first "
                         f"at sample {int(np.argmin(finite))}")
    return samples


def wav_reverberate(data: np.ndarray, rate: int, opts: WavReverberateOptions, name: str = "input") -> np.ndarray:
    """The output (float64, (samples, channels), [-1, 1) scale) of wav-reverberate on an input wave
    (float (samples, channels)); RIR and noises are read from their rxfilenames. At most
    MAX_RECORDING_SAMPLES samples, as any recording spkid reads (the command itself streams longer ones)."""
    from spkid.kaldi.audio import MAX_RECORDING_SAMPLES

    base, num_out = wav_reverberate_parts(data, rate, opts, name)
    if num_out * base.shape[1] > MAX_RECORDING_SAMPLES:
        raise SpkidError(f"{name}: --duration={opts.duration:g} makes {num_out * base.shape[1]} samples, more than "
                         f"spkid reads from one recording ({MAX_RECORDING_SAMPLES})")
    return np.stack([repeat_to(base[:, c], num_out) for c in range(base.shape[1])], axis=1)


def wav_reverberate_parts(data: np.ndarray, rate: int, opts: WavReverberateOptions, name: str = "input"
                          ) -> tuple[np.ndarray, int]:
    """(base (samples, channels) float64, num_out): the output of wav-reverberate is `base` repeated
    cyclically to num_out samples (--duration longer than the input), see reverberate_parts."""
    wave = _channel(data, opts.input_wave_channel, "input wave", name)
    rir, rir_rate, num_rir_channel = None, rate, 1
    if opts.impulse_response:
        rir, rir_rate = load_wave(opts.impulse_response, "impulse response")
        num_rir_channel = rir.shape[1]
    noise_rx = [x for x in opts.additive_signals.split(",") if x != ""]
    if noise_rx and (not opts.snrs or not opts.start_times):
        raise SpkidError("--additive-signals option requires --snrs and --start-times to be set.")
    snrs, start_times = comma_floats(opts.snrs, "--snrs"), comma_floats(opts.start_times, "--start-times")
    if len(snrs) != len(noise_rx) or len(start_times) != len(noise_rx):
        raise SpkidError(f"{len(noise_rx)} additive signals but {len(snrs)} SNRs and {len(start_times)} start times")
    noises = []
    for i, rx in enumerate(noise_rx):
        noise, noise_rate = load_wave(rx, f"additive signal {i + 1}")
        if noise_rate != rate:
            raise SpkidError(f"additive signal '{rx}' has sampling rate {noise_rate}, the input {rate}")
        if opts.multi_channel_output and noise.shape[1] != num_rir_channel:
            raise SpkidError(f"additive signal '{rx}' has {noise.shape[1]} channels, the RIR {num_rir_channel}")
        noises.append(noise)
    outputs = []
    for out_chan in range(num_rir_channel if opts.multi_channel_output else 1):
        rir_chan = out_chan if opts.multi_channel_output else opts.rir_channel
        noise_chan = out_chan if opts.multi_channel_output else opts.noise_channel
        this_rir = None if rir is None else _channel(rir, rir_chan, "impulse response", opts.impulse_response)
        this_noises = [_channel(n, noise_chan, "additive signal", rx) for n, rx in zip(noises, noise_rx)]
        try:
            base, num_out = reverberate_parts(wave, rate, this_rir, rir_rate, this_noises, snrs, start_times,
                                              shift_output=opts.shift_output, normalize_output=opts.normalize_output,
                                              volume=opts.volume, duration=opts.duration)
        except ValueError as err:
            raise SpkidError(f"{name}: {err}") from None
        outputs.append(base)
    return np.stack(outputs, axis=1), num_out
