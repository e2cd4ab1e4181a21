"""Kaldi-style command-line options for click commands.

`KaldiCommand` accepts what Kaldi's ParseOptions accepts: `--opt=value`, `--opt_name` as `--opt-name`,
booleans `true|false`, and `--config FILE` holding such option lines (the command line overrides it).
`dataclass_options` turns an options dataclass (Kaldi names with `_`) into click options.
"""
from __future__ import annotations

import dataclasses

import click

from spkid.kaldi.config_file import dataclass_values_from_config, normalize_args, parse_kaldi_bool

__all__ = ["KALDI_BOOL", "MODEL_HELP", "KaldiCommand", "config_option", "dataclass_options",
           "dataclass_values_from_config", "normalize_args", "pick", "trust_torchscript_option"]

MODEL_HELP = ("A pretrained name (`spkid import-pretrained --list`, e.g. campplus-zh-en), an exp dir (its newest "
              "checkpoint), a checkpoint file, an .onnx export, or a .ts export with --trust-torchscript.")


class KaldiBool(click.ParamType):
    name = "true|false"

    def convert(self, value, param, ctx):
        try:
            return parse_kaldi_bool(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


KALDI_BOOL = KaldiBool()


class KaldiCommand(click.Command):
    """A click command parsing Kaldi-style options (see module docstring)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize_args(list(args)))


def config_option(f):
    """Document --config (handled by KaldiCommand before click sees the arguments)."""
    return click.option("--config", "config_file", metavar="FILE", expose_value=False, is_eager=True,
                        help="Read options from a Kaldi-style config file (command line overrides).")(f)


def trust_torchscript_option(f):
    """--trust-torchscript: allow a TorchScript --model (it runs the code inside the file)."""
    return click.option("--trust-torchscript", is_flag=True,
                        help="Allow --model to be a TorchScript export (.ts/.torchscript from `spkid export "
                             "--format torchscript`). Loading one runs the code inside the file: only for "
                             "files you trust. ONNX exports hold no code and need no flag.")(f)


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

