"""Untrusted tables: kaldiio's pickled (`PKL`) and other non-Kaldi entries are refused at every entry point
(nothing runs), truncated or crafted entries are one-line errors naming the entry, never empty arrays."""
from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from conftest import run_cmd

from spkid.errors import SpkidError
from spkid.kaldi.io import TableWriter, read_dict


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path):
    """evil.ark: `utt1 PKL<pickle that touches a marker file>`; evil.scp points at it (offset 5)."""
    marker = tmp_path / "PWNED"
    (tmp_path / "evil.ark").write_bytes(b"utt1 PKL" + pickle.dumps(_RunsCode(marker)))
    (tmp_path / "evil.scp").write_text(f"utt1 {tmp_path}/evil.ark:5\n")
    return tmp_path, marker


def _refused(proc, marker) -> None:
    assert not marker.exists(), "the pickled payload ran"
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.decode()
    assert "utt1" in err and "pickled" in err and "Traceback" not in err, err


def _spkid(*args, cwd=None):
    return run_cmd(["spkid", *map(str, args)], check=False, cwd=cwd)


@pytest.mark.parametrize("rspec", ["ark:{d}/evil.ark", "scp:{d}/evil.scp", "ark:cat {d}/evil.ark |"])
def test_copy_feats_refuses_pickles(evil, rspec):
    d, marker = evil
    _refused(_spkid("copy-feats", rspec.format(d=d), "ark,t:-"), marker)


def test_score_and_mean_embeddings_refuse_pickles(evil):
    d, marker = evil
    (d / "trials").write_text("utt1 utt1\n")
    _refused(_spkid("score", "--trials", d / "trials", "--enroll", f"scp:{d}/evil.scp", "--test",
                    f"ark:{d}/evil.ark"), marker)
    _refused(_spkid("mean-embeddings", f"scp:{d}/evil.scp", d / "mean.vec"), marker)
    (d / "spk2utt").write_text("s utt1\n")
    _refused(_spkid("mean-embeddings", d / "spk2utt", f"ark:{d}/evil.ark", f"ark:{d}/m.ark"), marker)
    assert not (d / "mean.vec").exists() and not (d / "m.ark").exists()


def _data_dir(d, feats_entry: str):
    data = d / "data"
    data.mkdir()
    (data / "feats.scp").write_text(f"utt1 {feats_entry}\nutt2 {d}/good.ark:5\n")
    (data / "utt2spk").write_text("utt1 s1\nutt2 s1\n")
    (data / "spk2utt").write_text("s1 utt1 utt2\n")
    with TableWriter(f"ark:{d}/good.ark") as w:
        w.write("utt2", np.ones((50, 4), np.float32))
    return data


def test_extract_embeddings_use_feats_refuses_pickles(evil):
    from spkid.models.ge2e import GE2EEncoder
    from spkid.train.checkpoint import save_checkpoint

    d, marker = evil
    data = _data_dir(d, f"{d}/evil.ark:5")
    torch.manual_seed(0)
    model = GE2EEncoder(feat_dim=4, hidden_size=8, num_layers=1, embed_dim=8)
    save_checkpoint(d / "m.pt", model_name="ge2e", model_config={"feat_dim": 4, "hidden_size": 8, "num_layers": 1,
                                                                  "embed_dim": 8},
                    feature_config={"type": "kaldi-fbank", "num_mel_bins": 4}, state_dict=model.state_dict())
    proc = _spkid("extract-embeddings", "--model", d / "m.pt", "--data", data, "--use-feats", "--num-workers", 0,
                  "--output", f"ark,t:{d}/emb.ark")
    _refused(proc, marker)
    assert "failed 1" in proc.stderr.decode() and read_dict(f"ark:{d}/emb.ark").keys() == {"utt2"}


def test_train_ge2e_feats_refuses_pickles(evil):
    d, marker = evil
    data = _data_dir(d, f"{d}/evil.ark:5")  # feats.scp present: training reads it
    _refused(_spkid("train-ge2e", "--data", data, "--output", d / "exp", "--device", "cpu"), marker)


def test_wave_ark_in_wav_scp_refuses_pickles(evil):
    d, marker = evil
    (d / "wav.scp").write_text(f"utt1 {d}/evil.ark:5\n")
    proc = _spkid("compute-fbank", f"scp:{d}/wav.scp", f"ark:{d}/f.ark")
    _refused(proc, marker)


# ---------------------------------------------------------------------------------------- in-process
def _ark(tmp_path, payload: bytes, name="x.ark"):
    (tmp_path / name).write_bytes(b"utt1 " + payload)
    return f"ark:{tmp_path}/{name}"


def _fails(rspec, *words):
    with pytest.raises(SpkidError) as err:
        read_dict(rspec)
    for word in words:
        assert word in str(err.value), str(err.value)
    return str(err.value)


def test_every_non_kaldi_payload_is_refused(tmp_path):
    npy = io.BytesIO()
    np.save(npy, np.zeros(3))
    for payload, word in [(b"NPY\x01" + bytes([len(npy.getvalue())]) + npy.getvalue(), "NPY"),
                          (b"AUDIO\x01\x00", "AUDIO"), (b"fLaC\x00\x00", "FLAC"),
                          (b"PKL" + pickle.dumps([1.0, 2.0]), "pickled")]:
        _fails(_ark(tmp_path, payload), "utt1", word, "refused")


def _fm(rows, cols, data=b""):
    return b"\0BFM \x04" + struct.pack("<i", rows) + b"\x04" + struct.pack("<i", cols) + data


def test_truncated_and_crafted_binary_entries(tmp_path):
    full = _fm(2, 3, np.arange(6, dtype="<f4").tobytes())
    np.testing.assert_array_equal(read_dict(_ark(tmp_path, full))["utt1"], np.arange(6).reshape(2, 3))
    _fails(_ark(tmp_path, full[:-4]), "utt1", "truncated")
    _fails(_ark(tmp_path, full[:8]), "utt1", "truncated")
    # a header claiming 2^31-1 x 2^31-1 floats (16 EiB): an error, not an allocation
    _fails(_ark(tmp_path, _fm(2**31 - 1, 2**31 - 1, b"\0" * 64)), "utt1", "truncated", "bytes")
    _fails(f"ark:cat {tmp_path}/x.ark |", "utt1", "16 GiB")  # the same from a pipe (size unknown): bounded
    _ark(tmp_path, full[:-4])
    _fails(f"ark:cat {tmp_path}/x.ark |", "utt1", "truncated")
    _fails(_ark(tmp_path, _fm(-1, 3)), "utt1", "negative")
    _fails(_ark(tmp_path, b"\0BXM \x04\0\0\0\0"), "utt1", "unknown binary type 'XM'")
    _fails(_ark(tmp_path, b"\0BFV \x04" + struct.pack("<i", 1 << 30)), "utt1", "truncated")
    _fails(_ark(tmp_path, b"\0BCM " + struct.pack("<ffii", 0, 1, 1 << 30, 1 << 30)), "utt1", "truncated")


def test_truncated_text_entries(tmp_path):
    assert read_dict(_ark(tmp_path, b" [ 1 2 3 ]\n"))["utt1"].tolist() == [1, 2, 3]
    _fails(_ark(tmp_path, b" [ 1 2 3\n"), "utt1", "truncated", "']'")
    _fails(_ark(tmp_path, b""), "utt1", "truncated")
    _fails(_ark(tmp_path, b" [\n 1 2\n 3 ]\n"), "utt1", "rows of different lengths")
    _fails(_ark(tmp_path, b" hello\n"), "utt1", "not a Kaldi object")


def test_scp_past_the_end_of_a_truncated_ark_is_an_error(tmp_path, run):
    """issue 11.2: copy-feats scp:t.scp ark,t:- printed `uttB001 [ ]` and exit 0."""
    with TableWriter(f"ark,scp,t:{tmp_path}/t.ark,{tmp_path}/t.scp") as w:
        w.write("uttA001", np.ones(3, np.float32))
        w.write("uttB001", np.ones(3, np.float32))
    data = (tmp_path / "t.ark").read_bytes()
    (tmp_path / "t.ark").write_bytes(data[:data.index(b"uttB001") + 3])
    proc = run(["spkid", "copy-feats", f"scp:{tmp_path}/t.scp", "ark,t:-"], check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and b"uttB001" not in proc.stdout, (proc.stdout, err)
    assert "uttB001" in err and "t.ark" in err and "t.scp:2" in err and "past the end" in err
    # binary: an entry cut inside its data
    with TableWriter(f"ark,scp:{tmp_path}/b.ark,{tmp_path}/b.scp") as w:
        w.write("uttA001", np.ones((4, 3), np.float32))
    (tmp_path / "b.ark").write_bytes((tmp_path / "b.ark").read_bytes()[:-5])
    _fails(f"scp:{tmp_path}/b.scp", "uttA001", "b.ark", "truncated")


def test_bad_scp_offsets(tmp_path):
    with TableWriter(f"ark,scp:{tmp_path}/b.ark,{tmp_path}/b.scp") as w:
        w.write("u", np.arange(12, dtype=np.float32).reshape(4, 3))
    ark = tmp_path / "b.ark"
    for value, word in [(f"{ark}:-3", "negative offset"), (f"{ark}:abc", "cannot open"),
                        (f"{ark}:3", "not a Kaldi object"), (f"{ark}:2[0:9]", "outside the 4 rows"),
                        (f"{ark}:2[x]", "bad range")]:
        (tmp_path / "c.scp").write_text(f"u {value}\n")
        _fails(f"scp:{tmp_path}/c.scp", "'u'", word)
    from spkid.kaldi.objects import load_entry

    assert load_entry(f"{ark}:2[1:2,0:1]").tolist() == [[3, 4], [6, 7]]  # Kaldi's inclusive ranges


def test_no_spkid_code_calls_kaldiio_readers():
    """Every table is read by spkid.kaldi.objects; kaldiio's readers (which unpickle PKL) stay unused."""
    import re
    from pathlib import Path

    import spkid

    readers = re.compile(r"\b(load_mat|load_scp|load_scp_sequential|load_ark|load_wav_scp|ReadHelper|read_kaldi|"
                         r"SegmentsExtractor)\b")
    offenders = [f"{path}:{n}" for path in Path(spkid.__file__).parent.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if "kaldiio" in path.read_text() and readers.search(line)]
    assert offenders == []


def test_scp_from_a_command_or_stdin(tmp_path, run):
    with TableWriter(f"ark,scp:{tmp_path}/b.ark,{tmp_path}/b.scp") as w:
        w.write("u", np.arange(3, dtype=np.float32))
    assert read_dict(f"scp:cat {tmp_path}/b.scp |")["u"].tolist() == [0, 1, 2]
    proc = run(f"spkid copy-feats scp:- ark,t:- < {tmp_path}/b.scp")
    assert proc.stdout.split() == [b"u", b"[", b"0", b"1", b"2", b"]"]


def test_permissive_reading_skips_or_stops_with_a_warning(evil, caplog):
    d, marker = evil
    with TableWriter(f"ark,scp:{d}/g.ark,{d}/g.scp") as w:
        w.write("utt0", np.zeros(2, np.float32))
    (d / "mixed.scp").write_text((d / "g.scp").read_text() + (d / "evil.scp").read_text()
                                 + (d / "g.scp").read_text().replace("utt0", "utt2"))
    assert list(read_dict(f"scp,p:{d}/mixed.scp")) == ["utt0", "utt2"]  # the bad entry is skipped
    (d / "mixed.ark").write_bytes((d / "g.ark").read_bytes() + (d / "evil.ark").read_bytes())
    assert list(read_dict(f"ark,p:{d}/mixed.ark")) == ["utt0"]  # a bad archive entry ends the table
    assert not marker.exists() and caplog.text.count("pickled") == 2
