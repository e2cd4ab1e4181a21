"""Deep Speaker encoders: registry, shapes, parameter counts, L2 norm, the softmax path, config round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spkid.losses.softmax import SoftmaxHead
from spkid.models import build_model, count_parameters, model_names
from spkid.models.deepspeaker import GRUEncoder, ResCNN, ResCNNSmall
from spkid.models.windows import embed_frames


def test_registered_parameter_counts_and_layers():
    assert {"rescnn", "rescnn_small", "gru"} <= set(model_names())
    full, small = ResCNN(), ResCNNSmall()
    assert 23.5e6 < count_parameters(full) < 24.5e6  # the paper's ResCNN: 24M
    assert 0.2 < count_parameters(small) / count_parameters(full) < 0.3  # about a quarter
    assert small.channels == [32, 64, 128, 256] and full.channels == [64, 128, 256, 512]
    assert full.pooled_dim == 2048 and full.affine.out_features == 512  # 512 channels x 4 bins -> affine 512
    convs = [m for m in full.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs if c.stride == (2, 2)] == [(5, 5)] * 4
    assert len([c for c in convs if c.kernel_size == (3, 3)]) == 4 * 3 * 2  # 3 residual blocks of 2 convs
    gru = GRUEncoder()
    assert gru.gru.num_layers == 3 and gru.gru.hidden_size == 1024 and gru.gru.input_size == 64 * 32
    assert gru.affine.out_features == 512


@pytest.mark.parametrize("name,config", [
    ("rescnn", {"channels": [4, 8, 8, 16], "blocks_per_stage": 1, "embed_dim": 32}),
    ("rescnn_small", {"embed_dim": 24, "blocks_per_stage": 2}),
    ("gru", {"conv_channels": 4, "hidden_size": 16, "num_layers": 3, "embed_dim": 20}),
])
def test_forward_shapes_norm_and_round_trip(name, config):
    torch.manual_seed(0)
    model = build_model(name, {"feat_dim": 64, **config})
    dim = config["embed_dim"]
    for frames in (160, 37, 1):  # any length: temporal average
        out = model(torch.randn(3, frames, 64))
        assert out.shape == (3, dim)
        torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    clone = build_model(name, model.to_config())
    clone.load_state_dict(model.state_dict(), strict=True)
    assert model.to_config()["feat_dim"] == 64 and all(isinstance(v, (int, list)) for v in model.to_config().values())
    model.eval()
    clone.eval()
    x = torch.randn(2, 160, 64)
    torch.testing.assert_close(model(x), clone(x))
    raw = model.embed(x, normalize=False)
    torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=1), model(x))
    assert not torch.allclose(raw.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(2, 160, 40))


def test_softmax_dropout_trains_only_and_head_is_separate():
    torch.manual_seed(1)
    model = build_model("rescnn", {"channels": [4, 4, 8, 8], "blocks_per_stage": 1, "embed_dim": 16})
    x = torch.randn(4, 80, 64)
    model.eval()
    torch.testing.assert_close(model.embed(x, dropout=0.5, normalize=False), model.embed(x, normalize=False))
    model.train()
    assert not torch.allclose(model.embed(x, dropout=0.5, normalize=False), model.embed(x, normalize=False))
    head = SoftmaxHead(16, 5)
    loss, logits = head(model.embed(x, dropout=0.5, normalize=False), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert model.affine.weight.grad is not None and logits.shape == (4, 5)
    assert not any(k.startswith("classifier") for k in model.state_dict())  # extraction needs the encoder only
    with pytest.raises(ValueError, match="at least 2 classes"):
        SoftmaxHead(16, 1)


def test_window_extraction_works_with_the_encoders():
    torch.manual_seed(2)
    model = build_model("rescnn_small", {"channels": [4, 4, 8, 8], "blocks_per_stage": 1, "embed_dim": 16})
    feats = [np.random.default_rng(i).normal(size=(n, 64)).astype(np.float32) for i, n in enumerate((50, 400))]
    emb = embed_frames(model, feats, {"scheme": "overlap", "window_frames": 160, "overlap": 0.5})
    assert emb.shape == (2, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert model.training  # mode restored
