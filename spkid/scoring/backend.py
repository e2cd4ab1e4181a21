"""The scoring back-end: the model file of `spkid train-plda`, embedding pre-processing and trial scoring.

Pre-processing follows Kaldi's x-vector recipes (egs/voxceleb/v2): subtract the training mean
(`ivector-subtract-global-mean mean.vec`), apply the LDA (`transform-vec transform.mat`), normalise the
length to sqrt(dim) (`ivector-normalize-length`), then score with PLDA (`ivector-plda-scoring`) or cosine.

Model file (`.npz`, numpy arrays, no pickles), format `spkid-plda-1`:

  format        'spkid-plda-1'
  mean          (D,)       training mean, subtracted first (Kaldi's mean.vec)
  lda           (K, D+1)   affine LDA as Kaldi's transform.mat, or shape (0, 0) when none
  length_norm   ()  bool   length-normalise to sqrt(K) after the LDA
  plda_mean, plda_transform, plda_psi   (K,), (K, K), (K,)   Kaldi's Plda (mean_, transform_, psi_)
  within_var, between_var               (K, K)   the EM estimates before diagonalisation
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spkid.errors import SpkidError
from spkid.scoring.embeddings import Embeddings, check_same_dim, check_trial_keys, first_few
from spkid.scoring.lda import apply_affine, compute_lda, normalize_length
from spkid.scoring.metrics import TrialList
from spkid.scoring.plda import Plda, is_kaldi_plda, read_kaldi_plda, train_plda

logger = logging.getLogger("spkid.scoring")

FORMAT = "spkid-plda-1"


@dataclass
class BackendModel:
    """Pre-processing (mean, LDA, length norm) and an optional PLDA model."""

    mean: np.ndarray | None = None
    lda: np.ndarray | None = None
    length_norm: bool = False
    plda: Plda | None = None
    within_var: np.ndarray | None = None
    between_var: np.ndarray | None = None

    def preprocess(self, x: np.ndarray) -> np.ndarray:
        """Mean subtraction, LDA and length normalisation of rows of `x`, each in float as Kaldi's
        ivector-subtract-global-mean, transform-vec and ivector-normalize-length (float tables between
        them); float32 values returned as float64."""
        y = np.asarray(x, dtype=np.float32)
        if self.mean is not None:
            if self.mean.size != y.shape[1]:
                raise SpkidError(f"embeddings of dimension {y.shape[1]} do not match the mean "
                                 f"(dimension {self.mean.size})")
            y = y - self.mean.astype(np.float32)
        if self.lda is not None:
            y = apply_affine(self.lda, y)
        if self.length_norm:
            y = normalize_length(y)
        return y.astype(np.float64)

    def save(self, path: str) -> None:
        """Write the .npz model file (format in the module docstring), atomically."""
        from spkid.atomic import commit, discard, open_temp

        if self.plda is None:
            raise SpkidError("no PLDA model to save")
        dim = self.plda.dim
        arrays = {
            "format": np.array(FORMAT),
            "mean": self.mean if self.mean is not None else np.zeros(0),
            "lda": self.lda if self.lda is not None else np.zeros((0, 0)),
            "length_norm": np.array(self.length_norm),
            "plda_mean": self.plda.mean, "plda_transform": self.plda.transform, "plda_psi": self.plda.psi,
            "within_var": self.within_var if self.within_var is not None else np.zeros((0, dim)),
            "between_var": self.between_var if self.between_var is not None else np.zeros((0, dim)),
        }
        handle, tmp = open_temp(path, "wb")
        try:
            with handle:
                np.savez(handle, **arrays)
            commit(tmp, path)
        except BaseException:
            discard(tmp)
            raise

    @classmethod
    def load(cls, path: str) -> BackendModel:
        """Load a spkid .npz model, or Kaldi's binary Plda file (pre-processing then: length norm only)."""
        if is_kaldi_plda(path):
            return cls(length_norm=True, plda=read_kaldi_plda(path))
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except OSError as err:
            raise SpkidError(f"{path}: cannot read model ({err})") from None
        except ValueError as err:
            raise SpkidError(f"{path}: not a spkid model file ({err})") from None
        if str(arrays.get("format", "")) != FORMAT:
            raise SpkidError(f"{path}: not a spkid PLDA model (format {FORMAT}) nor a Kaldi binary Plda")

        def optional(name: str) -> np.ndarray | None:
            arr = arrays.get(name)
            return None if arr is None or arr.size == 0 else arr.astype(np.float64)

        plda = Plda(arrays["plda_mean"].astype(np.float64), arrays["plda_transform"].astype(np.float64),
                    arrays["plda_psi"].astype(np.float64))
        return cls(optional("mean"), optional("lda"), bool(arrays["length_norm"]), plda,
                   optional("within_var"), optional("between_var"))


def train_backend(x: np.ndarray, labels: Sequence[str], lda_dim: int | None = None, length_norm: bool = True,
                  num_em_iters: int = 10, total_covariance_factor: float = 0.0,
                  covariance_floor: float = 1e-6) -> tuple[BackendModel, list[float]]:
    """Kaldi's recipe: mean.vec, optional ivector-compute-lda, ivector-normalize-length, ivector-compute-plda.

    Returns the model and the EM objective per iteration.
    """
    x = np.asarray(x, dtype=np.float64)
    labels = list(labels)
    n_spk = len(set(labels))
    if n_spk < 2:
        raise SpkidError(f"PLDA needs at least 2 speakers; all {len(labels)} embeddings are of speaker "
                         f"'{labels[0]}' (the between-speaker covariance cannot be estimated)")
    if n_spk == len(labels):
        raise SpkidError(f"No speakers with multiple utterances, unable to estimate PLDA (each of the {n_spk} "
                         "speakers has one utterance)")
    model = BackendModel(mean=x.mean(axis=0), length_norm=length_norm)
    centered = x - model.mean
    if lda_dim:
        model.lda = compute_lda(centered, labels, lda_dim, total_covariance_factor, covariance_floor)
    y = model.preprocess(x)
    estimate = train_plda(y, labels, num_em_iters)
    model.plda, model.within_var, model.between_var = estimate.plda, estimate.within_var, estimate.between_var
    return model, estimate.objf


def check_nonzero(emb: Embeddings, keys: Sequence[str]) -> None:
    """Error naming the zero embeddings among `keys` (they have no direction to score)."""
    zero = [k for k in keys if not emb.matrix[emb.index[k]].any()]
    if zero:
        raise SpkidError(f"{emb.source}: {len(zero)} zero embeddings cannot be scored: {first_few(zero)}")


def _unique(keys: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Unique keys in first-seen order, and the position of each input key among them."""
    uniq = list(dict.fromkeys(keys))
    pos = {k: i for i, k in enumerate(uniq)}
    return uniq, np.fromiter((pos[k] for k in keys), dtype=np.int64, count=len(keys))


def score_trials(trials: TrialList, enroll: Embeddings, test: Embeddings, scorer, model: BackendModel,
                 enroll_counts: dict[str, int] | None = None, cohort: Embeddings | None = None,
                 norm: str = "none", top_n: int = 300, trials_name: str = "trials") -> np.ndarray:
    """Scores of `trials` in order (float64), optionally S-norm/AS-norm normalised with `cohort`."""
    from spkid.scoring import norm as score_norm

    check_trial_keys(trials, enroll, test, trials_name)
    sets = [(enroll.source, enroll.dim), (test.source, test.dim)]
    check_same_dim(*sets, *([(cohort.source, cohort.dim)] if cohort is not None else []))
    e_keys, ei = _unique(trials.enroll)
    t_keys, ti = _unique(trials.test)
    for emb, keys in ((enroll, e_keys), (test, t_keys), *([(cohort, cohort.keys)] if cohort is not None else [])):
        check_nonzero(emb, keys)
    counts = None
    if enroll_counts is not None:
        absent = [k for k in e_keys if k not in enroll_counts]
        if absent:
            raise SpkidError(f"{len(absent)} enroll models have no number of utterances: "
                             + ", ".join(absent[:5]))
        counts = np.array([enroll_counts[k] for k in e_keys], dtype=np.float64)
    e_rep = scorer.enroll(model.preprocess(enroll.matrix[enroll.rows(e_keys)]), counts)
    t_rep = scorer.test(model.preprocess(test.matrix[test.rows(t_keys)]))
    logger.info("scoring %d trials (%d enroll models, %d test utterances) with %s", len(trials),
                len(e_keys), len(t_keys), scorer.name)
    scores = scorer.pairs(e_rep, t_rep, ei, ti)
    if norm == "none":
        return scores
    if cohort is None:
        raise SpkidError(f"--norm {norm} needs a --cohort")
    keep = score_norm.check_method(norm, top_n, len(cohort))
    c_mat = model.preprocess(cohort.matrix)
    c_as_test, c_as_enroll = scorer.test(c_mat), scorer.enroll(c_mat, None)
    from spkid.scoring.scorers import take

    e_mean, e_std = score_norm.cohort_stats(lambda sl: scorer.matrix(take(e_rep, sl), c_as_test),
                                            len(e_keys), keep)
    t_mean, t_std = score_norm.cohort_stats(lambda sl: scorer.matrix(c_as_enroll, take(t_rep, sl)).T,
                                            len(t_keys), keep)
    logger.info("%s with %d cohort embeddings (top %s)", norm, len(cohort), keep or "all")
    return score_norm.normalize(scores, e_mean[ei], e_std[ei], t_mean[ti], t_std[ti])
