"""Pretrained models by name, imported into a cache dir on first use.

PRETRAINED is the one table of names: a new pretrained model is one entry, naming a function that
writes a spkid exp dir (checkpoints/step-N.pt) from weights already on this machine or in a package.
The cache is $SPKID_CACHE, else $XDG_CACHE_HOME/spkid, else ~/.cache/spkid (models/<name>/).
"""
from __future__ import annotations

import importlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from spkid.errors import SpkidError


@dataclass(frozen=True)
class Pretrained:
    description: str
    importer: str  # "module:function", called as function(output_exp_dir)


PRETRAINED: dict[str, Pretrained] = {
    "resemblyzer-ge2e": Pretrained(
        "Resemblyzer's GE2E 3-layer LSTM, 256-dim d-vectors, 16 kHz (weights from the resemblyzer package)",
        "spkid.bin.import_resemblyzer:import_resemblyzer"),
}


def cache_dir() -> Path:
    if os.environ.get("SPKID_CACHE"):
        return Path(os.environ["SPKID_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spkid"


def import_pretrained(name: str, output: str | os.PathLike) -> Path:
    """Write the pretrained model `name` as an exp dir at `output`; returns it."""
    if name not in PRETRAINED:
        raise SpkidError(f"unknown pretrained model '{name}' (known: {', '.join(sorted(PRETRAINED))})")
    module, function = PRETRAINED[name].importer.split(":")
    getattr(importlib.import_module(module), function)(output)
    return Path(output)


def pretrained_dir(name: str) -> Path:
    """The cached exp dir of a pretrained model, imported on first use (into a temporary dir, then renamed)."""
    final = cache_dir() / "models" / name
    if (final / "checkpoints").is_dir():
        return final
    tmp = final.parent / f".{name}.tmp-{os.getpid()}"
    try:
        import_pretrained(name, tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process got there first
            if not (final / "checkpoints").is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def resolve_model(source: str | os.PathLike) -> str:
    """A checkpoint, exp dir or exported file as given, or the cached exp dir of a pretrained name."""
    if Path(source).exists():
        return str(source)
    if str(source) in PRETRAINED:
        return str(pretrained_dir(str(source)))
    raise SpkidError(f"{source}: no such model file or directory, nor a pretrained model name "
                     f"(known: {', '.join(sorted(PRETRAINED))})")
