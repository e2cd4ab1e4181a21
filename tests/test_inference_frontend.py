"""Extraction is deterministic: a model trained with dither > 0 extracts (and exports) with dither 0, so the
same audio gives the same embedding every run (issue 22, point 5)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import spkid
from spkid.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread
TRAIN_FEATURES = {"type": "kaldi-fbank", "num_mel_bins": 40, "dither": 1.0}  # a training front-end that dithers


@pytest.fixture(scope="module")
def dithered(tmp_path_factory):
    """A tiny GE2E checkpoint whose stored (training) front-end dithers with 1.0."""
    from spkid.models import build_model

    torch.manual_seed(0)
    config = {"feat_dim": 40, "hidden_size": 16, "num_layers": 1, "embed_dim": 8}
    root = tmp_path_factory.mktemp("dither")
    return str(save_checkpoint(root / "exp" / "checkpoints" / "step-00000001.pt", model_name="ge2e",
                               model_config=config, state_dict=build_model("ge2e", config).state_dict(),
                               feature_config=TRAIN_FEATURES))


@pytest.fixture(scope="module")
def wave(shared_data):
    return sf.read(shared_data / "vctk_mini" / "p225" / "p225_003.flac", dtype="float32")


def test_extraction_never_dithers(dithered, wave):
    from spkid.features.frontend import build_frontend
    from spkid.kaldi.audio import resample

    samples, rate = wave
    at_16k = resample(samples, rate, 16000) if rate != 16000 else samples
    first, second = spkid.load_model(dithered, device="cpu"), spkid.load_model(dithered, device="cpu")
    assert first.embedder.frontend.to_config()["dither"] == 0.0
    feats = first.features(samples, sample_rate=rate)
    assert np.array_equal(feats, second.features(samples, sample_rate=rate))  # two loads, two runs: the same
    assert np.array_equal(feats, build_frontend({**TRAIN_FEATURES, "dither": 0.0})(at_16k))  # = dither-0 features
    assert not np.array_equal(feats, build_frontend(TRAIN_FEATURES)(at_16k))  # the training front-end dithers
    embedding = first.embed(samples, sample_rate=rate)
    assert np.array_equal(embedding, first.embed(samples, sample_rate=rate))
    assert np.array_equal(embedding, second.embed(samples, sample_rate=rate))


def test_export_stores_the_extraction_front_end(dithered, wave, tmp_path):
    from spkid.export import export_model

    meta = export_model(dithered, "onnx", tmp_path / "m.onnx")
    assert meta["features"]["dither"] == 0.0
    samples, rate = wave
    exported = spkid.load_model(str(tmp_path / "m.onnx"), device="cpu")
    reference = spkid.load_model(dithered, device="cpu")
    assert np.array_equal(exported.embed(samples, sample_rate=rate), exported.embed(samples, sample_rate=rate))
    assert float(np.dot(exported.embed(samples, sample_rate=rate), reference.embed(samples, sample_rate=rate))) > 0.9999
