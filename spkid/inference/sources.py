"""What a model argument names: a pretrained name, an exp dir, a checkpoint, an ONNX or a TorchScript export.

The kind is decided by what the argument is and by the file's extension, never by sniffing its
content: `.onnx` is an ONNX export (data only, run by onnxruntime), `.ts`/`.torchscript` a TorchScript
export (code: loaded only on an explicit opt-in), any other file a spkid checkpoint (loaded with
`torch.load(weights_only=True)`), a folder an exp dir (its newest checkpoint), and a name that is no
file but a key of spkid.pretrained.PRETRAINED a pretrained model (imported into the cache on first use).
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from spkid.errors import SpkidError

KINDS = ("pretrained", "exp-dir", "checkpoint", "onnx", "torchscript")
ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".ts", ".torchscript")  # what `spkid export --format torchscript` is named
LABELS = {"pretrained": "a pretrained model name", "exp-dir": "an exp dir", "checkpoint": "a checkpoint",
          "onnx": "an ONNX export", "torchscript": "a TorchScript export"}
META_FORMAT = "spkid-export-1"  # what `spkid export` stores in the file, read back by the loaders
META_KEY = "spkid"  # ONNX metadata_props key; TorchScript extra file META_KEY + ".json"
INPUT, OUTPUT = "feats", "embeddings"  # the exported graph's input and output names
ONNX_HINT = "pip install 'spkid[onnx]'"
TRUST_OPTION = "--trust-torchscript (Python: trust_torchscript=True)"
TRUST_HINT = f"pass {TRUST_OPTION} and name it .ts to run it"


@dataclass(frozen=True)
class ModelSource:
    """A model argument, what it is (`kind`, one of KINDS) and the file holding the model."""

    given: str  # the argument as given (what a speaker database records)
    kind: str
    path: Path | None  # the checkpoint (an exp dir's newest), .onnx or .ts file; None: a name not imported yet
    root: Path  # where its calibration is looked for: the exp dir, else the file

    @property
    def exported(self) -> bool:
        return self.kind in ("onnx", "torchscript")

    @property
    def label(self) -> str:
        return LABELS[self.kind]


def file_kind(path: str | os.PathLike) -> str:
    """The kind of an existing file, by its extension: onnx, torchscript or checkpoint."""
    suffix = Path(path).suffix.lower()
    return "onnx" if suffix in ONNX_SUFFIXES else "torchscript" if suffix in TORCHSCRIPT_SUFFIXES else "checkpoint"


def describe_model(model: str | os.PathLike) -> ModelSource:
    """What `model` names, without importing or loading anything (an exp dir's newest checkpoint is found)."""
    from spkid.pretrained import PRETRAINED, imported_dir
    from spkid.train.checkpoint import find_latest_checkpoint

    if not isinstance(model, (str, os.PathLike)) or not str(model):
        raise SpkidError(f"a model is a path or a pretrained name, not {model!r}")
    given, path = str(model), Path(model)
    if path.is_dir():
        return ModelSource(given, "exp-dir", find_latest_checkpoint(path), path)
    if path.exists():
        return ModelSource(given, file_kind(path), path, path)
    if given in PRETRAINED:
        root = imported_dir(given)
        return ModelSource(given, "pretrained", find_latest_checkpoint(root), root)
    raise SpkidError(f"{given}: no such model file or directory, nor a pretrained model name "
                     f"(known: {', '.join(sorted(PRETRAINED))})")


def resolve_model(model: str | os.PathLike | ModelSource) -> ModelSource:
    """describe_model, with a pretrained name imported into the cache and the file to load found."""
    from spkid.pretrained import pretrained_dir
    from spkid.train.checkpoint import find_latest_checkpoint

    source = model if isinstance(model, ModelSource) else describe_model(model)
    if source.kind == "pretrained":  # imported now when not yet (with its shipped calibration)
        root = pretrained_dir(source.given)
        return ModelSource(source.given, "pretrained", find_latest_checkpoint(root), root)
    if source.path is not None:
        return source
    raise SpkidError(f"{source.given}: no checkpoint found in {source.root / 'checkpoints'}")


def refuse_torchscript_archive(path: Path, purpose: str | None = None) -> None:
    """A one-line error for a TorchScript archive where a checkpoint is expected (a `.pt` from anywhere)."""
    from spkid.train.checkpoint import is_torchscript_archive

    if is_torchscript_archive(path):
        hint = f"{purpose} needs a spkid checkpoint" if purpose else TRUST_HINT
        raise SpkidError(f"{path} is a TorchScript archive, not a checkpoint (spkid never runs it as one); {hint}")


def checkpoint_path(model: str | os.PathLike, purpose: str) -> Path:
    """The checkpoint file a model argument stands for, for what needs the weights themselves (`purpose`:
    export, train --init ...): an exported file or a TorchScript archive is a one-line error."""
    source = resolve_model(model)
    if source.exported:
        done = "; it is already exported: use it as --model where a model is taken" if purpose == "export" else ""
        raise SpkidError(f"{source.given} is {source.label}, not a checkpoint: {purpose} needs a spkid checkpoint, "
                         f"an exp dir or a pretrained name (an export holds the network only){done}")
    refuse_torchscript_archive(source.path, purpose)
    return source.path


def exported_metadata(source: ModelSource) -> dict:
    """The JSON `spkid export` stored in an ONNX or TorchScript file, read as data (nothing is run)."""

    path = str(source.path)
    text = None
    if source.kind == "onnx":
        try:
            import onnx
        except ImportError:
            raise SpkidError(f"{path}: running ONNX models needs onnx and onnxruntime: {ONNX_HINT}") from None
        try:
            proto = onnx.load(path, load_external_data=False)
        except Exception as err:  # a corrupt or truncated protobuf
            raise SpkidError(f"{path}: not a readable ONNX model ({type(err).__name__})") from None
        text = {p.key: p.value for p in proto.metadata_props}.get(META_KEY)
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.partition("/")[2] == f"extra/{META_KEY}.json"]
                text = archive.read(names[0]).decode("utf-8") if names else None
        except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as err:
            raise SpkidError(f"{path}: not a readable TorchScript model ({type(err).__name__})") from None
    try:
        meta = json.loads(text) if text else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise SpkidError(f"{path}: not a model exported by `spkid export` (no '{META_KEY}' metadata)")
    for key in ("features", "extraction", "source_sha256"):
        if key not in meta:
            raise SpkidError(f"{path}: the '{META_KEY}' metadata has no '{key}'")
    return meta


def fingerprint(source: ModelSource) -> str:
    """sha256 of the checkpoint a model comes from (an export records its source's), read without loading it."""

    source = resolve_model(source)
    if source.exported:
        return str(exported_metadata(source)["source_sha256"])
    return file_sha256(source.path)


def database_source(info: dict, named_by: str | os.PathLike) -> ModelSource:
    """The model a speaker database names (`info`: its model.json), checked before anything is loaded: a
    checkpoint, exp dir, ONNX file or pretrained name whose fingerprint is the one enrolled with. A database
    never makes spkid run TorchScript: such a model is given by the caller (--model, model=)."""
    name, want = info.get("model"), info.get("model_sha256")
    if not isinstance(name, str) or not name:
        raise SpkidError(f"{named_by}: names no model ('model' is missing or not a string)")
    if not isinstance(want, str):
        raise SpkidError(f"{named_by}: has no model_sha256 to check its model {name} against")
    from spkid.train.checkpoint import is_torchscript_archive

    source = resolve_model(name)
    if source.kind == "torchscript" or (not source.exported and is_torchscript_archive(source.path)):
        how = (f"--model {name} --trust-torchscript" if source.kind == "torchscript" else
               "name it .ts and pass --model FILE.ts --trust-torchscript")
        raise SpkidError(f"{named_by} names {name}, a TorchScript file: a speaker database never makes spkid run "
                         f"one (it runs code); give the model yourself if you trust it ({how})")
    found = fingerprint(source)
    if found != want:
        raise SpkidError(f"{named_by}: its model {name} has changed since enrollment (sha256 {found[:12]}..., "
                         f"enrolled with {want[:12]}...); enroll again or give the model it was enrolled with")
    return source


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes (a model's fingerprint in exports, calibrations and databases)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
