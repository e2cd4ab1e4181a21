"""Download-free augmentation sources (spkid.augment.sources, local/make_noise_sources.py) and the degraded test
copy (spkid.augment.degrade, local/make_degraded.py) on a few real utterances: ids, durations, lists read by
the Kaldi tools, the SNRs actually mixed, determinism, and per-utterance failures."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, flac_files, write_data_dir

from spkid.augment.degrade import degrade_data_dir
from spkid.augment.reverberate_data_dir import parse_list_file
from spkid.augment.sources import babble_dir, simulated_rir_dir, synthetic_noise_dir
from spkid.errors import SpkidError
from spkid.kaldi.audio import read_audio
from spkid.kaldi.tables import read_text_table
from spkid.kaldi.validate import validate_data_dir

LOCAL = ROOT / "egs" / "mini" / "v1" / "local"


def test_synthetic_noise_dir(tmp_path):
    d = synthetic_noise_dir(tmp_path / "noise", rate=8000, count=4, seconds=(0.5, 1.0), seed=3)
    validate_data_dir(d, no_feats=True, no_text=True)
    wav, dur = read_text_table(d / "wav.scp"), read_text_table(d / "reco2dur")
    assert sorted(wav) == ["noise-brown-0002", "noise-pink-0001", "noise-white-0000", "noise-white-0003"]
    assert read_text_table(d / "utt2spk") == {u: u for u in wav}
    spectra = {}
    for utt, path in wav.items():
        wave, rate = sf.read(path)
        assert rate == 8000 and 0.5 <= len(wave) / rate <= 1.0
        assert float(dur[utt]) == pytest.approx(len(wave) / rate, abs=1e-4)
        assert 0.05 < np.sqrt(np.mean(wave ** 2)) < 0.2
        power = np.abs(np.fft.rfft(wave)) ** 2
        spectra[utt.split("-")[1]] = power[: len(power) // 8].sum() / power.sum()  # share below rate/16
    assert spectra["white"] < spectra["pink"] < spectra["brown"]
    again = synthetic_noise_dir(tmp_path / "again", rate=8000, count=4, seconds=(0.5, 1.0), seed=3)
    other = synthetic_noise_dir(tmp_path / "other", rate=8000, count=4, seconds=(0.5, 1.0), seed=4)
    first = (d / "wav" / "noise-pink-0001.wav").read_bytes()
    assert (again / "wav" / "noise-pink-0001.wav").read_bytes() == first
    assert (other / "wav" / "noise-pink-0001.wav").read_bytes() != first


def test_simulated_rir_dir_list_read_by_reverberate_data_dir(tmp_path):
    d = simulated_rir_dir(tmp_path / "rirs", rate=16000, count=3, seed=0, max_t60=0.3)
    items = parse_list_file(str(d / "rir_list"), "rir", None)
    assert [(i.rir_id, i.room_id) for i in items] == [(f"sim-000{n}", f"sim-000{n}") for n in range(3)]
    for item in items:
        rir, rate = read_audio(item.rspecifier)
        assert rate == 16000 and 0.99 < np.abs(rir).max() <= 1.0 and len(rir) <= 0.3 * 16000 + 1
    assert sorted(read_text_table(d / "wav.scp")) == ["sim-0000", "sim-0001", "sim-0002"]


def test_babble_dir_one_speaker_after_another(shared_data, tmp_path):
    src = write_data_dir(tmp_path / "train", [(s, u, str(p)) for s, u, p in
                                              flac_files(shared_data, "arabic_speech_commands", 3, 3)])
    source_wav, utt2spk = read_text_table(src / "wav.scp"), read_text_table(src / "utt2spk")
    d = babble_dir(src, tmp_path / "babble", count=4, seed=1)
    wav = read_text_table(d / "wav.scp")
    assert len(wav) == 4 and all(source_wav[u] == v for u, v in wav.items())
    assert len({utt2spk[u] for u in wav}) == 3  # every speaker once before any twice
    for utt, value in read_text_table(d / "reco2dur").items():
        wave, rate = read_audio(wav[utt])
        assert float(value) == pytest.approx(len(wave) / rate, abs=1e-4)
    assert babble_dir(src, tmp_path / "b2", count=4, seed=1) and read_text_table(tmp_path / "b2" / "wav.scp") == wav


@pytest.fixture
def test_set(shared_data, tmp_path):
    entries = [(s, u, str(p)) for s, u, p in flac_files(shared_data, "arabic_speech_commands", 2, 3)]
    d = write_data_dir(tmp_path / "test", entries)
    rows = sorted(entries, key=lambda e: e[1].encode())
    (d / "trials").write_text("".join(f"{a[1]} {b[1]} {'target' if a[0] == b[0] else 'nontarget'}\n"
                                      for a, b in itertools.combinations(rows, 2)))
    noise = synthetic_noise_dir(tmp_path / "noise", count=3, seconds=(0.3, 2.0), seed=0)
    rirs = simulated_rir_dir(tmp_path / "rirs", count=2, seed=0, max_t60=0.3)
    return d, noise, rirs / "rir_list"


def _measured_snr(clean: np.ndarray, mixed: np.ndarray) -> float:
    """SNR of mixed = a * (clean + noise): the clean part by projection, the rest is noise."""
    a = np.dot(mixed, clean) / np.dot(clean, clean)
    residual = mixed - a * clean
    return 10 * np.log10(np.sum((a * clean) ** 2) / np.sum(residual ** 2))


def test_degraded_copy_noise_at_the_recorded_snr(test_set, tmp_path):
    src, noise, _ = test_set
    dest = degrade_data_dir(src, tmp_path / "deg", [noise], kinds=("noise",), snr_range=(0, 10), seed=5)
    validate_data_dir(dest, no_feats=True, no_text=True)
    assert (dest / "trials").read_text() == (src / "trials").read_text()
    assert read_text_table(dest / "utt2spk") == read_text_table(src / "utt2spk")
    described = read_text_table(dest / "utt2degradation")
    snrs = []
    for utt, rx in read_text_table(src / "wav.scp").items():
        clean, rate = read_audio(rx)
        mixed, out_rate = read_audio(read_text_table(dest / "wav.scp")[utt])
        kind, snr, noise_id, rir = described[utt].split()
        assert (kind, rir, out_rate, len(mixed)) == ("noise", "-", rate, len(clean))
        assert noise_id in read_text_table(noise / "wav.scp") and 0 <= float(snr) <= 10
        assert _measured_snr(clean.astype(np.float64), mixed.astype(np.float64)) == pytest.approx(float(snr), abs=0.5)
        assert np.mean(mixed ** 2) == pytest.approx(np.mean(clean ** 2), rel=0.02)  # Kaldi: input power kept
        snrs.append(float(snr))
    assert len(set(snrs)) == len(snrs)  # drawn per utterance


def test_degraded_copy_reverb_deterministic_and_per_utterance(test_set, tmp_path):
    src, noise, rir_list = test_set
    dest = degrade_data_dir(src, tmp_path / "a", [noise], rir_list, seed=1)
    kinds = {v.split()[0] for v in read_text_table(dest / "utt2degradation").values()}
    assert kinds <= {"noise", "reverb", "noise+reverb"} and len(kinds) >= 2
    rir_ids = {item.rspecifier.rsplit("/", 1)[1][:-4] for item in parse_list_file(str(rir_list), "rir", None)}
    for utt, value in read_text_table(dest / "utt2degradation").items():
        kind, _, _, rir = value.split()
        assert (rir in rir_ids) == ("reverb" in kind)
        if kind == "reverb":
            clean, _ = read_audio(read_text_table(src / "wav.scp")[utt])
            wet, _ = read_audio(read_text_table(dest / "wav.scp")[utt])
            assert len(wet) == len(clean) and np.corrcoef(clean, wet)[0, 1] < 0.99
    again = degrade_data_dir(src, tmp_path / "b", [noise], rir_list, seed=1)
    first_utt = sorted(read_text_table(src / "wav.scp"))[0]
    assert (again / "wav" / f"{first_utt}.wav").read_bytes() == (dest / "wav" / f"{first_utt}.wav").read_bytes()
    # an utterance's copy does not depend on the others (seeded by its id)
    last = sorted(read_text_table(src / "wav.scp"))[-1]
    one = write_data_dir(tmp_path / "one", [("s", last, read_text_table(src / "wav.scp")[last])])
    alone = degrade_data_dir(one, tmp_path / "c", [noise], rir_list, seed=1)
    assert (alone / "wav" / f"{last}.wav").read_bytes() == (dest / "wav" / f"{last}.wav").read_bytes()
    other_seed = degrade_data_dir(one, tmp_path / "d", [noise], rir_list, seed=2)
    assert (other_seed / "wav" / f"{last}.wav").read_bytes() != (dest / "wav" / f"{last}.wav").read_bytes()


def test_local_scripts_end_to_end_and_a_bad_utterance(run, test_set, tmp_path):
    src, _, _ = test_set
    run([str(LOCAL / "make_noise_sources.py"), "--noises", "2", "--rirs", "2", "--babble-from", str(src),
         "--babble", "2", str(tmp_path / "data")])
    for name in ("noise_synth", "rirs_sim", "babble"):
        validate_data_dir(tmp_path / "data" / name, no_feats=True, no_text=True)
    wav = read_text_table(src / "wav.scp")
    broken = sorted(wav)[1]
    wav[broken] = str(tmp_path / "missing.flac")
    (src / "wav.scp").write_text("".join(f"{u} {v}\n" for u, v in sorted(wav.items())))
    proc = run([str(LOCAL / "make_degraded.py"), "--noise-dir", str(tmp_path / "data" / "noise_synth"),
                "--noise-dir", str(tmp_path / "data" / "babble"), "--rir-list",
                str(tmp_path / "data/rirs_sim/rir_list"), str(src), str(tmp_path / "deg")], check=False)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("make_degraded.py: 1 of 6 utterances failed; first: " + broken) and "missing.flac" in last
    assert sorted(read_text_table(tmp_path / "deg" / "wav.scp")) == sorted(u for u in wav if u != broken)


def test_degrade_errors(test_set, tmp_path):
    src, noise, _ = test_set
    with pytest.raises(SpkidError, match="unknown kind 'echo'"):
        degrade_data_dir(src, tmp_path / "x", [noise], kinds=("echo",))
    with pytest.raises(SpkidError, match="noise needs at least one noise data dir"):
        degrade_data_dir(src, tmp_path / "x", [], kinds=("noise",))
    assert not (tmp_path / "x").exists()


def test_score_conditions_on_common_trials(run, test_set, tmp_path):
    """local/score_conditions.sh: one EER line per condition, over the trials every condition can score."""
    src, _, _ = test_set
    wav = read_text_table(src / "wav.scp")
    dropped = sorted(wav)[0]
    subset = write_data_dir(tmp_path / "subset", [(read_text_table(src / "utt2spk")[u], u, v) for u, v in wav.items()
                                                  if u != dropped])
    model = tmp_path / "model"
    run(["spkid", "import-resemblyzer", "--output", str(model)])
    out = run([str(LOCAL / "score_conditions.sh"), str(model), str(src), str(subset)]).stdout.decode().splitlines()
    assert out[0].startswith("10 of 15 trials")
    trials = (model / "conditions" / "trials").read_text().splitlines()
    assert len(trials) == 10 and not any(dropped in t for t in trials)
    eers = [line.split() for line in out[1:]]
    assert [e[0] for e in eers] == ["test", "subset"] and eers[0][1:] == eers[1][1:]  # same audio, same figures
    assert eers[0][1].startswith("EER=") and eers[0][2].startswith("minDCF(p=0.01)=")
