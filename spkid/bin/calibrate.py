"""spkid calibrate: fit a score calibration (logistic regression to LLRs) and a decision threshold."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import KaldiCommand, config_option

logger = logging.getLogger("spkid.calibrate")


@click.command("calibrate", cls=KaldiCommand)
@click.option("--trials", required=True, metavar="TRIALS",
              help="Development trials with labels, `<enroll> <test> target|nontarget`.")
@click.option("--scores", "scores_in", required=True, metavar="SCORES",
              help="Their scores `<enroll> <test> <score>` (from spkid score, without --calibration).")
@click.option("--output", required=True, metavar="JSON", help="Write the calibration here (JSON).")
@click.option("--operating-point", type=click.Choice(["eer", "min-dcf", "bayes"]), default="eer",
              show_default=True, help="Where the decision threshold is taken: the dev list's EER point, its "
              "minDCF point, or the Bayes threshold of the calibrated LLR at --p-target.")
@click.option("--p-target", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01,
              show_default=True, help="Prior of a target trial for the minDCF and Bayes thresholds.")
@click.option("--c-miss", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Cost of a missed target.")
@click.option("--c-fa", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Cost of a false alarm.")
@click.option("--prior", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Effective target prior weighting the logistic-regression objective.")
@click.option("--model", "model_path", default=None, metavar="MODEL",
              help="The model that gave the scores: the sha256 of its checkpoint goes into the file, and verify, "
              "identify and load_model then refuse the calibration with any other model.")
@config_option
def main(trials: str, scores_in: str, output: str, operating_point: str, p_target: float, c_miss: float,
         c_fa: float, prior: float, model_path: str | None) -> None:
    """Fit `llr = scale * score + offset` on labelled dev scores and choose a decision threshold.

    The logistic regression (prior-weighted cross-entropy, as in BOSARIS/Brümmer) turns scores into
    log-likelihood ratios; as an increasing affine map it keeps the EER and minDCF and lowers Cllr.
    The JSON output holds scale, offset, the thresholds at the EER, minDCF and Bayes points, and
    `threshold` (at --operating-point): accept a trial when its raw score >= threshold, or, with
    `spkid score --calibration`, when the calibrated score >= llr_threshold. Stdout gets the threshold.

    \b
    Example:
      spkid calibrate --trials data/dev/trials --scores exp/scores_dev --model exp --output exp/calib.json
      spkid score --trials data/test/trials --enroll scp:test.scp --test scp:test.scp \\
          --calibration exp/calib.json --output exp/scores_test_llr
    """
    from spkid.atomic import check_writable
    from spkid.scoring.calibration import fit_calibration
    from spkid.scoring.metrics import display_name, join_trials, read_scores, read_trials

    check_writable(output, "calibration")
    if model_path is not None:  # before the work: the model exists
        from spkid.inference import describe_model

        describe_model(model_path)

    scores, labels = join_trials(read_scores(scores_in), read_trials(trials), display_name(scores_in),
                                 display_name(trials))
    calib = fit_calibration(scores, labels, operating_point, prior, p_target, c_miss, c_fa)
    if model_path is not None:
        from spkid.inference import fingerprint, resolve_model

        calib.model_sha256 = fingerprint(resolve_model(model_path))
    calib.save(output)
    dev = calib.dev
    logger.info("llr = %.6g * score + %.6g; dev Cllr %.4f -> %.4f (EER %.2f%%, minDCF %.4f at p-target=%g)",
                calib.scale, calib.offset, dev["cllr_raw"], dev["cllr"], 100 * dev["eer"], dev["min_dcf"],
                p_target)
    logger.info("threshold at %s: score >= %.6g (calibrated llr >= %.6g)", operating_point, calib.threshold,
                calib.llr_threshold)
    click.echo(f"{calib.threshold:.7g}")
