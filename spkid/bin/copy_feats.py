"""spkid copy-feats: copy a feature table between r/wspecifiers (as Kaldi's copy-feats)."""
from __future__ import annotations

import click

from spkid.bin.options import KaldiCommand


@click.command("copy-feats", cls=KaldiCommand)
@click.option("--write-num-frames", "num_frames_out", default=None, metavar="WSPEC",
              help="Write the number of frames of each utterance (e.g. ark,t:utt2num_frames).")
@click.argument("rspecifier", metavar="<feats-rspecifier>")
@click.argument("wspecifier", metavar="<feats-wspecifier>")
def main(rspecifier: str, wspecifier: str, num_frames_out: str | None) -> None:
    """Copy features (matrices or vectors) from an rspecifier to a wspecifier.

    Converts between archives, scp'd archives, text and binary, files and pipes.

    \b
    Example:
      spkid copy-feats scp:data/train/feats.scp ark,t:- | head
      cat feats.ark | spkid copy-feats ark:- ark,scp:copy.ark,copy.scp
    """
    from spkid.kaldi.io import TableWriter, check_outputs, read_table, write_text_table

    check_outputs(wspecifier, num_frames_out)
    num_frames = {}
    with TableWriter(wspecifier) as writer:
        for utt, array in read_table(rspecifier):
            writer.write(utt, array)
            num_frames[utt] = len(array)
    if num_frames_out:
        write_text_table(num_frames_out, num_frames)
