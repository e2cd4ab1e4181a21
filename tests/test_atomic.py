"""spkid.atomic.exclusive_lock: one holder per folder (make-shards runs into one output folder), the holder
named, released when the block ends or the process dies."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import shard_data_dir

from spkid.atomic import exclusive_lock
from spkid.errors import SpkidError

HOLD = """import sys, time
from spkid.atomic import exclusive_lock
with exclusive_lock(sys.argv[1], "test run"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_in_child(folder, seconds: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "held\n"
    return child


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    child = hold_in_child(tmp_path / "out", 30)
    try:
        with pytest.raises(SpkidError, match=rf"out is in use by another make-shards run \(pid {child.pid} on "):
            with exclusive_lock(tmp_path / "out", "make-shards run"):
                pass
    finally:
        child.kill()
        child.wait()
    with exclusive_lock(tmp_path / "out", "make-shards run"):  # the dead holder's lock is free again
        assert f"pid {os.getpid()} " in (tmp_path / "out" / ".lock").read_text()
    assert (tmp_path / "out" / ".lock").read_text() == ""


def test_wait_blocks_until_the_holder_is_done(tmp_path):
    child = hold_in_child(tmp_path, 1.0)
    start = time.monotonic()
    with exclusive_lock(tmp_path, "test run", wait=True):
        assert time.monotonic() - start > 0.5  # the child held it for 1 s
    child.wait()


def test_make_shards_into_a_folder_in_use_is_refused(run, tmp_path, shared_data):
    """UX 7: two make-shards into one folder raced (one failed on a .partial-* the other removed)."""
    data = shard_data_dir(tmp_path, shared_data)
    out = tmp_path / "shards"
    with exclusive_lock(out, "make-shards run"):
        proc = run(["spkid", "make-shards", "--data", str(data), "--output", str(out), "--shard-size", "20"],
                   check=False, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(
        f"Error: {out} is in use by another make-shards run (pid {os.getpid()} on "), proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
