"""Miniature corpora for the recipe tests, laid out as the real ones.

Each builder copies a few real recordings from ../shared/data into tmp, in the corpus's own folder
structure, file names and metadata formats (what lhotse's recipes read), so that a recipe reading the
wrong place or format fails there; plus helpers to run `spkid prepare` and check its data dirs.
"""
from __future__ import annotations

import itertools
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from spkid.cli import main as spkid_main
from spkid.kaldi.tables import c_sorted, read_text_table
from spkid.kaldi.validate import validate_data_dir

SECONDS = 2.0  # miniature utterances are cut to this length


def ffmpeg_exe() -> str | None:
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return None


def _flacs(shared: Path, dataset: str, speakers: int, utts: int, skip: int = 0) -> list[list[Path]]:
    dirs = sorted(d for d in (shared / dataset).iterdir() if d.is_dir())[skip:skip + speakers]
    return [sorted(d.glob("*.flac"))[:utts] for d in dirs]


def _audio(src: Path, dest: Path, rate: int | None = None, seconds: float = SECONDS) -> float:
    """Copy `src` to `dest` (format from the suffix, 16-bit), cut to `seconds`, optionally upsampled."""
    wave, sr = sf.read(src, dtype="float32")
    wave = wave[: int(seconds * sr)]
    if rate and rate != sr:
        from scipy.signal import resample_poly

        wave, sr = resample_poly(wave, rate, sr).astype(np.float32), rate
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix == ".m4a":
        tmp = dest.with_suffix(".tmp.wav")
        sf.write(tmp, wave, sr, subtype="PCM_16")
        subprocess.run([ffmpeg_exe(), "-v", "8", "-y", "-i", str(tmp), "-c:a", "aac", "-b:a", "64k", str(dest)],
                       check=True)
        tmp.unlink()
    else:
        sf.write(dest, wave, sr, subtype="PCM_16")
    return len(wave) / sr


def build_librispeech(shared: Path, root: Path) -> Path:
    """root/LibriSpeech/{train-other-500,test-clean}/<spk>/<chapter>/..., SPEAKERS.TXT."""
    corpus = root / "LibriSpeech"
    genders = {"1688": "M", "1998": "F", "2033": "M", "2414": "M", "2609": "M"}
    for part, spk_files in (("train-other-500", _flacs(shared, "librispeech_test_other", 3, 2, skip=0)),
                            ("test-clean", _flacs(shared, "librispeech_test_other", 2, 2, skip=3))):
        for files in spk_files:
            spk, chapter, _ = files[0].stem.split("-")
            folder = corpus / part / spk / chapter
            for f in files:
                _audio(f, folder / f.name)
            (folder / f"{spk}-{chapter}.trans.txt").write_text(
                "".join(f"{f.stem} WORDS OF UTTERANCE {i}\n" for i, f in enumerate(files)))
    rows = "".join(f"{spk:<5}| {g} | train-other-500  | 25.03 | Reader {spk}\n" for spk, g in genders.items())
    (corpus / "SPEAKERS.TXT").write_text("; Some comments\n;ID  |SEX| SUBSET           |MINUTES| NAME\n" + rows)
    return corpus


VOX1 = {"id10001": ("A.J._Buckley", "m", "Ireland", "dev"), "id10002": ("A.R._Rahman", "m", "India", "dev"),
        "id10270": ("Eartha_Kitt", "f", "USA", "test"), "id10271": ("Ed_Westwick", "m", "UK", "test")}
VIDEOS = ("1zcIwhmdeo4", "7gWzIy6yIIk")


def build_voxceleb1(shared: Path, root: Path) -> Path:
    """root/VoxCeleb1/{vox1_meta.csv, wav/<spk>/<video>/<utt>.wav, veri_test2.txt, list_test_*2.txt}."""
    corpus = root / "VoxCeleb1"
    utts: dict[str, list[str]] = {}
    for spk, files in zip(VOX1, _flacs(shared, "librispeech_test_other", 4, 3, skip=5)):
        for i, f in enumerate(files):
            rel = f"{spk}/{VIDEOS[i % 2]}/{i // 2 + 1:05d}.wav"
            _audio(f, corpus / "wav" / rel)
            utts.setdefault(spk, []).append(rel)
    (corpus / "vox1_meta.csv").write_text("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n" + "".join(
        f"{spk}\t{name}\t{g}\t{nat}\t{split}\n" for spk, (name, g, nat, split) in VOX1.items()))

    def trial_list(speakers: list[str]) -> str:
        files = [u for s in speakers for u in utts[s]]
        return "".join(f"{int(a.split('/')[0] == b.split('/')[0])} {a} {b}\n"
                       for a, b in itertools.combinations(files, 2))
    (corpus / "veri_test2.txt").write_text(trial_list(["id10270", "id10271"]))
    (corpus / "list_test_all2.txt").write_text(trial_list(list(VOX1)))
    (corpus / "list_test_hard2.txt").write_text(trial_list(["id10001", "id10002", "id10271"]))
    return corpus


VOX2 = {"id00012": ("m", "dev"), "id00015": ("f", "dev"), "id00016": ("m", "dev"), "id00017": ("f", "test")}


def build_voxceleb2(shared: Path, root: Path) -> Path:
    """root/VoxCeleb2/{vox2_meta.csv, dev/aac/<spk>/<video>/<utt>.m4a, aac/<spk>/... (test)}."""
    corpus = root / "VoxCeleb2"
    for spk, files in zip(VOX2, _flacs(shared, "arabic_speech_commands", 4, 2)):
        top = corpus / ("dev/aac" if VOX2[spk][1] == "dev" else "aac")
        for i, f in enumerate(files):
            _audio(f, top / spk / "21Uxsk56VDQ" / f"{i + 1:05d}.m4a")
    (corpus / "vox2_meta.csv").write_text("VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \n" + "".join(
        f"{spk} ,n{spk[2:]} ,{g} ,{split} \n" for spk, (g, split) in VOX2.items()))
    return corpus


AIDATATANG = {"train": ["G0002", "G0003"], "dev": ["G0004"], "test": ["G0005", "G0006"]}


def build_aidatatang(shared: Path, root: Path, unpacked: bool = True) -> Path:
    """root/aidatatang_200zh/{transcript/aidatatang_200_zh_transcript.txt, corpus/<part>/<spk>.tar.gz + <spk>/}."""
    top = root / "aidatatang_200zh"
    lines = []
    speakers = [s for part in AIDATATANG.values() for s in part]
    for spk, files in zip(speakers, _flacs(shared, "arabic_speech_commands", len(speakers), 2, skip=4)):
        part = next(p for p, s in AIDATATANG.items() if spk in s)
        folder = top / "corpus" / part / spk
        for i, f in enumerate(files):
            utt = f"T0055{spk}S{i + 1:04d}"
            _audio(f, folder / f"{utt}.wav")
            (folder / f"{utt}.txt").write_text("以后 你 是 男孩 子\n", encoding="utf-8")
            (folder / f"{utt}.metadata").write_text(f"SCD {spk}\nSEX female\n")
            lines.append(f"{utt} 以后 你 是 男孩 子\n")
        with tarfile.open(folder.parent / f"{spk}.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname=spk)
        if not unpacked:
            shutil.rmtree(folder)
    (top / "transcript").mkdir(parents=True)
    (top / "transcript" / "aidatatang_200_zh_transcript.txt").write_text("".join(sorted(lines)), encoding="utf-8")
    return root


MAGICDATA = {"train": ["38_5716", "38_5717"], "dev": ["5_541"], "test": ["14_3466", "14_3467"]}


def build_magicdata(shared: Path, root: Path) -> Path:
    """root/magicdata/<part>/{TRANS.txt, <spk>/<spk>_<time>.wav}."""
    corpus = root / "magicdata"
    speakers = [s for part in MAGICDATA.values() for s in part]
    for part, spks in MAGICDATA.items():
        (corpus / part).mkdir(parents=True)
        lines = ["UtteranceID\tSpeakerID\tTranscription\n"]
        for spk in spks:
            files = _flacs(shared, "arabic_speech_commands", 1, 2, skip=10 + speakers.index(spk))[0]
            for i, f in enumerate(files):
                utt = f"{spk}_2017091420221{i}"
                _audio(f, corpus / part / spk / f"{utt}.wav")
                lines.append(f"{utt}.wav\t{spk}\t今天 天气 很好，\n")
        (corpus / part / "TRANS.txt").write_text("".join(lines), encoding="utf-8")
    return corpus


VCTK = {"p225": ("23", "F", "English", "Southern  England"), "p226": ("22", "M", "English", "Surrey"),
        "p227": ("38", "M", "English", "Cumbria"), "p228": ("22", "F", "English", "Southern  England")}


def build_vctk(shared: Path, root: Path, release: str = "0.92") -> Path:
    """root/VCTK-Corpus-0.92 (wav48_silence_trimmed/<spk>/<spk>_<n>_mic{1,2}.flac) or VCTK-Corpus (wav48/*.wav)."""
    edinburgh = release == "0.92"
    corpus = root / ("VCTK-Corpus-0.92" if edinburgh else "VCTK-Corpus")
    for spk, files in zip(VCTK, _flacs(shared, "vctk_mini", 4, 3)):
        for f in files:
            (corpus / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (corpus / "txt" / spk / f"{f.stem}.txt").write_text("Please call Stella.\n")
            if edinburgh:
                for mic in ("mic1", "mic2"):
                    _audio(f, corpus / "wav48_silence_trimmed" / spk / f"{f.stem}_{mic}.flac", rate=48000)
            else:
                _audio(f, corpus / "wav48" / spk / f"{f.stem}.wav", rate=48000)
    header = "ID  AGE  GENDER  ACCENTS  REGION" + (" COMMENTS \n" if edinburgh else "\n")
    rows = "".join(f"{spk if edinburgh else spk[1:]}  {a}  {g}    {acc}  {reg}\n"
                   for spk, (a, g, acc, reg) in VCTK.items())
    (corpus / "speaker-info.txt").write_text(header + rows)
    return corpus


# -- helpers ---------------------------------------------------------------------------------------------------

def prepare(*args: str, ok: bool = True):
    """Run `spkid prepare ...` in-process (the command users run); returns click's result."""
    result = CliRunner().invoke(spkid_main, ["prepare", *args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def error_line(result) -> str:
    """The one-line error of a failed command (no traceback)."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def check_data_dir(path: Path, corpus: str, expect: dict[str, str], durations: dict[str, float] | None = None):
    """Validated, sorted, prefixed ids; `expect` maps some utterance ids to their speakers."""
    validate_data_dir(path, no_feats=True, no_text=True)
    utt2spk = read_text_table(path / "utt2spk", strict_sorted=True)
    assert list(utt2spk) == c_sorted(utt2spk)
    for utt, spk in utt2spk.items():
        assert spk.startswith(f"{corpus}_") and utt.startswith(spk + "-"), (utt, spk)
    for utt, spk in expect.items():
        assert utt2spk.get(utt) == spk, (utt, sorted(utt2spk)[:5])
    wav = read_text_table(path / "wav.scp")
    utt2dur = {u: float(d) for u, d in read_text_table(path / "utt2dur").items()}
    assert set(utt2dur) == set(utt2spk)
    for utt, dur in (durations or {}).items():
        assert utt2dur[utt] == pytest.approx(dur, abs=2e-3), utt
    if not (path / "segments").exists():
        assert set(wav) == set(utt2spk)
    return utt2spk, wav, utt2dur


def cut_ids(path: Path) -> list[str]:
    from lhotse import CutSet

    return [c.id for c in CutSet.from_file(path)]


# -- corpora ---------------------------------------------------------------------------------------------------
