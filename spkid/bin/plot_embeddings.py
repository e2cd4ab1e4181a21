"""spkid plot-embeddings: a t-SNE map of embeddings coloured by speaker."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import KaldiCommand, config_option

logger = logging.getLogger("spkid.plot-embeddings")


@click.command("plot-embeddings", cls=KaldiCommand)
@click.option("--embeddings", "spec", required=True, metavar="RSPEC", help="Embeddings, e.g. scp:xvector.scp.")
@click.option("--utt2spk", required=True, metavar="FILE", help="Speaker of each utterance (colours).")
@click.option("--output", required=True, metavar="PNG", help="Image to write (png, pdf or svg).")
@click.option("--max-speakers", type=click.IntRange(1), default=20, show_default=True,
              help="Plot at most this many speakers (the first in sorted order).")
@click.option("--max-utts-per-spk", type=click.IntRange(1), default=50, show_default=True,
              help="Plot at most this many utterances of each speaker.")
@click.option("--perplexity", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="t-SNE perplexity (capped for small sets).")
@click.option("--seed", type=int, default=0, show_default=True, help="t-SNE random seed.")
@config_option
def main(spec: str, utt2spk: str, output: str, max_speakers: int, max_utts_per_spk: int, perplexity: float,
         seed: int) -> None:
    """Plot a 2-D t-SNE (scikit-learn) of length-normalised embeddings, one colour per speaker.

    Utterances without a speaker in --utt2spk are left out; speakers are taken in sorted order
    (LC_ALL=C) up to --max-speakers, each with up to --max-utts-per-spk utterances.

    \b
    Example:
      spkid plot-embeddings --embeddings scp:exp/test/xvector.scp --utt2spk data/test/utt2spk \\
          --output exp/test/tsne.png
    """
    from spkid.errors import SpkidError
    from spkid.kaldi.tables import c_sorted, read_text_table
    from spkid.scoring.embeddings import load_embeddings
    from spkid.scoring.plots import tsne_plot

    spk_of = read_text_table(utt2spk)
    emb = load_embeddings(spec)
    by_spk: dict[str, list[str]] = {}
    for key in emb.keys:
        if key in spk_of:
            by_spk.setdefault(spk_of[key], []).append(key)
    if not by_spk:
        raise SpkidError(f"no embedding in {spec} has a speaker in {utt2spk}")
    speakers = c_sorted(by_spk)[:max_speakers]
    keys = [k for s in speakers for k in by_spk[s][:max_utts_per_spk]]
    x = emb.matrix[emb.rows(keys)]
    tsne_plot(x, [spk_of[k] for k in keys], output, perplexity, seed)
    logger.info("Wrote t-SNE of %d embeddings (%d speakers) to %s", len(keys), len(speakers), output)
