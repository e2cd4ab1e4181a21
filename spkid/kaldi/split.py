"""Split a table into parts as Kaldi's utils/split_scp.pl: by lines, or by whole speakers (--utt2spk)."""
from __future__ import annotations

import os

from spkid.errors import SpkidError, where
from spkid.kaldi.tables import atomic_write_text, read_text_table


def split_indices(keys: list[str], num: int, utt2spk: dict[str, str] | None = None,
                  what: str = "input") -> list[list[int]]:
    """Split positions 0..len(keys)-1 into `num` parts as Kaldi's split_scp.pl.

    Without utt2spk: equal numbers of lines, the first parts one longer. With utt2spk: whole speakers
    (in order of first appearance), first spread evenly, then boundary speakers moved to a neighbour
    while that makes the two sizes closer. Fewer speakers (or lines) than parts is an error.
    """
    if num < 1:
        raise SpkidError(f"split_scp: invalid number of parts {num}")
    if utt2spk is None:
        if len(keys) < num:
            raise SpkidError(f"split_scp: cannot split {len(keys)} lines of {what} into {num} parts "
                             "(reduce --nj)")
        base, extra = divmod(len(keys), num)
        bounds = [i * base + min(i, extra) for i in range(num + 1)]
        return [list(range(bounds[i], bounds[i + 1])) for i in range(num)]
    spk_lines: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key not in utt2spk:
            raise SpkidError(f"split_scp: utterance '{key}' of {what} is not in utt2spk")
        spk_lines.setdefault(utt2spk[key], []).append(i)
    spks = list(spk_lines)
    if len(spks) < num:
        raise SpkidError(f"split_scp: refusing to split {what} into {num} parts: it has only {len(spks)} "
                         "speakers (reduce --nj, or split per utterance)")
    parts: list[list[str]] = [[] for _ in range(num)]
    for i, spk in enumerate(spks):
        parts[i * num // len(spks)].append(spk)
    sizes = [sum(len(spk_lines[s]) for s in p) for p in parts]

    def better(src: int, dst: int, n: int) -> bool:  # moving n lines src -> dst brings sizes closer
        return abs((sizes[dst] + n) - (sizes[src] - n)) < abs(sizes[dst] - sizes[src])

    changed = True
    while changed:
        changed = False
        for i in range(num):
            if i + 1 < num and parts[i] and better(i, i + 1, n := len(spk_lines[parts[i][-1]])):
                parts[i + 1].insert(0, parts[i].pop())
                sizes[i], sizes[i + 1], changed = sizes[i] - n, sizes[i + 1] + n, True
            if i > 0 and parts[i] and better(i, i - 1, n := len(spk_lines[parts[i][0]])):
                parts[i - 1].append(parts[i].pop(0))
                sizes[i], sizes[i - 1], changed = sizes[i] - n, sizes[i - 1] + n, True
    if any(not p for p in parts):
        raise SpkidError(f"split_scp: a part of {what} would be empty (too many parts, too few speakers?)")
    return [[i for s in p for i in spk_lines[s]] for p in parts]


def split_lists(keys: list[str], num: int, utt2spk: dict[str, str] | None = None,
                what: str = "input") -> list[list[str]]:
    """Split keys into `num` lists as Kaldi's split_scp.pl (see `split_indices`)."""
    return [[keys[i] for i in part] for part in split_indices(keys, num, utt2spk, what)]


def split_scp(in_path: str | os.PathLike, outs: list[str], utt2spk: str | os.PathLike | None = None,
              only: int | None = None) -> None:
    """Split a table file into the files `outs` as Kaldi's split_scp.pl (lines kept verbatim).

    An output "-" is stdout. With `only` = k, only part k (0-based) is written (split_scp.pl -j N k).
    """
    in_path = str(in_path)
    try:
        with open(in_path, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise SpkidError(f"{in_path}: cannot read ({err.strerror})") from None
    keys = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            raise SpkidError(f"{where(in_path, lineno)}: empty line")
        keys.append(line.split()[0])
    u2s = None if utt2spk is None else read_text_table(utt2spk)
    parts = split_indices(keys, len(outs), u2s, what=in_path)
    for k, (out, part) in enumerate(zip(outs, parts)):
        text = "".join(lines[i] + "\n" for i in part)
        if only is not None and k != only:
            continue
        if out == "-":
            print(text, end="", flush=True)
        else:
            atomic_write_text(out, text)
