"""spkid wav-reverberate: Kaldi's wav-reverberate (RIR convolution, additive noises at SNRs)."""
from __future__ import annotations

import click

from spkid.bin.options import KALDI_BOOL, KaldiCommand, config_option


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
    pipes, 'file.ark:offset' or '-' (stdin); the output a file, '-' (stdout) or '| cmd'.
    The `wav-reverberate` script in utils/ runs this command, so wav.scp lines written by
    Kaldi's steps/data/augment_data_dir.py and reverberate_data_dir.py work without Kaldi.

    \b
    Example:
      spkid wav-reverberate --duration=20.25 --impulse-response=rir.wav \\
          --additive-signals='noise1.wav,noise2.wav' --snrs='20.0,15.0' --start-times='0,17.8' \\
          input.wav output.wav
    """
    import logging

    from spkid.augment.command import WavReverberateOptions, load_wave, wav_reverberate_parts

    opts = WavReverberateOptions(
        multi_channel_output=multi_channel_output, shift_output=shift_output, input_wave_channel=input_wave_channel,
        rir_channel=rir_channel, noise_channel=noise_channel, impulse_response=impulse_response,
        additive_signals=additive_signals, snrs=snrs, start_times=start_times, normalize_output=normalize_output,
        volume=volume, duration=duration)
    data, rate = load_wave(wav_in, "input wave")
    base, num_out = wav_reverberate_parts(data, rate, opts, wav_in)
    clipped = write_output(wav_out, base, num_out, rate)
    if clipped:
        logging.getLogger("spkid.wav-reverberate").warning("clipped %d samples. Reduce volume?", clipped)


def write_output(wav_out: str, base, num_out: int, rate: int) -> int:
    """Stream the wav of `base` repeated to num_out samples to a file (atomically), '-' or '| cmd' (a long
    --duration never holds the output in memory); returns the number of samples clipped."""
    import subprocess
    import sys

    from spkid.atomic import atomic_open
    from spkid.errors import SpkidError
    from spkid.kaldi.wav_writer import write_kaldi_wav

    if wav_out == "-":
        clipped = write_kaldi_wav(sys.stdout.buffer, base, num_out, rate)
        sys.stdout.buffer.flush()
        return clipped
    if wav_out.startswith("|"):  # Kaldi's output pipe '| cmd'
        proc = subprocess.Popen(wav_out[1:], shell=True, stdin=subprocess.PIPE, executable="/bin/bash")
        try:
            clipped = write_kaldi_wav(proc.stdin, base, num_out, rate)
            proc.stdin.close()
        except BrokenPipeError:
            clipped = 0
        if proc.wait() != 0:
            raise SpkidError(f"output command '{wav_out[1:].strip()}' failed (exit status {proc.returncode})")
        return clipped
    with atomic_open(wav_out, "wb") as handle:
        return write_kaldi_wav(handle, base, num_out, rate)
