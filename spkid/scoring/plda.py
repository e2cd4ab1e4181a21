"""PLDA as Kaldi's src/ivector/plda.cc: two-covariance EM training, the diagonal form, and LLR scoring.

Training (`estimate_plda`) is Kaldi's PldaEstimator: starting from unit within- and between-class
covariances W and B, each EM iteration takes the intra-class scatter and the posterior of each class
mean `m = x + y` (x ~ N(0, B), y ~ N(0, W / n)); 10 iterations by default. The output (`Plda`) is Kaldi's
diagonal form: `mean` (the average of the class means), `transform` (within-class covariance unit,
between-class covariance diagonal) and `psi` (that diagonal, decreasing); `offset = -transform @ mean`.

Scoring is Plda::TransformIvector (with Kaldi's normalize_length / simple_length_norm options, the
expected-length factor depending on the number of enrollment utterances) followed by
Plda::LogLikelihoodRatio, vectorised: for an enrollment mean u over n utterances the LLR of a test
vector v is `k + v . l + v^2 . q` with per-model l, q, k, so trial lists and cohorts are a few matrix
products. `read_kaldi_plda`/`write_kaldi_plda` handle Kaldi's binary Plda object.
"""
from __future__ import annotations

import logging
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.scoring")

LOG_2PI = math.log(2 * math.pi)


@dataclass
class PldaConfig:
    """Kaldi's PldaConfig (ivector-plda-scoring options)."""

    normalize_length: bool = True
    simple_length_norm: bool = False


@dataclass
class Plda:
    """Kaldi's Plda object: `y = transform @ (x - mean)` has unit within-class and diag(psi) between-class
    covariance."""

    mean: np.ndarray
    transform: np.ndarray
    psi: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    @property
    def offset(self) -> np.ndarray:
        return -self.transform @ self.mean

    def transform_ivectors(self, x: np.ndarray, num_examples: int | np.ndarray = 1,
                           config: PldaConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Plda::TransformIvector on rows of `x`: (transformed rows, normalisation factors).

        The default factor makes `y . (psi + 1/n)^-1 . y` equal the dimension (n = num_examples); with
        simple_length_norm it makes the norm sqrt(dim). It is applied when normalize_length (the default).
        As Kaldi's float version, the input is float and the transformed vectors are rounded to float32.
        """
        config = config or PldaConfig()
        x = np.atleast_2d(np.asarray(x, dtype=np.float32)).astype(np.float64)  # Kaldi reads float vectors
        if x.shape[1] != self.dim:
            raise SpkidError(f"embeddings of dimension {x.shape[1]} do not match the PLDA dimension {self.dim}")
        y = x @ self.transform.T + self.offset
        n = np.broadcast_to(np.asarray(num_examples, dtype=np.float64), (y.shape[0],))
        if (n <= 0).any():
            raise SpkidError("number of examples must be positive")
        if config.simple_length_norm:
            factor = math.sqrt(self.dim) / np.linalg.norm(y, axis=1)
        else:
            inv_covar = 1.0 / (self.psi[None, :] + 1.0 / n[:, None])
            factor = np.sqrt(self.dim / np.einsum("ij,ij->i", y * y, inv_covar))
        if config.normalize_length:
            y = y * factor[:, None]
        return y.astype(np.float32).astype(np.float64), factor

    def enroll_terms(self, u: np.ndarray, n: int | np.ndarray = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-model terms (l, q, k) with LLR(u, n; v) = k + v . l + v^2 . q, for transformed means `u`."""
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        n = np.broadcast_to(np.asarray(n, dtype=np.float64), (u.shape[0],))[:, None]
        psi = self.psi[None, :]
        mean = n * psi / (n * psi + 1.0) * u
        variance = 1.0 + psi / (n * psi + 1.0)
        quad = 0.5 / (1.0 + psi) - 0.5 / variance
        lin = mean / variance
        const = (-0.5 * np.log(variance).sum(axis=1) + 0.5 * np.log1p(self.psi).sum()
                 - 0.5 * (mean * mean / variance).sum(axis=1))
        return lin, np.broadcast_to(quad, u.shape).copy(), const

    def log_likelihood_ratio(self, train: np.ndarray, n: int, test: np.ndarray) -> float:
        """Plda::LogLikelihoodRatio for one pair, as Kaldi writes it (the reference for the fast form)."""
        train = np.asarray(train, dtype=np.float64)
        test = np.asarray(test, dtype=np.float64)
        mean = n * self.psi / (n * self.psi + 1.0) * train
        variance = 1.0 + self.psi / (n * self.psi + 1.0)
        given = -0.5 * (np.log(variance).sum() + LOG_2PI * self.dim + ((test - mean) ** 2 / variance).sum())
        variance = self.psi + 1.0
        without = -0.5 * (np.log(variance).sum() + LOG_2PI * self.dim + (test ** 2 / variance).sum())
        return float(given - without)

    def covariances(self) -> tuple[np.ndarray, np.ndarray]:
        """The (within, between) covariances in the input space that this diagonal form represents."""
        inv = np.linalg.inv(self.transform)
        return inv @ inv.T, (inv * self.psi) @ inv.T


# ------------------------------------------------------------------------------------------------ training
@dataclass
class PldaStats:
    """Kaldi's PldaStats, with unit class weights: class means, sizes and the intra-class scatter."""

    class_means: np.ndarray  # (classes, dim)
    class_sizes: np.ndarray  # (classes,) int
    offset_scatter: np.ndarray  # sum over examples of (x - class mean)(x - class mean)^T

    @property
    def dim(self) -> int:
        return int(self.class_means.shape[1])

    @property
    def num_examples(self) -> int:
        return int(self.class_sizes.sum())

    @classmethod
    def from_groups(cls, groups: Sequence[np.ndarray]) -> PldaStats:
        """Stats from one (examples x dim) matrix per class (PldaStats::AddSamples, weight 1)."""
        if not groups:
            raise SpkidError("no PLDA stats accumulated (no speakers)")
        dim = groups[0].shape[1]
        means = np.empty((len(groups), dim))
        sizes = np.empty(len(groups), dtype=np.int64)
        scatter = np.zeros((dim, dim))
        for i, g in enumerate(groups):
            g = np.asarray(g, dtype=np.float64)
            means[i] = g.mean(axis=0)
            sizes[i] = len(g)
            d = g - means[i]
            scatter += d.T @ d
        order = np.argsort(sizes, kind="stable")  # PldaStats::Sort: by number of examples
        return cls(means[order], sizes[order], scatter)


@dataclass
class PldaEstimate:
    """A trained PLDA model and what EM ended with (W, B before diagonalisation, objective per iteration)."""

    plda: Plda
    within_var: np.ndarray
    between_var: np.ndarray
    objf: list[float] = field(default_factory=list)


def _logdet(mat: np.ndarray, what: str) -> float:
    sign, logdet = np.linalg.slogdet(mat)
    if sign <= 0:
        raise SpkidError(f"PLDA: {what} covariance is singular")
    return float(logdet)


def plda_objf(stats: PldaStats, within: np.ndarray, between: np.ndarray) -> float:
    """PldaEstimator::ComputeObjf: the log-likelihood per example of the data under (W, B)."""
    dim, classes = stats.dim, len(stats.class_sizes)
    within_count = stats.num_examples - classes
    part1 = -0.5 * (within_count * (_logdet(within, "within-class") + LOG_2PI * dim)
                    + np.trace(np.linalg.solve(within, stats.offset_scatter)))
    centered = stats.class_means - stats.class_means.mean(axis=0)
    part2 = 0.0
    for n in np.unique(stats.class_sizes):
        m = centered[stats.class_sizes == n]
        combined = between + within / n
        quad = np.einsum("ij,ij->", m, np.linalg.solve(combined, m.T).T)
        part2 += -0.5 * (len(m) * (_logdet(combined, "combined") + LOG_2PI * dim) + quad)
    return float((part1 + part2) / stats.num_examples)


def estimate_plda(stats: PldaStats, num_em_iters: int = 10) -> PldaEstimate:
    """Kaldi's PldaEstimator::Estimate (EM from unit covariances), then GetOutput (the diagonal form).

    Directions in which the training data do not vary at all (constant dimensions, e.g. ReLU units that
    never fire) make Kaldi's result ill-defined there: W and B shrink towards zero in them and their
    eigenvectors are arbitrary. In exact arithmetic Kaldi's EM keeps such a subspace separate (W and B
    block-diagonal, both multiples of the identity in it), so it is estimated apart: the other directions
    exactly as Kaldi (EM and diagonal form on them), the constant ones by the same EM on zero data (a
    scalar recursion), with the constant directions themselves as their rows of the transform.
    """
    classes = len(stats.class_sizes)
    if stats.num_examples == classes:
        raise SpkidError(f"No speakers with multiple utterances, unable to estimate PLDA (each of the "
                         f"{classes} speakers has one utterance)")
    split = varying_subspace(stats)
    if split is None:
        within, between, objf = _em(stats, num_em_iters)
        return PldaEstimate(diagonal_form(stats.class_means.mean(axis=0), within, between), within, between,
                            objf)
    varying, constant = split
    logger.warning("PLDA: the training embeddings do not vary in %d of %d dimensions%s; their transform is "
                   "set from the exact EM (no speaker information there: an embedding that is not constant "
                   "in them scores extremely)", constant.shape[1], stats.dim, _which(constant))
    sub = PldaStats(stats.class_means @ varying, stats.class_sizes, varying.T @ stats.offset_scatter @ varying)
    w_r, b_r, objf_r = _em(sub, num_em_iters)
    zero = PldaStats(np.zeros((classes, 1)), stats.class_sizes, np.zeros((1, 1)))
    w_c, b_c, objf_c = _em(zero, num_em_iters)
    w_c, b_c = float(w_c[0, 0]), float(b_c[0, 0])
    mean = stats.class_means.mean(axis=0)
    part = diagonal_form(sub.class_means.mean(axis=0), w_r, b_r)
    transform = np.concatenate([part.transform @ varying.T, constant.T / math.sqrt(w_c)])
    psi = np.concatenate([part.psi, np.full(constant.shape[1], b_c / w_c)])
    order = np.argsort(-psi, kind="stable")
    within = varying @ w_r @ varying.T + w_c * constant @ constant.T
    between = varying @ b_r @ varying.T + b_c * constant @ constant.T
    objf = [a + constant.shape[1] * b for a, b in zip(objf_r, objf_c)]
    return PldaEstimate(Plda(mean, transform[order], psi[order]), within, between, objf)


DEGENERATE = 1e-12  # a direction whose scatter is below this times the largest does not vary


def varying_subspace(stats: PldaStats) -> tuple[np.ndarray, np.ndarray] | None:
    """Orthonormal bases (columns) of the directions in which the training data vary and of those in which
    they are constant (coordinate axes where whole dimensions are constant); None when all vary."""
    centered = stats.class_means - stats.class_means.mean(axis=0)
    scatter = stats.offset_scatter + centered.T @ centered
    diag = np.diag(scatter)
    if not diag.max() > 0:
        raise SpkidError("PLDA: all training embeddings are identical")
    eye = np.eye(stats.dim)
    flat = diag <= DEGENERATE * diag.max()
    varying, constant = eye[:, ~flat], eye[:, flat]
    s, u = np.linalg.eigh(varying.T @ scatter @ varying)  # constant combinations of the other dimensions
    null = s <= DEGENERATE * s.max()
    if null.any():
        constant = np.concatenate([constant, varying @ u[:, null]], axis=1)
        varying = varying @ u[:, ~null]
    return (varying, constant) if constant.shape[1] else None


def _which(constant: np.ndarray) -> str:
    """` (dimensions 3, 7, ...)` for the constant directions that are coordinate axes."""
    dims = [int(np.flatnonzero(col)[0]) for col in constant.T if np.count_nonzero(col) == 1]
    shown = ", ".join(map(str, dims[:10])) + (", ..." if len(dims) > 10 else "")
    return f" (dimensions {shown})" if dims else ""


def _em(stats: PldaStats, num_em_iters: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """PldaEstimator's EM from unit covariances: (within, between, objective per iteration)."""
    dim, classes = stats.dim, len(stats.class_sizes)
    within, between = np.eye(dim), np.eye(dim)
    centered = stats.class_means - stats.class_means.mean(axis=0)  # remove the global mean
    sizes = np.unique(stats.class_sizes)
    objf = []
    for it in range(num_em_iters):
        logger.info("Plda estimation iteration %d of %d", it, num_em_iters)
        within_stats = stats.offset_scatter.copy()  # GetStatsFromIntraClass
        within_count = float(stats.num_examples - classes)
        between_stats = np.zeros((dim, dim))
        between_inv, within_inv = np.linalg.inv(between), np.linalg.inv(within)
        for n in sizes:  # GetStatsFromClassMeans, all classes of one size at once
            m = centered[stats.class_sizes == n]
            mixed = np.linalg.inv(between_inv + n * within_inv)
            mixed = (mixed + mixed.T) / 2
            w = (n * m @ within_inv) @ mixed  # rows: w = mixed (n W^-1 m)
            m_w = m - w
            count = len(m)
            between_stats += count * mixed + w.T @ w
            within_stats += n * count * mixed + n * (m_w.T @ m_w)
            within_count += count
        within = within_stats / within_count  # EstimateFromStats
        between = between_stats / classes
        logger.info("Trace of within-class variance is %g, of between-class variance %g",
                    np.trace(within), np.trace(between))
        objf.append(plda_objf(stats, within, between))
        logger.debug("Objective function is %g", objf[-1])
    return within, between, objf


def diagonal_form(mean: np.ndarray, within: np.ndarray, between: np.ndarray) -> Plda:
    """PldaEstimator::GetOutput: transform = U^T C^-1 (W = C C^T; C^-1 B C^-T = U diag(psi) U^T)."""
    try:
        chol = np.linalg.cholesky(within)
    except np.linalg.LinAlgError:
        raise SpkidError("PLDA: within-class covariance is not positive definite") from None
    transform1 = np.linalg.inv(chol)
    between_proj = transform1 @ between @ transform1.T
    s, u = np.linalg.eigh((between_proj + between_proj.T) / 2)
    n_floored = int((s < 0).sum())
    if n_floored:
        logger.warning("Floored %d eigenvalues of between-class variance to zero.", n_floored)
    s = np.maximum(s, 0.0)
    order = np.argsort(-s, kind="stable")
    s, u = s[order], u[:, order]
    logger.info("Norm of mean of embedding distribution is %g", np.linalg.norm(mean))
    logger.info("Diagonal of between-class variance in normalized space: %s", np.array2string(s[:10], precision=4))
    return Plda(np.asarray(mean, dtype=np.float64), u.T @ transform1, s)


def train_plda(x: np.ndarray, labels: Sequence[str], num_em_iters: int = 10) -> PldaEstimate:
    """`ivector-compute-plda`: PLDA from embeddings `x` (n x dim) grouped by speaker `labels`."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    speakers, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    groups = np.split(x[order], bounds)
    logger.info("Accumulated stats from %d speakers, consisting of %d utterances", len(speakers), len(x))
    return estimate_plda(PldaStats.from_groups(groups), num_em_iters)


# ------------------------------------------------------------------------------------- Kaldi binary format
def _token(data: bytes, pos: int, expect: bytes, path: str) -> int:
    if data[pos:pos + len(expect)] != expect:
        raise SpkidError(f"{path}: not a Kaldi binary Plda (expected {expect!r} at byte {pos})")
    return pos + len(expect)


def _int32(data: bytes, pos: int, path: str) -> tuple[int, int]:
    pos = _token(data, pos, b"\x04", path)
    return struct.unpack("<i", data[pos:pos + 4])[0], pos + 4


def _read_real(data: bytes, pos: int, kind: str, path: str) -> tuple[np.ndarray, int]:
    token = data[pos:pos + 3]
    if token not in (b"F" + kind.encode() + b" ", b"D" + kind.encode() + b" "):
        raise SpkidError(f"{path}: expected a Kaldi {'vector' if kind == 'V' else 'matrix'} at byte {pos}")
    dtype = "<f4" if token[:1] == b"F" else "<f8"
    pos += 3
    shape = []
    for _ in range(1 if kind == "V" else 2):
        size, pos = _int32(data, pos, path)
        shape.append(size)
    count = int(np.prod(shape))
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos).reshape(shape).astype(np.float64)
    return arr, pos + count * np.dtype(dtype).itemsize


def read_kaldi_plda(path: str) -> Plda:
    """Read Kaldi's binary Plda object (`<Plda>` mean_ transform_ psi_ `</Plda>`)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise SpkidError(f"{path}: cannot read ({err.strerror})") from None
    pos = _token(data, 0, b"\0B<Plda> ", path)
    mean, pos = _read_real(data, pos, "V", path)
    transform, pos = _read_real(data, pos, "M", path)
    psi, pos = _read_real(data, pos, "V", path)
    _token(data, pos, b"</Plda> ", path)
    if transform.shape != (mean.size, mean.size) or psi.size != mean.size:
        raise SpkidError(f"{path}: inconsistent Plda dimensions")
    return Plda(mean, transform, psi)


def kaldi_plda_bytes(plda: Plda) -> bytes:
    """The bytes of Kaldi's binary Plda object (WriteKaldiObject(plda, ..., binary=true))."""
    d = plda.dim

    def vec(v: np.ndarray) -> bytes:
        return b"DV \x04" + struct.pack("<i", v.size) + np.asarray(v, "<f8").tobytes()

    mat = b"DM \x04" + struct.pack("<i", d) + b"\x04" + struct.pack("<i", d)
    mat += np.ascontiguousarray(plda.transform, "<f8").tobytes()
    return b"\0B<Plda> " + vec(plda.mean) + mat + vec(plda.psi) + b"</Plda> "


def is_kaldi_plda(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(9) == b"\0B<Plda> "
    except OSError:
        return False
