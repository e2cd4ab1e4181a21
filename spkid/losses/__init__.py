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

from typing import Callable

import torch

from spkid.errors import SpkidError
from spkid.losses.ge2e import GE2ELoss

__all__ = ["GE2ELoss", "register_head", "head_names", "head_class", "build_head"]

_HEADS: dict[str, type[torch.nn.Module]] = {}


def register_head(name: str) -> Callable[[type], type]:
    """Class decorator: make a classification head known as `name`."""
    def wrap(cls: type) -> type:
        other = _HEADS.get(name)
        if other is not None and other.__qualname__ != cls.__qualname__:
            raise SpkidError(f"head name '{name}' registered twice ({other.__module__}, {cls.__module__})")
        _HEADS[name] = cls
        cls.head_name = name
        return cls
    return wrap


def _discover() -> None:
    from spkid.models import discover
    discover(__name__)


def head_names() -> list[str]:
    _discover()
    return sorted(_HEADS)


def head_class(name: str) -> type[torch.nn.Module]:
    _discover()
    if name not in _HEADS:
        raise SpkidError(f"unknown head '{name}' (known: {', '.join(sorted(_HEADS)) or 'none'})")
    return _HEADS[name]


def build_head(name: str, embed_dim: int, num_classes: int, **args) -> torch.nn.Module:
    return head_class(name)(embed_dim=int(embed_dim), num_classes=int(num_classes), **args)
