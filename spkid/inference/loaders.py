"""load_embedder: the one door from any model argument to an Embedder (as WeSpeaker's cli/speaker.py load_model).

A checkpoint (or an exp dir's newest, or a pretrained import's) is rebuilt from its config and weights
(`torch.load(weights_only=True)`); an ONNX export runs with onnxruntime; a TorchScript export runs its
own code and is loaded only with `trust_torchscript` (logged as a warning). Front-end and windows come
from the checkpoint or from the metadata `spkid export` stored in the file.
"""
from __future__ import annotations

import logging
import os
import threading

import numpy as np
import torch

from spkid.errors import SpkidError
from spkid.inference.embedder import Embedder
from spkid.inference.sources import (
    INPUT,
    OUTPUT,
    TRUST_OPTION,
    ModelSource,
    exported_metadata,
    file_sha256,
    refuse_torchscript_archive,
    resolve_model,
)

logger = logging.getLogger("spkid.inference")
PRECISIONS = ("float32", "bfloat16")


def load_embedder(model: str | os.PathLike | ModelSource, device: str = "auto", precision: str = "float32", *,
                  trust_torchscript: bool = False) -> Embedder:
    """Pretrained name, exp dir (newest checkpoint), checkpoint file, .onnx or .ts/.torchscript export ->
    Embedder on `device`. `precision` "bfloat16" runs a checkpoint's network under autocast (fast where the
    CPU has AVX512-BF16/AMX, or on a GPU). A TorchScript file is refused unless `trust_torchscript`."""
    from spkid.devices import parse_device

    if precision not in PRECISIONS:
        raise SpkidError(f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    source = resolve_model(model)
    dev = parse_device(device)
    if source.exported and precision != "float32":
        raise SpkidError(f"{source.path}: an exported model runs in float32 only (no --precision {precision})")
    if source.kind == "onnx":
        return _onnx_embedder(source, dev)
    if source.kind == "torchscript":
        if not trust_torchscript:
            raise SpkidError(f"{source.path}: a TorchScript file runs its own code when loaded; if you trust it, "
                             f"pass {TRUST_OPTION}")
        return _torchscript_embedder(source, dev)
    return _checkpoint_embedder(source, dev, precision)


def _checkpoint_embedder(source: ModelSource, dev: torch.device, precision: str) -> Embedder:
    from spkid.features.frontend import extraction_frontend
    from spkid.models.windows import extraction_config
    from spkid.train.checkpoint import load_checkpoint, model_from_checkpoint

    refuse_torchscript_archive(source.path)
    ckpt = load_checkpoint(source.path)
    model = model_from_checkpoint(ckpt)
    model.to(dev).eval()
    frontend, extraction = extraction_frontend(ckpt["features"]), extraction_config(ckpt.get("extraction"))
    if precision == "bfloat16":
        precision = usable_precision(model, int(frontend.dim), extraction, dev, ckpt["path"])
    return Embedder(model, frontend, extraction, dev, ckpt["path"], precision, file_sha256(ckpt["path"]), source)


def usable_precision(model: torch.nn.Module, feat_dim: int, extraction: dict, dev: torch.device, path) -> str:
    """"bfloat16" where the network runs under bfloat16 autocast here, else "float32" with a warning: probed
    once, before any work, on a tiny input (oneDNN has no bfloat16 LSTM on AVX2-only CPUs, for one); on a CPU
    without AVX512-BF16/AMX it runs emulated, slower than float32, which is logged too."""
    from spkid.devices import cpu_has_bfloat16

    frames = int(extraction.get("window_frames", 200))
    try:
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16):
            model(torch.zeros(1, frames, feat_dim, device=dev))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        logger.warning("%s: bfloat16 cannot run this model on %s (%s); using float32", path, dev, reason)
        return "float32"
    if dev.type == "cpu" and cpu_has_bfloat16() is False:
        logger.warning("%s: this CPU has no AVX512-BF16/AMX: bfloat16 is emulated, slower than float32", path)
    return "bfloat16"


def _exported_embedder(source: ModelSource, model: torch.nn.Module, dev: torch.device, meta: dict) -> Embedder:
    from spkid.features.frontend import extraction_frontend
    from spkid.models.windows import extraction_config

    try:
        frontend, extraction = extraction_frontend(meta["features"]), extraction_config(meta["extraction"])
        dim = int(frontend.dim)
    except (SpkidError, TypeError, ValueError, KeyError, AttributeError) as err:
        raise SpkidError(f"{source.path}: its spkid metadata has no usable front-end or extraction ({err})") from None
    # run once now, on a tiny input: a file the runtime refuses (external data outside the model's folder, a graph
    # for other features than the metadata's) is one line at load, not a traceback in every worker
    frames = int(extraction.get("window_frames", 200))
    try:
        with torch.inference_mode():
            out = model(torch.zeros(1, frames, dim, device=dev))
        ok = isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == 1
    except Exception as err:
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
        raise SpkidError(f"{source.path}: cannot run it on {dim}-dim features ({lines[0][:300]})") from None
    if not ok:
        raise SpkidError(f"{source.path}: gives {tuple(getattr(out, 'shape', ()))} for one utterance, not (1, dim)")
    return Embedder(model, frontend, extraction, dev, str(source.path), "float32", str(meta["source_sha256"]), source)


def _torchscript_embedder(source: ModelSource, dev: torch.device) -> Embedder:
    meta = exported_metadata(source)  # read as data first: a file that is no spkid export is never run
    logger.warning("%s: loading TorchScript, which runs the code inside the file (--trust-torchscript)", source.path)
    try:
        model = torch.jit.load(str(source.path), map_location=dev)
    except Exception as err:
        raise SpkidError(f"{source.path}: not a readable TorchScript model ({type(err).__name__})") from None
    model.eval()
    return _exported_embedder(source, model, dev, meta)


def _onnx_embedder(source: ModelSource, dev: torch.device) -> Embedder:
    """onnxruntime on the CPU, or with its CUDA provider for a CUDA device; inputs and outputs on the CPU."""
    import onnx
    import onnxruntime

    meta = exported_metadata(source)
    path = str(source.path)
    gpu = dev.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if dev.type == "cuda" and not gpu:
        raise SpkidError(f"{path}: device {dev} asked for but onnxruntime has no CUDA provider")
    providers = (["CUDAExecutionProvider"] if gpu else []) + ["CPUExecutionProvider"]
    proto = onnx.load(path, load_external_data=False)
    try:
        dim = int(proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value)
    except (IndexError, ValueError):
        raise SpkidError(f"{path}: its graph has no (batch, dim) output '{OUTPUT}'") from None
    return _exported_embedder(source, OnnxEncoder(path, dim, providers), torch.device("cpu"), meta)


class OnnxEncoder(torch.nn.Module):
    """An onnxruntime session as a module: (batch, frames, dim) tensor -> (batch, D) tensor on CPU.

    One session per process (made on first use), so DataLoader worker processes each get their own;
    it uses as many threads as torch does in that process. `session.run` is thread-safe.
    """

    def __init__(self, path: str, embedding_dim: int, providers: list[str]):
        super().__init__()
        self.path, self.embedding_dim, self.providers = path, embedding_dim, providers
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
