"""Self-describing checkpoints: weights + model config + feature config + training state.

Written to a temporary file in the same folder and renamed into place, so a crash never leaves a
partial checkpoint under the final name; loaded with `torch.load(weights_only=True)` (no pickled code).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from spkid.atomic import commit, discard, open_temp, sweep_stale
from spkid.errors import SpkidError

FORMAT = "spkid-checkpoint"
VERSION = 1
logger = logging.getLogger("spkid.train")
_STEP_RE = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def save_checkpoint(path: str | os.PathLike, *, model_name: str, model_config: dict, feature_config: dict,
                    state_dict: dict, step: int = 0, extra: dict[str, Any] | None = None) -> Path:
    """Atomically write a checkpoint; `extra` holds optimizer/scheduler/train-config state."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": {"name": model_name, "config": dict(model_config)},
        "features": dict(feature_config),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "step": int(step),
        **(extra or {}),
    }
    handle, tmp = open_temp(path, "wb")
    try:
        with handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        commit(tmp, path)
    except BaseException as err:
        discard(tmp)
        interrupt = _interrupt(err)
        if interrupt is not None and interrupt is not err:  # torch's zip writer fails in its cleanup (enforce fail)
            logger.warning("interrupted while writing %s: not written (the checkpoints before it are intact)", path)
            raise interrupt from None
        if interrupt is None and not isinstance(err, SpkidError):
            raise SpkidError(f"{path}: cannot write the checkpoint ({_write_error(err)})") from None
        raise
    sweep_stale(path.parent)  # temporaries of any checkpoint whose writer was killed (kill -9)
    return path


def _interrupt(err: BaseException) -> BaseException | None:
    """The Ctrl-C (KeyboardInterrupt) or SIGTERM (SystemExit) behind an exception, if any."""
    seen = err
    while seen is not None:
        if isinstance(seen, (KeyboardInterrupt, SystemExit)):
            return seen
        seen = seen.__context__
    return None


def _write_error(err: BaseException) -> str:
    """Why a write failed: the OSError behind it (a full disk: torch reports it as an 'enforce fail'), else
    the first line of what was raised."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError):
            return seen.strerror or type(seen).__name__
        seen = seen.__context__
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def find_latest_checkpoint(exp_dir: str | os.PathLike) -> Path | None:
    """The newest complete `step-N.pt` in EXPDIR/checkpoints (temporary files are ignored)."""
    folder = Path(exp_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_RE.match(p.name))]
    return max(steps)[1] if steps else None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or an exp dir meaning its newest checkpoint."""
    path = Path(path)
    if path.is_dir():
        latest = find_latest_checkpoint(path)
        if latest is None:
            raise SpkidError(f"{path}: no checkpoint found in {path / 'checkpoints'}")
        return latest
    if not path.exists():
        raise SpkidError(f"{path}: no such checkpoint")
    return path


def load_checkpoint(path: str | os.PathLike, expect_model: str | tuple[str, ...] | None = None) -> dict:
    """Load and check a checkpoint (file or exp dir). Errors are one line naming the file."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt, or holding pickled objects (refused by weights_only)
        text = str(err)
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:  # never repeat torch's advice to load with weights_only=False
            raise SpkidError(f"{path}: refused: the checkpoint contains executable (pickled) objects such as "
                             f"{found.group(1)}, which spkid never loads; only tensors and plain data are "
                             "accepted") from None
        unpickler = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        reason = (unpickler.group(1).strip() if unpickler else
                  text.strip().splitlines()[0] if text.strip() else type(err).__name__)
        raise SpkidError(f"{path}: not a readable checkpoint (corrupt or truncated?): {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SpkidError(f"{path}: not a spkid checkpoint")
    if payload.get("version", 0) > VERSION:
        raise SpkidError(f"{path}: checkpoint version {payload['version']} is newer than this spkid")
    name = payload["model"]["name"]
    if expect_model is not None:
        allowed = (expect_model,) if isinstance(expect_model, str) else tuple(expect_model)
        if name not in allowed:
            raise SpkidError(f"{path}: checkpoint holds a '{name}' model, expected {' or '.join(allowed)}")
    _check_model_size(payload, path)
    payload["path"] = str(path)
    return payload


def _check_model_size(payload: dict, path: Path) -> None:
    """A small file whose config asks for a huge model (hidden_size 1000000) is refused here, naming it,
    before anything is allocated (spkid.models.MAX_PARAMETERS, counted on the meta device). Other problems
    with the model's arguments are left to whoever builds it."""
    from spkid.models import check_size, count_parameters, model_class, model_config

    model = payload.get("model")
    try:
        name = model["name"]
        config = model_config(name, model["config"])
        with torch.device("meta"):
            parameters = count_parameters(model_class(name)(**config))
    except Exception:  # noqa: BLE001 -- not this check's business
        return
    try:
        check_size(name, config, parameters)
    except SpkidError as err:
        raise SpkidError(f"{path}: {err}") from None
