"""spkid wav-reverberate: Kaldi's wav-reverberate (RIR convolution, additive noises at SNRs)."""
from __future__ import annotations

import click

from spkid.bin.options import KALDI_BOOL, KaldiCommand, config_option


def _floats(text: str, option: str) -> list[float]:
    """Kaldi's ReadCommaSeparatedCommand: comma-separated reals, empty fields skipped."""
    from spkid.errors import SpkidError

    try:
        return [float(x) for x in text.split(",") if x != ""]
    except ValueError:
        raise SpkidError(f"{option}: expected comma-separated numbers, got '{text}'") from None


def _load(rx: str, what: str):
    """(float32 (samples, channels), rate) of an rxfilename; errors name it."""
    from spkid.errors import SpkidError
    from spkid.kaldi.audio import AudioError, read_audio_channels

    try:
        data, rate = read_audio_channels(rx)
    except AudioError as err:
        raise SpkidError(f"{what}: {err}") from None
    if len(data) == 0:
        raise SpkidError(f"{what} '{rx}' is empty")
    return data, rate


def _channel(data, index: int, what: str, rx: str):
    from spkid.errors import SpkidError

    if not 0 <= index < data.shape[1]:
        raise SpkidError(f"{what} '{rx}' has {data.shape[1]} channel(s), no channel {index}")
    return data[:, index]


@click.command("wav-reverberate", cls=KaldiCommand)
@config_option
@click.option("--multi-channel-output", type=KALDI_BOOL, default=False, show_default=True,
              help="One output channel per RIR channel (noises need as many channels).")
@click.option("--shift-output", type=KALDI_BOOL, default=True, show_default=True,
              help="Shift the reverberated wave by the RIR peak position and keep the input length; if "
              "false the output has input + RIR - 1 samples. Only matters with an RIR.")
@click.option("--input-wave-channel", type=int, default=0, show_default=True,
              help="Channel of the input used to make the output.")
@click.option("--rir-channel", type=int, default=0, show_default=True,
              help="Channel of the RIR (when --multi-channel-output=false).")
@click.option("--noise-channel", type=int, default=0, show_default=True,
              help="Channel of the noise files (when --multi-channel-output=false).")
@click.option("--impulse-response", default="", metavar="RXFILENAME",
              help="Room impulse response: a wav file or a piped command ('sox rir.wav - |').")
@click.option("--additive-signals", default="", metavar="LIST",
              help="Comma-separated noise rxfilenames (files or 'cmd |'); needs --snrs and --start-times.")
@click.option("--snrs", default="", metavar="LIST", help="Comma-separated SNRs (dB) of the additive signals.")
@click.option("--start-times", default="", metavar="LIST",
              help="Comma-separated start times (s) of the additive signals in the input; additions past "
              "the end are ignored.")
@click.option("--normalize-output", type=KALDI_BOOL, default=True, show_default=True,
              help="Scale the output to the energy of the input (see --volume).")
@click.option("--volume", type=float, default=0.0, show_default=True,
              help="If nonzero, scale the output by this factor instead (as --normalize-output=false).")
@click.option("--duration", type=float, default=0.0, show_default=True,
              help="If nonzero, output duration in seconds: the signal is cut, or repeated to fill it.")
@click.argument("wav_in", metavar="<wav-in-rxfilename>")
@click.argument("wav_out", metavar="<wav-out-wxfilename>")
def main(wav_in: str, wav_out: str, multi_channel_output: bool, shift_output: bool, input_wave_channel: int,
         rir_channel: int, noise_channel: int, impulse_response: str, additive_signals: str, snrs: str,
         start_times: str, normalize_output: bool, volume: float, duration: float) -> None:
    """Corrupt a wave with a room impulse response and additive noises, as Kaldi's wav-reverberate.

    \b
    Usage: spkid wav-reverberate [options] <wav-in-rxfilename> <wav-out-wxfilename>

    Same options, defaults and output as Kaldi's (FFT convolution, shift by the RIR peak, noises
    scaled to an SNR against the early-reverberation energy, energy normalisation, 16-bit wav
    truncated like Kaldi's). rxfilenames may be files (any format libsndfile reads), 'cmd |'
    pipes, 'file.ark:offset' or '-' (stdin); the output '-' is stdout. The `wav-reverberate`
    script in utils/ runs this command, so wav.scp lines written by Kaldi's
    steps/data/augment_data_dir.py and reverberate_data_dir.py work without Kaldi.

    \b
    Example:
      spkid wav-reverberate --duration=20.25 --impulse-response=rir.wav \\
          --additive-signals='noise1.wav,noise2.wav' --snrs='20.0,15.0' --start-times='0,17.8' \\
          input.wav output.wav
    """
    import logging
    import sys

    import numpy as np

    from spkid.atomic import atomic_write_bytes
    from spkid.augment.reverberate import reverberate
    from spkid.errors import SpkidError
    from spkid.kaldi.audio import kaldi_wav_bytes

    wave, rate = _load(wav_in, "input wave")
    wave = _channel(wave, input_wave_channel, "input wave", wav_in)
    rir, rir_rate, num_rir_channel = None, rate, 1
    if impulse_response:
        rir, rir_rate = _load(impulse_response, "impulse response")
        num_rir_channel = rir.shape[1]
    noise_rx = [x for x in additive_signals.split(",") if x != ""] if additive_signals else []
    if noise_rx and (not snrs or not start_times):
        raise SpkidError("--additive-signals option requires --snrs and --start-times to be set.")
    snr_list, time_list = _floats(snrs, "--snrs"), _floats(start_times, "--start-times")
    if len(snr_list) != len(noise_rx) or len(time_list) != len(noise_rx):
        raise SpkidError(f"{len(noise_rx)} additive signals but {len(snr_list)} SNRs and "
                         f"{len(time_list)} start times")
    noises = []
    for i, rx in enumerate(noise_rx):
        noise, noise_rate = _load(rx, f"additive signal {i + 1}")
        if noise_rate != rate:
            raise SpkidError(f"additive signal '{rx}' has sampling rate {noise_rate}, the input {rate}")
        if multi_channel_output and noise.shape[1] != num_rir_channel:
            raise SpkidError(f"additive signal '{rx}' has {noise.shape[1]} channels, the RIR {num_rir_channel}")
        noises.append(noise)
    outputs = []
    for out_chan in range(num_rir_channel if multi_channel_output else 1):
        rir_chan = out_chan if multi_channel_output else rir_channel
        noise_chan = out_chan if multi_channel_output else noise_channel
        try:
            outputs.append(reverberate(
                wave, rate, None if rir is None else _channel(rir, rir_chan, "impulse response", impulse_response),
                rir_rate, [_channel(n, noise_chan, "additive signal", rx) for n, rx in zip(noises, noise_rx)],
                snr_list, time_list, shift_output=shift_output, normalize_output=normalize_output,
                volume=volume, duration=duration))
        except ValueError as err:
            raise SpkidError(f"{wav_in}: {err}") from None
    data, clipped = kaldi_wav_bytes(np.stack(outputs, axis=1), rate)
    if clipped:
        logging.getLogger("spkid.wav-reverberate").warning(
            "clipped %d samples out of total %d. Reduce volume?", clipped, len(outputs[0]) * len(outputs))
    if wav_out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        atomic_write_bytes(wav_out, data)
