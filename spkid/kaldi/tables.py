"""Kaldi text tables (`<key> <value>` per line): wav.scp, utt2spk, spk2utt, segments, feats.scp, ...

Kaldi data dirs are sorted with `LC_ALL=C`, i.e. by the bytes of the key; `c_sort_key` gives that order.
Errors name the file and line.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from spkid.atomic import atomic_write_text
from spkid.errors import SpkidError, where


def c_sort_key(key: str) -> bytes:
    """Sort key reproducing `LC_ALL=C sort` (byte order of the UTF-8 text)."""
    return key.encode("utf-8", "surrogateescape")


def c_sorted(keys: Iterable[str]) -> list[str]:
    return sorted(keys, key=c_sort_key)


@dataclass(frozen=True)
class TableLine:
    lineno: int
    key: str
    value: str


def iter_table(path, require_value: bool = True, name: str | None = None,
               problems: list[tuple[str, str]] | None = None) -> Iterator[TableLine]:
    """Yield the lines of a Kaldi table (a path, or an open text file called `name`); an empty line or a
    key without value is an error.

    With a `problems` list such lines are appended to it as (key, or `path:line` for an empty line,
    reason) and skipped, so that the caller can process the rest.
    """
    if hasattr(path, "read"):
        handle, path = path, name or "standard input"
    else:
        path = str(path)
        try:
            handle = open(path, encoding="utf-8", errors="surrogateescape")
        except OSError as err:
            raise SpkidError(f"{path}: cannot read ({err.strerror})") from None
    with handle:
        for lineno, line in enumerate(handle, 1):
            line = line.rstrip("\n").rstrip("\r")
            parts = line.strip().split(maxsplit=1)
            reason = None
            if not parts:
                reason = "empty line"
            elif len(parts) == 1 and require_value:
                reason = f"line has a key '{parts[0]}' but no value"
            if reason is not None:
                if problems is None:
                    raise SpkidError(f"{where(path, lineno)}: {reason}")
                problems.append((parts[0], f"{where(path, lineno)}: {reason}") if parts else
                                (where(path, lineno), reason))
                continue
            yield TableLine(lineno, parts[0], parts[1].strip() if len(parts) > 1 else "")


def check_table(lines: Iterable[TableLine], path: str) -> tuple[list[TableLine], list[tuple[str, str]]]:
    """Split table lines into good ones and problems (duplicate or out-of-order keys).

    Returns (good lines, [(key, reason)]); a duplicate or unsorted key is a problem naming file:line.
    """
    good: list[TableLine] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    last = None
    for item in lines:
        if item.key in seen:
            problems.append((item.key, f"duplicate id at {where(path, item.lineno)}"))
            continue
        if last is not None and c_sort_key(item.key) < c_sort_key(last):
            problems.append((item.key, f"id out of order at {where(path, item.lineno)} (after '{last}'; "
                                       "data dirs are sorted with LC_ALL=C: run utils/fix_data_dir.sh)"))
            continue
        seen.add(item.key)
        last = item.key
        good.append(item)
    return good, problems


def read_text_table(path: str | os.PathLike, strict_sorted: bool = False) -> dict[str, str]:
    """Read a table into a dict (in file order). Duplicate keys are an error; so is disorder if asked."""
    path = str(path)
    out: dict[str, str] = {}
    last = None
    for item in iter_table(path):
        if item.key in out:
            raise SpkidError(f"{where(path, item.lineno)}: duplicate id '{item.key}'")
        if strict_sorted and last is not None and c_sort_key(item.key) < c_sort_key(last):
            raise SpkidError(f"{where(path, item.lineno)}: id '{item.key}' out of order "
                             "(data dirs are sorted with LC_ALL=C)")
        out[item.key] = item.value
        last = item.key
    return out


def read_list_table(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a table whose value is a list of tokens (spk2utt, utt2lang, ...)."""
    return {k: v.split() for k, v in read_text_table(path).items()}


def write_table(path: str | os.PathLike, table: dict[str, object], sort: bool = True) -> None:
    """Write `<key> <value>` lines (sorted LC_ALL=C by default); list values are space-joined."""
    keys = c_sorted(table) if sort else list(table)
    lines = []
    for key in keys:
        value = table[key]
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        lines.append(f"{key} {value}\n")
    atomic_write_text(path, "".join(lines))


def utt2spk_to_spk2utt(utt2spk: dict[str, str]) -> dict[str, list[str]]:
    """Invert utt2spk; utterances of a speaker keep the order of utt2spk (as utt2spk_to_spk2utt.pl)."""
    spk2utt: dict[str, list[str]] = {}
    for utt, spk in utt2spk.items():
        spk2utt.setdefault(spk, []).append(utt)
    return spk2utt


def spk2utt_to_utt2spk(spk2utt: dict[str, list[str]]) -> dict[str, str]:
    return {utt: spk for spk, utts in spk2utt.items() for utt in utts}
