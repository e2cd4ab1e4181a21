"""Scoring back-end: Kaldi vector bytes, mean-embeddings, cosine scoring, AS-norm, calibration, bad input."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from embedding_data import (
    make_speakers,
    make_trials,
    read_scores,
    write_embeddings,
    write_spk2utt,
    write_trials,
)

from spkid.errors import SpkidError
from spkid.kaldi.io import TableWriter
from spkid.scoring.calibration import cllr, fit_calibration
from spkid.scoring.embeddings import load_embeddings, read_int_table, read_vector_file
from spkid.scoring.metrics import compute_eer, compute_min_dcf
from spkid.scoring.norm import cohort_stats, normalize
from spkid.scoring.plda import train_plda
from spkid.scoring.scorers import CosineScorer, PldaScorer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Synthetic embeddings (dim 8): eval set of 12 speakers x 5 utts, a cohort, trials with labels."""
    d = tmp_path_factory.mktemp("scoring")
    ev = make_speakers(dim=8, n_spk=12, n_utt=5, seed=2)
    cohort = make_speakers(dim=8, n_spk=30, n_utt=1, seed=2, prefix="coh")
    trials = make_trials(ev.utts, ev.spk_of, 200)
    return {"dir": d, "ev": ev, "cohort": cohort, "trials": trials,
            "scp": write_embeddings(d / "eval", ev.utts, ev.x),
            "cohort_scp": write_embeddings(d / "cohort", cohort.utts, cohort.x),
            "trials_file": write_trials(d / "trials", trials),
            "spk2utt": write_spk2utt(d / "spk2utt", ev.spk2utt())}


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# ------------------------------------------------------------------------------------------- Kaldi format
def test_table_writer_bytes_are_kaldi_float_vectors(tmp_path):
    """Kaldi's binary table entry: key, space, \\0B, `FV `, \\4 + int32 size, float32 data."""
    a = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    b = np.array([1e-3, 2.0], dtype=np.float32)
    with TableWriter(f"ark:{tmp_path}/x.ark") as w:
        w.write("utt-a", a)
        w.write("utt-b", b)
    expect = (b"utt-a \0BFV \x04" + struct.pack("<i", 3) + struct.pack("<3f", *a)
              + b"utt-b \0BFV \x04" + struct.pack("<i", 2) + struct.pack("<2f", *b))
    assert (tmp_path / "x.ark").read_bytes() == expect


def test_hand_made_kaldi_ark_is_read(tmp_path):
    """An ark built byte by byte (a float and a double vector) is read through ark: and scp:."""
    first = b"u1 \0BFV \x04" + struct.pack("<i", 2) + struct.pack("<2f", 0.25, -4.0)
    second = b"u2 \0BDV \x04" + struct.pack("<i", 2) + struct.pack("<2d", 1.5, 1e-8)
    (tmp_path / "h.ark").write_bytes(first + second)
    (tmp_path / "h.scp").write_text(f"u1 {tmp_path}/h.ark:3\nu2 {tmp_path}/h.ark:{len(first) + 3}\n")
    for spec in (f"ark:{tmp_path}/h.ark", f"scp:{tmp_path}/h.scp"):
        emb = load_embeddings(spec)
        assert emb.keys == ["u1", "u2"] and emb.matrix.dtype == np.float32
        np.testing.assert_array_equal(emb.matrix, np.float32([[0.25, -4.0], [1.5, 1e-8]]))


def test_text_ark_round_trip(tmp_path):
    x = np.array([[0.5, -2.25, 3.125e-5], [1.1, 0.3, -0.7]], dtype=np.float32)
    with TableWriter(f"ark,t:{tmp_path}/t.ark") as w:
        for key, row in zip(["a", "b"], x):
            w.write(key, row)
    text = (tmp_path / "t.ark").read_text()
    assert text.startswith("a  [ 0.5 -2.25 ") and text.count("\n") == 2
    emb = load_embeddings(f"ark,t:{tmp_path}/t.ark")
    np.testing.assert_array_equal(emb.matrix, x)


def test_text_ark_with_integer_looking_first_value(tmp_path):
    """Kaldi writes 1.0 as `1`: bracketed text arrays are float (kaldiio alone would guess int32)."""
    (tmp_path / "t.ark").write_text("a  [ 1 2.5 -3 ]\n")
    np.testing.assert_array_equal(load_embeddings(f"ark,t:{tmp_path}/t.ark").matrix, [[1, 2.5, -3]])
    from spkid.kaldi.io import read_dict
    (tmp_path / "m.ark").write_text("b  [\n  1 2\n  3 4.5 ]\nc 1 2 3\n")
    tables = read_dict(f"ark:{tmp_path}/m.ark")
    assert tables["b"].dtype == np.float32 and tables["b"].tolist() == [[1, 2], [3, 4.5]]
    assert tables["c"].dtype == np.int32 and tables["c"].tolist() == [1, 2, 3]


# ------------------------------------------------------------------------------------------ mean-embeddings
def test_mean_embeddings_per_speaker(run, data, tmp_path):
    ev = data["ev"]
    proc = run(["spkid", "mean-embeddings", data["spk2utt"], data["scp"],
                f"ark,scp:{tmp_path}/spk.ark,{tmp_path}/spk.scp", f"ark,t:{tmp_path}/num_utts.ark"], text=True)
    assert "Computed mean of 12 speakers" in proc.stderr
    means = load_embeddings(f"scp:{tmp_path}/spk.scp")
    x32 = ev.x.astype(np.float32).astype(np.float64)
    for spk, utts in ev.spk2utt().items():
        rows = [ev.utts.index(u) for u in utts]
        np.testing.assert_allclose(means.matrix[means.index[spk]], x32[rows].mean(axis=0), rtol=1e-6)
    assert (tmp_path / "num_utts.ark").read_text() == "".join(f"{s} 5\n" for s in sorted(ev.spk2utt()))
    # Kaldi skips utterances without an embedding (warning) and counts the rest
    spk2utt = tmp_path / "spk2utt"
    spk2utt.write_text(open(data["spk2utt"]).read().replace("spk000-u04", "spk000-u04 gone-1"))
    proc = run(["spkid", "mean-embeddings", str(spk2utt), data["scp"], f"ark:{tmp_path}/s2.ark",
                f"ark:{tmp_path}/n2.ark"], text=True)
    assert "No embedding present in input for utterance gone-1" in proc.stderr
    assert read_int_table(f"ark:{tmp_path}/n2.ark")["spk000"] == 5  # binary Int32 table


def test_mean_embeddings_global_mean(run, data, tmp_path):
    run(["spkid", "mean-embeddings", data["scp"], str(tmp_path / "mean.vec")])
    text = (tmp_path / "mean.vec").read_text()
    assert text.startswith(" [ ") and text.endswith(" ]\n")
    expect = data["ev"].x.astype(np.float32).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(read_vector_file(str(tmp_path / "mean.vec")), expect, rtol=1e-6)
    run(["spkid", "mean-embeddings", "--binary=true", data["scp"], str(tmp_path / "mean_b.vec")])
    assert (tmp_path / "mean_b.vec").read_bytes()[:5] == b"\0BDV "
    np.testing.assert_array_equal(read_vector_file(str(tmp_path / "mean_b.vec")), expect)


# ------------------------------------------------------------------------------------------------- scoring
def test_cosine_scores_cli(run, data, tmp_path):
    ev = data["ev"]
    run(["spkid", "mean-embeddings", data["scp"], str(tmp_path / "mean.vec")])
    proc = run(["spkid", "score", "--trials", data["trials_file"], "--enroll", data["scp"], "--test",
                data["scp"], "--mean", str(tmp_path / "mean.vec")], text=True)
    (tmp_path / "scores").write_text(proc.stdout)
    scores = read_scores(tmp_path / "scores")
    assert [(a, b) for a, b, _ in scores] == [(a, b) for a, b, _ in data["trials"]]
    x = ev.x.astype(np.float32).astype(np.float64)
    x = x - x.mean(axis=0)
    idx = {u: i for i, u in enumerate(ev.utts)}
    for a, b, s in scores:
        assert s == pytest.approx(cosine(x[idx[a]], x[idx[b]]), abs=2e-6)
    eer = run(["spkid", "compute-eer", "--trials", data["trials_file"], str(tmp_path / "scores")], text=True)
    assert float(eer.stdout) < 25
    # the mean may also be given as the table it is computed from; trials without labels work too
    (tmp_path / "pairs").write_text("".join(f"{a} {b}\n" for a, b, _ in data["trials"]))
    run(["spkid", "score", "--trials", str(tmp_path / "pairs"), "--enroll", data["scp"], "--test", data["scp"],
         "--mean", data["scp"], "--output", str(tmp_path / "scores2")])
    again = read_scores(tmp_path / "scores2")
    assert [x[:2] for x in again] == [x[:2] for x in scores]  # mean.vec is text with 7 digits: close
    np.testing.assert_allclose([x[2] for x in again], [x[2] for x in scores], atol=2e-6)


@pytest.mark.parametrize("backend", ["cosine", "plda"])
def test_enroll_spk2utt_equals_mean_embeddings_route(run, data, tmp_path, backend):
    """--enroll-spk2utt gives the scores of mean-embeddings + --num-utts (Kaldi's sre recipe)."""
    ev = data["ev"]
    trials = write_trials(tmp_path / "trials", [(f"spk{i % 12:03d}", u) for i, u in enumerate(ev.utts)])
    opts = []
    if backend == "plda":
        train = make_speakers(dim=8, n_spk=50, n_utt=4, seed=2, prefix="tr")
        train_scp = write_embeddings(tmp_path / "train", train.utts, train.x)
        (tmp_path / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(train.spk_of.items())))
        run(["spkid", "train-plda", train_scp, str(tmp_path / "utt2spk"), str(tmp_path / "plda.npz")])
        opts = ["--plda", str(tmp_path / "plda.npz")]
    run(["spkid", "score", "--trials", trials, "--enroll", data["scp"], "--enroll-spk2utt", data["spk2utt"],
         "--test", data["scp"], "--output", str(tmp_path / "a"), *opts])
    run(["spkid", "mean-embeddings", data["spk2utt"], data["scp"], f"ark:{tmp_path}/spk.ark",
         f"ark,t:{tmp_path}/num_utts.ark"])
    run(["spkid", "score", "--trials", trials, "--enroll", f"ark:{tmp_path}/spk.ark", "--num-utts",
         f"ark:{tmp_path}/num_utts.ark", "--test", data["scp"], "--output", str(tmp_path / "b"), *opts])
    a, b = read_scores(tmp_path / "a"), read_scores(tmp_path / "b")
    assert [x[:2] for x in a] == [x[:2] for x in b]
    np.testing.assert_allclose([x[2] for x in a], [x[2] for x in b], rtol=1e-6, atol=1e-6)


def asnorm_loop(enroll: np.ndarray, test: np.ndarray, cohort: np.ndarray, pairs, top_n: int):
    """WeSpeaker's score_norm.py, one trial at a time: cosine scores, sorted cohort scores, top-N."""
    out = []
    for e, t in pairs:
        raw = cosine(enroll[e], test[t])
        stats = []
        for vec in (enroll[e], test[t]):
            cs = sorted((cosine(vec, c) for c in cohort), reverse=True)[:top_n]
            stats.append((np.mean(cs), np.std(cs)))
        (em, es), (tm, ts) = stats
        out.append(0.5 * ((raw - em) / es + (raw - tm) / ts))
    return np.array(out)


def test_asnorm_equals_loop_reference(data):
    rng = np.random.default_rng(0)
    enroll, test, cohort = data["ev"].x[:20], data["ev"].x[20:], data["cohort"].x
    pairs = [(int(rng.integers(len(enroll))), int(rng.integers(len(test)))) for _ in range(60)]
    ei, ti = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    scorer = CosineScorer()
    e_rep, t_rep, c_rep = scorer.enroll(enroll), scorer.test(test), scorer.test(cohort)
    raw = scorer.pairs(e_rep, t_rep, ei, ti)
    for top_n in (7, None):
        em, es = cohort_stats(lambda sl: scorer.matrix((e_rep[0][sl],), c_rep), len(enroll), top_n)
        tm, ts = cohort_stats(lambda sl: scorer.matrix((t_rep[0][sl],), c_rep), len(test), top_n)
        fast = normalize(raw, em[ei], es[ei], tm[ti], ts[ti])
        np.testing.assert_allclose(fast, asnorm_loop(enroll, test, cohort, pairs, top_n or len(cohort)),
                                   rtol=1e-10)


def test_asnorm_plda_cohort_is_symmetric(data):
    """With PLDA the cohort is scored as test for enroll models and as model for test utterances."""
    train = make_speakers(dim=8, n_spk=60, n_utt=4, seed=9)
    plda = train_plda(train.x, [train.spk_of[u] for u in train.utts]).plda
    scorer = PldaScorer(plda)
    x, cohort = data["ev"].x[:10], data["cohort"].x
    a = scorer.matrix(scorer.enroll(x), scorer.test(cohort))
    b = scorer.matrix(scorer.enroll(cohort), scorer.test(x)).T
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # Kaldi's LLR is symmetric for n = 1


def test_asnorm_cli(run, data, tmp_path):
    base = ["spkid", "score", "--trials", data["trials_file"], "--enroll", data["scp"], "--test", data["scp"]]
    run(base + ["--output", str(tmp_path / "raw")])
    run(base + ["--norm", "asnorm", "--cohort", data["cohort_scp"], "--top-n", "10",
                "--output", str(tmp_path / "as")])
    run(base + ["--norm=snorm", f"--cohort={data['cohort_scp']}", "--output", str(tmp_path / "s")])
    ev, coh = data["ev"], data["cohort"].x.astype(np.float32)
    idx = {u: i for i, u in enumerate(ev.utts)}
    x = ev.x.astype(np.float32)
    pairs = [(idx[a], idx[b]) for a, b, _ in data["trials"][:30]]
    for name, top_n in (("as", 10), ("s", len(coh))):
        got = [s for _, _, s in read_scores(tmp_path / name)][:30]
        np.testing.assert_allclose(got, asnorm_loop(x, x, coh, pairs, top_n), rtol=1e-5, atol=1e-5)
    proc = run(base + ["--norm", "asnorm"], check=False, text=True)
    assert proc.returncode == 1 and "--norm asnorm needs --cohort" in proc.stderr


# ---------------------------------------------------------------------------------------------- calibration
def test_calibration_keeps_eer_improves_cllr_and_gives_threshold():
    rng = np.random.default_rng(4)
    labels = rng.random(3000) < 0.2
    scores = np.where(labels, rng.normal(0.6, 0.12, labels.size), rng.normal(0.1, 0.1, labels.size))
    calib = fit_calibration(scores, labels)
    llrs = calib.apply(scores)
    assert compute_eer(llrs[labels], llrs[~labels])[0] == compute_eer(scores[labels], scores[~labels])[0]
    assert compute_min_dcf(llrs, labels, 0.01)[0] == pytest.approx(compute_min_dcf(scores, labels, 0.01)[0])
    assert calib.scale > 0 and cllr(llrs, labels) < cllr(scores, labels) and cllr(llrs, labels) < 0.5
    assert calib.threshold == compute_eer(scores[labels], scores[~labels])[1]
    assert calib.llr_threshold == pytest.approx(calib.scale * calib.threshold + calib.offset)
    # calibrated LLRs are (close to) true log-likelihood ratios: the Bayes threshold is near minDCF's
    bayes = fit_calibration(scores, labels, "bayes", p_target=0.2)
    assert bayes.llr_threshold == pytest.approx(np.log(0.8 / 0.2))
    with pytest.raises(SpkidError, match="not higher"):
        fit_calibration(-scores, labels)


def test_calibrate_cli_and_score_with_calibration(run, data, tmp_path):
    base = ["spkid", "score", "--trials", data["trials_file"], "--enroll", data["scp"], "--test", data["scp"]]
    run(base + ["--output", str(tmp_path / "raw")])
    proc = run(["spkid", "calibrate", "--trials", data["trials_file"], "--scores", str(tmp_path / "raw"),
                "--output", str(tmp_path / "calib.json"), "--operating-point", "min-dcf"], text=True)
    calib = json.loads((tmp_path / "calib.json").read_text())
    assert calib["format"] == "spkid-calibration-1" and calib["operating_point"] == "min-dcf"
    assert float(proc.stdout) == pytest.approx(calib["threshold"], rel=1e-6)
    assert calib["threshold"] == calib["thresholds"]["min-dcf"] and calib["dev"]["cllr"] < calib["dev"]["cllr_raw"]
    run(base + ["--calibration", str(tmp_path / "calib.json"), "--output", str(tmp_path / "llr")])
    raw = np.array([s for _, _, s in read_scores(tmp_path / "raw")])
    llr = np.array([s for _, _, s in read_scores(tmp_path / "llr")])
    np.testing.assert_allclose(llr, calib["scale"] * raw + calib["offset"], rtol=1e-5, atol=1e-5)
    eers = [run(["spkid", "compute-eer", "--trials", data["trials_file"], str(tmp_path / f)], text=True).stdout
            for f in ("raw", "llr")]
    assert eers[0] == eers[1]


# ------------------------------------------------------------------------------------------------ bad input
def test_trials_naming_missing_embeddings(run, data, tmp_path):
    trials = data["trials"][:5] + [("nobody-1", "spk000-u00"), ("spk000-u00", "ghost-1"),
                                   ("nobody-2", "ghost-2")]
    trials_file = write_trials(tmp_path / "trials", trials)
    proc = run(["spkid", "score", "--trials", trials_file, "--enroll", data["scp"], "--test", data["scp"],
                "--output", str(tmp_path / "scores")], check=False, text=True)
    assert proc.returncode == 1 and not (tmp_path / "scores").exists()
    msg = proc.stderr.strip()
    assert msg.count("\n") == 0, msg
    assert "3 of 8 trials name embeddings that are absent" in msg
    assert "2 enroll ids missing" in msg and "'nobody-1', 'nobody-2'" in msg
    assert "2 test ids missing" in msg and "'ghost-1', 'ghost-2'" in msg


def test_embeddings_of_different_dimensions(run, data, tmp_path):
    with TableWriter(f"ark:{tmp_path}/mixed.ark") as w:
        w.write("a", np.ones(4, np.float32))
        w.write("b", np.ones(4, np.float32))
        w.write("c", np.ones(3, np.float32))
    with pytest.raises(SpkidError, match=r"different dimensions: 'a' has dimension 4, 1 others differ: c \(3\)"):
        load_embeddings(f"ark:{tmp_path}/mixed.ark")
    other = write_embeddings(tmp_path / "small", ["spk000-u00", "spk000-u01"], np.ones((2, 5)))
    trials = write_trials(tmp_path / "trials", [("spk000-u00", "spk000-u01")])
    proc = run(["spkid", "score", "--trials", trials, "--enroll", data["scp"], "--test", other],
               check=False, text=True)
    assert proc.returncode == 1 and "embeddings of different dimensions" in proc.stderr
    assert "has 8" in proc.stderr and "has 5" in proc.stderr


def test_nan_embeddings(run, tmp_path):
    x = np.ones((4, 3), np.float32)
    x[1, 2] = np.nan
    x[3, 0] = np.inf
    scp = write_embeddings(tmp_path / "nan", ["u0", "u1", "u2", "u3"], x)
    trials = write_trials(tmp_path / "trials", [("u0", "u2")])
    for cmd in (["spkid", "score", "--trials", trials, "--enroll", scp, "--test", scp],
                ["spkid", "mean-embeddings", scp, str(tmp_path / "mean.vec")]):
        proc = run(cmd, check=False, text=True)
        assert proc.returncode == 1, proc.stderr
        assert "2 of 4 embeddings contain NaN or infinite values: 'u1', 'u3'" in proc.stderr


@pytest.mark.parametrize("content, message", [
    ("a b target\nc d maybe\n", "trials:2: label must be 'target' or 'nontarget'"),
    ("a b target\nc\n", "trials:2: expected '<enroll> <test> [target|nontarget]'"),
])
def test_bad_trials(run, data, tmp_path, content, message):
    (tmp_path / "trials").write_text(content)
    proc = run(["spkid", "score", "--trials", str(tmp_path / "trials"), "--enroll", data["scp"], "--test",
                data["scp"]], check=False, text=True)
    assert proc.returncode == 1 and message in proc.stderr


def test_help_has_examples(run):
    for cmd in ("score", "mean-embeddings", "train-plda", "calibrate", "plot-embeddings"):
        proc = run(["spkid", cmd, "--help"], text=True)
        assert "Example:" in proc.stdout and f"spkid {cmd}" in proc.stdout


def test_zero_embedding_is_named(run, tmp_path):
    """A zero embedding has no direction: the error names it and its table, for cosine and PLDA."""
    x = np.ones((4, 3), np.float32)
    x[2] = 0
    scp = write_embeddings(tmp_path / "zero", ["u0", "u1", "u2", "u3"], x)
    trials = write_trials(tmp_path / "trials", [("u0", "u1"), ("u0", "u2")])
    proc = run(["spkid", "score", "--trials", trials, "--enroll", scp, "--test", scp], check=False, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{scp}: 1 zero embeddings cannot be scored: 'u2'" in proc.stderr, proc.stderr
