"""The speaker database as a store: concurrent `spkid enroll` runs (issue 22 bug 2), updates as one unit,
and the files it reads validated (bugs 7 and 12, UX 1 and 5), with a tiny random GE2E (no pretrained model)."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from conftest import spkid_env, tiny_checkpoint

import spkid
from spkid.enroll import SpeakerDB

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def model(ckpt):
    return spkid.load_model(str(ckpt), device="cpu")


@pytest.fixture(scope="module")
def wavs(shared_data):
    return sorted((shared_data / "librispeech_test_other").glob("*/*.flac"))[::10][:9]  # one file per speaker


def test_concurrent_enrollments_all_count(ckpt, wavs, tmp_path, run):
    """Bug 2: 8 `spkid enroll` at once into one database all exit 0 and every one of them is kept, in all three
    tables (the old code kept 1 or 2 of 8, and could leave spk_xvector.ark and num_utts.ark disagreeing)."""
    import kaldiio

    db = tmp_path / "db"
    run(["spkid", "enroll", "--model", str(ckpt), "--db", str(db), "--speaker", "s0", str(wavs[0])])
    for round_ in range(2):
        procs = [subprocess.Popen(["spkid", "enroll", "--db", str(db), "--speaker", f"s{i}", str(wavs[i])],
                                  env=spkid_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for i in range(1, 9)]
        results = [p.communicate() + (p.returncode,) for p in procs]
        assert [r[2] for r in results] == [0] * 8, [r[1][-300:] for r in results]
        want = {f"s{i}": 1 + round_ if i else 1 for i in range(9)}
        counts = dict(line.split() for line in (db / "num_utts.ark").read_text().splitlines())
        assert {k: int(v) for k, v in counts.items()} == want
        scp = dict(kaldiio.load_scp(str(db / "spk_xvector.scp")))  # the scp points into this ark
        ark = dict(kaldiio.load_ark(str(db / "spk_xvector.ark")))
        assert set(scp) == set(ark) == set(want) and all(np.array_equal(scp[k], ark[k]) for k in ark)
        assert json.loads((db / "model.json").read_text())["speakers"] == 9
    loaded = SpeakerDB.load(db)
    model = loaded.model
    for i in range(1, 9):  # each mean is the one of its own files, not another writer's
        assert np.allclose(loaded.mean(f"s{i}"), model.embed(wavs[i]), atol=1e-5)
    assert not list(db.glob(".staging-*")) and not (db / ".committed").exists()


def test_an_interrupted_update_is_finished_or_ignored(model, wavs, tmp_path):
    """A writer killed after its commit point leaves DB/.committed (the new files, some maybe moved already): a
    reader reads the new database through it, the next writer finishes it; a staging folder of a writer killed
    before its commit point is ignored, then removed."""
    db = SpeakerDB(model)
    db.enroll("alice", [wavs[0]])
    folder = db.save(tmp_path / "db")
    old = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".lock"}
    db.enroll("bob", [wavs[1]])
    db.save(tmp_path / "new")
    committed = folder / ".committed"
    committed.mkdir()
    for name in ("num_utts.ark", "model.json"):  # the ark and scp were moved before the writer was killed
        shutil.copy(tmp_path / "new" / name, committed / name)
    for name in ("spk_xvector.ark", "spk_xvector.scp"):
        shutil.copy(tmp_path / "new" / name, folder / name)
    (folder / "spk_xvector.scp").write_text((folder / "spk_xvector.scp").read_text().replace(
        str(tmp_path / "new"), str(folder)))
    (folder / ".staging-killed").mkdir()
    (folder / ".staging-killed" / "num_utts.ark").write_text("carol 1\n")
    assert SpeakerDB.load(folder, model).speakers == ["alice", "bob"]
    with SpeakerDB.updating(folder, model) as again:
        again.add_embeddings("carol", [model.embed(wavs[2])])
    assert SpeakerDB.load(folder, model).speakers == ["alice", "bob", "carol"]
    assert not committed.exists() and not (folder / ".staging-killed").exists()
    assert (folder / "num_utts.ark").read_text() == "alice 1\nbob 1\ncarol 1\n"
    assert old["num_utts.ark"] == b"alice 1\n"


def test_non_finite_audio_and_embeddings_are_refused(model, wavs, tmp_path):
    """Bug 7: NaN/inf samples given to the API are one SpkidError naming the input (they gave NaN embeddings
    that poisoned a database); NaN or zero embeddings are refused by add_embeddings; cosine says NaN, not zero."""
    nan = np.full(16000, np.nan, np.float32)
    inf = np.r_[np.zeros(8000, np.float32), np.inf, np.zeros(7999, np.float32)]
    for bad, what in ((nan, "16000 non-finite samples"), (inf, r"1 non-finite samples \(NaN or inf\), the first at "
                                                                r"sample 8000")):
        with pytest.raises(spkid.SpkidError, match=r"^<ndarray audio of shape \(16000,\)>: " + what):
            model.embed(bad, sample_rate=16000)
    with pytest.raises(spkid.SpkidError, match=r"^embed_batch item 1: <ndarray audio of shape \(16000,\)>: 16000 non"):
        model.embed_batch([wavs[0], nan], sample_rate=16000)
    db = SpeakerDB(model)
    for items in ([nan], nan):  # a list of sample arrays, or one
        with pytest.raises(spkid.SpkidError, match="16000 non-finite"):
            db.enroll("bob", items, sample_rate=16000)
    emb = model.embed(wavs[0])
    for bad, word in ((np.full(8, np.nan), "NaN"), (np.r_[emb[:7], np.inf], "NaN or infinite"), (np.zeros(8), "zero")):
        with pytest.raises(spkid.SpkidError, match=f"speaker 'bob': embedding 1 (has|is) {word}"):
            db.add_embeddings("bob", [emb, bad])
        with pytest.raises(spkid.SpkidError, match=word):
            model.similarity(emb, bad.astype(np.float32))
    assert len(db) == 0  # nothing of a refused enrollment is kept
    with pytest.raises(spkid.SpkidError, match="NaN"):
        spkid.api.cosine(emb, np.full(8, np.nan))


def _tamper(folder, name, value=None, count=None):
    """Rewrite one speaker's mean (or count) in a saved database, as a foreign writer could."""
    import kaldiio

    means = dict(kaldiio.load_ark(str(folder / "spk_xvector.ark")))
    if value is not None:
        means[name] = value
    with kaldiio.WriteHelper(f"ark,scp:{folder}/spk_xvector.ark,{folder}/spk_xvector.scp") as writer:
        for key, mean in means.items():
            writer(key, mean)
    if count is not None:
        text = (folder / "num_utts.ark").read_text()
        (folder / "num_utts.ark").write_text(text.replace(f"{name} 1\n", f"{name} {count}\n"))


@pytest.mark.parametrize("value, count, message", [
    (np.full(8, np.nan, np.float32), None, "speaker 'bob': its mean in spk_xvector.ark has NaN"),
    (np.zeros(8, np.float32), None, "speaker 'bob': its mean in spk_xvector.ark is zero"),
    (np.ones((4, 2), np.float32), None, "speaker 'bob': its mean in spk_xvector.ark is a 4x2 matrix"),
    (np.ones(5, np.float32), None, "speaker 'bob': its mean has 5 values, the database's embeddings 8"),
    (None, -2, "speaker 'bob': num_utts.ark gives -2 utterances"),
    (None, 0, "speaker 'bob': num_utts.ark gives 0 utterances"),
])
def test_a_bad_speaker_is_named(model, wavs, tmp_path, run, value, count, message):
    """Bug 7 / UX 5: a NaN or zero mean of one speaker failed every identify naming nobody; bug 12: counts of 0
    or below gave NaN or wrong means; UX 1/8: a matrix was flattened, a mean of another dim was a numpy error."""
    db = SpeakerDB(model)
    db.enroll("alice", [wavs[0]])
    db.enroll("bob", [wavs[1]])
    folder = db.save(tmp_path / "db")
    _tamper(folder, "bob", value, count)
    with pytest.raises(spkid.SpkidError, match=message):
        SpeakerDB.load(folder, model)
    for cmd in (["identify", "--db", str(folder), str(wavs[2])], ["enroll", "--db", str(folder), "--speaker", "bob",
                                                                  str(wavs[2])]):
        proc = run(["spkid", *cmd], check=False, text=True)
        assert proc.returncode == 1 and message in proc.stderr.strip().splitlines()[-1]
        assert "Traceback" not in proc.stderr


def test_database_problems_are_one_line(ckpt, model, wavs, tmp_path, run):
    """UX 1: model.json without `model` was a KeyError; save into a file (or below one) a raw OSError."""
    db = SpeakerDB(model)
    db.enroll("alice", [wavs[0]])
    (tmp_path / "file").write_text("x")
    for target, message in ((tmp_path / "file", "is a file, not a speaker database folder"),
                            (tmp_path / "file" / "db", "is not a directory")):
        with pytest.raises(spkid.SpkidError, match=message):
            db.save(target)
        with pytest.raises(spkid.SpkidError, match=message):
            with SpeakerDB.updating(target, model):
                pass
    folder = db.save(tmp_path / "db")
    info = json.loads((folder / "model.json").read_text())
    del info["model"]
    (folder / "model.json").write_text(json.dumps(info))
    for cmd in (["identify", "--db", str(folder), str(wavs[1])], ["enroll", "--db", str(folder), "--speaker", "bob",
                                                                  str(wavs[1])]):
        proc = run(["spkid", *cmd], check=False, text=True)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == f"Error: {folder}/model.json: names no model ('model' is " \
                                                       "missing or not a string)"
    assert SpeakerDB.load(folder, model).speakers == ["alice"]  # with the model given, it is not needed


def test_a_changed_checkpoint_is_named(wavs, tmp_path, run):
    """UX 5: a database whose exp dir got a newer checkpoint said `enrolled with model X, not X`."""
    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    tiny_checkpoint(exp / "checkpoints" / "step-00000003.pt", seed=1)
    run(["spkid", "enroll", "--model", str(exp), "--db", str(tmp_path / "db"), "--speaker", "alice", str(wavs[0])])
    tiny_checkpoint(exp / "checkpoints" / "step-00000004.pt", seed=2)  # trained further
    with pytest.raises(spkid.SpkidError, match=rf"the checkpoint of its model {exp} has changed since enrollment"):
        SpeakerDB.load(tmp_path / "db", spkid.load_model(str(exp), device="cpu"))
    proc = run(["spkid", "enroll", "--model", str(exp), "--db", str(tmp_path / "db"), "--speaker", "bob", str(wavs[1])],
               check=False, text=True)
    assert proc.returncode == 1 and "has changed since enrollment" in proc.stderr.strip().splitlines()[-1]
    proc = run(["spkid", "identify", "--db", str(tmp_path / "db"), str(wavs[1])], check=False, text=True)
    assert proc.returncode == 1 and "has changed since enrollment" in proc.stderr.strip().splitlines()[-1]


def test_api_input_checks(model, wavs, tmp_path):
    """UX 8 / UX 5: a str given to embed_batch, bad sample rates, a stereo file (the hint named --channel, which
    the Python API does not have), a matrix where an embedding goes."""
    import soundfile

    with pytest.raises(spkid.SpkidError, match="^embed_batch takes a list of paths or sample arrays, not one str"):
        model.embed_batch(str(wavs[0]))
    with pytest.raises(spkid.SpkidError, match="embed_each takes a list"):
        model.embed_each(wavs[0])
    samples = np.zeros(16000, np.float32)
    for rate, message in ((0, "sample rate 0 Hz is outside"), (16, "sample rate 16 Hz is outside"),
                          ("16000", "sample_rate '16000' is not a number"), (16000.5, "16000.5 Hz")):
        with pytest.raises(spkid.SpkidError, match=message):
            model.embed(samples, sample_rate=rate)
    wave, rate = soundfile.read(wavs[0], dtype="float32")
    soundfile.write(tmp_path / "stereo.wav", np.stack([wave, wave], axis=1), rate)
    with pytest.raises(spkid.SpkidError, match="2 channels, the Python API takes mono") as err:
        model.embed(tmp_path / "stereo.wav")
    assert "--channel" not in str(err.value)
    emb = model.embed(wavs[0])
    with pytest.raises(spkid.SpkidError, match="must be 1-D"):
        model.similarity(emb, np.ones((4, 4), np.float32))
    with pytest.raises(spkid.SpkidError, match=r"must be \(N, D\)"):
        SpeakerDB(model).add_embeddings("alice", np.ones((2, 2, 2)))
    db = SpeakerDB(model)
    db.add_embeddings("alice", [emb])
    with pytest.raises(spkid.SpkidError, match=r"the test embedding has shape \(5,\), the database's means are 8-dim"):
        db.scores(np.ones(5, np.float32))


def test_nan_embeddings_are_called_nan(ckpt, wavs, monkeypatch):
    """UX 5: NaN embeddings (a model with NaN weights gives them) were reported as `is zero` by verify."""
    from click.testing import CliRunner

    import spkid.extract
    from spkid.bin.verify import main

    monkeypatch.setattr(spkid.extract, "embed_file", lambda embedder, path, channel=-1: np.full(8, np.nan, np.float32))
    result = CliRunner().invoke(main, ["--model", str(ckpt), "--threshold", "0.5", str(wavs[0]), str(wavs[1])])
    assert isinstance(result.exception, spkid.SpkidError)
    assert str(result.exception) == f"the embedding of {wavs[0]}, {wavs[1]} has NaN or infinite values; cannot score"
