"""`spkid compute-eer`: equal error rate as Kaldi's compute-eer, and minDCF as sid/compute_min_dcf.py."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import KaldiCommand, config_option

logger = logging.getLogger("spkid.compute-eer")


@click.command(name="compute-eer", cls=KaldiCommand)
@click.argument("scores_in", metavar="<scores-in> [<scores-in2> ...]", nargs=-1, required=True)
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
@click.option("--det-plot", metavar="PNG", default=None,
              help="Draw the DET curve(s) here (normal-deviate axes, EER and minDCF points marked).")
@click.option("--hist-plot", metavar="PNG", default=None,
              help="Draw target/nontarget score histograms here (one panel per system).")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="Name of each system in plots and output (repeat once per <scores-in>; default: file names).")
@config_option
def main(scores_in: tuple[str, ...], trials: str | None, p_targets: tuple[float, ...], c_miss: float,
         c_fa: float, det_plot: str | None, hist_plot: str | None, names: tuple[str, ...]) -> None:
    """Compute the equal error rate (EER, in %) of verification scores, as Kaldi's compute-eer.

    <scores-in> (a file, `-` for stdin, or `cmd |`) has lines `<score> target|nontarget`, as Kaldi's
    compute-eer reads. With --trials it has lines `<enroll> <test> <score>` instead, joined with the
    trials by (enroll, test); every trial needs a score and every score a trial.

    Stdout gets only the EER in percent (4 significant digits, as Kaldi prints it), so
    `eer=$(spkid compute-eer ...)` works as with Kaldi. Stderr gets Kaldi's log line
    `Equal error rate is X%, at threshold Y` and the minDCF at each --p-target, as
    sid/compute_min_dcf.py computes it: `minDCF is D at threshold T (p-target=P, c-miss=M, c-fa=F)`.
    Options also take Kaldi's spelling, e.g. `--p_target=0.01`, and --config.

    Several <scores-in> (systems scored on the same kind of input) give one stdout line each,
    `<EER> <name>`, log lines prefixed by the name, and one DET plot / histogram figure for all.

    \b
    Example:
      paste -d' ' <(awk '{print $3}' exp/scores) <(awk '{print $3}' data/test/trials) | spkid compute-eer -
      spkid compute-eer --trials data/test/trials exp/scores
      eer=$(spkid compute-eer --trials data/test/trials --p-target=0.01 exp/scores 2>/dev/null)
      spkid compute-eer --trials data/test/trials exp/scores_cosine exp/scores_plda \\
          --name cosine --name plda --det-plot exp/det.png --hist-plot exp/hist.png
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

    if names and len(names) != len(scores_in):
        raise SpkidError(f"--name given {len(names)} times for {len(scores_in)} score inputs")
    stdin_inputs = sum(x in ("-", "") for x in scores_in) + (trials in ("-", ""))
    if stdin_inputs > 1:
        if trials in ("-", ""):
            raise SpkidError("--trials and <scores-in> cannot both be stdin ('-')")
        raise SpkidError("only one input can be stdin ('-')")
    trial_labels = read_trials(trials) if trials is not None else None
    multi = len(scores_in) > 1
    systems = []
    for i, source in enumerate(scores_in):
        name = names[i] if names else display_name(source)
        prefix = f"{name}: " if multi else ""
        if trial_labels is not None:
            scores, labels = join_trials(read_scores(source), trial_labels, display_name(source),
                                         display_name(trials))
        else:
            scores, labels = read_labelled_scores(source)

        n_target = int(labels.sum())
        logger.info("%s%d trials: %d target, %d nontarget", prefix, labels.size, n_target,
                    labels.size - n_target)
        eer, threshold = compute_eer(scores[labels], scores[~labels])
        percent = 100.0 * eer  # C++: 100.0 * (BaseFloat) eer, in double
        logger.info("%sEqual error rate is %g%%, at threshold %g", prefix, percent, threshold)
        for p_target in p_targets:
            min_dcf, dcf_threshold = compute_min_dcf(scores, labels, p_target, c_miss, c_fa)
            logger.info("%sminDCF is %.4f at threshold %.4f (p-target=%g, c-miss=%g, c-fa=%g)",
                        prefix, min_dcf, dcf_threshold, p_target, c_miss, c_fa)
        click.echo(f"{percent:.4g} {name}" if multi else f"{percent:.4g}")  # C++ std::cout.precision(4)
        systems.append((name, scores, labels))
    if det_plot or hist_plot:
        from spkid.scoring import plots

        curves = [plots.System(name, scores, labels) for name, scores, labels in systems]
        if det_plot:
            plots.det_plot(curves, det_plot, p_targets[0] if p_targets else None, c_miss=c_miss, c_fa=c_fa)
            logger.info("Wrote DET plot %s", det_plot)
        if hist_plot:
            plots.hist_plot(curves, hist_plot)
            logger.info("Wrote score histograms %s", hist_plot)
