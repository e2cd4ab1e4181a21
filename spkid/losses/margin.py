"""Margin-based softmax heads for speaker classification training, as WeSpeaker's projections.

Each head holds one weight vector per class (K per class for the sub-center head), takes the cosine
between the L2-normalised embedding and weights, applies a margin to the target class's logit only,
multiplies all logits by `scale` and returns `(cross-entropy loss, logits)`:

- `am_softmax` (additive margin, CosFace; WeSpeaker's AddMarginProduct): target logit s * (cos - m).
- `aam_softmax` (additive angular margin, ArcFace; ArcMarginProduct): target logit s * cos(theta + m).
  Where theta + m would pass pi, WeSpeaker's continuation cos - (1 + cos(pi - m)) replaces it, so the
  target logit keeps decreasing in theta; `easy_margin` instead leaves targets with cos <= 0 as cos.
- `subcenter_aam` (Deng et al. 2020): K sub-centers per class, the class cosine is the max over its
  sub-centers, then the AAM margin.

`set_margin(m)` changes the margin during training; `margin_at` is WeSpeaker's linear margin schedule.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from spkid.losses import register_head


def margin_at(step: int, final_margin: float, start_step: int, end_step: int) -> float:
    """Margin at optimizer step `step`: 0 before `start_step`, rising linearly to `final_margin` at
    `end_step`, `final_margin` from then on (WeSpeaker's MarginScheduler with increase_type "linear",
    initial margin 0, start/end = (increase_start_epoch - 1, fix_start_epoch - 1) * steps per epoch)."""
    if step >= end_step:
        return float(final_margin)
    if step < start_step:
        return 0.0
    return float(final_margin) * (step - start_step) / (end_step - start_step)


class CosineHead(nn.Module):
    """Cosine logits against (num_classes * subcenters) normalised class weights; subclasses add the margin."""

    def __init__(self, embed_dim: int, num_classes: int, margin: float = 0.2, scale: float = 32.0,
                 subcenters: int = 1):
        super().__init__()
        self.embed_dim, self.num_classes, self.subcenters = int(embed_dim), int(num_classes), int(subcenters)
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.empty(self.num_classes * self.subcenters, self.embed_dim))
        nn.init.xavier_uniform_(self.weight)
        self.set_margin(margin)

    def set_margin(self, margin: float) -> None:
        self.margin = float(margin)

    def cosine(self, embeds: torch.Tensor) -> torch.Tensor:
        """(B, num_classes) cosines, clamped to [-1, 1]; the max over sub-centers when K > 1."""
        cos = F.linear(F.normalize(embeds, dim=1), F.normalize(self.weight, dim=1))
        if self.subcenters > 1:
            cos = cos.view(-1, self.num_classes, self.subcenters).amax(dim=2)
        return cos.clamp(-1.0, 1.0)

    def target_logit(self, cos: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, embeds: torch.Tensor) -> torch.Tensor:
        """Scaled cosines with no margin: what validation accuracy (and identification) compares."""
        return self.scale * self.cosine(embeds)

    def forward(self, embeds: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) embeddings, (B,) class indices -> (mean cross-entropy, (B, C) logits), in float32 with
        autocast off: under AMP only the encoder runs in bfloat16 (the margin needs cosines to ~1e-7)."""
        with torch.autocast(device_type=embeds.device.type, enabled=False):
            cos = self.cosine(embeds.float())
            target = F.one_hot(labels.long(), self.num_classes).bool()
            logits = self.scale * torch.where(target, self.target_logit(cos), cos)
            return F.cross_entropy(logits, labels.long()), logits

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_classes={self.num_classes}, subcenters={self.subcenters}, "
                f"margin={self.margin}, scale={self.scale}")


@register_head("am_softmax")
class AMSoftmax(CosineHead):
    """Additive margin softmax (CosFace): target logit s * (cos - m)."""

    def __init__(self, embed_dim: int, num_classes: int, margin: float = 0.2, scale: float = 32.0):
        super().__init__(embed_dim, num_classes, margin, scale)

    def target_logit(self, cos: torch.Tensor) -> torch.Tensor:
        return cos - self.margin


@register_head("aam_softmax")
class AAMSoftmax(CosineHead):
    """Additive angular margin softmax (ArcFace): target logit s * cos(theta + m)."""

    def __init__(self, embed_dim: int, num_classes: int, margin: float = 0.2, scale: float = 32.0,
                 easy_margin: bool = False, subcenters: int = 1):
        self.easy_margin = bool(easy_margin)
        super().__init__(embed_dim, num_classes, margin, scale, subcenters)

    def set_margin(self, margin: float) -> None:
        self.margin = float(margin)
        self.cos_m, self.sin_m = math.cos(self.margin), math.sin(self.margin)
        self.threshold = math.cos(math.pi - self.margin)  # cos > threshold <=> theta + m < pi
        self.past_pi_offset = 1.0 + math.cos(math.pi - self.margin)

    def target_logit(self, cos: torch.Tensor) -> torch.Tensor:
        # sin(theta) = sqrt(1 - cos^2); the clamp keeps its gradient finite (zero) at cos = +-1
        sin = torch.sqrt((1.0 - cos * cos).clamp(min=1e-12))
        phi = cos * self.cos_m - sin * self.sin_m
        if self.easy_margin:
            return torch.where(cos > 0, phi, cos)
        return torch.where(cos > self.threshold, phi, cos - self.past_pi_offset)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", easy_margin={self.easy_margin}"


@register_head("subcenter_aam")
class SubcenterAAMSoftmax(AAMSoftmax):
    """Sub-center ArcFace: K sub-centers per class, class cosine = max over them, then the AAM margin."""

    def __init__(self, embed_dim: int, num_classes: int, margin: float = 0.2, scale: float = 32.0,
                 subcenters: int = 3, easy_margin: bool = False):
        super().__init__(embed_dim, num_classes, margin, scale, easy_margin=easy_margin, subcenters=subcenters)
