"""`spkid validate-data-dir`: check a Kaldi data dir as Kaldi's utils/validate_data_dir.sh."""
from __future__ import annotations

import click


@click.command(name="validate-data-dir")
@click.argument("data", metavar="DIR")
@click.option("--no-feats", is_flag=True, help="feats.scp is optional (still checked when present).")
@click.option("--no-wav", is_flag=True, help="wav.scp is optional (still checked when present).")
@click.option("--no-text", is_flag=True, help="text is optional (still checked when present).")
@click.option("--no-spk-sort", is_flag=True,
              help="Do not require utt2spk to be sorted by speaker as well as by utterance.")
def main(data: str, no_feats: bool, no_wav: bool, no_text: bool, no_spk_sort: bool) -> None:
    """Check a Kaldi data dir; exit 1 listing each problem with its file:line.

    Checks as Kaldi's utils/validate_data_dir.sh: utt2spk and spk2utt exist and match; every table
    is sorted (LC_ALL=C) with unique ids; utt2spk is also sorted by speaker; text, wav.scp (through
    segments' recordings when there is a segments file), feats.scp, vad.scp, utt2dur, utt2num_frames,
    ... have exactly the utterances of utt2spk; speaker tables the speakers of spk2utt; segments,
    utt2dur and utt2num_frames values are well formed. A single speaker, or utterance ids that do not
    start with their speaker id, are only warnings. text, wav.scp and feats.scp are required unless
    --no-text, --no-wav, --no-feats (speaker recognition data dirs usually pass --no-text).

    \b
    Example:
      spkid validate-data-dir --no-text --no-feats data/train
      spkid validate-data-dir --no-text data/train || utils/fix_data_dir.sh data/train
    """
    from spkid.kaldi.validate import check_data_dir

    problems = check_data_dir(data, no_feats=no_feats, no_wav=no_wav, no_text=no_text,
                              no_spk_sort=no_spk_sort)
    errors = [p for p in problems if p.level == "error"]
    for problem in problems:
        click.echo(f"validate-data-dir: {problem}", err=True)
    if errors:
        raise click.ClickException(f"{data}: {len(errors)} problem{'s' if len(errors) > 1 else ''} found")
    click.echo(f"validate-data-dir: successfully validated data directory {data}")
