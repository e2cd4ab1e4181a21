"""Encoders exported to ONNX or TorchScript, and exported files loaded back as an Embedder.

Only the network is exported: (batch, frames, feat_dim) features -> (batch, embed_dim) embeddings,
with dynamic batch and frame axes. The front-end config, the window layout ("extraction") and the
model description travel with it as JSON: under the key "spkid" of the ONNX metadata_props, or as
the TorchScript extra file "spkid.json". Loading rebuilds the front-end from that JSON, so
`extract-embeddings --model model.onnx` computes the same features as the checkpoint did, and the
windows of many utterances still go through the network together (spkid.models.windows).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.export")
FORMATS = ("onnx", "torchscript")
META_FORMAT = "spkid-export-1"
META_KEY = "spkid"  # ONNX metadata_props key; TorchScript extra file META_KEY + ".json"
INPUT, OUTPUT = "feats", "embeddings"
ONNX_HINT = "pip install 'spkid[onnx]'"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def feature_dim(model_config: dict, source: str) -> int:
    """The encoder's input feature dim from its config (`feat_dim`, or `input_dim` of the older encoders)."""
    for key in ("feat_dim", "input_dim"):
        if key in model_config:
            return int(model_config[key])
    raise SpkidError(f"{source}: the model config names no feature dim (feat_dim or input_dim)")


def export_model(model_path: str, fmt: str, output: str | os.PathLike, opset: int = 17) -> dict:
    """Export a checkpoint (file or exp dir) to `output`; returns the metadata stored with it."""
    from spkid.atomic import atomic_write_bytes
    from spkid.features.frontend import build_frontend
    from spkid.models import build_model
    from spkid.models.windows import extraction_config
    from spkid.train.checkpoint import load_checkpoint

    if fmt not in FORMATS:
        raise SpkidError(f"export format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    ckpt = load_checkpoint(model_path)
    model = build_model(ckpt["model"]["name"], ckpt["model"]["config"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    extraction = extraction_config(ckpt.get("extraction"))
    meta = {"format": META_FORMAT, "model": ckpt["model"], "features": build_frontend(ckpt["features"]).to_config(),
            "extraction": extraction, "feat_dim": feature_dim(ckpt["model"]["config"], ckpt["path"]),
            "source": ckpt["path"], "source_sha256": file_sha256(ckpt["path"])}
    # batch 1 keeps the exporters from baking the example batch into RNN initial states
    example = torch.randn(1, int(extraction["window_frames"]), meta["feat_dim"])
    text = json.dumps(meta, sort_keys=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about the encoders' shape checks
        data = _onnx_bytes(model, example, text, opset) if fmt == "onnx" else _torchscript_bytes(model, example, text)
    atomic_write_bytes(output, data)
    logger.info("wrote %s (%s, %s from %s)", output, fmt, ckpt["model"]["name"], ckpt["path"])
    return meta


def _onnx_bytes(model: torch.nn.Module, example: torch.Tensor, meta: str, opset: int) -> bytes:
    try:
        import onnx
    except ImportError:
        raise SpkidError(f"ONNX export needs the onnx package: {ONNX_HINT}") from None
    buffer = io.BytesIO()
    torch.onnx.export(model, (example,), buffer, input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                      dynamic_axes={INPUT: {0: "batch", 1: "frames"}, OUTPUT: {0: "batch"}}, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, meta
    return proto.SerializeToString()


def _torchscript_bytes(model: torch.nn.Module, example: torch.Tensor, meta: str) -> bytes:
    traced = torch.jit.trace(model, (example,), check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={f"{META_KEY}.json": meta})
    return buffer.getvalue()


def exported_format(path: str | os.PathLike) -> str | None:
    """"onnx" or "torchscript" when `path` is an exported model file, else None (a checkpoint or exp dir)."""
    path = Path(path)
    if not path.is_file():
        return None
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith(f"extra/{META_KEY}.json") for name in archive.namelist()):
                return "torchscript"
    return None


def _check_meta(text: str | None, path: str) -> dict:
    try:
        meta = json.loads(text) if text else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise SpkidError(f"{path}: not a model exported by `spkid export` (no '{META_KEY}' metadata)")
    return meta


class OnnxEncoder(torch.nn.Module):
    """An onnxruntime session as a module: (batch, frames, dim) tensor -> (batch, D) tensor on CPU.

    One session per process (made on first use), so DataLoader worker processes each get their own;
    it uses as many threads as torch does in that process. `session.run` is thread-safe.
    """

    def __init__(self, path: str, embedding_dim: int, providers: list[str]):
        super().__init__()
        self.path, self.embedding_dim, self.providers = path, embedding_dim, providers
        # embed_frames reads the device and dtype of the first parameter
        self.anchor = torch.nn.Parameter(torch.zeros(0), requires_grad=False)
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()

    def session(self):
        import onnxruntime

        pid = os.getpid()
        with self._lock:
            if pid not in self._sessions:
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = max(1, torch.get_num_threads())
                options.inter_op_num_threads = 1
                self._sessions = {pid: onnxruntime.InferenceSession(self.path, options, providers=self.providers)}
            return self._sessions[pid]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(feats.detach().float().cpu().numpy())
        return torch.from_numpy(self.session().run([OUTPUT], {INPUT: array})[0])


def load_exported_model(path: str | os.PathLike, device: str = "auto") -> tuple[torch.nn.Module, torch.device, dict]:
    """An exported file -> (network, its device, metadata); ONNX runs with onnxruntime (CUDA provider on a
    GPU). spkid.extract.load_exported_embedder adds the front-end."""
    path = str(path)
    fmt = exported_format(path)
    if fmt == "onnx":
        try:
            import onnx
            import onnxruntime
        except ImportError:
            raise SpkidError(f"{path}: running ONNX models needs onnx and onnxruntime: {ONNX_HINT}") from None
        try:
            proto = onnx.load(path, load_external_data=False)
        except Exception as err:  # a corrupt or truncated protobuf
            raise SpkidError(f"{path}: not a readable ONNX model ({type(err).__name__})") from None
        meta = _check_meta({p.key: p.value for p in proto.metadata_props}.get(META_KEY), path)
        want_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        gpu = want_gpu and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        if device.startswith("cuda") and not gpu:
            raise SpkidError(f"{path}: device {device} asked for but onnxruntime has no CUDA provider")
        providers = (["CUDAExecutionProvider"] if gpu else []) + ["CPUExecutionProvider"]
        dim = int(proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value)
        model, dev = OnnxEncoder(path, dim, providers), torch.device("cpu")
    elif fmt == "torchscript":
        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           ("cpu" if device == "auto" else device))
        extra = {f"{META_KEY}.json": ""}
        try:
            model = torch.jit.load(path, map_location=dev, _extra_files=extra)
        except Exception as err:
            raise SpkidError(f"{path}: not a readable TorchScript model ({type(err).__name__})") from None
        meta = _check_meta(extra[f"{META_KEY}.json"], path)
        model.eval()
    else:
        raise SpkidError(f"{path}: not an exported model (.onnx, or TorchScript from `spkid export`)")
    return model, dev, meta
