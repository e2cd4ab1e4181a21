"""PLDA and LDA against references: known generating parameters, closed-form ML, direct Gaussian LLRs."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from embedding_data import make_speakers, make_trials, read_scores, write_embeddings, write_trials, write_utt2spk
from scipy.linalg import eigh
from scipy.stats import multivariate_normal

from spkid.errors import SpkidError
from spkid.scoring.backend import BackendModel, train_backend
from spkid.scoring.lda import compute_lda
from spkid.scoring.plda import (
    Plda,
    PldaConfig,
    PldaStats,
    estimate_plda,
    kaldi_plda_bytes,
    read_kaldi_plda,
    train_plda,
)
from spkid.scoring.scorers import PldaScorer


@pytest.fixture(scope="module")
def synth():
    return make_speakers(dim=5, n_spk=400, n_utt=8, seed=3)


@pytest.fixture(scope="module")
def estimate(synth):
    return train_plda(synth.x, [synth.spk_of[u] for u in synth.utts], num_em_iters=10)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_em_approaches_the_generating_parameters(synth, estimate):
    assert rel(estimate.within_var, synth.within) < 0.05  # 2800 within-class degrees of freedom
    assert rel(estimate.between_var, synth.between) < 0.2  # 400 speakers
    assert rel(estimate.plda.mean, synth.mean) < 0.1


def test_em_converges_to_the_closed_form_ml_solution(synth, estimate):
    """With equal utterance counts n the ML solution is W = scatter / (N - S), B = cov(means) - W / n."""
    n = 8
    groups = synth.x.reshape(-1, n, synth.x.shape[1])
    means = groups.mean(axis=1)
    d = groups - means[:, None, :]
    w_ml = np.einsum("sni,snj->ij", d, d) / (len(synth.x) - len(groups))
    centered = means - means.mean(axis=0)
    b_ml = centered.T @ centered / len(groups) - w_ml / n
    assert rel(estimate.within_var, w_ml) < 3e-3  # after Kaldi's 10 iterations: close
    assert rel(estimate.between_var, b_ml) < 3e-3
    longer = estimate_plda(PldaStats.from_groups(list(groups)), num_em_iters=100)  # converged
    assert rel(longer.within_var, w_ml) < 1e-12
    assert rel(longer.between_var, b_ml) < 1e-12


def test_em_objective_increases(estimate):
    objf = np.array(estimate.objf)
    assert len(objf) == 10 and (np.diff(objf) >= -1e-12).all() and objf[-1] > objf[0]


def test_diagonal_form(estimate):
    """Kaldi's GetOutput: transform makes W unit and B diagonal (psi, decreasing); offset = -transform mean."""
    plda = estimate.plda
    t = plda.transform
    np.testing.assert_allclose(t @ estimate.within_var @ t.T, np.eye(plda.dim), atol=1e-10)
    np.testing.assert_allclose(t @ estimate.between_var @ t.T, np.diag(plda.psi), atol=1e-10)
    assert (np.diff(plda.psi) <= 0).all() and (plda.psi >= 0).all()
    np.testing.assert_allclose(plda.offset, -t @ plda.mean)
    w, b = plda.covariances()
    np.testing.assert_allclose(w, estimate.within_var, atol=1e-10)
    np.testing.assert_allclose(b, estimate.between_var, atol=1e-10)


def slow_llr(plda: Plda, enroll: np.ndarray, test: np.ndarray) -> float:
    """log p(enroll utts, test | same speaker) - log p(enroll utts) - log p(test), as full joint Gaussians."""
    within, between = plda.covariances()
    n, d = enroll.shape

    def joint_logpdf(rows: np.ndarray) -> float:
        k = len(rows)
        cov = np.kron(np.ones((k, k)), between) + np.kron(np.eye(k), within)
        return multivariate_normal(np.tile(plda.mean, k), cov).logpdf(rows.ravel())

    return joint_logpdf(np.vstack([enroll, test])) - joint_logpdf(enroll) - joint_logpdf(test[None])


@pytest.mark.parametrize("n_enroll", [1, 3])
def test_llr_equals_direct_two_covariance_likelihood_ratio(synth, estimate, n_enroll):
    plda = estimate.plda
    rng = np.random.default_rng(7)
    config = PldaConfig(normalize_length=False)
    scorer = PldaScorer(plda, config)
    for _ in range(6):
        enroll = synth.x[rng.choice(len(synth.x), n_enroll, replace=False)]
        test = synth.x[rng.integers(len(synth.x))]
        # Kaldi: average the enrollment (ivector-mean), transform, LogLikelihoodRatio with n
        u, _ = plda.transform_ivectors(enroll.mean(axis=0, keepdims=True), n_enroll, config)
        v, _ = plda.transform_ivectors(test[None], 1, config)
        kaldi = plda.log_likelihood_ratio(u[0], n_enroll, v[0])
        fast = scorer.pairs(scorer.enroll(enroll.mean(axis=0, keepdims=True), np.array([n_enroll])),
                            scorer.test(test[None]), np.array([0]), np.array([0]))[0]
        assert kaldi == pytest.approx(slow_llr(plda, enroll, test), abs=1e-4)
        assert fast == pytest.approx(float(np.float32(kaldi)), rel=2 ** -23)  # ivector-plda-scoring: BaseFloat


def test_vectorised_scores_equal_kaldi_loop(synth, estimate):
    """pairs() and matrix() against Plda::LogLikelihoodRatio per pair, with Kaldi's length normalisation."""
    plda = estimate.plda
    rng = np.random.default_rng(11)
    enroll, test = synth.x[:30], synth.x[100:140]
    counts = rng.integers(1, 6, size=len(enroll))
    for config in (PldaConfig(), PldaConfig(simple_length_norm=True), PldaConfig(normalize_length=False)):
        scorer = PldaScorer(plda, config)
        e_rep, t_rep = scorer.enroll(enroll, counts), scorer.test(test)
        u, _ = plda.transform_ivectors(enroll, counts, config)
        v, _ = plda.transform_ivectors(test, 1, config)
        loop = np.array([[plda.log_likelihood_ratio(u[i], int(counts[i]), v[j]) for j in range(len(test))]
                         for i in range(len(enroll))])
        np.testing.assert_allclose(scorer.matrix(e_rep, t_rep), loop, rtol=1e-10, atol=1e-9)
        ei, ti = rng.integers(len(enroll), size=200), rng.integers(len(test), size=200)
        np.testing.assert_allclose(scorer.pairs(e_rep, t_rep, ei, ti), loop[ei, ti].astype(np.float32),
                                   rtol=2 ** -23)  # the scores written are BaseFloat, as Kaldi's


def test_transform_ivector_normalization_factor(estimate, synth):
    plda = estimate.plda
    x = synth.x[:5]
    for n in (1, 4):
        y, factors = plda.transform_ivectors(x, n)
        for row, out, f in zip(x, y, factors):
            t = plda.transform @ (row - plda.mean)
            dot = sum(t[i] ** 2 / (plda.psi[i] + 1.0 / n) for i in range(plda.dim))
            assert f == pytest.approx(np.sqrt(plda.dim / dot))
            np.testing.assert_allclose(out, (t * f).astype(np.float32), rtol=1e-6)
    y, factors = plda.transform_ivectors(x, 1, PldaConfig(simple_length_norm=True))
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.sqrt(plda.dim), rtol=1e-6)


def test_one_utterance_per_speaker_is_an_error(synth):
    x = synth.x[:20]
    with pytest.raises(SpkidError, match="No speakers with multiple utterances"):
        train_plda(x, [f"s{i}" for i in range(20)])
    with pytest.raises(SpkidError, match="No speakers with multiple utterances"):
        train_backend(x, [f"s{i}" for i in range(20)], lda_dim=3)


def test_lda_solves_the_generalised_eigenproblem(synth):
    labels = [synth.spk_of[u] for u in synth.utts]
    lda = compute_lda(synth.x, labels, 3)
    linear, offset = lda[:, :-1], lda[:, -1]
    x = synth.x - synth.x.mean(axis=0)
    total = x.T @ x / len(x)
    groups = x.reshape(-1, 8, x.shape[1])
    means = groups.mean(axis=1)
    within = total - 8 * means.T @ means / len(x)
    between = total - within
    np.testing.assert_allclose(linear @ within @ linear.T, np.eye(3), atol=1e-8)
    values, vectors = eigh(between, within)
    np.testing.assert_allclose(linear @ between @ linear.T, np.diag(values[::-1][:3]), atol=1e-8)
    for row, ref in zip(linear, vectors[:, ::-1].T[:3]):  # each row is a generalised eigenvector (+-)
        assert min(np.abs(row - ref).max(), np.abs(row + ref).max()) < 1e-6
    np.testing.assert_allclose(linear @ synth.x.mean(axis=0) + offset, 0, atol=1e-9)
    with pytest.raises(SpkidError, match="LDA dimension"):
        compute_lda(synth.x, labels, 6)


def test_kaldi_binary_plda_bytes():
    plda = Plda(np.array([1.0, 2.0]), np.array([[1.0, 0.5], [0.0, 2.0]]), np.array([3.0, 0.25]))
    expect = (b"\0B<Plda> " + b"DV \x04" + struct.pack("<i", 2) + struct.pack("<2d", 1.0, 2.0)
              + b"DM \x04" + struct.pack("<i", 2) + b"\x04" + struct.pack("<i", 2)
              + struct.pack("<4d", 1.0, 0.5, 0.0, 2.0)
              + b"DV \x04" + struct.pack("<i", 2) + struct.pack("<2d", 3.0, 0.25) + b"</Plda> ")
    assert kaldi_plda_bytes(plda) == expect


def test_model_file_round_trip(tmp_path, synth):
    labels = [synth.spk_of[u] for u in synth.utts]
    model, _ = train_backend(synth.x[:400], labels[:400], lda_dim=4)
    model.save(str(tmp_path / "plda.npz"))
    back = BackendModel.load(str(tmp_path / "plda.npz"))
    np.testing.assert_array_equal(back.preprocess(synth.x[:10]), model.preprocess(synth.x[:10]))
    np.testing.assert_array_equal(back.plda.transform, model.plda.transform)
    assert back.length_norm and back.lda.shape == (4, 6)
    (tmp_path / "kaldi_plda").write_bytes(kaldi_plda_bytes(model.plda))
    kaldi = read_kaldi_plda(str(tmp_path / "kaldi_plda"))
    np.testing.assert_array_equal(kaldi.psi, model.plda.psi)
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(SpkidError, match="junk.npz"):
        BackendModel.load(str(tmp_path / "junk.npz"))


def test_train_plda_and_score_cli(run, tmp_path):
    train = make_speakers(dim=8, n_spk=60, n_utt=6, seed=5)
    test = make_speakers(dim=8, n_spk=10, n_utt=4, seed=5, prefix="tst")  # same B, W, mean (same seed)
    train_scp = write_embeddings(tmp_path / "train", train.utts, train.x)
    test_scp = write_embeddings(tmp_path / "test", test.utts, test.x)
    utt2spk = write_utt2spk(tmp_path / "utt2spk", train.spk_of)
    trials = make_trials(test.utts, test.spk_of, 150)
    trials_file = write_trials(tmp_path / "trials", trials)
    run(["spkid", "train-plda", "--lda-dim=6", "--kaldi-dir", str(tmp_path / "kaldi"), train_scp, utt2spk,
         str(tmp_path / "plda.npz")])
    assert {p.name for p in (tmp_path / "kaldi").iterdir()} == {"mean.vec", "transform.mat", "plda"}
    run(["spkid", "score", "--trials", trials_file, "--enroll", test_scp, "--test", test_scp,
         "--plda", str(tmp_path / "plda.npz"), "--output", str(tmp_path / "scores")])
    scores = read_scores(tmp_path / "scores")
    assert [(a, b) for a, b, _ in scores] == [(a, b) for a, b, _ in trials]
    # the same with a loop over Kaldi's per-trial steps
    model = BackendModel.load(str(tmp_path / "plda.npz"))
    index = {u: i for i, u in enumerate(test.utts)}
    x32 = test.x.astype(np.float32)
    for (a, b, score) in scores[:40]:
        u, _ = model.plda.transform_ivectors(model.preprocess(x32[index[a]][None]), 1)
        v, _ = model.plda.transform_ivectors(model.preprocess(x32[index[b]][None]), 1)
        assert score == pytest.approx(model.plda.log_likelihood_ratio(u[0], 1, v[0]), rel=1e-6, abs=1e-5)
    labels = np.array([t[2] == "target" for t in trials])
    values = np.array([s for _, _, s in scores])
    assert values[labels].mean() > values[~labels].mean() + 3
    # Kaldi's files (mean.vec, transform.mat, plda) give the same scores
    kaldi = tmp_path / "kaldi"
    run(["spkid", "score", "--trials", trials_file, "--enroll", test_scp, "--test", test_scp,
         "--plda", str(kaldi / "plda"), "--mean", str(kaldi / "mean.vec"), "--lda", str(kaldi / "transform.mat"),
         "--output", str(tmp_path / "scores_kaldi")])
    np.testing.assert_allclose([s for _, _, s in read_scores(tmp_path / "scores_kaldi")], values,
                               rtol=1e-4, atol=1e-3)


def test_train_plda_cli_one_utterance_per_speaker(run, tmp_path):
    data = make_speakers(dim=4, n_spk=12, n_utt=1)
    scp = write_embeddings(tmp_path / "x", data.utts, data.x)
    utt2spk = write_utt2spk(tmp_path / "utt2spk", data.spk_of)
    proc = run(["spkid", "train-plda", scp, utt2spk, str(tmp_path / "plda.npz")], check=False, text=True)
    assert proc.returncode == 1 and not (tmp_path / "plda.npz").exists()
    assert "Error: No speakers with multiple utterances" in proc.stderr
    assert "each of the 12 speakers has one utterance" in proc.stderr


def test_single_speaker_is_refused():
    """One speaker leaves the between-speaker covariance unestimable: refused, not a degenerate model."""
    x = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(SpkidError, match=r"PLDA needs at least 2 speakers; all 20 embeddings are of speaker 'a'"):
        train_backend(x, ["a"] * 20)


def test_lda_dim_above_between_class_rank_warns(caplog):
    synth = make_speakers(dim=6, n_spk=4, n_utt=6, seed=2)
    labels = [synth.spk_of[u] for u in synth.utts]
    with caplog.at_level("WARNING", logger="spkid"):
        compute_lda(synth.x - synth.x.mean(axis=0), labels, 3)
    assert "above the rank" not in caplog.text
    with caplog.at_level("WARNING", logger="spkid"):
        compute_lda(synth.x - synth.x.mean(axis=0), labels, 5)
    assert "LDA dimension 5 is above the rank of the between-speaker covariance (4 speakers - 1 = 3)" in caplog.text
