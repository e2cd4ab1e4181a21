"""A pretrained name works wherever a model is taken (spkid.inference.resolve_model): extract-embeddings, verify,
enroll, identify (the name recorded in the database), export, train --init and spkid.load_model, with
Resemblyzer's GE2E (shipped in the resemblyzer package) and CAM++ zh-en (cached by `make pretrained`)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import spkid
from spkid.pretrained import cached_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread
pytest.importorskip("resemblyzer", reason="resemblyzer not installed (pip install 'spkid[resemblyzer]')")


@pytest.fixture(scope="module")
def cache(pretrained_cache):
    return pretrained_cache


@pytest.fixture(scope="module")
def files(shared_data):
    """Two utterances of each of 4 LibriSpeech speakers: (speaker, utterance id, path)."""
    from conftest import flac_files

    return flac_files(shared_data, "librispeech_test_other", n_spk=4, n_utt=2)


def test_every_command_takes_a_pretrained_name(cache, files, tmp_path, run):
    name = "resemblyzer-ge2e"
    (_, u1, a1), (_, u2, a2), (_, _, b1) = files[0], files[1], files[2]
    (tmp_path / "wav.scp").write_text(f"{u1} {a1}\n{u2} {a2}\n")
    run(["spkid", "extract-embeddings", "--model", name, "--scp", str(tmp_path / "wav.scp"), "--output",
         f"ark,t:{tmp_path}/emb.txt"])
    rows = (tmp_path / "emb.txt").read_text().splitlines()
    assert [r.split()[0] for r in rows] == [u1, u2] and len(rows[0].split()) == 256 + 3  # utt [ 256 values ]
    assert (cache / "models" / name / "checkpoints").is_dir()  # imported once, into the cache
    verdict = run(["spkid", "verify", "--model", name, "--threshold", "0.5", str(a1), str(b1)], text=True).stdout
    assert verdict.split()[0] in ("same", "different") and "score=" in verdict
    db = tmp_path / "db"
    run(["spkid", "enroll", "--model", name, "--db", str(db), "--speaker", "alice", str(a1)])
    assert json.loads((db / "model.json").read_text())["model"] == name  # the name, not a cache path
    for extra in ([], ["--model", name]):  # the database's own model, and the name given again
        out = run(["spkid", "identify", "--db", str(db), "--threshold", "0.1", *extra, str(a2)], text=True).stdout
        assert out.split()[:2] == [str(a2), "alice"]
    run(["spkid", "export", "--model", name, "--format", "torchscript", "--output", str(tmp_path / "ge2e.ts")])
    model = spkid.load_model(name, device="cpu")
    exported = spkid.load_model(str(tmp_path / "ge2e.ts"), device="cpu", trust_torchscript=True)
    assert exported.fingerprint == model.fingerprint and model.source == name
    assert float(np.dot(model.embed(str(a1)), exported.embed(str(a1)))) >= 0.9999
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("".join(f"{u} {p}\n" for _, u, p in files))
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for s, u, _ in files))
    proc = run(["spkid", "train", "--init", name, "--data", str(data), "--output", str(tmp_path / "exp"), "--opts",
                "task", "ge2e", "train.max_steps", "1", "data.speakers_per_batch", "4",
                "data.utterances_per_speaker", "2", "data.crop_frames", "40", "data.num_workers", "0"], text=True)
    assert f"initialised weights from {cache}/models/{name}/checkpoints/" in proc.stderr
    from spkid.train.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "exp")["model"]["config"]["hidden_size"] == 256  # GE2E's model, from --init


def test_campplus_zh_en_extracts(cache, files, tmp_path, run):
    """The case issue 22 found: `extract-embeddings --model campplus-zh-en` said 'no such checkpoint'."""
    if not (cache / cached_path("campplus-zh-en").name).exists():
        pytest.skip("CAM++ zh-en weights not cached (make pretrained)")
    (tmp_path / "wav.scp").write_text(f"{files[0][1]} {files[0][2]}\n")
    run(["spkid", "extract-embeddings", "--model", "campplus-zh-en", "--scp", str(tmp_path / "wav.scp"), "--output",
         f"ark,t:{tmp_path}/emb.txt"])
    assert len((tmp_path / "emb.txt").read_text().split()) == 192 + 3


def test_resemblyzer_ge2e_ships_a_calibration(cache, files, tmp_path, run):
    """Issue 22 point 4: the pretrained GE2E decides out of the box, with the calibration fitted on speechocean762
    (speakers no evaluation uses); the cached import of an older spkid, without one, gets it."""
    from spkid.pretrained import RESEMBLYZER_GE2E_CALIBRATION

    shipped = RESEMBLYZER_GE2E_CALIBRATION["threshold"]
    model = spkid.load_model("resemblyzer-ge2e", device="cpu")
    assert model.threshold == pytest.approx(shipped) and model.calibration.operating_point == "eer"
    (_, _, a1), (_, _, a2), (_, _, b1) = files[0], files[1], files[2]
    for a, b in ((a1, a2), (a1, b1)):
        r = model.verify(a, b)
        assert r.threshold == pytest.approx(shipped) and r.same == (r.score >= shipped)
        assert r.llr == pytest.approx(model.calibration.apply(r.score))
    assert model.verify(a1, a2).same and not model.verify(a1, b1).same  # same speaker / two speakers
    out = run(["spkid", "verify", "--model", "resemblyzer-ge2e", str(a1), str(a2)], text=True).stdout
    assert out.startswith("same ") and f"threshold={shipped:.4f} (eer point of " in out
    exp = tmp_path / "exp"
    run(["spkid", "import-pretrained", "resemblyzer-ge2e", "--output", str(exp)])
    assert json.loads((exp / "calibration.json").read_text())["threshold"] == pytest.approx(shipped)
    (cache / "models" / "resemblyzer-ge2e" / "calibration.json").unlink()  # as an older spkid imported it
    assert spkid.load_model("resemblyzer-ge2e", device="cpu").threshold == pytest.approx(shipped)


def test_identify_closed_set_without_threshold(cache, files, tmp_path, run):
    """No threshold and no calibration: the best speaker is named (closed set, as WeSpeaker's recognize); the log
    says which threshold decided: given, calibrated, or none."""
    exp = tmp_path / "plain"
    run(["spkid", "import-resemblyzer", "--output", str(exp)])  # the same network, no calibration
    plain = spkid.load_model(str(exp), device="cpu")
    assert plain.threshold is None
    db = spkid.SpeakerDB(plain)
    for spk, _, path in files[::2]:
        db.enroll(spk, [path])
    for _, _, path in files[1::2]:
        name, score = db.identify(path)
        assert name == db.scores(path)[0][0] and score == pytest.approx(db.scores(path)[0][1])
    assert db.identify(files[1][2], threshold=1.01)[0] is None  # open set with the threshold given
    db.save(tmp_path / "db")
    test = str(files[1][2])
    proc = run(["spkid", "identify", "--db", str(tmp_path / "db"), test], text=True)
    assert proc.stdout.split()[1] == files[0][0] and "threshold: none (none: closed set" in proc.stderr
    proc = run(["spkid", "identify", "--db", str(tmp_path / "db"), "--threshold", "1.01", test], text=True)
    assert proc.stdout.split()[1] == "unknown" and "threshold: 1.0100 (given)" in proc.stderr
    proc = run(["spkid", "identify", "--db", str(tmp_path / "db"), "--threshold", "nan", test], text=True, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("Error: threshold nan")
    db = spkid.SpeakerDB(spkid.load_model("resemblyzer-ge2e", device="cpu"))
    db.enroll(files[0][0], [files[0][2]])
    db.save(tmp_path / "db2")
    proc = run(["spkid", "identify", "--db", str(tmp_path / "db2"), test], text=True)
    assert "(calibrated: eer point of " in proc.stderr and "calibration.json" in proc.stderr


def test_shipped_ge2e_calibration_is_reproducible(cache):
    """RESEMBLYZER_GE2E_CALIBRATION is what fit_dev_calibration gives on ../shared/speechocean762 (1000
    utterances, 499500 trials): the numbers shipped are the ones the data give."""
    from conftest import SHARED_DATA

    from spkid.pretrained import RESEMBLYZER_GE2E_CALIBRATION
    from spkid.scoring.dev_calibration import fit_dev_calibration

    corpus = SHARED_DATA.parent / "speechocean762"
    if not corpus.is_dir():
        pytest.skip(f"{corpus} not found")
    fitted = fit_dev_calibration("resemblyzer-ge2e", corpus)
    shipped = RESEMBLYZER_GE2E_CALIBRATION
    assert fitted.dev["trials"] == shipped["dev"]["trials"] == 499500 and fitted.dev["targets"] == 3500
    for key in ("scale", "offset", "threshold"):
        assert getattr(fitted, key) == pytest.approx(shipped[key], rel=1e-4, abs=1e-4), key
    assert fitted.dev["eer"] == pytest.approx(shipped["dev"]["eer"], abs=1e-3)
