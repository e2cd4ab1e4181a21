"""spkid compute-vad: Kaldi's energy-based voice activity detection (as compute-vad)."""
from __future__ import annotations

import click

from spkid.bin.options import (
    KaldiCommand,
    config_option,
    dataclass_options,
    dataclass_values_from_config,
    pick,
)
from spkid.features.fbank import FrameOptions
from spkid.features.vad import VadOptions


@click.command("compute-vad", cls=KaldiCommand)
@config_option
@dataclass_options(VadOptions)
@dataclass_options(FrameOptions)
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Kaldi data dir: log energy from DIR/wav.scp (+segments), framed like compute-fbank.")
@click.option("--wav", "wav_rspecifier", default=None, metavar="RSPEC",
              help="Compute log energy from this wav rspecifier instead of reading features.")
@click.option("--fbank-config", default=None, metavar="FILE",
              help="compute-fbank config whose framing options (frame length/shift, snip-edges, ...) "
                   "to use with --data/--wav, so VAD frames align with the fbank frames.")
@click.option("--resample-to", type=int, default=None, metavar="HZ", help="As in compute-fbank.")
@click.option("--num-threads", type=int, default=1, show_default=True,
              help="With --data/--wav: threads decoding audio and computing energies (0: all CPU cores); the "
                   "output is the same, in input order.")
@click.argument("specifiers", nargs=-1, required=True)
def main(specifiers: tuple[str, ...], **params) -> None:
    """Voice activity detection with Kaldi's energy VAD; writes a 0/1 vector per utterance.

    \b
    Usage: spkid compute-vad [options] <feats-rspecifier> <vad-wspecifier>
       or: spkid compute-vad [options] --data DIR <vad-wspecifier>

    From features, column 0 is the log energy (MFCC c0, or fbank with --use-energy=true), exactly
    as Kaldi's compute-vad. With --data/--wav the raw log energy is computed from the audio with
    compute-fbank's framing (give the same --fbank-config), so the decisions line up with the
    fbank frames of the same data dir.

    \b
    Example:
      spkid compute-vad --fbank-config conf/fbank.conf --data data/train \\
          ark,scp:vad/vad_train.ark,vad/vad_train.scp
    """
    from pathlib import Path

    from spkid.errors import FailureLog
    from spkid.features.compute import compute_table
    from spkid.features.vad import compute_vad_energy, log_energy_from_audio
    from spkid.kaldi.datadir import DataDir
    from spkid.kaldi.io import TableWriter, read_table

    data_dir, wav_rspecifier = params.pop("data_dir"), params.pop("wav_rspecifier")
    fbank_config, resample_to = params.pop("fbank_config"), params.pop("resample_to")
    num_threads = params.pop("num_threads")
    vad_opts = pick(VadOptions, params)
    vad_opts.check()
    if fbank_config:  # its framing options and --resample-to, unless given on the command line
        from spkid.kaldi.config_file import config_values

        ctx = click.get_current_context()
        for key, value in dataclass_values_from_config(FrameOptions, fbank_config).items():
            if ctx.get_parameter_source(key) == click.core.ParameterSource.DEFAULT:
                params[key] = value
        if resample_to is None:
            resample_to = config_values(fbank_config, {"resample_to": "int"}).get("resample_to")
    frame_opts = pick(FrameOptions, params)
    if resample_to is not None:
        frame_opts.sample_frequency = float(resample_to)
    if data_dir is not None or wav_rspecifier is not None:
        if len(specifiers) != 1:
            raise click.UsageError("with --data/--wav give one argument: <vad-wspecifier>")
        segments = None
        if data_dir is not None:
            data = DataDir(Path(data_dir))
            wav_rspecifier = data.wav_rspecifier
            if data.segments_path is not None:
                segments = str(data.segments_path)
        failures, _ = compute_table(
            wav_rspecifier, specifiers[0],
            lambda wave: compute_vad_energy(log_energy_from_audio(wave, frame_opts), vad_opts),
            frame_opts.sample_frequency, segments=segments, resample_to=resample_to, num_threads=num_threads)
        failures.finish()
        return
    if len(specifiers) != 2:
        raise click.UsageError("expected <feats-rspecifier> <vad-wspecifier>")
    failures = FailureLog()
    with TableWriter(specifiers[1]) as writer:
        for utt, feats in read_table(specifiers[0]):
            if feats.ndim != 2 or feats.shape[0] == 0:
                failures.fail(utt, "empty features")
                continue
            writer.write(utt, compute_vad_energy(feats[:, 0], vad_opts))
            failures.ok()
    failures.finish()

