"""spkid verify with the pretrained GE2E: same/different with the score and the threshold used."""
from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from conftest import run_cmd

    out = tmp_path_factory.mktemp("pre") / "exp"
    run_cmd(["spkid", "import-resemblyzer", "--output", str(out)])
    return out


def test_verify_same_and_different(pretrained, shared_data, tmp_path, run):
    libri = shared_data / "librispeech_test_other"
    spk_a, spk_b = sorted(d for d in libri.iterdir() if d.is_dir())[:2]
    a1, a2 = sorted(spk_a.glob("*.flac"))[:2]
    b1 = sorted(spk_b.glob("*.flac"))[0]
    same = run(["spkid", "verify", "--model", str(pretrained), "--threshold", "0.7", str(a1), str(a2)],
               text=True).stdout.split()
    diff = run(["spkid", "verify", "--model", str(pretrained), "--threshold", "0.7", str(a1), str(b1)],
               text=True).stdout.split()
    assert same[0] == "same" and diff[0] == "different"
    assert float(same[1].split("=")[1]) > 0.7 > float(diff[1].split("=")[1])
    # the threshold of a calibration file, and several enrollment files
    calib = tmp_path / "calib.json"
    (tmp_path / "trials").write_text("a b target\na c nontarget\nb c nontarget\nd e target\n")
    (tmp_path / "scores").write_text("a b 0.9\na c 0.3\nb c 0.5\nd e 0.8\n")
    run(["spkid", "calibrate", "--trials", str(tmp_path / "trials"), "--scores", str(tmp_path / "scores"),
         "--output", str(calib)])
    threshold = json.loads(calib.read_text())["threshold"]
    out = run(["spkid", "verify", "--model", str(pretrained), "--calibration", str(calib), str(a1), str(a2),
               str(b1)], text=True).stdout
    assert out.startswith("different") and f"threshold={threshold:.4f}" in out and "llr=" in out


def test_verify_bad_input(pretrained, tmp_path, run):
    proc = run(["spkid", "verify", "--model", str(pretrained), "--threshold", "0.5", "/no/such.wav", "/no/b.wav"],
               check=False, text=True)
    assert proc.returncode == 1 and "/no/such.wav" in proc.stderr.strip().splitlines()[-1]
    proc = run(["spkid", "verify", "--model", str(pretrained), "x.wav", "y.wav"], check=False, text=True)
    assert proc.returncode == 2 and "--calibration" in proc.stderr


def test_verify_takes_the_calibration_beside_the_model(pretrained, shared_data, tmp_path, run):
    import shutil

    libri = shared_data / "librispeech_test_other"
    a1, a2 = sorted(sorted(d for d in libri.iterdir() if d.is_dir())[0].glob("*.flac"))[:2]
    model = tmp_path / "exp"
    shutil.copytree(pretrained, model)
    (tmp_path / "trials").write_text("a b target\na c nontarget\nb c nontarget\nd e target\n")
    (tmp_path / "scores").write_text("a b 0.99\na c 0.3\nb c 0.5\nd e 0.98\n")
    run(["spkid", "calibrate", "--trials", str(tmp_path / "trials"), "--scores", str(tmp_path / "scores"),
         "--output", str(model / "calibration.json")])
    threshold = json.loads((model / "calibration.json").read_text())["threshold"]
    out = run(["spkid", "verify", "--model", str(model), str(a1), str(a2)], text=True).stdout
    assert f"threshold={threshold:.4f}" in out and str(model / "calibration.json") in out


def test_imported_campplus_verifies_with_its_calibration_out_of_the_box(shared_data, tmp_path, run):
    from spkid.pretrained import CAMPPLUS_ZH_EN_CALIBRATION, cached_path

    if not cached_path("campplus-zh-en").is_file():
        pytest.skip("pretrained CAM++ weights absent: run `make pretrained`")
    model = tmp_path / "campplus"
    run(["spkid", "import-pretrained", "campplus-zh-en", "--output", str(model)])
    assert json.loads((model / "calibration.json").read_text())["threshold"] == CAMPPLUS_ZH_EN_CALIBRATION["threshold"]
    libri = shared_data / "librispeech_test_other"
    spk_a, spk_b = sorted(d for d in libri.iterdir() if d.is_dir())[:2]
    a1, a2 = sorted(spk_a.glob("*.flac"))[:2]
    b1 = sorted(spk_b.glob("*.flac"))[0]
    same = run(["spkid", "verify", "--model", str(model), "--device", "cpu", str(a1), str(a2)], text=True).stdout
    diff = run(["spkid", "verify", "--model", str(model), "--device", "cpu", str(a1), str(b1)], text=True).stdout
    assert same.startswith("same") and diff.startswith("different") and "threshold=0.2604" in same
