"""EER and minDCF equal Kaldi's, checked against literal transcriptions of its C++ loop and python script."""
from __future__ import annotations

import numpy as np
import pytest
from kaldi_oracle import (
    kaldi_compute_eer,
    script_compute_error_rates,
    script_min_dcf,
)

from spkid.errors import SpkidError
from spkid.scoring.metrics import (
    ScoreTable,
    compute_eer,
    compute_error_rates,
    compute_min_dcf,
    join_trials,
    read_labelled_scores,
    read_scores,
    read_trials,
)


# --------------------------------------------------------------------------- data
def random_case(seed: int):
    """Scores with unequal target/nontarget counts, various overlaps and tie levels."""
    rng = np.random.default_rng(seed)
    n_tgt = int(rng.integers(1, 60))
    n_non = int(rng.integers(1, 300))
    shift = rng.uniform(-1, 4)
    tgt = rng.normal(shift, 1.0, n_tgt)
    non = rng.normal(0.0, 1.0, n_non)
    decimals = seed % 4  # 0: heavy ties ... 3: few ties; every 5th seed: no rounding
    if seed % 5:
        tgt, non = np.round(tgt, decimals), np.round(non, decimals)
    return tgt, non


def special_cases():
    rng = np.random.default_rng(7)
    yield "all equal", np.zeros(5), np.zeros(9)
    yield "all equal, one each", np.ones(1), np.ones(1)
    yield "separated", np.arange(10.0, 20.0), np.arange(0.0, 7.0)
    yield "inverted", np.arange(0.0, 7.0), np.arange(10.0, 20.0)
    yield "inverted, one target", np.zeros(1), np.ones(4)
    yield "one nontarget", rng.normal(size=13), np.zeros(1)
    yield "two values", rng.integers(0, 2, 40).astype(float), rng.integers(0, 2, 70).astype(float)
    yield "signed zeros", np.array([0.0, -0.0, 0.0, 1.0]), np.array([-0.0, 0.0, -1.0])
    yield "infinities", np.array([np.inf, 1.0, -np.inf]), np.array([-np.inf, 0.5, np.inf, 2.0])
    yield "float32 ties", np.array([1.0, 1.0 + 1e-9, 2.0]), np.array([1.0 + 2e-9, 0.5])


# --------------------------------------------------------------------------- EER
@pytest.mark.parametrize("seed", range(300))
def test_eer_equals_kaldi_random(seed):
    tgt, non = random_case(seed)
    assert compute_eer(tgt, non) == kaldi_compute_eer(tgt, non)


@pytest.mark.parametrize("case", list(special_cases()), ids=lambda c: c[0])
def test_eer_equals_kaldi_special(case):
    _, tgt, non = case
    assert compute_eer(tgt, non) == kaldi_compute_eer(tgt, non)


def test_eer_equals_kaldi_large():
    rng = np.random.default_rng(1)
    tgt = rng.normal(3.0, 1.0, 20_000).astype(np.float32)
    non = rng.normal(0.0, 1.0, 300_000).astype(np.float32)
    eer, threshold = compute_eer(tgt, non)
    assert (eer, threshold) == kaldi_compute_eer(tgt, non)
    assert 0.05 < eer < 0.08  # about 1 - Phi(1.5)


def test_eer_hand_computed():
    # targets sorted 0.3 0.6 0.8 0.9, nontargets 0.1 0.2 0.4 0.7: position 1 has nontarget[2] = 0.4 < 0.6.
    assert compute_eer([0.9, 0.3, 0.8, 0.6], [0.7, 0.1, 0.4, 0.2]) == (0.25, float(np.float32(0.6)))
    assert compute_eer([2.0, 3.0, 4.0], [0.0, 1.0]) == (0.0, 2.0)  # separated: 0 at the lowest target
    assert compute_eer([0.0, 1.0, 2.0, 3.0], [10.0, 11.0]) == (0.75, 3.0)  # inverted: last position
    eer, _ = compute_eer([1.0, 2.0, 3.0], [0.0, 1.5])
    assert eer == float(np.float32(1 / 3))  # float32, like Kaldi's BaseFloat


def test_eer_input_order_and_dtype_do_not_matter():
    tgt, non = random_case(3)
    rng = np.random.default_rng(0)
    assert compute_eer(rng.permutation(tgt), list(non)) == compute_eer(tgt.astype(np.float32), non)


def test_eer_rejects_empty_and_nan():
    with pytest.raises(ValueError):
        compute_eer([], [1.0])
    with pytest.raises(ValueError):
        compute_eer([1.0], [])
    with pytest.raises(ValueError):
        compute_eer([1.0, np.nan], [0.0])


# --------------------------------------------------------------------------- minDCF
@pytest.mark.parametrize("seed", range(150))
def test_min_dcf_equals_script_random(seed):
    tgt, non = random_case(seed)
    if len(tgt) == 0 or len(non) == 0:
        pytest.skip("needs both kinds")
    rng = np.random.default_rng(seed + 1000)
    scores = np.concatenate([tgt, non])
    labels = np.concatenate([np.ones(len(tgt), int), np.zeros(len(non), int)])
    order = rng.permutation(len(scores))  # interleave, so tie order matters
    scores, labels = scores[order], labels[order]
    for p_target, c_miss, c_fa in [(0.01, 1, 1), (0.05, 1, 1), (0.5, 1, 1), (0.3, 2.0, 0.7), (0.999, 1, 10)]:
        got = compute_min_dcf(scores, labels, p_target, c_miss, c_fa)
        assert got == script_min_dcf(scores, labels, p_target, c_miss, c_fa)


@pytest.mark.parametrize("case", list(special_cases()), ids=lambda c: c[0])
def test_min_dcf_equals_script_special(case):
    _, tgt, non = case
    for scores, labels in [
        (np.concatenate([tgt, non]), [1] * len(tgt) + [0] * len(non)),
        (np.concatenate([non, tgt]), [0] * len(non) + [1] * len(tgt)),
    ]:
        for p_target in (0.01, 0.05, 0.5):
            assert compute_min_dcf(scores, labels, p_target) == script_min_dcf(scores, labels, p_target)


def test_error_rates_equal_script():
    tgt, non = random_case(2)
    scores = np.concatenate([non, tgt])
    labels = [0] * len(non) + [1] * len(tgt)
    fnrs, fprs, thresholds = compute_error_rates(scores, labels)
    ref = script_compute_error_rates(list(scores), labels)
    assert fnrs.tolist() == ref[0] and fprs.tolist() == ref[1] and thresholds.tolist() == list(ref[2])


def test_min_dcf_hand_computed():
    # sorted: 0.2 t, 0.4 n, 0.6 t, 0.8 n -> fnr .5 .5 1 1, fpr 1 .5 .5 0; p=0.5: c_det .75 .5 .75 .5
    # the first minimum (0.5 at 0.4) wins; normalised by min(0.5, 0.5).
    assert compute_min_dcf([0.6, 0.8, 0.2, 0.4], [1, 0, 1, 0], 0.5) == (1.0, 0.4)
    # separated: 0 cost at the highest nontarget
    assert compute_min_dcf([0.1, 0.4, 0.35, 0.8], [0, 1, 0, 1], 0.01) == (0.0, 0.35)
    # bool labels work too
    assert compute_min_dcf([0.1, 0.4, 0.35, 0.8], [False, True, False, True], 0.01) == (0.0, 0.35)


def test_min_dcf_rejects_bad_arguments():
    with pytest.raises(ValueError):
        compute_min_dcf([1.0, 0.0], [1, 0], 0.0)
    with pytest.raises(ValueError):
        compute_min_dcf([1.0, 0.0], [1, 0], 1.0)
    with pytest.raises(ValueError):
        compute_min_dcf([1.0, 0.0], [1, 0], 0.01, c_miss=0)
    with pytest.raises(ValueError):
        compute_min_dcf([1.0, 0.0], [1, 1], 0.01)  # no nontarget
    with pytest.raises(ValueError):
        compute_min_dcf([1.0, 0.0], [1, 2], 0.01)
    with pytest.raises(ValueError):
        compute_min_dcf([1.0, 0.0, 3.0], [1, 0], 0.01)


# --------------------------------------------------------------------------- readers and join
def test_read_labelled_scores(tmp_path):
    path = tmp_path / "s"
    path.write_text("1.5 target\n-0.25\tnontarget\n  2e-1 nontarget  \n")
    scores, labels = read_labelled_scores(str(path))
    assert scores.tolist() == [1.5, -0.25, 0.2] and labels.tolist() == [True, False, False]


@pytest.mark.parametrize("text, message", [
    ("1.0 target\n0.5\n", ":2: expected 2 fields"),
    ("1.0 target\n\n0.5 nontarget\n", ":2: expected 2 fields"),
    ("1.0 target\nabc nontarget\n", ":2: score 'abc' is not a number"),
    ("1.0 target\nnan nontarget\n", ":2: score is NaN"),
    ("1.0 target\n1e40 nontarget\n", ":2: score 1e40 is out of float32 range"),
    ("1.0 target\n0.5 impostor\n", ":2: label must be 'target' or 'nontarget', got 'impostor'"),
    ("1.0 target\n0.5 target\n", "no nontarget scores seen"),
    ("1.0 nontarget\n", "no target scores seen"),
    ("", "empty input"),
])
def test_read_labelled_scores_errors(tmp_path, text, message):
    path = tmp_path / "s"
    path.write_text(text)
    with pytest.raises(SpkidError, match=None) as err:
        read_labelled_scores(str(path))
    assert message in str(err.value) and "\n" not in str(err.value)
    if message.startswith(":"):
        assert str(err.value).startswith(f"{path}{message.split(' ')[0]}")


def test_read_from_pipe_and_failing_pipe():
    scores, labels = read_labelled_scores("printf '1 target\\n0 nontarget\\n' |")
    assert scores.tolist() == [1.0, 0.0] and labels.tolist() == [True, False]
    with pytest.raises(SpkidError, match="exited with status 3"):
        read_labelled_scores("printf '1 target\\n0 nontarget\\n'; exit 3 |")


def test_read_missing_file(tmp_path):
    with pytest.raises(SpkidError, match="cannot read"):
        read_labelled_scores(str(tmp_path / "absent"))


def test_join_follows_scores_order(tmp_path):
    (tmp_path / "trials").write_text("a x target\na y nontarget\nb x nontarget\nb y target\n")
    (tmp_path / "scores").write_text("b y 0.9\na y 0.1\na x 0.8\nb x 0.3\n")
    trials = read_trials(str(tmp_path / "trials"))
    scores, labels = join_trials(read_scores(str(tmp_path / "scores")), trials)
    assert scores.tolist() == [0.9, 0.1, 0.8, 0.3]
    assert labels.tolist() == [True, False, True, False]


def test_join_errors():
    trials = {("a", "x"): True, ("a", "y"): False, ("b", "x"): False}
    table = ScoreTable(["a", "a"], ["x", "y"], np.array([1.0, 0.0]))
    with pytest.raises(SpkidError, match=r"trials: 1 of 3 trials have no score in scores: 'b x'"):
        join_trials(table, trials)
    table = ScoreTable(["a", "a", "b", "c"], ["x", "y", "x", "z"], np.array([1.0, 0.0, 0.5, 2.0]))
    with pytest.raises(SpkidError, match=r"scores: 1 of 4 scores are for pairs not in trials: 'c z'"):
        join_trials(table, trials)
    table = ScoreTable(["a", "b"], ["x", "x"], np.array([1.0, 0.0]))
    with pytest.raises(SpkidError, match="no nontarget"):
        join_trials(table, {("a", "x"): True, ("b", "x"): True})


def test_join_lists_first_few_missing():
    trials = {(f"e{i}", "t"): bool(i % 2) for i in range(20)}
    table = ScoreTable(["e0", "e1"], ["t", "t"], np.array([0.0, 1.0]))
    with pytest.raises(SpkidError) as err:
        join_trials(table, trials)
    assert "18 of 20 trials" in str(err.value) and "'e2 t'" in str(err.value) and "..." in str(err.value)


def test_read_trials_duplicates(tmp_path):
    path = tmp_path / "trials"
    path.write_text("a x target\nb x nontarget\na x target\n")
    assert read_trials(str(path)) == {("a", "x"): True, ("b", "x"): False}
    path.write_text("a x target\nb x nontarget\na x nontarget\n")
    with pytest.raises(SpkidError, match=r":3: trial 'a x' is listed as both target and nontarget"):
        read_trials(str(path))
    path.write_text("a x target\nb x\n")
    with pytest.raises(SpkidError, match=r":2: expected 3 fields"):
        read_trials(str(path))
    path.write_text("a x target\nb x maybe\n")
    with pytest.raises(SpkidError, match=r":2: label must be"):
        read_trials(str(path))


def test_join_refuses_a_trial_scored_twice(tmp_path):
    """A pair scored twice would count twice in the EER: an error naming the trial and both lines."""
    (tmp_path / "trials").write_text("a x target\na y nontarget\n")
    (tmp_path / "scores").write_text("a x 0.8\na y 0.1\na x 0.7\n")
    with pytest.raises(SpkidError, match=r"scores:3: trial 'a x' is scored again \(first at line 1\) but "
                                         r"trials lists it once"):
        join_trials(read_scores(str(tmp_path / "scores")), read_trials(str(tmp_path / "trials")),
                    "scores", "trials")
    # a pair the trials list repeats may be scored as often (score on such a list writes each line)
    (tmp_path / "trials").write_text("a x target\na y nontarget\na x target\n")
    scores, labels = join_trials(read_scores(str(tmp_path / "scores")), read_trials(str(tmp_path / "trials")))
    assert scores.tolist() == [0.8, 0.1, 0.7] and labels.tolist() == [True, False, True]
