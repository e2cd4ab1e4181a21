"""Temporal pooling layers shared by the encoders: frame-level (B, C, T) features -> one vector.

- `TemporalStatsPool` (WeSpeaker's TSTP, the x-vector/r-vector statistics pooling): mean and
  standard deviation over time, sqrt(var + 1e-8) with the unbiased variance; 4-D (B, C, F, T)
  input is flattened to (B, C * F).
- `AttentiveStatsPool` (WeSpeaker's ASTP; Okabe et al. 2018 as used by ECAPA-TDNN): channel- and
  context-dependent attention weights over frames, then the weighted mean and standard deviation.
"""
from __future__ import annotations

import torch
from torch import nn


class TemporalStatsPool(nn.Module):
    """(B, C, T) or (B, C, F, T) -> (B, 2 * C [* F]): [mean, std] over the last axis."""

    def __init__(self, in_dim: int = 0):
        super().__init__()
        self.in_dim = int(in_dim)

    def out_dim(self) -> int:
        return 2 * self.in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1).flatten(1)
        std = torch.sqrt(torch.var(x, dim=-1) + 1e-8).flatten(1)
        return torch.cat((mean, std), dim=1)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.flatten(1, 2)
        att_in = x
        if self.global_context:
            mean = x.mean(dim=-1, keepdim=True).expand_as(x)
            std = torch.sqrt(torch.var(x, dim=-1, keepdim=True) + 1e-10).expand_as(x)
            att_in = torch.cat((x, mean, std), dim=1)
        alpha = torch.softmax(self.linear2(torch.tanh(self.linear1(att_in))), dim=2)
        mean = torch.sum(alpha * x, dim=2)
        var = torch.sum(alpha * x * x, dim=2) - mean * mean
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-10))], dim=1)
