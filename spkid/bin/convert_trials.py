"""spkid convert-trials: VoxCeleb trial lists -> Kaldi trials in the ids of `spkid prepare`."""
from __future__ import annotations

import click


@click.command("convert-trials")
@click.argument("trial_list", metavar="LIST")
@click.argument("trials", metavar="TRIALS")
@click.option("--corpus", type=click.Choice(["voxceleb1", "voxceleb2"]), default="voxceleb1", show_default=True,
              help="The corpus whose `spkid prepare` ids the trials use.")
@click.option("--data", "data_dir", default=None, metavar="DIR",
              help="Check that every trial utterance is in DIR/utt2spk.")
def main(trial_list: str, trials: str, corpus: str, data_dir: str | None) -> None:
    """Convert a VoxCeleb trial list to Kaldi trials `<enroll> <test> target|nontarget`.

    LIST has lines `1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav` (1: same speaker,
    0: not), as Vox1-O cleaned (veri_test2.txt), Vox1-E (list_test_all2.txt) and Vox1-H
    (list_test_hard2.txt). The output keeps LIST's order and uses the utterance ids of
    `spkid prepare voxceleb1` (voxceleb1_id10270-x6uYqmx31kE-00001).

    \b
    Example:
      spkid convert-trials --data data/voxceleb1 /corpora/VoxCeleb1/list_test_hard2.txt data/voxceleb1/trials_vox1_h
    """
    from spkid.recipes.trials import convert_voxceleb_trials

    counts = convert_voxceleb_trials(trial_list, trials, corpus=corpus, data_dir=data_dir)
    click.echo(f"wrote {trials}: {counts['target']} target, {counts['nontarget']} nontarget trials", err=True)
