"""Atomic file output: write under a temporary name in the same folder, rename into place when done."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open_temp(final: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside `final` (normal permissions); returns (file object, temp path)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    kwargs = {} if "b" in mode else {"encoding": "utf-8", "errors": "surrogateescape"}
    return os.fdopen(fd, mode, **kwargs), tmp


def discard(tmp: str) -> None:
    if os.path.exists(tmp):
        os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    handle, tmp = open_temp(path, "w")
    try:
        with handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
