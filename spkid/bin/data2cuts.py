"""spkid data2cuts: a Kaldi data dir -> a lhotse CutSet manifest (one cut per utterance)."""
from __future__ import annotations

import click


@click.command("data2cuts")
@click.argument("data_dir", metavar="DATA_DIR")
@click.argument("cuts", metavar="CUTS")
@click.option("--sampling-rate", type=click.IntRange(min=1), default=None, metavar="HZ",
              help="Resample cuts of other rates to HZ (lhotse resamples on loading).")
def main(data_dir: str, cuts: str, sampling_rate: int | None) -> None:
    """Write the utterances of a Kaldi data dir as a lhotse CutSet (e.g. cuts.jsonl.gz).

    Reads wav.scp (paths or `cmd |` pipes), utt2spk and segments when present; each cut is named after
    its utterance and its supervision carries the speaker. The data dir is validated first; the
    manifest is written under a temporary name and renamed when complete.

    \b
    Example:
      spkid data2cuts data/train data/manifests/train_cuts.jsonl.gz
    """
    from spkid.data.lhotse_bridge import data_dir_to_cuts
    from spkid.kaldi.validate import validate_data_dir
    from spkid.recipes.common import write_manifest

    validate_data_dir(data_dir, no_feats=True, no_text=True)
    cut_set = data_dir_to_cuts(data_dir, sampling_rate=sampling_rate)
    write_manifest(cut_set, cuts)
    click.echo(f"wrote {cuts} ({len(cut_set)} cuts)", err=True)
