"""ECAPA-TDNN (Desplanques et al. 2020), with WeSpeaker's block structure and parameter names.

A 5-frame TDNN layer, then three SE-Res2Blocks (1x1 conv, Res2Net dilated convolution with scale 8,
1x1 conv, squeeze-excitation, residual) with dilations 2, 3, 4; multi-layer feature aggregation
(MFA) concatenates the three blocks' outputs into a 1x1 convolution to `mfa_channels`; attentive
statistics pooling with global context, batch norm and a linear layer give the embedding. Each conv
block is conv -> ReLU -> batch norm.

Defaults are the paper's: MFA output 1536 channels whatever `channels` is, context-dependent
attention; at 80-dim fbank and 192-dim embeddings that is 6.19M parameters (channels 512, the
paper's 6.2M, = WeSpeaker's ECAPA_TDNN_GLOB_c512) and 14.66M (1024, the paper's 14.7M).
`mfa_channels = 3 * channels` is WeSpeaker's layout: ECAPA_TDNN_GLOB_c512/_c1024 (6.19M / 20.76M;
SpeechBrain's ECAPA sizes), and with `global_context: false` ECAPA_TDNN_c512/_c1024 (5.80M / 19.97M).
Module names are WeSpeaker's (not checked against its weights: WeSpeaker is not installed here).

`forward(feats, lengths)` runs a zero-padded batch of utterances of different lengths exactly as each
alone (eval mode): padded frames are zeroed at the input of every convolution wider than one frame and
left out of the squeeze-excitation means and the attentive pooling (what batched whole-utterance
extraction relies on).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spkid.models import register_model
from spkid.models.masking import masked, masked_mean, time_mask
from spkid.models.pooling import AttentiveStatsPool


class Conv1dReluBn(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0,
                 dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask`: (B, 1, T) 1 on real frames, 0 on padding (None: no padding)."""
        if self.conv.kernel_size[0] > 1:
            x = masked(x, mask)
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Res2Net convolution: `scale` channel groups, each group's conv also sees the previous group's
    output; the last group passes through unchanged (WeSpeaker's ordering)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = 8):
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels ({channels}) must be a multiple of scale ({scale})")
        self.width = channels // scale
        count = 1 if scale == 1 else scale - 1
        padding = (kernel_size - 1) // 2 * dilation
        self.convs = nn.ModuleList(nn.Conv1d(self.width, self.width, kernel_size, padding=padding,
                                             dilation=dilation) for _ in range(count))
        self.bns = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(count))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask`: (B, 1, T) 1 on real frames, 0 on padding (None: no padding)."""
        groups = torch.split(x, self.width, dim=1)
        out, previous = [], None
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            piece = groups[i] if previous is None else previous + groups[i]
            previous = bn(F.relu(conv(masked(piece, mask))))
            out.append(previous)
        out.extend(groups[len(self.convs):])
        return torch.cat(out, dim=1)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, bottleneck: int = 128):
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask`: (B, 1, T) 1 on real frames, 0 on padding (None: no padding)."""
        mean = x.mean(dim=2) if mask is None else masked_mean(x, mask)
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(mean))))
        return x * gate.unsqueeze(2)


class SERes2Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = 8):
        super().__init__()
        self.se_res2block = nn.Sequential(
            Conv1dReluBn(channels, channels),
            Res2Conv1dReluBn(channels, kernel_size, dilation, scale),
            Conv1dReluBn(channels, channels),
            SqueezeExcitation(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask`: (B, 1, T) 1 on real frames, 0 on padding (None: no padding)."""
        out = x
        for module in self.se_res2block:
            out = module(out, mask)
        return x + out


@register_model("ecapa_tdnn")
class ECAPATDNN(nn.Module):
    """ECAPA-TDNN; `global_context` gives the attention the utterance mean/std (WeSpeaker's GLOB)."""

    def __init__(self, feat_dim: int = 80, embed_dim: int = 192, channels: int = 512, scale: int = 8,
                 mfa_channels: int = 1536, attention_dim: int = 128, global_context: bool = True):
        super().__init__()
        self.feat_dim, self.embed_dim, self.channels = int(feat_dim), int(embed_dim), int(channels)
        self.scale, self.mfa_channels = int(scale), int(mfa_channels)
        self.attention_dim, self.global_context = int(attention_dim), bool(global_context)
        self.layer1 = Conv1dReluBn(self.feat_dim, self.channels, kernel_size=5, padding=2)
        self.layer2 = SERes2Block(self.channels, 3, dilation=2, scale=self.scale)
        self.layer3 = SERes2Block(self.channels, 3, dilation=3, scale=self.scale)
        self.layer4 = SERes2Block(self.channels, 3, dilation=4, scale=self.scale)
        self.conv = nn.Conv1d(3 * self.channels, self.mfa_channels, kernel_size=1)
        self.pool = AttentiveStatsPool(self.mfa_channels, self.attention_dim, self.global_context)
        self.bn = nn.BatchNorm1d(self.pool.out_dim())
        self.linear = nn.Linear(self.pool.out_dim(), self.embed_dim)

    def to_config(self) -> dict:
        return {"feat_dim": self.feat_dim, "embed_dim": self.embed_dim, "channels": self.channels,
                "scale": self.scale, "mfa_channels": self.mfa_channels, "attention_dim": self.attention_dim,
                "global_context": self.global_context}

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, feat_dim) -> (B, embed_dim). `lengths` (B,): each utterance's real frames in a
        zero-padded batch; its embedding is then the one it gets alone (in eval mode)."""
        x = feats.transpose(1, 2)
        mask = None if lengths is None else time_mask(lengths, x.shape[-1], x)[:, None]
        out1 = self.layer1(x, mask)
        out2 = self.layer2(out1, mask)
        out3 = self.layer3(out2, mask)
        out4 = self.layer4(out3, mask)
        out = F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))
        return self.linear(self.bn(self.pool(out) if mask is None else self.pool(out, mask[:, 0])))
