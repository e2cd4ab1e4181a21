"""GE2E encoder, partial-window extraction and the resemblyzer-mel front-end (no resemblyzer needed)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from spkid.errors import SpkidError
from spkid.features.frontend import build_frontend
from spkid.features.resemblyzer_mel import ResemblyzerFrontend, hz_to_mel, mel_filters, mel_to_hz
from spkid.models import build_model, model_names
from spkid.models.ge2e import GE2EEncoder
from spkid.models.windows import embed_frames, extraction_config, partial_slices

OVERLAP = {"scheme": "overlap", "window_frames": 160, "overlap": 0.5}
RESEMBLYZER = {"scheme": "resemblyzer", "window_frames": 160, "rate": 1.3, "min_coverage": 0.75}


def padded_frames(num_frames: int, config: dict) -> int:
    """How many frames the utterance has once zero-padded to its last window's end."""
    return max(num_frames, partial_slices(num_frames, config)[-1].stop)


@pytest.fixture(scope="module")
def small_model() -> GE2EEncoder:
    torch.manual_seed(0)
    model = build_model("ge2e", {"feat_dim": 40, "hidden_size": 32, "num_layers": 2, "embed_dim": 24})
    with torch.no_grad():  # non-negative bias: ReLU outputs are never all zero
        model.projection.bias.uniform_(0.1, 0.5)
    return model


def test_registered_and_config_roundtrip():
    assert "ge2e" in model_names()
    model = GE2EEncoder()
    assert model.to_config() == {"feat_dim": 40, "embed_dim": 256, "hidden_size": 256, "num_layers": 3}
    clone = build_model("ge2e", model.to_config())
    clone.load_state_dict(model.state_dict(), strict=True)
    # checkpoints written before the encoder contract name the dims input_dim / embedding_dim
    old = build_model("ge2e", {"input_dim": 40, "hidden_size": 256, "num_layers": 3, "embedding_dim": 256})
    old.load_state_dict(model.state_dict(), strict=True)
    names = set(model.state_dict())
    assert {"projection.weight", "projection.bias", "lstm.weight_ih_l0", "lstm.weight_hh_l2"} <= names


def test_forward_shapes_and_l2_norm(small_model):
    out = small_model(torch.randn(5, 70, 40))
    assert out.shape == (5, 24)
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-6)
    assert (out >= 0).all()
    with pytest.raises(ValueError, match="expects"):
        small_model(torch.randn(5, 70, 41))


@pytest.mark.parametrize("num_frames,starts", [
    (1, [0]), (100, [0]), (160, [0]), (200, [0]), (201, [0, 80]), (280, [0, 80]), (281, [0, 80, 160]),
    (400, [0, 80, 160, 240]), (1000, list(range(0, 801, 80))),
])
def test_overlap_scheme_windows(num_frames, starts):
    slices = partial_slices(num_frames, OVERLAP)
    assert [s.start for s in slices] == starts
    assert all(s.stop - s.start == 160 for s in slices)
    assert padded_frames(num_frames, OVERLAP) == max(num_frames, starts[-1] + 160)


@pytest.mark.parametrize("config", [OVERLAP, RESEMBLYZER])
def test_slices_cover_the_utterance(config):
    cfg = extraction_config(config)
    step = 80 if cfg["scheme"] == "overlap" else 77
    for num_frames in range(1, 1500, 7):
        slices = partial_slices(num_frames, cfg)
        assert slices[0].start == 0
        assert all(b.start - a.start == step for a, b in zip(slices, slices[1:]))
        assert all(s.start < num_frames for s in slices)
        # the tail left out (a last window covering < min_coverage of itself) is shorter than a window
        assert num_frames - slices[-1].stop < 160 * 0.75
        # a window past the end is kept only when the utterance covers >= 75% of it (or it is the only one)
        if slices[-1].stop > num_frames and len(slices) > 1:
            assert num_frames - 1 - slices[-1].start >= 120


def test_extraction_config_checks():
    assert extraction_config(None)["scheme"] == "overlap"
    assert extraction_config(RESEMBLYZER)["frame_rate"] == 100.0
    with pytest.raises(SpkidError, match="unknown extraction scheme"):
        extraction_config({"scheme": "mean"})
    with pytest.raises(SpkidError, match="unknown option"):
        extraction_config({"scheme": "overlap", "rate": 1.3})
    with pytest.raises(SpkidError, match="rate"):
        extraction_config({"scheme": "resemblyzer", "rate": 0.1})


def _one_by_one(model, frames, config):
    """Reference: windows of one utterance (zero-padded), embedded, averaged, renormalised."""
    slices = partial_slices(len(frames), config)
    padded = np.zeros((max(len(frames), slices[-1].stop), frames.shape[1]), np.float32)
    padded[:len(frames)] = frames
    with torch.no_grad():
        partial = model(torch.from_numpy(np.stack([padded[s] for s in slices]))).numpy()
    mean = partial.mean(axis=0)
    return mean / np.linalg.norm(mean)


@pytest.mark.parametrize("config", [OVERLAP, RESEMBLYZER])
def test_batched_embed_frames_equals_per_utterance(small_model, config):
    rng = np.random.default_rng(1)
    frames_list = [rng.random((n, 40), dtype=np.float32) for n in (1, 37, 160, 161, 243, 700, 1234)]
    batched = embed_frames(small_model, frames_list, config, batch_size=4)
    assert batched.shape == (len(frames_list), 24) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-6)
    expected = np.stack([_one_by_one(small_model, f, config) for f in frames_list])
    np.testing.assert_allclose(batched, expected, atol=2e-5)
    singles = np.concatenate([embed_frames(small_model, [f], config, batch_size=64) for f in frames_list])
    np.testing.assert_allclose(batched, singles, atol=2e-5)


def test_repeat_padding_tiles_the_utterance(small_model):
    """pad=repeat: frames past the end repeat the utterance from its start (a short one is tiled)."""
    from spkid.models.windows import iter_windows

    cfg = extraction_config({**OVERLAP, "pad": "repeat"})
    frames = np.arange(3 * 50, dtype=np.float32).reshape(50, 3)
    (owner, window), = list(iter_windows([frames], cfg))
    assert owner == 0 and window.shape == (160, 3)
    np.testing.assert_array_equal(window, frames[np.arange(160) % 50])
    last = list(iter_windows([np.ones((290, 3), np.float32) * np.arange(290)[:, None]], cfg))[-1][1]
    np.testing.assert_array_equal(last[:, 0], np.arange(160, 320) % 290)  # the tail wraps to frame 0
    zero = list(iter_windows([frames], extraction_config(OVERLAP)))[0][1]
    assert not zero[50:].any()
    with pytest.raises(SpkidError, match="pad must be one of"):
        extraction_config({**OVERLAP, "pad": "edge"})
    rng = np.random.default_rng(0)
    short = rng.random((37, 40), dtype=np.float32)
    tiled = embed_frames(small_model, [short], cfg)
    with torch.no_grad():
        ref = small_model(torch.from_numpy(short[np.arange(160) % 37][None])).numpy()
    np.testing.assert_allclose(tiled, ref, atol=2e-5)


def test_embed_frames_keeps_training_mode_and_rejects_empty(small_model):
    small_model.train()
    embed_frames(small_model, [np.ones((50, 40), np.float32)], OVERLAP)
    assert small_model.training
    small_model.eval()
    with pytest.raises(SpkidError, match="utterance 1"):
        embed_frames(small_model, [np.ones((50, 40), np.float32), np.zeros((0, 40), np.float32)], OVERLAP)
    assert embed_frames(small_model, [], OVERLAP).shape == (0, 24)


def test_mel_scale_and_filters():
    freqs = np.array([0.0, 500.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs)), freqs, rtol=1e-12, atol=1e-9)
    assert hz_to_mel(np.array([1000.0]))[0] == pytest.approx(15.0)
    filters = mel_filters(16000, 400, 40)
    assert filters.shape == (40, 201)
    assert (filters >= 0).all() and (filters.max(axis=1) > 0).all()


def test_resemblyzer_frontend_config_and_shapes():
    frontend = build_frontend({"type": "resemblyzer-mel", "trim_silence": False})
    assert isinstance(frontend, ResemblyzerFrontend)
    assert build_frontend(frontend.to_config()).to_config() == frontend.to_config()
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16000 + 37)).astype(np.float32)
    feats = frontend(wave)
    assert feats.shape == (1 + len(wave) // 160, 40) and feats.dtype == np.float32
    assert (feats >= 0).all()
    with pytest.raises(SpkidError, match="unknown resemblyzer-mel option"):
        build_frontend({"type": "resemblyzer-mel", "n_fft_typo": 1})
    with pytest.raises(SpkidError, match="mono"):
        frontend(np.zeros((2, 100), np.float32))


def test_resemblyzer_frontend_trims_silence(shared_data):
    frontend = ResemblyzerFrontend()
    silence = np.zeros(16000 * 3, np.float32)
    with pytest.raises(SpkidError, match="no voiced audio"):
        frontend(silence)
    path = sorted((shared_data / "librispeech_test_other").glob("*/*.flac"))[0]
    speech, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    half = len(speech) // 2
    wave = np.concatenate([speech[:half], silence, speech[half:]])
    trimmed, alone = frontend.preprocess(wave), frontend.preprocess(speech)
    # the 3 s of digital silence go, but for the ~0.2 s hangover of each neighbouring voiced stretch
    assert 0.5 * len(speech) < len(alone) - 0.2 * 16000 < len(trimmed) < len(alone) + 0.6 * 16000
    assert len(trimmed) % 480 == 0


def test_import_resemblyzer_without_resemblyzer(monkeypatch, tmp_path):
    import importlib.util

    from spkid.bin import import_resemblyzer

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "resemblyzer" else real(name, *args))
    with pytest.raises(SpkidError, match=r"resemblyzer is not installed: pip install 'spkid\[resemblyzer\]'"):
        import_resemblyzer.import_resemblyzer(tmp_path / "exp")
    assert not (tmp_path / "exp").exists()
