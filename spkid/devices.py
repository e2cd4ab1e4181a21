"""`--device` / `device=`: the one parser of device names (training, extraction, verify, the Python API).

"auto" is a GPU when torch sees one, else the CPU; "cpu", "cuda", "cuda:N" and "mps" are checked against
this machine, so a wrong name is a one-line error before anything is loaded, not torch's assertion.
"""
from __future__ import annotations

from spkid.errors import SpkidError

KNOWN = ("auto", "cpu", "cuda", "cuda:N", "mps")


def parse_device(name) -> torch.device:  # noqa: F821 (torch is imported lazily)
    """A device name (or torch.device) -> torch.device that exists here; "auto" picks CUDA when available."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str) or not name.strip():
        raise SpkidError(f"unknown device {name!r} (known: {', '.join(KNOWN)})")
    name = name.strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise SpkidError(f"unknown device {name} (known: {', '.join(KNOWN)})") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpkidError(f"{_named(name)}cuda is not available on this machine (use cpu or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise SpkidError(f"{name}: this machine has {count} GPU{'s' if count != 1 else ''} "
                             f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise SpkidError(f"{_named(name)}mps is not available on this machine (use cpu or auto)")
        return device
    raise SpkidError(f"unknown device {name} (known: {', '.join(KNOWN)})")


def _named(name: str) -> str:
    return "" if name in ("cuda", "mps") else f"device {name}: "


def cpu_has_bfloat16() -> bool | None:
    """Whether the CPU has bfloat16 instructions (AVX512-BF16 or AMX), from /proc/cpuinfo; None: unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return None
    if not flags:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags
