"""LibriSpeech (OpenSLR 12) through lhotse's prepare_librispeech / download_librispeech.

Layout: <corpus-dir>/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt with lines
`<speaker>-<chapter>-<utt> TEXT`, the audio beside it as <speaker>-<chapter>-<utt>.flac, and
<corpus-dir>/SPEAKERS.TXT (`ID | SEX | SUBSET | MINUTES | NAME`, `;` comments) for spk2gender.
<corpus-dir> may also be the folder holding LibriSpeech/ (where --download puts it).
"""
from __future__ import annotations

from pathlib import Path

from spkid.errors import SpkidError, where
from spkid.recipes.corpus import Corpus, first_missing, require_dir

PARTS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
         "test-clean", "test-other")
LAYOUT = ("<corpus-dir>/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt and "
          "<speaker>-<chapter>-<utt>.flac beside it (as in LibriSpeech/train-other-500/...)")


def resolve(path: Path) -> Path:
    return path / "LibriSpeech" if (path / "LibriSpeech").is_dir() else path


def present(root: Path) -> list[str]:
    return [p for p in PARTS if (root / p).is_dir()]


def check(root: Path, parts: list[str]) -> None:
    require_dir("librispeech", root, f"lhotse's prepare_librispeech expects {LAYOUT}")
    for part in parts:
        require_dir("librispeech", root / part, f"part '{part}' is missing: lhotse's prepare_librispeech "
                    f"expects {LAYOUT}")
        transcripts = sorted((root / part).rglob("*.trans.txt"))
        if not transcripts:
            raise SpkidError(f"librispeech: no <speaker>-<chapter>.trans.txt under {root / part} "
                             f"(lhotse's prepare_librispeech expects {LAYOUT})")
        missing = []
        for trans in transcripts:
            for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
                fields = line.split(maxsplit=1)
                if len(fields) != 2 or fields[0].count("-") != 2:
                    raise SpkidError(f"librispeech: {where(str(trans), lineno)}: expected "
                                     "'<speaker>-<chapter>-<utt> TEXT'")
                utt = fields[0]
                audio = root / part / Path(utt.replace("-", "/")).parent / f"{utt}.flac"
                if not audio.is_file():
                    missing.append(audio)
        first_missing("librispeech", missing, "listed in a .trans.txt, where lhotse's prepare_librispeech "
                      "expects the audio")


def load(root: Path, parts: list[str], num_jobs: int = 1) -> dict:
    from lhotse.recipes.librispeech import prepare_librispeech

    manifests = prepare_librispeech(root, dataset_parts=parts, output_dir=None, num_jobs=num_jobs)
    return {p: (manifests[p]["recordings"], manifests[p]["supervisions"]) for p in parts}


def genders(root: Path) -> dict[str, str]:
    """Speaker -> m/f from SPEAKERS.TXT (absent file: none)."""
    path = root / "SPEAKERS.TXT"
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 3 or fields[1].upper() not in ("M", "F"):
            raise SpkidError(f"librispeech: {where(str(path), lineno)}: expected 'ID | SEX | SUBSET | "
                             "MINUTES | NAME' with SEX M or F")
        out[fields[0]] = fields[1].lower()
    return out


def download(target: Path, parts: list[str], mirror: str | None) -> None:
    from lhotse.recipes.librispeech import download_librispeech

    kwargs = {"base_url": mirror} if mirror else {}
    download_librispeech(target, dataset_parts=list(parts), **kwargs)


CORPUS = Corpus(name="librispeech", parts=PARTS, layout=LAYOUT, resolve=resolve, check=check, load=load,
                lhotse_function="prepare_librispeech", download=download, present_parts=present,
                genders=genders)
