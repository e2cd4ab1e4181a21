"""r/wspecifiers, Kaldi's binary format, atomic ark/scp, pipes (ark:-) and wav.scp inputs."""
from __future__ import annotations

import struct
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import flac_files, write_data_dir

from spkid.errors import SpkidError
from spkid.features.fbank import FbankOptions, compute_fbank
from spkid.kaldi.io import TableWriter, parse_specifier, read_dict


def test_parse_specifier():
    s = parse_specifier("ark,scp,t:a.ark,a.scp", write=True)
    assert (s.ark, s.scp, s.text) == ("a.ark", "a.scp", True)
    assert parse_specifier("ark:-").ark == "-"
    assert parse_specifier("scp,p:feats.scp").scp == "feats.scp"
    assert parse_specifier("ark:gunzip -c x.gz |").ark == "gunzip -c x.gz |"
    for bad in ("feats.scp", "scp,ark:a,b", "ark,scp:a.ark", "foo:x"):
        with pytest.raises(SpkidError):
            parse_specifier(bad, write=True)


def test_binary_format_bytes(tmp_path):
    """Bytes follow Kaldi's binary table format: key, space, \\0B, FM/FV token, int32 sizes, data."""
    mat = np.arange(6, dtype=np.float32).reshape(2, 3)
    vec = np.array([0.5, -1.0], dtype=np.float32)
    with TableWriter(f"ark,scp:{tmp_path}/x.ark,{tmp_path}/x.scp") as w:
        w.write("utt1", mat)
        w.write("utt2", vec)
    data = (tmp_path / "x.ark").read_bytes()
    head = b"utt1 \x00BFM \x04" + struct.pack("<i", 2) + b"\x04" + struct.pack("<i", 3)
    assert data.startswith(head)
    assert data[len(head):len(head) + 24] == mat.tobytes()
    off2 = len(head) + 24
    assert data[off2:] == b"utt2 \x00BFV \x04" + struct.pack("<i", 2) + vec.tobytes()
    scp = (tmp_path / "x.scp").read_text().split("\n")
    assert scp[0] == f"utt1 {tmp_path}/x.ark:5" and scp[1] == f"utt2 {tmp_path}/x.ark:{off2 + 5}"
    back = read_dict(f"scp:{tmp_path}/x.scp")
    np.testing.assert_array_equal(back["utt1"], mat)
    np.testing.assert_array_equal(back["utt2"], vec)


def test_aborted_write_leaves_nothing(tmp_path):
    (tmp_path / "old.scp").write_text("keep me\n")
    with pytest.raises(RuntimeError):
        with TableWriter(f"ark,scp:{tmp_path}/new.ark,{tmp_path}/old.scp") as w:
            w.write("a", np.zeros((2, 2), np.float32))
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.scp"]
    assert (tmp_path / "old.scp").read_text() == "keep me\n"


def test_pipe_round_trip_through_ark_stdout(shared_data, tmp_path, run):
    """compute-fbank ark:- | copy-feats ark:- ark,scp:... and ark,t text round trip."""
    files = flac_files(shared_data, "vctk_mini", n_spk=2, n_utt=1)
    wav = tmp_path / "wav.scp"
    wav.write_text("".join(f"{u} {p}\n" for _, u, p in files))
    run(f"spkid compute-fbank --dither=0 scp:{wav} ark:- | spkid copy-feats ark:- "
        f"ark,scp:{tmp_path}/c.ark,{tmp_path}/c.scp && spkid copy-feats scp:{tmp_path}/c.scp ark,t:- | "
        f"spkid copy-feats ark:- ark:{tmp_path}/t.ark")
    via_pipe = read_dict(f"scp:{tmp_path}/c.scp")
    via_text = read_dict(f"ark:{tmp_path}/t.ark")
    for _, utt, path in files:
        ref = compute_fbank(sf.read(path, dtype="float32")[0], FbankOptions(dither=0.0))
        np.testing.assert_array_equal(via_pipe[utt], ref)
        np.testing.assert_allclose(via_text[utt], ref, rtol=1e-6)
    # output pipes: ark:| cmd
    run(f"spkid copy-feats scp:{tmp_path}/c.scp 'ark:| cat > {tmp_path}/p.ark'")
    assert set(read_dict(f"ark:{tmp_path}/p.ark")) == {u for _, u, _ in files}


def test_wav_scp_pipes_and_ark_wave_input(shared_data, tmp_path, run):
    """wav.scp entries may be commands ending in '|' (cat, a python one-liner) or plain paths."""
    (spk, utt, path), = flac_files(shared_data, "librispeech_test_other", n_spk=1, n_utt=1)
    wave, rate = sf.read(path, dtype="int16")
    sf.write(tmp_path / "x.wav", wave, rate, subtype="PCM_16")
    py = (f"{sys.executable} -c \"import sys,soundfile as s,io; d,r=s.read('{path}'); b=io.BytesIO(); "
          f"s.write(b,d,r,format='WAV',subtype='PCM_16'); sys.stdout.buffer.write(b.getvalue())\" |")
    (tmp_path / "wav.scp").write_text(f"a {path}\nb cat {tmp_path}/x.wav |\nc {py}\n")
    run(f"spkid compute-fbank --dither=0 scp:{tmp_path}/wav.scp ark,scp:{tmp_path}/f.ark,{tmp_path}/f.scp")
    feats = read_dict(f"scp:{tmp_path}/f.scp")
    np.testing.assert_array_equal(feats["a"], feats["b"])
    np.testing.assert_array_equal(feats["a"], feats["c"])
    # a wav archive on stdin (as wav-copy writes it: key, space, RIFF data): ark:- of wave objects
    (tmp_path / "w.ark").write_bytes(b"a " + (tmp_path / "x.wav").read_bytes())
    run(f"cat {tmp_path}/w.ark | spkid compute-fbank --dither=0 ark:- ark:{tmp_path}/g.ark")
    np.testing.assert_array_equal(read_dict(f"ark:{tmp_path}/g.ark")["a"], feats["a"])


def test_segments_are_honoured(shared_data, tmp_path, run):
    (spk, utt, path), = flac_files(shared_data, "librispeech_test_other", n_spk=1, n_utt=1)
    wave, rate = sf.read(path, dtype="float32")
    dur = len(wave) / rate
    data = write_data_dir(tmp_path / "d", [(spk, f"{spk}-seg1", ""), (spk, f"{spk}-seg2", "")])
    (data / "wav.scp").write_text(f"reco1 {path}\n")
    (data / "segments").write_text(f"{spk}-seg1 reco1 0.50 2.25\n{spk}-seg2 reco1 3.0 -1\n")
    run(["spkid", "compute-fbank", "--dither=0", "--data", str(data), f"ark,scp:{tmp_path}/s.ark,"
         f"{tmp_path}/s.scp"])
    feats = read_dict(f"scp:{tmp_path}/s.scp")
    opts = FbankOptions(dither=0.0)
    np.testing.assert_array_equal(feats[f"{spk}-seg1"], compute_fbank(wave[8000:36000], opts))
    np.testing.assert_array_equal(feats[f"{spk}-seg2"], compute_fbank(wave[48000:], opts))
    assert dur > 3.5


def test_bad_inputs_are_reported_and_others_processed(shared_data, tmp_path, run):
    """Each bad utterance: one line naming it and the reason; the rest are written; exit 1."""
    files = flac_files(shared_data, "vctk_mini", n_spk=1, n_utt=3)
    (_, good1, p1), (_, good2, p2), (_, good3, p3) = files
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.int16), 16000, subtype="PCM_16")
    sf.write(tmp_path / "short.wav", np.zeros(100, np.int16), 16000, subtype="PCM_16")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    sf.write(tmp_path / "rate8k.wav", np.zeros(8000, np.int16), 8000, subtype="PCM_16")
    lines = [f"a_good {p1}", "b_missing /nonexistent/x.flac", f"c_empty {tmp_path}/empty.wav",
             f"d_short {tmp_path}/short.wav", f"e_broken {tmp_path}/broken.wav",
             "f_pipefail false |", f"g_rate {tmp_path}/rate8k.wav", f"h_good {p2}", f"h_good {p3}",
             f"a_unsorted {p3}", f"i_good {p3}"]
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    proc = run(f"spkid compute-fbank --dither=0 scp:{tmp_path}/wav.scp "
               f"ark,scp:{tmp_path}/o.ark,{tmp_path}/o.scp", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    expect = {"b_missing": "does not exist", "c_empty": "zero-length", "d_short": "too short",
              "e_broken": "cannot decode", "f_pipefail": "failed (exit status 1)",
              "g_rate": "sample rate 8000 Hz differs", "h_good": "duplicate id at",
              "a_unsorted": "out of order"}
    warn_lines = [ln for ln in err.splitlines() if ln.startswith("WARNING")]
    for utt, reason in expect.items():
        assert any(utt in ln and reason in ln for ln in warn_lines), (utt, err)
    assert f"{tmp_path}/wav.scp:9" in err and f"{tmp_path}/wav.scp:10" in err
    written = read_dict(f"scp:{tmp_path}/o.scp")
    assert list(written) == ["a_good", "h_good", "i_good"]
    assert err.strip().splitlines()[-1].startswith("Error: 8 of 11 utterances failed")


def test_segment_past_end_and_bad_segment_lines(shared_data, tmp_path, run):
    (spk, utt, path), = flac_files(shared_data, "vctk_mini", n_spk=1, n_utt=1)
    dur = sf.info(path).duration
    data = write_data_dir(tmp_path / "d", [(spk, f"{spk}-{i}", "") for i in "abcd"])
    (data / "wav.scp").write_text(f"r {path}\n")
    (data / "segments").write_text(
        f"{spk}-a r 0 1.0\n{spk}-b r {dur - 0.5:.2f} {dur + 0.3:.2f}\n{spk}-c r 1.0 {dur + 5:.2f}\n"
        f"{spk}-d r 2.0 1.0\n")
    proc = run(["spkid", "compute-fbank", "--data", str(data), f"ark,scp:{tmp_path}/o.ark,{tmp_path}/o.scp"],
               check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert f"{spk}-c" in err and "past the end of recording r" in err
    assert f"{spk}-d" in err and f"{data}/segments:4" in err
    # within Kaldi's 0.5 s overshoot a segment is truncated, not rejected
    assert list(read_dict(f"scp:{tmp_path}/o.scp")) == [f"{spk}-a", f"{spk}-b"]


def test_killed_writer_never_leaves_scp_pointing_into_truncated_ark(shared_data, tmp_path):
    """A process killed mid-write leaves only temporaries; the final ark/scp names never appear."""
    import subprocess
    import time

    from conftest import spkid_env
    files = flac_files(shared_data, "librispeech_test_other", n_spk=10, n_utt=10)
    (tmp_path / "wav.scp").write_text("".join(f"{u} {p}\n" for _, u, p in sorted(files, key=lambda x: x[1])))
    proc = subprocess.Popen(["spkid", "compute-fbank", f"scp:{tmp_path}/wav.scp",
                             f"ark,scp:{tmp_path}/k.ark,{tmp_path}/k.scp"], env=spkid_env(),
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".tmp") and p.stat().st_size > 0
                                             for p in tmp_path.iterdir()):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not (tmp_path / "k.ark").exists() and not (tmp_path / "k.scp").exists()


def test_special_files_are_written_in_place(tmp_path, run):
    """ark:/dev/null or a fifo is written directly, never replaced by a regular file."""
    import os
    import subprocess

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(f"cat {fifo} > {tmp_path}/got.ark", shell=True)
    with TableWriter(f"ark:{fifo}") as w:
        w.write("a", np.ones((2, 2), np.float32))
    reader.wait(timeout=30)
    assert fifo.is_fifo()
    assert read_dict(f"ark:{tmp_path}/got.ark")["a"].shape == (2, 2)
    run("spkid copy-feats ark:" + str(tmp_path / "got.ark") + " ark:/dev/null")
    assert not os.path.isfile("/dev/null")
