"""spkid eval-triplets: Deep Speaker's 1 anchor + 1 positive + 99 negatives test (EER, accuracy, F-measure)."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import KaldiCommand

logger = logging.getLogger("spkid.eval-triplets")


@click.command("eval-triplets", cls=KaldiCommand)
@click.option("--embeddings", "embeddings_spec", required=True, metavar="RSPEC",
              help="Utterance embeddings, e.g. scp:exp/test/xvector.scp.")
@click.option("--utt2spk", required=True, metavar="FILE", help="utt2spk of the utterances to test.")
@click.option("--num-negatives", type=click.IntRange(1), default=99, show_default=True,
              help="Negatives per anchor (utterances of randomly drawn other speakers).")
@click.option("--anchors-per-speaker", type=click.IntRange(1), default=1, show_default=True,
              help="Anchor/positive sets per speaker (philipperemy/deep-speaker draws 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the draws.")
@click.option("--scores-out", default=None, metavar="FILE",
              help="Also write the scored pairs as `<anchor> <other> <score>` lines (and FILE.trials).")
def main(embeddings_spec: str, utt2spk: str, num_negatives: int, anchors_per_speaker: int, seed: int,
         scores_out: str | None) -> None:
    """Deep Speaker's 1 anchor + 1 positive + 99 negatives test: EER, accuracy, F-measure.

    Each speaker's anchor is scored (cosine) against a positive and --num-negatives negatives, and the
    metrics are those of philipperemy/deep-speaker's test: EER = (FRR + FAR) / 2 where they are closest over
    thresholds 0..0.999, and the F-measure, recall and accuracy at the best-F-measure threshold; plus
    Kaldi's EER of the same scores. Prints one line of key=value (fractions) on stdout.

    \b
    Example:
      spkid extract-embeddings --model exp/ds_triplet --data data/test --output ark,scp:emb.ark,emb.scp
      spkid eval-triplets --embeddings scp:emb.scp --utt2spk data/test/utt2spk --num-negatives 99
    """
    from spkid.kaldi.tables import read_text_table
    from spkid.scoring.deepspeaker_eval import deepspeaker_metrics, sample_verification_sets, verification_scores
    from spkid.scoring.embeddings import load_embeddings

    table = read_text_table(utt2spk)
    emb = load_embeddings(embeddings_spec)
    present = {u: s for u, s in table.items() if u in emb.index}
    if len(present) < len(table):
        logger.warning("%d of %d utterances in %s have no embedding; testing the others", len(table) - len(present),
                       len(table), utt2spk)
    sets = sample_verification_sets(present, num_negatives, seed, anchors_per_speaker)
    scores = verification_scores(emb, sets)
    metrics = deepspeaker_metrics(scores)
    if scores_out:
        from spkid.atomic import atomic_write_text
        from spkid.scoring.embeddings import format_score

        pairs = [(s.anchor, o, j == 0) for s in sets for j, o in enumerate([s.positive, *s.negatives])]
        flat = scores.ravel().tolist()
        atomic_write_text(scores_out, "".join(f"{a} {o} {format_score(x)}\n" for (a, o, _), x in zip(pairs, flat)))
        atomic_write_text(scores_out + ".trials", "".join(f"{a} {o} {'target' if t else 'nontarget'}\n"
                                                           for a, o, t in pairs))
    logger.info("%d sets of 1 anchor + 1 positive + %d negatives over %d speakers", len(sets), num_negatives,
                len(set(present.values())))
    click.echo(" ".join(f"{k}={v:.4f}" if k != "sets" else f"{k}={int(v)}" for k, v in metrics.items()))
