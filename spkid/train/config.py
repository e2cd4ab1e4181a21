"""Training configs: built-in defaults < EXPDIR/config.yaml (on resume) < `--config` < `--opts`.

`resolve_config` is the one place that layers them, for `spkid train` and its aliases. Keys are dotted
paths (`train.max_steps`, `data.speakers_per_batch`); a key that is not in the defaults is an error
naming it, so typos never pass silently. Open sections take any key and merge key by key: `model.args`
and `head.args` (checked by the constructor), `features` and `extraction` (checked by the front-end and
the window layout). A layer that changes a section's kind -- `model.name`, `head.name`,
`features.type`, `extraction.scheme` -- starts that section afresh: the arguments of one model never
leak into another; a layer naming a Kaldi option file (`features.kaldi_config`, `vad_config`) takes the
options that file sets from it. Config files therefore hold only what they change.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import yaml

from spkid.atomic import atomic_write_text
from spkid.errors import SpkidError

logger = logging.getLogger("spkid.train")

OPEN = ("model.args", "head.args", "features", "extraction")  # any key; merged key by key
KIND = {"model": "name", "head": "name", "features": "type", "extraction": "scheme"}


def _coerce(old: Any, value: Any, key: str, origin: str) -> Any:
    """Give a value the type of its default (YAML reads `1e-4` as a string, for instance)."""
    if old is None or value is None or isinstance(old, (dict, list, str)):
        return value
    if isinstance(old, bool):
        if not isinstance(value, bool):
            raise SpkidError(f"{origin}: config key '{key}' wants true/false, got '{value}'")
        return value
    try:
        if isinstance(old, float):
            return float(value)
        if isinstance(old, int):
            if isinstance(value, float) and not value.is_integer() or isinstance(value, bool):
                raise ValueError
            return int(value)
    except (TypeError, ValueError):
        kind = type(old).__name__
        raise SpkidError(f"{origin}: config key '{key}' wants a {kind}, got '{value}'") from None
    return value


def _merge_open(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_open(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _restart(section: str, base: dict, kind: Any) -> dict:
    """A section whose kind a layer changes: model/head keep their other keys with empty args."""
    if section in ("features", "extraction"):
        return {KIND[section]: kind}
    out = copy.deepcopy(base)
    out[KIND[section]] = kind
    if "args" in out:
        out["args"] = {}
    return out


def _without_file_keys(base: dict, layer: dict) -> dict:
    """Features: a layer naming a Kaldi option file (`kaldi_config`, `vad_config`) takes the options that
    file sets from it, not from lower layers (explicit keys beside the file still win over it)."""
    from dataclasses import fields

    from spkid.features.fbank import FbankOptions

    out = dict(base)
    if layer.get("kaldi_config") and layer.get("kaldi_config") != base.get("kaldi_config"):
        for f in fields(FbankOptions):
            out.pop(f.name, None)
    if layer.get("vad_config") and layer.get("vad_config") != base.get("vad_config"):
        out.pop("vad", None)
    return out


def _merge(base: dict, override: dict, origin: str, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        path = f"{prefix}{key}"
        if path in KIND and isinstance(value, dict) and isinstance(out.get(key), dict):
            kind = value.get(KIND[path])
            if kind is not None and kind != out[key].get(KIND[path]):
                out[key] = _restart(path, out[key], kind)
        if path in OPEN:
            if not isinstance(value, dict):
                raise SpkidError(f"{origin}: config key '{path}' must be a mapping")
            base = _without_file_keys(out.get(key) or {}, value) if path == "features" else out.get(key) or {}
            out[key] = _merge_open(base, value)
        elif key not in out:
            raise SpkidError(f"{origin}: unknown config key '{path}' (known: {', '.join(sorted(out))})")
        elif isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise SpkidError(f"{origin}: config key '{path}' is a section; set one of its keys")
            out[key] = _merge(out[key], value, origin, f"{path}.")
        else:
            out[key] = _coerce(out[key], value, path, origin)
    return out


def parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def nested(key: str, value: Any) -> dict:
    """`a.b.c`, v -> {"a": {"b": {"c": v}}}."""
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def set_dotted(config: dict, key: str, value: Any, origin: str = "--opts") -> dict:
    """`config` with `a.b.c` set (the key must exist, except inside open sections)."""
    return _merge(config, nested(key, value), origin)


def read_yaml(path: str | Path) -> dict:
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise SpkidError(f"{path}: cannot read config ({err.strerror})") from None
    except UnicodeDecodeError:
        raise SpkidError(f"{path}: not a text file (a config is UTF-8 YAML)") from None
    except yaml.YAMLError as err:
        raise SpkidError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise SpkidError(f"{path}: a config must be a YAML mapping")
    return loaded


def opts_pairs(opts: tuple[str, ...]) -> list[tuple[str, Any]]:
    if len(opts) % 2:
        raise SpkidError(f"--opts takes key value pairs; '{opts[-1]}' has no value")
    return [(k, parse_value(v) if isinstance(v, str) else v) for k, v in zip(opts[::2], opts[1::2])]


def load_config(defaults: dict, config_file: str | None = None, opts: tuple[str, ...] = ()) -> dict:
    """Defaults, then the YAML file, then `--opts key value ...` pairs (no old shapes, no saved layer)."""
    config = copy.deepcopy(defaults)
    if config_file:
        config = _merge(config, read_yaml(config_file), config_file)
    for key, value in opts_pairs(opts):
        config = set_dotted(config, key, value)
    return config


def resolve_config(config_file: str | None = None, opts: tuple[str, ...] = (), *, exp_dir: str | Path | None = None,
                   fresh: bool = False, default_task: str | None = None,
                   command_defaults: dict[str, dict] | None = None, init: str | None = None) -> dict:
    """The effective config of a training run, layered: the task's built-in defaults (then
    `command_defaults[task]`, an alias's own defaults) < what the `init` checkpoint says (model,
    front-end, extraction, GE2E's w and b) < EXPDIR/config.yaml when EXPDIR holds a checkpoint and not
    `fresh` < `config_file` < `opts`. The task is the last layer's `task:`, else `default_task`. Old
    config shapes are translated (spkid.train.legacy_config) with a logged note. Resuming an exp dir of
    another task or stage is an error."""
    from spkid.tasks import stage_label, task_module
    from spkid.train.checkpoint import find_latest_checkpoint
    from spkid.train.legacy_config import opts_task, translate_doc, translate_opt

    saved_doc = None
    saved = Path(exp_dir) / "config.yaml" if exp_dir is not None else None
    if saved is not None and not fresh and saved.exists() and find_latest_checkpoint(exp_dir) is not None:
        saved_doc = translate_doc(read_yaml(saved), str(saved))
    file_doc = translate_doc(read_yaml(config_file), config_file) if config_file else None
    pairs = opts_pairs(opts)
    task = opts_task(pairs)
    for doc in (file_doc, saved_doc):
        task = task or (doc or {}).get("task")
    task = task or default_task
    if task is None:
        raise SpkidError("the config needs a `task:` (classification, ge2e or triplet)")
    module = task_module(task)
    config = copy.deepcopy(module.DEFAULTS)
    config["task"] = task
    config = _merge(config, (command_defaults or {}).get(task, {}), "built-in defaults")
    if init:
        config = _merge(config, init_layer(init, task), f"--init {init}")
    saved_stage = None
    if saved_doc is not None:
        saved_task = saved_doc.get("task") or default_task
        if saved_task != task:
            raise _other_stage(exp_dir, saved_task, task)
        config = _merge(config, saved_doc, str(saved))
        saved_stage = stage_label(config)
    if file_doc is not None:
        config = _merge(config, file_doc, config_file)
    for key, value in pairs:
        for k, v in translate_opt(key, value, config):
            config = set_dotted(config, k, v)
    if saved_stage is not None and saved_stage != stage_label(config):
        raise _other_stage(exp_dir, saved_stage, stage_label(config))
    check_ranges(config, {**COMMON_RANGES, **getattr(module, "RANGES", {})})
    return config


def _other_stage(exp_dir, saved: str, this: str) -> SpkidError:
    return SpkidError(f"{exp_dir} holds a '{saved}' stage run; this is stage '{this}' (use another --output, "
                      "and --init to start from it; or --fresh to start over)")


def init_layer(path: str, task: str) -> dict:
    """The settings a fine-tuning run takes from its --init checkpoint unless the config overrides them:
    the model (name and arguments), the front-end, the extraction windows and, for GE2E, w and b."""
    from spkid.models import model_config
    from spkid.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    name = ckpt["model"]["name"]
    args = {k: v for k, v in model_config(name, ckpt["model"]["config"]).items() if k != "feat_dim"}
    layer: dict = {"model": {"name": name, "args": args}}
    if ckpt.get("features"):
        layer["features"] = dict(ckpt["features"])
    if ckpt.get("extraction"):
        layer["extraction"] = dict(ckpt["extraction"])
    crit, imported = ckpt.get("criterion") or {}, ckpt.get("ge2e_loss") or {}
    w = crit["w"].item() if "w" in crit else imported.get("w")
    b = crit["b"].item() if "b" in crit else imported.get("b")
    if task == "ge2e" and w is not None and b is not None:
        layer["loss"] = {"init_w": float(w), "init_b": float(b)}
    return layer


COMMON_RANGES = {
    "optim.lr": "> 0", "optim.final_lr": ">= 0", "optim.weight_decay": ">= 0", "optim.momentum": "[0, 1)",
    "optim.grad_clip": ">= 0", "optim.warmup_steps": ">= 0",
    "data.crop_frames": ">= 1", "data.min_frames": ">= 1", "data.num_workers": ">= 0",
    "train.max_steps": ">= 1", "train.log_every": ">= 1", "train.checkpoint_every": ">= 1",
    "train.keep_checkpoints": ">= 0", "train.valid_every": ">= 0", "train.stall_warn_seconds": ">= 0",
    "train.seed": "[0, 2147483647]",  # numpy seeds each rank with seed + rank (< 2**32)
}


def _in_range(value: float, rule: str) -> bool:
    if rule.startswith((">=", ">")):
        bound = float(rule.lstrip(">= "))
        return value >= bound if rule.startswith(">=") else value > bound
    lo, hi = (float(x) for x in rule[1:-1].split(","))
    return (value >= lo if rule[0] == "[" else value > lo) and (value <= hi if rule[-1] == "]" else value < hi)


def check_ranges(config: dict, ranges: dict[str, str]) -> None:
    """One line naming the first key outside its allowed range (`> 0`, `>= 1`, `[0, 1)`, ...)."""
    for key, rule in ranges.items():
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None or isinstance(node, bool) or not isinstance(node, (int, float)):
            continue
        if not _in_range(float(node), rule):
            allowed = f"in {rule}" if rule[0] in "[(" else rule
            raise SpkidError(f"config key '{key}' must be {allowed}, got {node}")


def save_config(config: dict, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
