"""LDA for embeddings as Kaldi's `ivector-compute-lda`, and the affine/length-normalising transforms.

`compute_lda` follows src/ivectorbin/ivector-compute-lda.cc: subtract the mean, accumulate the total and
between-speaker scatter, normalise the interpolated covariance
`f * total + (1 - f) * within` (f = --total-covariance-factor, 0 by default: within-class covariance
becomes unit) through its eigen-decomposition with eigenvalues floored at `floor * largest`, then keep the
leading eigenvectors of the projected between-class covariance. The result is Kaldi's affine
`lda_dim x (dim + 1)` matrix whose last column removes the mean (`transform-vec` applies it).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.scoring")


def _sorted_eigh(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing) and eigenvectors (columns) of a symmetric matrix, as Kaldi's Eig+SortSvd."""
    s, u = np.linalg.eigh((mat + mat.T) / 2)
    order = np.argsort(-s, kind="stable")
    return s[order], u[:, order]


def compute_lda(x: np.ndarray, labels: Sequence[str], lda_dim: int, total_covariance_factor: float = 0.0,
                covariance_floor: float = 1e-6) -> np.ndarray:
    """The affine LDA transform (lda_dim x (dim + 1)) of embeddings `x` (n x dim) with speaker `labels`."""
    x = np.asarray(x, dtype=np.float64)
    n, dim = x.shape
    if not 0 < lda_dim <= dim:
        raise SpkidError(f"LDA dimension {lda_dim} must be between 1 and the embedding dimension {dim}")
    if not 0.0 <= total_covariance_factor <= 1.0:
        raise SpkidError("--total-covariance-factor must be between 0 and 1")
    if covariance_floor < 0:
        raise SpkidError("--covariance-floor must be >= 0")
    mean = x.mean(axis=0)
    xc = x - mean
    speakers, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    if n == len(speakers):
        raise SpkidError(f"LDA needs speakers with several utterances; each of the {n} speakers has one")
    if n < dim:
        raise SpkidError(f"too little data for LDA: {n} utterances for embedding dimension {dim}")
    if lda_dim > len(speakers) - 1:
        logger.warning("LDA dimension %d is above the rank of the between-speaker covariance (%d speakers - 1 "
                       "= %d): the last %d dimensions carry no speaker information", lda_dim, len(speakers),
                       len(speakers) - 1, lda_dim - len(speakers) + 1)
    sums = np.zeros((len(speakers), dim))
    np.add.at(sums, inverse, xc)
    spk_means = sums / counts[:, None]
    tot_covar = xc.T @ xc / n
    between_scatter = (spk_means * counts[:, None]).T @ spk_means
    within_covar = (xc.T @ xc - between_scatter) / n
    logger.info("LDA stats have %d speakers, %d utterances", len(speakers), n)
    to_normalize = total_covariance_factor * tot_covar + (1.0 - total_covariance_factor) * within_covar
    s, u = _sorted_eigh(to_normalize)
    floor = covariance_floor * s[0]
    n_floored = int((s < floor).sum())
    if n_floored:
        logger.warning("Floored %d eigenvalues of covariance to %g", n_floored, floor)
    s = np.maximum(s, floor)
    if not (s > 0).all():
        raise SpkidError("LDA: the covariance to normalise is singular (all embeddings identical?)")
    t = (s ** -0.5)[:, None] * u.T  # T covar T^T = I
    between_proj = t @ (tot_covar - within_covar) @ t.T
    s_b, u_b = _sorted_eigh(between_proj)
    logger.info("Singular values of between-class covariance after projecting: %s",
                np.array2string(s_b[:10], precision=4))
    linear = u_b[:, :lda_dim].T @ t
    offset = -linear @ mean
    return np.concatenate([linear, offset[:, None]], axis=1)


def apply_affine(transform: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply a Kaldi transform (k x dim, or affine k x (dim + 1)) to rows of `x`, as `transform-vec`: the float
    matrix times each float vector (with a 1 appended for the affine column) by BLAS sgemv, as AddMatVec."""
    x = np.asarray(x, dtype=np.float32)
    dim = x.shape[1]
    t = np.asarray(transform, dtype=np.float32)
    if transform.shape[1] == dim + 1:
        x = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1)
    elif transform.shape[1] != dim:
        raise SpkidError(f"transform of shape {transform.shape[0]}x{transform.shape[1]} does not apply to "
                         f"embeddings of dimension {dim} (expected {dim} or {dim + 1} columns)")
    out = np.empty((len(x), t.shape[0]), np.float32)
    for i, row in enumerate(x):
        out[i] = np.dot(t, row)
    return out


def normalize_length(x: np.ndarray, scaleup: bool = True) -> np.ndarray:
    """Scale rows to norm sqrt(dim) (or 1 without `scaleup`), as Kaldi's `ivector-normalize-length` computes
    it in float: `BaseFloat norm = v.Norm(2.0); BaseFloat ratio = norm / sqrt(dim); v.Scale(1.0 / ratio)`,
    Norm(2.0) summing the squares one after the other in float."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.cumsum(x * x, axis=1, dtype=np.float32)[:, -1]) if x.shape[1] else np.zeros(len(x), np.float32)
    if (norms == 0).any():
        raise SpkidError("cannot length-normalise a zero embedding")
    ratio = (norms.astype(np.float64) / (np.sqrt(x.shape[1]) if scaleup else 1.0)).astype(np.float32)
    return x * (1.0 / ratio.astype(np.float64)).astype(np.float32)[:, None]


def read_kaldi_matrix(path: str) -> np.ndarray:
    """Read a Kaldi matrix object (e.g. transform.mat from ivector-compute-lda), binary or text."""
    from spkid.kaldi.objects import BadObject, read_entry

    if os.path.isdir(path):
        raise SpkidError(f"{path}: is a directory, not a Kaldi matrix")
    try:
        mat = read_entry(path)
    except BadObject as err:
        raise SpkidError(f"{path}: cannot read a Kaldi matrix ({err})") from None
    mat = np.asarray(mat, dtype=np.float64)
    if mat.ndim != 2:
        raise SpkidError(f"{path}: expected a matrix, got shape {mat.shape}")
    return mat
