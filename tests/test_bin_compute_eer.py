"""`spkid compute-eer`: Kaldi's output (EER % on stdout, log on stderr), --trials, and one-line errors."""
from __future__ import annotations

import re

import numpy as np
import pytest
from kaldi_oracle import kaldi_compute_eer, script_min_dcf


@pytest.fixture
def data(tmp_path):
    """Trials, scores (shuffled order) and the compute-eer input for 7 target and 40 nontarget trials."""
    rng = np.random.default_rng(5)
    n_tgt, n_non = 7, 40
    tgt = np.round(rng.normal(1.5, 1.0, n_tgt), 4)
    non = np.round(rng.normal(0.0, 1.0, n_non), 4)
    rows = [(f"spk{i % 3}-e{i}", f"utt{i}", s, "target") for i, s in enumerate(tgt)]
    rows += [(f"spk{i % 5}-e{i}", f"utt{i + 100}", s, "nontarget") for i, s in enumerate(non)]
    (tmp_path / "trials").write_text("".join(f"{e} {t} {lab}\n" for e, t, _, lab in rows))
    order = rng.permutation(len(rows))
    shuffled = [rows[i] for i in order]
    (tmp_path / "scores").write_text("".join(f"{e} {t} {s:.4f}\n" for e, t, s, _ in shuffled))
    (tmp_path / "eer_in").write_text("".join(f"{s:.4f} {lab}\n" for _, _, s, lab in rows))
    scores = np.array([s for _, _, s, _ in shuffled])
    labels = [int(lab == "target") for _, _, _, lab in shuffled]
    eer, threshold = kaldi_compute_eer(tgt, non)
    return {"dir": tmp_path, "eer": eer, "threshold": threshold, "scores": scores, "labels": labels}


def log_line(eer: float, threshold: float) -> str:
    return f"Equal error rate is {100.0 * eer:g}%, at threshold {threshold:g}"


def dcf_line(scores, labels, p_target, c_miss=1, c_fa=1) -> str:
    min_dcf, threshold = script_min_dcf(scores, labels, p_target, c_miss, c_fa)
    return (f"minDCF is {min_dcf:.4f} at threshold {threshold:.4f} "
            f"(p-target={p_target:g}, c-miss={c_miss:g}, c-fa={c_fa:g})")


def test_file(run, data):
    proc = run(["spkid", "compute-eer", str(data["dir"] / "eer_in")], text=True)
    assert proc.stdout == "%.4g\n" % (100.0 * data["eer"])
    assert proc.stdout == "28.57\n"  # 2 of 7 targets, 4 significant digits as Kaldi's std::cout.precision(4)
    assert log_line(data["eer"], data["threshold"]) in proc.stderr
    assert re.search(r"minDCF is \S+ at threshold \S+ \(p-target=0.01,", proc.stderr)
    assert re.search(r"minDCF is \S+ at threshold \S+ \(p-target=0.05,", proc.stderr)


def test_stdin_pipe_and_kaldi_option_spelling(run, data):
    proc = run(f"cat {data['dir'] / 'eer_in'} | spkid compute-eer --p-target=0.2 --c_fa=2 -", text=True)
    assert proc.stdout == "28.57\n"
    assert "(p-target=0.2, c-miss=1, c-fa=2)" in proc.stderr and "p-target=0.01" not in proc.stderr


def test_trials(run, data):
    d = data["dir"]
    proc = run(["spkid", "compute-eer", "--trials", str(d / "trials"), str(d / "scores")], text=True)
    assert proc.stdout == "28.57\n"
    assert log_line(data["eer"], data["threshold"]) in proc.stderr
    for p_target in (0.01, 0.05):  # as compute_min_dcf.py: scores in the scores-file order
        assert dcf_line(data["scores"], data["labels"], p_target) in proc.stderr
    proc = run(["spkid", "compute-eer", f"--trials={d / 'trials'}", "--p-target", "0.3", "--p-target=0.1",
                "--c-miss=2", str(d / "scores")], text=True)
    assert dcf_line(data["scores"], data["labels"], 0.3, 2.0) in proc.stderr
    assert dcf_line(data["scores"], data["labels"], 0.1, 2.0) in proc.stderr
    assert "p-target=0.01" not in proc.stderr


def test_paste_example_matches_trials_form(run, data):
    d = data["dir"]
    # the docstring's example, with the scores in the trials order as Kaldi recipes have them
    run(f"sort -k1,2 {d / 'trials'} > {d / 't'}; sort -k1,2 {d / 'scores'} > {d / 's'}")
    proc = run(f"paste -d' ' <(awk '{{print $3}}' {d / 's'}) <(awk '{{print $3}}' {d / 't'}) "
               f"| spkid compute-eer -", text=True)
    assert proc.stdout == "28.57\n"
    eer = run(f"eer=$(spkid compute-eer --trials {d / 'trials'} {d / 'scores'} 2>/dev/null); "
              "echo \"EER $eer%\"", text=True)
    assert eer.stdout == "EER 28.57%\n"


def test_help(run):
    proc = run(["spkid", "compute-eer", "--help"], text=True)
    assert "Example:" in proc.stdout and "spkid compute-eer --trials" in proc.stdout


@pytest.mark.parametrize("content, message", [
    ("1.0 target\n0.5 nontarget x\n", "eer_in:2: expected 2 fields"),
    ("1.0 target\n0.5 impostor\n", "eer_in:2: label must be 'target' or 'nontarget'"),
    ("1.0 target\nhigh nontarget\n", "eer_in:2: score 'high' is not a number"),
    ("1.0 target\n0.5 target\n", "no nontarget scores seen"),
    ("1.0 nontarget\n0.5 nontarget\n", "no target scores seen"),
])
def test_bad_input(run, tmp_path, content, message):
    (tmp_path / "eer_in").write_text(content)
    proc = run(["spkid", "compute-eer", str(tmp_path / "eer_in")], check=False, text=True)
    assert proc.returncode != 0 and proc.stdout == ""
    assert message in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr


def test_bad_stdin_names_stdin(run):
    proc = run("printf '1 target\\n2\\n' | spkid compute-eer -", check=False, text=True)
    assert proc.returncode != 0 and "stdin:2: expected 2 fields" in proc.stderr


@pytest.mark.parametrize("scores, message", [
    ("a x 1.0\n", "trials: 1 of 2 trials have no score in"),
    ("a x 1.0\nb y 0.0\nc z 3.0\n", "scores: 1 of 3 scores are for pairs not in"),
    ("a x 1.0\nb y\n", "scores:2: expected 3 fields"),
    ("a x 1.0\nb y 0.0\na x 1.0\n", "scores:3: trial 'a x' is scored again (first at line 1)"),
])
def test_trials_errors(run, tmp_path, scores, message):
    (tmp_path / "trials").write_text("a x target\nb y nontarget\n")
    (tmp_path / "scores").write_text(scores)
    proc = run(["spkid", "compute-eer", "--trials", str(tmp_path / "trials"), str(tmp_path / "scores")],
               check=False, text=True)
    assert proc.returncode != 0 and proc.stdout == ""
    assert message in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
