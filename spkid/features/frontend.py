"""Front-ends turn a waveform into the features a model was trained on.

A checkpoint stores its front-end as a config dict `{"type": NAME, ...options}`; `build_frontend`
rebuilds it, so extraction from audio uses exactly the training front-end.
"""
from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from spkid.errors import SpkidError

# type name -> "module:Class"
FRONTENDS = {
    "kaldi-fbank": "spkid.features.fbank:FbankFrontend",
    "resemblyzer-mel": "spkid.features.resemblyzer_mel:ResemblyzerFrontend",
}


class Frontend(Protocol):
    sample_rate: int

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """Mono float waveform in [-1, 1] at `sample_rate` -> (frames, dims) float32 features."""

    def to_config(self) -> dict:
        """The dict that `build_frontend` turns back into this front-end (includes "type")."""


def build_frontend(config: dict) -> Frontend:
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in FRONTENDS:
        raise SpkidError(f"unknown front-end type '{kind}' (known: {', '.join(FRONTENDS)})")
    module, cls = FRONTENDS[kind].split(":")
    return getattr(importlib.import_module(module), cls).from_config(config)
