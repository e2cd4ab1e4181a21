"""Kaldi data dirs: load, fix, subset, combine and split them as Kaldi's utils/*.sh do.

A data dir holds tables keyed by utterance (utt2spk, feats.scp, vad.scp, text, utt2dur, ...), by speaker
(spk2utt, spk2gender, cmvn.scp) and by recording (wav.scp and reco2dur when a `segments` file maps
utterances to recordings; without segments wav.scp is keyed by utterance). Every table is sorted with
LC_ALL=C. utt2spk is primary; spk2utt is derived from it. Checking is in `spkid.kaldi.validate`.
"""
from __future__ import annotations

import logging
import os
import random
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from spkid.errors import SpkidError, where
from spkid.kaldi.audio import AudioItem, list_audio
from spkid.kaldi.split import split_indices, split_lists, split_scp
from spkid.kaldi.tables import (
    c_sort_key,
    c_sorted,
    iter_table,
    read_text_table,
    utt2spk_to_spk2utt,
    write_table,
)
from spkid.kaldi.validate import (
    RECO_FILES,
    SPK_FILES,
    UTT_FILES,
    check_data_dir,
    segment_fields,
    validate_data_dir,
)

__all__ = ["DataDir", "load_data_dir", "fix_data_dir", "subset_data_dir", "combine_data_dirs",
           "split_data_dir", "split_scp", "split_lists", "split_indices", "check_data_dir",
           "validate_data_dir"]

logger = logging.getLogger("spkid")
Log = Callable[[str], None]
# files fix/subset/combine/split carry over, by what they are keyed on
UTT_KEYED = [f for f in UTT_FILES if f != "utt2spk"]


@dataclass
class DataDir:
    """A data dir: `tables` maps file name -> {key: value} (every known file present, after
    `load_data_dir`; `DataDir(path)` reads a table when first asked for). The one way to its files."""

    path: Path
    tables: dict[str, dict[str, str]] = field(default_factory=dict)
    utt_extra: list[str] = field(default_factory=list)  # extra utterance-keyed tables it carries

    @property
    def utt2spk(self) -> dict[str, str]:
        return self.tables["utt2spk"]

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        return utt2spk_to_spk2utt({u: self.utt2spk[u] for u in c_sorted(self.utt2spk)})

    @property
    def segments(self) -> dict[str, str] | None:
        return self.tables.get("segments")

    def recording_of(self, utt: str) -> str | None:
        """The wav.scp key of an utterance: its segments recording (None if it has no segment line),
        or itself without segments."""
        if self.segments is None:
            return utt
        seg = self.segments.get(utt)
        return seg.split()[0] if seg else None

    def recordings(self, utts: Iterable[str] | None = None) -> set[str]:
        recos = {self.recording_of(u) for u in (self.utt2spk if utts is None else utts)}
        return {r for r in recos if r is not None}

    def file(self, name: str) -> Path | None:
        """The path of one of its files, None when it has none."""
        path = self.path / name
        return path if path.is_file() else None

    def table(self, name: str) -> dict[str, str]:
        """One `<key> <value>` table, read once (a missing file is an error)."""
        if name not in self.tables:
            if self.file(name) is None:
                raise SpkidError(f"{self.path}: no {name} in data dir")
            self.tables[name] = read_text_table(self.path / name)
        return self.tables[name]

    @property
    def wav_scp_path(self) -> Path:
        """wav.scp (a data dir without one is an error)."""
        path = self.file("wav.scp")
        if path is None:
            raise SpkidError(f"{self.path}: no wav.scp in data dir")
        return path

    @property
    def segments_path(self) -> Path | None:
        return self.file("segments")

    @property
    def wav_rspecifier(self) -> str:
        return f"scp:{self.wav_scp_path}"

    def audio_items(self) -> tuple[list[AudioItem], list[tuple[str, str]]]:
        """Its utterances' audio (wav.scp, cut by segments when present) in order, and the problems found
        (id, reason)."""
        return list_audio(self.wav_scp_path, self.segments_path)

    def keyed_by(self, name: str) -> str:
        """What a table's keys are: "utt", "reco" (recording) or "spk"."""
        if name in UTT_FILES or name == "segments" or name in self.utt_extra:
            return "utt"
        return "reco" if name in ("wav.scp", *RECO_FILES) else "spk"


def known_files(extra_utt: Iterable[str] = (), extra_spk: Iterable[str] = ()) -> list[str]:
    return [*UTT_FILES, *extra_utt, "segments", "wav.scp", *RECO_FILES, "spk2utt", *SPK_FILES, *extra_spk]


def load_data_dir(path: str | os.PathLike, extra_utt: Iterable[str] = (),
                  extra_spk: Iterable[str] = ()) -> DataDir:
    """Read every known table of a data dir (duplicate ids are an error naming file:line)."""
    path = Path(path)
    if not path.is_dir():
        raise SpkidError(f"{path}: no such data directory")
    if not (path / "utt2spk").is_file():
        raise SpkidError(f"{path}/utt2spk: no such file (every data dir needs one)")
    data = DataDir(path, utt_extra=list(extra_utt))
    for name in known_files(extra_utt, extra_spk):
        if (path / name).is_file() and name != "spk2utt":
            data.tables[name] = read_text_table(path / name) if name != "text" else _read_text(path / name)
    return data


def _read_text(path: Path) -> dict[str, str]:
    """Read `text`, where an utterance may have an empty transcript (a line with only its id)."""
    table: dict[str, str] = {}
    for item in iter_table(path, require_value=False):
        if item.key in table:
            raise SpkidError(f"{where(str(path), item.lineno)}: duplicate id '{item.key}'")
        table[item.key] = item.value
    return table


def _read_first_wins(path: Path) -> tuple[dict[str, str], dict[str, int], bool]:
    """Read a table keeping the first line of each key: (table, line numbers, whether sorted and unique)."""
    table: dict[str, str] = {}
    linenos: dict[str, int] = {}
    clean, last = True, None
    for item in iter_table(path, require_value=path.name != "text"):
        if item.key in table or (last is not None and c_sort_key(item.key) < c_sort_key(last)):
            clean = False
        if item.key not in table:
            table[item.key], linenos[item.key] = item.value, item.lineno
        last = item.key
    return table, linenos, clean


def _filtered(table: dict[str, str], keep: set[str]) -> dict[str, str]:
    return {k: v for k, v in table.items() if k in keep}


def _positive(value: str, integer: bool = False) -> bool:
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        return False
    return number > 0


def fix_data_dir(path: str | os.PathLike, utt_extra_files: Iterable[str] = (),
                 spk_extra_files: Iterable[str] = (), log: Log = logger.info) -> tuple[int, int]:
    """Repair a data dir as Kaldi's utils/fix_data_dir.sh; returns (utterances kept, utterances before).

    Sorts every table (LC_ALL=C, first line of a duplicate key wins), keeps only the utterances present in
    every utterance-keyed table (utt2dur/utt2num_frames only where positive; wav.scp through segments),
    with a speaker in cmvn.scp/spk2gender when those exist and a recording in wav.scp; drops speakers
    and recordings left without utterances and rebuilds spk2utt. The originals go to `.backup/`.
    Unlike Kaldi, vad.scp and the other utterance tables also restrict the utterances, so that the result
    always passes validation.
    """
    path = Path(path)
    if not path.is_dir():
        raise SpkidError(f"{path}: no such directory")
    if not (path / "utt2spk").is_file():
        raise SpkidError(f"{path}/utt2spk: no such file")
    utt_extra, spk_extra = list(utt_extra_files), list(spk_extra_files)
    backup = path / ".backup"
    backup.mkdir(exist_ok=True)
    tables: dict[str, dict[str, str]] = {}
    for name in known_files(utt_extra, spk_extra):
        if (path / name).is_file():
            shutil.copy2(path / name, backup / name)
            tables[name], linenos, clean = _read_first_wins(path / name)
            if not clean:
                log(f"fix_data_dir.sh: file {path / name} is not in sorted order or not unique, sorting it")
            if name == "utt2spk":
                u2s_lines = linenos
    utt2spk, u2s_path = tables["utt2spk"], str(path / "utt2spk")
    for utt, spk in utt2spk.items():
        if len(spk.split()) != 1:
            raise SpkidError(f"{where(u2s_path, u2s_lines[utt])}: utterance '{utt}' has speaker '{spk}' "
                             "(expected one field)")
    ordered = c_sorted(utt2spk)
    for prev, utt in zip(ordered, ordered[1:]):
        if c_sort_key(utt2spk[utt]) < c_sort_key(utt2spk[prev]):
            raise SpkidError(f"{where(u2s_path, u2s_lines[utt])}: utt2spk is not sorted by speaker as well as "
                             f"by utterance ('{utt} {utt2spk[utt]}' sorts after '{prev} {utt2spk[prev]}'); "
                             "fix this by making speaker ids prefixes of utterance ids")
    segments = tables.get("segments")
    wav = tables.get("wav.scp")
    if segments is not None:
        if wav is None:
            raise SpkidError(f"{path}/segments exists but not {path}/wav.scp")
        good = {u: v for u, v in segments.items() if segment_fields(v) is not None}
        if len(good) < len(segments):
            log(f"fix_data_dir.sh: dropped {len(segments) - len(good)} malformed lines of "
                f"{path / 'segments'}")
        tables["segments"] = segments = {u: v for u, v in good.items() if v.split()[0] in wav}
    utts = set(utt2spk)
    for name in [*UTT_KEYED, *utt_extra, "segments"] + (["wav.scp"] if segments is None else []):
        if name in tables:
            table = tables[name]
            if name in ("utt2dur", "utt2num_frames"):
                table = {u: v for u, v in table.items() if _positive(v, name == "utt2num_frames")}
            utts &= set(table)
    for name in ("cmvn.scp", "spk2gender"):
        if name in tables:
            utts = {u for u in utts if utt2spk[u] in tables[name]}
    if not utts:
        raise SpkidError(f"fix_data_dir.sh: no utterances remained in {path}: not proceeding further")
    speakers = {utt2spk[u] for u in utts}
    recordings = {segments[u].split()[0] for u in utts} if segments is not None else utts
    keep_by_name = {**{n: utts for n in [*UTT_FILES, *utt_extra, "segments"]},
                    **{n: speakers for n in [*SPK_FILES, *spk_extra]},
                    **{n: recordings for n in ["wav.scp", *RECO_FILES]}}
    for name, table in tables.items():
        if name == "spk2utt":
            continue
        kept = _filtered(table, keep_by_name[name])
        if len(kept) != len(table):
            log(f"fix_data_dir.sh: filtered {path / name} from {len(table)} to {len(kept)} lines")
        write_table(path / name, kept)
    write_table(path / "spk2utt", utt2spk_to_spk2utt({u: utt2spk[u] for u in c_sorted(utts)}))
    if len(utts) != len(utt2spk):
        log(f"fix_data_dir.sh: kept {len(utts)} utterances out of {len(utt2spk)}")
    else:
        log(f"fix_data_dir.sh: kept all {len(utt2spk)} utterances.")
    log(f"fix_data_dir.sh: old files are kept in {backup}")
    return len(utts), len(utt2spk)


def write_parts(src: DataDir, dests: list[Path], parts: list[list[str]]) -> None:
    """Write data dirs `dests[i]` holding the utterances `parts[i]` of `src` (one pass over each table).

    Each gets the speakers and recordings of its utterances; other known tables in a dest are removed.
    """
    where_: dict[str, dict[str, set[int]]] = {"utt": {}, "spk": {}, "reco": {}}
    for i, part in enumerate(parts):
        for utt in part:
            where_["utt"].setdefault(utt, set()).add(i)
            where_["spk"].setdefault(src.utt2spk[utt], set()).add(i)
            reco = src.recording_of(utt)
            if reco is not None:
                where_["reco"].setdefault(reco, set()).add(i)
    for dest in dests:
        dest.mkdir(parents=True, exist_ok=True)
    for name, table in src.tables.items():
        index = where_[src.keyed_by(name)]
        outs: list[dict[str, str]] = [{} for _ in parts]
        for key, value in table.items():
            for i in index.get(key, ()):
                outs[i][key] = value
        for dest, out in zip(dests, outs):
            write_table(dest / name, out)
    for dest, part in zip(dests, parts):
        write_table(dest / "spk2utt", utt2spk_to_spk2utt({u: src.utt2spk[u] for u in c_sorted(part)}))
        for name in known_files():  # a table the source does not have must not linger from before
            if name not in src.tables and name != "spk2utt" and (dest / name).is_file():
                (dest / name).unlink()


def _read_id_list(path: str | os.PathLike) -> list[str]:
    """The first field of each non-empty line of a list file (as utils/filter_scp.pl reads it)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as err:
        raise SpkidError(f"{path}: cannot read ({err.strerror})") from None
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def subset_data_dir(src: str | os.PathLike, dest: str | os.PathLike, num: int | None = None, *,
                    first: bool = False, last: bool = False, per_spk: bool = False, speakers: bool = False,
                    shortest: bool = False, random_pick: bool = False, seed: int = 777,
                    utt_list: str | os.PathLike | None = None, spk_list: str | os.PathLike | None = None,
                    log: Log = logger.info) -> int:
    """Subset a data dir as Kaldi's utils/subset_data_dir.sh; returns the number of utterances kept.

    With `num` utterances: evenly spread over the dir (default, as Kaldi's subset_scp.pl), `first`,
    `last`, `shortest` (by utt2dur or utt2num_frames), `random_pick` (seeded), `speakers` (random whole
    speakers until `num` utterances), `per_spk` (`num` per speaker, evenly spaced). Or by `utt_list`
    / `spk_list` files (first field of each line).
    """
    data = load_data_dir(src)
    if Path(dest).resolve() == data.path.resolve():
        raise SpkidError(f"subset_data_dir: destination {dest} is the source")
    all_utts = c_sorted(data.utt2spk)
    modes = sum(bool(x) for x in (first, last, per_spk, speakers, shortest, random_pick, utt_list, spk_list))
    if modes > 1:
        raise SpkidError("subset_data_dir: the selection options are exclusive; give at most one")
    if utt_list is None and spk_list is None and (num is None or num < 0):
        raise SpkidError("subset_data_dir: need a number of utterances (or --utt-list / --spk-list)")
    if utt_list is not None:
        wanted = set(_read_id_list(utt_list))
        utts = [u for u in all_utts if u in wanted]
    elif spk_list is not None:
        wanted = set(_read_id_list(spk_list))
        utts = [u for u in all_utts if data.utt2spk[u] in wanted]
    elif per_spk:
        utts = []
        for spk_utts in data.spk2utt.values():  # Kaldi: stride `skip`, the largest with num*skip <= n
            skip = max(1, len(spk_utts) // num) if num else 1
            utts += spk_utts[: num * skip: skip] if num else []
    elif speakers:
        spk_list_shuffled = c_sorted(data.spk2utt)
        random.Random(seed).shuffle(spk_list_shuffled)
        utts, spk2utt = [], data.spk2utt
        for spk in spk_list_shuffled:
            if len(utts) >= num:
                break
            utts += spk2utt[spk]
    else:
        if num > len(all_utts):
            raise SpkidError(f"subset_data_dir: cannot subset to {num} utterances: {src} has only "
                             f"{len(all_utts)}")
        if first:
            utts = all_utts[:num]
        elif last:
            utts = all_utts[len(all_utts) - num:]
        elif random_pick:
            utts = random.Random(seed).sample(all_utts, num)
        elif shortest:
            name = next((n for n in ("utt2dur", "utt2num_frames") if n in data.tables), None)
            if name is None:
                raise SpkidError(f"subset_data_dir --shortest: {src} has no utt2dur or utt2num_frames "
                                 "(run utils/data/get_utt2dur.sh)")
            lengths = data.tables[name]
            utts = sorted(all_utts, key=lambda u: (float(lengths.get(u, "inf")), c_sort_key(u)))[:num]
        else:  # evenly spread, as subset_scp.pl
            utts = [all_utts[int(i * len(all_utts) / num)] for i in range(num)] if num else []
    if not utts:
        raise SpkidError(f"subset_data_dir: no utterances of {src} selected")
    write_parts(data, [Path(dest)], [list(dict.fromkeys(utts))])
    kept = len(set(utts))
    log(f"subset_data_dir.sh: reducing #utt from {len(all_utts)} to {kept}")
    return kept


def combine_data_dirs(dest: str | os.PathLike, srcs: list[str | os.PathLike], extra_files: Iterable[str] = (),
                      skip_fix: bool = False, log: Log = logger.info) -> None:
    """Combine data dirs as Kaldi's utils/combine_data.sh; an utterance id in two sources is an error.

    A table is combined when every source has it. If only some sources have segments, the others get
    whole-recording segments from their utt2dur (their wav.scp is keyed by utterance = recording).
    Speaker and recording tables may repeat a key only with the same value.
    """
    if not srcs:
        raise SpkidError("combine_data: no source data dirs")
    dirs = [load_data_dir(s, extra_utt=extra_files) for s in srcs]
    dest = Path(dest)
    if any(dest.resolve() == d.path.resolve() for d in dirs):
        raise SpkidError(f"combine_data: destination {dest} is also a source")
    with_segments = [d.segments is not None for d in dirs]
    combined: dict[str, dict[str, str]] = {}
    origin: dict[str, dict[str, Path]] = {}
    names = [n for n in known_files(extra_files) if n != "spk2utt"]
    for name in names:
        present = [name in d.tables for d in dirs]
        if name == "segments" and any(present):
            for d in dirs:
                if d.segments is None:
                    if "utt2dur" not in d.tables:
                        raise SpkidError(f"combine_data: {d.path} has no segments and no utt2dur to "
                                         "make them (run utils/data/get_utt2dur.sh)")
                    durs = d.tables["utt2dur"]
                    missing = [u for u in d.utt2spk if u not in durs]
                    if missing:
                        raise SpkidError(f"combine_data: {d.path}/utt2dur has no duration for '{missing[0]}' "
                                         f"(and {len(missing) - 1} more) to make its segments")
                    d.tables["segments"] = {u: f"{u} 0 {durs[u]}" for u in d.utt2spk}
        elif not all(present):
            if any(present):
                log(f"combine_data.sh [info]: not combining {name} as it does not exist in every source")
            continue
        table, seen = combined.setdefault(name, {}), origin.setdefault(name, {})
        by_value = name in SPK_FILES or name in ("wav.scp", *RECO_FILES) and any(with_segments)
        for d in dirs:
            for key, value in d.tables[name].items():
                if key in table and (not by_value or table[key] != value):
                    what = "utterance" if not by_value else "id"
                    raise SpkidError(f"combine_data: duplicate {what} '{key}' in {d.path / name} and "
                                     f"{seen[key] / name}" + (" with different values" if by_value else ""))
                table[key] = value
                seen[key] = d.path
        log(f"combine_data.sh: combined {name}")
    dest.mkdir(parents=True, exist_ok=True)
    for name in known_files(extra_files):  # tables of an earlier dest go (not the whole folder)
        if name not in combined and (dest / name).is_file():
            (dest / name).unlink()
    for name, table in combined.items():
        write_table(dest / name, table)
    utt2spk = combined["utt2spk"]
    write_table(dest / "spk2utt", utt2spk_to_spk2utt({u: utt2spk[u] for u in c_sorted(utt2spk)}))
    if not skip_fix:
        fix_data_dir(dest, utt_extra_files=extra_files, log=log)


def _split_is_fresh(data: Path, split_root: Path, num: int) -> bool:
    for n in range(1, num + 1):
        part = split_root / str(n)
        if not (part / "utt2spk").is_file():
            return False
        for name in known_files():
            src, dst = data / name, part / name
            if src.is_file() != dst.is_file() or src.is_file() and dst.stat().st_mtime < src.stat().st_mtime:
                return False
    return True


def split_data_dir(path: str | os.PathLike, num: int, per_utt: bool = False) -> list[Path]:
    """Split a data dir into `path`/split{num}[utt]/{1..num}/ as Kaldi's utils/split_data.sh.

    By speaker (no speaker in two parts) unless per_utt; every utterance lands in exactly one part and
    each part is a data dir with its utterances, speakers and recordings. An up-to-date split is kept.
    """
    path = Path(path)
    split_root = path / f"split{num}{'utt' if per_utt else ''}"
    parts_dirs = [split_root / str(n) for n in range(1, num + 1)]
    if num < 1:
        raise SpkidError(f"split_data: invalid number of parts {num}")
    if _split_is_fresh(path, split_root, num):
        return parts_dirs
    data = load_data_dir(path)
    utts = c_sorted(data.utt2spk)
    for name in ("feats.scp", "text"):
        if name in data.tables and len(data.tables[name]) != len(utts):
            logger.warning("split_data.sh: %s has %d lines but utt2spk %d; utils/fix_data_dir.sh %s "
                           "can fix this", path / name, len(data.tables[name]), len(utts), path)
    parts = split_lists(utts, num, None if per_utt else data.utt2spk, what=str(path / "utt2spk"))
    write_parts(data, parts_dirs, parts)
    return parts_dirs
