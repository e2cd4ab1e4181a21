"""Kaldi data dir -> lhotse CutSet (one cut per utterance, speaker from utt2spk, segments honoured).

Recordings are described from the files themselves (true sample rate and length); `cmd |` entries
become lhotse "command" sources. With `sampling_rate`, cuts of other rates are resampled by lhotse.
"""
from __future__ import annotations

from pathlib import Path

from spkid.errors import SpkidError
from spkid.kaldi.tables import read_table


def _recording(reco: str, entry: str):
    from lhotse import AudioSource, Recording

    from spkid.kaldi.audio import AudioError, read_audio

    entry = entry.strip()
    try:
        if entry.endswith("|"):
            wave, rate = read_audio(entry)
            return Recording(id=reco, sources=[AudioSource(type="command", channels=[0],
                                                           source=entry[:-1].strip())],
                             sampling_rate=rate, num_samples=len(wave), duration=len(wave) / rate)
        if not Path(entry).is_file():
            raise AudioError(f"audio file '{entry}' does not exist")
        return Recording.from_file(entry, recording_id=reco)
    except AudioError as err:
        raise SpkidError(f"recording {reco}: {err}") from None
    except Exception as err:  # lhotse/soundfile errors
        raise SpkidError(f"recording {reco}: cannot read '{entry}': {err}") from None


def data_dir_to_cuts(data_dir: str | Path, sampling_rate: int | None = None):
    """Build a lhotse CutSet for a Kaldi data dir (wav.scp, utt2spk, optional segments)."""
    from lhotse import CutSet, RecordingSet, SupervisionSegment, SupervisionSet

    data_dir = Path(data_dir)
    if not (data_dir / "wav.scp").exists():
        raise SpkidError(f"{data_dir}: no wav.scp in data dir")
    wav = read_table(data_dir / "wav.scp")
    utt2spk = read_table(data_dir / "utt2spk") if (data_dir / "utt2spk").exists() else {}
    segments = read_table(data_dir / "segments") if (data_dir / "segments").exists() else None
    if segments is None:
        keep = [r for r in wav if not utt2spk or r in utt2spk]
    else:
        keep = sorted({v.split()[0] for v in segments.values()} & set(wav))
    recordings = RecordingSet.from_recordings(_recording(r, wav[r]) for r in keep)
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
