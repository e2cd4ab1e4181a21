"""spkid.features.frontend: the one VAD-selection and mean-normalisation step every input path shares."""
from __future__ import annotations

import numpy as np
import pytest

from spkid.errors import SpkidError
from spkid.features.fbank import FbankOptions
from spkid.features.frontend import FbankFrontend, build_frontend, select_voiced_and_normalise


def test_select_voiced_and_normalise():
    feats = np.arange(12, dtype=np.float32).reshape(6, 2)
    voiced = np.array([0, 1, 1, 0, 1, 0], dtype=np.float32)
    np.testing.assert_array_equal(select_voiced_and_normalise(feats, voiced, cmn=False), feats[[1, 2, 4]])
    kept = select_voiced_and_normalise(feats, voiced, cmn=True)
    np.testing.assert_allclose(kept, feats[[1, 2, 4]] - feats[[1, 2, 4]].mean(axis=0))
    np.testing.assert_array_equal(select_voiced_and_normalise(feats, np.zeros(6), cmn=False), feats)  # none voiced
    np.testing.assert_array_equal(select_voiced_and_normalise(feats, None, cmn=False), feats)
    assert select_voiced_and_normalise(feats[:0], None, cmn=True).shape == (0, 2)
    with pytest.raises(SpkidError, match="^utterance u1: 6 frames but VAD has 5$"):
        select_voiced_and_normalise(feats, voiced[:5], cmn=False, where="utterance u1: ")


def test_kaldi_fbank_type_builds_the_fbank_frontend():
    frontend = build_frontend({"type": "kaldi-fbank", "num_mel_bins": 30, "cmn": True,
                               "vad": {"vad_energy_threshold": 5.5}})
    assert isinstance(frontend, FbankFrontend) and frontend.dim == 30
    assert build_frontend(frontend.to_config()).to_config() == frontend.to_config()
    wave = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    feats = FbankFrontend(FbankOptions(num_mel_bins=30, dither=0.0), cmn=True)(wave)
    assert feats.shape == (98, 30) and np.abs(feats.mean(axis=0)).max() < 1e-4
