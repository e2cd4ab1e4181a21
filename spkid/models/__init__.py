"""Speaker encoders and their registry (name -> class), as WeSpeaker's model factory.

An encoder is one file in this package defining a `torch.nn.Module` decorated with
`@register_model("name")`. Every module of the package is imported on first lookup (pkgutil), so a
new file is found with no other edit. The smallest example::

    import torch
    from spkid.models import register_model

    @register_model("mean_linear")
    class MeanLinear(torch.nn.Module):
        def __init__(self, feat_dim: int, embed_dim: int):
            super().__init__()
            self.proj = torch.nn.Linear(feat_dim, embed_dim)

        def forward(self, feats):              # (batch, frames, feat_dim)
            return self.proj(feats.mean(1))    # (batch, embed_dim)
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import torch

from spkid.errors import SpkidError

_REGISTRY: dict[str, type[torch.nn.Module]] = {}


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator: make an encoder known as `name` (names are unique)."""
    def wrap(cls: type) -> type:
        other = _REGISTRY.get(name)
        if other is not None and other.__qualname__ != cls.__qualname__:
            raise SpkidError(f"model name '{name}' registered twice ({other.__module__}, {cls.__module__})")
        _REGISTRY[name] = cls
        cls.model_name = name
        return cls
    return wrap


def discover(package: str) -> None:
    """Import every module of `package` so that their registration decorators run."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{package}.{info.name}")


def model_names() -> list[str]:
    discover(__name__)
    return sorted(_REGISTRY)


def model_class(name: str) -> type[torch.nn.Module]:
    discover(__name__)
    if name not in _REGISTRY:
        raise SpkidError(f"unknown model '{name}' (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def build_model(name: str, config: dict) -> torch.nn.Module:
    """Build a registered model from its config dict (the dict stored in checkpoints)."""
    return model_class(name)(**config)
