"""ResNet r-vectors (Zeinali et al. 2019), as WeSpeaker's ResNet18/34/101: a 2-D ResNet over
(frequency, time) with `base_channels` (32) channels in the first stage, doubled at each of the next
three stages (frequency and time stride 2), no max pooling; statistics pooling (TSTP) of the
(channels x frequency) maps and one linear embedding layer. ResNet18 and 34 use basic blocks
([2,2,2,2], [3,4,6,3]), ResNet101 bottleneck blocks ([3,4,23,3], expansion 4). Parameter names follow
WeSpeaker's. Sizes at 80-dim fbank, 256-dim embeddings: 4.11M, 6.63M, 15.89M.

`forward(feats, lengths)` runs a zero-padded batch of utterances of different lengths exactly as each
alone (eval mode): padded frames are zeroed at the input of every 3x3 convolution, each utterance's
length is recomputed after each strided stage ((len - 1) // 2 + 1), and the statistics pooling is
over real frames only (what batched whole-utterance extraction relies on).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spkid.models import register_model
from spkid.models.masking import conv_lengths, frame_mask, time_mask
from spkid.models.pooling import TemporalStatsPool


def shortcut(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    if stride == 1 and in_planes == planes:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = shortcut(in_planes, planes, stride)

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_lengths(lengths, self.conv1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """`lengths` (B,): real frames of each utterance in zero-padded `x` (None: no padding)."""
        if lengths is None:
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(out + self.shortcut(x))
        x = x * frame_mask(lengths, x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out * frame_mask(self.out_lengths(lengths), out)))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = shortcut(in_planes, planes * self.expansion, stride)

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_lengths(lengths, self.conv2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """`lengths` (B,): real frames of each utterance in zero-padded `x` (None: no padding); only the
        3x3 convolution sees neighbouring frames (the 1x1 ones, strided or not, map frame to frame)."""
        out = F.relu(self.bn1(self.conv1(x)))
        if lengths is not None:
            out = out * frame_mask(lengths, out)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


# depth -> (block, blocks per stage), WeSpeaker's ResNet18/34/50/101/152
LAYOUTS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
           101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))}


class ResNet(nn.Module):
    """r-vector ResNet of a given depth (see LAYOUTS)."""

    default_depth = 34

    def __init__(self, feat_dim: int = 80, embed_dim: int = 256, depth: int | None = None,
                 base_channels: int = 32):
        super().__init__()
        depth = self.default_depth if depth is None else int(depth)
        if depth not in LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(LAYOUTS)}, got {depth}")
        self.feat_dim, self.embed_dim, self.depth = int(feat_dim), int(embed_dim), depth
        self.base_channels = int(base_channels)
        block, counts = LAYOUTS[depth]
        self.conv1 = nn.Conv2d(1, self.base_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.base_channels)
        in_planes = self.base_channels
        for stage, count in enumerate(counts):
            planes, blocks = self.base_channels * 2 ** stage, []
            for i in range(count):
                blocks.append(block(in_planes, planes, 2 if stage > 0 and i == 0 else 1))
                in_planes = planes * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        freq = self.feat_dim
        for _ in range(3):  # each strided stage: kernel 3, padding 1, stride 2
            freq = (freq + 1) // 2
        self.pool = TemporalStatsPool(in_planes * freq)
        self.seg_1 = nn.Linear(self.pool.out_dim(), self.embed_dim)

    def to_config(self) -> dict:
        return {"feat_dim": self.feat_dim, "embed_dim": self.embed_dim, "depth": self.depth,
                "base_channels": self.base_channels}

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, feat_dim) -> (B, embed_dim). `lengths` (B,): each utterance's real frames in a
        zero-padded batch; its embedding is then the one it gets alone (in eval mode)."""
        x = feats.transpose(1, 2).unsqueeze(1)
        if lengths is None:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
            return self.seg_1(self.pool(out))
        out = F.relu(self.bn1(self.conv1(x * frame_mask(lengths, x))))
        for block in (*self.layer1, *self.layer2, *self.layer3, *self.layer4):
            out = block(out, lengths)
            lengths = block.out_lengths(lengths)
        return self.seg_1(self.pool(out, time_mask(lengths, out.shape[-1], out)))


@register_model("resnet18")
class ResNet18(ResNet):
    default_depth = 18


@register_model("resnet34")
class ResNet34(ResNet):
    default_depth = 34


@register_model("resnet101")
class ResNet101(ResNet):
    default_depth = 101
