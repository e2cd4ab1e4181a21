"""spkid select-voiced-frames: keep the frames a VAD judged voiced (as Kaldi's select-voiced-frames)."""
from __future__ import annotations

import click

from spkid.bin.options import KaldiCommand


@click.command("select-voiced-frames", cls=KaldiCommand)
@click.argument("feats_rspecifier", metavar="<feats-rspecifier>")
@click.argument("vad_rspecifier", metavar="<vad-rspecifier>")
@click.argument("feats_wspecifier", metavar="<feats-wspecifier>")
def main(feats_rspecifier: str, vad_rspecifier: str, feats_wspecifier: str) -> None:
    """Select the voiced frames of features, using VAD decisions from compute-vad.

    An utterance without VAD, with a different number of frames than its VAD, or with no voiced
    frame is reported and skipped (exit status 1), as Kaldi warns and skips it.

    \b
    Example:
      spkid select-voiced-frames scp:data/train/feats.scp scp:data/train/vad.scp ark:- | \\
          spkid copy-feats ark:- ark,scp:voiced.ark,voiced.scp
    """
    from spkid.errors import FailureLog
    from spkid.features.vad import select_voiced_frames
    from spkid.kaldi.io import TableWriter, check_outputs, read_dict, read_table

    check_outputs(feats_wspecifier)
    vad = read_dict(vad_rspecifier)
    failures = FailureLog()
    with TableWriter(feats_wspecifier) as writer:
        for utt, feats in read_table(feats_rspecifier):
            if utt not in vad:
                failures.fail(utt, f"no VAD in {vad_rspecifier}")
                continue
            try:
                writer.write(utt, select_voiced_frames(feats, vad[utt]))
            except ValueError as err:
                failures.fail(utt, str(err))
                continue
            failures.ok()
    failures.finish()
