"""aidatatang_200zh (OpenSLR 62) and MagicData (OpenSLR 68) through lhotse's recipes.

aidatatang_200zh: <corpus-dir>/aidatatang_200zh/transcript/aidatatang_200_zh_transcript.txt (lines
`<utt> TEXT`) and <corpus-dir>/aidatatang_200zh/corpus/{train,dev,test}/<speaker>/<utt>.wav, i.e. the
per-speaker archives corpus/<part>/<speaker>.tar.gz unpacked where they lie (download_aidatatang_200zh
does it). <corpus-dir> may also be the aidatatang_200zh folder itself.
MagicData: <corpus-dir>/{train,dev,test}/TRANS.txt (tab-separated `UtteranceID SpeakerID Transcription`
with a header line, UtteranceID as `<utt>.wav`) and <corpus-dir>/<part>/<speaker>/<utt>.wav.
<corpus-dir> may also be the folder holding magicdata/ (where --download puts it).
lhotse's recipes prepare all three parts at once and fail on an empty one.
"""
from __future__ import annotations

from pathlib import Path

from spkid.errors import SpkidError, where
from spkid.recipes.corpus import Corpus, require_dir, require_file

PARTS = ("train", "dev", "test")
AIDATATANG_LAYOUT = ("<corpus-dir>/aidatatang_200zh/transcript/aidatatang_200_zh_transcript.txt and "
                     "<corpus-dir>/aidatatang_200zh/corpus/{train,dev,test}/<speaker>/<utt>.wav")
MAGICDATA_LAYOUT = "<corpus-dir>/{train,dev,test}/TRANS.txt and <corpus-dir>/<part>/<speaker>/<utt>.wav"


def _check_part_audio(corpus: str, part_dir: Path, transcribed: set[str], layout: str, hint: str = "") -> None:
    wavs = sorted(part_dir.rglob("*.wav"))
    if not wavs:
        archives = sorted(part_dir.glob("*.tar.gz"))
        if archives:
            raise SpkidError(f"{corpus}: the archives in {part_dir} ({archives[0].name} ...) are not unpacked: "
                             f"lhotse expects {layout}{hint}")
        raise SpkidError(f"{corpus}: no .wav files under {part_dir} (lhotse expects {layout})")
    for wav in wavs:
        if wav.parent == part_dir:
            raise SpkidError(f"{corpus}: {wav} is not in a <speaker> folder (lhotse expects {layout})")
    if not any(w.stem in transcribed for w in wavs):
        raise SpkidError(f"{corpus}: none of the {len(wavs)} .wav files under {part_dir} has a transcript "
                         f"line (lhotse skips those; e.g. {wavs[0].name})")


# -- aidatatang_200zh ---------------------------------------------------------------------------------------

def aidatatang_resolve(path: Path) -> Path:
    if path.name == "aidatatang_200zh" and (path / "transcript").is_dir():
        return path.parent
    return path


def aidatatang_check(root: Path, parts: list[str]) -> None:
    top = root / "aidatatang_200zh"
    require_dir("aidatatang_200zh", top, f"lhotse's prepare_aidatatang_200zh expects {AIDATATANG_LAYOUT}")
    transcript = top / "transcript" / "aidatatang_200_zh_transcript.txt"
    require_file("aidatatang_200zh", transcript, f"lhotse's prepare_aidatatang_200zh expects {AIDATATANG_LAYOUT}")
    ids = set()
    for lineno, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if len(fields) < 2:
            raise SpkidError(f"aidatatang_200zh: {where(str(transcript), lineno)}: expected '<utt> TEXT'")
        ids.add(fields[0])
    for part in PARTS:  # lhotse prepares all three parts
        require_dir("aidatatang_200zh", top / "corpus" / part,
                    f"part '{part}' is missing: lhotse's prepare_aidatatang_200zh expects {AIDATATANG_LAYOUT}")
        _check_part_audio("aidatatang_200zh", top / "corpus" / part, ids, AIDATATANG_LAYOUT,
                          " (download_aidatatang_200zh unpacks them; or: for f in *.tar.gz; do tar xzf $f; done)")


def aidatatang_load(root: Path, parts: list[str], num_jobs: int = 1) -> dict:
    from lhotse.recipes.aidatatang_200zh import prepare_aidatatang_200zh

    manifests = prepare_aidatatang_200zh(root, output_dir=None)
    return {p: (manifests[p]["recordings"], manifests[p]["supervisions"]) for p in parts}


def aidatatang_download(target: Path, parts: list[str], mirror: str | None) -> None:
    from lhotse.recipes.aidatatang_200zh import download_aidatatang_200zh

    download_aidatatang_200zh(target, **({"base_url": mirror} if mirror else {}))


# -- MagicData -----------------------------------------------------------------------------------------------

def magicdata_resolve(path: Path) -> Path:
    if (path / "magicdata").is_dir() and not (path / "train").is_dir():
        return path / "magicdata"
    return path


def magicdata_check(root: Path, parts: list[str]) -> None:
    require_dir("magicdata", root, f"lhotse's prepare_magicdata expects {MAGICDATA_LAYOUT}")
    for part in PARTS:  # lhotse reads every part's TRANS.txt
        trans = root / part / "TRANS.txt"
        require_file("magicdata", trans, f"lhotse's prepare_magicdata expects {MAGICDATA_LAYOUT}")
        ids = set()
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("UtteranceID"):
                continue
            fields = line.split()
            if len(fields) < 2 or not fields[0].endswith(".wav"):
                raise SpkidError(f"magicdata: {where(str(trans), lineno)}: expected "
                                 "'<utt>.wav<TAB><speaker><TAB>TEXT'")
            ids.add(fields[0][:-4])
        _check_part_audio("magicdata", root / part, ids, MAGICDATA_LAYOUT)


def magicdata_load(root: Path, parts: list[str], num_jobs: int = 1) -> dict:
    from lhotse.recipes.magicdata import prepare_magicdata

    manifests = prepare_magicdata(root, output_dir=None)
    return {p: (manifests[p]["recordings"], manifests[p]["supervisions"]) for p in parts}


def magicdata_download(target: Path, parts: list[str], mirror: str | None) -> None:
    """As lhotse's download_magicdata, which marks completion in magicdata/train_set/, a folder the
    archives do not create (train_set.tar.gz unpacks to train/, as in Kaldi's multi_cn recipe), so
    it fails after the first archive: the mark goes in magicdata/<part>/ here."""
    import shutil
    import tarfile

    from lhotse.utils import resumable_download, safe_extract

    corpus_dir = target / "magicdata"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        done = corpus_dir / part / ".completed"
        if done.is_file():
            continue
        archive = target / f"{part}_set.tar.gz"
        resumable_download(f"{mirror or 'http://www.openslr.org/resources'}/68/{archive.name}", filename=archive)
        shutil.rmtree(corpus_dir / part, ignore_errors=True)
        with tarfile.open(archive) as tar:
            safe_extract(tar, path=corpus_dir)
        if not (corpus_dir / part).is_dir():
            raise SpkidError(f"magicdata: {archive} did not unpack to {corpus_dir / part}")
        done.touch()


AIDATATANG = Corpus(name="aidatatang_200zh", parts=PARTS, layout=AIDATATANG_LAYOUT, resolve=aidatatang_resolve,
                    check=aidatatang_check, load=aidatatang_load, lhotse_function="prepare_aidatatang_200zh",
                    download=aidatatang_download, default_parts=PARTS)
MAGICDATA = Corpus(name="magicdata", parts=PARTS, layout=MAGICDATA_LAYOUT, resolve=magicdata_resolve,
                   check=magicdata_check, load=magicdata_load, lhotse_function="prepare_magicdata",
                   download=magicdata_download, default_parts=PARTS)
