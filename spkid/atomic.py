"""Atomic file output: write under a temporary name in the same folder, rename into place when done."""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_special(path: str | os.PathLike) -> bool:
    """True for existing non-regular files (/dev/null, fifos): these are written in place."""
    return os.path.exists(path) and not os.path.isfile(path)


def open_temp(final: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside `final` (normal permissions); returns (file object, temp path).

    For a special file such as /dev/null or a fifo, opens it directly and returns None as temp path.
    """
    final = Path(final)
    kwargs = {} if "b" in mode else {"encoding": "utf-8", "errors": "surrogateescape"}
    if is_special(final):
        return open(final, mode, **kwargs), None
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return os.fdopen(fd, mode, **kwargs), tmp


def commit(tmp: str | None, final: str | os.PathLike) -> None:
    """Rename a finished temporary file into place (no-op for special files)."""
    if tmp is not None:
        os.replace(tmp, final)


def discard(tmp: str | None) -> None:
    if tmp is not None and os.path.exists(tmp):
        os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a file atomically (temporary name, then rename)."""
    handle, tmp = open_temp(path, "wb")
    try:
        with handle:
            handle.write(data)
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


@contextmanager
def staged_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside `dest`, moved into place (replacing `dest`) when the block ends without an
    exception, else removed: a folder of outputs (a data dir) appears complete or not at all."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if dest.exists():
            old = dest.with_name(f".old-{uuid.uuid4().hex[:8]}-{dest.name}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
