"""Score normalisation with a cohort: S-norm and adaptive S-norm (AS-norm), as WeSpeaker's score_norm.py.

For each enrollment model and each test utterance, score it against every cohort embedding with the
same back-end, keep the `top_n` highest cohort scores (all of them for S-norm), and take their mean and
(population) standard deviation. A trial score s becomes
`0.5 * ((s - mean_e) / std_e + (s - mean_t) / std_t)`.
"""
from __future__ import annotations

import numpy as np

from spkid.errors import SpkidError

BLOCK = 2048  # rows of the cohort score matrix held at once

METHODS = ("none", "snorm", "asnorm")


def top_n_stats(scores: np.ndarray, top_n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the `top_n` largest values of each row (all values when None)."""
    n = scores.shape[1]
    if top_n is not None and top_n < n:
        scores = np.partition(scores, n - top_n, axis=1)[:, n - top_n:]
    return scores.mean(axis=1), scores.std(axis=1)


def cohort_stats(score_block, n_rows: int, top_n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Row statistics of a score matrix produced block by block: `score_block(slice)` -> rows x cohort."""
    means, stds = np.empty(n_rows), np.empty(n_rows)
    for start in range(0, n_rows, BLOCK):
        sl = slice(start, min(start + BLOCK, n_rows))
        means[sl], stds[sl] = top_n_stats(score_block(sl), top_n)
    return means, stds


def normalize(scores: np.ndarray, enroll_mean: np.ndarray, enroll_std: np.ndarray, test_mean: np.ndarray,
              test_std: np.ndarray) -> np.ndarray:
    """The symmetric normalisation of trial scores, given the statistics of each trial's two sides."""
    tiny = np.finfo(np.float64).tiny
    if (enroll_std <= tiny).any() or (test_std <= tiny).any():
        raise SpkidError("score normalisation: cohort scores have zero spread (cohort too small or "
                         "identical embeddings); use a larger cohort or --top-n")
    return 0.5 * ((scores - enroll_mean) / enroll_std + (scores - test_mean) / test_std)


def check_method(method: str, top_n: int, cohort_size: int) -> int | None:
    """Validate the method and return the number of top cohort scores kept (None: all)."""
    if method not in METHODS:
        raise SpkidError(f"unknown score normalisation '{method}' (choose {', '.join(METHODS)})")
    if cohort_size < 2:
        raise SpkidError(f"score normalisation needs a cohort of at least 2 embeddings, got {cohort_size}")
    if method == "snorm":
        return None
    if top_n < 2:
        raise SpkidError(f"--top-n must be at least 2, got {top_n}")
    return min(top_n, cohort_size)
