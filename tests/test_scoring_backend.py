"""spkid's PLDA back-end against a literal transcription of Kaldi's C++ (tests/kaldi_oracle.py): training
on embeddings with constant dimensions, and scoring through Kaldi's float tables."""
from __future__ import annotations

import logging

import kaldi_oracle as K
import numpy as np
import pytest

from spkid.scoring.backend import train_backend
from spkid.scoring.embeddings import Embeddings, speaker_means
from spkid.scoring.plda import train_plda
from spkid.scoring.scorers import PldaScorer


def relu_embeddings(seed: int, dim: int = 24, n_spk: int = 50, const=(3, 7, 11), sizes=(6, 8, 9)):
    """Length-normalised ReLU embeddings (as GE2E's) of speakers with 6-9 utterances; `const` dimensions
    never fire (always 0), as some of the imported Resemblyzer model's."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(dim, dim))
    centres = rng.normal(size=(n_spk, dim)) * 2
    rows, labels = [], []
    for s in range(n_spk):
        for _ in range(sizes[s % len(sizes)]):
            rows.append(np.maximum(mix @ (centres[s] + rng.normal(size=dim)) * 0.3 + 0.5, 0))
            labels.append(f"spk{s:03d}")
    x = np.array(rows)
    x[:, list(const)] = 0.0
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def groups_of(labels):
    out: dict[str, list[int]] = {}
    for i, spk in enumerate(labels):
        out.setdefault(spk, []).append(i)
    return [out[k] for k in sorted(out)]


@pytest.mark.parametrize("shift", [0.0, 0.25])  # dimensions always 0, or always the same other value
def test_constant_dimensions_warned_and_transform_well_defined_and_kaldis_elsewhere(shift, caplog):
    x, labels = relu_embeddings(0)
    x[:, [3, 7, 11]] += np.float32(shift)
    with caplog.at_level(logging.WARNING, logger="spkid"):
        est = train_plda(x, labels)
    assert "do not vary in 3 of 24 dimensions (dimensions 3, 7, 11)" in caplog.text
    mean, transform, psi, within, between = K.ivector_compute_plda(x, groups_of(labels))
    plda = est.plda
    np.testing.assert_allclose(plda.psi, psi, rtol=1e-6)
    np.testing.assert_allclose(plda.mean, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(est.within_var, within, rtol=1e-6, atol=1e-9 * np.abs(within).max())
    np.testing.assert_allclose(est.between_var, between, rtol=1e-6, atol=1e-9 * np.abs(between).max())
    # well defined: it makes W unit and B diagonal, and the constant dimensions are its own rows
    np.testing.assert_allclose(plda.transform @ est.within_var @ plda.transform.T, np.eye(24), atol=1e-8)
    np.testing.assert_allclose(plda.transform @ est.between_var @ plda.transform.T, np.diag(plda.psi), atol=1e-8)
    const_rows = [i for i, row in enumerate(plda.transform) if np.count_nonzero(row) == 1]
    assert sorted(int(np.flatnonzero(plda.transform[i])[0]) for i in const_rows) == [3, 7, 11]
    for i in const_rows:
        d = int(np.flatnonzero(plda.transform[i])[0])
        assert plda.transform[i, d] == pytest.approx(within[d, d] ** -0.5, rel=1e-6)
    # Kaldi's where Kaldi's is defined: rows of eigenvalues apart from the others (up to sign)
    for i in range(24):
        gap = np.min(np.abs(np.delete(psi, i) - psi[i])) / psi[i]
        if gap > 1e-3:
            sign = np.sign(plda.transform[i] @ transform[i])
            np.testing.assert_allclose(plda.transform[i] * sign, transform[i], rtol=1e-5,
                                       atol=1e-6 * np.abs(transform[i]).max())


def test_constant_direction_that_is_not_a_dimension(caplog):
    """x3 + x4 constant: the constant direction is found by the scatter's null space, not by dimension."""
    x, labels = relu_embeddings(1, const=())
    x[:, 4] = np.float32(0.5) - x[:, 3]
    with caplog.at_level(logging.WARNING, logger="spkid"):
        est = train_plda(x.astype(np.float64), labels)
    assert "do not vary in 1 of 24 dimensions" in caplog.text
    direction = np.zeros(24)
    direction[[3, 4]] = 2 ** -0.5
    rows = [r for r in est.plda.transform if abs(abs(r @ direction) / np.linalg.norm(r) - 1) < 1e-9]
    assert len(rows) == 1
    np.testing.assert_allclose(est.plda.transform @ est.within_var @ est.plda.transform.T, np.eye(24), atol=1e-8)
    _, _, psi, _, _ = K.ivector_compute_plda(x, groups_of(labels))
    np.testing.assert_allclose(est.plda.psi, psi, rtol=1e-5)


def speaker_constant_embeddings(seed: int = 2):
    """Embeddings with dimensions nearly constant within each speaker (within-class variance ~1e-12: psi in
    the hundreds to tens of thousands) and two never-firing ones: scores in the thousands."""
    x, labels = relu_embeddings(seed, dim=32, const=(3, 4))
    rng = np.random.default_rng(seed)
    spk = np.array([int(s[3:]) for s in labels])
    x[:, 10:13] = rng.normal(size=(spk.max() + 1, 3))[spk] * 0.05 + 1e-6 * rng.normal(size=(len(x), 3))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.mark.parametrize("lda_dim", [None, 20])
def test_scores_equal_kaldis_float_pipeline(lda_dim):
    """spkid score (speaker means, mean, LDA, length norm, PLDA) equals Kaldi's ivector-mean |
    ivector-subtract-global-mean | transform-vec | ivector-normalize-length | ivector-plda-scoring with the
    same model: Kaldi's float tables between the steps, its double TransformIvector/LogLikelihoodRatio and
    float score."""
    x, labels = speaker_constant_embeddings()
    model, _ = train_backend(x, labels, lda_dim, True, 10)
    n = len(x)
    groups = [list(range(i, i + 3)) for i in range(0, n - 3, 7)]
    rng = np.random.default_rng(3)
    trials = list(zip(rng.integers(0, len(groups), 3000).tolist(), rng.integers(0, n, 3000).tolist()))

    def kaldi_preprocess(v):
        v = K.subtract_global_mean(v, model.mean)
        if model.lda is not None:
            v = K.transform_vec(model.lda.astype(np.float32), v)  # --kaldi-dir writes transform.mat as float
        return K.normalize_length(v)

    enroll, counts = K.ivector_mean_speakers(x, groups)
    kaldi = K.plda_scoring((model.plda.mean, model.plda.transform, model.plda.psi), kaldi_preprocess(enroll),
                           counts, kaldi_preprocess(x), trials)
    keys = [f"u{i:04d}" for i in range(n)]
    means, count_of = speaker_means(Embeddings(keys, x), {f"m{g:03d}": [keys[i] for i in rows]
                                                          for g, rows in enumerate(groups)})
    np.testing.assert_array_equal(means.matrix, enroll)  # ivector-mean, in float
    scorer = PldaScorer(model.plda)
    e_rep = scorer.enroll(model.preprocess(means.matrix), np.array([count_of[k] for k in means.keys]))
    t_rep = scorer.test(model.preprocess(x))
    ours = scorer.pairs(e_rep, t_rep, np.array([e for e, _ in trials]), np.array([t for _, t in trials]))
    assert np.abs(kaldi).max() > 1000
    ulp = np.spacing(np.abs(kaldi).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(ours - kaldi) <= 2 * ulp), np.max(np.abs(ours - kaldi) / ulp)
    assert np.mean(ours == kaldi) > 0.95  # the same float score, bar rounding of the last bit
