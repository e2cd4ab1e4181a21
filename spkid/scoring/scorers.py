"""Scorers: cosine similarity and PLDA log-likelihood ratio, both for trial lists and full matrices.

A scorer turns enrollment vectors (with their number of utterances) and test vectors into
representations once; `pairs` then scores (enroll row, test row) index pairs in chunks and `matrix`
scores every enroll against every test (for cohorts), so nothing loops over trials in Python.
"""
from __future__ import annotations

import numpy as np

from spkid.errors import SpkidError
from spkid.scoring.plda import Plda, PldaConfig

CHUNK = 1 << 16  # trials scored per chunk (bounds the memory of the gathered rows)

Rep = tuple[np.ndarray, ...]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float64); a zero row is an error."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise SpkidError("cannot compute a cosine score with a zero embedding")
    return x / norms


def take(rep: Rep, index: np.ndarray | slice) -> Rep:
    return tuple(a[index] for a in rep)


class CosineScorer:
    """Cosine similarity: dot products of length-normalised vectors."""

    name = "cosine"

    def enroll(self, x: np.ndarray, counts: np.ndarray | None = None) -> Rep:
        return (unit_rows(x),)

    def test(self, x: np.ndarray) -> Rep:
        return (unit_rows(x),)

    def pairs(self, enroll: Rep, test: Rep, ei: np.ndarray, ti: np.ndarray) -> np.ndarray:
        out = np.empty(len(ei))
        for start in range(0, len(ei), CHUNK):
            sl = slice(start, start + CHUNK)
            out[sl] = np.einsum("ij,ij->i", enroll[0][ei[sl]], test[0][ti[sl]])
        return out

    def matrix(self, enroll: Rep, test: Rep) -> np.ndarray:
        return enroll[0] @ test[0].T


class PldaScorer:
    """Kaldi's ivector-plda-scoring: TransformIvector (enrollment with its utterance count), then the LLR."""

    name = "plda"

    def __init__(self, plda: Plda, config: PldaConfig | None = None):
        self.plda = plda
        self.config = config or PldaConfig()

    def enroll(self, x: np.ndarray, counts: np.ndarray | None = None) -> Rep:
        counts = np.ones(len(x)) if counts is None else np.asarray(counts, dtype=np.float64)
        u, _ = self.plda.transform_ivectors(x, counts, self.config)
        return self.plda.enroll_terms(u, counts)

    def test(self, x: np.ndarray) -> Rep:
        v, _ = self.plda.transform_ivectors(x, 1, self.config)
        return (v, v * v)

    def pairs(self, enroll: Rep, test: Rep, ei: np.ndarray, ti: np.ndarray) -> np.ndarray:
        lin, quad, const = enroll
        v, v2 = test
        out = np.empty(len(ei))
        for start in range(0, len(ei), CHUNK):
            sl = slice(start, start + CHUNK)
            e, t = ei[sl], ti[sl]
            out[sl] = const[e] + np.einsum("ij,ij->i", lin[e], v[t]) + np.einsum("ij,ij->i", quad[e], v2[t])
        return out.astype(np.float32).astype(np.float64)  # ivector-plda-scoring: BaseFloat score

    def matrix(self, enroll: Rep, test: Rep) -> np.ndarray:
        lin, quad, const = enroll
        v, v2 = test
        return lin @ v.T + quad @ v2.T + const[:, None]
