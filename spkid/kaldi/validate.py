"""Check a Kaldi data dir as Kaldi's utils/validate_data_dir.sh; every problem names file:line.

Errors: a missing required file, a table not sorted (LC_ALL=C) or with duplicate ids, utt2spk not
sorted by speaker too (unless no_spk_sort), spk2utt not matching utt2spk, a table whose ids differ from
utt2spk's (or spk2utt's, or the recordings'), malformed segments/utt2dur/utt2num_frames lines.
Warnings: a single speaker, utterance ids that do not start with their speaker id.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from spkid.errors import SpkidError, where
from spkid.kaldi.tables import TableLine, c_sort_key, check_table, iter_table

logger = logging.getLogger("spkid")

# tables keyed by utterance, by speaker, and by recording (= utterance when there is no segments file)
UTT_FILES = ["utt2spk", "feats.scp", "vad.scp", "text", "utt2dur", "utt2num_frames", "utt2lang",
             "utt2uniq", "utt2warp"]
SPK_FILES = ["spk2gender", "spk2warp", "cmvn.scp"]
RECO_FILES = ["reco2file_and_channel", "reco2dur"]
MAX_SHOWN = 3  # differences reported per pair of tables


@dataclass(frozen=True)
class Problem:
    level: str  # "error" or "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}" if self.level == "warning" else self.message


def segment_fields(value: str) -> tuple[str, float, float] | None:
    """(recording, start, end) of a segments value `<reco> <start> <end> [<channel>]`, None if malformed.

    end -1 means "to the end of the recording" (as extract-segments); otherwise end > start >= 0.
    """
    fields = value.split()
    if len(fields) not in (3, 4):
        return None
    try:
        start, end = float(fields[1]), float(fields[2])
        if len(fields) == 4:
            int(fields[3])
    except ValueError:
        return None
    if start < 0 or (end != -1 and end <= start):
        return None
    return fields[0], start, end


class _Checker:
    def __init__(self, data: Path):
        self.data = data
        self.problems: list[Problem] = []

    def error(self, message: str) -> None:
        self.problems.append(Problem("error", message))

    def warn(self, message: str) -> None:
        self.problems.append(Problem("warning", message))

    def load(self, name: str) -> list[TableLine] | None:
        """The lines of a table, first of each id (disorder recorded), or None when absent or unreadable."""
        path = self.data / name
        if not path.is_file():
            return None
        try:
            lines = list(iter_table(path, require_value=name != "text"))  # empty transcripts are fine
            with open(path, "rb") as handle:
                handle.seek(max(0, path.stat().st_size - 1))
                if path.stat().st_size and handle.read(1) != b"\n":
                    self.error(f"{where(str(path), len(lines))}: last line does not end with a newline")
        except SpkidError as err:
            self.error(str(err))
            return None
        if not lines:
            self.error(f"{path}: empty file")
            return None
        _, bad = check_table(lines, str(path))
        for key, reason in bad[:MAX_SHOWN]:
            self.error(f"{reason}: '{key}'")
        if len(bad) > MAX_SHOWN:
            self.error(f"{path}: {len(bad) - MAX_SHOWN} more duplicate or out-of-order ids")
        unique: dict[str, TableLine] = {}
        for item in lines:  # out-of-order lines stay, so that the other checks do not report them again
            unique.setdefault(item.key, item)
        return list(unique.values())

    def same_keys(self, name: str, lines: list[TableLine], ref_name: str, ref: dict[str, int],
                  what: str = "utterance") -> None:
        """Error unless the ids of `lines` (table `name`) are exactly those of `ref` (table `ref_name`)."""
        path, ref_path = str(self.data / name), str(self.data / ref_name)
        keys = {item.key: item.lineno for item in lines}
        extra = [(k, n) for k, n in keys.items() if k not in ref]
        missing = [(k, n) for k, n in ref.items() if k not in keys]
        for key, lineno in extra[:MAX_SHOWN]:
            self.error(f"{where(path, lineno)}: {what} '{key}' is not in {ref_path}")
        for key, lineno in missing[:MAX_SHOWN]:
            self.error(f"{path}: has no {what} '{key}' of {where(ref_path, lineno)}")
        more = max(0, len(extra) - MAX_SHOWN) + max(0, len(missing) - MAX_SHOWN)
        if more:
            self.error(f"{path}: {more} more {what} ids differ from {ref_path} "
                       f"({len(keys)} vs {len(ref)} ids)")

    def values(self, name: str, lines: list[TableLine], ok, expected: str) -> None:
        bad = [item for item in lines if not ok(item.value)]
        for item in bad[:MAX_SHOWN]:
            self.error(f"{where(str(self.data / name), item.lineno)}: bad line '{item.key} {item.value}' "
                       f"(expected {expected})")
        if len(bad) > MAX_SHOWN:
            self.error(f"{self.data / name}: {len(bad) - MAX_SHOWN} more bad lines")


def _number(value: str, integer: bool = False) -> bool:
    fields = value.split()
    try:
        return len(fields) == 1 and (int(fields[0]) if integer else float(fields[0])) > 0
    except ValueError:
        return False


def check_data_dir(data: str | os.PathLike, no_feats: bool = False, no_wav: bool = False,
                   no_text: bool = False, no_spk_sort: bool = False) -> list[Problem]:
    """All problems of a data dir (errors and warnings), in the order validate_data_dir.sh checks them.

    The no_* flags make that file optional (it is still checked when present), as in Kaldi.
    """
    data = Path(data)
    chk = _Checker(data)
    if not data.is_dir():
        chk.error(f"{data}: no such directory")
        return chk.problems
    for name in ("utt2spk", "spk2utt"):
        if not (data / name).is_file():
            chk.error(f"{data / name}: no such file")
    utt2spk, spk2utt = chk.load("utt2spk"), chk.load("spk2utt")
    if utt2spk is None or spk2utt is None:
        return chk.problems
    utts = {item.key: item.lineno for item in utt2spk}
    speakers = {item.key: item.lineno for item in spk2utt}
    u2s_path, s2u_path = str(data / "utt2spk"), str(data / "spk2utt")
    chk.values("utt2spk", utt2spk, lambda v: len(v.split()) == 1, "'<utterance> <speaker>'")
    if not no_spk_sort:
        for prev, item in zip(utt2spk, utt2spk[1:]):
            if c_sort_key(item.value) < c_sort_key(prev.value):
                chk.error(f"{where(u2s_path, item.lineno)}: utt2spk is not sorted by speaker as well "
                          f"('{item.key} {item.value}' after '{prev.key} {prev.value}'); make speaker ids "
                          "prefixes of utterance ids (or pass --no-spk-sort)")
                break
    not_prefixed = [item for item in utt2spk if not item.key.startswith(item.value)]
    if not_prefixed:
        item = not_prefixed[0]
        chk.warn(f"{where(u2s_path, item.lineno)}: {len(not_prefixed)} utterance ids do not start with their "
                 f"speaker id (e.g. '{item.key}' of '{item.value}'); Kaldi recommends speaker-id prefixes")
    if len(spk2utt) == 1:
        chk.warn(f"{s2u_path}: only one speaker; this is probably a bad idea")
    u2s = {item.key: item.value for item in utt2spk}
    listed: dict[str, int] = {}
    mismatch: list[str] = []
    for item in spk2utt:
        spk_utts = item.value.split()
        if spk_utts != sorted(spk_utts, key=c_sort_key):
            mismatch.append(f"{where(s2u_path, item.lineno)}: utterances of speaker '{item.key}' "
                            "are not sorted")
        for utt in spk_utts:
            spk = u2s.get(utt)
            if utt in listed:
                mismatch.append(f"{where(s2u_path, item.lineno)}: utterance '{utt}' is listed twice "
                                f"(also at line {listed[utt]})")
            elif spk is None:
                mismatch.append(f"{where(s2u_path, item.lineno)}: utterance '{utt}' of speaker '{item.key}' "
                                f"is not in {u2s_path}")
            elif spk != item.key:
                mismatch.append(f"{where(s2u_path, item.lineno)}: utterance '{utt}' is under speaker "
                                f"'{item.key}' but {where(u2s_path, utts[utt])} gives speaker '{spk}'")
            listed.setdefault(utt, item.lineno)
    for item in utt2spk:
        if item.key not in listed:
            mismatch.append(f"{where(u2s_path, item.lineno)}: utterance '{item.key}' of speaker "
                            f"'{item.value}' is not in {s2u_path}")
    for message in mismatch[:MAX_SHOWN]:
        chk.error(message + "; spk2utt and utt2spk do not match (utils/fix_data_dir.sh rebuilds spk2utt)")
    if len(mismatch) > MAX_SHOWN:
        chk.error(f"{s2u_path}: {len(mismatch) - MAX_SHOWN} more differences with {u2s_path}")

    text = chk.load("text")
    if not (data / "text").is_file() and not no_text:
        chk.error(f"{data / 'text'}: no such file (if this is by design, specify --no-text)")
    if text is not None:
        for item in text:
            bad = {"<s>", "</s>", "#0"} & set(item.value.split())
            if bad:
                chk.error(f"{where(str(data / 'text'), item.lineno)}: text contains illegal symbol "
                          f"{min(bad)}")
        chk.same_keys("text", text, "utt2spk", utts)

    segments, wav = chk.load("segments"), chk.load("wav.scp")
    recordings = None
    if (data / "segments").is_file() and not (data / "wav.scp").is_file():
        chk.error(f"{data / 'segments'}: segments file exists but no wav.scp")
    if not (data / "wav.scp").is_file() and not no_wav:
        chk.error(f"{data / 'wav.scp'}: no such file (if this is by design, specify --no-wav)")
    if wav is not None:
        for item in wav:
            if item.value.startswith("~"):
                chk.error(f"{where(str(data / 'wav.scp'), item.lineno)}: do not use tilde (~) in wav.scp")
                break
        if segments is not None:
            chk.values("segments", segments, lambda v: segment_fields(v) is not None,
                       "'<utterance> <recording> <start> <end>' with end > start >= 0")
            chk.same_keys("segments", segments, "utt2spk", utts)
            recordings = {}
            for item in segments:
                recordings.setdefault(item.value.split()[0], item.lineno)
            chk.same_keys("wav.scp", wav, "segments", recordings, what="recording")
        else:
            chk.same_keys("wav.scp", wav, "utt2spk", utts)
    feats = chk.load("feats.scp")
    if not (data / "feats.scp").is_file() and not no_feats:
        chk.error(f"{data / 'feats.scp'}: no such file (if this is by design, specify --no-feats)")
    if feats is not None:
        chk.same_keys("feats.scp", feats, "utt2spk", utts)
    for name in SPK_FILES:
        lines = chk.load(name)
        if lines is not None:
            chk.same_keys(name, lines, "spk2utt", speakers, what="speaker")
            if name == "spk2gender":
                chk.values(name, lines, lambda v: v in ("m", "f"), "'<speaker> m|f'")
    for name in ("vad.scp", "utt2lang", "utt2uniq", "utt2warp", "utt2dur", "utt2num_frames"):
        lines = chk.load(name)
        if lines is not None:
            chk.same_keys(name, lines, "utt2spk", utts)
            if name in ("utt2dur", "utt2num_frames"):
                chk.values(name, lines, lambda v, n=name: _number(v, n == "utt2num_frames"),
                           "a positive " + ("integer" if name == "utt2num_frames" else "duration"))
    for name in RECO_FILES:
        lines = chk.load(name)
        if lines is not None:
            if recordings is not None:
                chk.same_keys(name, lines, "segments", recordings, what="recording")
            else:
                chk.same_keys(name, lines, "utt2spk", utts, what="recording")
            if name == "reco2dur":
                chk.values(name, lines, _number, "a positive duration")
    return chk.problems


def validate_data_dir(data: str | os.PathLike, no_feats: bool = False, no_wav: bool = False,
                      no_text: bool = False, no_spk_sort: bool = False) -> list[Problem]:
    """Check a data dir; raise SpkidError (first error, and how many) if it has errors.

    Returns the warnings (also logged) when it is valid.
    """
    problems = check_data_dir(data, no_feats=no_feats, no_wav=no_wav, no_text=no_text,
                              no_spk_sort=no_spk_sort)
    errors = [p for p in problems if p.level == "error"]
    warnings = [p for p in problems if p.level == "warning"]
    for warning in warnings:
        logger.warning(warning.message)
    if errors:
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise SpkidError(f"invalid data dir {data}: {errors[0].message}{more}")
    return warnings
