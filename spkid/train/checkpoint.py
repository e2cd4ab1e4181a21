"""Self-describing checkpoints: weights + model config + feature config + training state.

Written to a temporary file in the same folder and renamed into place, so a crash never leaves a
partial checkpoint under the final name; loaded with `torch.load(weights_only=True)` (no pickled code).
"""
from __future__ import annotations

import logging
import os
import re
import warnings
import zipfile
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


def check_weights(state: dict, where: str | os.PathLike) -> dict:
    """`state` (name -> tensor) itself, refused in one line naming `where` and the tensor when it holds NaN or
    infinite values: such weights give NaN embeddings for every input (import, average, load)."""
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and (tensor.is_floating_point() or tensor.is_complex()) \
                and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise SpkidError(f"{where}: tensor '{name}' has {bad} non-finite (NaN or infinite) value(s) of "
                             f"{tensor.numel()}; refusing these weights")
    return state


def _in_chain(err: BaseException, types: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of `types` in `err`'s chain (itself, then what it was raised while handling)."""
    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, types):
        seen = seen.__context__
    return seen


def _interrupt(err: BaseException) -> BaseException | None:
    """The Ctrl-C (KeyboardInterrupt) or SIGTERM (SystemExit) behind an exception, if any."""
    return _in_chain(err, (KeyboardInterrupt, SystemExit))


def _write_error(err: BaseException) -> str:
    """Why a write failed: the OSError behind it (a full disk: torch reports it as an 'enforce fail'), else
    the first line of what was raised."""
    found = _in_chain(err, (OSError,))
    if found is not None:
        return found.strerror or type(found).__name__
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


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint", unreadable: str | None = None) -> Any:
    """`torch.load(path, weights_only=True)` with one-line errors naming the file (`what` it should be; the
    words for a file torch cannot read): never torch's advice to load with weights_only=False, nor its
    UserWarnings (pickle protocol, "looks like a TorchScript archive")."""

    if is_torchscript_archive(path):
        raise SpkidError(f"{path} is a TorchScript archive, not a {what} (spkid never runs it as one; a "
                         "TorchScript export is named .ts and loaded with --trust-torchscript)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt, or holding pickled objects (refused by weights_only)
        raise SpkidError(f"{path}: {_refusal(err, path, what, unreadable)}") from None


def _refusal(err: Exception, path: str | os.PathLike, what: str, unreadable: str | None) -> str:
    text = str(err)
    found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", text)
    if found:
        return (f"refused: the {what} contains executable (pickled) objects such as {found.group(1)}, which spkid "
                "never loads; only tensors and plain data are accepted")
    if _is_onnx(path):
        return f"an ONNX model, not a {what} (name it .onnx: spkid picks the loader by extension)"
    unpickler = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    reason = unpickler.group(1).strip() if unpickler else text.strip().splitlines()[0] if text.strip() else ""
    if not reason or "weights_only" in reason or "torch.load" in reason:
        reason = type(err).__name__
    return f"{unreadable or f'not a readable {what} (corrupt or truncated?)'}: {reason}"


def _is_onnx(path: str | os.PathLike) -> bool:
    """Whether a file torch could not read is an ONNX model (to say so; only on the error path)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(1) != b"\x08":  # an ONNX protobuf opens with its ir_version field
                return False
        import onnx

        return len(onnx.load(str(path), load_external_data=False).graph.node) > 0
    except Exception:  # no onnx package, or not a protobuf
        return False


def load_checkpoint(path: str | os.PathLike, expect_model: str | tuple[str, ...] | None = None) -> dict:
    """Load and check a checkpoint (file or exp dir). Errors are one line naming the file."""
    path = resolve_checkpoint(path)
    payload = read_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SpkidError(f"{path}: not a spkid checkpoint")
    if not isinstance(payload.get("version", 0), int) or payload.get("version", 0) > VERSION:
        raise SpkidError(f"{path}: checkpoint version {payload['version']} is newer than this spkid")
    check_layout(payload, path)
    name = payload["model"]["name"]
    if expect_model is not None:
        allowed = (expect_model,) if isinstance(expect_model, str) else tuple(expect_model)
        if name not in allowed:
            raise SpkidError(f"{path}: checkpoint holds a '{name}' model, expected {' or '.join(allowed)}")
    _check_model_size(payload, path)
    check_weights(payload["state_dict"], path)
    payload["path"] = str(path)
    return payload


def check_layout(payload: dict, path: str | os.PathLike) -> None:
    """The keys every reader of a checkpoint relies on, with their types (a tampered file: one line)."""
    model = payload.get("model")
    if not (isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("config"), dict)):
        raise SpkidError(f"{path}: a malformed spkid checkpoint: 'model' must be {{name: str, config: dict}}")
    for key, kind in (("features", dict), ("state_dict", dict), ("step", int)):
        if key == "step" and key not in payload:
            continue
        if not isinstance(payload.get(key), kind) or isinstance(payload.get(key), bool):
            raise SpkidError(f"{path}: a malformed spkid checkpoint: '{key}' is "
                             f"{'missing' if key not in payload else type(payload[key]).__name__}, "
                             f"not a {kind.__name__}")
    bad = next((k for k, v in payload["state_dict"].items() if not isinstance(k, str)
                or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise SpkidError(f"{path}: a malformed spkid checkpoint: state_dict entry {bad!r} is not a named tensor")
    if payload.get("extraction") is not None and not isinstance(payload["extraction"], dict):
        raise SpkidError(f"{path}: a malformed spkid checkpoint: 'extraction' is "
                         f"{type(payload['extraction']).__name__}, not a dict")


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


def model_from_checkpoint(ckpt: dict) -> torch.nn.Module:
    """The network of a loaded checkpoint (spkid.train.checkpoint.load_checkpoint) with its weights, in eval
    mode; a config or weights that do not fit (a tampered file) are one line naming the file."""
    from spkid.models import build_model

    name = ckpt["model"]["name"]
    try:
        model = build_model(name, ckpt["model"]["config"])
    except (SpkidError, RuntimeError, TypeError, ValueError) as err:  # a config the model's constructor refuses
        raise SpkidError(f"{ckpt['path']}: {str(err).strip().splitlines()[0] if str(err).strip() else err!r}") \
            from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, ValueError) as err:
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
        detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
        raise SpkidError(f"{ckpt['path']}: the weights do not fit its '{name}' model ({detail})") from None
    return model.eval()


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """Whether a file is a TorchScript zip (only to say so when it is refused; never to pick a loader)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(name.partition("/")[2] == "constants.pkl" or name.partition("/")[2].startswith("code/")
                       for name in archive.namelist())
    except OSError:
        return False
