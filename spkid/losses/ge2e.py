"""The GE2E loss of Wan et al. 2018, "Generalized End-to-End Loss for Speaker Verification".

A batch is N speakers x M utterances of D-dimensional embeddings. With c_k the mean of speaker k's
embeddings and c_j^(-i) = (sum_m e_jm - e_ji) / (M - 1) the centroid of e_ji's own speaker without
e_ji itself, the similarity matrix is

    S_ji,k = w * cos(e_ji, c_j^(-i)) + b   if k == j
    S_ji,k = w * cos(e_ji, c_k) + b        otherwise

and the per-utterance losses are
    softmax:  L(e_ji) = -S_ji,j + log sum_k exp(S_ji,k)
    contrast: L(e_ji) = 1 - sigmoid(S_ji,j) + max_{k != j} sigmoid(S_ji,k).

The loss returned is the MEAN over the N*M utterances (the paper sums; the mean is what
Resemblyzer/Real-Time-Voice-Cloning and PaddleSpeech examples/ge2e use via cross-entropy, and it keeps
the gradient scale independent of the batch geometry).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

METHODS = ("softmax", "contrast")
W_MIN = 1e-6


class GE2ELoss(nn.Module):
    """GE2E loss with learnable scale `w` (init 10) and bias `b` (init -5).

    The paper requires w > 0. Here the forward uses max(w, 1e-6) (torch.clamp, as cvqluu/GE2E-Loss
    does); the parameter itself is not modified, and while it sits below 1e-6 it gets no gradient.
    Train with `scale_grads(0.01)` after backward (the paper's 0.01 gradient scale for w and b).
    """

    def __init__(self, init_w: float = 10.0, init_b: float = -5.0, method: str = "softmax"):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"GE2ELoss: unknown method {method!r}, expected one of {METHODS}")
        self.method = method
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))
        # Fraction of utterances whose most similar centroid is their own speaker's (detached 0-dim
        # tensor, set by each forward; no host sync).
        self.last_accuracy: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"method={self.method!r}"

    @staticmethod
    def _check(embeds: torch.Tensor) -> None:
        if embeds.dim() != 3:
            raise ValueError(f"GE2ELoss expects (speakers N, utterances M, dim D) embeddings, "
                             f"got shape {tuple(embeds.shape)}")
        n, m, _ = embeds.shape
        if n < 2:
            raise ValueError(f"GE2ELoss needs at least 2 speakers per batch, got N={n}")
        if m < 2:
            raise ValueError(f"GE2ELoss needs at least 2 utterances per speaker (the exclusive centroid "
                             f"averages the other M-1), got M={m}")

    def similarity(self, embeds: torch.Tensor) -> torch.Tensor:
        """(N, M, D) embeddings -> (N, M, N) cosine similarities (exclusive centroid on k == j), no w/b."""
        self._check(embeds)
        n, m, _ = embeds.shape
        x = embeds if embeds.dtype == torch.float64 else embeds.float()
        sums = x.sum(dim=1)                                        # (N, D)
        incl = F.normalize(sums / m, dim=-1)                       # (N, D) inclusive centroids
        excl = F.normalize((sums.unsqueeze(1) - x) / (m - 1), dim=-1)  # (N, M, D) exclusive centroids
        e = F.normalize(x, dim=-1)
        cos = torch.einsum("jid,kd->jik", e, incl)                 # (N, M, N)
        own = (e * excl).sum(dim=-1)                               # (N, M)
        diag = torch.eye(n, dtype=torch.bool, device=x.device).unsqueeze(1)  # (N, 1, N)
        return torch.where(diag, own.unsqueeze(-1), cos)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        """(N, M, D) embeddings -> scalar loss, the mean over the N*M per-utterance losses.

        Computed in float32 (float64 inputs stay float64) with autocast disabled, so bf16/fp16
        autocast only affects the model producing the embeddings.
        """
        with torch.autocast(device_type=embeds.device.type, enabled=False):
            cos = self.similarity(embeds)
            n = cos.shape[0]
            w = self.w.to(cos.dtype).clamp(min=W_MIN)
            b = self.b.to(cos.dtype)
            sim = w * cos + b                                      # (N, M, N)
            target = torch.arange(n, device=sim.device)
            own = sim.diagonal(dim1=0, dim2=2).transpose(0, 1)     # (N, M): S_ji,j
            if self.method == "softmax":
                losses = torch.logsumexp(sim, dim=-1) - own
            else:
                sig = torch.sigmoid(sim)
                diag = torch.eye(n, dtype=torch.bool, device=sim.device).unsqueeze(1)
                others = sig.masked_fill(diag, float("-inf")).amax(dim=-1)
                losses = 1.0 - torch.sigmoid(own) + others
            with torch.no_grad():
                self.last_accuracy = (sim.argmax(dim=-1) == target.unsqueeze(1)).float().mean()
            return losses.mean()

    @torch.no_grad()
    def scale_grads(self, factor: float = 0.01) -> None:
        """Multiply w.grad and b.grad in place by `factor` (the paper's 0.01); no-op where grad is None.

        Call after backward (and DDP's all-reduce), before gradient clipping and the optimizer step.
        """
        for p in (self.w, self.b):
            if p.grad is not None:
                p.grad.mul_(factor)
