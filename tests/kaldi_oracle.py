"""Literal numpy transcriptions of Kaldi's code: the oracles of spkid's tests.

The x-vector back-end binaries (for the PLDA tests), compute-eer and the minDCF script (metrics), and
wav-reverberate (src/feat/signal.cc, src/featbin/wav-reverberate.cc, in float32).

Each function follows the C++ line by line, including where Kaldi computes in float (BaseFloat tables
between binaries, Vector<BaseFloat> arithmetic) and where in double (PLDA statistics, TransformIvector,
LogLikelihoodRatio). Sources: src/ivectorbin/{ivector-mean, ivector-subtract-global-mean,
ivector-normalize-length, ivector-compute-lda, ivector-compute-plda, ivector-plda-scoring}.cc,
src/bin/transform-vec.cc and src/ivector/plda.cc.
"""
from __future__ import annotations

import io
import math
from operator import itemgetter

import numpy as np
import soundfile as sf

F32 = np.float32
f32 = np.float32
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


# --------------------------------------------------------------------------- compute-eer and compute_min_dcf.py
def kaldi_compute_eer(target_scores, nontarget_scores):
    """Kaldi src/ivectorbin/compute-eer.cc ComputeEer, line by line (BaseFloat = float32)."""
    target_scores = sorted(np.float32(x) for x in target_scores)
    nontarget_scores = sorted(np.float32(x) for x in nontarget_scores)
    target_position = 0
    target_size = len(target_scores)
    while target_position + 1 < target_size:
        nontarget_size = len(nontarget_scores)
        nontarget_n = int(nontarget_size * target_position * 1.0 / target_size)
        nontarget_position = nontarget_size - 1 - nontarget_n
        if nontarget_position < 0:
            nontarget_position = 0
        if nontarget_scores[nontarget_position] < target_scores[target_position]:
            break
        target_position += 1
    threshold = target_scores[target_position]
    eer = np.float32(target_position * 1.0 / target_size)
    return float(eer), float(threshold)


def script_compute_error_rates(scores, labels):
    """Kaldi egs/sre08/v1/sid/compute_min_dcf.py ComputeErrorRates."""
    sorted_indexes, thresholds = zip(*sorted(
        [(index, threshold) for index, threshold in enumerate(scores)], key=itemgetter(1)))
    labels = [labels[i] for i in sorted_indexes]
    fnrs = []
    fprs = []
    for i in range(0, len(labels)):
        if i == 0:
            fnrs.append(labels[i])
            fprs.append(1 - labels[i])
        else:
            fnrs.append(fnrs[i - 1] + labels[i])
            fprs.append(fprs[i - 1] + 1 - labels[i])
    fnrs_norm = sum(labels)
    fprs_norm = len(labels) - fnrs_norm
    fnrs = [x / float(fnrs_norm) for x in fnrs]
    fprs = [1 - x / float(fprs_norm) for x in fprs]
    return fnrs, fprs, thresholds


def script_min_dcf(scores, labels, p_target, c_miss=1, c_fa=1):
    """Kaldi egs/sre08/v1/sid/compute_min_dcf.py ComputeMinDcf over ComputeErrorRates."""
    fnrs, fprs, thresholds = script_compute_error_rates([float(s) for s in scores], [int(x) for x in labels])
    min_c_det = float("inf")
    min_c_det_threshold = thresholds[0]
    for i in range(0, len(fnrs)):
        c_det = c_miss * fnrs[i] * p_target + c_fa * fprs[i] * (1 - p_target)
        if c_det < min_c_det:
            min_c_det = c_det
            min_c_det_threshold = thresholds[i]
    c_def = min(c_miss * p_target, c_fa * (1 - p_target))
    return min_c_det / c_def, min_c_det_threshold


# ---- oracle: src/feat/signal.cc and src/featbin/wav-reverberate.cc, transcribed line by line in float32 ----

def round_up_to_nearest_power_of_two(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def fft_based_block_convolve_signals(filt: np.ndarray, signal: np.ndarray) -> np.ndarray:
    signal_length = len(signal)
    filter_length = len(filt)
    output_length = signal_length + filter_length - 1
    out = np.zeros(output_length, f32)  # signal->Resize(output_length, kCopyData)
    out[:signal_length] = signal
    fft_length = round_up_to_nearest_power_of_two(4 * filter_length)
    block_length = fft_length - filter_length + 1
    filter_padded = np.zeros(fft_length, f32)
    filter_padded[:filter_length] = filt
    filter_fft = np.fft.rfft(filter_padded)
    temp_pad = np.zeros(filter_length - 1, f32)
    po = 0
    while po < output_length:
        process_length = min(block_length, output_length - po)
        block = np.zeros(fft_length, f32)
        block[:process_length] = out[po:po + process_length]
        block = np.fft.irfft(np.fft.rfft(block) * filter_fft, fft_length).astype(f32)  # includes 1/fft_length
        if po + block_length < output_length:
            out[po:po + block_length] = block[:block_length]
            out[po:po + filter_length - 1] += temp_pad
            temp_pad = block[block_length:block_length + filter_length - 1].copy()
        else:
            out[po:output_length] = block[:output_length - po]
            if filter_length - 1 < output_length - po:
                out[po:po + filter_length - 1] += temp_pad
            else:
                out[po:output_length] += temp_pad[:output_length - po]
        po += block_length
    return out


def vec_vec(a, b) -> f32:
    return f32(np.dot(a.astype(f32), b.astype(f32)))


def compute_early_reverb_energy(rir, signal, samp_freq) -> f32:
    peak_index = int(np.argmax(rir))
    sec_before_peak, sec_after_peak = f32(0.001), f32(0.05)
    early_rir_start_index = int(f32(peak_index) - sec_before_peak * f32(samp_freq))
    early_rir_end_index = int(f32(peak_index) + sec_after_peak * f32(samp_freq))
    if early_rir_start_index < 0:
        early_rir_start_index = 0
    if early_rir_end_index > len(rir):
        early_rir_end_index = len(rir)
    early_rir = rir[early_rir_start_index:early_rir_end_index]
    early_reverb = fft_based_block_convolve_signals(early_rir, signal)
    return vec_vec(early_reverb, early_reverb) / f32(len(early_reverb))


def add_noise(noise, snr_db, time, samp_freq, signal_power, signal):
    noise_power = vec_vec(noise, noise) / f32(len(noise))
    scale_factor = f32(math.sqrt(math.pow(10, -snr_db / 10) * signal_power / noise_power))
    noise = noise * scale_factor
    offset = int(f32(time) * f32(samp_freq))
    add_length = min(len(signal) - offset, len(noise))  # AddVectorsWithOffset
    if add_length > 0:
        signal[offset:offset + add_length] += noise[:add_length]


def add_vectors_of_unequal_length(signal1, signal2):
    po = 0
    while po < len(signal2):
        block_length = len(signal1)
        if len(signal2) - po < block_length:
            block_length = len(signal2) - po
        signal2[po:po + block_length] += signal1[:block_length]
        po += len(signal1)


def kaldi_wav_reverberate(input_wave, samp_freq_input, rir_wave=None, samp_freq_rir=None, noises=(), snrs=(),
                          start_times=(), shift_output=True, normalize_output=True, volume=0.0, duration=0.0):
    """main() of wav-reverberate.cc for one output channel; waves as int16 values (Kaldi's WaveData)."""
    num_samp_input = len(input_wave)
    num_samp_rir = 0 if rir_wave is None else len(rir_wave)
    shift_index = 0
    if duration > 0:
        num_samp_output = int(f32(samp_freq_input) * f32(duration))
    else:
        num_samp_output = num_samp_input if shift_output else num_samp_input + num_samp_rir - 1
    inp = np.array(input_wave, f32)
    power_before_reverb = vec_vec(inp, inp) / f32(len(inp))
    early_energy = power_before_reverb
    if rir_wave is not None:
        rir = np.array(rir_wave, f32) * f32(1.0 / (1 << 15))
        early_energy = compute_early_reverb_energy(rir, inp, samp_freq_rir)  # DoReverberation
        inp = fft_based_block_convolve_signals(rir, inp)
        if shift_output:
            shift_index = int(np.argmax(rir))
    for noise, snr, time in zip(noises, snrs, start_times):
        add_noise(np.array(noise, f32), snr, time, samp_freq_input, early_energy, inp)
    power_after_reverb = vec_vec(inp, inp) / f32(len(inp))
    if volume > 0:
        inp = inp * f32(volume)
    elif normalize_output:
        inp = inp * f32(math.sqrt(power_before_reverb / power_after_reverb))
    if num_samp_output <= num_samp_input:
        out = inp[shift_index:shift_index + num_samp_output]
    else:
        out = np.zeros(num_samp_output, f32)
        add_vectors_of_unequal_length(inp[shift_index:shift_index + num_samp_input], out)
    return write_int16(out)


def write_int16(data) -> np.ndarray:
    """WaveData::Write: int32(trunc(x)), clipped to int16."""
    out = np.zeros(len(data), np.int16)
    for i, x in enumerate(data):
        elem = int(math.trunc(float(x)))
        out[i] = min(max(elem, -32768), 32767)
    return out


# ---- helpers ----

def int16_wav(path, samples: np.ndarray, rate: int):
    sf.write(str(path), np.asarray(samples, np.int16), rate, subtype="PCM_16")
    return str(path)


def read_int16(data_or_path):
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    data, rate = sf.read(source, dtype="int16")
    return data, rate


def synthetic_rir(rate: int, length: int, peak: int, seed: int = 0) -> np.ndarray:
    """A decaying random tail with its maximum at `peak`, as int16 values."""
    rng = np.random.default_rng(seed)
    tail = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.05 * rate)) * 0.3
    rir = np.zeros(length)
    rir[peak:] = tail[:length - peak]
    rir[peak] = 1.0
    return np.round(rir / np.abs(rir).max() * 20000).astype(np.int16)
