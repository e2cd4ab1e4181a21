"""Deep Speaker's cosine triplet loss, and the checks that stop a run whose embeddings collapsed.

A batch of 3T embeddings is [anchors; positives; negatives] (philipperemy/deep-speaker's layout). Per triplet

    L_i = max(0, cos(a_i, n_i) - cos(a_i, p_i) + margin),   margin = 0.1 (philipperemy/deep-speaker's alpha)

and the loss is the mean over the T triplets. A triplet loss can be driven to `margin` by mapping every
input to the same point (all cosines 1): `check_embeddings` raises a one-line SpkidError naming the step
when the batch's mean pairwise cosine exceeds a threshold (0.999), or when embeddings are not finite.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spkid.errors import SpkidError


def split_triplets(embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(3T, D) [anchors; positives; negatives] -> three (T, D) tensors."""
    if embeds.dim() != 2 or embeds.shape[0] % 3 or embeds.shape[0] == 0:
        raise ValueError(f"triplet batch must be (3T, D), got {tuple(embeds.shape)}")
    return embeds.chunk(3, dim=0)


def triplet_cosine_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                        margin: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean loss, cos(a, p), cos(a, n)) of (T, D) anchors, positives and negatives."""
    cos_ap = F.cosine_similarity(anchor, positive, dim=1, eps=1e-12)
    cos_an = F.cosine_similarity(anchor, negative, dim=1, eps=1e-12)
    return torch.clamp(cos_an - cos_ap + margin, min=0.0).mean(), cos_ap, cos_an


def mean_pairwise_cosine(embeds: torch.Tensor) -> float:
    """Mean cosine over all pairs i != j of a (B, D) batch (B >= 2)."""
    e = F.normalize(embeds.detach().float(), dim=1, eps=1e-12)
    b = e.shape[0]
    total = e.sum(dim=0)
    return float(((total @ total) - (e * e).sum()) / max(b * (b - 1), 1))


def check_embeddings(embeds: torch.Tensor, step: int, collapse_cosine: float = 0.999) -> float:
    """Raise SpkidError when the batch is not finite or has collapsed; returns the mean pairwise cosine."""
    if not torch.isfinite(embeds.detach()).all():
        raise SpkidError(f"embeddings are NaN or infinite at step {step}; stopping (lower optim.lr?)")
    mean_cos = mean_pairwise_cosine(embeds)
    if 0 < collapse_cosine < 1 and mean_cos > collapse_cosine:
        raise SpkidError(f"embeddings collapsed at step {step}: mean pairwise cosine {mean_cos:.5f} > "
                         f"{collapse_cosine} (every input maps to the same point); stopping (lower optim.lr, "
                         "or start from softmax pre-training with --init)")
    return mean_cos


class TripletCosineLoss(nn.Module):
    """Cosine triplet loss with margin; `last` holds batch statistics of the last forward."""

    def __init__(self, margin: float = 0.1):
        super().__init__()
        self.margin = float(margin)
        self.last: dict[str, float] = {}

    def extra_repr(self) -> str:
        return f"margin={self.margin}"

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        """(3T, D) [anchors; positives; negatives] -> mean triplet loss (float32)."""
        with torch.autocast(device_type=embeds.device.type, enabled=False):
            a, p, n = split_triplets(embeds.float())
            loss, cos_ap, cos_an = triplet_cosine_loss(a, p, n, self.margin)
            with torch.no_grad():
                self.last = {"cos_ap": float(cos_ap.mean()), "cos_an": float(cos_an.mean()),
                             "active": float((cos_an - cos_ap + self.margin > 0).float().mean())}
            return loss
