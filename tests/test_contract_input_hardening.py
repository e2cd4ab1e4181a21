"""Bad input is reported per utterance, naming the line it came from, and the rest is processed:
non-finite audio, bad wav.scp lines, pipes, bad segments (get-utt2dur), unsafe --npy-dir ids, wrong
feature dimensions, multi-channel audio, and checkpoints holding pickled objects."""
from __future__ import annotations

import logging
import re

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import flac_files, tiny_ge2e_checkpoint

from spkid.errors import SpkidError
from spkid.kaldi.audio import AudioError, list_audio, read_audio
from spkid.kaldi.io import read_dict
from spkid.kaldi.tables import read_text_table
from spkid.train.checkpoint import load_checkpoint


def tone(seconds: float = 1.0, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32) if channels > 1 else wave.astype(np.float32)


def nan_wav(path, where: int = 100):
    wave = tone()
    wave[where] = np.nan
    wave[where + 5] = np.inf
    sf.write(path, wave, 16000, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_ge2e_checkpoint(tmp_path_factory.mktemp("model"))


# ------------------------------------------------------------------------------------------ audio reading
def test_non_finite_audio_is_refused_at_read_time(tmp_path):
    with pytest.raises(AudioError, match=r"has 2 non-finite samples \(NaN or inf\), the first at sample 100"):
        read_audio(str(nan_wav(tmp_path / "nan.wav")))
    with pytest.raises(AudioError, match="non-finite"):
        read_audio(f"cat {tmp_path}/nan.wav |")


def test_compute_fbank_fails_nan_utterance_names_line_and_writes_rest(run, tmp_path, shared_data):
    (_, utt, good), = flac_files(shared_data, "librispeech_test_other", 1, 1)
    nan_wav(tmp_path / "nan.wav")
    (tmp_path / "wav.scp").write_text(f"a_good {good}\nb_nan {tmp_path}/nan.wav\n")
    proc = run(["spkid", "compute-fbank", "--dither=0", f"scp:{tmp_path}/wav.scp",
                f"ark,scp:{tmp_path}/f.ark,{tmp_path}/f.scp"], check=False, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert re.search(r"utterance b_nan: \S*wav\.scp:2: .*non-finite samples", proc.stderr), proc.stderr
    feats = read_dict(f"scp:{tmp_path}/f.scp")
    assert list(feats) == ["a_good"] and np.isfinite(feats["a_good"]).all()


def test_wav_scp_bad_lines_are_reported_and_the_rest_processed(run, tmp_path, shared_data):
    """Blank and path-less lines, a missing file, a failing pipe and undecodable pipe output: one line each
    naming wav.scp:LINE (and the command); the good utterances are written; exit 1."""
    files = flac_files(shared_data, "librispeech_test_other", 1, 2)
    lines = [f"a1 {files[0][2]}", "", "a2_nopath", f"a3 {files[1][2]}", "b_missing /nonexistent.flac",
             "c_fail false |", "d_garbage echo hello |"]
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    items, problems = list_audio(tmp_path / "wav.scp")
    assert [i.utt for i in items] == ["a1", "a3", "b_missing", "c_fail", "d_garbage"]
    assert [p for p, _ in problems] == [f"{tmp_path}/wav.scp:2", "a2_nopath"]
    proc = run(["spkid", "compute-fbank", "--dither=0", f"scp:{tmp_path}/wav.scp",
                f"ark,scp:{tmp_path}/f.ark,{tmp_path}/f.scp"], check=False, text=True)
    err = proc.stderr
    assert proc.returncode == 1 and "Traceback" not in err and "BytesIO" not in err, err
    assert re.search(r"utterance \S*wav\.scp:2: empty line", err)
    assert re.search(r"utterance a2_nopath: \S*wav\.scp:3: line has a key 'a2_nopath' but no value", err)
    assert re.search(r"utterance b_missing: \S*wav\.scp:5: audio file '/nonexistent.flac' does not exist", err)
    assert re.search(r"utterance c_fail: \S*wav\.scp:6: command 'false' failed", err)
    assert re.search(r"utterance d_garbage: \S*wav\.scp:7: cannot decode audio from the output of command "
                     r"'echo hello': Format not recognised", err), err
    assert list(read_dict(f"scp:{tmp_path}/f.scp")) == ["a1", "a3"]


def test_segment_failures_name_segments_and_wav_scp_lines(tmp_path):
    sf.write(tmp_path / "r.wav", tone(2.0), 16000)
    (tmp_path / "wav.scp").write_text(f"rec {tmp_path}/r.wav\n")
    (tmp_path / "segments").write_text("u1 rec 0 1\nu2 rec 5 6\n")
    from spkid.kaldi.audio import iter_loaded

    items, problems = list_audio(tmp_path / "wav.scp", tmp_path / "segments")
    errors = {item.utt: err for item, _, _, err in iter_loaded(items)}
    assert not problems and errors["u1"] is None
    assert errors["u2"].startswith(f"{tmp_path}/segments:2 (recording at {tmp_path}/wav.scp:1): segment starts")


# ------------------------------------------------------------------------------------------- get-utt2dur
def test_get_utt2dur_reports_bad_segments(run, tmp_path):
    sf.write(tmp_path / "r.wav", tone(2.0), 16000)
    (tmp_path / "wav.scp").write_text(f"rec {tmp_path}/r.wav\n")
    (tmp_path / "utt2spk").write_text("u1 s\nu2 s\nu3 s\nu4 s\nu5 s\nu6 s\n")
    (tmp_path / "segments").write_text("u1 rec 0.5 1.5\nu2 rec 1.5 0.5\nu3 rec_absent 0 1\nu4 rec 1.0 3.0\n"
                                       "u5 rec 1.0 -1\nu6 rec 1.9 2.3\n")
    proc = run(["spkid", "get-utt2dur", str(tmp_path)], check=False, text=True)
    err = proc.stderr
    assert proc.returncode == 1 and "Traceback" not in err
    assert re.search(r"utterance u2: bad segments line at \S*segments:2: empty or invalid segment 1.5..0.5", err)
    assert re.search(r"utterance u3: recording 'rec_absent' of \S*segments:3 is not in \S*wav.scp", err)
    assert re.search(r"utterance u4: \S*segments:4 \(recording at \S*wav.scp:1\): segment ends at 3.0s, past "
                     r"the end of recording rec \(2.000s\)", err), err
    durs = {u: float(d) for u, d in read_text_table(tmp_path / "utt2dur").items()}
    assert durs == pytest.approx({"u1": 1.0, "u5": 1.0, "u6": 0.1})  # u6 overshoots by < 0.5 s: cut at the end
    assert all(d > 0 for d in durs.values())


# ------------------------------------------------------------------------------------ extract-embeddings
def test_unsafe_ids_do_not_escape_npy_dir(run, tmp_path, tiny_model):
    sf.write(tmp_path / "a.wav", tone(), 16000)
    (tmp_path / "wav.scp").write_text(f"../escaped {tmp_path}/a.wav\n/abs/x {tmp_path}/a.wav\nok {tmp_path}/a.wav\n")
    out = tmp_path / "deep" / "npy"
    proc = run(["spkid", "extract-embeddings", "--model", str(tiny_model), "--scp", str(tmp_path / "wav.scp"),
                "--npy-dir", str(out), "--num-workers", "0", "--device", "cpu",
                "--output", f"ark,scp:{tmp_path}/e.ark,{tmp_path}/e.scp"], check=False, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "utterance ../escaped: '../escaped.npy' is not a safe path inside --npy-dir" in proc.stderr
    assert "utterance /abs/x: '/abs/x.npy' is not a safe path" in proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("*.npy")) == ["ok.npy"] and (out / "ok.npy").is_file()
    assert list(read_dict(f"scp:{tmp_path}/e.scp")) == ["ok"]


def test_input_dir_and_npy_dir_items_that_cannot_be_written_are_skipped(run, tmp_path, tiny_model):
    """UX 6: a file name with a space (no Kaldi key) or an id too long for a .npy file name stopped the whole
    job with nothing written; now each is reported and skipped, the rest written, exit 1."""
    audio = tmp_path / "audio"
    audio.mkdir()
    long_name = "x" * 240  # a valid file name, too long once `.npy` and the temporary's suffix are added
    for name in ("a", "b c", long_name, "d"):
        sf.write(audio / f"{name}.wav", tone(0.5), 16000)
    out = tmp_path / "npy"
    proc = run(["spkid", "extract-embeddings", "--model", str(tiny_model), "--input", str(audio), "--npy-dir",
                str(out), "--num-workers", "0", "--device", "cpu", "--output",
                f"ark,scp:{tmp_path}/e.ark,{tmp_path}/e.scp"], check=False, text=True)
    err = proc.stderr
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert f"utterance b c: 'b c' (from {audio}/b c.wav) cannot be a Kaldi table key" in err, err
    assert re.search(rf"utterance {long_name}: '{long_name}.npy' of its --npy-dir path is 244 bytes, too long", err)
    assert "2 of 4 utterances failed" in err
    assert list(read_dict(f"scp:{tmp_path}/e.scp")) == ["a", "d"]
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "d.npy"]
    proc = run(["spkid", "extract-embeddings", "--model", str(tiny_model), "--input", str(audio), "--npy-dir",
                str(tmp_path / "npy_only"), "--num-workers", "0", "--device", "cpu"], check=False, text=True)
    assert proc.returncode == 1 and "1 of 4 utterances failed" in proc.stderr  # a space is fine in a file name
    assert sorted(p.name for p in (tmp_path / "npy_only").iterdir()) == ["a.npy", "b c.npy", "d.npy"]


def test_use_feats_wrong_dimension_is_one_line(run, tmp_path, tiny_model):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    nan = rng.standard_normal((200, 24)).astype(np.float32)
    nan[7, 3] = np.nan
    kaldiio.save_ark(str(data / "feats.ark"), {"u1": rng.standard_normal((200, 24)).astype(np.float32),
                                               "u2": rng.standard_normal((200, 40)).astype(np.float32),
                                               "u3": nan}, scp=str(data / "feats.scp"))
    (data / "utt2spk").write_text("u1 s\nu2 s\nu3 s\n")
    proc = run(["spkid", "extract-embeddings", "--model", str(tiny_model), "--data", str(data), "--use-feats",
                "--device", "cpu", "--output", f"ark,scp:{tmp_path}/e.ark,{tmp_path}/e.scp"], check=False, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(r"utterance u2: \S*feats.ark:\d+: 40-dim features, the model expects 24-dim", proc.stderr)
    assert re.search(r"utterance u3: \S*feats.ark:\d+: features have NaN or infinite values", proc.stderr)
    assert list(read_dict(f"scp:{tmp_path}/e.scp")) == ["u1"]


def test_channel_option_where_the_hint_points(run, tmp_path, tiny_model):
    """Tools that say 'choose one with --channel' have --channel."""
    sf.write(tmp_path / "st.wav", tone(channels=2), 16000)
    (tmp_path / "wav.scp").write_text(f"st {tmp_path}/st.wav\n")
    base = ["spkid", "extract-embeddings", "--model", str(tiny_model), "--scp", str(tmp_path / "wav.scp"),
            "--device", "cpu", "--num-workers", "0", "--output", f"ark:{tmp_path}/e.ark"]
    proc = run(base, check=False, text=True)
    assert proc.returncode == 1 and "has 2 channels; choose one with --channel" in proc.stderr
    run(base + ["--channel", "1"])
    assert list(read_dict(f"ark:{tmp_path}/e.ark")) == ["st"]
    verify = ["spkid", "verify", "--model", str(tiny_model), "--threshold", "0.5", "--device", "cpu",
              str(tmp_path / "st.wav"), str(tmp_path / "st.wav")]
    proc = run(verify, check=False, text=True)
    assert proc.returncode == 1 and "choose one with --channel" in proc.stderr
    assert run(verify + ["--channel", "0"], text=True).stdout.startswith("same score=1.0000")


# ---------------------------------------------------------------------------------------------- checkpoints
class Executable:  # a class the unpickler would have to import
    pass


def test_pickled_checkpoint_is_refused_without_unsafe_advice(tmp_path):
    torch.save({"format": "x", "payload": Executable()}, tmp_path / "evil.pt")
    with pytest.raises(SpkidError) as err:
        load_checkpoint(tmp_path / "evil.pt")
    msg = str(err.value)
    assert "refused: the checkpoint contains executable (pickled) objects such as" in msg and "Executable" in msg
    assert "weights_only" not in msg and "corrupt" not in msg and "\n" not in msg
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "evil.pt").read_bytes()[:120])
    with pytest.raises(SpkidError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "trunc.pt")


# ------------------------------------------------------------------------------------ on-the-fly training
def test_audio_source_reports_every_bad_recording_and_keeps_the_rest(tmp_path, shared_data, caplog):
    from spkid.data.lhotse_bridge import data_dir_to_cuts

    files = flac_files(shared_data, "librispeech_test_other", 2, 2)
    (tmp_path / "bad.wav").write_text("not audio")
    lines = {u: str(p) for _, u, p in files}
    lines.update({"zz_bad1": "/nonexistent.flac", "zz_bad2": str(tmp_path / "bad.wav"), "zz_bad3": "false |"})
    (tmp_path / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in sorted(lines.items())) + "zz_nopath\n")
    utt2spk = {u: s for s, u, _ in files} | {"zz_bad1": "z", "zz_bad2": "z", "zz_bad3": "z", "zz_nopath": "z"}
    (tmp_path / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(utt2spk.items())))
    with caplog.at_level(logging.WARNING, logger="spkid"):
        cuts = data_dir_to_cuts(tmp_path, 16000)
    assert sorted(c.id for c in cuts) == sorted(u for _, u, _ in files)
    text = caplog.text
    for name in ("zz_bad1", "zz_bad2", "zz_bad3", "zz_nopath"):
        assert f"recording {name} skipped" in text, text
    assert "4 bad recordings" in text and "wav.scp:" in text


def test_error_in_a_loader_worker_is_one_line():
    """A bad utterance found while cropping in a DataLoader worker (e.g. NaN audio) stops training with the
    worker's one-line error, not torch's report of the worker's traceback."""
    from spkid.data.loader import TimedIterator, make_loader
    from spkid.data.sources import UtteranceSource

    class NanSource(UtteranceSource):
        utts, speakers, dim = ["u1"], ["s"], 4
        utt_speaker, lengths = np.zeros(1, np.int64), np.array([50])

        def crop(self, idx, start, length):
            raise SpkidError(f"utterance {self.utts[idx]}: audio has non-finite samples (NaN or inf)")

    loader = make_loader(NanSource(), [[(0, 1)]], crop_frames=10, num_workers=1)
    with pytest.raises(SpkidError) as err:
        next(TimedIterator(loader))
    assert str(err.value) == "utterance u1: audio has non-finite samples (NaN or inf)"


def test_training_features_with_nan_name_the_utterance(tmp_path):
    """feats.scp holding NaN (from an older run or another tool) stops training naming the utterance, rather
    than at 'loss is nan'."""
    from spkid.data.sources import FeatsSource

    feats = {"a1": np.ones((30, 5), np.float32), "a2": np.ones((30, 5), np.float32)}
    feats["a2"][4, 1] = np.inf
    kaldiio.save_ark(str(tmp_path / "feats.ark"), feats, scp=str(tmp_path / "feats.scp"))
    (tmp_path / "utt2spk").write_text("a1 a\na2 a\n")
    source = FeatsSource(tmp_path)
    assert source.crop(0, 0, 10).shape == (10, 5)
    with pytest.raises(SpkidError, match=r"utterance a2: \S*feats.ark:\d+: features have NaN or infinite values"):
        source.crop(1, 0, 10)
