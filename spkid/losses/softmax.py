"""Speaker-classification head for Deep Speaker's softmax pre-training (and the frozen-embedding stage).

The head is a linear layer from the embedding to one logit per training speaker with cross-entropy,
the seed's `Dense(num_speakers, activation='softmax')` + sparse categorical cross-entropy. It lives in
the loss module, so checkpoints keep it under "criterion" while the encoder stays extraction-only.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SoftmaxHead(nn.Module):
    """Linear classifier + cross-entropy; `last_accuracy` holds the batch accuracy of the last forward."""

    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"SoftmaxHead needs at least 2 classes, got {num_classes}")
        self.classifier = nn.Linear(int(embedding_dim), int(num_classes))
        self.last_accuracy: torch.Tensor | None = None

    def logits(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.classifier(embeds)

    def forward(self, embeds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, D) embeddings, (B,) class indices -> mean cross-entropy (computed in float32)."""
        with torch.autocast(device_type=embeds.device.type, enabled=False):
            logits = self.classifier(embeds.float())
            with torch.no_grad():
                self.last_accuracy = (logits.argmax(dim=1) == labels).float().mean()
            return F.cross_entropy(logits, labels)
