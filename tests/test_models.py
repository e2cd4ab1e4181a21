"""ECAPA-TDNN, ResNet r-vectors and CAM++: registry, parameter counts against the published sizes (and
the exact counts of 3D-Speaker's speakerlab where installed), shapes, config round trip, strict loading
of reference state dicts with equal outputs."""
from __future__ import annotations

import pytest
import torch

from spkid.models import build_model, count_parameters, model_names

# (name, config, published size, where it is published)
ANCHORS = [
    ("ecapa_tdnn", {"channels": 512}, 6.2e6, "Desplanques et al. 2020 Table 1, C=512"),
    ("ecapa_tdnn", {"channels": 1024}, 14.7e6, "Desplanques et al. 2020 Table 1, C=1024"),
    ("ecapa_tdnn", {"channels": 1024, "mfa_channels": 3072}, 20.8e6, "SpeechBrain spkrec-ecapa-voxceleb"),
    ("resnet34", {}, 6.63e6, "WeSpeaker ResNet34, 256-dim"),
    ("campplus", {"embed_dim": 512}, 7.2e6, "Wang et al. 2023 (CAM++ 7.2M), 3D-Speaker"),
]
# measured sizes of the other depths (WeSpeaker's layouts), as a regression check
EXACT = {("resnet18", 256): 4_105_440, ("resnet34", 256): 6_634_336, ("resnet101", 256): 15_892_448,
         ("campplus", 192): 6_848_544, ("campplus", 512): 7_176_224}


def test_registered_names():
    assert {"ecapa_tdnn", "resnet18", "resnet34", "resnet101", "campplus"} <= set(model_names())


@pytest.mark.parametrize("name,config,published,source", ANCHORS, ids=[f"{a[0]}-{a[1]}" for a in ANCHORS])
def test_parameter_count_matches_published_size(name, config, published, source):
    model = build_model(name, {"feat_dim": 80, **config})
    assert abs(count_parameters(model) - published) / published < 0.05, (count_parameters(model), source)


@pytest.mark.parametrize("name,embed_dim", sorted(EXACT))
def test_exact_parameter_counts(name, embed_dim):
    assert count_parameters(build_model(name, {"feat_dim": 80, "embed_dim": embed_dim})) == EXACT[(name, embed_dim)]


def test_resnet_depths_use_their_layouts():
    for name, block, counts in [("resnet18", "BasicBlock", [2, 2, 2, 2]), ("resnet34", "BasicBlock", [3, 4, 6, 3]),
                                ("resnet101", "Bottleneck", [3, 4, 23, 3])]:
        model = build_model(name, {"feat_dim": 80})
        layers = [getattr(model, f"layer{i}") for i in range(1, 5)]
        assert [len(layer) for layer in layers] == counts
        assert type(layers[0][0]).__name__ == block
        assert model.seg_1.in_features == 2 * 10 * 8 * 32 * (4 if block == "Bottleneck" else 1)


@pytest.mark.parametrize("name,config", [
    ("ecapa_tdnn", {"channels": 64, "mfa_channels": 96, "attention_dim": 16, "embed_dim": 24}),
    ("ecapa_tdnn", {"channels": 64, "mfa_channels": 192, "global_context": False, "embed_dim": 24}),
    ("resnet18", {"base_channels": 4, "embed_dim": 24}),
    ("resnet101", {"base_channels": 2, "embed_dim": 24}),
    ("campplus", {"growth_rate": 8, "init_channels": 16, "embed_dim": 24}),
])
def test_forward_shapes_lengths_and_round_trip(name, config):
    torch.manual_seed(0)
    model = build_model(name, {"feat_dim": 40, **config})
    assert model.model_name == name
    model.train()
    out = model(torch.randn(3, 57, 40))  # odd frame count, training mode
    assert out.shape == (3, 24) and torch.isfinite(out).all()
    out.sum().backward()
    model.eval()
    with torch.no_grad():
        short, long = model(torch.randn(2, 20, 40)), model(torch.randn(2, 301, 40))
    assert short.shape == long.shape == (2, 24)
    clone = build_model(name, model.to_config())
    clone.load_state_dict(model.state_dict(), strict=True)
    clone.eval()
    x = torch.randn(2, 64, 40)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x))


def test_campplus_per_frame_context_mask():
    """CAM's context is the utterance mean plus the mean of each frame's 100-frame segment."""
    from spkid.models.campplus import segment_means

    x = torch.randn(2, 3, 250)
    seg = segment_means(x)
    assert seg.shape == x.shape
    torch.testing.assert_close(seg[..., 0], x[..., :100].mean(-1))
    torch.testing.assert_close(seg[..., 199], x[..., 100:200].mean(-1))
    torch.testing.assert_close(seg[..., 249], x[..., 200:].mean(-1))


def _randomise_batch_norms(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0, 0.3)
            module.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("embed_dim", [192, 512])
def test_campplus_loads_speakerlab_state_dict_strictly(embed_dim):
    dtdnn = pytest.importorskip("speakerlab.models.campplus.DTDNN", reason="speakerlab not installed")
    torch.manual_seed(0)
    reference = dtdnn.CAMPPlus(feat_dim=80, embedding_size=embed_dim)
    _randomise_batch_norms(reference)
    ours = build_model("campplus", {"feat_dim": 80, "embed_dim": embed_dim})
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert count_parameters(ours) == count_parameters(reference)
    reference.eval(), ours.eval()
    x = torch.randn(2, 230, 80)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,layout", [("resnet18", [2, 2, 2, 2]), ("resnet34", [3, 4, 6, 3])])
def test_resnet_matches_speakerlab_resnet(name, layout):
    """3D-Speaker's ResNet is WeSpeaker's r-vector: same parameter names, count and outputs."""
    ref_mod = pytest.importorskip("speakerlab.models.resnet.ResNet", reason="speakerlab not installed")
    torch.manual_seed(0)
    reference = ref_mod.ResNet(ref_mod.BasicBlock, layout, feat_dim=80, embedding_size=256, two_emb_layer=False)
    _randomise_batch_norms(reference)
    ours = build_model(name, {"feat_dim": 80, "embed_dim": 256})
    ours.load_state_dict(reference.state_dict(), strict=True)
    reference.eval(), ours.eval()
    x = torch.randn(2, 120, 80)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_ecapa_count_close_to_speechbrain_ecapa():
    """speakerlab ships SpeechBrain's ECAPA-TDNN (different names): sizes agree within 0.1%."""
    ref_mod = pytest.importorskip("speakerlab.models.ecapa_tdnn.ECAPA_TDNN", reason="speakerlab not installed")
    for ours_cfg, channels in [({"channels": 512}, [512] * 4 + [1536]),
                               ({"channels": 1024, "mfa_channels": 3072}, [1024] * 4 + [3072])]:
        ours = count_parameters(build_model("ecapa_tdnn", ours_cfg))
        reference = count_parameters(ref_mod.ECAPA_TDNN(80, channels=channels))
        assert abs(ours - reference) / reference < 1e-3, (ours_cfg, ours, reference)


def test_full_utterance_extraction_scheme():
    """Scheme "full": each utterance whole through the network (similar lengths share a zero-padded batch),
    L2-normalised."""
    import numpy as np

    from spkid.errors import SpkidError
    from spkid.models.windows import embed_frames, extraction_config, iter_windows

    torch.manual_seed(0)
    model = build_model("ecapa_tdnn", {"feat_dim": 20, "channels": 32, "mfa_channels": 48, "embed_dim": 8}).eval()
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((n, 20)).astype(np.float32) for n in (50, 7, 50, 333, 50)]
    assert extraction_config({"scheme": "full"}) == {"scheme": "full", "max_frames": 30000}
    with pytest.raises(SpkidError, match="unknown option"):
        extraction_config({"scheme": "full", "window_frames": 100})
    assert [(i, len(w)) for i, w in iter_windows(feats, {"scheme": "full"})] == [(i, len(f)) for i, f in
                                                                               enumerate(feats)]
    got = embed_frames(model, feats, {"scheme": "full"}, batch_size=2)
    with torch.no_grad():
        want = torch.nn.functional.normalize(torch.cat([model(torch.from_numpy(f)[None]) for f in feats]))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


@pytest.mark.parametrize("name, config", [
    ("ge2e", {"feat_dim": 40, "hidden_size": 100000}),          # a 745 GiB LSTM
    ("ecapa_tdnn", {"feat_dim": 80, "channels": 200000}),
])
def test_models_beyond_the_parameter_bound_are_refused_before_allocation(name, config):
    """Issue 22 UX 2: counted on the meta device, refused in one line (was a MemoryError or the OOM killer)."""
    from spkid.errors import SpkidError
    from spkid.models import MAX_PARAMETERS

    with pytest.raises(SpkidError, match=rf"model '{name}' \(.*\) has [\d,]+ parameters .* more than the "
                                         rf"{MAX_PARAMETERS:,} spkid builds"):
        build_model(name, config)
    with torch.device("meta"):  # built on the meta device when asked for there (no memory)
        assert next(build_model("ge2e", {"feat_dim": 40}).parameters()).is_meta


def test_a_small_checkpoint_asking_for_a_huge_model_is_refused_at_load(tmp_path):
    """Issue 22 UX 2: a 100 KB checkpoint whose config says hidden_size 1000000."""
    import spkid
    from spkid.errors import SpkidError
    from spkid.train.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "huge.pt", model_name="ge2e",
                           model_config={"feat_dim": 40, "embed_dim": 16, "hidden_size": 1000000, "num_layers": 1},
                           feature_config={"type": "kaldi-fbank", "num_mel_bins": 40},
                           state_dict={"proj.weight": torch.zeros(16, 4)})
    assert path.stat().st_size < 200_000
    with pytest.raises(SpkidError, match=r"huge.pt: model 'ge2e' \(.*hidden_size=1000000.*\) has 4,000,184,000,016 "
                                         r"parameters"):
        spkid.load_model(str(path), device="cpu")
