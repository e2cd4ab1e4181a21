"""Augmentation sources through lhotse's recipes: MUSAN (openslr 17) and RIRS_NOISES (openslr 28).

As Kaldi's voxceleb/v2 recipe prepares them (steps/data/make_musan.sh, then reco2dur): one data dir per
MUSAN part, data/musan_{noise,music,speech}, each recording its own speaker, id = file stem, with
reco2dur, ready for steps/data/augment_data_dir.py --fg-noise-dir / --bg-noise-dir. RIRS_NOISES: a data
dir per lhotse part (rirs_noises_{sim_rir,real_rir,iso_noise,point_noise}) holding the corpus's own RIR
and noise lists (rir_list, noise_list; sim_rir also {small,medium,large}room_rir_list) with absolute
paths, for reverberate_data_dir.py --rir-set-parameters / --noise-set-parameters.
"""
from __future__ import annotations

import logging
import shlex
from pathlib import Path

from spkid.errors import SpkidError, where
from spkid.recipes.common import captured_warnings, write_manifest, write_recordings_dir
from spkid.recipes.corpus import require_dir, require_file

logger = logging.getLogger("spkid.recipes")

MUSAN_PARTS = ("noise", "music", "speech")
MUSAN_LAYOUT = ("<corpus-dir>/{noise,music,speech}/<source>/<id>.wav, "
                "<corpus-dir>/music/<source>/ANNOTATIONS ('<id> <genres> <Y|N vocals> <musician>')")
RIR_PARTS = ("sim_rir", "real_rir", "iso_noise", "point_noise")
RIR_LAYOUT = ("<corpus-dir>/simulated_rirs/{small,medium,large}room/{rir_list,Room<n>/Room<n>-<k>.wav}, "
              "<corpus-dir>/real_rirs_isotropic_noises/{rir_list,noise_list,*.wav}, "
              "<corpus-dir>/pointsource_noises/{noise_list,*.wav}")
ROOMS = ("smallroom", "mediumroom", "largeroom")
# part -> (its folder, [(list file under the folder, list written into the data dir)])
RIR_LISTS = {
    "sim_rir": ("simulated_rirs", [(f"{room}/rir_list", f"{room}_rir_list") for room in ROOMS]),
    "real_rir": ("real_rirs_isotropic_noises", [("rir_list", "rir_list")]),
    "iso_noise": ("real_rirs_isotropic_noises", [("noise_list", "noise_list")]),
    "point_noise": ("pointsource_noises", [("noise_list", "noise_list")]),
}
NOISE_SOURCES = {"musan": MUSAN_PARTS, "rirs_noises": RIR_PARTS}


def resolve(name: str, path: Path) -> Path:
    """The corpus folder itself, also when given the folder holding musan/ or RIRS_NOISES/."""
    inner = path / ("musan" if name == "musan" else "RIRS_NOISES")
    return inner if inner.is_dir() and not any((path / p).is_dir() for p in ("music", "simulated_rirs")) else path


def check(name: str, root: Path, parts: list[str]) -> None:
    if name == "musan":
        for part in parts:
            require_dir(name, root / part, f"lhotse's prepare_musan expects {MUSAN_LAYOUT}")
            if not any((root / part).rglob("*.wav")):
                raise SpkidError(f"musan: no .wav files under {root / part} (expected {MUSAN_LAYOUT})")
        if "music" in parts and not any((root / "music").rglob("ANNOTATIONS")):
            raise SpkidError(f"musan: no ANNOTATIONS file under {root / 'music'} (expected {MUSAN_LAYOUT})")
        return
    for part in parts:
        folder, lists = RIR_LISTS[part]
        require_dir(name, root / folder, f"lhotse's prepare_rir_noise expects {RIR_LAYOUT}")
        for list_name, _ in lists:
            require_file(name, root / folder / list_name, f"the corpus's own list; expected {RIR_LAYOUT}")


def absolute_list(list_file: Path, root: Path) -> str:
    """A Kaldi RIR/noise list with its `RIRS_NOISES/...` (or relative) file names made absolute."""
    lines = []
    for lineno, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
        fields = shlex.split(line)
        if not fields:
            continue
        rel = fields[-1]
        path = root / rel.split("/", 1)[1] if rel.startswith("RIRS_NOISES/") else Path(rel)
        path = path if path.is_absolute() else root.parent / path
        if not path.is_file():
            raise SpkidError(f"rirs_noises: {where(str(list_file), lineno)}: no file {path}")
        lines.append(" ".join(fields[:-1] + [str(path.absolute())]))
    if not lines:
        raise SpkidError(f"rirs_noises: {list_file} lists nothing")
    return "\n".join(lines) + "\n"


def load(name: str, root: Path, parts: list[str], use_vocals: bool = True) -> dict[str, tuple]:
    """part -> (recordings, music supervisions or None), through lhotse's prepare function."""
    if name == "musan":
        from lhotse.recipes.musan import prepare_musan

        manifests = prepare_musan(root, parts=parts, use_vocals=use_vocals)
        out = {}
        for part in parts:
            recordings, supervisions = manifests[part]["recordings"], manifests[part].get("supervisions")
            if supervisions is not None:  # music: only the annotated ones (and without vocals if asked)
                from lhotse import RecordingSet

                keep = {s.recording_id for s in supervisions}
                recordings = RecordingSet.from_recordings(r for r in recordings if r.id in keep)
            out[part] = (recordings, supervisions)
        return out
    from lhotse.recipes.rir_noise import prepare_rir_noise

    manifests = prepare_rir_noise(root, parts=parts)
    return {part: (manifests[part]["recordings"], None) for part in parts}


def prepare_noise_source(name: str, corpus_dir: str | Path, output_dir: str | Path, parts: list[str] | None = None,
                         download: bool = False, mirror: str | None = None, force: bool = False,
                         use_vocals: bool = True) -> list[Path]:
    """Prepare MUSAN or RIRS_NOISES parts: manifests/<name>_recordings_<part>.jsonl.gz and data dirs."""
    known = NOISE_SOURCES[name]
    parts = list(dict.fromkeys(parts or known))
    bad = [p for p in parts if p not in known]
    if bad:
        raise SpkidError(f"{name}: unknown part '{bad[0]}' (parts: {', '.join(known)})")
    corpus_dir, output_dir = Path(corpus_dir).absolute(), Path(output_dir)
    if download:
        _download(name, corpus_dir, mirror)
    root = resolve(name, corpus_dir)
    dirs = {p: output_dir / f"{name}_{p}" for p in parts}
    todo = [p for p in parts if force or not (dirs[p] / "wav.scp").is_file()]
    for part in sorted(set(parts) - set(todo)):
        logger.info("%s %s: already prepared in %s (skipped; --force redoes it)", name, part, dirs[part])
    if todo:
        check(name, root, todo)
        function = "prepare_musan" if name == "musan" else "prepare_rir_noise"
        logger.info("%s: running lhotse's %s on %s (parts: %s)", name, function, root, " ".join(todo))
        with captured_warnings() as warnings:
            try:
                loaded = load(name, root, todo, use_vocals=use_vocals)
            except SpkidError:
                raise
            except Exception as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise SpkidError(f"{name}: lhotse's {function} failed on {root}: {type(err).__name__}: {first} "
                                 f"(expected {MUSAN_LAYOUT if name == 'musan' else RIR_LAYOUT})") from None
        if warnings:
            logger.warning("%s: lhotse warned %d times; first: %s", name, len(warnings), warnings[0])
        for part in todo:
            _write_part(name, root, part, *loaded[part], output_dir, dirs[part])
    return [dirs[p] for p in parts]


def _write_part(name: str, root: Path, part: str, recordings, supervisions, output_dir: Path, dest: Path) -> None:
    if len(recordings) == 0:
        raise SpkidError(f"{name}: part '{part}' has no recordings in {root}")
    manifests = output_dir / "manifests"
    write_manifest(recordings, manifests / f"{name}_recordings_{part}.jsonl.gz")
    if supervisions is not None:
        write_manifest(supervisions, manifests / f"{name}_supervisions_{part}.jsonl.gz")
    lists = {}
    if name == "rirs_noises":  # read the lists before writing anything: a bad list leaves no data dir
        folder, sources = RIR_LISTS[part]
        lists = {target: absolute_list(root / folder / source, root) for source, target in sources}
        if part == "sim_rir":
            lists["rir_list"] = "".join(lists[f"{room}_rir_list"] for room in ROOMS)
    write_recordings_dir(recordings, dest, lists)
    hours = sum(r.duration for r in recordings) / 3600
    logger.info("%s %s: wrote %s (%d recordings, %.2f h%s)", name, part, dest, len(recordings), hours,
                f"; lists: {' '.join(sorted(lists))}" if lists else "")


def _download(name: str, target: Path, mirror: str | None) -> None:
    try:
        if name == "musan":
            from lhotse.recipes.musan import MUSAN_URL, download_musan

            download_musan(target, url=mirror or MUSAN_URL)
        else:
            from lhotse.recipes.rir_noise import RIR_NOISE_ZIP_URL, download_rir_noise

            download_rir_noise(target, url=mirror or RIR_NOISE_ZIP_URL)
    except Exception as err:
        raise SpkidError(f"{name}: download into {target} failed: {type(err).__name__}: {err}") from None
