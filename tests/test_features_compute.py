"""compute-fbank --num-threads: the same ark/scp, order and failure reports as one thread."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import flac_files

from spkid.errors import SpkidError
from spkid.features.compute import compute_table, resolve_threads
from spkid.features.fbank import FbankOptions
from spkid.features.frontend import FbankFrontend
from spkid.kaldi.io import read_dict


def _bad_and_good_scp(shared_data, tmp_path):
    files = flac_files(shared_data, "vctk_mini", n_spk=2, n_utt=3)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.int16), 16000, subtype="PCM_16")
    sf.write(tmp_path / "short.wav", np.zeros(100, np.int16), 16000, subtype="PCM_16")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    sf.write(tmp_path / "rate8k.wav", np.zeros(8000, np.int16), 8000, subtype="PCM_16")
    lines = [f"{'a' if i < 2 else 'h'}{i} {p}" for i, (_, _, p) in enumerate(files)]
    lines[2:2] = ["b_missing /nonexistent/x.flac", f"c_empty {tmp_path}/empty.wav",
                  f"d_short {tmp_path}/short.wav", f"e_broken {tmp_path}/broken.wav", "f_pipefail false |",
                  f"g_rate {tmp_path}/rate8k.wav", f"a1 {files[0][2]}"]
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    return tmp_path / "wav.scp"


def test_cli_threads_write_the_same_bytes_and_report_the_same_failures(shared_data, tmp_path, run):
    wav_scp = _bad_and_good_scp(shared_data, tmp_path)
    outputs = {}
    for threads in (1, 3):
        proc = run(f"spkid compute-fbank --dither=0 --num-threads={threads} scp:{wav_scp} "
                   f"ark,scp:{tmp_path}/t{threads}.ark,{tmp_path}/t{threads}.scp "
                   f"--write-utt2num-frames=ark,t:{tmp_path}/n{threads}", check=False)
        assert proc.returncode == 1
        warnings = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("WARNING")]
        outputs[threads] = ((tmp_path / f"t{threads}.ark").read_bytes(),
                            (tmp_path / f"t{threads}.scp").read_text().replace(f"t{threads}.ark", "T.ark"),
                            (tmp_path / f"n{threads}").read_text(), warnings,
                            proc.stderr.decode().strip().splitlines()[-1])
    assert outputs[1] == outputs[3]
    written = read_dict(f"scp:{tmp_path}/t3.scp")
    assert list(written) == ["a0", "a1", "h2", "h3", "h4", "h5"]  # the duplicate, unsorted a1 is reported
    assert len(outputs[3][3]) == 7 and outputs[3][4].startswith("Error: 7 of 13 utterances failed")


def test_compute_vad_threads_write_the_same_bytes(shared_data, tmp_path, run):
    wav_scp = _bad_and_good_scp(shared_data, tmp_path)
    outputs = {}
    for threads in (1, 2):
        proc = run(f"spkid compute-vad --dither=0 --num-threads={threads} --wav scp:{wav_scp} "
                   f"ark,scp:{tmp_path}/v{threads}.ark,{tmp_path}/v{threads}.scp", check=False)
        assert proc.returncode == 1
        warnings = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("WARNING")]
        outputs[threads] = ((tmp_path / f"v{threads}.ark").read_bytes(), warnings)
    assert outputs[1] == outputs[2]
    assert list(read_dict(f"scp:{tmp_path}/v2.scp")) == ["a0", "a1", "h2", "h3", "h4", "h5"]
    assert len(outputs[1][1]) == 7


def test_segments_and_recordings_in_threads(shared_data, tmp_path):
    files = flac_files(shared_data, "librispeech_test_other", n_spk=2, n_utt=2)
    (tmp_path / "wav.scp").write_text("".join(f"r{i} {p}\n" for i, (_, _, p) in enumerate(files)))
    segs = []
    for i in range(len(files)):
        segs += [f"r{i}-s0 r{i} 0.0 1.0", f"r{i}-s1 r{i} 0.5 2.5", f"r{i}-s2 r{i} 3.0 -1"]
    segs.append("z-bad r9 0.0 1.0")  # recording not in wav.scp
    (tmp_path / "segments").write_text("\n".join(segs) + "\n")
    frontend = FbankFrontend(FbankOptions(dither=0.0, num_mel_bins=40))
    results = []
    for threads in (1, 2, 5):
        spec = f"ark,scp:{tmp_path}/s{threads}.ark,{tmp_path}/s{threads}.scp"
        log, frames = compute_table(f"scp:{tmp_path}/wav.scp", spec, frontend, 16000.0,
                                    segments=str(tmp_path / "segments"), num_threads=threads)
        results.append((log.failures, log.done, frames, read_dict(f"scp:{tmp_path}/s{threads}.scp")))
    for failures, done, frames, feats in results[1:]:
        assert failures == results[0][0] and done == results[0][1] == 12
        assert list(frames.items()) == list(results[0][2].items())
        assert list(feats) == list(results[0][3])
        for utt, mat in feats.items():
            np.testing.assert_array_equal(mat, results[0][3][utt])
    assert [u for u, _ in results[0][0]] == ["z-bad"]


def test_resample_and_ark_input_in_threads(shared_data, tmp_path, run):
    files = flac_files(shared_data, "fsdd", n_spk=1, n_utt=3) + flac_files(shared_data, "vctk_mini", 1, 2)
    (tmp_path / "wav.scp").write_text("".join(f"u{i} {p}\n" for i, (_, _, p) in enumerate(files)))
    for threads in (1, 2):
        run(f"spkid compute-fbank --dither=0 --resample-to=16000 --num-threads={threads} "
            f"scp:{tmp_path}/wav.scp ark:{tmp_path}/r{threads}.ark")
    assert (tmp_path / "r1.ark").read_bytes() == (tmp_path / "r2.ark").read_bytes()


def test_an_exception_in_a_worker_propagates_and_leaves_no_output(shared_data, tmp_path):
    files = flac_files(shared_data, "vctk_mini", n_spk=2, n_utt=3)
    (tmp_path / "wav.scp").write_text("".join(f"u{i} {p}\n" for i, (_, _, p) in enumerate(files)))
    calls = []

    def broken(wave):
        calls.append(1)
        if len(calls) == 3:
            raise SpkidError("feature function failed")
        return np.ones((5, 2), np.float32)

    with pytest.raises(SpkidError, match="feature function failed"):
        compute_table(f"scp:{tmp_path}/wav.scp", f"ark,scp:{tmp_path}/x.ark,{tmp_path}/x.scp", broken, 16000.0,
                      num_threads=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wav.scp"]


def test_resolve_threads():
    assert resolve_threads(3) == 3
    assert resolve_threads(0) >= 1
