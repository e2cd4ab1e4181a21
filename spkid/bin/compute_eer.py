"""`spkid compute-eer`: equal error rate as Kaldi's compute-eer, and minDCF as sid/compute_min_dcf.py."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import KaldiCommand, config_option

logger = logging.getLogger("spkid.compute-eer")


@click.command(name="compute-eer", cls=KaldiCommand)
@click.argument("scores_in", metavar="<scores-in>")
@click.option("--trials", metavar="TRIALS", default=None,
              help="Trials `<enroll> <test> target|nontarget`; <scores-in> then has "
              "`<enroll> <test> <score>`.")
@click.option("--p-target", "p_targets", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              multiple=True, default=(0.01, 0.05), show_default=True,
              help="Prior of a target trial for minDCF (repeatable).")
@click.option("--c-miss", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Cost of a missed target for minDCF.")
@click.option("--c-fa", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Cost of a false alarm for minDCF.")
@config_option
def main(scores_in: str, trials: str | None, p_targets: tuple[float, ...], c_miss: float,
         c_fa: float) -> None:
    """Compute the equal error rate (EER, in %) of verification scores, as Kaldi's compute-eer.

    <scores-in> (a file, `-` for stdin, or `cmd |`) has lines `<score> target|nontarget`, as Kaldi's
    compute-eer reads. With --trials it has lines `<enroll> <test> <score>` instead, joined with the
    trials by (enroll, test); every trial needs a score and every score a trial.

    Stdout gets only the EER in percent (4 significant digits, as Kaldi prints it), so
    `eer=$(spkid compute-eer ...)` works as with Kaldi. Stderr gets Kaldi's log line
    `Equal error rate is X%, at threshold Y` and the minDCF at each --p-target, as
    sid/compute_min_dcf.py computes it: `minDCF is D at threshold T (p-target=P, c-miss=M, c-fa=F)`.
    Options also take Kaldi's spelling, e.g. `--p_target=0.01`, and --config.

    \b
    Example:
      paste -d' ' <(awk '{print $3}' exp/scores) <(awk '{print $3}' data/test/trials) | spkid compute-eer -
      spkid compute-eer --trials data/test/trials exp/scores
      eer=$(spkid compute-eer --trials data/test/trials --p-target=0.01 exp/scores 2>/dev/null)
    """
    from spkid.errors import SpkidError
    from spkid.scoring.metrics import (
        compute_eer,
        compute_min_dcf,
        display_name,
        join_trials,
        read_labelled_scores,
        read_scores,
        read_trials,
    )

    if trials is not None:
        if trials in ("-", "") and scores_in in ("-", ""):
            raise SpkidError("--trials and <scores-in> cannot both be stdin ('-')")
        trial_labels = read_trials(trials)
        scores, labels = join_trials(read_scores(scores_in), trial_labels,
                                     display_name(scores_in), display_name(trials))
    else:
        scores, labels = read_labelled_scores(scores_in)

    n_target = int(labels.sum())
    logger.info("%d trials: %d target, %d nontarget", labels.size, n_target, labels.size - n_target)
    eer, threshold = compute_eer(scores[labels], scores[~labels])
    percent = 100.0 * eer  # C++: 100.0 * (BaseFloat) eer, in double
    logger.info("Equal error rate is %g%%, at threshold %g", percent, threshold)
    for p_target in p_targets:
        min_dcf, dcf_threshold = compute_min_dcf(scores, labels, p_target, c_miss, c_fa)
        logger.info("minDCF is %.4f at threshold %.4f (p-target=%g, c-miss=%g, c-fa=%g)",
                    min_dcf, dcf_threshold, p_target, c_miss, c_fa)
    click.echo(f"{percent:.4g}")  # C++ std::cout.precision(4)
