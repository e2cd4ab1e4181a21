"""What every corpus recipe shares: the id scheme, lhotse manifests -> cuts, and atomic outputs.

Ids: speaker `<corpus>_<speaker>` (so corpora combine without clashes) and utterance
`<corpus>_<speaker>-<rest>`, where <rest> is lhotse's id with a leading `<speaker>-` or `<speaker>_`
removed (`voxceleb1_id10001-1zcIwhmdeo4-00001`, `librispeech_103-1240-0000`, `vctk_p225-001`).
Every utterance id starts with its speaker id followed by `-`, so sorting utterances (LC_ALL=C) sorts
their speakers too, as Kaldi requires. Manifests and data dirs are written under a temporary name and
renamed into place only when complete.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spkid.errors import SpkidError
from spkid.kaldi.tables import c_sort_key, c_sorted, utt2spk_to_spk2utt, write_table

logger = logging.getLogger("spkid.recipes")

# audio that soundfile cannot read goes into wav.scp as an ffmpeg pipe (as Kaldi's make_voxceleb2.pl)
FFMPEG_EXTENSIONS = (".m4a", ".aac", ".mp4", ".mp3", ".opus")


def speaker_id(corpus: str, speaker: str) -> str:
    """The Kaldi speaker id of a corpus speaker."""
    if not speaker or any(c.isspace() for c in speaker):
        raise SpkidError(f"{corpus}: bad speaker id '{speaker}' (empty or with whitespace)")
    return f"{corpus}_{speaker}"


def utterance_id(corpus: str, speaker: str, original: str) -> str:
    """The Kaldi utterance id of a corpus utterance (lhotse id `original`) of `speaker`."""
    if not original or any(c.isspace() for c in original):
        raise SpkidError(f"{corpus}: bad utterance id '{original}' (empty or with whitespace)")
    rest = original
    for sep in ("-", "_"):
        if original.startswith(speaker + sep) and len(original) > len(speaker) + 1:
            rest = original[len(speaker) + 1:]
            break
    return f"{speaker_id(corpus, speaker)}-{rest}"


def wav_scp_entry(recording) -> str:
    """The wav.scp value of a lhotse Recording: its file, an ffmpeg pipe for m4a & co, or its command."""
    if len(recording.sources) != 1:
        raise SpkidError(f"recording {recording.id}: {len(recording.sources)} audio sources; "
                         "Kaldi data dirs take one file per recording")
    source = recording.sources[0]
    if source.type == "command":
        return f"{source.source} |"
    if source.type != "file":
        raise SpkidError(f"recording {recording.id}: audio of type '{source.type}' cannot go into wav.scp")
    path = str(Path(source.source).absolute())
    if Path(path).suffix.lower() in FFMPEG_EXTENSIONS:
        return f"{shlex.quote(ffmpeg_command())} -nostdin -v 8 -i {shlex.quote(path)} -f wav -acodec pcm_s16le - |"
    if any(c.isspace() for c in path):
        raise SpkidError(f"recording {recording.id}: path '{path}' has whitespace, which wav.scp cannot hold")
    return path


def ffmpeg_command() -> str:
    """`ffmpeg` when it is on PATH, else the binary of the imageio-ffmpeg package; error if neither."""
    if shutil.which("ffmpeg"):
        return "ffmpeg"
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        raise SpkidError("ffmpeg is needed for .m4a audio (VoxCeleb2) and is not on PATH: install it "
                         "(apt-get install ffmpeg, or pip install imageio-ffmpeg)") from None


@contextmanager
def ffmpeg_on_path() -> Iterator[None]:
    """Make `ffmpeg` callable by name (lhotse reads m4a through audioread, which runs `ffmpeg`)."""
    exe = ffmpeg_command()
    if exe == "ffmpeg":
        yield
        return
    bindir = tempfile.mkdtemp(prefix="spkid-ffmpeg-")
    os.symlink(exe, os.path.join(bindir, "ffmpeg"))
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = bindir + os.pathsep + old
    _flush_audioread_backends()
    try:
        yield
    finally:
        os.environ["PATH"] = old
        shutil.rmtree(bindir, ignore_errors=True)
        _flush_audioread_backends()


def _flush_audioread_backends() -> None:
    """audioread caches the backends it found on first use: one found before ffmpeg was on PATH (an earlier
    undecodable file in the same process) would leave m4a unreadable, or one found now would name a removed
    link later."""
    try:
        import audioread
    except ImportError:
        return
    audioread.available_backends(flush_cache=True)


def to_kaldi_cuts(corpus: str, recordings, supervisions):
    """lhotse (recordings, supervisions) -> CutSet with one cut per supervision, in the Kaldi id scheme.

    Recording ids become the utterance id when a recording holds exactly one supervision covering it,
    else `<corpus>_<recording id>` (and the data dir gets a segments file). Sorted LC_ALL=C by id.
    """
    from lhotse import CutSet, MonoCut
    from lhotse.utils import fastcopy

    by_reco: dict[str, list] = {}
    for sup in supervisions:
        if sup.speaker is None:
            raise SpkidError(f"{corpus}: supervision {sup.id} has no speaker")
        by_reco.setdefault(sup.recording_id, []).append(sup)
    cuts, seen = [], {}
    for reco_id, sups in by_reco.items():
        rec = recordings[reco_id]
        whole = len(sups) == 1 and sups[0].start == 0 and abs(sups[0].duration - rec.duration) < 1e-3
        for sup in sups:
            spk = speaker_id(corpus, sup.speaker)
            utt = utterance_id(corpus, sup.speaker, sup.id)
            if utt in seen:
                raise SpkidError(f"{corpus}: utterances '{seen[utt]}' and '{sup.id}' both get the id '{utt}'")
            seen[utt] = sup.id
            new_rec = fastcopy(rec, id=utt if whole else f"{corpus}_{reco_id}")
            duration = new_rec.duration if whole else sup.duration
            new_sup = fastcopy(sup, id=utt, recording_id=new_rec.id, speaker=spk, start=0.0, duration=duration)
            cuts.append(MonoCut(id=utt, start=0.0 if whole else sup.start, duration=duration,
                                channel=sup.channel if isinstance(sup.channel, int) else 0,
                                recording=new_rec, supervisions=[new_sup]))
    cuts.sort(key=lambda c: c_sort_key(c.id))
    return CutSet.from_cuts(cuts)


def write_manifest(manifest, path: str | os.PathLike) -> None:
    """Write a lhotse manifest (format from the suffix, e.g. .jsonl.gz) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        manifest.to_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _duration(value: float) -> str:
    return f"{value:g}"


def write_data_dir(cuts, dest: str | os.PathLike, genders: dict[str, str] | None = None) -> Path:
    """Write a Kaldi data dir for the cuts (wav.scp, utt2spk, spk2utt, utt2dur, segments when needed,
    spk2gender when every speaker's is known), validate it, and move it into place as a whole."""
    wav, utt2spk, utt2dur, segments = {}, {}, {}, {}
    for cut in cuts:
        sup = cut.supervisions[0]
        utt2spk[cut.id] = sup.speaker
        utt2dur[cut.id] = _duration(cut.duration)
        wav[cut.recording.id] = wav_scp_entry(cut.recording)
        if cut.recording.id != cut.id:
            segments[cut.id] = f"{cut.recording.id} {cut.start:.3f} {cut.end:.3f}"
    tables = {"wav.scp": wav, "utt2spk": utt2spk, "utt2dur": utt2dur}
    if segments:
        tables["segments"] = segments
    speakers = set(utt2spk.values())
    if genders and speakers <= set(genders):
        tables["spk2gender"] = {s: genders[s] for s in speakers}
    return write_tables_dir(dest, tables)


def write_recordings_dir(recordings, dest: str | os.PathLike, files: dict[str, str | bytes] | None = None) -> Path:
    """A data dir of whole recordings, each its own speaker (Kaldi's MUSAN and RIR dirs): wav.scp,
    utt2spk, spk2utt, utt2dur and reco2dur (what steps/data/augment_data_dir.py reads), plus `files`."""
    wav = {r.id: wav_scp_entry(r) for r in recordings}
    durations = {r.id: _duration(r.duration) for r in recordings}
    return write_tables_dir(dest, {"wav.scp": wav, "utt2spk": {r: r for r in wav}, "utt2dur": durations,
                                   "reco2dur": durations}, files)


def write_tables_dir(dest: str | os.PathLike, tables: dict[str, dict[str, str]],
                     files: dict[str, str | bytes] | None = None) -> Path:
    """write_tables into a temporary dir, moved into place as a whole (so wav.scp may name audio files
    at their final paths under `dest`)."""
    from spkid.atomic import staged_dir

    dest = Path(dest)
    if not tables.get("utt2spk"):
        raise SpkidError(f"{dest}: no utterances to write")
    with staged_dir(dest) as tmp:
        write_tables(tmp, tables, files)
    return dest


def write_tables(data_dir: Path, tables: dict[str, dict[str, str]], files: dict[str, str | bytes] | None = None
                 ) -> None:
    """Write the tables (file name -> key -> value, sorted LC_ALL=C), spk2utt from utt2spk and any other
    `files` (relative path -> text or bytes: lists, audio) into data_dir, then validate it."""
    from spkid.kaldi.validate import validate_data_dir

    for name, table in tables.items():
        write_table(data_dir / name, table)
    for name, content in (files or {}).items():
        (data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / name).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    utt2spk = tables["utt2spk"]
    write_table(data_dir / "spk2utt", utt2spk_to_spk2utt({u: utt2spk[u] for u in c_sorted(utt2spk)}))
    validate_data_dir(data_dir, no_feats=True, no_text=True)


def normalise_gender(value: str | None) -> str | None:
    """m/f from lhotse's gender strings (m, M, male, F, ...); None when unknown."""
    if not value:
        return None
    value = value.strip().lower()
    return {"m": "m", "male": "m", "f": "f", "female": "f"}.get(value)


@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect the warnings lhotse logs (files it skipped) while preparing a corpus."""
    messages: list[str] = []

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())

    handler = _Handler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)
