"""Whole-utterance extraction batches utterances of similar length: CAM++ runs a zero-padded batch with
its lengths exactly as each utterance alone (masking before every temporal layer and in its poolings)."""
from __future__ import annotations

import numpy as np
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
