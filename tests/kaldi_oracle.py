"""Literal numpy transcriptions of Kaldi's x-vector back-end binaries: the oracle for spkid's PLDA tests.

Each function follows the C++ line by line, including where Kaldi computes in float (BaseFloat tables
between binaries, Vector<BaseFloat> arithmetic) and where in double (PLDA statistics, TransformIvector,
LogLikelihoodRatio). Sources: src/ivectorbin/{ivector-mean, ivector-subtract-global-mean,
ivector-normalize-length, ivector-compute-lda, ivector-compute-plda, ivector-plda-scoring}.cc,
src/bin/transform-vec.cc and src/ivector/plda.cc.
"""
from __future__ import annotations

import math

import numpy as np

F32 = np.float32
M_LOG_2PI = math.log(2 * math.pi)


# ------------------------------------------------------------------------------------------- table tools
def ivector_mean_global(x: np.ndarray) -> np.ndarray:
    """ivector-mean <ivector-rspecifier> <mean-wxfilename>: Vector<double> sum; sum.AddVec(1.0, v); Scale(1/n)."""
    total = np.zeros(x.shape[1])
    for v in np.asarray(x, F32):
        total += v.astype(np.float64)
    return total * (1.0 / len(x))


def ivector_mean_speakers(x: np.ndarray, groups: list[list[int]]) -> tuple[np.ndarray, list[int]]:
    """ivector-mean <spk2utt> ...: Vector<BaseFloat> spk_mean = first; AddVec(1.0, next); Scale(1.0 / count)."""
    x = np.asarray(x, F32)
    out = []
    for rows in groups:
        acc = x[rows[0]].copy()
        for r in rows[1:]:
            acc = (acc + x[r]).astype(F32)
        out.append((acc * F32(1.0 / len(rows))).astype(F32))
    return np.stack(out), [len(r) for r in groups]


def subtract_global_mean(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """ivector-subtract-global-mean mean.vec: Vector<BaseFloat> mean; ivector.AddVec(-1.0, mean) (float)."""
    return (np.asarray(x, F32) - np.asarray(mean, F32)).astype(F32)


def transform_vec(transform: np.ndarray, x: np.ndarray) -> np.ndarray:
    """transform-vec: Matrix<BaseFloat> transform; vec_out.AddMatVec(1.0, transform, kNoTrans, [vec; 1], 0.0)."""
    t, x = np.asarray(transform, F32), np.asarray(x, F32)
    if t.shape[1] == x.shape[1] + 1:
        x = np.concatenate([x, np.ones((len(x), 1), F32)], axis=1)
    return np.stack([np.dot(t, v) for v in x]).astype(F32)  # AddMatVec: cblas_sgemv per vector


def normalize_length(x: np.ndarray, scaleup: bool = True) -> np.ndarray:
    """ivector-normalize-length: BaseFloat norm = Norm(2.0); ratio = norm / sqrt(dim); Scale(1.0 / ratio)."""
    x = np.asarray(x, F32)
    out = np.empty_like(x)
    for i, v in enumerate(x):
        total = F32(0.0)
        for d in v:  # Norm(2.0): for (i...) sum += data_[i] * data_[i]; return std::sqrt(sum) (float)
            total = F32(total + F32(d * d))
        norm = F32(np.sqrt(total))
        ratio = F32(float(norm) / math.sqrt(len(v))) if scaleup else norm
        out[i] = v if ratio == 0 else (v * F32(1.0 / float(ratio))).astype(F32)
    return out


# ---------------------------------------------------------------------------------- ivector-compute-lda
def _sort_svd(s: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-s, kind="stable")
    return s[order], u[:, order]


def ivector_compute_lda(x: np.ndarray, groups: list[list[int]], lda_dim: int, total_covariance_factor: float = 0.0,
                        covariance_floor: float = 1e-6) -> np.ndarray:
    """ivector-compute-lda (ComputeAndSubtractMean, CovarianceStats, ComputeLdaTransform): float matrix."""
    x = np.asarray(x, F32)
    mean = np.zeros(x.shape[1])
    for v in x:
        mean += (1.0 / len(x)) * v.astype(np.float64)
    mean32 = mean.astype(F32)
    xc = (x - mean32).astype(F32)  # iter->second->AddVec(-1.0, *mean_out) in float
    dim = x.shape[1]
    tot, between, n_utt = np.zeros((dim, dim)), np.zeros((dim, dim)), 0
    for rows in groups:
        m = xc[rows].astype(np.float64)
        tot += m.T @ m
        avg = m.sum(axis=0) / len(rows)
        between += len(rows) * np.outer(avg, avg)
        n_utt += len(rows)
    total_covar = tot / n_utt
    within_covar = (tot - between) / n_utt
    to_normalize = total_covariance_factor * total_covar + (1.0 - total_covariance_factor) * within_covar
    s, u = _sort_svd(*np.linalg.eigh(to_normalize))
    s = np.maximum(s, covariance_floor * s[0])
    t = (s ** -0.5)[:, None] * u.T  # proj->AddDiagVecMat(1.0, s, U, kTrans, 0.0)
    between_proj = t @ (total_covar - within_covar) @ t.T
    _, ub = _sort_svd(*np.linalg.eigh(between_proj))
    linear = (ub[:, :lda_dim].T @ t).astype(F32)  # lda_out (BaseFloat)
    offset = -(linear @ mean32)  # offset.AddMatVec(-1.0, linear_part, kNoTrans, mean, 0.0) (float)
    return np.concatenate([linear, offset.astype(F32)[:, None]], axis=1)


# --------------------------------------------------------------------------------- ivector-compute-plda
def ivector_compute_plda(x: np.ndarray, groups: list[list[int]], num_em_iters: int = 10):
    """ivector-compute-plda: PldaStats::AddSamples, Sort, PldaEstimator::Estimate, GetOutput.

    Returns (mean, transform, psi, within_var, between_var) in double.
    """
    x = np.asarray(x, F32)
    dim = x.shape[1]
    offset_scatter = np.zeros((dim, dim))
    class_info = []  # (num_examples, mean)
    total = np.zeros(dim)
    for rows in groups:
        g = x[rows].astype(np.float64)  # Matrix<double> ivector_mat
        n = len(rows)
        mean = g.sum(axis=0) * (1.0 / n)  # mean->AddRowSumMat(1.0 / n, group)
        offset_scatter += g.T @ g  # AddMat2(weight, group, kTrans, 1.0)
        offset_scatter += -n * np.outer(mean, mean)  # AddVec2(-n * weight, *mean)
        class_info.append((n, mean))
        total += mean
    class_info.sort(key=lambda c: c[0])  # PldaStats::Sort (by number of examples)
    num_classes, num_examples = len(class_info), sum(n for n, _ in class_info)
    within, between = np.eye(dim), np.eye(dim)
    for _ in range(num_em_iters):
        within_stats = offset_scatter.copy()  # GetStatsFromIntraClass
        within_count = float(num_examples - num_classes)
        between_stats, between_count = np.zeros((dim, dim)), 0.0
        between_inv, within_inv = np.linalg.inv(between), np.linalg.inv(within)
        n_cur, mixed = -1, None
        for n, mean in class_info:  # GetStatsFromClassMeans
            if n != n_cur:
                n_cur = n
                mixed = np.linalg.inv(between_inv + n * within_inv)
            m = mean - total / num_classes
            w = mixed @ (n * within_inv @ m)
            m_w = m - w
            between_stats += mixed + np.outer(w, w)
            between_count += 1.0
            within_stats += n * mixed + n * np.outer(m_w, m_w)
            within_count += 1.0
        within, between = within_stats / within_count, between_stats / between_count  # EstimateFromStats
    mean = total / num_classes  # GetOutput
    transform1 = np.linalg.inv(np.linalg.cholesky(within))  # ComputeNormalizingTransform: C^-1
    between_proj = transform1 @ between @ transform1.T
    s, u = np.linalg.eigh(between_proj)
    s = np.maximum(s, 0.0)
    s, u = _sort_svd(s, u)
    return mean, u.T @ transform1, s, within, between


# --------------------------------------------------------------------------------- ivector-plda-scoring
def transform_ivector(mean, transform, psi, x: np.ndarray, num_examples: int, normalize_length: bool = True,
                      simple_length_norm: bool = False) -> np.ndarray:
    """Plda::TransformIvector, float version: Vector<double> tmp(ivector) ... CopyFromVec into float."""
    v = np.asarray(x, F32).astype(np.float64)
    offset = -(transform @ mean)  # ComputeDerivedVars
    y = offset + transform @ v
    if simple_length_norm:
        factor = math.sqrt(len(y)) / np.linalg.norm(y)
    else:  # GetNormalizationFactor
        inv_covar = 1.0 / (psi + 1.0 / num_examples)
        factor = math.sqrt(len(y) / float(np.dot(inv_covar, y * y)))
    if normalize_length:
        y = y * factor
    return y.astype(F32)


def log_likelihood_ratio(psi, train: np.ndarray, n: int, test: np.ndarray) -> float:
    """Plda::LogLikelihoodRatio on the float transformed vectors (converted to double), as a BaseFloat."""
    train, test = np.asarray(train, F32).astype(np.float64), np.asarray(test, F32).astype(np.float64)
    dim = len(psi)
    mean = n * psi / (n * psi + 1.0) * train
    variance = 1.0 + psi / (n * psi + 1.0)
    logdet = np.log(variance).sum()
    given = -0.5 * (logdet + M_LOG_2PI * dim + np.dot((test - mean) ** 2, 1.0 / variance))
    variance = psi + 1.0
    logdet = np.log(variance).sum()
    without = -0.5 * (logdet + M_LOG_2PI * dim + np.dot(test ** 2, 1.0 / variance))
    return float(F32(given - without))  # BaseFloat score


def plda_scoring(plda, enroll: np.ndarray, counts: list[int], test: np.ndarray,
                 trials: list[tuple[int, int]]) -> np.ndarray:
    """ivector-plda-scoring --num-utts: enroll vectors transformed with their counts, tests with 1."""
    mean, transform, psi = plda
    e = [transform_ivector(mean, transform, psi, v, n) for v, n in zip(enroll, counts)]
    t = [transform_ivector(mean, transform, psi, v, 1) for v in test]
    return np.array([log_likelihood_ratio(psi, e[i], counts[i], t[j]) for i, j in trials])
