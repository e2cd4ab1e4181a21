"""Atomic file output: write under a temporary name in the same folder, rename into place when done.

Temporaries are named `.<final name>.<pid>@<host>.<random>.tmp`. A writer killed before it could clean
up (kill -9, power loss) leaves one behind: the next write of the same output (or `sweep_stale` of a
folder) removes those whose writer process is gone, and any left untouched for a day. Output problems
(a directory as output, a path under a regular file, a full disk) are one-line SpkidErrors;
`check_writable` finds most of them before any work is done.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spkid.errors import SpkidError

STALE_AFTER_S = 24 * 3600  # a temporary untouched this long is stale whoever wrote it
_FOREIGN_AFTER_S = 3600  # written by another host (shared folder) or an older spkid: untouched this long
_WRITER = r"\.(?:(?P<pid>\d+)@(?P<host>[\w-]*)\.)?[^.]+\.tmp$"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host() -> str:
    return re.sub(r"[^\w-]", "-", socket.gethostname().split(".")[0])


def is_special(path: str | os.PathLike) -> bool:
    """True for existing non-regular files (/dev/null, fifos): these are written in place."""
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(path: Path, match: re.Match, now: float) -> bool:
    try:
        age = now - path.stat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_S:
        return True
    if match.group("pid") is None or match.group("host") != _host():
        return age > _FOREIGN_AFTER_S
    pid = int(match.group("pid"))
    return pid != os.getpid() and not _pid_alive(pid)


def sweep_stale(folder: str | os.PathLike, final_name: str | None = None) -> list[Path]:
    """Remove stale temporaries in `folder` (of `final_name` only, when given); returns what was removed."""
    removed = []
    now = time.time()
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    pattern = re.compile(r"^\." + (re.escape(final_name) if final_name is not None else ".+?") + _WRITER)
    for path in entries:
        match = pattern.match(path.name)
        if match is None:
            continue
        if _is_stale(path, match, now):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def _describe(err: OSError) -> str:
    return err.strerror or type(err).__name__


def check_writable(path: str | os.PathLike, what: str = "output") -> None:
    """One-line SpkidError unless `path` can be written (created or replaced): call before the work.

    `-` means standard output, which must be open. Special files (/dev/null, fifos) are accepted as
    they are; a full device is only found when writing.
    """
    path = str(path)
    if path == "":
        raise SpkidError(f"empty {what} file name")
    if path == "-":
        if sys.stdout is None:
            raise SpkidError(f"cannot write the {what} to standard output: it is closed")
        return
    if os.path.isdir(path):
        raise SpkidError(f"{path}: is a directory (wanted a file for the {what})")
    if is_special(path):
        if not os.access(path, os.W_OK):
            raise SpkidError(f"{path}: cannot write the {what} (permission denied)")
        return
    folder = Path(path).parent
    probe = folder
    while not probe.exists():  # the nearest existing ancestor must be a writable directory
        probe = probe.parent
    if not probe.is_dir():
        raise SpkidError(f"{path}: cannot create the {what}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SpkidError(f"{path}: cannot create the {what}: no write permission in {probe}")


def max_name_bytes(folder: str | os.PathLike, temporary: bool = True) -> int:
    """The longest file name (bytes) in `folder`; with `temporary`, the longest open_temp can write there (its
    temporary's name is longer)."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    return limit - (len(f"..{os.getpid()}@{_host()}.".encode()) + len("xxxxxxxx.tmp") if temporary else 0)


def open_temp(final: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside `final` (normal permissions); returns (file object, temp path).

    For a special file such as /dev/null or a fifo, opens it directly and returns None as temp path.
    Stale temporaries of the same output are removed first.
    """
    final = Path(final)
    kwargs = {} if "b" in mode else {"encoding": "utf-8", "errors": "surrogateescape"}
    check_writable(final)
    try:
        if is_special(final):
            return open(final, mode, **kwargs), None
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(final.parent, final.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}@{_host()}.", suffix=".tmp",
                                   dir=final.parent)
    except OSError as err:
        raise SpkidError(f"{final}: cannot write ({_describe(err)})") from None
    os.fchmod(fd, 0o666 & ~_umask())
    return os.fdopen(fd, mode, **kwargs), tmp


def commit(tmp: str | None, final: str | os.PathLike) -> None:
    """Rename a finished temporary file into place (no-op for special files)."""
    if tmp is not None:
        try:
            os.replace(tmp, final)
        except OSError as err:
            discard(tmp)
            raise SpkidError(f"{final}: cannot write ({_describe(err)})") from None


def discard(tmp: str | None) -> None:
    if tmp is not None and os.path.exists(tmp):
        os.unlink(tmp)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """A file object for `path` written under a temporary name and renamed into place when the block ends
    without an exception (else removed); an OSError while writing is a SpkidError naming `path`."""
    handle, tmp = open_temp(path, mode)
    try:
        try:
            with handle:
                yield handle
        except OSError as err:
            raise SpkidError(f"{path}: cannot write ({_describe(err)})") from None
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a file atomically (temporary name, then rename)."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


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


@contextmanager
def exclusive_lock(folder: str | os.PathLike, what: str, wait: bool = False) -> Iterator[None]:
    """Hold FOLDER/.lock (flock(2), released when the process ends however it ends) for the block.

    The file names the holder (pid, host). With wait=False a folder held by another live process is a
    one-line SpkidError naming it and `what` (e.g. "make-shards run"); with wait=True the block waits for it.
    """
    import fcntl

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    except OSError as err:
        raise SpkidError(f"{folder}: cannot lock ({_describe(err)})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise SpkidError(f"{folder} is in use by another {what} ({holder}); wait for it to end, or use "
                             "another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


@contextmanager
def shared_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold FOLDER/.lock shared for the block (readers; writers hold it with exclusive_lock): waits for a writer.

    A folder whose lock file cannot be opened or created (read-only, copied without it) is read unlocked."""
    import fcntl

    path = Path(folder) / ".lock"
    try:
        fd = os.open(path, os.O_RDONLY) if path.exists() else os.open(path, os.O_RDWR | os.O_CREAT,
                                                                      0o666 & ~_umask())
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


COMMITTED = ".committed"  # FOLDER/.committed/: files of a replace_files that are not all moved into place yet


def replace_files(folder: str | os.PathLike, files: dict[str, bytes]) -> None:
    """Replace several files of `folder` as one unit (hold its exclusive_lock): each is written and synced in a
    staging folder, whose rename to FOLDER/.committed is the commit point; then they are moved into place.
    A writer killed after the commit point leaves FOLDER/.committed, which the next writer finishes and a
    reader reads through (committed_path); one killed before leaves only a staging folder, removed next time."""
    folder = Path(folder)
    try:
        finish_replace(folder)
        for stale in folder.glob(".staging-*"):  # of a writer killed before its commit point
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    except OSError as err:
        raise SpkidError(f"{folder}: cannot write ({_describe(err)})") from None
    try:
        os.chmod(staging, 0o777 & ~_umask())
        for name, data in files.items():
            with open(staging / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(staging / name, 0o666 & ~_umask())
        os.replace(staging, folder / COMMITTED)
    except OSError as err:
        raise SpkidError(f"{folder}: cannot write ({_describe(err)})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    finish_replace(folder)


def finish_replace(folder: str | os.PathLike) -> None:
    """Move the files of a committed replace_files into place (hold the folder's exclusive_lock)."""
    committed = Path(folder) / COMMITTED
    if committed.is_dir():
        for entry in sorted(committed.iterdir()):
            os.replace(entry, Path(folder) / entry.name)
        committed.rmdir()


def committed_path(folder: str | os.PathLike, name: str) -> Path:
    """Where a reader finds the current FOLDER/NAME: in FOLDER/.committed while a replace_files is unfinished."""
    pending = Path(folder) / COMMITTED / name
    return pending if pending.is_file() else Path(folder) / name
