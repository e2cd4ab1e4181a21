"""Training configs: YAML files over built-in defaults, `--opts key value` overrides, saved per exp dir.

Keys are dotted paths (`train.max_steps`, `data.speakers_per_batch`). A key that is not in the
defaults is an error naming it, so typos never pass silently.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from spkid.atomic import atomic_write_text
from spkid.errors import SpkidError

_FREE_FORM = ("features", "extraction")  # sections taken whole (each checks its own keys)


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
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
    except (TypeError, ValueError):
        kind = type(old).__name__
        raise SpkidError(f"{origin}: config key '{key}' wants a {kind}, got '{value}'") from None
    return value


def _merge(base: dict, override: dict, origin: str, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        path = f"{prefix}{key}"
        if path in _FREE_FORM:  # replaced whole: the front-end checks its own keys
            if not isinstance(value, dict):
                raise SpkidError(f"{origin}: config key '{path}' must be a mapping")
            out[key] = dict(value)
        elif key not in out:
            raise SpkidError(f"{origin}: unknown config key '{path}' (known: {', '.join(sorted(out))})")
        elif isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise SpkidError(f"{origin}: config key '{path}' must be a mapping")
            out[key] = _merge(out[key], value, origin, f"{path}.")
        else:
            out[key] = _coerce(out[key], value, path, origin)
    return out


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def set_dotted(config: dict, key: str, value: Any, origin: str = "--opts") -> None:
    """Set `a.b.c` in a nested config; the key must exist (except inside free-form sections)."""
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node.get(part)
        if not isinstance(node, dict):
            raise SpkidError(f"{origin}: unknown config key '{key}'")
    if leaf not in node and ".".join(parents) not in _FREE_FORM:
        raise SpkidError(f"{origin}: unknown config key '{key}'")
    if isinstance(node.get(leaf), dict):
        raise SpkidError(f"{origin}: config key '{key}' is a section; set one of its keys")
    node[leaf] = _coerce(node.get(leaf), value, key, origin)


def load_config(defaults: dict, config_file: str | None = None, opts: tuple[str, ...] = ()) -> dict:
    """Defaults, then the YAML file, then `--opts key value ...` pairs."""
    config = copy.deepcopy(defaults)
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except OSError as err:
            raise SpkidError(f"{config_file}: cannot read config ({err.strerror})") from None
        except yaml.YAMLError as err:
            raise SpkidError(f"{config_file}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise SpkidError(f"{config_file}: a config must be a YAML mapping")
        config = _merge(config, loaded, config_file)
    if len(opts) % 2:
        raise SpkidError(f"--opts takes key value pairs; '{opts[-1]}' has no value")
    for key, value in zip(opts[::2], opts[1::2]):
        set_dotted(config, key, _parse_value(value))
    return config


def save_config(config: dict, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
