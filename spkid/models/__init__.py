"""Speaker encoders and their registry (name -> class), as WeSpeaker's model factory.

An encoder is one file in this package defining a `torch.nn.Module` decorated with
`@register_model("name")`. Every module of the package is imported on first lookup (pkgutil), so a
new file is found with no other edit. The smallest example::

    import torch
    from spkid.models import register_model

    @register_model("mean_linear")
    class MeanLinear(torch.nn.Module):
        def __init__(self, feat_dim: int, embed_dim: int):
            super().__init__()
            self.proj = torch.nn.Linear(feat_dim, embed_dim)

        def forward(self, feats):              # (batch, frames, feat_dim)
            return self.proj(feats.mean(1))    # (batch, embed_dim)

The contract: `cls(feat_dim=F, embed_dim=D, **args)` (F comes from the data, D and args from the
config's `model: {name: ..., args: {...}}`), forward (batch, frames, F) -> (batch, D). Checkpoints store
the complete constructor arguments (`model_config`: the config's args with the signature's defaults
filled in); those of older checkpoints (`input_dim`, `embedding_dim`) are translated on loading.
"""
from __future__ import annotations

import inspect

import torch

from spkid.errors import SpkidError
from spkid.registry import Registry

_MODELS = Registry("model", __name__, "model_name")
register_model = _MODELS.register  # class decorator: make an encoder known by a name


def model_names() -> list[str]:
    return _MODELS.names()


def model_class(name: str) -> type[torch.nn.Module]:
    return _MODELS.get(name)


# constructor argument names of older checkpoints and configs -> the encoder contract's
LEGACY_ARGS = {"input_dim": "feat_dim", "embedding_dim": "embed_dim"}


def model_config(name: str, config: dict) -> dict:
    """The complete constructor arguments of model `name`: `config` (legacy names translated) with the
    signature's defaults filled in. An argument the constructor does not take is a one-line error."""
    cls = model_class(name)
    config = {LEGACY_ARGS.get(k, k): v for k, v in dict(config).items()}
    params = inspect.signature(cls).parameters
    named = {k: p for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(config) - set(named))
    if unknown and not takes_any:
        raise SpkidError(f"model '{name}' takes no argument {', '.join(map(repr, unknown))} "
                         f"(its arguments: {', '.join(named) or 'none'})")
    missing = sorted(k for k, p in named.items() if p.default is p.empty and k not in config)
    if missing:
        raise SpkidError(f"model '{name}' needs argument(s) {', '.join(map(repr, missing))} (model.args)")
    full = {k: p.default for k, p in named.items() if p.default is not p.empty}
    full.update(config)
    return full


MAX_PARAMETERS = 2 ** 31  # 8 GiB of float32 weights (32 GiB to train with Adam): far beyond any speaker encoder


def build_model(name: str, config: dict) -> torch.nn.Module:
    """Build a registered model from its config dict (the dict stored in checkpoints). It is first built on
    the meta device (no memory): bad arguments, and more than MAX_PARAMETERS parameters, are one-line errors
    before anything is allocated (a config or checkpoint asking for a 100 GB model is refused, not run)."""
    config = model_config(name, config)
    cls = model_class(name)
    try:
        with torch.device("meta"):
            meta = cls(**config)
    except (TypeError, ValueError) as err:
        raise SpkidError(f"model '{name}' with {config}: {err}") from None
    except Exception:  # noqa: BLE001 -- an encoder that cannot be built on meta: built for real below
        meta = None
    if meta is not None:
        check_size(name, config, count_parameters(meta))
        if torch.empty(0).device.type == "meta":  # asked for on the meta device: done
            return meta
    try:
        return cls(**config)
    except (TypeError, ValueError) as err:
        raise SpkidError(f"model '{name}' with {config}: {err}") from None


def check_size(name: str, config: dict, parameters: int) -> None:
    """Refuse a model of more than MAX_PARAMETERS parameters, naming its arguments."""
    if parameters > MAX_PARAMETERS:
        args = ", ".join(f"{k}={v}" for k, v in config.items() if k != "feat_dim")
        raise SpkidError(f"model '{name}' ({args}) has {parameters:,} parameters ({parameters * 4 / 2**30:,.0f} GiB "
                         f"of float32 weights), more than the {MAX_PARAMETERS:,} spkid builds; check its arguments")


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters (every element of every parameter tensor)."""
    return sum(p.numel() for p in module.parameters())


def device_and_dtype(module: torch.nn.Module, default: torch.device | None = None
                     ) -> tuple[torch.device, torch.dtype]:
    """Where a module's inputs go: `default` when given, else the device and float type of its first
    parameter or buffer; the CPU and float32 for a module with neither (an exported TorchScript module
    holding plain tensors, an onnxruntime session). Not `next(module.parameters())`, whose StopIteration
    inside a generator or a DataLoader worker silently ends the iteration."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return (default if default is not None else tensor.device), tensor.dtype
    return (default if default is not None else torch.device("cpu")), torch.float32


def encoder_output(model: torch.nn.Module, feats: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
    """What the head sees: `embed(feats, dropout, normalize=False)` where the encoder has it, else its
    output (with dropout when training)."""
    embed = getattr(model, "embed", None)
    if callable(embed):
        return embed(feats, dropout=dropout, normalize=False)
    out = model(feats)
    return torch.nn.functional.dropout(out, dropout, model.training) if dropout > 0 else out
