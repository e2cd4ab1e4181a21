"""Training tasks plugged into the one Trainer (`spkid train`, config key `task:`).

- `classification`: an encoder + a classification head from the head registry (spkid.losses: softmax, and
  margin heads), speaker labels of random crops; Deep Speaker's softmax pre-training and its frozen-encoder
  stage are configurations of it (spkid.tasks.classification)
- `ge2e`: N speakers x M utterances, the GE2E loss (spkid.tasks.ge2e)
- `triplet`: cosine triplet loss, random or hard triplets (spkid.tasks.triplet)

A task module defines DEFAULTS (its complete built-in config), RANGES (allowed values of its own keys),
VALID_DATA_ALONE (whether --valid-data without --valid-trials means something) and
`build_task(config, data_dir, rank, world_size, valid_data=None, valid_trials=None) -> Task`. The helpers
below are what the tasks share: data, encoder, and the common config sections.
"""
from __future__ import annotations

import copy
import importlib
from pathlib import Path
from types import ModuleType

from spkid.data.augmentation import augment_defaults
from spkid.errors import SpkidError

TASKS = {"classification": "spkid.tasks.classification", "ge2e": "spkid.tasks.ge2e",
         "triplet": "spkid.tasks.triplet"}

COMMON: dict = {
    "optim": {"name": "adam", "final_lr": None, "lr": 1e-3, "weight_decay": 0.0, "momentum": 0.9, "grad_clip": 0.0,
              "decay": "cosine", "warmup_steps": 0},
    "train": {"max_steps": 20000, "log_every": 50, "checkpoint_every": 1000, "keep_checkpoints": 5,
              "valid_every": 1000, "seed": 1234, "amp": False, "stall_warn_seconds": 5.0},
    "extraction": {"scheme": "overlap", "window_frames": 160, "overlap": 0.5, "min_coverage": 0.75},
    "augment": augment_defaults(),  # training crops only, never extraction (spkid.data.augmentation)
}


def common(**sections) -> dict:
    """COMMON with some of its keys changed, e.g. common(optim={"lr": 1e-4})."""
    out = copy.deepcopy(COMMON)
    for name, values in sections.items():
        out[name].update(values)
    return out


def task_module(name: str) -> ModuleType:
    if name not in TASKS:
        raise SpkidError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    return importlib.import_module(TASKS[name])


def stage_label(config: dict) -> str:
    """What an exp dir was trained for: the task, the classification head's name, or "freeze" (a head on
    a frozen encoder). Resuming a run of another label is refused (checkpoint state would not fit)."""
    task = config["task"]
    if task != "classification":
        return task
    return "freeze" if config["classification"]["freeze_encoder"] else config["head"]["name"]


def check_names(config: dict) -> None:
    """What can be checked before any data is read or the exp dir exists: the model, its argument names,
    the head, the extraction windows (one-line errors)."""
    from spkid.models import model_config
    from spkid.models.windows import extraction_config

    model_config(config["model"]["name"], {**config["model"].get("args", {}), "feat_dim": 1})
    if "head" in config:
        from spkid.losses import head_class

        head_class(config["head"]["name"])
    extraction_config(config["extraction"])
    if "optim" in config:
        from spkid.train.trainer import scheduled_lr

        scheduled_lr(config["optim"], 0, int(config["train"]["max_steps"]))  # optim.decay / final_lr errors


def open_training_data(config: dict, data_dir: str):
    """(feature config, UtteranceSource, crop frames, min frames) of a crop-based task's data section."""
    from spkid.data.augmentation import needs_audio
    from spkid.data.sources import open_source
    from spkid.features.frontend import build_frontend

    dcfg = config["data"]
    crop = int(dcfg["crop_frames"])
    min_frames = int(dcfg.get("min_frames") or crop)
    if not 1 <= min_frames <= crop:
        raise SpkidError(f"data.min_frames must be in [1, data.crop_frames={crop}], got {min_frames}")
    feature_config = build_frontend(config["features"]).to_config()
    kind = dcfg["source"]
    if kind == "auto" and needs_audio(config.get("augment") or {}) and not (Path(data_dir) / "shards.json").exists():
        kind = "audio"  # augmenting the waveform: the data dir's wav.scp, even beside a feats.scp (shards: audio)
    return feature_config, open_source(data_dir, feature_config, kind), crop, min_frames


def build_encoder(config: dict, feat_dim: int):
    """(name, complete constructor arguments, model) from `model: {name, args}` and the data's feature dim."""
    from spkid.models import build_model, model_config

    name = config["model"]["name"]
    args = {**config["model"].get("args", {}), "feat_dim": int(feat_dim)}
    full = model_config(name, args)
    return name, full, build_model(name, full)


def with_steps(loader, start_step: int):
    """Batches with their (0-based) step under "step"."""
    for step, batch in enumerate(loader, start_step):
        batch["step"] = step
        yield batch
