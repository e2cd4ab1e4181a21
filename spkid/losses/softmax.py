"""The plain softmax head: Deep Speaker's speaker-classification pre-training (and its frozen-encoder stage).

A linear layer from the embedding to one logit per training speaker with cross-entropy, as the reference
implementation (philipperemy/deep-speaker) has it: `Dense(num_speakers, activation='softmax')` + sparse
categorical cross-entropy. It is a loss module, so checkpoints keep it under "criterion" while the
encoder stays extraction-only.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spkid.losses import register_head


@register_head("softmax")
class SoftmaxHead(nn.Module):
    """Linear classifier + cross-entropy: `(embeddings, labels) -> (loss, logits)`."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"SoftmaxHead needs at least 2 classes, got {num_classes}")
        self.classifier = nn.Linear(int(embed_dim), int(num_classes))

    def logits(self, embeds: torch.Tensor) -> torch.Tensor:
        """Inference logits (validation accuracy)."""
        return self.classifier(embeds)

    def forward(self, embeds: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) embeddings, (B,) class indices -> (mean cross-entropy, (B, C) logits), in float32."""
        with torch.autocast(device_type=embeds.device.type, enabled=False):
            logits = self.classifier(embeds.float())
            return F.cross_entropy(logits, labels), logits
