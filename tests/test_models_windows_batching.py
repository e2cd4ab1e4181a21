"""Whole-utterance extraction batches utterances of similar length: CAM++, ECAPA-TDNN and the ResNets run
a zero-padded batch with its lengths exactly as each utterance alone (masking before every temporal layer
and in their poolings)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spkid.models import build_model
from spkid.models.windows import embed_frames, length_groups, takes_lengths


def small_campplus() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("campplus", {"feat_dim": 40, "embed_dim": 16, "growth_rate": 8, "init_channels": 16})
    for module in model.modules():  # batch-norm statistics away from the identity, as trained ones are
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_padded_batch_with_lengths_is_each_utterance_alone():
    model = small_campplus()
    lengths = [7, 37, 100, 101, 199, 250]  # odd/even (stride 2), across the 100-frame CAM segments
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((n, 40)).astype(np.float32) for n in lengths]
    batch = torch.zeros(len(lengths), max(lengths), 40)
    for i, f in enumerate(feats):
        batch[i, :len(f)] = torch.from_numpy(f) + 0  # padding stays zero
    with torch.inference_mode():
        alone = torch.cat([model(torch.from_numpy(f)[None]) for f in feats])
        together = model(batch, torch.tensor(lengths))
        unmasked = model(batch)
    assert torch.allclose(together, alone, atol=1e-4), (together - alone).abs().max()
    assert not torch.allclose(unmasked[:-1], alone[:-1], atol=1e-2)  # without lengths, padding counts


def test_full_scheme_batches_similar_lengths_and_keeps_each_embedding():
    model = small_campplus()
    assert takes_lengths(model) and not takes_lengths(torch.nn.Linear(2, 2))
    lengths = [120, 300, 95, 100, 1500, 110, 98, 305]
    groups = length_groups(lengths, 256, padded=True)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert [sorted(lengths[i] for i in g) for g in groups] == [[95, 98, 100, 110, 120], [300, 305], [1500]]
    assert length_groups(lengths + [300], 256, padded=False)[-3:-1] == [[1, 8], [7]]  # equal lengths only
    rng = np.random.default_rng(1)
    feats = [rng.standard_normal((n, 40)).astype(np.float32) for n in lengths]
    got = embed_frames(model, feats, {"scheme": "full"})
    want = np.concatenate([embed_frames(model, [f], {"scheme": "full"}) for f in feats])
    assert np.abs(got - want).max() < 1e-5


# small ECAPA-TDNNs (both attention variants) and ResNets (basic blocks, bottleneck blocks)
MASKED = {
    "ecapa_tdnn": ("ecapa_tdnn", {"channels": 32, "mfa_channels": 48, "attention_dim": 8}),
    "ecapa_tdnn-local": ("ecapa_tdnn", {"channels": 32, "mfa_channels": 48, "attention_dim": 8,
                                        "global_context": False}),
    "resnet18": ("resnet18", {"base_channels": 4}),
    "resnet34": ("resnet34", {"base_channels": 2}),
    "resnet50": ("resnet101", {"depth": 50, "base_channels": 2}),  # Bottleneck blocks
}


def trained_looking(name: str, config: dict) -> torch.nn.Module:
    """Random weights; batch norms with affine parameters away from the identity and running statistics
    from a few train-mode forwards (padded frames then leave the batch norms non-zero); eval mode."""
    torch.manual_seed(0)
    model = build_model(name, {"feat_dim": 40, "embed_dim": 16, **config})
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for norm in norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0, 0.3)
            norm.momentum = None  # cumulative average of the forwards below
        model.train()
        for frames in (50, 80, 120):
            model(torch.randn(4, frames, 40) * 2 + 0.5)
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def padded(feats: list[np.ndarray], fill: float = 0.0) -> torch.Tensor:
    batch = torch.full((len(feats), max(len(f) for f in feats), feats[0].shape[1]), fill)
    for i, f in enumerate(feats):
        batch[i, :len(f)] = torch.from_numpy(f)
    return batch


@pytest.mark.parametrize("key", sorted(MASKED))
def test_masked_encoders_run_a_padded_batch_as_each_utterance_alone(key, one_torch_thread):
    model = trained_looking(*MASKED[key])
    lengths = [37, 120, 64, 200]  # odd lengths too: the ResNet halves them at each strided stage
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((n, 40)).astype(np.float32) for n in lengths]
    with torch.inference_mode():
        alone = torch.cat([model(torch.from_numpy(f)[None]) for f in feats])
        together = model(padded(feats), torch.tensor(lengths))
        unmasked = model(padded(feats))
        noisy_padding = model(padded(feats, fill=3.0), torch.tensor(lengths))
    scale = alone.abs().max()
    cosine = torch.nn.functional.cosine_similarity(together, alone)
    assert (together - alone).abs().max() < 1e-4 * scale and cosine.min() > 0.99999, (together - alone).abs().max()
    torch.testing.assert_close(noisy_padding, together, rtol=0, atol=1e-5 * float(scale))  # input masked too
    # without the lengths the padding counts: every padded row moves well beyond float rounding
    moved = (unmasked - alone).abs().amax(dim=1) / scale
    assert (moved[:-1] > 1e-3).all() and moved[-1] < 1e-5, moved  # the longest row has no padding


@pytest.mark.parametrize("key", ["ecapa_tdnn", "resnet18", "resnet50"])
def test_full_scheme_batches_different_lengths_for_masked_encoders(key, one_torch_thread):
    model = trained_looking(*MASKED[key])
    assert takes_lengths(model)
    lengths = [120, 300, 95, 100, 1500, 110, 98, 305]
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(
        sorted(args[1].tolist()) if len(args) > 1 else [args[0].shape[1]] * len(args[0])))
    rng = np.random.default_rng(1)
    feats = [rng.standard_normal((n, 40)).astype(np.float32) for n in lengths]
    got = embed_frames(model, feats, {"scheme": "full"})
    assert calls == [[95, 98, 100, 110, 120], [300, 305], [1500]]  # 3 forwards, not 8
    calls.clear()
    want = np.concatenate([embed_frames(model, [f], {"scheme": "full"}) for f in feats])
    assert len(calls) == len(lengths)
    assert np.abs(got - want).max() < 1e-5


def test_full_scheme_cuts_utterances_longer_than_max_frames():
    """Issue 22 UX 2: whole-utterance memory grows with the length (CAM++ ~250 MB a minute); past max_frames an
    utterance is cut into the fewest equal pieces and its embedding is the renormalised mean of theirs."""
    from spkid.errors import SpkidError
    from spkid.models.windows import extraction_config, full_pieces, iter_windows

    assert full_pieces(1050, 400) == [slice(0, 350), slice(350, 700), slice(700, 1050)]
    assert full_pieces(400, 400) == [slice(0, 400)] and full_pieces(90000, 0) == [slice(0, 90000)]
    assert full_pieces(801, 400) == [slice(0, 267), slice(267, 534), slice(534, 801)]
    for bad in (-1, 2.5, "long", True):
        with pytest.raises(SpkidError, match="max_frames must be"):
            extraction_config({"scheme": "full", "max_frames": bad})
    model = small_campplus()
    rng = np.random.default_rng(2)
    feats = [rng.standard_normal((n, 40)).astype(np.float32) for n in (1050, 120, 400, 95)]
    config = {"scheme": "full", "max_frames": 400}
    got = embed_frames(model, feats, config)
    with torch.inference_mode():
        pieces = torch.nn.functional.normalize(torch.cat([model(torch.from_numpy(feats[0][s])[None])
                                                          for s in full_pieces(1050, 400)]))
    want_long = torch.nn.functional.normalize(pieces.sum(0, keepdim=True)).numpy()[0]
    assert np.abs(got[0] - want_long).max() < 1e-5
    whole = embed_frames(model, feats, {"scheme": "full", "max_frames": 0})
    assert np.abs(got[1:] - whole[1:]).max() < 1e-5  # the others are whole, as before
    assert float(got[0] @ whole[0]) < 0.99999  # the long one was really cut
    assert [(i, len(w)) for i, w in iter_windows(feats, config)] == [(0, 350), (0, 350), (0, 350), (1, 120),
                                                                     (2, 400), (3, 95)]
