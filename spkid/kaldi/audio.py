"""Audio from Kaldi data dirs: wav.scp entries (paths, `cmd |` pipes, `file.ark:offset`) and segments.

Samples come back as float32 in [-1, 1); Kaldi's feature code works on int16-scaled values, which the
feature front-ends apply (`KALDI_SCALE`). Segments are cut exactly as Kaldi's extract-segments does.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from spkid.errors import SpkidError, where
from spkid.kaldi.pipe_runners import RUNNERS as PIPE_RUNNERS
from spkid.kaldi.tables import TableLine, check_table, iter_table
from spkid.kaldi.wav_writer import KALDI_SCALE, kaldi_wav_bytes  # noqa: F401 (spkid.kaldi.audio's API)

_ARK_OFFSET = re.compile(r"^(.+):(\d+)$")
REPO_UTILS = Path(__file__).resolve().parents[2] / "utils"  # holds the wav-reverberate shim
MAX_OVERSHOOT = 0.5  # seconds a segment may end past its recording (extract-segments --max-overshoot)
# Sample rates spkid reads or resamples to: below 4 kHz there is no speech band left (a header saying 1 or 16
# is a broken file or kHz given for Hz), above 384 kHz no audio hardware records; resampling between them
# grows a signal at most 96-fold (4 for a 16 kHz model), so a tiny file cannot ask for gigabytes.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000
# Samples (all channels) read from one recording or made by resampling one: 2^30 is 4 GiB as float32,
# 18.6 hours of 16 kHz mono. Longer recordings are cut into pieces first (e.g. with sox).
MAX_RECORDING_SAMPLES = 1 << 30


class AudioError(Exception):
    """A per-utterance audio problem (the caller reports it and goes on)."""


class SampleRateError(AudioError, ValueError):
    """A sample rate outside MIN_SAMPLE_RATE..MAX_SAMPLE_RATE (also a ValueError, for the Python API)."""


def check_sample_rate(rate: int | float, what: str) -> int:
    """`rate` as an int when it is a plausible sample rate, else SampleRateError naming `what`."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE or int(rate) != rate:
        raise SampleRateError(f"{what}: sample rate {rate:g} Hz is outside the {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz "
                              "spkid accepts (a broken header, or kHz given for Hz?)")
    return int(rate)


def check_num_samples(num_samples: int, rate: int, what: str) -> None:
    """AudioError when a recording holds more than MAX_RECORDING_SAMPLES samples (all channels)."""
    if num_samples > MAX_RECORDING_SAMPLES:
        raise AudioError(f"{what}: {num_samples} samples ({num_samples / rate / 3600:.1f} hours at {rate} Hz) are "
                         f"more than spkid reads from one recording ({MAX_RECORDING_SAMPLES}, 4 GiB as float32); "
                         "cut it into shorter files first")


@dataclass(frozen=True)
class Segment:
    utt: str
    recording: str
    start: float
    end: float  # -1 means until the end of the recording (Kaldi)
    channel: int = -1
    origin: str = ""  # `segments:LINE`, for messages


def read_audio(entry: str, channel: int = -1) -> tuple[np.ndarray, int]:
    """Load one wav.scp value: a path, a `cmd |` pipe, or `file.ark:offset`. Returns (mono float32, rate).

    channel -1 expects mono input (as Kaldi's --channel=-1); otherwise pick that channel. Audio with
    NaN or infinite samples is refused (AudioError), as is anything unreadable.
    """
    data, rate = read_audio_channels(entry)
    entry = entry.strip()
    what = f"the output of command '{entry[:-1].strip()}'" if entry.endswith("|") else f"'{entry}'"
    return _pick_channel(data, channel, what), rate


def read_audio_channels(entry: str) -> tuple[np.ndarray, int]:
    """Load a Kaldi rxfilename (path, `cmd |`, `file.ark:offset`, `-` for stdin).

    Returns (float32 samples in [-1, 1) shaped (samples, channels), rate). Rates outside
    MIN_SAMPLE_RATE..MAX_SAMPLE_RATE and recordings over MAX_RECORDING_SAMPLES are refused (from the header).
    """
    entry = entry.strip()
    what = f"'{entry}'"
    if entry.endswith("|"):
        cmd = entry[:-1].strip()
        what = f"the output of command '{cmd}'"
        env = pipe_env()
        for runner in PIPE_RUNNERS:  # e.g. wav-reverberate stages computed in this process (pipe_runners)
            inline = runner(cmd, env)
            if inline is not None:
                return _checked(*inline, what)
        proc = subprocess.run(cmd, shell=True, capture_output=True, env=env,
                              executable="/bin/bash")
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise AudioError(f"command '{cmd}' failed (exit status {proc.returncode})"
                             + (f": {err[-1]}" if err else ""))
        if not proc.stdout:
            raise AudioError(f"command '{cmd}' produced no audio")
        source: object = io.BytesIO(proc.stdout)
    elif entry == "-":
        source = io.BytesIO(sys.stdin.buffer.read())
    else:
        m = _ARK_OFFSET.match(entry)
        if m and os.path.isfile(m.group(1)) and not os.path.isfile(entry):
            return _read_ark_wave(entry)
        if not os.path.exists(entry):
            raise AudioError(f"audio file '{entry}' does not exist")
        source = entry
    return _decode(source, what)


def _decode(source: object, what: str) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 and rate of a file or buffer; the header is checked before decoding."""
    import soundfile as sf

    try:
        with sf.SoundFile(source) as handle:
            rate, frames, channels = int(handle.samplerate), handle.frames, handle.channels
            check_sample_rate(rate, what)
            check_num_samples(frames * channels, rate, what)
            data = handle.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError
        reason = getattr(err, "error_string", None) or str(err)  # not soundfile's "Error opening <BytesIO>"
        raise AudioError(f"cannot decode audio from {what}: {reason}") from None
    return data, rate


def _checked(data: np.ndarray, rate: int, what: str) -> tuple[np.ndarray, int]:
    """Audio made in-process (a pipe computed here, an archive's wave): the same checks as a decoded file."""
    check_sample_rate(rate, what)
    check_num_samples(data.size, int(rate), what)
    return data, int(rate)


def pipe_env() -> dict[str, str]:
    """Environment for wav.scp pipes: PATH gains, at its end, the repo's utils/ (the `wav-reverberate`
    shim) and this Python's bin/ (`spkid`), so Kaldi-style augmented wav.scp lines run without Kaldi."""
    env = dict(os.environ)
    extra = [str(d) for d in (REPO_UTILS, Path(sys.executable).parent) if d.is_dir()]
    env["PATH"] = os.pathsep.join([env.get("PATH", os.defpath), *extra])
    return env


def _pick_channel(data: np.ndarray, channel: int, what: str) -> np.ndarray:
    """The samples of one channel; refused when that channel has NaN or infinite samples."""
    num_chan = data.shape[1]
    if channel == -1:
        if num_chan != 1:
            raise AudioError(f"{what} has {num_chan} channels; choose one with --channel")
        channel = 0
    if channel >= num_chan:
        raise AudioError(f"{what} has {num_chan} channels, no channel {channel}")
    wave = np.ascontiguousarray(data[:, channel])
    finite = np.isfinite(wave)
    if not finite.all():
        raise AudioError(f"{what} has {int((~finite).sum())} non-finite samples (NaN or inf), "
                         f"the first at sample {int(np.argmin(finite))}")
    return wave


def _read_ark_wave(entry: str) -> tuple[np.ndarray, int]:
    from spkid.kaldi.objects import WAVE, BadObject, read_entry

    try:
        riff = read_entry(entry, WAVE)
    except BadObject as err:
        raise AudioError(f"cannot read wave from '{entry}': {err}") from None
    return _decode_riff(riff, f"'{entry}'")


def _decode_riff(riff: bytes, name: str) -> tuple[np.ndarray, int]:
    """Samples (samples, channels) of a RIFF wave held in an archive (Kaldi's wave ark), float32 in [-1, 1)."""
    return _decode(io.BytesIO(riff), f"the wave of {name}")


def cut_segment(wave: np.ndarray, rate: int, seg: Segment, max_overshoot: float = MAX_OVERSHOOT,
                min_segment_length: float = 0.1) -> np.ndarray:
    """Cut a segment as Kaldi's extract-segments: truncated sample indices, overshoot tolerance."""
    num_samp = len(wave)
    start_samp = int(seg.start * rate)
    end_samp = int(seg.end * rate) if seg.end != -1 else num_samp
    if start_samp >= num_samp:
        raise AudioError(f"segment starts at {seg.start}s, past the end of recording {seg.recording} "
                         f"({num_samp / rate:.3f}s)")
    if end_samp > num_samp:
        if end_samp >= num_samp + int(max_overshoot * rate):
            raise AudioError(f"segment ends at {seg.end}s, past the end of recording {seg.recording} "
                             f"({num_samp / rate:.3f}s) by more than {max_overshoot}s")
        end_samp = num_samp
    if end_samp <= start_samp + int(min_segment_length * rate):
        raise AudioError(f"segment shorter than {min_segment_length}s")
    return wave[start_samp:end_samp]


def resample(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited polyphase resampling (scipy), deterministic. Both rates must be plausible (check_sample_rate)
    and the result at most MAX_RECORDING_SAMPLES long, else SampleRateError / AudioError before any work."""
    if rate_in == rate_out:
        return wave
    from scipy.signal import resample_poly

    rate_in = check_sample_rate(rate_in, "audio to resample")
    rate_out = check_sample_rate(rate_out, "the rate to resample to")
    check_num_samples(-(-len(wave) * rate_out // rate_in), rate_out, "the resampled audio")
    g = gcd(rate_in, rate_out)
    return resample_poly(wave, rate_out // g, rate_in // g).astype(np.float32)


def parse_segments(lines: list[TableLine], path: str) -> tuple[list[Segment], list[tuple[str, str]]]:
    """Parse segments lines `<utt> <recording> <start> <end> [<channel>]`; bad lines become problems."""
    segs, problems = [], []
    for item in lines:
        fields = item.value.split()
        loc = where(path, item.lineno)
        try:
            if len(fields) not in (3, 4):
                raise ValueError("expected '<utt> <recording> <start> <end> [<channel>]'")
            start, end = float(fields[1]), float(fields[2])
            channel = int(fields[3]) if len(fields) == 4 else -1
            if start < 0 or (end != -1 and end <= start):
                raise ValueError(f"empty or invalid segment {start}..{end}")
        except ValueError as err:
            problems.append((item.key, f"bad segments line at {loc}: {err}"))
            continue
        segs.append(Segment(item.key, fields[0], start, end, channel, loc))
    return segs, problems


@dataclass
class AudioItem:
    """One utterance to load: from a whole recording or a segment of one."""

    utt: str
    entry: str  # wav.scp value of the recording
    segment: Segment | None = None
    origin: str = ""  # where it comes from, for messages: `wav.scp:LINE` (and `segments:LINE`)
    channel: int = -1  # the channel to read when the segment gives none (-1: the audio must be mono)

    def load(self, channel: int | None = None) -> tuple[np.ndarray, int]:
        """(wave, rate); an AudioError names the wav.scp (and segments) line."""
        ch = self.channel if channel is None else channel
        try:
            if self.segment is not None and self.segment.channel >= 0:
                ch = self.segment.channel
            wave, rate = read_audio(self.entry, ch)
            if self.segment is not None:
                wave = cut_segment(wave, rate, self.segment)
            if len(wave) == 0:
                raise AudioError("zero-length audio")
        except AudioError as err:
            raise self.located(err) from None
        return wave, rate

    def located(self, err: AudioError) -> AudioError:
        """The error prefixed with where the utterance is listed."""
        return AudioError(f"{self.origin}: {err}") if self.origin else err


def list_audio(wav_scp: str | os.PathLike, segments: str | os.PathLike | None = None
               ) -> tuple[list[AudioItem], list[tuple[str, str]]]:
    """The utterances of a wav.scp (+ segments), in order, and the problems found (id, reason)."""
    wav_scp = str(wav_scp)
    problems: list[tuple[str, str]] = []  # empty or path-less lines are problems; the rest is processed
    lines, bad = check_table(iter_table(wav_scp, problems=problems), wav_scp)
    problems += bad
    recordings = {item.key: item for item in lines}
    if segments is None:
        return [AudioItem(item.key, item.value, origin=where(wav_scp, item.lineno)) for item in lines], problems
    segments = str(segments)
    seg_lines, seg_problems = check_table(iter_table(segments, problems=problems), segments)
    segs, bad = parse_segments(seg_lines, segments)
    problems += seg_problems + bad
    items = []
    for seg in segs:
        reco = recordings.get(seg.recording)
        if reco is None:
            problems.append((seg.utt, f"recording '{seg.recording}' of {seg.origin} is not in {wav_scp}"))
            continue
        items.append(AudioItem(seg.utt, reco.value, seg, origin=f"{seg.origin} (recording at "
                                                                f"{where(wav_scp, reco.lineno)})"))
    return items, problems


def iter_loaded(items: list[AudioItem], channel: int = -1
                ) -> Iterator[tuple[AudioItem, np.ndarray | None, int, str | None]]:
    """Load items one by one, caching the last recording (segments of one file load it once).

    Yields (item, wave, rate, error); wave is None and error the reason when loading failed.
    """
    cache: tuple[str, int, np.ndarray, int] | None = None
    for item in items:
        try:
            if item.segment is None:
                wave, rate = item.load(channel)
            else:
                ch = item.segment.channel if item.segment.channel >= 0 else channel
                try:
                    if cache is None or cache[:2] != (item.entry, ch):
                        full, rate = read_audio(item.entry, ch)
                        cache = (item.entry, ch, full, rate)
                    wave = cut_segment(cache[2], cache[3], item.segment)
                except AudioError as err:
                    raise item.located(err) from None
                rate = cache[3]
            yield item, wave, rate, None
        except AudioError as err:
            yield item, None, 0, str(err)


def iter_wave_rspecifier(rspecifier: str, segments: str | None = None, channel: int = -1
                         ) -> Iterator[tuple[str, np.ndarray | None, int, str | None]]:
    """Waves from a Kaldi wav rspecifier: `scp:wav.scp` (paths, pipes; + segments) or `ark:...` of wavs.

    Yields (utt, wave, rate, error): problems in the tables (duplicate/unsorted ids, bad segments)
    and unreadable audio come out as errors for that utterance; the others are still yielded.
    """
    from spkid.kaldi.io import parse_specifier

    spec = parse_specifier(rspecifier)
    if spec.scp is not None:
        items, problems = list_audio(spec.scp, segments)
        for utt, reason in problems:
            yield utt, None, 0, reason
        for item, wave, rate, error in iter_loaded(items, channel):
            yield item.utt, wave, rate, error
        return
    if segments is not None:
        raise SpkidError("segments need the recordings as scp:wav.scp, not an ark")
    from spkid.kaldi.io import read_table

    for utt, riff in read_table("ark:" + spec.ark, kind="wave"):
        what = f"wave '{utt}' of {spec.ark}"
        try:
            data, rate = _decode_riff(riff, what)
            wave = _pick_channel(data, channel, what)
        except AudioError as err:
            yield utt, None, 0, str(err)
            continue
        yield utt, wave, rate, None
