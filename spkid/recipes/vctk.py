"""VCTK through lhotse's prepare_vctk / download_vctk: both releases, told apart by their audio folder.

0.80 (CSTR "VCTK-Corpus"): <corpus-dir>/wav48/<speaker>/<speaker>_<n>.wav, speaker-info.txt with ids
without the `p` (`225  23  F  English  Southern  England`). 0.92 (Edinburgh "VCTK-Corpus-0.92"):
<corpus-dir>/wav48_silence_trimmed/<speaker>/<speaker>_<n>_mic1.flac and _mic2.flac (--mic picks one),
speaker-info.txt with ids `p225`. Both: <corpus-dir>/txt/<speaker>/<speaker>_<n>.txt (one line) and
speaker-info.txt's header `ID AGE GENDER ACCENTS REGION ...`. The audio is 48 kHz: the recipes resample
when computing features. lhotse skips p315 (no text), p280 with mic2 and p362's missing files.
<corpus-dir> may also be the folder holding VCTK-Corpus-0.92/ or VCTK-Corpus/ (where --download puts it).
"""
from __future__ import annotations

from pathlib import Path

from spkid.errors import SpkidError, where
from spkid.recipes.corpus import Corpus, first_missing, require_dir, require_file

LAYOUT = ("<corpus-dir>/speaker-info.txt, <corpus-dir>/txt/<speaker>/<speaker>_<n>.txt and "
          "<corpus-dir>/wav48/<speaker>/<speaker>_<n>.wav (0.80) or "
          "<corpus-dir>/wav48_silence_trimmed/<speaker>/<speaker>_<n>_mic{1,2}.flac (0.92)")
EDINBURGH_SKIPPED = ("p280", "p362")  # lhotse skips these when their audio is missing


def resolve(path: Path) -> Path:
    for name in ("VCTK-Corpus-0.92", "VCTK-Corpus"):
        if (path / name).is_dir() and not (path / "txt").is_dir():
            return path / name
    return path


def is_edinburgh(root: Path) -> bool:
    return (root / "wav48_silence_trimmed").is_dir()


def check(root: Path, parts: list[str], mic: str = "mic2") -> None:
    require_dir("vctk", root, f"lhotse's prepare_vctk expects {LAYOUT}")
    info = root / "speaker-info.txt"
    require_file("vctk", info, f"lhotse's prepare_vctk expects {LAYOUT}")
    lines = info.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or not {"ID", "AGE", "GENDER", "ACCENTS", "REGION"} <= set(lines[0].split()):
        raise SpkidError(f"vctk: {where(str(info), 1)}: expected the header 'ID AGE GENDER ACCENTS REGION'")
    for lineno, line in enumerate(lines[1:], 2):
        fields = line.split()
        if len(fields) < 4 or not fields[1].isdigit():
            raise SpkidError(f"vctk: {where(str(info), lineno)}: expected 'ID AGE GENDER ACCENTS [REGION]'")
    edinburgh = is_edinburgh(root)
    audio_dir = root / ("wav48_silence_trimmed" if edinburgh else "wav48")
    require_dir("vctk", audio_dir, f"lhotse's prepare_vctk expects {LAYOUT}")
    require_dir("vctk", root / "txt", f"lhotse's prepare_vctk expects {LAYOUT}")
    texts = sorted((root / "txt").rglob("*.txt"))
    if not texts:
        raise SpkidError(f"vctk: no .txt files under {root / 'txt'} (lhotse's prepare_vctk expects {LAYOUT})")
    missing = []
    for text in texts:
        speaker = text.name.split("_")[0]
        if edinburgh:
            if speaker in EDINBURGH_SKIPPED:
                continue
            audio = audio_dir / speaker / f"{text.stem}_{mic}.flac"
        else:
            audio = audio_dir / speaker / f"{text.stem}.wav"
        if not audio.is_file():
            missing.append(audio)
    first_missing("vctk", missing, "its transcript is in txt/, and lhotse's prepare_vctk expects the audio there")


def load(root: Path, parts: list[str], num_jobs: int = 1, mic: str = "mic2") -> dict:
    from lhotse.recipes.vctk import prepare_vctk

    manifests = prepare_vctk(root, output_dir=None, use_edinburgh_vctk_url=is_edinburgh(root), mic_id=mic)
    return {"all": (manifests["recordings"], manifests["supervisions"])}


def download(target: Path, parts: list[str], mirror: str | None) -> None:
    """The 0.92 release from Edinburgh DataShare (or the archive at --mirror, a .zip or .tar.gz URL)."""
    from lhotse.recipes.vctk import download_vctk

    if mirror:
        download_vctk(target, url=mirror)
    else:
        download_vctk(target, use_edinburgh_vctk_url=True)


CORPUS = Corpus(name="vctk", parts=("all",), layout=LAYOUT, resolve=resolve, check=check, load=load,
                lhotse_function="prepare_vctk", download=download, default_parts=("all",), options=("mic",))
