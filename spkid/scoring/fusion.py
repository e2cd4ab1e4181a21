"""Score-level fusion of several systems scored on the same trials (e.g. Deep Speaker's ResCNN + GRU).

Two methods (`spkid score --fuse A --fuse B ...`):

- `mean-z` (default; the Deep Speaker paper averages the systems' scores): each system's scores are
  z-normalised -- with the mean and standard deviation of its scores on a development list when one is
  given, else of its own scores on the trials being fused (which needs no labels) -- then averaged, with
  equal weights unless weights are given.
- `logistic`: linear logistic-regression fusion trained on a labelled development list (Brümmer's
  FoCal-style fusion, the multi-system form of spkid.scoring.calibration.fit_logistic): fused score =
  offset + sum_i w_i s_i, with weights minimising the prior-weighted cross-entropy; the output is a
  log-likelihood ratio.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from spkid.errors import SpkidError

METHODS = ("mean-z", "logistic")


def aligned_scores(enroll: Sequence[str], test: Sequence[str], table, scores_name: str = "scores",
                   trials_name: str = "trials") -> np.ndarray:
    """The scores of a ScoreTable (spkid.scoring.metrics.read_scores) in the order of the trials. A pair
    scored more often than the trials list it is an error naming the file and line (as in compute-eer)."""
    from collections import Counter

    from spkid.errors import where
    from spkid.scoring.embeddings import first_few

    listed = Counter(zip(enroll, test))
    lines = table.linenos or list(range(1, len(table.scores) + 1))
    by_pair: dict[tuple[str, str], list[float]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for pair, score, line in zip(zip(table.enroll, table.test), table.scores.tolist(), lines):
        got = by_pair.setdefault(pair, [])
        first_line.setdefault(pair, line)
        if len(got) >= max(1, listed[pair]):
            times = listed[pair]
            raise SpkidError(f"{where(scores_name, line)}: trial '{pair[0]} {pair[1]}' is scored again (first at "
                             f"line {first_line[pair]}) but {trials_name} lists it "
                             f"{'once' if times <= 1 else f'{times} times'}; each trial needs one score")
        got.append(score)
    missing = [f"{e} {t}" for e, t in zip(enroll, test) if (e, t) not in by_pair]
    if missing:
        raise SpkidError(f"{scores_name}: {len(missing)} of {len(enroll)} trials of {trials_name} have no score "
                         f"({first_few(missing)})")
    used: Counter = Counter()
    out = []
    for pair in zip(enroll, test):  # a trial listed k times takes the pair's scores in file order
        got = by_pair[pair]
        out.append(got[min(used[pair], len(got) - 1)])
        used[pair] += 1
    return np.array(out, dtype=np.float64)


def _check_systems(systems: Sequence[np.ndarray]) -> np.ndarray:
    if len(systems) < 2:
        raise SpkidError(f"fusion needs at least 2 systems, got {len(systems)}")
    sizes = {len(s) for s in systems}
    if len(sizes) != 1:
        raise SpkidError(f"fusion: systems have different numbers of scores ({sorted(sizes)})")
    return np.stack([np.asarray(s, dtype=np.float64) for s in systems], axis=1)   # (trials, systems)


def zscore_fusion(systems: Sequence[np.ndarray], stats_from: Sequence[np.ndarray] | None = None,
                  weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of z-normalised system scores (statistics from `stats_from`, else the scores)."""
    x = _check_systems(systems)
    ref = x if stats_from is None else _check_systems(stats_from)
    if ref.shape[1] != x.shape[1]:
        raise SpkidError(f"fusion: {x.shape[1]} systems but development scores of {ref.shape[1]}")
    mean, std = ref.mean(axis=0), ref.std(axis=0)
    if (std <= 0).any():
        raise SpkidError(f"fusion: system {int(np.argmin(std)) + 1} has constant scores (no spread to normalise)")
    w = np.full(x.shape[1], 1.0 / x.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (x.shape[1],):
        raise SpkidError(f"fusion: {len(w)} weights for {x.shape[1]} systems")
    return ((x - mean) / std) @ w


def fit_logistic_fusion(systems: Sequence[np.ndarray], labels: np.ndarray, prior: float = 0.5
                        ) -> tuple[np.ndarray, float]:
    """(weights, offset) of the linear fusion `offset + scores @ weights` whose outputs, read as natural-log
    likelihood ratios, minimise the prior-weighted logistic loss on labelled development scores."""
    from scipy.optimize import minimize

    x = _check_systems(systems)
    labels = np.asarray(labels, dtype=bool)
    if len(labels) != len(x):
        raise SpkidError(f"fusion: {len(labels)} labels for {len(x)} development scores")
    if not 0 < prior < 1:
        raise SpkidError("fusion: the prior must be between 0 and 1")
    n_tgt, n_non = int(labels.sum()), int((~labels).sum())
    if n_tgt == 0 or n_non == 0:
        raise SpkidError("logistic fusion needs target and nontarget development trials")
    center, spread = x.mean(axis=0), x.std(axis=0)
    spread[spread <= 0] = 1.0
    z = (x - center) / spread
    sign = np.where(labels, 1.0, -1.0)
    weight = np.where(labels, prior / n_tgt, (1 - prior) / n_non)
    logit_prior = math.log(prior / (1 - prior))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        margin = sign * (z @ params[:-1] + params[-1] + logit_prior)
        value = float((weight * np.logaddexp(0, -margin)).sum())
        g = -weight * sign / (1 + np.exp(np.clip(margin, -700, 700)))
        return value, np.concatenate([z.T @ g, [g.sum()]])

    start = np.concatenate([np.ones(x.shape[1]), [0.0]])
    result = minimize(loss, start, jac=True, method="BFGS")
    if not np.isfinite(result.x).all():
        raise SpkidError("logistic fusion did not converge")
    w = result.x[:-1] / spread
    return w, float(result.x[-1] - center @ w)


def fuse(systems: Sequence[np.ndarray], method: str = "mean-z", dev_systems: Sequence[np.ndarray] | None = None,
         dev_labels: np.ndarray | None = None, prior: float = 0.5) -> np.ndarray:
    """Fused scores of `systems` (one score array per system, same trials)."""
    if method == "mean-z":
        return zscore_fusion(systems, dev_systems)
    if method == "logistic":
        if dev_systems is None or dev_labels is None:
            raise SpkidError("logistic fusion is trained on a labelled development list: give its trials and "
                             "each system's scores on it")
        w, b = fit_logistic_fusion(dev_systems, dev_labels, prior)
        return _check_systems(systems) @ w + b
    raise SpkidError(f"unknown fusion method '{method}' (known: {', '.join(METHODS)})")
