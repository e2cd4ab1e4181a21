"""On-the-fly augmentation building blocks (spkid.augment.transforms/simulate): SNRs, babble, reverberation
(the wav-reverberate code, checked against the Kaldi oracle), speed, coloured noise, simulated RIRs, augment()."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import flac_files, write_data_dir
from kaldi_oracle import kaldi_wav_reverberate, synthetic_rir

from spkid.augment.simulate import coloured_noise, simulated_rir
from spkid.augment.transforms import (
    AugmentConfig,
    add_babble,
    add_noise,
    add_reverb,
    augment,
    speed_perturb,
)
from spkid.errors import SpkidError


@pytest.fixture(scope="module")
def speech(shared_data):
    wave, rate = sf.read(str(sorted((shared_data / "vctk_mini").glob("*/*.flac"))[0]), dtype="float32")
    return wave, rate


def measured_snrs(out, clean, noises):
    """Fit out = a * clean + sum(b_i * noise_i) (the output is rescaled by an unknown gain) and return the
    SNR of each noise against the clean speech, in dB."""
    basis = np.stack([clean, *noises], axis=1).astype(np.float64)
    coef = np.linalg.lstsq(basis, out.astype(np.float64), rcond=None)[0]
    power = np.mean(clean.astype(np.float64) ** 2)
    return [10 * np.log10(power / np.mean((c / coef[0] * n) ** 2)) for c, n in zip(coef[1:], noises)]


def test_add_noise_snr(speech):
    wave, rate = speech
    noise = np.random.default_rng(0).standard_normal(rate)  # shorter than the speech: repeated
    for snr in (0.0, 5.0, 17.5):
        out = add_noise(wave, rate, noise, snr)
        assert len(out) == len(wave)
        fitted = np.tile(noise, len(wave) // len(noise) + 1)[:len(wave)]
        (measured,) = measured_snrs(out, wave, [fitted])
        assert abs(measured - snr) < 0.1
        assert abs(np.mean(out ** 2) - np.mean(wave.astype(float) ** 2)) < 1e-6  # rescaled to the input power


def test_babble_each_at_its_snr(speech, shared_data):
    wave, rate = speech
    files = flac_files(shared_data, "librispeech_test_other", 5, 1)
    others = [sf.read(str(p), dtype="float32")[0] for _, _, p in files]
    snrs = [20, 17, 15, 13, 13]
    rng = np.random.default_rng(3)
    out = add_babble(wave, rate, others, snrs, rng)
    rng = np.random.default_rng(3)  # the same cuts again
    from spkid.augment.transforms import fit_to_length

    fitted = [fit_to_length(o, len(wave), rng) for o in others]
    for measured, snr in zip(measured_snrs(out, wave, fitted), snrs):
        assert abs(measured - snr) < 0.1


def test_reverb_is_kaldis(speech):
    wave, rate = speech
    speech16 = np.round(wave * 32768).astype(np.int16)
    rir16 = synthetic_rir(rate, 4000, 120)
    ours = add_reverb(speech16 / 32768.0, rate, rir16 / 32768.0)
    kaldi = kaldi_wav_reverberate(speech16, rate, rir16, rate)
    assert len(ours) == len(kaldi) == len(wave)
    assert np.abs(np.trunc(ours * 32768) - kaldi).max() <= 1


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_duration_and_pitch(factor):
    rate = 16000
    t = np.arange(2 * rate) / rate
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = speed_perturb(tone, rate, factor)
    assert abs(len(out) - len(tone) / factor) <= 1
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.argmax(spectrum) * rate / len(out)
    assert abs(peak_hz - 440 * factor) < 2  # sox speed: pitch moves with tempo


@pytest.mark.parametrize("colour,slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_spectrum(colour, slope):
    from scipy.signal import welch

    noise = coloured_noise(16000 * 4, colour, np.random.default_rng(0))
    assert abs(np.mean(noise ** 2) - 1) < 1e-9
    freqs, psd = welch(noise, fs=16000, nperseg=4096)
    band = (freqs > 50) & (freqs < 4000)
    fitted = np.polyfit(np.log10(freqs[band]), np.log10(psd[band]), 1)[0]
    assert abs(fitted - slope) < 0.15
    assert np.array_equal(noise, coloured_noise(16000 * 4, colour, np.random.default_rng(0)))


def test_simulated_rir():
    rirs = [simulated_rir(16000, np.random.default_rng(seed)) for seed in range(4)]
    assert np.array_equal(rirs[0], simulated_rir(16000, np.random.default_rng(0)))
    assert not np.array_equal(rirs[0][:1000], rirs[1][:1000])
    for seed, rir in enumerate(rirs):
        t60 = np.random.default_rng(seed).uniform(0.1, 0.8)  # the first draw: the room's T60
        assert abs(len(rir) / 16000 - t60) < 1e-3 and np.abs(rir).max() == 1.0
        edc = np.cumsum(rir[::-1] ** 2)[::-1]  # Schroeder energy decay curve
        db = 10 * np.log10(edc / edc[0] + 1e-30)
        t20 = 3 * (np.argmax(db < -25) - np.argmax(db < -5)) / 16000
        assert 0.5 * t60 < t20 < 2.5 * t60
        peak = int(np.argmax(np.abs(rir)))
        energy = np.cumsum(rir[peak:] ** 2)
        assert energy[len(energy) // 2] > 0.95 * energy[-1]  # decays


@pytest.fixture
def sources(shared_data, tmp_path):
    rng = np.random.default_rng(0)
    sf.write(str(tmp_path / "n.wav"), rng.normal(0, 0.1, 8000), 16000, subtype="PCM_16")
    noise = write_data_dir(tmp_path / "noise", [("n", "n", str(tmp_path / "n.wav"))])
    babble = write_data_dir(tmp_path / "babble", [(s, u, str(p)) for s, u, p in
                                                  flac_files(shared_data, "librispeech_test_other", 4, 1)])
    sf.write(str(tmp_path / "rir.wav"), synthetic_rir(16000, 2000, 30), 16000, subtype="PCM_16")
    (tmp_path / "rir_list").write_text(f"--rir-id r --room-id a {tmp_path / 'rir.wav'}\n")
    return {"noise_dir": str(noise), "music_dir": str(babble), "babble_dir": str(babble),
            "rir_list": str(tmp_path / "rir_list")}


def test_augment_determinism_and_kinds(speech, sources):
    wave, rate = speech
    full = AugmentConfig(reverb_prob=1, noise_prob=1, music_prob=1, babble_prob=1, coloured_noise_prob=1, **sources)
    a = augment(wave, rate, np.random.default_rng(11), full)
    b = augment(wave, rate, np.random.default_rng(11), full)
    c = augment(wave, rate, np.random.default_rng(12), full)
    assert a.dtype == np.float32 and len(a) == len(wave)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.corrcoef(a, wave)[0, 1] < 0.99  # really changed
    noisy = augment(wave, rate, np.random.default_rng(11), AugmentConfig(noise_prob=1, babble_prob=1, **sources))
    assert abs(np.mean(noisy.astype(float) ** 2) / np.mean(wave.astype(float) ** 2) - 1) < 1e-4  # normalised
    import torch

    tensor = augment(torch.from_numpy(wave), rate, np.random.default_rng(11), full)
    assert isinstance(tensor, torch.Tensor) and np.array_equal(tensor.numpy(), a)
    simulated = augment(wave, rate, np.random.default_rng(1), AugmentConfig(reverb_prob=1))
    assert len(simulated) == len(wave) and not np.allclose(simulated, wave)
    assert np.array_equal(augment(wave, rate, np.random.default_rng(1), AugmentConfig()), wave)
    slow = augment(wave, rate, np.random.default_rng(1), AugmentConfig(speed_prob=1, speeds=[0.9]))
    assert abs(len(slow) - len(wave) / 0.9) <= 1
    coin = [len(augment(wave, rate, np.random.default_rng(s), AugmentConfig(speed_prob=0.5, speeds=[1.1])))
            for s in range(20)]
    assert 3 <= sum(n != len(wave) for n in coin) <= 17  # applied with its probability


def test_config_validation(sources):
    with pytest.raises(SpkidError, match="unknown options"):
        AugmentConfig.from_dict({"noise_probability": 0.5})
    with pytest.raises(SpkidError, match="between 0 and 1"):
        AugmentConfig(speed_prob=1.5)
    with pytest.raises(SpkidError, match="needs babble_dir"):
        AugmentConfig(babble_prob=0.5)
    cfg = AugmentConfig.from_dict({"babble_prob": 0.2, "babble_dir": sources["babble_dir"], "babble_count": [3, 7]})
    assert cfg.babble_count == (3, 7)
