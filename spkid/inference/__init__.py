"""Opening a model: one door from any model argument to one Embedder type.

Every command taking a model (`--model` of extract-embeddings, verify, enroll, identify, export;
`train --init`) and the Python API (`spkid.load_model`) go through this package:

- sources.py: what an argument names (`describe_model` / `resolve_model` -> ModelSource: a pretrained
  name, an exp dir, a checkpoint, an ONNX or a TorchScript export; by extension, never by content),
  `checkpoint_path` for what needs the weights themselves (export, train --init), `database_source`
  for the model a speaker database names (never TorchScript; fingerprint checked before loading);
- loaders.py: `load_embedder`, the door (checkpoint -> torch.load(weights_only=True); .onnx ->
  onnxruntime; .ts -> torch.jit.load only with trust_torchscript, logged);
- embedder.py: Embedder, a network with its front-end and window layout.
"""
from spkid.inference.embedder import Embedder
from spkid.inference.loaders import PRECISIONS, load_embedder
from spkid.inference.sources import (
    KINDS,
    ModelSource,
    checkpoint_path,
    database_source,
    describe_model,
    fingerprint,
    resolve_model,
)

__all__ = ["Embedder", "KINDS", "ModelSource", "PRECISIONS", "checkpoint_path", "database_source", "describe_model",
           "fingerprint", "load_embedder", "resolve_model"]
