"""CAM++ (Wang et al. 2023, "CAM++: A Fast and Efficient Network for Speaker Verification Using
Context-Aware Masking"), as 3D-Speaker's `CAMPPlus` (speakerlab/models/campplus).

A front convolution module (FCM: a small 2-D ResNet over time x frequency, frequency downsampled 8x)
feeds a densely connected TDNN (D-TDNN) whose layers are gated by context-aware masking (CAM: a
sigmoid mask from the layer input's utterance mean plus 100-frame segment means); transition layers
halve the channels after each dense block; statistics pooling (mean, unbiased std) and a 1x1
"dense" layer with a non-affine batch norm give the embedding.

`forward(feats, lengths)` runs a zero-padded batch of utterances of different lengths exactly as each
alone: padded frames are zeroed before every layer with temporal context and left out of the CAM
means and the statistics pooling (what batched whole-utterance extraction relies on).

Module and parameter names are 3D-Speaker's, so one of their state dicts (e.g. the
`campplus_cn_en_common.pt` of ModelScope's speech_campplus_sv_zh_en_16k-common_advanced) loads with
`load_state_dict(strict=True)` and no renaming; tests/test_models_campplus.py checks the outputs.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from spkid.models import register_model
from spkid.models.masking import conv_lengths, masked, masked_mean_var, time_mask

SEGMENT_FRAMES = 100  # CAM's segment length for the local context


def bn_relu(channels: int) -> nn.Sequential:
    """Batch norm then ReLU, named as 3D-Speaker's `get_nonlinear('batchnorm-relu')`."""
    return nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(channels), relu=nn.ReLU(inplace=True)))


class ResBlock2d(nn.Module):
    """2-D basic residual block; `stride` applies to the frequency axis only."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask`: (B, 1, 1, T) 1 on real frames, 0 on padding (None: no padding)."""
        x = masked(x, mask)
        out = self.bn2(self.conv2(masked(F.relu(self.bn1(self.conv1(x))), mask)))
        return F.relu(out + self.shortcut(x))


class FCM(nn.Module):
    """Front convolution module: (B, F, T) -> (B, channels * F/8, T)."""

    def __init__(self, feat_dim: int = 80, channels: int = 32, num_blocks: tuple[int, int] = (2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(*[ResBlock2d(channels, channels, 2 if i == 0 else 1)
                                      for i in range(num_blocks[0])])
        self.layer2 = nn.Sequential(*[ResBlock2d(channels, channels, 2 if i == 0 else 1)
                                      for i in range(num_blocks[1])])
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask`: (B, T) 1 on real frames, 0 on padding (None: no padding)."""
        mask = None if mask is None else mask[:, None, None, :]
        out = F.relu(self.bn1(self.conv1(masked(x.unsqueeze(1), mask))))
        for block in (*self.layer1, *self.layer2):
            out = block(out, mask)
        out = F.relu(self.bn2(self.conv2(masked(out, mask))))
        return out.flatten(1, 2)


class TDNNLayer(nn.Module):
    """Conv1d (same padding) then batch norm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                                padding=(kernel_size - 1) // 2 * dilation, dilation=dilation, bias=False)
        self.nonlinear = bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


def segment_means(x: torch.Tensor, seg_len: int = SEGMENT_FRAMES, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of each `seg_len`-frame segment (the last may be shorter), broadcast back to every frame;
    with `mask` (B, 1, T), over the real frames only."""
    if mask is None:
        seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        return seg.repeat_interleave(seg_len, dim=-1)[..., :x.shape[-1]]
    frames = x.shape[-1]
    pad = -frames % seg_len
    sums = F.pad(x * mask, (0, pad)).unflatten(-1, (-1, seg_len)).sum(-1)
    counts = F.pad(mask, (0, pad)).unflatten(-1, (-1, seg_len)).sum(-1).clamp(min=1)
    return (sums / counts).repeat_interleave(seg_len, dim=-1)[..., :frames]


class CAMLayer(nn.Module):
    """Context-aware masking: a local TDNN output gated by a mask from utterance + segment context."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int,
                 reduction: int = 2):
        super().__init__()
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size,
                                      padding=(kernel_size - 1) // 2 * dilation, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            mean = x.mean(-1, keepdim=True)
        else:
            x = x * mask
            mean = x.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True)
        context = mean + segment_means(x, mask=mask)
        gate = torch.sigmoid(self.linear2(self.relu(self.linear1(context))))
        return self.linear_local(x) * gate


class CAMDenseTDNNLayer(nn.Module):
    """BN-ReLU -> 1x1 bottleneck -> BN-ReLU -> CAM layer (`growth` new channels)."""

    def __init__(self, in_channels: int, growth: int, bn_channels: int, kernel_size: int, dilation: int,
                 memory_efficient: bool = False):
        super().__init__()
        self.memory_efficient = memory_efficient
        self.nonlinear1 = bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = bn_relu(bn_channels)
        self.cam_layer = CAMLayer(bn_channels, growth, kernel_size, dilation)

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear1(self.nonlinear1(x))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.training and self.memory_efficient:
            x = checkpoint(self.bottleneck, x, use_reentrant=False)
        else:
            x = self.bottleneck(x)
        return self.cam_layer(self.nonlinear2(x), mask)


class CAMDenseTDNNBlock(nn.ModuleList):
    """Dense block: each layer's output is concatenated to its input."""

    def __init__(self, num_layers: int, in_channels: int, growth: int, bn_channels: int, kernel_size: int,
                 dilation: int, memory_efficient: bool = False):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"tdnnd{i + 1}", CAMDenseTDNNLayer(in_channels + i * growth, growth, bn_channels,
                                                               kernel_size, dilation, memory_efficient))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x, mask)], dim=1)
        return x


class TransitLayer(nn.Module):
    """BN-ReLU then a 1x1 convolution (channel reduction between dense blocks)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.nonlinear = bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class StatsPool(nn.Module):
    """Mean and unbiased standard deviation over time: (B, C, T) -> (B, 2C)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            mean = x.mean(dim=2)
            var = (x - mean.unsqueeze(2)).pow(2).sum(dim=2) / (x.shape[2] - 1)  # unbiased, as Tensor.std
        else:  # (B, 1, T): real frames only
            mean, var = masked_mean_var(x, mask)
        return torch.cat([mean, var.sqrt()], dim=1)  # written out: ONNX loses the rank of Tensor.std


class DenseLayer(nn.Module):
    """1x1 projection of pooled statistics then a non-affine batch norm (the embedding layer)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(out_channels, affine=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


@register_model("campplus")
class CAMPPlus(nn.Module):
    """CAM++: FCM -> TDNN -> 3 CAM dense blocks (12/24/16 layers) with transitions -> stats -> dense."""

    def __init__(self, feat_dim: int = 80, embed_dim: int = 512, growth_rate: int = 32, bn_size: int = 4,
                 init_channels: int = 128, memory_efficient: bool = False):
        super().__init__()
        self.feat_dim, self.embed_dim = int(feat_dim), int(embed_dim)
        self.growth_rate, self.bn_size, self.init_channels = int(growth_rate), int(bn_size), int(init_channels)
        self.memory_efficient = bool(memory_efficient)
        self.head = FCM(feat_dim=self.feat_dim)
        self.xvector = nn.Sequential(OrderedDict(
            tdnn=TDNNLayer(self.head.out_channels, self.init_channels, 5, stride=2)))
        channels = self.init_channels
        for i, (num_layers, dilation) in enumerate(zip((12, 24, 16), (1, 2, 2)), start=1):
            self.xvector.add_module(f"block{i}", CAMDenseTDNNBlock(
                num_layers, channels, self.growth_rate, self.bn_size * self.growth_rate, 3, dilation,
                self.memory_efficient))
            channels += num_layers * self.growth_rate
            self.xvector.add_module(f"transit{i}", TransitLayer(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", bn_relu(channels))
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module("dense", DenseLayer(channels * 2, self.embed_dim))
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def to_config(self) -> dict:
        return {"feat_dim": self.feat_dim, "embed_dim": self.embed_dim, "growth_rate": self.growth_rate,
                "bn_size": self.bn_size, "init_channels": self.init_channels,
                "memory_efficient": self.memory_efficient}

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, feat_dim) features -> (B, embed_dim) embeddings. `lengths` (B,): each utterance's real
        frames in a zero-padded batch; its embedding is then the one it gets alone."""
        if lengths is None:
            return self.xvector(self.head(feats.transpose(1, 2)))
        mask = time_mask(lengths, feats.shape[1], feats)
        x = self.head(feats.transpose(1, 2), mask) * mask[:, None]
        x = self.xvector.tdnn(x)
        lengths = conv_lengths(lengths, self.xvector.tdnn.linear)
        mask = time_mask(lengths, x.shape[-1], x)[:, None]
        for name, module in self.xvector.named_children():
            if name == "tdnn":
                continue
            x = module(x, mask) if isinstance(module, (CAMDenseTDNNBlock, StatsPool)) else module(x)
        return x
