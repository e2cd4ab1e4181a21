"""Durations of recordings and utterances (utt2dur, reco2dur), as Kaldi's wav-to-duration."""
from __future__ import annotations

import logging
from pathlib import Path

from spkid.errors import FailureLog, SpkidError
from spkid.kaldi.audio import AudioError, read_audio
from spkid.kaldi.tables import read_table, write_table

logger = logging.getLogger("spkid.durations")


def recording_duration(entry: str, read_entire_file: bool = False) -> float:
    """Duration in seconds of a wav.scp entry (header only for plain files)."""
    import soundfile as sf

    entry = entry.strip()
    if not read_entire_file and not entry.endswith("|") and Path(entry).is_file():
        try:
            info = sf.info(entry)
            return info.frames / info.samplerate
        except Exception:  # fall back to decoding (e.g. ark:offset entries)
            pass
    wave, rate = read_audio(entry, channel=0)
    return len(wave) / rate


def write_utt2dur(data_dir: str | Path, read_entire_file: bool = False) -> dict[str, float]:
    """Compute and write DATA/utt2dur; unreadable recordings are reported and the command fails."""
    data_dir = Path(data_dir)
    wav = read_table(data_dir / "wav.scp") if (data_dir / "wav.scp").exists() else None
    if wav is None:
        raise SpkidError(f"{data_dir}: no wav.scp in data dir")
    failures = FailureLog(what="recordings")
    reco_dur: dict[str, float] = {}
    segments_path = data_dir / "segments"
    segments = read_table(segments_path) if segments_path.exists() else None
    if segments is None:
        needed = set(wav)
    else:  # only recordings whose segments run to the end (-1) need their length
        needed = {v.split()[0] for v in segments.values() if float(v.split()[2]) == -1}
    for reco in (r for r in wav if r in needed):
        try:
            reco_dur[reco] = recording_duration(wav[reco], read_entire_file)
            failures.ok()
        except AudioError as err:
            failures.fail(reco, str(err))
    if segments is None:
        utt2dur = reco_dur
    else:
        utt2dur = {}
        for utt, value in segments.items():
            reco, start, end = value.split()[:3]
            end_s = reco_dur.get(reco) if float(end) == -1 else float(end)
            if end_s is not None:
                utt2dur[utt] = end_s - float(start)
    write_table(data_dir / "utt2dur", {u: f"{d:g}" for u, d in utt2dur.items()})
    logger.info("wrote %s (%d utterances)", data_dir / "utt2dur", len(utt2dur))
    failures.finish()
    return utt2dur
