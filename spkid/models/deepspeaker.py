"""Deep Speaker encoders (Li et al. 2017, "Deep Speaker: an End-to-End Neural Speaker Embedding System";
philipperemy/deep-speaker): ResCNN and GRU.

Both read (B, T, D) Kaldi fbank frames (64 bins in the paper; VAD-trimmed, mean-normalised, 160-frame
crops in training), average a frame-level representation over time, project it to 512 dimensions with
an affine layer and L2-normalise ("ln"). Activations are clipped ReLUs, min(max(x, 0), 20).

- "rescnn": four stages, each a 5x5 stride-2 convolution (64, 128, 256, 512 channels) with batch norm
  and three residual blocks of two 3x3 convolutions; the (channels x remaining frequency bins) map of
  each remaining frame is averaged over time (2048 values for 64 bins) -> affine 512 -> ln. About 24M
  parameters, as the paper's Table 2.
- "rescnn_small": the same with half the channels (32, 64, 128, 256): about a quarter of the parameters.
- "gru": a 5x5 stride-2 convolution (64 channels) with batch norm, three GRU layers (1024 units), the
  GRU outputs averaged over time -> affine 512 -> ln.

Speaker-classification pre-training puts a softmax layer on the affine output (before ln) with dropout
before the affine layer, as philipperemy/deep-speaker's `include_softmax` model: `embed(frames, dropout=0.5,
normalize=False)` (the classification task uses `embed` when an encoder has it). That classifier lives in
the loss module (spkid.losses.softmax), never in the encoder, so a checkpoint's encoder alone extracts
embeddings. Constructors follow the encoder contract `cls(feat_dim=F, embed_dim=D, **args)`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spkid.models import register_model

CLIP = 20.0


def _halved(size: int, times: int) -> int:
    """Size after `times` 5x5 stride-2 convolutions with padding 2 (ceil(size / 2) each time)."""
    for _ in range(times):
        size = (size - 1) // 2 + 1
    return size


class _ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout))


class ResBlock(nn.Module):
    """conv3x3-BN-clipped ReLU-conv3x3-BN, plus the input, then clipped ReLU (the reference's identity_block)."""

    def __init__(self, channels: int, clip: float = CLIP):
        super().__init__()
        self.clip = clip
        self.a = _ConvBN(channels, channels, 3, 1)
        self.b = _ConvBN(channels, channels, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.hardtanh(self.a(x), 0.0, self.clip)
        return F.hardtanh(self.b(y) + x, 0.0, self.clip)


class _Encoder(nn.Module):
    """Shared tail: pooled (B, pooled_dim) -> [dropout] -> affine -> [L2 norm]."""

    feat_dim: int
    embed_dim: int
    affine: nn.Linear

    def _check(self, frames: torch.Tensor) -> None:
        if frames.dim() != 3 or frames.shape[-1] != self.feat_dim:
            raise ValueError(f"{type(self).__name__} expects (batch, frames, {self.feat_dim}), "
                             f"got {tuple(frames.shape)}")

    def pool(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, frames: torch.Tensor, dropout: float = 0.0, normalize: bool = True) -> torch.Tensor:
        """(B, T, D) -> (B, embed_dim); `dropout` before the affine layer (training only)."""
        self._check(frames)
        pooled = self.pool(frames)
        if dropout > 0:
            pooled = F.dropout(pooled, dropout, self.training)
        out = self.affine(pooled)
        return F.normalize(out, p=2.0, dim=1) if normalize else out

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, feat_dim) frames -> (B, embed_dim) L2-normalised embeddings."""
        return self.embed(frames)


@register_model("rescnn")
class ResCNN(_Encoder):
    """Deep Speaker's ResCNN: [conv5x5/2 + BN + 3 residual blocks] x 4 stages, temporal mean, affine, ln."""

    default_channels = (64, 128, 256, 512)

    def __init__(self, feat_dim: int = 64, embed_dim: int = 512, channels: list[int] | tuple[int, ...] | None = None,
                 blocks_per_stage: int = 3):
        super().__init__()
        self.feat_dim = int(feat_dim)
        self.embed_dim = int(embed_dim)
        self.channels = [int(c) for c in (channels if channels is not None else self.default_channels)]
        self.blocks_per_stage = int(blocks_per_stage)
        if not self.channels or min(self.channels) < 1 or self.blocks_per_stage < 0:
            raise ValueError(f"ResCNN: bad channels {self.channels} / blocks_per_stage {blocks_per_stage}")
        stages, cin = [], 1
        for cout in self.channels:
            stages.append(nn.ModuleDict({
                "conv": _ConvBN(cin, cout, 5, 2),
                "blocks": nn.Sequential(*(ResBlock(cout) for _ in range(self.blocks_per_stage)))}))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.pooled_dim = self.channels[-1] * _halved(self.feat_dim, len(self.channels))
        self.affine = nn.Linear(self.pooled_dim, self.embed_dim)

    def to_config(self) -> dict:
        """The constructor kwargs (JSON-able), as stored in checkpoints."""
        return {"feat_dim": self.feat_dim, "embed_dim": self.embed_dim, "channels": list(self.channels),
                "blocks_per_stage": self.blocks_per_stage}

    def pool(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.unsqueeze(1)  # (B, 1, T, D)
        for stage in self.stages:
            x = stage["blocks"](F.hardtanh(stage["conv"](x), 0.0, CLIP))
        b, c, t, f = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, t, c * f).mean(dim=1)  # the reference's Reshape + average


@register_model("rescnn_small")
class ResCNNSmall(ResCNN):
    """ResCNN with half the channels (32, 64, 128, 256): about a quarter of the parameters."""

    default_channels = (32, 64, 128, 256)


@register_model("gru")
class GRUEncoder(_Encoder):
    """Deep Speaker's GRU model: conv5x5/2 + BN + clipped ReLU, GRU stack, temporal mean, affine, ln."""

    def __init__(self, feat_dim: int = 64, embed_dim: int = 512, conv_channels: int = 64, hidden_size: int = 1024,
                 num_layers: int = 3):
        super().__init__()
        self.feat_dim = int(feat_dim)
        self.embed_dim = int(embed_dim)
        self.conv_channels = int(conv_channels)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.conv = _ConvBN(1, self.conv_channels, 5, 2)
        self.gru = nn.GRU(self.conv_channels * _halved(self.feat_dim, 1), self.hidden_size, self.num_layers,
                          batch_first=True)
        self.affine = nn.Linear(self.hidden_size, self.embed_dim)

    def to_config(self) -> dict:
        """The constructor kwargs (JSON-able), as stored in checkpoints."""
        return {"feat_dim": self.feat_dim, "embed_dim": self.embed_dim, "conv_channels": self.conv_channels,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers}

    def pool(self, frames: torch.Tensor) -> torch.Tensor:
        x = F.hardtanh(self.conv(frames.unsqueeze(1)), 0.0, CLIP)  # (B, C, T/2, D/2)
        b, c, t, f = x.shape
        out, _ = self.gru(x.permute(0, 2, 1, 3).reshape(b, t, c * f))
        return out.mean(dim=1)
