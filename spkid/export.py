"""Encoders exported to ONNX or TorchScript (loaded back by spkid.inference).

Only the network is exported: (batch, frames, feat_dim) features -> (batch, embed_dim) embeddings,
with dynamic batch and frame axes. The front-end config, the window layout ("extraction") and the
model description travel with it as JSON: under the key "spkid" of the ONNX metadata_props, or as
the TorchScript extra file "spkid.json". Loading rebuilds the front-end from that JSON, so
`extract-embeddings --model model.onnx` computes the same features as the checkpoint did, and the
windows of many utterances still go through the network together (spkid.models.windows).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import warnings

import torch

from spkid.errors import SpkidError
from spkid.inference.sources import INPUT, META_FORMAT, META_KEY, ONNX_HINT, OUTPUT, file_sha256

logger = logging.getLogger("spkid.export")
FORMATS = ("onnx", "torchscript")
EXAMPLE_FRAMES = 237  # the trace's frame count for scheme "full" (no multiple of any stride or segment)


def feature_dim(model_config: dict, source: str) -> int:
    """The encoder's input feature dim from its config (`feat_dim`, or `input_dim` of the older encoders)."""
    for key in ("feat_dim", "input_dim"):
        if key in model_config:
            return int(model_config[key])
    raise SpkidError(f"{source}: the model config names no feature dim (feat_dim or input_dim)")


def export_model(model_path: str, fmt: str, output: str | os.PathLike, opset: int = 17) -> dict:
    """Export a checkpoint (file or exp dir) to `output`; returns the metadata stored with it."""
    from spkid.atomic import atomic_write_bytes
    from spkid.features.frontend import extraction_frontend
    from spkid.models.windows import extraction_config
    from spkid.train.checkpoint import load_checkpoint, model_from_checkpoint

    if fmt not in FORMATS:
        raise SpkidError(f"export format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    if fmt == "onnx":
        low, high = opset_range()
        if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
            raise SpkidError(f"ONNX opset {opset}: this torch exports opsets {low} to {high} (--opset)")
    ckpt = load_checkpoint(model_path)
    model = model_from_checkpoint(ckpt)
    extraction = extraction_config(ckpt.get("extraction"))
    features = extraction_frontend(ckpt["features"]).to_config()  # dither 0: extraction is deterministic
    meta = {"format": META_FORMAT, "model": ckpt["model"], "features": features,
            "extraction": extraction, "feat_dim": feature_dim(ckpt["model"]["config"], ckpt["path"]),
            "source": ckpt["path"], "source_sha256": file_sha256(ckpt["path"])}
    # batch 1 keeps the exporters from baking the example batch into RNN initial states; the frame axis is
    # dynamic: scheme "full" runs whole utterances (any length), the others windows of window_frames
    example = torch.randn(1, int(extraction.get("window_frames", EXAMPLE_FRAMES)), meta["feat_dim"])
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
    try:
        with quiet_stdout():  # the exporter prints its whole Torch IR graph to stdout when it fails
            torch.onnx.export(model, (example,), buffer, input_names=[INPUT], output_names=[OUTPUT],
                              opset_version=opset, dynamo=False,
                              dynamic_axes={INPUT: {0: "batch", 1: "frames"}, OUTPUT: {0: "batch"}})
    except Exception as err:
        raise SpkidError(f"cannot export this model to ONNX opset {opset}: {first_line(err)}") from None
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, meta
    return proto.SerializeToString()


def _torchscript_bytes(model: torch.nn.Module, example: torch.Tensor, meta: str) -> bytes:
    try:
        traced = torch.jit.trace(model, (example,), check_trace=False)
    except Exception as err:
        raise SpkidError(f"cannot trace this model to TorchScript: {first_line(err)}") from None
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={f"{META_KEY}.json": meta})
    return buffer.getvalue()


def opset_range() -> tuple[int, int]:
    """The ONNX opsets torch.onnx's TorchScript-based exporter (the one used here) writes."""
    from torch.onnx import _constants

    return (int(getattr(_constants, "ONNX_MIN_OPSET", 7)),
            int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(_constants, "ONNX_MAX_OPSET", 17))))


def first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


@contextlib.contextmanager
def quiet_stdout():
    """File descriptor 1 to /dev/null for the block (torch's C++ logging writes there, not to sys.stdout)."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
