"""spkid score: score verification trials with cosine or PLDA, optional S-norm/AS-norm and calibration."""
from __future__ import annotations

import logging

import click

from spkid.bin.options import KALDI_BOOL, KaldiCommand, config_option

logger = logging.getLogger("spkid.score")


def _is_npz(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == b"PK"
    except OSError:
        return False


@click.command("score", cls=KaldiCommand)
@click.option("--trials", required=True, metavar="TRIALS",
              help="Trials `<enroll> <test> [target|nontarget]` (file, `-` or `cmd |`); scored in this order.")
@click.option("--enroll", "enroll_spec", default=None, metavar="RSPEC",
              help="Enrollment embeddings, keyed by the trials' first field (or utterances, with --enroll-spk2utt). "
              "Required, except with --fuse.")
@click.option("--test", "test_spec", default=None, metavar="RSPEC",
              help="Test embeddings (required, except with --fuse).")
@click.option("--output", default="-", show_default=True, metavar="SCORES",
              help="Write `<enroll> <test> <score>` lines here (`-`: stdout).")
@click.option("--backend", type=click.Choice(["cosine", "plda"]), default=None,
              help="Scoring back-end [default: plda with --plda, else cosine].")
@click.option("--plda", "plda_model", default=None, metavar="MODEL",
              help="PLDA model: a .npz from `spkid train-plda` (with its mean and LDA) or Kaldi's binary plda.")
@click.option("--lda", "lda_model", default=None, metavar="MODEL",
              help="LDA from a `spkid train-plda --lda-dim` model (with its mean) or Kaldi's transform.mat.")
@click.option("--mean", "mean_spec", default=None, metavar="RSPEC|FILE",
              help="Subtract this mean first: a vector file (mean.vec) or the mean of an rspecifier's table. "
              "Overrides the model's mean.")
@click.option("--enroll-spk2utt", default=None, metavar="FILE",
              help="Enroll models from several utterances: average the --enroll utterance embeddings per "
              "model (ivector-mean) and score PLDA with the number of utterances.")
@click.option("--num-utts", default=None, metavar="RSPEC",
              help="Number of utterances per enroll model, for PLDA on pre-averaged models "
              "(e.g. ark:num_utts.ark from mean-embeddings).")
@click.option("--normalize-length", type=KALDI_BOOL, default=True, show_default=True,
              help="PLDA: normalise the length inside PLDA scoring (Kaldi's PldaConfig).")
@click.option("--simple-length-normalization", "simple_length_norm", type=KALDI_BOOL, default=False,
              show_default=True, help="PLDA: normalise to length sqrt(dim) instead of Kaldi's default.")
@click.option("--norm", type=click.Choice(["none", "snorm", "asnorm"]), default="none", show_default=True,
              help="Score normalisation with --cohort (as WeSpeaker's score_norm.py).")
@click.option("--cohort", "cohort_spec", default=None, metavar="RSPEC",
              help="Cohort embeddings for --norm (e.g. training speaker means).")
@click.option("--top-n", type=click.IntRange(1), default=300, show_default=True,
              help="AS-norm: number of highest cohort scores used.")
@click.option("--calibration", default=None, metavar="FILE",
              help="Apply a calibration from `spkid calibrate`: output log-likelihood ratios.")
@click.option("--fuse", "fuse_scores", multiple=True, metavar="SCORES",
              help="Instead of embeddings: fuse the `<enroll> <test> <score>` files of 2+ systems on --trials "
              "(repeat once per system, e.g. a ResCNN and a GRU).")
@click.option("--fusion", type=click.Choice(["mean-z", "logistic"]), default="mean-z", show_default=True,
              help="--fuse method: mean of z-normalised scores, or logistic regression trained on --fusion-dev.")
@click.option("--fusion-dev-trials", default=None, metavar="TRIALS",
              help="Labelled development trials for --fusion-dev (z-norm statistics, or logistic training).")
@click.option("--fusion-dev", "fusion_dev", multiple=True, metavar="SCORES",
              help="Each --fuse system's scores on --fusion-dev-trials, in the same order.")
@config_option
def main(trials: str, enroll_spec: str | None, test_spec: str | None, output: str, backend: str | None,
         plda_model: str | None, lda_model: str | None, mean_spec: str | None, enroll_spk2utt: str | None,
         num_utts: str | None, normalize_length: bool, simple_length_norm: bool, norm: str,
         cohort_spec: str | None, top_n: int, calibration: str | None, fuse_scores: tuple[str, ...] = (),
         fusion: str = "mean-z", fusion_dev_trials: str | None = None, fusion_dev: tuple[str, ...] = ()) -> None:
    """Score trials: cosine (after optional mean subtraction and LDA) or PLDA as ivector-plda-scoring.

    Embeddings are pre-processed as in Kaldi's x-vector recipes: subtract the training mean, apply the
    LDA, length-normalise, then score. With --plda MODEL.npz the model brings its mean and LDA; with
    Kaldi's binary plda give them with --mean mean.vec --lda transform.mat. The cosine back-end uses
    the mean and LDA given, if any. Enroll models with several utterances: --enroll-spk2utt (from
    utterance embeddings) or --num-utts (models already averaged by mean-embeddings). Every trial
    needs both embeddings: missing ones are an error listing how many and the first few.
    Scores are written in trial order, as Kaldi writes them (precision 7).

    Score fusion (--fuse A --fuse B ...): the systems' score files on --trials are combined, by default
    as the mean of z-normalised scores (statistics from --fusion-dev scores when given, else from the
    fused scores themselves), or with --fusion logistic by linear logistic regression trained on
    --fusion-dev-trials (each system's --fusion-dev scores in the same order; LLR output).

    \b
    Example:
      spkid score --trials data/test/trials --enroll scp:exp/test/xvector.scp \\
          --test scp:exp/test/xvector.scp --mean exp/train/mean.vec --output exp/scores_cosine
      spkid score --trials trials --enroll scp:enroll/xvector.scp --enroll-spk2utt data/enroll/spk2utt \\
          --test scp:test/xvector.scp --plda exp/train/plda.npz --norm asnorm \\
          --cohort ark:exp/train/spk_xvector.ark --top-n 300 --output exp/scores_plda_asnorm
      spkid score --trials data/test/trials --fuse exp/scores_rescnn --fuse exp/scores_gru \\
          --output exp/scores_fused
    """
    from spkid.atomic import check_writable
    from spkid.errors import SpkidError
    from spkid.scoring.backend import BackendModel, score_trials
    from spkid.scoring.calibration import Calibration
    from spkid.scoring.embeddings import (
        load_embeddings,
        load_mean,
        read_int_table,
        read_spk2utt,
        speaker_means,
    )
    from spkid.scoring.lda import read_kaldi_matrix
    from spkid.scoring.metrics import display_name, read_trial_list
    from spkid.scoring.plda import PldaConfig
    from spkid.scoring.scorers import CosineScorer, PldaScorer

    check_writable(output, "scores")
    if fuse_scores or fusion_dev or fusion_dev_trials:
        used = [name for name, value in (("--enroll", enroll_spec), ("--test", test_spec), ("--plda", plda_model),
                                         ("--lda", lda_model), ("--mean", mean_spec), ("--cohort", cohort_spec),
                                         ("--enroll-spk2utt", enroll_spk2utt), ("--num-utts", num_utts)) if value]
        if used:
            raise click.UsageError(f"--fuse combines score files; {', '.join(used)} belong to each system's own "
                                   "`spkid score`")
        _fuse(trials, fuse_scores, fusion, fusion_dev_trials, fusion_dev, calibration, output)
        return
    for name, value in (("--enroll", enroll_spec), ("--test", test_spec)):
        if value is None:
            raise click.UsageError(f"Missing option '{name}' (or score fusion with --fuse).")
    backend = backend or ("plda" if plda_model else "cosine")
    if backend == "plda" and not plda_model:
        raise SpkidError("--backend plda needs --plda MODEL (from spkid train-plda)")
    if backend == "cosine" and plda_model:
        raise SpkidError("--plda is for --backend plda; for cosine after a model's LDA use --lda MODEL")
    if norm != "none" and not cohort_spec:
        raise SpkidError(f"--norm {norm} needs --cohort RSPEC")
    if enroll_spk2utt and num_utts:
        raise SpkidError("give --enroll-spk2utt or --num-utts, not both")
    calib = Calibration.load(calibration) if calibration else None

    model = BackendModel.load(plda_model) if plda_model else BackendModel()
    if lda_model:
        if _is_npz(lda_model):
            lda_source = BackendModel.load(lda_model)
            if lda_source.lda is None:
                raise SpkidError(f"{lda_model}: the model has no LDA (trained without --lda-dim)")
            model.lda = lda_source.lda
            model.mean = model.mean if model.mean is not None else lda_source.mean
        else:
            model.lda = read_kaldi_matrix(lda_model)
    if mean_spec:
        model.mean = load_mean(mean_spec)
    if plda_model and model.mean is None:
        logger.warning("%s has no training mean: give --mean mean.vec (and --lda transform.mat) as Kaldi's "
                       "recipe subtracts it before length normalisation", plda_model)
    if backend == "cosine":
        model.length_norm = False  # cosine normalises the length itself
        scorer = CosineScorer()
    else:
        scorer = PldaScorer(model.plda, PldaConfig(normalize_length, simple_length_norm))

    trial_list = read_trial_list(trials)
    enroll = load_embeddings(enroll_spec)
    test = enroll if test_spec == enroll_spec else load_embeddings(test_spec)
    counts = None
    if enroll_spk2utt:
        enroll, counts = speaker_means(enroll, read_spk2utt(enroll_spk2utt), strict=True)
    elif num_utts:
        counts = read_int_table(num_utts)
    cohort = None
    if cohort_spec:
        cohort = test if cohort_spec == test_spec else load_embeddings(cohort_spec)
    scores = score_trials(trial_list, enroll, test, scorer, model, counts, cohort, norm, top_n,
                          display_name(trials))
    if calib is not None:
        scores = calib.apply(scores)
    _write_scores(trial_list, scores, output)
    logger.info("Scored %d trials: mean score %g, standard deviation %g", len(scores), scores.mean(),
                scores.std())


def _write_scores(trial_list, scores, output: str) -> None:
    """`enroll test score` lines in trial order (Kaldi's precision), to stdout (`-`) or atomically to a file."""
    from spkid.atomic import atomic_write_text
    from spkid.scoring.embeddings import format_score

    lines = "".join(f"{e} {t} {format_score(s)}\n" for e, t, s in zip(trial_list.enroll, trial_list.test,
                                                                       scores.tolist()))
    if output == "-":
        click.echo(lines, nl=False)
    else:
        atomic_write_text(output, lines)


def _fuse(trials: str, fuse_scores: tuple[str, ...], method: str, dev_trials: str | None, dev_scores: tuple[str, ...],
          calibration: str | None, output: str) -> None:
    """`--fuse`: fuse the score files of several systems on the same trials (spkid.scoring.fusion)."""
    from spkid.errors import SpkidError
    from spkid.scoring.calibration import Calibration
    from spkid.scoring.fusion import aligned_scores, fuse
    from spkid.scoring.metrics import display_name, read_scores, read_trial_list

    if len(fuse_scores) < 2:
        raise SpkidError(f"--fuse needs the scores of at least 2 systems, got {len(fuse_scores)}")
    if bool(dev_trials) != bool(dev_scores):
        raise SpkidError("--fusion-dev-trials and --fusion-dev go together")
    if dev_scores and len(dev_scores) != len(fuse_scores):
        raise SpkidError(f"--fusion-dev given {len(dev_scores)} times for {len(fuse_scores)} --fuse systems")
    trial_list = read_trial_list(trials)
    systems = [aligned_scores(trial_list.enroll, trial_list.test, read_scores(f), display_name(f),
                              display_name(trials)) for f in fuse_scores]
    dev_systems = dev_labels = None
    if dev_trials:
        dev_list = read_trial_list(dev_trials)
        if dev_list.labels is None:
            raise SpkidError(f"{display_name(dev_trials)}: development trials need target/nontarget labels")
        dev_systems = [aligned_scores(dev_list.enroll, dev_list.test, read_scores(f), display_name(f),
                                      display_name(dev_trials)) for f in dev_scores]
        dev_labels = dev_list.labels
    scores = fuse(systems, method, dev_systems, dev_labels)
    if calibration:
        scores = Calibration.load(calibration).apply(scores)
    _write_scores(trial_list, scores, output)
    logger.info("Fused %d systems (%s) over %d trials", len(systems), method, len(scores))
