"""compute-fbank: Kaldi-exact values (two independent ports agree), options, CLI and data dirs."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import flac_files, write_data_dir
from fbank_references import fbank_lhotse

from spkid.features.fbank import FbankOptions, FrameOptions, compute_fbank
from spkid.kaldi.io import read_dict


@pytest.mark.parametrize("dataset,rate", [("librispeech_test_other", 16000), ("vctk_mini", 16000),
                                          ("fsdd", 8000)])
@pytest.mark.parametrize("bins", [40, 64, 80])
def test_parity_with_lhotse_port(shared_data, dataset, rate, bins):
    """kaldi-native-fbank and lhotse's torch port agree on real speech (dither 0)."""
    diffs = []
    for _, _, path in flac_files(shared_data, dataset, n_spk=2, n_utt=2):
        wave, sr = sf.read(path, dtype="float32")
        assert sr == rate
        opts = FbankOptions(sample_frequency=rate, num_mel_bins=bins, dither=0.0)
        a, b = compute_fbank(wave, opts), fbank_lhotse(wave, opts)
        assert a.shape == b.shape == (opts.num_frames(len(wave)), bins)
        diffs.append(np.abs(a - b))
    diffs = np.concatenate([d.ravel() for d in diffs])
    assert diffs.mean() <= 1e-4
    assert diffs.max() <= 1e-2


def test_kaldi_conventions():
    """int16 scale and snip-edges are applied: a known tone gives Kaldi's frame count and level."""
    rate = 16000
    t = np.arange(rate) / rate
    wave = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    opts = FbankOptions(dither=0.0, num_mel_bins=23)
    feats = compute_fbank(wave, opts)
    assert feats.shape == (98, 23)  # snip-edges: 1 + (16000 - 400) // 160
    assert FrameOptions(snip_edges=False).num_frames(rate) == 100
    # int16 scale: the peak bin of a half-scale tone is far above what [-1, 1] input would give
    assert feats.max() > 20.0
    assert compute_fbank(wave, FbankOptions(dither=0.0, snip_edges=False)).shape[0] == 100


def test_cli_matches_library_and_writes_num_frames(shared_data, tmp_path, run):
    files = flac_files(shared_data, "vctk_mini", n_spk=2, n_utt=2)
    data = write_data_dir(tmp_path / "data", [(s, u, str(p)) for s, u, p in files])
    conf = tmp_path / "fbank.conf"
    conf.write_text("# Kaldi-style config\n--num-mel-bins=64\n--dither=0\n--low_freq=40\n")
    run(["spkid", "compute-fbank", "--config", str(conf), "--high-freq=-200", "--data", str(data),
         f"ark,scp:{tmp_path}/f.ark,{tmp_path}/f.scp"])
    feats = read_dict(f"scp:{tmp_path}/f.scp")
    assert list(feats) == sorted(u for _, u, _ in files)
    num_frames = dict(line.split() for line in (data / "utt2num_frames").read_text().splitlines())
    for _, utt, path in files:
        wave, _ = sf.read(path, dtype="float32")
        ref = compute_fbank(wave, FbankOptions(num_mel_bins=64, dither=0.0, low_freq=40, high_freq=-200))
        np.testing.assert_array_equal(feats[utt], ref)
        assert feats[utt].dtype == np.float32
        assert int(num_frames[utt]) == len(ref)


def test_use_energy_and_options_change_output(shared_data, tmp_path, run):
    (_, utt, path), = flac_files(shared_data, "vctk_mini", n_spk=1, n_utt=1)
    (tmp_path / "wav.scp").write_text(f"{utt} {path}\n")
    run(f"spkid compute-fbank --dither=0 --use-energy=true --num-mel-bins=30 scp:{tmp_path}/wav.scp "
        f"ark:{tmp_path}/e.ark && spkid compute-fbank --dither=0 --num-mel-bins=30 --window-type=hamming "
        f"--snip-edges=false scp:{tmp_path}/wav.scp ark:{tmp_path}/h.ark")
    e = read_dict(f"ark:{tmp_path}/e.ark")[utt]
    h = read_dict(f"ark:{tmp_path}/h.ark")[utt]
    wave, _ = sf.read(path, dtype="float32")
    assert e.shape[1] == 31 and h.shape[1] == 30
    assert h.shape[0] == FrameOptions(snip_edges=False).num_frames(len(wave))
    np.testing.assert_array_equal(
        h, compute_fbank(wave, FbankOptions(dither=0.0, num_mel_bins=30, window_type="hamming",
                                            snip_edges=False)))


def test_resample_to_combines_8k_and_16k(shared_data, tmp_path, run):
    files = flac_files(shared_data, "fsdd", 1, 1) + flac_files(shared_data, "vctk_mini", 1, 1)
    data = write_data_dir(tmp_path / "data", [(s, u, str(p)) for s, u, p in files])
    # without --resample-to, the 8 kHz file fails (named), the 16 kHz one is still written
    proc = run(["spkid", "compute-fbank", "--dither=0", "--data", str(data), f"ark,scp:{tmp_path}/a.ark,"
                f"{tmp_path}/a.scp"], check=False)
    assert proc.returncode != 0
    assert b"sample rate 8000 Hz differs" in proc.stderr and files[0][1].encode() in proc.stderr
    assert list(read_dict(f"scp:{tmp_path}/a.scp")) == [files[1][1]]
    run(["spkid", "compute-fbank", "--dither=0", "--resample-to=16000", "--num-mel-bins=40", "--data",
         str(data), f"ark,scp:{tmp_path}/b.ark,{tmp_path}/b.scp"])
    feats = read_dict(f"scp:{tmp_path}/b.scp")
    wave8, _ = sf.read(files[0][2], dtype="float32")
    assert set(feats) == {files[0][1], files[1][1]}
    assert feats[files[0][1]].shape == (FrameOptions().num_frames(2 * len(wave8)), 40)
