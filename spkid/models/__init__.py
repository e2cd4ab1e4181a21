"""Speaker-encoder models and their registry (name -> class), as WeSpeaker's model factory."""
from __future__ import annotations

from typing import Callable

import torch

from spkid.errors import SpkidError

_REGISTRY: dict[str, type[torch.nn.Module]] = {}


def register_model(name: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        _REGISTRY[name] = cls
        cls.model_name = name
        return cls
    return wrap


def _load_builtin_models() -> None:
    import importlib
    for module in ("ge2e", "deepspeaker"):
        try:
            importlib.import_module(f"spkid.models.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"spkid.models.{module}":
                raise


def model_names() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def build_model(name: str, config: dict) -> torch.nn.Module:
    """Build a registered model from its config dict (the dict stored in checkpoints)."""
    _load_builtin_models()
    if name not in _REGISTRY:
        raise SpkidError(f"unknown model '{name}' (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name](**config)
