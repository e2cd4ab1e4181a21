"""Old training-config shapes, translated once into the current one with a logged deprecation note.

- `stage: softmax | freeze | triplet` (train-deepspeaker) -> `task: classification` (freeze:
  `classification.freeze_encoder: true`) or `task: triplet`; the other stage's section is dropped
- `softmax: {...}` -> `classification: {...}`
- `model: {name: X, X: {...}, Y: {...}}` (a section per model) -> `model: {name: X, args: {X's section}}`
- `model: {name: ge2e, hidden_size: ..}` (flat constructor options) -> `model: {name: ge2e, args: {..}}`
- `input_dim` / `embedding_dim` -> `feat_dim` / `embed_dim` (the encoder contract)
- a config without `task:` that has GE2E's `loss:` section -> `task: ge2e`

The same holds for `--opts` keys (`--opts model.gru.hidden_size 48`, `softmax.batch_size 32`, `stage freeze`).
"""
from __future__ import annotations

import copy
import logging
from typing import Any

from spkid.errors import SpkidError
from spkid.models import LEGACY_ARGS

logger = logging.getLogger("spkid.train")

STAGES = {"softmax": ("classification", False), "freeze": ("classification", True), "triplet": ("triplet", None)}
_warned: set[str] = set()


def _note(origin: str, what: str) -> None:
    text = f"{origin}: {what} (an old config shape, deprecated; see `spkid train --help`)"
    if text not in _warned:
        _warned.add(text)
        logger.warning(text)


def _stage(stage: Any, origin: str) -> tuple[str, bool | None]:
    if stage not in STAGES:
        raise SpkidError(f"{origin}: stage must be one of {', '.join(STAGES)}, not '{stage}'")
    return STAGES[stage]


def _renamed(args: dict) -> dict:
    return {LEGACY_ARGS.get(k, k): v for k, v in args.items()}


def translate_doc(doc: dict, origin: str) -> dict:
    """One config layer (a YAML file) in the current shape."""
    doc = copy.deepcopy(doc)
    if "stage" in doc:
        task, frozen = _stage(doc.pop("stage"), origin)
        doc.setdefault("task", task)
        if "softmax" in doc:
            doc["classification"] = {**doc.pop("softmax"), **doc.get("classification", {})}
        if task == "triplet":
            doc.pop("classification", None)
        else:
            doc.pop("triplet", None)
            doc.setdefault("classification", {})["freeze_encoder"] = frozen
        _note(origin, f"`stage:` read as `task: {task}`")
    if "softmax" in doc:
        doc["classification"] = {**doc.pop("softmax"), **doc.get("classification", {})}
        _note(origin, "`softmax:` read as `classification:`")
    model = doc.get("model")
    if isinstance(model, dict) and set(model) - {"name", "args", "module"}:
        name, args = model.get("name"), _renamed(model.get("args") or {})
        sections = sorted(k for k, v in model.items() if isinstance(v, dict) and k != "args")
        if sections and name is None:
            raise SpkidError(f"{origin}: model sections {', '.join(sections)} need model.name; write "
                             "`model: {name: NAME, args: {...}}`")
        for key, value in model.items():
            if key in ("name", "args", "module"):
                continue
            if isinstance(value, dict):
                if key == name:
                    args.update(_renamed(value))
            else:
                args[LEGACY_ARGS.get(key, key)] = value
        doc["model"] = {k: v for k, v in (("name", name), ("args", args)) if v is not None}
        _note(origin, f"model options read as `model: {{name: {name}, args: {args}}}`")
    elif isinstance(model, dict) and isinstance(model.get("args"), dict):
        model["args"] = _renamed(model["args"])
    if "task" not in doc and isinstance(doc.get("loss"), dict):
        doc["task"] = "ge2e"
    return doc


def opts_task(pairs: list[tuple[str, Any]]) -> str | None:
    """The task `--opts` choose (`task X`, or the old `stage X`), if any."""
    task = None
    for key, value in pairs:
        if key == "task":
            task = value
        elif key == "stage":
            task = _stage(value, "--opts")[0]
    return task


def translate_opt(key: str, value: Any, config: dict) -> list[tuple[str, Any]]:
    """One `--opts` pair -> the pairs of the current shape (none when it sets another model's option)."""
    if key == "stage":
        task, frozen = _stage(value, "--opts")
        _note("--opts", f"`stage {value}` read as `task {task}`")
        return [("task", task)] + ([("classification.freeze_encoder", frozen)] if frozen is not None else [])
    if key.startswith("softmax."):
        _note("--opts", f"`{key}` read as `classification.{key[8:]}`")
        return [("classification." + key[8:], value)]
    parts = key.split(".")
    if parts[0] != "model" or len(parts) < 2 or parts[1] in ("name", "args"):
        return [(key, value)]
    if len(parts) == 2:
        new = f"model.args.{LEGACY_ARGS.get(parts[1], parts[1])}"
    elif parts[1] == config["model"]["name"]:
        new = ".".join(["model.args", LEGACY_ARGS.get(parts[2], parts[2]), *parts[3:]])
    else:
        _note("--opts", f"`{key}` ignored: model.name is '{config['model']['name']}'")
        return []
    _note("--opts", f"`{key}` read as `{new}`")
    return [(new, value)]
