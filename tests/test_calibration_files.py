"""Calibration files: tied to the model they were fitted on (issue 22 bug 8: import-pretrained into another run's
exp dir paired CAM++'s threshold with that run's network) and validated when read (bug 9)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import tiny_checkpoint

import spkid
from spkid.pretrained import sha256_of
from spkid.scoring.calibration import Calibration, fit_calibration

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread


@pytest.fixture(scope="module")
def wav(shared_data):
    return str(sorted((shared_data / "librispeech_test_other").glob("*/*.flac"))[0])


@pytest.fixture
def trained(tmp_path):
    """An exp dir of a (tiny) training run: checkpoints/step-00000003.pt."""
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    tiny_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000003.pt")
    return tmp_path / "run"


def test_import_into_another_run_is_refused(trained, wav, tmp_path, run):
    pytest.importorskip("resemblyzer", reason="resemblyzer not installed (pip install 'spkid[resemblyzer]')")
    before = sorted(p.relative_to(trained) for p in trained.rglob("*") if p.name != ".lock")
    proc = run(["spkid", "import-pretrained", "resemblyzer-ge2e", "--output", str(trained)], check=False, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"Error: {trained} already holds step-00000003.pt of another model "
                                                    "(an exp dir of a run?): import into a new folder")
    assert sorted(p.relative_to(trained) for p in trained.rglob("*") if p.name != ".lock") == before
    exp = tmp_path / "ge2e"
    for _ in range(2):  # the same model again into its own dir is fine
        run(["spkid", "import-pretrained", "resemblyzer-ge2e", "--output", str(exp)])
    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == ["step-00000000.pt"]
    calib = json.loads((exp / "calibration.json").read_text())
    assert calib["model_sha256"] == sha256_of(exp / "checkpoints" / "step-00000000.pt")
    assert not list(exp.glob(".import-*"))
    # a calibration of one model beside another is refused where it would decide
    shutil.copy(exp / "calibration.json", trained / "calibration.json")
    with pytest.raises(spkid.SpkidError, match=r"calibration.json: a calibration of another model"):
        spkid.load_model(str(trained), device="cpu")
    for extra in ([], ["--calibration", str(exp / "calibration.json")]):  # found beside the model, or given
        proc = run(["spkid", "verify", "--model", str(trained), *extra, wav, wav], check=False, text=True)
        assert proc.returncode == 1 and "a calibration of another model" in proc.stderr.strip().splitlines()[-1]
    ok = spkid.load_model(str(exp), device="cpu")  # its own model: accepted
    assert ok.threshold == pytest.approx(calib["threshold"])


def _calibration(tmp_path) -> dict:
    calib = fit_calibration(np.array([0.9, 0.85, 0.5, 0.6, 0.3]), np.array([True, True, False, False, False]))
    path = tmp_path / "good.json"
    calib.save(str(path))
    return json.loads(path.read_text())


@pytest.mark.parametrize("key, value, message", [
    ("threshold", float("nan"), "threshold is nan, not a finite number"),
    ("threshold", float("-inf"), "threshold is -inf, not a finite number"),
    ("threshold", "0.5", "threshold is '0.5', not a number"),
    ("threshold", None, "threshold is None, not a number"),
    ("threshold", [0.5], r"threshold is \[0.5\], not a number"),
    ("threshold", True, "threshold is True, not a number"),
    ("scale", "2", "scale is '2', not a number"),
    ("scale", -3.0, r"scale is -3.0 \(must be > 0"),
    ("scale", float("nan"), "scale is nan"),
    ("offset", float("inf"), "offset is inf"),
    ("operating_point", "best", "operating_point is 'best'"),
    ("thresholds", {"eer": "x"}, "thresholds.eer is 'x'"),
    ("model_sha256", 5, "model_sha256 is 5"),
])
def test_bad_values_are_one_line(tmp_path, key, value, message):
    data = _calibration(tmp_path)
    data[key] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(spkid.SpkidError, match=rf"^{path}: bad calibration file: {message}"):
        Calibration.load(str(path))


def test_bad_calibration_on_the_command_line(trained, wav, tmp_path, run):
    data = _calibration(tmp_path)
    for value in (float("nan"), "0.5"):
        data["threshold"] = value
        (tmp_path / "bad.json").write_text(json.dumps(data))
        proc = run(["spkid", "verify", "--model", str(trained), "--calibration", str(tmp_path / "bad.json"), wav, wav],
                   check=False, text=True)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith(f"Error: {tmp_path / 'bad.json'}: bad calibration file")


def test_calibrate_refuses_tied_scores(tmp_path, run):
    """UX 8: a dev list whose scores are all the same gave scale 1.0 and a threshold, silently."""
    (tmp_path / "trials").write_text("a b target\nc d nontarget\ne f target\ng h nontarget\n")
    (tmp_path / "scores").write_text("a b 0.5\nc d 0.5\ne f 0.5\ng h 0.5\n")
    proc = run(["spkid", "calibrate", "--trials", str(tmp_path / "trials"), "--scores", str(tmp_path / "scores"),
                "--output", str(tmp_path / "cal.json")], check=False, text=True)
    assert proc.returncode == 1 and not (tmp_path / "cal.json").exists()
    assert proc.stderr.strip().splitlines()[-1] == ("Error: calibration: all 4 dev scores are the same (0.5): they "
                                                    "tell targets from nontargets not at all (a broken model or "
                                                    "scores file?)")


def test_calibrate_records_the_model(trained, wav, tmp_path, run):
    """`spkid calibrate --model` ties a calibration to the model that gave the scores, as the shipped ones are."""
    (tmp_path / "trials").write_text("a b target\nc d nontarget\ne f target\ng h nontarget\n")
    (tmp_path / "scores").write_text("a b 0.9\nc d 0.1\ne f 0.7\ng h 0.3\n")
    run(["spkid", "calibrate", "--trials", str(tmp_path / "trials"), "--scores", str(tmp_path / "scores"),
         "--model", str(trained), "--output", str(trained / "calibration.json")])
    sha = json.loads((trained / "calibration.json").read_text())["model_sha256"]
    assert sha == sha256_of(trained / "checkpoints" / "step-00000003.pt")
    assert run(["spkid", "verify", "--model", str(trained), wav, wav], text=True).stdout.startswith("same ")
    tiny_checkpoint(trained / "checkpoints" / "step-00000004.pt", seed=2)  # trained further: another model
    proc = run(["spkid", "verify", "--model", str(trained), wav, wav], check=False, text=True)
    assert proc.returncode == 1 and "a calibration of another model" in proc.stderr.strip().splitlines()[-1]
