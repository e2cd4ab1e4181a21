"""spkid's imported Resemblyzer GE2E against resemblyzer itself, on every librispeech_test_other utterance.

The front-end (preprocess_wav + wav_to_mel_spectrogram) must agree to float32 rounding and the
utterance embeddings (VoiceEncoder.embed_utterance) to cosine >= 0.999. Skipped when the optional
`resemblyzer` package is not installed (pip install 'spkid[resemblyzer]').
"""
from __future__ import annotations

import importlib.util
import sys
import warnings

import numpy as np
import pytest
import soundfile

from spkid.features.frontend import build_frontend
from spkid.features.resemblyzer_mel import mel_filters, mel_power_spectrogram
from spkid.models import build_model
from spkid.models.windows import embed_frames, partial_slices
from spkid.train.checkpoint import load_checkpoint

if importlib.util.find_spec("resemblyzer") is None:
    pytest.skip("resemblyzer not installed (pip install 'spkid[resemblyzer]')", allow_module_level=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread


@pytest.fixture(scope="session")
def resemblyzer():
    """The resemblyzer module, imported with its dependencies' deprecation warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad: pkg_resources; resemblyzer: scipy.ndimage.morphology
        try:
            import scipy.ndimage.morphology  # noqa: F401
        except ImportError:  # removed in newer scipy: resemblyzer only takes binary_dilation from it
            import scipy.ndimage
            sys.modules["scipy.ndimage.morphology"] = scipy.ndimage
        import resemblyzer
    return resemblyzer


@pytest.fixture(scope="session")
def utterances(shared_data) -> list:
    paths = sorted((shared_data / "librispeech_test_other").glob("*/*.flac"))
    assert len(paths) == 100
    return paths


@pytest.fixture(scope="session")
def reference_waves(resemblyzer, utterances) -> list[np.ndarray]:
    return [resemblyzer.preprocess_wav(path) for path in utterances]


@pytest.fixture(scope="session")
def imported(tmp_path_factory):
    """(model, front-end, extraction config) from `spkid import-resemblyzer`'s checkpoint."""
    from spkid.bin.import_resemblyzer import main

    exp = tmp_path_factory.mktemp("ge2e_pretrained")
    main(["--output", str(exp)], standalone_mode=False)
    checkpoint = load_checkpoint(exp, expect_model="ge2e")
    model = build_model(checkpoint["model"]["name"], checkpoint["model"]["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), build_frontend(checkpoint["features"]), checkpoint["extraction"]


@pytest.fixture(scope="session")
def spkid_features(imported, utterances) -> list[np.ndarray]:
    frontend = imported[1]
    feats = []
    for path in utterances:
        wave, rate = soundfile.read(path, dtype="float32")
        assert rate == frontend.sample_rate
        feats.append(frontend(wave))
    return feats


def test_frontend_matches_resemblyzer(resemblyzer, imported, utterances, reference_waves, spkid_features):
    frontend = imported[1]
    worst_wave = worst_abs = worst_rel = 0.0
    for path, ref_wave, feats in zip(utterances, reference_waves, spkid_features):
        wave = frontend.preprocess(soundfile.read(path, dtype="float32")[0])
        assert wave.shape == ref_wave.shape, path.name  # same VAD decisions
        worst_wave = max(worst_wave, float(np.abs(wave - ref_wave).max()))
        ref = resemblyzer.wav_to_mel_spectrogram(ref_wave)
        assert feats.shape == ref.shape and feats.dtype == ref.dtype, path.name
        diff = float(np.abs(feats - ref).max())
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, diff / float(ref.max()))
    print(f"front-end vs resemblyzer on {len(utterances)} utterances: "
          f"waveform max abs diff {worst_wave:.3g}, mel max abs diff {worst_abs:.3g} "
          f"(relative to the utterance peak {worst_rel:.3g})")
    assert worst_wave <= 1e-6
    assert worst_rel <= 1e-5, f"mel max abs diff {worst_abs:.3g}, relative {worst_rel:.3g}"


def test_embeddings_match_resemblyzer(resemblyzer, imported, utterances, reference_waves, spkid_features):
    model, _, extraction = imported
    assert extraction["scheme"] == "resemblyzer"
    ours = embed_frames(model, spkid_features, extraction, batch_size=128)
    encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
    theirs = np.stack([encoder.embed_utterance(wave) for wave in reference_waves])
    cosine = np.sum(ours * theirs, axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    print(f"embeddings vs resemblyzer on {len(utterances)} utterances: cosine min {cosine.min():.7f} "
          f"mean {cosine.mean():.7f}")
    worst = int(np.argmin(cosine))
    assert cosine.min() >= 0.999, f"{utterances[worst].name}: cosine {cosine[worst]:.6f}"


def test_partial_slices_match_resemblyzer(resemblyzer, imported):
    extraction = imported[2]
    compute = resemblyzer.VoiceEncoder.compute_partial_slices
    for n_samples in list(range(0, 70000, 23)) + [25600, 25599, 44160, 44159, 44161]:
        _, theirs = compute(n_samples, rate=1.3, min_coverage=0.75)
        ours = partial_slices(1 + n_samples // 160, extraction)  # librosa's center=True frame count
        assert [(s.start, s.stop) for s in ours] == [(int(s.start), int(s.stop)) for s in theirs], n_samples


def test_mel_matches_librosa_filters_and_reflect_padding():
    import librosa

    np.testing.assert_allclose(mel_filters(16000, 400, 40),
                               librosa.filters.mel(sr=16000, n_fft=400, n_mels=40, dtype=np.float64),
                               rtol=1e-12, atol=1e-15)
    rng = np.random.default_rng(0)
    wave = (0.2 * rng.standard_normal(8000 + 77)).astype(np.float32)
    for pad_mode in ("constant", "reflect"):
        ref = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=400, hop_length=160, n_mels=40,
                                             pad_mode=pad_mode).T
        ours = mel_power_spectrogram(wave, 16000, 400, 160, 40, pad_mode=pad_mode)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * float(ref.max()))


def test_import_resemblyzer_command(run, tmp_path):
    run(["spkid", "import-resemblyzer", "--output", str(tmp_path / "exp")])
    checkpoint = load_checkpoint(tmp_path / "exp" / "checkpoints" / "step-00000000.pt", expect_model="ge2e")
    assert checkpoint["source"].startswith("resemblyzer ") and checkpoint["step"] == 0
    assert checkpoint["features"]["type"] == "resemblyzer-mel"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    proc = run(["spkid", "import-resemblyzer", "--output", str(tmp_path / "x"), "--weights", str(bad)],
               check=False)
    assert proc.returncode != 0
    assert b"bad.pt: cannot read the Resemblyzer weights" in proc.stderr
    assert len(proc.stderr.decode().strip().splitlines()) == 1
