"""Frame masks for zero-padded batches of utterances of different lengths (time is the last axis).

The encoders that take `forward(feats, lengths)` (CAM++, ECAPA-TDNN, ResNet) run such a batch exactly as
each utterance alone: padded frames are zeroed at the input of every convolution with a time kernel
wider than one frame (where an utterance alone sees the convolution's zero padding), left out of every
average over time, and each utterance's length is recomputed after a strided convolution.
"""
from __future__ import annotations

import torch


def time_mask(lengths: torch.Tensor, frames: int, like: torch.Tensor) -> torch.Tensor:
    """(B, frames) 1.0 on each utterance's first `lengths[b]` frames, else 0.0 (dtype/device of `like`)."""
    steps = torch.arange(frames, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).to(device=like.device, dtype=like.dtype)


def broadcast_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (B, T) mask shaped to broadcast against `like` (B, ..., T): (B, 1, ..., 1, T)."""
    return mask.view(mask.shape[0], *(1,) * (like.dim() - 2), mask.shape[1])


def frame_mask(lengths: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`time_mask` over the last axis of `like`, shaped to broadcast against it: (B, 1, ..., 1, T)."""
    return broadcast_mask(time_mask(lengths, like.shape[-1], like), like)


def masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`x` with its padded frames zeroed (`mask` None: no padding, `x` itself)."""
    return x if mask is None else x * mask


def conv_lengths(lengths: torch.Tensor, conv: torch.nn.Module) -> torch.Tensor:
    """Each utterance's frame count after `conv` (Conv1d or Conv2d; time is its last axis)."""
    padding, dilation = conv.padding[-1], conv.dilation[-1]
    return (lengths + 2 * padding - dilation * (conv.kernel_size[-1] - 1) - 1) // conv.stride[-1] + 1


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of the real frames only; `mask` broadcasts against `x` (B, 1, ..., T)."""
    return (x * mask).sum(dim=-1) / mask.sum(dim=-1)


def masked_mean_var(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance (as torch.var) over the last axis of the real frames only."""
    count = mask.sum(dim=-1)
    mean = (x * mask).sum(dim=-1) / count
    var = ((x - mean.unsqueeze(-1)).pow(2) * mask).sum(dim=-1) / (count - 1)
    return mean, var
