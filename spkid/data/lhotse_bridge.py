"""Kaldi data dir -> lhotse CutSet (one cut per utterance, speaker from utt2spk, segments honoured).

Recordings are described from the files themselves (true sample rate and length); `cmd |` entries
become lhotse "command" sources. With `sampling_rate`, cuts of other rates are resampled by lhotse.
"""
from __future__ import annotations

import logging
from pathlib import Path

from spkid.errors import SpkidError, where
from spkid.kaldi.datadir import DataDir
from spkid.kaldi.tables import iter_table

logger = logging.getLogger("spkid.data")


def _recording(reco: str, entry: str):
    from lhotse import AudioSource, Recording

    from spkid.kaldi.audio import AudioError, check_num_samples, check_sample_rate, read_audio

    entry = entry.strip()
    try:
        if entry.endswith("|"):
            wave, rate = read_audio(entry)
            return Recording(id=reco, sources=[AudioSource(type="command", channels=[0],
                                                           source=entry[:-1].strip())],
                             sampling_rate=rate, num_samples=len(wave), duration=len(wave) / rate)
        if not Path(entry).is_file():
            raise AudioError(f"audio file '{entry}' does not exist")
        recording = Recording.from_file(entry, recording_id=reco)
        check_sample_rate(recording.sampling_rate, f"'{entry}'")  # resampling a 1 Hz header would take GBs
        check_num_samples(recording.num_samples * recording.num_channels, recording.sampling_rate, f"'{entry}'")
        return recording
    except AudioError as err:
        raise SpkidError(str(err)) from None
    except Exception as err:  # lhotse/soundfile errors
        raise SpkidError(f"cannot read '{entry}': {err}") from None


def data_dir_to_cuts(data_dir: str | Path, sampling_rate: int | None = None):
    """Build a lhotse CutSet for a Kaldi data dir (wav.scp, utt2spk, optional segments).

    Every bad wav.scp line and unreadable recording is reported (one warning line each, then a count)
    and left out; the cuts hold the rest. None readable is an error.
    """
    from lhotse import CutSet, RecordingSet, SupervisionSegment, SupervisionSet

    data = DataDir(Path(data_dir))
    wav_scp = data.wav_scp_path
    problems: list[tuple[str, str]] = []
    wav, linenos = {}, {}
    for item in iter_table(wav_scp, problems=problems):
        if item.key in wav:
            problems.append((item.key, f"duplicate id at {where(str(wav_scp), item.lineno)}"))
            continue
        wav[item.key], linenos[item.key] = item.value, item.lineno
    utt2spk = data.table("utt2spk") if data.file("utt2spk") else {}
    segments = data.table("segments") if data.segments_path else None
    if segments is None:
        keep = [r for r in wav if not utt2spk or r in utt2spk]
    else:
        keep = sorted({v.split()[0] for v in segments.values()} & set(wav))
    good = []
    for reco in keep:
        try:
            good.append(_recording(reco, wav[reco]))
        except SpkidError as err:
            problems.append((reco, f"{where(str(wav_scp), linenos[reco])}: {err}"))
    for reco, reason in problems:
        logger.warning("recording %s skipped: %s", reco, reason)
    if problems:
        logger.warning("%d bad recordings in %s left out; using the other %d", len(problems), wav_scp, len(good))
    if not good:
        raise SpkidError(f"{wav_scp}: no readable recording")
    recordings = RecordingSet.from_recordings(good)
    sups = []
    if segments is None:
        for rec in recordings:
            sups.append(SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0, duration=rec.duration,
                                           channel=0, speaker=utt2spk.get(rec.id)))
    else:
        for utt, value in segments.items():
            reco, start, end = value.split()[:3]
            if reco not in recordings:
                continue
            rec_dur = recordings[reco].duration
            end_s = rec_dur if float(end) == -1 else min(float(end), rec_dur)
            sups.append(SupervisionSegment(id=utt, recording_id=reco, start=float(start),
                                           duration=end_s - float(start), channel=0, speaker=utt2spk.get(utt)))
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=SupervisionSet.from_segments(sups))
    if segments is not None:
        cuts = cuts.trim_to_supervisions(keep_overlapping=False)
    out = []
    for cut in cuts:  # one cut per utterance, named after it
        cut = cut.with_id(cut.supervisions[0].id)
        if sampling_rate is not None and cut.sampling_rate != sampling_rate:
            cut = cut.resample(sampling_rate)
        out.append(cut)
    return CutSet.from_cuts(out)
