"""`spkid fix-data-dir`: repair a Kaldi data dir as Kaldi's utils/fix_data_dir.sh."""
from __future__ import annotations

import click


@click.command(name="fix-data-dir")
@click.argument("data", metavar="DIR")
@click.option("--utt-extra-files", default="", metavar="'F1 F2'",
              help="More utterance-keyed files of DIR to sort and filter.")
@click.option("--spk-extra-files", default="", metavar="'F1 F2'",
              help="More speaker-keyed files of DIR to sort and filter.")
def main(data: str, utt_extra_files: str, spk_extra_files: str) -> None:
    """Sort a data dir's tables and keep only the utterances present in all of them.

    As Kaldi's utils/fix_data_dir.sh: every table is sorted (LC_ALL=C) and de-duplicated (the first
    line of an id wins); only utterances found in utt2spk and in every other utterance table (feats.scp,
    vad.scp, text, utt2dur and utt2num_frames with positive values, wav.scp or segments with a recording
    in wav.scp) are kept; speakers and recordings left without utterances are dropped; spk2utt is
    rebuilt from utt2spk. The original files are kept in DIR/.backup/. Prints what it filtered and how
    many utterances it kept; fails when none is left.

    \b
    Example:
      spkid fix-data-dir data/train
      utils/fix_data_dir.sh data/train     # the same, for Kaldi recipes
    """
    from spkid.kaldi.datadir import fix_data_dir

    fix_data_dir(data, utt_extra_files.split(), spk_extra_files.split(), log=click.echo)
