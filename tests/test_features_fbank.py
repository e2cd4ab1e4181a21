"""The vectorised fbank engine equals kaldi-native-fbank's per-frame OnlineFbank for every option."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import flac_files
from fbank_references import fbank_knf

from spkid.features.fbank import FbankOptions, KaldiFbank, compute_fbank
from spkid.features.frontend import FbankFrontend

CASES = [
    {}, {"num_mel_bins": 80}, {"use_energy": True}, {"use_energy": True, "raw_energy": False},
    {"use_energy": True, "htk_compat": True, "energy_floor": 1.0}, {"snip_edges": False},
    {"round_to_power_of_two": False}, {"use_power": False}, {"window_type": "hamming"},
    {"window_type": "hanning"}, {"window_type": "rectangular"}, {"window_type": "sine"},
    {"window_type": "blackman"}, {"preemphasis_coefficient": 0.0}, {"remove_dc_offset": False},
    {"frame_length": 20, "frame_shift": 12, "num_mel_bins": 64}, {"low_freq": 40, "high_freq": -200},
]


@pytest.fixture(scope="module")
def waves(shared_data):
    out = []
    for dataset in ("vctk_mini", "fsdd"):
        for _, _, path in flac_files(shared_data, dataset, n_spk=1, n_utt=1):
            wave, rate = sf.read(path, dtype="float32")
            out.append((wave, rate))
    return out


@pytest.mark.parametrize("options", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults")
def test_engine_matches_kaldi_native_fbank(waves, options):
    for wave, rate in waves:
        opts = FbankOptions(sample_frequency=rate, dither=0.0, **options)
        ours, ref = compute_fbank(wave, opts), fbank_knf(wave, opts)
        assert ours.shape == ref.shape == (opts.num_frames(len(wave)), opts.dim)
        assert ours.dtype == np.float32 and ours.flags["C_CONTIGUOUS"]
        diff = np.abs(ours - ref)
        assert diff.max() <= 5e-3 and diff.mean() <= 5e-5, (diff.max(), diff.mean())


def test_linear_fbank_relative_agreement(waves):
    wave, rate = waves[0]
    opts = FbankOptions(sample_frequency=rate, dither=0.0, use_log_fbank=False)
    ours, ref = compute_fbank(wave, opts), fbank_knf(wave, opts)
    assert np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), 1.0)) <= 1e-3


@pytest.mark.parametrize("num_samples", [0, 10, 150, 399, 400, 401, 561])
@pytest.mark.parametrize("snip_edges", [True, False])
def test_short_waves_frame_counts(num_samples, snip_edges):
    wave = np.random.default_rng(num_samples).normal(0, 0.1, num_samples).astype(np.float32)
    opts = FbankOptions(dither=0.0, snip_edges=snip_edges)
    ours, ref = compute_fbank(wave, opts), fbank_knf(wave, opts)
    assert ours.shape == ref.shape == (opts.num_frames(num_samples), opts.dim)
    if ours.size:
        assert np.abs(ours - ref).max() <= 1e-3


def test_closer_to_float64_than_a_float32_fft(shared_data):
    """Frames with a weak mel band are redone in float64: the worst error stays at the float32 input's."""
    from scipy.fft import rfft

    (_, _, path), = flac_files(shared_data, "librispeech_test_other", n_spk=1, n_utt=1)
    wave, _ = sf.read(path, dtype="float32")
    opts = FbankOptions(dither=0.0, num_mel_bins=80)
    engine = KaldiFbank(opts)
    frames = engine.frames(wave.astype(np.float64) * 32768.0)
    frames = frames - frames.mean(axis=1, keepdims=True)
    y = np.zeros((len(frames), engine.padded))
    y[:, 1:engine.length] = frames[:, 1:] - 0.97 * frames[:, :-1]
    y[:, 0] = frames[:, 0] * (1 - 0.97)
    y[:, :engine.length] *= engine.window
    spectrum = rfft(y, axis=1)
    ref = np.log(np.maximum((spectrum.real ** 2 + spectrum.imag ** 2) @ engine.mel_t.toarray(), 1.1920929e-07))
    assert np.abs(compute_fbank(wave, opts) - ref).max() <= 3e-3


def test_dither_is_random_noise_of_the_given_scale(waves):
    wave, rate = waves[0]
    a = compute_fbank(wave, FbankOptions(sample_frequency=rate))
    b = compute_fbank(wave, FbankOptions(sample_frequency=rate))
    clean = compute_fbank(wave, FbankOptions(sample_frequency=rate, dither=0.0))
    assert a.shape == clean.shape and not np.array_equal(a, b)
    assert np.median(np.abs(a - clean)) < 0.05  # dither 1.0 on the int16 scale is far below speech


def test_engine_cache_follows_option_values_and_frontend_agrees(waves):
    wave, rate = waves[0]
    opts = FbankOptions(sample_frequency=rate, dither=0.0)
    first = compute_fbank(wave, opts)
    opts.num_mel_bins = 30  # FbankOptions is mutable: the cached engine must not be reused
    assert compute_fbank(wave, opts).shape[1] == 30
    np.testing.assert_array_equal(FbankFrontend(FbankOptions(sample_frequency=rate, dither=0.0))(wave), first)
