"""VoxCeleb1 and VoxCeleb2 through lhotse's prepare_voxceleb / download_voxceleb1 / download_voxceleb2.

VoxCeleb1: <corpus-dir>/vox1_meta.csv (tab-separated `VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality,
Set` with Set dev|test) and <corpus-dir>/wav/<speaker>/<video>/<utt>.wav (dev and test zips unpacked
into the same folder). VoxCeleb2: <corpus-dir>/vox2_meta.csv (`VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set `)
and the .m4a files anywhere below <corpus-dir> as <speaker>/<video>/<utt>.m4a (vox2_dev_aac.zip unpacks
to dev/aac/..., vox2_test_aac.zip to aac/...). Parts: dev, test (the meta file's Set) and all.

lhotse's prepare_voxceleb also downloads the original VoxCeleb1 trial list into the current directory;
spkid skips that (it converts the cleaned Vox1-O/E/H lists itself: spkid convert-trials).
"""
from __future__ import annotations

from pathlib import Path
from unittest import mock

from spkid.errors import SpkidError, where
from spkid.recipes.corpus import Corpus, require_dir, require_file

PARTS = ("dev", "test", "all")
LAYOUT1 = "<corpus-dir>/vox1_meta.csv and <corpus-dir>/wav/<speaker>/<video>/<utt>.wav"
LAYOUT2 = "<corpus-dir>/vox2_meta.csv and <corpus-dir>/{dev/aac,aac}/<speaker>/<video>/<utt>.m4a"
TRIAL_LISTS_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta"
TRIAL_LISTS = ("veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt")


def read_meta(path: Path, version: int) -> dict[str, tuple[str, str]]:
    """Speaker -> (gender, set) from vox1_meta.csv (tabs, 5 fields) or vox2_meta.csv (commas, 4)."""
    layout = LAYOUT1 if version == 1 else LAYOUT2
    require_file(f"voxceleb{version}", path, f"lhotse's prepare_voxceleb expects {layout}")
    out: dict[str, tuple[str, str]] = {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines[1:], 2):
        if version == 1:
            fields = line.strip().split("\t")
            ok = len(fields) == 5
            expected = "5 tab-separated fields 'VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set'"
        else:
            fields = [f.strip() for f in line.split(",")]
            ok = len(fields) == 4
            expected = "4 comma-separated fields 'VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set'"
        if not ok:
            raise SpkidError(f"voxceleb{version}: {where(str(path), lineno)}: expected {expected}")
        out[fields[0]] = (fields[2], fields[-1])
    if not out:
        raise SpkidError(f"voxceleb{version}: {path} lists no speakers")
    return out


def _check_audio(version: int, root: Path, files: list[Path], meta: dict, meta_name: str,
                 parts: list[str], top: Path) -> None:
    if not files:
        raise SpkidError(f"voxceleb{version}: no .{'wav' if version == 1 else 'm4a'} files under {top} "
                         f"(lhotse's prepare_voxceleb expects {LAYOUT1 if version == 1 else LAYOUT2})")
    found_sets = set()
    for path in files:
        rel = path.relative_to(root)
        speaker = path.parent.parent.name
        if len(rel.parts) < (4 if version == 1 else 3) or not speaker.startswith("id"):
            raise SpkidError(f"voxceleb{version}: {path} is not laid out as <speaker>/<video>/<utt>: lhotse "
                             f"takes the speaker from the grandparent folder ('{speaker}')")
        if speaker not in meta:
            raise SpkidError(f"voxceleb{version}: speaker {speaker} of {path} has no line in {root / meta_name}")
        found_sets.add(meta[speaker][1])
    for part in parts:
        if part != "all" and part not in found_sets:
            raise SpkidError(f"voxceleb{version}: no audio of a '{part}' speaker (Set column of "
                             f"{root / meta_name}) under {top}")


def check1(root: Path, parts: list[str]) -> None:
    require_dir("voxceleb1", root, f"lhotse's prepare_voxceleb expects {LAYOUT1}")
    meta = read_meta(root / "vox1_meta.csv", 1)
    require_dir("voxceleb1", root / "wav", f"lhotse's prepare_voxceleb expects {LAYOUT1}")
    _check_audio(1, root, sorted((root / "wav").rglob("*.wav")), meta, "vox1_meta.csv", parts, root / "wav")


def check2(root: Path, parts: list[str]) -> None:
    from spkid.recipes.common import ffmpeg_command

    require_dir("voxceleb2", root, f"lhotse's prepare_voxceleb expects {LAYOUT2}")
    meta = read_meta(root / "vox2_meta.csv", 2)
    _check_audio(2, root, sorted(root.rglob("*.m4a")), meta, "vox2_meta.csv", parts, root)
    ffmpeg_command()


def _prepare(**roots):
    """lhotse's prepare_voxceleb without its download of the original trial list (see module doc)."""
    from lhotse.recipes import voxceleb as recipe

    if hasattr(recipe, "_prepare_voxceleb_trials"):
        with mock.patch.object(recipe, "_prepare_voxceleb_trials", lambda manifests: {}):
            return recipe.prepare_voxceleb(output_dir=None, **roots)
    return recipe.prepare_voxceleb(output_dir=None, **roots)


def _split(recordings, supervisions, parts: list[str]) -> dict:
    out = {}
    for part in parts:
        sups = supervisions if part == "all" else supervisions.filter(lambda s, p=part: s.custom["split"] == p)
        ids = {s.recording_id for s in sups}
        out[part] = (recordings.filter(lambda r, i=ids: r.id in i), sups)
    return out


def load1(root: Path, parts: list[str], num_jobs: int = 1) -> dict:
    from lhotse import RecordingSet, SupervisionSet

    manifests = _prepare(voxceleb1_root=root, num_jobs=num_jobs)
    splits = [manifests[s] for s in ("train", "test") if s in manifests]
    recordings = RecordingSet.from_recordings(r for m in splits for r in m["recordings"])
    supervisions = SupervisionSet.from_segments(s for m in splits for s in m["supervisions"])
    return _split(recordings, supervisions, parts)


def load2(root: Path, parts: list[str], num_jobs: int = 1) -> dict:
    from spkid.recipes.common import ffmpeg_on_path

    with ffmpeg_on_path():
        manifests = _prepare(voxceleb2_root=root, num_jobs=num_jobs)
    return _split(manifests["train"]["recordings"], manifests["train"]["supervisions"], parts)


def download1(target: Path, parts: list[str], mirror: str | None) -> None:
    """The audio (lhotse's download_voxceleb1) and the cleaned Vox1-O/E/H trial lists."""
    from lhotse.recipes.voxceleb import download_voxceleb1
    from lhotse.utils import resumable_download

    download_voxceleb1(target)
    for name in TRIAL_LISTS:
        if not (target / name).is_file():
            resumable_download(f"{mirror or TRIAL_LISTS_URL}/{name}", filename=target / name)


def download2(target: Path, parts: list[str], mirror: str | None) -> None:
    from lhotse.recipes.voxceleb import download_voxceleb2

    download_voxceleb2(target)


def _genders(meta_name: str, version: int):
    def genders(root: Path) -> dict[str, str]:
        return {spk: g.lower() for spk, (g, _) in read_meta(root / meta_name, version).items()
                if g.lower() in ("m", "f")}
    return genders


VOXCELEB1 = Corpus(name="voxceleb1", parts=PARTS, layout=LAYOUT1, resolve=lambda p: p, check=check1, load=load1,
                   lhotse_function="prepare_voxceleb", download=download1, default_parts=("dev", "test"),
                   genders=_genders("vox1_meta.csv", 1))
VOXCELEB2 = Corpus(name="voxceleb2", parts=PARTS, layout=LAYOUT2, resolve=lambda p: p, check=check2, load=load2,
                   lhotse_function="prepare_voxceleb", download=download2, default_parts=("dev", "test"),
                   genders=_genders("vox2_meta.csv", 2))
