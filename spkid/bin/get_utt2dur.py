"""spkid get-utt2dur: write DATA/utt2dur (as Kaldi's utils/data/get_utt2dur.sh)."""
from __future__ import annotations

import click


@click.command("get-utt2dur")
@click.option("--read-entire-file", is_flag=True,
              help="Decode every file instead of reading the length from its header.")
@click.argument("data_dir", metavar="<data-dir>", type=click.Path(file_okay=False, exists=True))
def main(data_dir: str, read_entire_file: bool) -> None:
    """Write <data-dir>/utt2dur: each utterance's duration in seconds.

    From segments when present (end - start; an end of -1 means the recording's end), else from
    each recording in wav.scp (file headers, or decoding pipes).

    \b
    Example:
      spkid get-utt2dur data/train && head -3 data/train/utt2dur
    """
    from spkid.kaldi.durations import write_utt2dur

    write_utt2dur(data_dir, read_entire_file=read_entire_file)
