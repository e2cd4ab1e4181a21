"""What steps/data/augment_data_dir.py and reverberate_data_dir.py share: Kaldi's table parsing, durations,
copying data-dir files under new ids, and finishing the output dir."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from spkid.errors import SpkidError, where

logger = logging.getLogger("spkid.augment")


def parse_file_to_dict(path: str | Path, value_processor: Callable[[list[str]], object] = lambda x: x[0]) -> dict:
    """Kaldi's parse_file_to_dict: `key fields...` per line, the fields turned into the value."""
    out = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise SpkidError(f"{path}: cannot read ({err.strerror})") from None
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            out[parts[0]] = value_processor(parts[1:])
        except (IndexError, ValueError):
            raise SpkidError(f"{where(str(path), lineno)}: bad line '{line}'") from None
    return out


def wav_scp_entries(path: str | Path) -> list[tuple[str, str]]:
    """(recording, rxfilename) of a wav.scp, in file order (split on single spaces, as Kaldi's scripts)."""
    entries = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise SpkidError(f"{path}: cannot read ({err.strerror})") from None
    for lineno, line in enumerate(lines, 1):
        toks = line.rstrip().split(" ")
        if len(toks) < 2 or not toks[0]:
            raise SpkidError(f"{where(str(path), lineno)}: expected '<recording> <rxfilename>'")
        entries.append((toks[0], " ".join(toks[1:])))
    return entries


def reco2dur(data_dir: str | Path) -> dict[str, float]:
    """DIR/reco2dur; when missing it is computed from wav.scp and written (as utils/data/get_reco2dur.sh)."""
    from spkid.errors import FailureLog
    from spkid.kaldi.audio import AudioError
    from spkid.kaldi.durations import recording_duration
    from spkid.kaldi.tables import write_table

    path = Path(data_dir) / "reco2dur"
    if not path.is_file():
        logger.info("%s: computing the durations of the recordings", path)
        durations, failures = {}, FailureLog(what="recordings")
        for reco, entry in wav_scp_entries(Path(data_dir) / "wav.scp"):
            try:
                durations[reco] = recording_duration(entry)
                failures.ok()
            except AudioError as err:
                failures.fail(reco, str(err))
        failures.finish()
        write_table(path, {r: f"{d:g}" for r, d in durations.items()})
    return parse_file_to_dict(path, lambda x: float(x[0]))


def copy_with_new_ids(src: Path, dest: Path, new_id: Callable[[str], str], fields: tuple[int, ...] = (0,),
                      value_id: Callable[[str], str] | None = None) -> None:
    """Copy a table if it exists, mapping the ids in the given fields (0: the key) with new_id
    (value_id, when given, for the fields after the key)."""
    from spkid.kaldi.tables import write_table

    if not src.is_file():
        return
    value_id = value_id or new_id
    table = {}
    for key, value in parse_file_to_dict(src, lambda x: x).items():
        value = [value_id(v) if i + 1 in fields else v for i, v in enumerate(value)]
        table[new_id(key) if 0 in fields else key] = " ".join(value)
    write_table(dest, table)


def check_output_dir(output_dir: str | Path, inputs: dict[str, str | Path]) -> None:
    """Refuse, before anything is written, an output dir that is or holds one of the `inputs` (what -> path:
    the input data dir, noise dirs, lists; symlinks and trailing slashes resolved), or an existing folder
    that is not a data dir: the output replaces the folder as a whole (staged_dir)."""
    out = Path(os.path.realpath(output_dir))
    for what, path in inputs.items():
        real = Path(os.path.realpath(path))
        if real == out:
            raise SpkidError(f"the output dir {output_dir} is the {what} ({path}): writing it would destroy "
                             "the input; give another output dir")
        if out in real.parents:
            raise SpkidError(f"the output dir {output_dir} holds the {what} ({path}), which replacing it would "
                             "destroy; give another output dir")
    if out.exists() and not out.is_dir():
        raise SpkidError(f"the output dir {output_dir} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not any((out / f).is_file() for f in ("wav.scp", "utt2spk")):
        raise SpkidError(f"the output dir {output_dir} exists and is not a data dir (no wav.scp or utt2spk); "
                         "the output replaces it as a whole: remove it or give another output dir")


@contextmanager
def staged_output(output_dir: str | Path) -> Iterator[Path]:
    """A temporary folder that becomes `output_dir` (replacing it) when the block succeeds, else is removed:
    a failed run leaves neither a half-written output nor a damaged older one."""
    from spkid.atomic import staged_dir

    try:
        with staged_dir(output_dir) as tmp:
            yield tmp
    except OSError as err:
        raise SpkidError(f"{output_dir}: cannot write ({err.strerror or type(err).__name__})") from None


def finish_data_dir(output_dir: Path, name: str | Path | None = None) -> None:
    """spk2utt from utt2spk, then utils/fix_data_dir.sh (sorting, dropping incomplete entries); `name` is the
    dir messages call it (the final name of a staged output)."""
    from spkid.kaldi.datadir import fix_data_dir
    from spkid.kaldi.tables import read_text_table, utt2spk_to_spk2utt, write_table

    write_table(output_dir / "spk2utt", utt2spk_to_spk2utt(read_text_table(output_dir / "utt2spk")))
    try:
        kept, before = fix_data_dir(output_dir)
    except SpkidError as err:
        raise SpkidError(str(err).replace(str(output_dir), str(name or output_dir))) from None
    if kept == 0:
        raise SpkidError(f"{name or output_dir}: no utterance left (of {before})")


def parse_colon_list(text: str, option: str, kind=float) -> list:
    """`20:10:0` -> [20, 10, 0]; integral numbers stay ints (so wav.scp lines read `--snrs='15'` as Kaldi's)."""
    try:
        values = [float(x) for x in text.split(":")]
    except ValueError:
        raise SpkidError(f"{option}: expected numbers separated by ':', got '{text}'") from None
    if kind is int and any(v != int(v) for v in values):
        raise SpkidError(f"{option}: expected integers, got '{text}'")
    return [int(v) if v == int(v) else v for v in values]


def run_main(main: Callable[[list[str]], None], argv: list[str] | None) -> int:
    """Run a script's main: errors a user can cause print one line and exit 1 (no traceback)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s (%(name)s) %(message)s")
    try:
        main(sys.argv[1:] if argv is None else argv)
    except SpkidError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        return 1
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, description kept as written."""
