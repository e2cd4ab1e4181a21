"""Kaldi option files (`--config conf/fbank.conf`): one `--opt=value` per line, `#` comments.

Used by the command line (KaldiCommand) and by training configs that name a Kaldi feature config.
"""
from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from spkid.errors import SpkidError


def parse_kaldi_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "t"):
        return True
    if text in ("false", "0", "no", "f"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def read_config_file(path: str) -> list[str]:
    """The option arguments in a Kaldi config file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise SpkidError(f"--config {path}: {err.strerror}") from None
    args = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.startswith("--"):
            raise SpkidError(f"{path}:{lineno}: expected '--option=value', got '{line}'")
        args.extend(shlex.split(line))
    return args


def normalize_args(args: list[str]) -> list[str]:
    """Expand --config files (in place, so later options override) and map --a_b to --a-b."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            name = "--" + name[2:].replace("_", "-")
            if name == "--config":
                if not eq:
                    if i + 1 >= len(args):
                        raise SpkidError("--config needs a file name")
                    i += 1
                    value = args[i]
                out.extend(normalize_args(read_config_file(value)))
                i += 1
                continue
            arg = name + eq + value
        out.append(arg)
        i += 1
    return out


def config_values(path: str, types: dict[str, str]) -> dict:
    """Values of the options named in `types` ({name_with_underscores: "bool"|"int"|"float"|"str"})
    found in a Kaldi config file; other options are ignored."""
    conv = {"bool": parse_kaldi_bool, "int": int, "float": float, "str": str}
    values = {}
    for arg in normalize_args(["--config", path]):
        name, _, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        if key in types:
            try:
                values[key] = conv[types[key]](value)
            except ValueError as err:
                raise SpkidError(f"{path}: bad value for --{name}: {err}") from None
    return values


def dataclass_values_from_config(cls, path: str) -> dict:
    """The fields of dataclass `cls` set in a Kaldi config file, converted to the fields' types."""
    return config_values(path, {f.name: str(f.type) for f in dataclasses.fields(cls)})
