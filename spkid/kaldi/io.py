"""Kaldi r/wspecifiers: `scp:f`, `ark:f`, `ark:-`, `ark:cmd |`, `ark,t:`, `ark,scp:a.ark,a.scp`.

Reading goes through spkid.kaldi.objects (Kaldi objects only, checked sizes, never kaldiio's pickles).
Writing is done here so that nothing half-written is left under a final name: an `ark,scp:` pair (or
a plain ark file) is written to temporary names and renamed into place on success, scp lines point
at the final ark name, and an aborted write removes the temporaries. Binary output is Kaldi's format
(`\\0B`, `FM`/`FV` token, sizes), written by kaldiio's array writer.
"""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.atomic import atomic_write_text, check_writable, commit, discard, is_special, open_temp
from spkid.errors import SpkidError

logger = logging.getLogger("spkid.kaldi")

_READ_OPTS = {"o", "s", "cs", "p", "ns", "ncs", "no", "np", "bg", "t", "b"}
_WRITE_OPTS = {"t", "b", "f", "nf", "p"}


@dataclass(frozen=True)
class Specifier:
    """A parsed Kaldi r/wspecifier."""

    ark: str | None
    scp: str | None
    opts: frozenset

    @property
    def text(self) -> bool:
        return "t" in self.opts


def parse_specifier(spec: str, write: bool = False) -> Specifier:
    """Parse `ark[,opts]:X`, `scp[,opts]:X` or `ark,scp[,opts]:A,S` as Kaldi does."""
    if ":" not in spec:
        kind = "wspecifier" if write else "rspecifier"
        raise SpkidError(f"'{spec}' is not a Kaldi {kind} (expected e.g. ark:-, scp:feats.scp, "
                         "ark,scp:feats.ark,feats.scp)")
    head, target = spec.split(":", 1)
    kinds = [t.strip() for t in head.split(",")]
    allowed = _WRITE_OPTS if write else _READ_OPTS
    bad = [k for k in kinds if k not in ("ark", "scp") and k not in allowed]
    if bad or ("ark" not in kinds and "scp" not in kinds):
        raise SpkidError(f"'{spec}': bad specifier type/options {','.join(bad or kinds)}")
    ark = scp = None
    if "ark" in kinds and "scp" in kinds:
        if not write:
            raise SpkidError(f"'{spec}': an rspecifier is either ark: or scp:, not both")
        if kinds.index("ark") > kinds.index("scp"):
            raise SpkidError(f"'{spec}': Kaldi wants 'ark,scp:ARK,SCP' (ark first)")
        if "," not in target:
            raise SpkidError(f"'{spec}': ark,scp needs two file names: ark,scp:a.ark,a.scp")
        ark, scp = (p.strip() for p in target.split(",", 1))
    elif "ark" in kinds:
        ark = target.strip()
    else:
        if write:
            raise SpkidError(f"'{spec}': writing to scp: alone is not supported; use ark,scp:a.ark,a.scp")
        scp = target.strip()
    return Specifier(ark=ark, scp=scp, opts=frozenset(k for k in kinds if k not in ("ark", "scp")))


def read_table(rspecifier: str, kind: str = "matrix") -> Iterator[tuple[str, object]]:
    """Iterate (key, array) over a Kaldi rspecifier (matrices or vectors; RIFF bytes for kind "wave").

    Everything is read by spkid.kaldi.objects (Kaldi objects only: no kaldiio pickles), and any
    problem is a SpkidError naming the file and entry. With the `p` option (permissive), as Kaldi,
    a bad scp entry is skipped and a bad archive ends the table, each with a warning.
    """
    from spkid.kaldi.objects import iter_ark, iter_scp
    from spkid.kaldi.tables import iter_table

    spec = parse_specifier(rspecifier)
    permissive = "p" in spec.opts
    if spec.scp is not None:
        lines = None
        if spec.scp == "-" or spec.scp.endswith("|"):  # the scp itself from stdin or a command
            with _open_input(spec.scp, rspecifier) as (handle, name):
                lines = list(iter_table(io.TextIOWrapper(handle, encoding="utf-8", errors="surrogateescape"),
                                        name=name))
        elif not os.path.exists(spec.scp):
            raise SpkidError(f"{spec.scp}: no such file (from rspecifier '{rspecifier}')")
        if permissive:
            yield from _permissive_scp(spec.scp, kind, lines)
        else:
            yield from iter_scp(spec.scp, kind, lines)
        return
    with _open_input(spec.ark, rspecifier) as (handle, name):
        try:
            yield from iter_ark(handle, name, kind)
        except SpkidError as err:
            if not permissive:
                raise
            logger.warning("%s (stopping: permissive read)", err)


def _permissive_scp(path: str, kind: str, lines=None) -> Iterator[tuple[str, object]]:
    from spkid.kaldi.objects import iter_scp
    from spkid.kaldi.tables import iter_table

    for line in lines if lines is not None else iter_table(path):
        try:
            yield from iter_scp(path, kind, [line])
        except SpkidError as err:
            logger.warning("%s (skipped: permissive read)", err)


@contextmanager
def _open_input(source: str, rspecifier: str):
    """A binary handle for an ark source: a file, `-` (stdin) or `cmd |`; the command must succeed."""
    if source == "-":
        if sys.stdin is None:
            raise SpkidError(f"'{rspecifier}': standard input is closed")
        yield sys.stdin.buffer, "standard input"
        return
    if source.endswith("|"):
        cmd = source[:-1].strip()
        proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, executable="/bin/bash")
        try:
            yield proc.stdout, f"'{cmd} |'"
        except BaseException:  # an error, SIGTERM or Ctrl-C: do not wait for the command to finish
            proc.kill()
            proc.stdout.close()
            proc.wait()
            raise
        proc.stdout.close()
        status = proc.wait()
        if status != 0:
            raise SpkidError(f"input command '{cmd}' failed (exit status {status})")
        return
    if os.path.isdir(source):
        raise SpkidError(f"{source}: is a directory, not an archive (from rspecifier '{rspecifier}')")
    try:
        handle = open(source, "rb")
    except OSError as err:
        raise SpkidError(f"{source}: cannot read ({err.strerror}) (from rspecifier '{rspecifier}')") from None
    with handle:
        yield handle, source


def read_dict(rspecifier: str) -> dict[str, np.ndarray]:
    """Load a whole table into memory (for vectors such as vad.scp or embeddings); duplicate keys are errors."""
    out: dict[str, np.ndarray] = {}
    for key, array in read_table(rspecifier):
        if key in out:
            raise SpkidError(f"'{rspecifier}': duplicate key '{key}'")
        out[key] = array
    return out


def output_files(wspecifier_or_path: str) -> list[str]:
    """The files a wspecifier (or plain path) writes: [] for `-` and pipes."""
    target = wspecifier_or_path
    if ":" not in target.split("/")[0]:
        return [] if target == "-" else [target]
    spec = parse_specifier(target, write=True)
    return [f for f in (spec.ark, spec.scp) if f is not None and f != "-" and not f.startswith("|")]


def check_outputs(*targets: str | None) -> None:
    """Before any work: every output (wspecifier or path) can be written, and no two are the same file.

    One-line SpkidErrors: an empty file name, a directory, a path under a regular file, closed standard
    output, `ark,scp:x.ark,x.ark` (the scp would replace the archive), or two outputs naming one file.
    """
    seen: dict[str, str] = {}
    for target in targets:
        if target is None:
            continue
        if ":" in target.split("/")[0]:
            spec = parse_specifier(target, write=True)
            if spec.ark == "" or spec.scp == "":
                raise SpkidError(f"'{target}': empty file name")
            if spec.scp is not None and (spec.ark == "-" or spec.ark.startswith("|")):
                raise SpkidError(f"'{target}': an scp needs the ark to be a file")
            if spec.ark == "-":
                check_writable("-")
        elif target == "-":
            check_writable("-")
        for path in output_files(target):
            check_writable(path)
            real = os.path.realpath(path)
            if real in seen and not is_special(path):
                same = "its archive and scp" if seen[real] == target else f"'{seen[real]}' and '{target}'"
                raise SpkidError(f"{path}: {same} are the same file; the second would replace the first")
            seen[real] = target


class TableWriter:
    """Write (key, array) pairs to a Kaldi wspecifier; use as a context manager.

    On normal exit the output is committed (temporary files renamed into place); on an exception
    it is aborted and the temporaries are removed, so readers never see a truncated ark/scp.
    """

    def __init__(self, wspecifier: str):
        check_outputs(wspecifier)
        self.spec = parse_specifier(wspecifier, write=True)
        self.count = 0
        self._proc: subprocess.Popen | None = None
        self._tmp: list[tuple[str, Path]] = []  # (tmp, final)
        self._scp = None
        ark = self.spec.ark
        self._name = "standard output" if ark == "-" else ark
        if ark == "-":
            self._ark = sys.stdout.buffer
        elif ark.startswith("|"):
            self._proc = subprocess.Popen(ark[1:], shell=True, stdin=subprocess.PIPE)
            self._ark = self._proc.stdin
        else:
            self._ark = self._open_tmp(ark)
        if self.spec.scp is not None:
            try:
                self._scp = self._open_tmp(self.spec.scp)
            except BaseException:
                self.abort()
                raise

    def _open_tmp(self, final: str):
        handle, tmp = open_temp(final, "wb")
        self._tmp.append((tmp, Path(final)))
        return handle

    def write(self, key: str, array: np.ndarray) -> None:
        """Append one entry (float32/float64 matrix or vector)."""
        from kaldiio.matio import write_array, write_array_ascii

        if not key or any(c.isspace() for c in key):
            raise SpkidError(f"invalid Kaldi key '{key}' (empty or containing whitespace)")
        try:
            self._ark.write(f"{key} ".encode())
            if self._scp is not None:
                self._scp.write(f"{key} {self.spec.ark}:{self._ark.tell()}\n".encode())
            if self.spec.text:
                write_array_ascii(self._ark, np.asarray(array))
            else:
                write_array(self._ark, np.asarray(array))
            if "f" in self.spec.opts:
                self._ark.flush()
        except BrokenPipeError:  # the reader of a pipe went away: ends quietly (spkid.cli)
            raise
        except OSError as err:
            raise SpkidError(f"{self._name}: cannot write ({err.strerror or err})") from None
        self.count += 1

    def commit(self) -> None:
        """Finish: flush/close the ark and scp, rename temporaries into place (ark first, then scp)."""
        try:
            if self._ark is sys.stdout.buffer:
                self._ark.flush()
            else:
                self._ark.close()
            if self._scp is not None:
                self._scp.close()
        except BrokenPipeError:  # the reader of a pipe went away: ends quietly (spkid.cli)
            raise
        except OSError as err:
            raise SpkidError(f"{self._name}: cannot write ({err.strerror or err})") from None
        if self._proc is not None and self._proc.wait() != 0:
            raise SpkidError(f"output pipe '{self.spec.ark[1:].strip()}' failed "
                             f"(exit status {self._proc.returncode})")
        for tmp, final in self._tmp:
            commit(tmp, final)
        self._tmp = []

    def abort(self) -> None:
        """Drop everything written (temporary files removed; final names untouched)."""
        try:
            for handle in (self._ark, self._scp):
                if handle is not None and handle is not sys.stdout.buffer:
                    try:
                        handle.close()
                    except OSError:
                        pass
            if self._proc is not None:
                self._proc.wait()
        finally:
            for tmp, _ in self._tmp:
                discard(tmp)
            self._tmp = []

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.commit()
        except BaseException:
            self.abort()
            raise


def write_text_table(wspecifier_or_path: str, table: dict[str, object]) -> None:
    """Write `<key> <value>` text (e.g. utt2num_frames), accepting `ark,t:file` or a plain path."""
    check_outputs(wspecifier_or_path)
    target = wspecifier_or_path
    if ":" in target.split("/")[0]:
        spec = parse_specifier(target, write=True)
        target = spec.ark
    text = "".join(f"{k} {v}\n" for k, v in table.items())
    if target == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise SpkidError(f"standard output: cannot write ({err.strerror or err})") from None
    else:
        atomic_write_text(target, text)
