"""spkid's CAM++ with 3D-Speaker's pretrained zh-en weights (fetched by `make pretrained`) against
speakerlab's CAMPPlus holding the same state dict, on real speech: the network on every LibriSpeech
test-other utterance of ../shared/data (spkid's 80-bin Kaldi fbank, dither 0, per-utterance mean
subtraction), and `spkid import-pretrained` + `spkid extract-embeddings` from audio against 3D-Speaker's
own pipeline (its torchaudio-style fbank of the float waveform) on 10 of them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spkid.pretrained import cached_path

MIN_COSINE = 0.99999


@pytest.fixture(scope="module")
def campplus_state() -> dict:
    path = cached_path("campplus-zh-en")
    if not path.is_file():
        pytest.skip(f"pretrained CAM++ weights absent ({path}): run `make pretrained`")
    return torch.load(path, map_location="cpu", weights_only=True)


def speakerlab_campplus(state: dict, embed_dim: int = 192) -> torch.nn.Module:
    try:
        from speakerlab.models.campplus.DTDNN import CAMPPlus
    except ImportError:
        pytest.fail("speakerlab is not installed: `pip install --no-deps speakerlab==0.0.6` (make does it)")
    model = CAMPPlus(feat_dim=80, embedding_size=embed_dim)
    model.load_state_dict(state, strict=True)
    return model.eval()


def librispeech_fbank(shared_data, limit: int | None = None):
    """(name, (frames, 80) CMN fbank) of the LibriSpeech test-other utterances, sorted by path."""
    from spkid.kaldi.audio import read_audio
    from spkid.pretrained import campplus_frontend

    frontend = campplus_frontend()
    files = sorted((shared_data / "librispeech_test_other").rglob("*.flac"))[:limit]
    out = []
    for path in files:
        wave, rate = read_audio(str(path))
        assert rate == 16000
        out.append((path.stem, frontend(wave)))
    return out


def test_pretrained_campplus_matches_speakerlab_on_librispeech(campplus_state, shared_data):
    from spkid.models import build_model

    ours = build_model("campplus", {"feat_dim": 80, "embed_dim": 192})
    ours.load_state_dict(campplus_state, strict=True)  # 3D-Speaker's names, no renaming
    ours.eval()
    reference = speakerlab_campplus(campplus_state)
    utterances = librispeech_fbank(shared_data)
    assert len(utterances) == 100
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the suite runs in parallel workers
    worst = (2.0, "")
    try:
        with torch.inference_mode():
            for name, feats in utterances:
                x = torch.from_numpy(feats)[None]
                cos = torch.nn.functional.cosine_similarity(ours(x), reference(x)).item()
                worst = min(worst, (cos, name))
    finally:
        torch.set_num_threads(threads)
    print(f"CAM++ network vs speakerlab, {len(utterances)} utterances: min cosine {worst[0]:.8f} ({worst[1]})")
    assert worst[0] >= MIN_COSINE, f"cosine {worst[0]:.7f} on {worst[1]}"


def reference_fbank(wave: np.ndarray) -> torch.Tensor:
    """3D-Speaker's FBank: Kaldi fbank (80 bins, dither 0) of the float waveform as torchaudio loads it
    (no int16 scaling), minus its mean; computed with lhotse's torch port of Kaldi's fbank."""
    import warnings

    from fbank_references import _lhotse_layer
    from lhotse.features.kaldi.layers import Wav2LogFilterBank

    from spkid.features.fbank import FbankOptions

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = _lhotse_layer(Wav2LogFilterBank, FbankOptions(num_mel_bins=80, dither=0.0))
    with torch.no_grad():
        feats = layer(torch.from_numpy(wave.astype(np.float32))[None])[0]
    return feats - feats.mean(0, keepdim=True)


def test_imported_campplus_extracts_like_speakerlab(campplus_state, run, tmp_path, shared_data):
    import kaldiio

    from spkid.kaldi.audio import read_audio

    run(["spkid", "import-pretrained", "campplus-zh-en", "--output", str(tmp_path / "cam")])
    files = sorted((shared_data / "librispeech_test_other").rglob("*.flac"))[::10]
    assert len(files) == 10
    (tmp_path / "wav.scp").write_text("".join(f"{f.stem} {f}\n" for f in files))
    run(["spkid", "extract-embeddings", "--model", str(tmp_path / "cam"), "--scp", str(tmp_path / "wav.scp"),
         "--num-workers", "1", "--output", f"ark,scp:{tmp_path}/emb.ark,{tmp_path}/emb.scp"])
    ours = dict(kaldiio.load_scp(str(tmp_path / "emb.scp")))
    assert sorted(ours) == sorted(f.stem for f in files)
    reference = speakerlab_campplus(campplus_state)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cosines = []
    try:
        for path in files:
            wave, _ = read_audio(str(path))
            with torch.inference_mode():
                want = reference(reference_fbank(wave)[None])[0].numpy()
            got = ours[path.stem]
            assert got.shape == (192,) and abs(np.linalg.norm(got) - 1) < 1e-5
            cos = float(got @ want / np.linalg.norm(want))
            assert cos >= MIN_COSINE, f"{path.stem}: cosine {cos:.7f}"
            cosines.append(cos)
    finally:
        torch.set_num_threads(threads)
    print(f"import-pretrained + extract-embeddings vs 3D-Speaker's pipeline: min cosine {min(cosines):.8f}")


def test_campplus_frontend_is_torchaudio_fbank_of_the_float_waveform(shared_data):
    """waveform_scale 1.0 reproduces 3D-Speaker's features, silences (log floor) included; Kaldi's int16
    scale (the default) differs there by several nats."""
    from spkid.features.frontend import FbankFrontend, build_frontend
    from spkid.kaldi.audio import read_audio
    from spkid.pretrained import campplus_frontend

    frontend = campplus_frontend()
    assert build_frontend(frontend.to_config()).to_config() == frontend.to_config()
    assert "waveform_scale" not in FbankFrontend(frontend.opts, cmn=True).to_config()  # Kaldi's default
    path = sorted((shared_data / "librispeech_test_other").rglob("*.flac"))[0]
    wave, _ = read_audio(str(path))
    want = reference_fbank(wave).numpy()
    assert np.abs(frontend(wave) - want).max() < 0.01
    assert np.abs(FbankFrontend(frontend.opts, cmn=True)(wave) - want).max() > 1.0


def test_campplus_trains_like_speakerlab():
    """Training mode (batch statistics) with an AAM head: the same loss, gradients and batch-norm running
    statistics as speakerlab's CAMPPlus holding the same random weights (other sizes, 40-dim input)."""
    from speakerlab.models.campplus.DTDNN import CAMPPlus

    from spkid.losses.margin import AAMSoftmax
    from spkid.models import build_model

    torch.manual_seed(0)
    ours = build_model("campplus", {"feat_dim": 40, "embed_dim": 64, "growth_rate": 8, "bn_size": 2,
                                    "init_channels": 32})
    reference = CAMPPlus(feat_dim=40, embedding_size=64, growth_rate=8, bn_size=2, init_channels=32,
                         memory_efficient=False)
    reference.load_state_dict(ours.state_dict(), strict=True)
    head = AAMSoftmax(64, 10, margin=0.2, scale=32.0)
    feats, labels = torch.randn(8, 120, 40), torch.randint(0, 10, (8,))
    losses, grads = [], []
    for model in (ours.train(), reference.train()):
        loss, _ = head(model(feats), labels)
        loss.backward()
        losses.append(loss.item())
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert grads[0].keys() == grads[1].keys()
    scale = max(grad.norm().item() for grad in grads[0].values())
    for name, grad in grads[0].items():  # float rounding differs (gradients reach ~1e3 at the input)
        assert (grad - grads[1][name]).norm() <= 1e-4 * grad.norm() + 1e-7 * scale, name
    ours_state, ref_state = ours.state_dict(), reference.state_dict()
    for name in (n for n in ours_state if n.endswith("running_mean") or n.endswith("running_var")):
        torch.testing.assert_close(ours_state[name], ref_state[name])
