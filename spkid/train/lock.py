"""One training run per exp dir: EXPDIR/.lock holds the pid and host of the run using it.

The file is locked with flock(2) while the run lives, so the lock of a run that died (kill -9, power
loss) is free again without anyone cleaning up: a later run finds the dead pid in the file, logs that it
takes the stale lock over, and writes its own. A second live run is refused with a message naming the
pid. Under DDP only the launcher (`--nprocs`) or rank 0 holds it; the launcher tells its workers
through SPKID_EXP_LOCK.
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.train")
ENV = "SPKID_EXP_LOCK"


def _holder(text: str) -> str:
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    return f"pid {fields.get('pid', '?')} on {fields.get('host', '?')}"


@contextmanager
def exp_lock(exp_dir: str | Path):
    """Hold EXPDIR/.lock for the duration of the block (nothing to do when our launcher holds it)."""
    exp_dir = Path(exp_dir)
    path = exp_dir / ".lock"
    if os.environ.get(ENV) == str(path.resolve()):
        yield
        return
    exp_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, 200, 0).decode(errors="replace"))
            raise SpkidError(f"{exp_dir} is in use by another training run ({holder}); wait for it to end, "
                             "or use another --output") from None
        old = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if old:
            logger.warning("%s: taking over a stale lock (%s is no longer running)", path, _holder(old))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()}\n".encode(), 0)
        previous = os.environ.get(ENV)
        os.environ[ENV] = str(path.resolve())  # for torchrun workers we launch
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = previous
            os.ftruncate(fd, 0)  # released cleanly: nothing stale left behind
    finally:
        os.close(fd)  # closing releases the flock
