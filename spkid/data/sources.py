"""Where training crops come from: a data dir's feats.scp (+ vad.scp), or its audio through lhotse cuts.

A source lists utterances with their speaker and usable length in frames, and cuts a crop of
`length` frames at a given position; crops are made in DataLoader worker processes.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from spkid.errors import SpkidError
from spkid.features.frontend import build_frontend, select_voiced_and_normalise
from spkid.kaldi.datadir import DataDir

logger = logging.getLogger("spkid.data")


class UtteranceSource:
    """Base: `utts`, `speakers`, `utt_speaker` (index into speakers), `lengths` (frames), `dim`."""

    utts: list[str]
    speakers: list[str]
    utt_speaker: np.ndarray
    lengths: np.ndarray
    dim: int

    def _set_speakers(self, utt2spk: dict[str, str]) -> None:
        self.speakers = sorted(set(utt2spk[u] for u in self.utts))
        index = {s: i for i, s in enumerate(self.speakers)}
        self.utt_speaker = np.array([index[utt2spk[u]] for u in self.utts], dtype=np.int64)

    def crop(self, idx: int, start: int, length: int) -> np.ndarray:
        raise NotImplementedError


class FeatsSource(UtteranceSource):
    """Crops of precomputed features (feats.scp), VAD-trimmed with vad.scp when `use_vad`."""

    def __init__(self, data_dir: str | Path, use_vad: bool = False, cmn: bool = False):
        from spkid.kaldi.io import read_dict

        data_dir = Path(data_dir)
        feats_scp = data_dir / "feats.scp"
        if not feats_scp.exists():
            raise SpkidError(f"{data_dir}: no feats.scp (run steps/make_fbank.sh or spkid compute-fbank)")
        data = DataDir(data_dir)
        utt2spk = data.table("utt2spk")
        scp = data.table("feats.scp")
        self.utts = [u for u in scp if u in utt2spk]
        self.entries = [scp[u] for u in self.utts]
        self.cmn = cmn
        self.vad: list[np.ndarray] | None = None
        if use_vad:
            vad_scp = data_dir / "vad.scp"
            if not vad_scp.exists():
                raise SpkidError(f"{data_dir}: features.vad is set but there is no vad.scp (run spkid compute-vad)")
            vad = read_dict(f"scp:{vad_scp}")
            missing = [u for u in self.utts if u not in vad]
            if missing:
                raise SpkidError(f"{vad_scp}: no VAD for {len(missing)} utterances (first: {missing[0]})")
            self.vad = [np.asarray(vad[u]) != 0 for u in self.utts]
            self.lengths = np.array([int(v.sum()) for v in self.vad], dtype=np.int64)
        else:
            num_frames = data_dir / "utt2num_frames"
            if num_frames.exists():
                table = data.table("utt2num_frames")
                self.lengths = np.array([int(table[u]) for u in self.utts], dtype=np.int64)
            else:
                self.lengths = np.array([len(self._read(i)) for i in range(len(self.utts))], dtype=np.int64)
        first = self._read(0) if self.entries else None
        if first is None:
            raise SpkidError(f"{feats_scp}: no utterance with a speaker in utt2spk")
        self.dim = int(first.shape[1])
        self._set_speakers(utt2spk)

    def _read(self, idx: int) -> np.ndarray:
        from spkid.kaldi.objects import load_entry

        return load_entry(self.entries[idx], key=self.utts[idx])

    def load(self, idx: int) -> np.ndarray:
        feats = np.asarray(self._read(idx), dtype=np.float32)
        if not np.isfinite(feats).all():
            raise SpkidError(f"utterance {self.utts[idx]}: {self.entries[idx]}: features have NaN or infinite "
                             "values")
        voiced = self.vad[idx] if self.vad is not None else None
        return select_voiced_and_normalise(feats, voiced, self.cmn, where=f"utterance {self.utts[idx]}: ")

    def crop(self, idx: int, start: int, length: int) -> np.ndarray:
        return self.load(idx)[start:start + length]


class AudioSource(UtteranceSource):
    """Crops computed on the fly from audio: lhotse cuts of the data dir, features by the front-end."""

    def __init__(self, data_dir: str | Path, frontend, frame_shift: float, frame_length: float,
                 cmn: bool = False):
        from spkid.data.lhotse_bridge import data_dir_to_cuts

        self.frontend = frontend
        self.shift, self.window = frame_shift, frame_length
        self.cmn = cmn
        cuts = data_dir_to_cuts(data_dir, frontend.sample_rate)
        self.cuts = {c.supervisions[0].id if c.supervisions else c.id: c for c in cuts}
        utt2spk = {u: c.supervisions[0].speaker for u, c in self.cuts.items()}
        self.utts = sorted(self.cuts, key=lambda u: u.encode())
        self.lengths = np.array([max(0, int((self.cuts[u].duration - self.window) / self.shift) + 1)
                                 for u in self.utts], dtype=np.int64)
        self.dim = int(frontend.dim)  # (a probe of silence would be trimmed away by the Resemblyzer front-end)
        self._set_speakers(utt2spk)

    def crop(self, idx: int, start: int, length: int, speed: float = 1.0, transform=None) -> np.ndarray:
        """`length` frames from frame `start`; with `speed`, the audio played `speed` times faster (the crop
        then spans length x speed frames of the utterance) and `transform(wave, rate)` applied to the
        waveform before the front-end (training augmentation, spkid.data.augmentation)."""
        left_out = self.__dict__.setdefault("left_out", {})  # utterance found unusable -> its stand-in (per worker)
        if idx in left_out:
            return self._crop_instead(idx, start, length, speed, transform)
        cut = self.cuts[self.utts[idx]]
        offset = start * self.shift
        duration = min(cut.duration - offset, ((length - 1) * self.shift + self.window) * speed + 1e-4)
        audio = cut.truncate(offset=offset, duration=duration, preserve_id=True).load_audio()
        if not np.isfinite(audio).all():  # left out like an undecodable recording: crop another of the speaker
            self._leave_out(idx)
            return self._crop_instead(idx, start, length, speed, transform)
        wave = np.asarray(audio[0], dtype=np.float32)
        rate = int(self.frontend.sample_rate)
        if speed != 1.0:
            from spkid.augment.transforms import speed_perturb

            wave = speed_perturb(wave, rate, speed)
        if transform is not None:
            wave = np.asarray(transform(wave, rate), dtype=np.float32)
        feats = self.frontend(wave)
        # a short utterance gives what it has
        want = min(length, max(1, int(round(int(self.lengths[idx]) / speed)) - int(start / speed)))
        if len(feats) < want:  # rounding at the edge: repeat the last frames
            feats = np.concatenate([feats, feats[-1:].repeat(want - len(feats), axis=0)])
        return select_voiced_and_normalise(feats[:length], None, self.cmn)


    def _leave_out(self, idx: int) -> None:
        """Mark utterance `idx` unusable (NaN or inf in its audio, found when cropping): from now on a crop of
        another utterance of its speaker stands in for it; SpkidError when the speaker has none left."""
        left_out = self.__dict__["left_out"]
        left_out[idx] = None
        same = np.flatnonzero(self.utt_speaker == self.utt_speaker[idx])
        usable = [int(i) for i in same if int(i) not in left_out]
        if not usable:
            raise SpkidError(f"utterance {self.utts[idx]}: audio has non-finite samples (NaN or inf), as have all "
                             f"the other utterances of speaker {self.speakers[self.utt_speaker[idx]]}")
        for bad in left_out:  # stand-ins chosen among the usable ones, spread by position
            if left_out[bad] is None or left_out[bad] == idx:
                left_out[bad] = usable[int(np.flatnonzero(same == bad)[0]) % len(usable)]
        logger.warning("utterance %s left out: its audio has non-finite samples (NaN or inf); crops of %s (same "
                       "speaker) stand in for it", self.utts[idx], self.utts[left_out[idx]])

    def _crop_instead(self, idx: int, start: int, length: int, speed: float, transform) -> np.ndarray:
        other = self.__dict__["left_out"][idx]
        span = int(np.ceil(length * speed))
        return self.crop(other, min(start, max(0, int(self.lengths[other]) - span)), length, speed, transform)


def open_source(data_dir: str | Path, features: dict, source: str = "auto") -> UtteranceSource:
    """Shards when the folder has shards.json (or source='shar'), else feats.scp when present (or
    source='feats'), else audio (source='audio')."""
    data_dir = Path(data_dir)
    feats_config = dict(features)
    use_vad = feats_config.get("vad") is not None
    cmn = bool(feats_config.get("cmn", False))
    if source == "auto":
        source = "shar" if (data_dir / "shards.json").exists() else "feats" if (data_dir / "feats.scp").exists() \
            else "audio"
    if source == "shar":  # shards of `spkid make-shards`: streamed, see spkid.data.shard_stream
        from spkid.data.shard_stream import ShardSource

        return ShardSource(data_dir, feats_config)
    if source == "feats":
        src: UtteranceSource = FeatsSource(data_dir, use_vad=use_vad, cmn=cmn)
        expected = build_frontend(feats_config).dim
        if src.dim != expected:
            raise SpkidError(f"{data_dir}/feats.scp has {src.dim}-dim features but the config's front-end "
                             f"makes {expected}; compute them with the same options")
        return src
    if source != "audio":
        raise SpkidError(f"data.source must be auto, feats, audio or shar, not '{source}'")
    frontend = build_frontend({k: v for k, v in feats_config.items() if k != "cmn"})  # CMN: by the source
    shift = feats_config.get("frame_shift", 10.0) / 1000
    window = feats_config.get("frame_length", 25.0) / 1000
    logger.info("computing features on the fly from audio in %s", data_dir)
    return AudioSource(data_dir, frontend, shift, window, cmn=cmn)
