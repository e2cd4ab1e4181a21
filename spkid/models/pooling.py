"""Temporal pooling layers shared by the encoders: frame-level (B, C, T) features -> one vector.

- `TemporalStatsPool` (WeSpeaker's TSTP, the x-vector/r-vector statistics pooling): mean and
  standard deviation over time, sqrt(var + 1e-8) with the unbiased variance; 4-D (B, C, F, T)
  input is flattened to (B, C * F).
- `AttentiveStatsPool` (WeSpeaker's ASTP; Okabe et al. 2018 as used by ECAPA-TDNN): channel- and
  context-dependent attention weights over frames, then the weighted mean and standard deviation.

Both take an optional `mask` (B, T), 1.0 on real frames and 0.0 on the padding of a zero-padded batch:
the statistics (and the attention's softmax) are then over each utterance's real frames only, the same
as that utterance alone gives to float rounding. Without it they run the unmasked ops as before.
"""
from __future__ import annotations

import torch
from torch import nn

from spkid.models.masking import broadcast_mask, masked_mean_var


class TemporalStatsPool(nn.Module):
    """(B, C, T) or (B, C, F, T) -> (B, 2 * C [* F]): [mean, std] over the last axis."""

    def __init__(self, in_dim: int = 0):
        super().__init__()
        self.in_dim = int(in_dim)

    def out_dim(self) -> int:
        return 2 * self.in_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask` (B, T): 1.0 on real frames (None: all are)."""
        if mask is None:
            mean, var = x.mean(dim=-1), torch.var(x, dim=-1)
        else:
            mean, var = masked_mean_var(x, broadcast_mask(mask, x))
        return torch.cat((mean.flatten(1), torch.sqrt(var + 1e-8).flatten(1)), dim=1)


class AttentiveStatsPool(nn.Module):
    """(B, C, T) -> (B, 2C): attention-weighted mean and std; `global_context` also feeds the
    utterance mean and std to the attention (ECAPA-TDNN's context-dependent variant)."""

    def __init__(self, in_dim: int, bottleneck_dim: int = 128, global_context: bool = False):
        super().__init__()
        self.in_dim = int(in_dim)
        self.global_context = bool(global_context)
        self.linear1 = nn.Conv1d(in_dim * (3 if global_context else 1), bottleneck_dim, kernel_size=1)
        self.linear2 = nn.Conv1d(bottleneck_dim, in_dim, kernel_size=1)

    def out_dim(self) -> int:
        return 2 * self.in_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask` (B, T): 1.0 on real frames (None: all are)."""
        if x.dim() == 4:
            x = x.flatten(1, 2)
        mask = None if mask is None else broadcast_mask(mask, x)
        att_in = x
        if self.global_context:
            if mask is None:
                mean, var = x.mean(dim=-1, keepdim=True), torch.var(x, dim=-1, keepdim=True)
            else:
                mean, var = (m.unsqueeze(-1) for m in masked_mean_var(x, mask))
            std = torch.sqrt(var + 1e-10)
            att_in = torch.cat((x, mean.expand_as(x), std.expand_as(x)), dim=1)
        logits = self.linear2(torch.tanh(self.linear1(att_in)))
        if mask is not None:  # padded frames get no weight
            logits = logits.masked_fill(mask == 0, float("-inf"))
        alpha = torch.softmax(logits, dim=2)
        mean = torch.sum(alpha * x, dim=2)
        var = torch.sum(alpha * x * x, dim=2) - mean * mean
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-10))], dim=1)
