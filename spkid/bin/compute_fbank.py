"""spkid compute-fbank: Kaldi log mel filterbank features (as compute-fbank-feats)."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import KALDI_BOOL, KaldiCommand, config_option, dataclass_options
from spkid.features.fbank import FbankOptions

logger = logging.getLogger("spkid.compute-fbank")


def resolve_rate(ctx: click.Context, params: dict) -> int | None:
    """--resample-to (or Kaldi's --allow-upsample/--allow-downsample) sets the rate features use."""
    from click.core import ParameterSource

    from spkid.errors import SpkidError

    target = params.pop("resample_to")
    if params.pop("allow_downsample") or params.pop("allow_upsample"):
        target = target or int(params["sample_frequency"])
    if target is None:
        return None
    explicit = ctx.get_parameter_source("sample_frequency") != ParameterSource.DEFAULT
    if explicit and int(params["sample_frequency"]) != int(target):
        raise SpkidError(f"--resample-to={target} conflicts with --sample-frequency="
                         f"{params['sample_frequency']:g}")
    params["sample_frequency"] = float(target)
    return int(target)


@click.command("compute-fbank", cls=KaldiCommand)
@config_option
@dataclass_options(FbankOptions)
@click.option("--resample-to", type=int, default=None, metavar="HZ",
              help="Resample audio of any rate to HZ first (so 8 kHz and 16 kHz corpora combine).")
@click.option("--allow-downsample", type=KALDI_BOOL, default=False,
              help="Kaldi's option: resample higher-rate input to --sample-frequency.")
@click.option("--allow-upsample", type=KALDI_BOOL, default=False,
              help="Kaldi's option: resample lower-rate input to --sample-frequency.")
@click.option("--channel", type=int, default=-1, show_default=True,
              help="Channel to extract (-1 expects mono).")
@click.option("--min-duration", type=float, default=0.0, show_default=True,
              help="Minimum duration of segments to process (in seconds).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Kaldi data dir: reads DIR/wav.scp and honours DIR/segments.")
@click.option("--segments", type=click.Path(dir_okay=False), default=None,
              help="Segments file applied to the recordings of an scp: wav-rspecifier.")
@click.option("--write-num-frames", "--write-utt2num-frames", "num_frames_out", default=None,
              metavar="WSPEC", help="Write utt2num_frames (e.g. ark,t:utt2num_frames); with --data "
              "it defaults to DIR/utt2num_frames.")
@click.option("--write-utt2dur", "utt2dur_out", default=None, metavar="WSPEC",
              help="Write utterance durations in seconds (e.g. ark,t:utt2dur).")
@click.option("--num-threads", type=int, default=1, show_default=True,
              help="Threads decoding audio and computing features (0: all CPU cores); the output is "
              "the same, in input order.")
@click.argument("specifiers", nargs=-1, required=True)
@click.pass_context
def main(ctx: click.Context, specifiers: tuple[str, ...], **params) -> None:
    """Compute Kaldi log mel filterbank features from audio.

    \b
    Usage: spkid compute-fbank [options] <wav-rspecifier> <feats-wspecifier>
       or: spkid compute-fbank [options] --data DIR <feats-wspecifier>

    Values equal Kaldi's compute-fbank-feats (same options and defaults; int16 sample scale,
    snip-edges). Audio: any format libsndfile reads (wav, flac, ...), wav.scp pipes `cmd |`.
    Utterances that fail are reported one per line and skipped; the exit status is then 1,
    and the ark/scp written hold only the complete entries.

    \b
    Example:
      spkid compute-fbank --num-mel-bins=40 --dither=0 --num-threads=4 scp:data/train/wav.scp \\
          ark,scp:fbank/raw_fbank.ark,fbank/raw_fbank.scp
    """
    from pathlib import Path

    from spkid.features.compute import compute_table
    from spkid.features.frontend import FbankFrontend
    from spkid.kaldi.datadir import DataDir
    from spkid.kaldi.io import check_outputs, write_text_table

    data_dir = params.pop("data_dir")
    segments = params.pop("segments")
    num_frames_out = params.pop("num_frames_out")
    utt2dur_out = params.pop("utt2dur_out")
    channel, min_duration = params.pop("channel"), params.pop("min_duration")
    num_threads = params.pop("num_threads")
    resample_to = resolve_rate(ctx, params)
    opts = FbankOptions(**params)
    if data_dir is not None:
        if len(specifiers) != 1:
            raise click.UsageError("with --data give one argument: <feats-wspecifier>")
        data = DataDir(Path(data_dir))
        rspecifier = data.wav_rspecifier
        if segments is None and data.segments_path is not None:
            segments = str(data.segments_path)
        if num_frames_out is None:
            num_frames_out = str(Path(data_dir) / "utt2num_frames")
    elif len(specifiers) != 2:
        raise click.UsageError("expected <wav-rspecifier> <feats-wspecifier>")
    else:
        rspecifier = specifiers[0]
    check_outputs(specifiers[-1], num_frames_out, utt2dur_out)
    frontend = FbankFrontend(opts)
    failures, num_frames = compute_table(
        rspecifier, specifiers[-1], frontend, opts.sample_frequency, segments=segments,
        resample_to=resample_to, channel=channel, min_duration=min_duration, num_threads=num_threads)
    if num_frames_out:
        write_text_table(num_frames_out, num_frames)
    if utt2dur_out:
        shift = opts.frame_shift / 1000
        length = opts.frame_length / 1000
        write_text_table(utt2dur_out, {u: f"{(n - 1) * shift + length:.3f}" for u, n in num_frames.items()})
    failures.finish()
