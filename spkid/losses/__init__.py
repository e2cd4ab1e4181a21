"""Training losses and classification heads, with the head registry (name -> class).

A head is one file in this package defining a `torch.nn.Module` decorated with
`@register_head("name")`, built as `cls(embed_dim=D, num_classes=C, **args)` and mapping
`(embeddings (B, D), labels (B,))` to `(loss, logits)`. Every module of the package is imported on
first lookup, so a new file is found with no other edit. The smallest example::

    import torch
    from spkid.losses import register_head

    @register_head("plain_softmax")
    class PlainSoftmax(torch.nn.Module):
        def __init__(self, embed_dim: int, num_classes: int):
            super().__init__()
            self.fc = torch.nn.Linear(embed_dim, num_classes)

        def forward(self, embeds, labels):
            logits = self.fc(embeds)
            return torch.nn.functional.cross_entropy(logits, labels), logits
"""
from __future__ import annotations

import torch

from spkid.losses.ge2e import GE2ELoss
from spkid.registry import Registry

__all__ = ["GE2ELoss", "register_head", "head_names", "head_class", "build_head"]

_HEADS = Registry("head", __name__, "head_name")
register_head = _HEADS.register  # class decorator: make a classification head known by a name


def head_names() -> list[str]:
    return _HEADS.names()


def head_class(name: str) -> type[torch.nn.Module]:
    return _HEADS.get(name)


def build_head(name: str, embed_dim: int, num_classes: int, **args) -> torch.nn.Module:
    return head_class(name)(embed_dim=int(embed_dim), num_classes=int(num_classes), **args)
