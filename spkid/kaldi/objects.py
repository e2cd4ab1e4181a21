"""The one reader of Kaldi objects in arks, scp entries and object files; every table input goes through it.

Only what Kaldi writes is accepted: binary `\\0B` matrices and vectors (FM, FV, DM, DV, compressed CM,
CM2, CM3), int32 vectors, text ` [ ... ]` arrays and, where audio is expected, RIFF waves. kaldiio's
own payloads (`PKL` pickles, whose loading runs code, `NPY`, `AUDIO`, `fLaC`) are refused with an
error naming the entry. Input is untrusted: sizes in headers are checked against the bytes really
there before anything is allocated, and a truncated entry (binary or text, ark or scp offset) is an
error naming the entry and the file, never an empty array.
"""
from __future__ import annotations

import io
import os
import re
import struct
import subprocess
from collections.abc import Iterator

import numpy as np

from spkid.errors import SpkidError, where

MATRIX, WAVE = "matrix", "wave"
_CHUNK = 1 << 24  # bytes read at a time from a stream whose size is unknown
_MAX_KEY = 65536
MAX_OBJECT_BYTES = 1 << 34  # 16 GiB: a bound on one object read from a pipe, whose size is unknown
_MAX_TEXT_LINE = 1 << 28
_REFUSED = {  # kaldiio's non-Kaldi payloads, by their leading bytes
    b"PKL": "a pickled Python object (kaldiio 'PKL' entry; loading it could run code)",
    b"NPY": "a numpy payload (kaldiio 'NPY' entry)",
    b"AUDIO": "a kaldiio 'AUDIO' payload",
    b"fLaC": "FLAC data (kaldiio's extension)",
}
_RANGE = re.compile(r"^(.*)\[([^\[\]]*)\]$")
_OFFSET = re.compile(r"^(.*):(-?\d+)$")


class BadObject(Exception):
    """Why one entry could not be read; callers turn it into a SpkidError naming entry and file."""


class _Reader:
    """Exact, bounded reads from a binary file object, with look-ahead that works on pipes too."""

    def __init__(self, handle):
        self.handle = handle
        self.pending = b""  # bytes looked at but not consumed
        try:
            st = os.fstat(handle.fileno())
            self.size = st.st_size if (st.st_mode & 0o170000) == 0o100000 else None
        except (AttributeError, OSError, io.UnsupportedOperation):
            self.size = None

    def tell(self) -> int:
        return self.handle.tell() - len(self.pending)

    def seek(self, offset: int) -> None:
        self.handle.seek(offset)
        self.pending = b""

    def left(self) -> int | None:
        return None if self.size is None else self.size - self.tell()

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end of the file)."""
        data, self.pending = self.pending[:n], self.pending[n:]
        while len(data) < n:
            part = self.handle.read(min(n - len(data), _CHUNK))
            if not part:
                break
            data += part
        return data

    def peek(self, n: int) -> bytes:
        if len(self.pending) < n:
            self.pending += self.read(n)
        return self.pending[:n]

    def readline(self, limit: int) -> bytes:
        if b"\n" in self.pending:
            line, _, self.pending = self.pending.partition(b"\n")
            return line + b"\n"
        line, self.pending = self.pending, b""
        return line + self.handle.readline(limit)

    def exact(self, n: int, what: str) -> bytes:
        """Exactly n bytes, or BadObject: never allocates more than what is really there."""
        if n < 0:
            raise BadObject(f"negative size for {what}")
        left = self.left()
        if left is None and n > MAX_OBJECT_BYTES:
            raise BadObject(f"{what} would need {n} bytes, more than the {MAX_OBJECT_BYTES >> 30} GiB an object "
                            "may have")
        if left is not None and n > left:
            raise BadObject(f"truncated: {what} needs {n} bytes, only {left} left in the file")
        parts, got = [], 0
        while got < n:
            part = self.read(min(n - got, _CHUNK))
            if not part:
                raise BadObject(f"truncated: {what} needs {n} bytes, the file ends after {got}")
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def int32(self, what: str) -> int:
        size = self.exact(1, what)
        if size != b"\x04":
            raise BadObject(f"bad {what}: expected a 4-byte integer, got size byte {size!r}")
        return struct.unpack("<i", self.exact(4, what))[0]


def _token(reader: _Reader) -> bytes:
    token = b""
    while True:
        char = reader.exact(1, "binary type token")
        if char == b" ":
            return token
        token += char
        if len(token) > 4:
            raise BadObject(f"bad binary type token {token!r}")


def _dims(reader: _Reader, matrix: bool) -> tuple[int, int]:
    rows = reader.int32("row count" if matrix else "vector size")
    cols = reader.int32("column count") if matrix else 1
    if rows < 0 or cols < 0:
        raise BadObject(f"negative size {rows} x {cols}")
    return rows, cols


def _read_compressed(reader: _Reader, token: str) -> np.ndarray:
    from kaldiio.compression_header import GlobalHeader, PerColHeader

    head = reader.exact(16, f"{token} header")
    lo, span, rows, cols = struct.unpack("<ffii", head)
    if rows < 0 or cols < 0:
        raise BadObject(f"negative size {rows} x {cols} in {token} header")
    header = GlobalHeader(token, lo, span, rows, cols)
    if token == "CM":
        percol = PerColHeader.read(io.BytesIO(reader.exact(8 * cols, "CM column headers")), header)
        data = np.frombuffer(reader.exact(rows * cols, f"{rows} x {cols} CM matrix"), dtype="u1")
        return percol.char_to_float(data.reshape(cols, rows)).T.astype(np.float32)
    width = 2 if token == "CM2" else 1
    data = np.frombuffer(reader.exact(width * rows * cols, f"{rows} x {cols} {token} matrix"),
                         dtype="<u2" if width == 2 else "u1")
    return header.uint_to_float(data.reshape(rows, cols))


def _read_binary(reader: _Reader) -> np.ndarray:
    reader.exact(2, "binary marker")
    if reader.peek(1) == b"\x04":  # int32 vector, as kaldiio (Int32VectorWriter)
        (size,) = _dims(reader, matrix=False)[:1]
        data = np.frombuffer(reader.exact(5 * size, f"int32 vector of {size}"), dtype="u1").reshape(size, 5)
        if size and (data[:, 0] != 4).any():
            raise BadObject("bad int32 vector (element size bytes are not 4)")
        return np.ascontiguousarray(data[:, 1:]).view("<i4").ravel().astype(np.int32)
    token = _token(reader).decode("latin-1")
    if token in ("CM", "CM2", "CM3"):
        return _read_compressed(reader, token)
    if token not in ("FM", "FV", "DM", "DV"):
        raise BadObject(f"unknown binary type '{token}' (Kaldi has FM, FV, DM, DV, CM, CM2, CM3)")
    rows, cols = _dims(reader, matrix=token[1] == "M")
    width = 4 if token[0] == "F" else 8
    data = reader.exact(rows * cols * width, f"{rows} x {cols} {token} data" if token[1] == "M"
                        else f"{token} vector of {rows}")
    array = np.frombuffer(data, dtype="<f4" if width == 4 else "<f8")
    return array.reshape(rows, cols) if token[1] == "M" else array


def _text_line(reader: _Reader) -> bytes:
    line = reader.readline(_MAX_TEXT_LINE)
    if len(line) >= _MAX_TEXT_LINE:
        raise BadObject("text line too long")
    return line


def _read_text(reader: _Reader) -> np.ndarray:
    """A text array: ` [ a b ]` vector, ` [\\n a b \\n c d ]` matrix (always float, as Kaldi means it),
    or an unbracketed line of integers (alignments, as kaldiio)."""
    line = _text_line(reader)
    stripped = line.lstrip(b" \t")
    if not stripped.startswith(b"["):
        if not line.endswith(b"\n") and not line.strip():
            raise BadObject("truncated: the file ends where the text array should start")
        tokens = line.split()
        try:
            return np.array([int(t) for t in tokens], dtype=np.int32)
        except ValueError:
            raise BadObject(f"not a Kaldi object: text {line[:40]!r}") from None
    rows, body, matrix = [], stripped[1:], False
    while b"]" not in body:
        if body.strip():
            rows.append(body)
        body = _text_line(reader)
        matrix = True
        if not body:
            raise BadObject("truncated: text array without its closing ']'")
    last, _, rest = body.partition(b"]")
    if rest.strip():
        raise BadObject(f"unexpected text after ']': {rest.strip()[:40]!r}")
    if last.strip():
        rows.append(last)
    try:
        values = [np.array(r.split(), dtype=np.float32) for r in rows]
        if not matrix:
            return values[0] if values else np.zeros(0, np.float32)
        if len({len(v) for v in values}) > 1:
            raise BadObject("text matrix rows of different lengths")
        return np.stack(values) if values else np.zeros((0, 0), np.float32)
    except ValueError as err:
        raise BadObject(f"bad number in text array ({err})") from None


def _read_wave(reader: _Reader) -> bytes:
    head = reader.exact(8, "RIFF header")
    size = struct.unpack("<I", head[4:])[0]
    return head + reader.exact(size, "RIFF wave data")


def read_object(reader: _Reader, kind: str = MATRIX):
    """One Kaldi object at the current position: an array, or the bytes of a RIFF wave for WAVE."""
    start = reader.peek(5)
    if not start:
        raise BadObject("truncated: nothing there (the file ends before the entry)")
    for magic, what in _REFUSED.items():
        if start.startswith(magic):
            raise BadObject(f"holds {what}, not a Kaldi object: refused")
    if start.startswith(b"RIFF"):
        if kind != WAVE:
            raise BadObject("holds a wave, not a matrix or vector")
        return _read_wave(reader)
    if kind == WAVE:
        raise BadObject("is not a wave (Kaldi wave archives hold RIFF data)")
    if start.startswith(b"\0B"):
        return _read_binary(reader)
    return _read_text(reader)


def _read_key(reader: _Reader) -> str | None:
    """The next key of an ark (leading whitespace skipped), or None at the end of the archive."""
    char = reader.read(1)
    while char and char.isspace():
        char = reader.read(1)
    if not char:
        return None
    key = bytearray(char)
    while True:
        char = reader.read(1)
        if char == b" ":
            return key.decode("utf-8", "surrogateescape")
        if not char or char in b"\n\t\r" or len(key) > _MAX_KEY:
            shown = bytes(key[:40]).decode("utf-8", "replace")
            raise BadObject(f"truncated or not an archive: key '{shown}' is not followed by a space and an "
                            "object")
        key += char


def iter_ark(handle, source: str, kind: str = MATRIX) -> Iterator[tuple[str, object]]:
    """(key, object) for each entry of an archive read from a binary file object."""
    reader = _Reader(handle)
    count = 0
    while True:
        pos = reader.tell() if reader.size is not None else None
        try:
            key = _read_key(reader)
        except BadObject as err:
            raise SpkidError(f"{source}: after {count} entries: {err}") from None
        if key is None:
            return
        try:
            obj = read_object(reader, kind)
        except BadObject as err:
            at = f" (at byte {pos})" if pos is not None else ""
            raise SpkidError(f"{source}: entry '{key}'{at}{_fmt(err)}") from None
        count += 1
        yield key, obj


def _fmt(err: BadObject) -> str:
    text = str(err)
    return f" {text}" if text.startswith(("holds", "is ")) else f": {text}"


def parse_entry(entry: str) -> tuple[str, int | None, tuple[slice, ...] | None]:
    """`file.ark:offset[rows,cols]` -> (file, offset or None, Kaldi's inclusive ranges as slices)."""
    entry = entry.strip()
    if entry.endswith("|"):
        return entry, None, None
    ranges = None
    m = _RANGE.match(entry)
    if m:
        entry, ranges = m.group(1), _parse_ranges(m.group(2))
    m = _OFFSET.match(entry)
    if m and not os.path.exists(entry):
        offset = int(m.group(2))
        if offset < 0:
            raise BadObject(f"negative offset {offset}")
        return m.group(1), offset, ranges
    return entry, None, ranges


def _parse_ranges(text: str) -> tuple[slice, ...]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            out.append(slice(None))
            continue
        try:
            first, last = (int(x) for x in part.split(":"))
        except ValueError:
            raise BadObject(f"bad range '[{text}]' (Kaldi wants [first:last] or [r1:r2,c1:c2])") from None
        if first < 0 or last < first:
            raise BadObject(f"bad range '[{text}]'")
        out.append(slice(first, last + 1))
    if len(out) > 2:
        raise BadObject(f"bad range '[{text}]'")
    return tuple(out)


def _open_entry(path: str):
    if path.endswith("|"):
        proc = subprocess.Popen(path[:-1], shell=True, stdout=subprocess.PIPE, executable="/bin/bash")
        return proc.stdout, proc
    try:
        return open(path, "rb"), None
    except OSError as err:
        raise BadObject(f"cannot open '{path}' ({err.strerror})") from None


def read_entry(entry: str, kind: str = MATRIX, handles: dict | None = None):
    """Read one scp value / rxfilename: `file.ark:offset`, with an optional `[range]`, `cmd |`, or a file.

    Raises BadObject with the reason. `handles` (path -> open file) keeps arks open between calls.
    """
    path, offset, ranges = parse_entry(entry)
    if handles is not None and path in handles:
        handle, proc = handles[path], None
    else:
        handle, proc = _open_entry(path)
        if handles is not None and proc is None:
            handles[path] = handle
    try:
        reader = _Reader(handle)
        if offset is not None:
            if reader.size is not None and offset >= reader.size:
                raise BadObject(f"truncated: offset {offset} is past the end of '{path}' ({reader.size} bytes)")
            reader.seek(offset)
        elif proc is None and handles is not None:
            reader.seek(0)
        obj = read_object(reader, kind)
    finally:
        if handles is None or proc is not None:
            handle.close()
        if proc is not None:
            proc.wait()
    if proc is not None and proc.returncode != 0:
        raise BadObject(f"command '{path[:-1].strip()}' failed (exit status {proc.returncode})")
    return _apply_ranges(obj, ranges) if ranges else obj


def _apply_ranges(obj, ranges: tuple[slice, ...]):
    if not isinstance(obj, np.ndarray) or len(ranges) > obj.ndim:
        raise BadObject("a [range] needs a matrix (or vector for one range)")
    for axis, sl in enumerate(ranges):
        if sl.stop is not None and sl.stop > obj.shape[axis]:
            raise BadObject(f"range {sl.start}:{sl.stop - 1} is outside the {obj.shape[axis]} "
                            f"{'rows' if axis == 0 else 'columns'}")
    return obj[ranges]


def load_entry(entry: str, kind: str = MATRIX, key: str | None = None):
    """read_entry, with any problem as a SpkidError naming the entry (and key)."""
    try:
        return read_entry(entry, kind)
    except BadObject as err:
        name = f"entry '{key}' ({entry})" if key else f"'{entry}'"
        raise SpkidError(f"{name}{_fmt(err)}") from None


def iter_scp(path: str, kind: str = MATRIX, lines=None) -> Iterator[tuple[str, object]]:
    """(key, object) for each line `<key> <entry>` of an scp, keeping arks open while consecutive."""
    from spkid.kaldi.tables import iter_table

    handles: dict = {}
    try:
        for item in (lines if lines is not None else iter_table(path)):
            if handles and parse_entry_path(item.value) not in handles:
                for handle in handles.values():
                    handle.close()
                handles.clear()
            try:
                obj = read_entry(item.value, kind, handles)
            except BadObject as err:
                raise SpkidError(f"{where(path, item.lineno)}: entry '{item.key}' ({item.value}){_fmt(err)}"
                                 ) from None
            yield item.key, obj
    finally:
        for handle in handles.values():
            handle.close()


def parse_entry_path(entry: str) -> str:
    try:
        return parse_entry(entry)[0]
    except BadObject:
        return entry
