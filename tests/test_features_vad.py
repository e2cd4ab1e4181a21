"""compute-vad equals Kaldi's ComputeVadEnergy; frames align with fbank; select-voiced-frames."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import flac_files, write_data_dir

from spkid.features.fbank import FbankOptions, compute_fbank
from spkid.features.vad import VadOptions, compute_vad_energy, log_energy_from_audio, select_voiced_frames
from spkid.kaldi.io import TableWriter, read_dict


def kaldi_vad_reference(log_energy, threshold, mean_scale, context, proportion):
    """Literal transcription of Kaldi's ComputeVadEnergy (float32 arithmetic)."""
    f32 = np.float32
    le = np.asarray(log_energy, dtype=np.float32)
    T = len(le)
    thr = f32(threshold)
    if mean_scale != 0.0:
        s = f32(sum(float(x) for x in le))
        thr = f32(thr + f32(f32(f32(mean_scale) * s) / f32(T)))
    out = np.zeros(T, dtype=np.float32)
    for t in range(T):
        num = den = 0
        for t2 in range(t - context, t + context + 1):
            if 0 <= t2 < T:
                den += 1
                if le[t2] > thr:
                    num += 1
        out[t] = 1.0 if f32(num) >= f32(den) * f32(proportion) else 0.0
    return out


@pytest.mark.parametrize("seed", range(20))
def test_vad_equals_kaldi_loop(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 400))
    energy = rng.normal(10, 4, T).astype(np.float32)
    if seed % 3 == 0:
        energy = np.round(energy)  # ties with the threshold
    opts = VadOptions(vad_energy_threshold=float(rng.uniform(0, 8)),
                      vad_energy_mean_scale=[0.0, 0.5][seed % 2],
                      vad_frames_context=int(rng.integers(0, 6)),
                      vad_proportion_threshold=float(rng.uniform(0.05, 0.95)))
    ref = kaldi_vad_reference(energy, opts.vad_energy_threshold, opts.vad_energy_mean_scale,
                              opts.vad_frames_context, opts.vad_proportion_threshold)
    np.testing.assert_array_equal(compute_vad_energy(energy, opts), ref)


def test_vad_defaults_and_bad_options():
    assert VadOptions() == VadOptions(5.0, 0.5, 0, 0.6)  # Kaldi's VadEnergyOptions defaults
    from spkid.errors import SpkidError
    with pytest.raises(SpkidError):
        compute_vad_energy(np.ones(3), VadOptions(vad_proportion_threshold=1.0))


def test_log_energy_is_kaldi_raw_energy():
    """Column 0 with --use-energy equals log(sum of squares) of the dc-removed int16-scale frame."""
    rng = np.random.default_rng(0)
    wave = (rng.normal(0, 0.1, 4000)).astype(np.float32)
    le = log_energy_from_audio(wave, FbankOptions(dither=0.0))
    frame = wave[:400].astype(np.float64) * 32768
    frame -= frame.mean()
    assert le[0] == pytest.approx(np.log(np.sum(frame ** 2)), rel=1e-5)
    assert len(le) == FbankOptions().num_frames(4000)


def test_cli_vad_aligned_with_fbank_and_select(shared_data, tmp_path, run):
    files = flac_files(shared_data, "vctk_mini", n_spk=2, n_utt=1)
    data = write_data_dir(tmp_path / "d", [(s, u, str(p)) for s, u, p in files])
    conf = tmp_path / "fbank.conf"
    conf.write_text("--num-mel-bins=40\n--dither=0\n--frame-shift=12\n")
    run(f"spkid compute-fbank --config {conf} --data {data} ark,scp:{tmp_path}/f.ark,{data}/feats.scp && "
        f"spkid compute-vad --fbank-config {conf} --data {data} ark,scp:{tmp_path}/v.ark,{data}/vad.scp && "
        f"spkid select-voiced-frames scp:{data}/feats.scp scp:{data}/vad.scp ark:- | "
        f"spkid copy-feats ark:- ark,scp:{tmp_path}/s.ark,{tmp_path}/s.scp")
    feats, vad = read_dict(f"scp:{data}/feats.scp"), read_dict(f"scp:{data}/vad.scp")
    voiced = read_dict(f"scp:{tmp_path}/s.scp")
    for _, utt, path in files:
        wave, _ = sf.read(path, dtype="float32")
        assert len(vad[utt]) == len(feats[utt])
        energy = compute_fbank(wave, FbankOptions(dither=0.0, frame_shift=12, use_energy=True))[:, 0]
        np.testing.assert_array_equal(vad[utt], compute_vad_energy(energy, VadOptions()))
        assert 0 < vad[utt].sum() < len(vad[utt])
        np.testing.assert_array_equal(voiced[utt], feats[utt][vad[utt] != 0])
    # Kaldi's own form: compute-vad on features whose column 0 is log energy
    run(f"spkid compute-fbank --dither=0 --use-energy=true --data {data} ark:{tmp_path}/e.ark && "
        f"spkid compute-vad ark:{tmp_path}/e.ark ark:{tmp_path}/ve.ark")
    energy_feats = read_dict(f"ark:{tmp_path}/e.ark")
    for utt, v in read_dict(f"ark:{tmp_path}/ve.ark").items():
        np.testing.assert_array_equal(v, compute_vad_energy(energy_feats[utt][:, 0], VadOptions()))


def test_select_voiced_frames_bad_inputs(tmp_path, run):
    with TableWriter(f"ark:{tmp_path}/f.ark") as w:
        w.write("a", np.ones((4, 2), np.float32))
        w.write("b", np.ones((3, 2), np.float32))
        w.write("c", np.ones((2, 2), np.float32))
        w.write("d", np.ones((2, 2), np.float32))
    with TableWriter(f"ark:{tmp_path}/v.ark") as w:
        w.write("a", np.array([1, 0, 1, 1], np.float32))
        w.write("b", np.array([1, 0], np.float32))
        w.write("c", np.array([0, 0], np.float32))
    proc = run(f"spkid select-voiced-frames ark:{tmp_path}/f.ark ark:{tmp_path}/v.ark ark:{tmp_path}/o.ark",
               check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "utterance b: mismatch in number of frames: 3" in err
    assert "utterance c: no frames were judged voiced" in err
    assert "utterance d: no VAD" in err
    assert read_dict(f"ark:{tmp_path}/o.ark")["a"].shape == (3, 2)
    with pytest.raises(ValueError):
        select_voiced_frames(np.ones((2, 2)), np.ones(3))


def test_vad_takes_resample_to_from_fbank_config(shared_data, tmp_path, run):
    """8 kHz audio with an fbank config resampling to 16 kHz: VAD frames align with the fbank's."""
    files = flac_files(shared_data, "fsdd", n_spk=1, n_utt=2)
    data = write_data_dir(tmp_path / "d", [(s, u, str(p)) for s, u, p in files])
    conf = tmp_path / "fbank.conf"
    conf.write_text("--sample-frequency=16000\n--resample-to=16000\n--dither=0\n")
    run(f"spkid compute-fbank --config {conf} --data {data} ark,scp:{tmp_path}/f.ark,{data}/feats.scp && "
        f"spkid compute-vad --fbank-config {conf} --data {data} ark,scp:{tmp_path}/v.ark,{data}/vad.scp")
    feats, vad = read_dict(f"scp:{data}/feats.scp"), read_dict(f"scp:{data}/vad.scp")
    assert list(vad) == list(feats) and all(len(vad[u]) == len(feats[u]) for u in feats)


def test_frontend_from_kaldi_config_files(tmp_path):
    from spkid.features.frontend import build_frontend

    (tmp_path / "fbank.conf").write_text("--num-mel-bins=30\n--resample-to=8000\n--dither=0\n--snip-edges=false\n")
    (tmp_path / "vad.conf").write_text("--vad-energy-threshold=4.0\n")
    cfg = build_frontend({"type": "kaldi-fbank", "kaldi_config": str(tmp_path / "fbank.conf"),
                          "vad_config": str(tmp_path / "vad.conf"), "num_mel_bins": 20}).to_config()
    assert cfg["num_mel_bins"] == 20 and cfg["sample_frequency"] == 8000.0 and cfg["snip_edges"] is False
    assert cfg["vad"] == {**VadOptions().to_dict(), "vad_energy_threshold": 4.0}
    assert "kaldi_config" not in cfg  # checkpoints store explicit values
