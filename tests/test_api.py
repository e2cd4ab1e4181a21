"""The Python API: README's example run as it is, inputs of every kind, calibration, threads, errors,
and a light `import spkid`."""
from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile
import torch
from conftest import ROOT

import spkid

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """SPKID_CACHE for the module: the pretrained GE2E is imported there on first use."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPKID_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def clips(shared_data, tmp_path_factory, cache):
    """alice_{1,2,3}.wav, bob_{1,2}.wav: utterances of two LibriSpeech speakers as 16 kHz wav files."""
    folder = tmp_path_factory.mktemp("clips")
    alice, bob = sorted(d for d in (shared_data / "librispeech_test_other").iterdir() if d.is_dir())[:2]
    for name, spk, count in (("alice", alice, 3), ("bob", bob, 2)):
        for i, path in enumerate(sorted(spk.glob("*.flac"))[:count], 1):
            wave, rate = soundfile.read(path, dtype="float32")
            soundfile.write(folder / f"{name}_{i}.wav", wave, rate)
    return folder


@pytest.fixture(scope="module")
def model(cache):
    return spkid.load_model("resemblyzer-ge2e", device="cpu")


def readme_block(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(clips, monkeypatch, capsys):
    monkeypatch.chdir(clips)
    scope: dict = {}
    exec(compile(readme_block("Using spkid from Python"), "README.md", "exec"), scope)
    assert scope["e"].shape == (256,) and abs(np.linalg.norm(scope["e"]) - 1) < 1e-5
    assert float(scope["e"] @ scope["e2"]) > 0.99999  # the file and the same samples in memory
    assert scope["E"].shape == (3, 256) and float(scope["E"][0] @ scope["e"]) > 0.99999
    assert not scope["r"].same and scope["r"].threshold == 0.75 and scope["r"].score < 0.75
    assert scope["name"] == "alice" and scope["score"] >= 0.75
    assert (clips / "db" / "spk_xvector.scp").exists() and (clips / "db" / "num_utts.ark").read_text() == \
        "alice 2\nbob 2\n"
    printed = capsys.readouterr().out.split()
    assert float(printed[0]) > 0.75 > float(printed[1])  # same speaker, then alice vs bob


def test_inputs_are_interchangeable(model, clips):
    wave, rate = soundfile.read(clips / "bob_1.wav", dtype="float32")
    ref = model.embed(clips / "bob_1.wav")
    assert float(ref @ model.embed(torch.from_numpy(wave), sample_rate=rate)) > 0.99999
    # 8 kHz samples are resampled to the model's 16 kHz, as an 8 kHz file is
    from spkid.kaldi.audio import resample

    narrow = resample(wave, rate, 8000)
    soundfile.write(clips / "bob_8k.wav", narrow, 8000)
    e8 = model.embed(narrow, sample_rate=8000)
    assert float(e8 @ model.embed(clips / "bob_8k.wav")) > 0.99999
    assert float(e8 @ model.embed(narrow, sample_rate=16000)) < 0.99  # the rate given is used
    assert float(e8 @ ref) > float(e8 @ model.embed(clips / "alice_1.wav"))
    assert model.similarity(ref, str(clips / "bob_1.wav")) == pytest.approx(1, abs=1e-5)
    assert model.similarity(wave, wave, sample_rate=rate) == pytest.approx(1, abs=1e-5)
    batch = model.embed_batch([clips / "bob_1.wav", wave, clips / "alice_1.wav"], sample_rate=rate)
    assert np.allclose(batch[0], batch[1], atol=1e-5) and float(batch[0] @ batch[2]) < 0.9


def test_calibrated_model_dir(clips, tmp_path, run):
    from spkid.scoring.calibration import fit_calibration

    exp = tmp_path / "exp"
    run(["spkid", "import-resemblyzer", "--output", str(exp)])
    (exp / "scores").mkdir()
    calib = fit_calibration(np.array([0.9, 0.85, 0.5, 0.6, 0.3]), np.array([True, True, False, False, False]))
    calib.save(str(exp / "scores" / "calibration.json"))
    for source in (exp, exp / "checkpoints" / "step-00000000.pt"):
        model = spkid.load_model(str(source), device="cpu")
        r = model.verify(clips / "alice_1.wav", clips / "alice_2.wav")
        assert r.threshold == pytest.approx(calib.threshold) and r.same and r.llr == pytest.approx(calib.apply(r.score))
    other = tmp_path / "other.json"
    fit_calibration(np.array([0.99, 0.98, 0.5, 0.97]), np.array([True, True, False, False])).save(str(other))
    assert spkid.load_model(str(exp), calibration=str(other)).threshold != pytest.approx(calib.threshold)


def test_threads_give_the_same_embeddings(model, clips):
    files = sorted(clips.glob("*_?.wav")) * 2
    sequential = [model.embed(f) for f in files]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(model.embed, files))
    assert all(np.array_equal(a, b) for a, b in zip(sequential, threaded))


def test_errors_are_spkid_errors(model, clips, tmp_path):
    with pytest.raises(spkid.SpkidError, match="/no/such.wav"):
        model.embed("/no/such.wav")
    with pytest.raises(spkid.SpkidError, match="sample_rate"):
        model.embed(np.zeros(16000, np.float32))
    with pytest.raises(spkid.SpkidError, match="float"):
        model.embed(np.zeros(16000, np.int16), sample_rate=16000)
    import shutil

    shutil.copy(model.embedder.checkpoint, tmp_path / "ge2e.pt")
    plain = spkid.load_model(tmp_path / "ge2e.pt", device="cpu")  # the checkpoint alone: no calibration
    assert plain.calibration is None
    with pytest.raises(spkid.SpkidError, match="no calibrated threshold"):
        plain.verify(clips / "alice_1.wav", clips / "bob_1.wav")
    for bad in (float("nan"), "0.5", True):
        with pytest.raises(spkid.SpkidError, match="threshold"):
            plain.verify(clips / "alice_1.wav", clips / "bob_1.wav", threshold=bad)
    with pytest.raises(spkid.SpkidError, match="whitespace"):
        spkid.SpeakerDB(model).enroll("alice smith", [clips / "alice_1.wav"])
    with pytest.raises(spkid.SpkidError, match="resemblyzer-ge2e"):  # the known names are listed
        spkid.load_model("no-such-model")


def test_import_spkid_is_light():
    code = "import sys, spkid; spkid.__version__; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_import_pretrained_list(run):
    assert run(["spkid", "import-pretrained", "--list"], text=True).stdout.startswith("resemblyzer-ge2e\t")
