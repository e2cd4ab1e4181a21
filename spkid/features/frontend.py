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


def resolve_kaldi_files(config: dict) -> dict:
    """kaldi-fbank configs may name Kaldi option files instead of repeating them:
    `kaldi_config: conf/fbank.conf` (fbank options; its --resample-to sets the rate) and
    `vad_config: conf/vad.conf` (energy VAD). Keys given explicitly beside them win."""
    from spkid.features.fbank import FbankOptions
    from spkid.features.vad import VadOptions
    from spkid.kaldi.config_file import config_values, dataclass_values_from_config

    config = dict(config)
    fbank_file, vad_file = config.pop("kaldi_config", None), config.pop("vad_config", None)
    base: dict = {}
    if fbank_file:
        base = dataclass_values_from_config(FbankOptions, fbank_file)
        rate = config_values(fbank_file, {"resample_to": "int"}).get("resample_to")
        if rate:
            base["sample_frequency"] = float(rate)
    if vad_file and config.get("vad") is None:
        config["vad"] = {**VadOptions().to_dict(), **dataclass_values_from_config(VadOptions, vad_file)}
    return {**base, **config}


def build_frontend(config: dict) -> Frontend:
    config = dict(config)
    if config.get("type") == "kaldi-fbank":
        config = resolve_kaldi_files(config)
    kind = config.pop("type", None)
    if kind not in FRONTENDS:
        raise SpkidError(f"unknown front-end type '{kind}' (known: {', '.join(FRONTENDS)})")
    module, cls = FRONTENDS[kind].split(":")
    return getattr(importlib.import_module(module), cls).from_config(config)
