"""Durations of recordings and utterances (utt2dur, reco2dur), as Kaldi's wav-to-duration."""
from __future__ import annotations

import logging
from pathlib import Path

from spkid.errors import FailureLog
from spkid.kaldi.audio import MAX_OVERSHOOT, AudioError, Segment, read_audio
from spkid.kaldi.datadir import DataDir
from spkid.kaldi.tables import write_table

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


def segment_duration(seg: Segment, recording: float) -> float:
    """end - start of a segment of a recording lasting `recording` seconds; an end of -1 is the recording's
    end, and one past it by less than MAX_OVERSHOOT is cut there (as extract-segments)."""
    if seg.start >= recording:
        raise AudioError(f"segment starts at {seg.start}s, past the end of recording {seg.recording} "
                         f"({recording:.3f}s)")
    if seg.end == -1:
        return recording - seg.start
    if seg.end >= recording + MAX_OVERSHOOT:
        raise AudioError(f"segment ends at {seg.end}s, past the end of recording {seg.recording} "
                         f"({recording:.3f}s) by more than {MAX_OVERSHOOT}s")
    return min(seg.end, recording) - seg.start


def write_utt2dur(data_dir: str | Path, read_entire_file: bool = False) -> dict[str, float]:
    """Compute and write DATA/utt2dur (from segments when present, checked against their recordings).

    Bad wav.scp or segments lines, unreadable recordings, segments that are reversed, empty, of an unknown
    recording or past its end are reported one line each and left out; the command then fails.
    """
    data_dir = Path(data_dir)
    items, problems = DataDir(data_dir).audio_items()
    failures = FailureLog()
    for utt, reason in problems:
        failures.fail(utt, reason)
    reco_dur: dict[str, float | AudioError] = {}
    utt2dur: dict[str, float] = {}
    for item in items:
        if item.entry not in reco_dur:
            try:
                reco_dur[item.entry] = recording_duration(item.entry, read_entire_file)
            except AudioError as err:
                reco_dur[item.entry] = err
        try:
            dur = reco_dur[item.entry]
            if isinstance(dur, AudioError):
                raise dur
            utt2dur[item.utt] = dur if item.segment is None else segment_duration(item.segment, dur)
            failures.ok()
        except AudioError as err:
            failures.fail(item.utt, str(item.located(err)))
    write_table(data_dir / "utt2dur", {u: f"{d:g}" for u, d in utt2dur.items()})
    logger.info("wrote %s (%d utterances)", data_dir / "utt2dur", len(utt2dur))
    failures.finish()
    return utt2dur
