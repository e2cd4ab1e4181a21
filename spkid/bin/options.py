"""Kaldi-style command-line options for click commands.

`KaldiCommand` accepts what Kaldi's ParseOptions accepts: `--opt=value`, `--opt_name` as `--opt-name`,
booleans `true|false`, and `--config FILE` holding such option lines (the command line overrides it).
`dataclass_options` turns an options dataclass (Kaldi names with `_`) into click options.
"""
from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import click

from spkid.errors import SpkidError


class KaldiBool(click.ParamType):
    name = "true|false"

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "t"):
            return True
        if text in ("false", "0", "no", "f"):
            return False
        self.fail(f"{value!r} is not true or false", param, ctx)


KALDI_BOOL = KaldiBool()


def read_config_file(path: str) -> list[str]:
    """Options from a Kaldi config file: one `--opt=value` per line, `#` comments."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise click.UsageError(f"--config {path}: {err.strerror}") from None
    args = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.startswith("--"):
            raise click.UsageError(f"{path}:{lineno}: expected '--option=value', got '{line}'")
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
                        raise click.UsageError("--config needs a file name")
                    i += 1
                    value = args[i]
                out.extend(normalize_args(read_config_file(value)))
                i += 1
                continue
            arg = name + eq + value
        out.append(arg)
        i += 1
    return out


class KaldiCommand(click.Command):
    """A click command parsing Kaldi-style options (see module docstring)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize_args(list(args)))


def config_option(f):
    """Document --config (handled by KaldiCommand before click sees the arguments)."""
    return click.option("--config", "config_file", metavar="FILE", expose_value=False, is_eager=True,
                        help="Read options from a Kaldi-style config file (command line overrides).")(f)


def dataclass_options(cls, exclude: tuple[str, ...] = ()):
    """Decorator adding one click option per dataclass field: --field-name, with its default and help."""
    def decorate(f):
        for fld in reversed(dataclasses.fields(cls)):
            if fld.name in exclude:
                continue
            kind = {"bool": KALDI_BOOL, "int": int, "float": float, "str": str}[str(fld.type)]
            f = click.option("--" + fld.name.replace("_", "-"), fld.name, type=kind, default=fld.default,
                             show_default=True, help=fld.metadata.get("help"))(f)
        return f
    return decorate


def pick(cls, params: dict):
    """Build the dataclass `cls` from click params (removing its fields from `params`)."""
    names = [f.name for f in dataclasses.fields(cls)]
    return cls(**{n: params.pop(n) for n in names if n in params})


def require(condition: bool, message: str) -> None:
    if not condition:
        raise SpkidError(message)


def dataclass_values_from_config(cls, path: str) -> dict:
    """The options of `cls` found in a Kaldi config file (others ignored), converted to field types."""
    conv = {"bool": KALDI_BOOL.convert, "int": lambda v, *_: int(v), "float": lambda v, *_: float(v),
            "str": lambda v, *_: v}
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    values = {}
    for arg in normalize_args(["--config", path]):
        name, _, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        if key in types:
            try:
                values[key] = conv[types[key]](value, None, None)
            except (ValueError, click.BadParameter) as err:
                raise click.UsageError(f"{path}: bad value for --{name}: {err}") from None
    return values
