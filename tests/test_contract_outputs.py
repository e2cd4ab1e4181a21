"""Outputs: unwritable or clashing outputs are one-line errors found before the work; temporaries never
survive SIGTERM, and those of killed writers (kill -9) are swept by the next write."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
from conftest import run_cmd, spkid_env

from spkid.atomic import STALE_AFTER_S, sweep_stale
from spkid.kaldi.io import TableWriter, read_dict


@pytest.fixture
def good(tmp_path):
    """good.ark with 3 utterances, a regular file `file` (paths under it cannot be created), a dir."""
    with TableWriter(f"ark:{tmp_path}/good.ark") as w:
        for i in range(3):
            w.write(f"utt{i}", np.full((5, 4), i, np.float32))
    (tmp_path / "file").write_text("x\n")
    (tmp_path / "dir").mkdir()
    return tmp_path


def _one_line_error(proc, *words):
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("Error: ") and err.count("Error") == 1, err
    for word in words:
        assert word in err, err
    return err


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def test_ark_and_scp_on_the_same_file_is_refused(good):
    """issue 11.7: `ark,scp:x.ark,x.ark` replaced the archive with the scp, exit 0."""
    d = good
    (d / "x.ark").write_bytes((d / "good.ark").read_bytes())
    before = (d / "x.ark").read_bytes()
    for spec in (f"ark,scp:{d}/x.ark,{d}/x.ark", f"ark,scp:{d}/x.ark,{d}/../{d.name}/x.ark"):
        proc = run_cmd(["spkid", "copy-feats", f"ark:{d}/good.ark", spec], check=False)
        _one_line_error(proc, "same file")
        assert (d / "x.ark").read_bytes() == before
    # a second output on the ark (--write-num-frames) would replace it too
    proc = run_cmd(["spkid", "copy-feats", "--write-num-frames", f"ark,t:{d}/x.ark", f"ark:{d}/good.ark",
                    f"ark:{d}/x.ark"], check=False)
    _one_line_error(proc, "same file")
    assert (d / "x.ark").read_bytes() == before
    # input = output is safe (the ark is written under a temporary name, then renamed)
    run_cmd(["spkid", "copy-feats", f"ark:{d}/x.ark", f"ark:{d}/x.ark"])
    assert (d / "x.ark").read_bytes() == before


@pytest.mark.parametrize("out", ["ark:", "ark:{d}/dir", "ark:{d}/file/x.ark", "ark,scp:{d}/o.ark,{d}/file/o.scp",
                                 "ark,scp:{d}/o.ark,{d}/dir", "ark,scp:{d}/o.ark,"])
def test_unwritable_outputs_fail_before_the_work(good, out):
    """issue 11.8: an unwritable scp failed only after all the work, with a traceback and a leftover ark."""
    d = good
    # the input is a command that leaves a marker: it must never have started
    proc = run_cmd(["spkid", "copy-feats", f"ark:touch {d}/started; cat {d}/good.ark |", out.format(d=d)],
                   check=False)
    _one_line_error(proc)
    assert not (d / "started").exists() and not (d / "o.ark").exists() and _leftovers(d) == []


def test_full_and_closed_outputs(good):
    d = good
    proc = run_cmd(["spkid", "copy-feats", f"ark:{d}/good.ark", "ark:/dev/full"], check=False)
    _one_line_error(proc, "/dev/full", "No space left")
    proc = run_cmd(f"spkid copy-feats ark:{d}/good.ark ark,t:- > /dev/full", check=False)
    _one_line_error(proc, "No space left")
    proc = run_cmd(f"spkid copy-feats ark:{d}/good.ark ark,t:- >&-", check=False)
    _one_line_error(proc, "standard output", "closed")
    (d / "trials").write_text("utt0 utt1\n")
    proc = run_cmd(f"spkid score --trials {d}/trials --enroll 'ark:copy-feats-never-run |' "
                   f"--test ark:{d}/good.ark --output - >&-", check=False)
    _one_line_error(proc, "standard output", "closed")


def _embeddings(d):
    rng = np.random.default_rng(0)
    with TableWriter(f"ark:{d}/emb.ark") as w:
        for spk in range(4):
            for utt in range(4):
                w.write(f"s{spk}-u{utt}", rng.normal(size=8).astype(np.float32) + spk)
    (d / "utt2spk").write_text("".join(f"s{s}-u{u} s{s}\n" for s in range(4) for u in range(4)))
    (d / "trials").write_text("s0-u0 s0-u1 target\ns0-u0 s1-u1 nontarget\ns1-u0 s1-u2 target\n"
                              "s2-u0 s3-u1 nontarget\n")
    (d / "scores").write_text("s0-u0 s0-u1 2.0\ns0-u0 s1-u1 -1.0\ns1-u0 s1-u2 1.5\ns2-u0 s3-u1 0.1\n")
    return f"ark:touch {d}/started; cat {d}/emb.ark |"


@pytest.mark.parametrize("target", ["{d}/dir", "{d}/file/out", "/dev/full"])
def test_scoring_commands_check_outputs_first(good, target):
    """score, train-plda (before its EM), calibrate and mean-embeddings: one line, nothing read first."""
    d = good
    emb = _embeddings(d)
    out = target.format(d=d)
    commands = [
        ["score", "--trials", d / "trials", "--enroll", emb, "--test", emb, "--output", out],
        ["train-plda", emb, d / "utt2spk", out],
        ["train-plda", "--kaldi-dir", f"{d}/file/k", emb, d / "utt2spk", d / "plda.npz"],
        ["calibrate", "--trials", d / "trials", "--scores", d / "scores", "--output", out],
        ["mean-embeddings", emb, out],
        ["mean-embeddings", d / "utt2spk", emb, f"ark:{out}"],
    ]
    for args in commands:
        proc = run_cmd(["spkid", *map(str, args)], check=False)
        _one_line_error(proc)
        if out != "/dev/full":  # a full device is only found when writing
            assert not (d / "started").exists(), args
        (d / "started").unlink(missing_ok=True)
    assert _leftovers(d) == [] and not (d / "plda.npz").exists()


def _wait_for(predicate, what: str, limit: float = 120.0) -> None:
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _start_stuck_writer(d):
    """copy-feats from a command that sends 3 entries and then hangs: the writer holds its temporaries."""
    out = d / "out"
    out.mkdir()
    with open(d / "stderr", "wb") as err:
        proc = subprocess.Popen(["spkid", "copy-feats", "--write-num-frames", f"ark,t:{out}/n",
                                 f"ark:cat {d}/good.ark; exec sleep 30 |", f"ark,scp:{out}/o.ark,{out}/o.scp"],
                                env=spkid_env(), stdout=subprocess.DEVNULL, stderr=err)
    _wait_for(lambda: len(_leftovers(out)) == 2, "the writer's temporaries")
    return proc, out


def test_sigterm_removes_temporaries(good):
    """issue 11.9: `timeout` (SIGTERM) left `.o.ark.*.tmp` behind."""
    proc, out = _start_stuck_writer(good)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert sorted(p.name for p in out.iterdir()) == []
    assert "Traceback" not in (good / "stderr").read_text()


def test_killed_writers_temporaries_are_swept_by_the_next_run(good):
    proc, out = _start_stuck_writer(good)
    proc.kill()
    proc.wait()
    assert len(_leftovers(out)) == 2  # kill -9 cannot be caught
    run_cmd(["spkid", "copy-feats", f"ark:{good}/good.ark", f"ark,scp:{out}/o.ark,{out}/o.scp"])
    assert sorted(p.name for p in out.iterdir()) == ["o.ark", "o.scp"]
    assert list(read_dict(f"scp:{out}/o.scp")) == ["utt0", "utt1", "utt2"]


def test_sweep_keeps_live_writers_and_fresh_unknown_ones(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname().split(".")[0]
    names = {"dead": f".x.ark.{dead.pid}@{host}.abc.tmp", "live": f".x.ark.1@{host}.abc.tmp",
             "old_format_fresh": ".x.ark.k2j3h4.tmp", "old_format_old": ".x.ark.q9w8e7.tmp",
             "live_but_untouched": f".x.ark.1@{host}.zzz.tmp", "other_output": f".y.ark.{dead.pid}@{host}.a.tmp",
             "not_a_temporary": "x.ark.5.tmp"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"")
    old = time.time() - 2 * 3600
    os.utime(tmp_path / names["old_format_old"], (old, old))
    untouched = time.time() - STALE_AFTER_S - 60
    os.utime(tmp_path / names["live_but_untouched"], (untouched, untouched))
    removed = {p.name for p in sweep_stale(tmp_path, "x.ark")}
    assert removed == {names["dead"], names["old_format_old"], names["live_but_untouched"]}
    assert {p.name for p in sweep_stale(tmp_path)} == {names["other_output"]}


def test_checkpoint_saves_sweep_temporaries_of_killed_savers(tmp_path):
    """issue 11.9: a 16 MB `.step-N.pt.*.tmp` survived a completed rerun (and keep_checkpoints pruning)."""
    import torch

    from spkid.train.checkpoint import checkpoint_name, save_checkpoint

    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    host = socket.gethostname().split(".")[0]
    killed = folder / f".{checkpoint_name(50)}.{dead.pid}@{host}.x1.tmp"  # saver killed while saving step 50
    older = folder / f".{checkpoint_name(40)}.abc123.tmp"  # left by an older spkid, hours ago
    for path in (killed, older):
        path.write_bytes(b"\0" * 1000)
    os.utime(older, (time.time() - 7200, time.time() - 7200))
    save_checkpoint(folder / checkpoint_name(100), model_name="ge2e", model_config={}, feature_config={},
                    state_dict={"x": torch.zeros(3)}, step=100)
    assert sorted(p.name for p in folder.iterdir()) == [checkpoint_name(100)]
