"""The GE2E speaker encoder (Wan et al. 2018), as in Resemblyzer and PaddleSpeech examples/ge2e.

A stack of LSTMs reads (B, T, 40) mel frames; the last hidden state of the top layer goes through a
linear projection and a ReLU and is L2-normalised: a d-vector per partial utterance (160 frames in
training and extraction). Utterance-level embeddings average partial ones: see spkid.models.windows.
`spkid import-resemblyzer` maps Resemblyzer's pretrained weights onto this module
(`lstm.*` unchanged, `linear.*` -> `projection.*`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spkid.models import register_model


@register_model("ge2e")
class GE2EEncoder(nn.Module):
    """LSTM stack -> last hidden state -> linear -> ReLU -> L2 norm (Resemblyzer's VoiceEncoder)."""

    def __init__(self, feat_dim: int = 40, embed_dim: int = 256, hidden_size: int = 256, num_layers: int = 3):
        super().__init__()
        self.feat_dim = int(feat_dim)
        self.embed_dim = int(embed_dim)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.lstm = nn.LSTM(self.feat_dim, self.hidden_size, self.num_layers, batch_first=True)
        self.projection = nn.Linear(self.hidden_size, self.embed_dim)

    def to_config(self) -> dict:
        """The constructor kwargs (JSON-able), as stored in checkpoints."""
        return {"feat_dim": self.feat_dim, "embed_dim": self.embed_dim, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers}

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, feat_dim) frames -> (B, embed_dim) L2-normalised, non-negative embeddings."""
        if frames.dim() != 3 or frames.shape[-1] != self.feat_dim:
            raise ValueError(f"GE2EEncoder expects (batch, frames, {self.feat_dim}), "
                             f"got {tuple(frames.shape)}")
        _, (hidden, _) = self.lstm(frames)
        return F.normalize(F.relu(self.projection(hidden[-1])), p=2.0, dim=1)
