"""Run a per-utterance feature function over a wav rspecifier into a Kaldi wspecifier.

Shared by compute-fbank and compute-vad: sample-rate checks and resampling, per-utterance failures
collected (the others go on), output written atomically, progress with tqdm.

With `num_threads` > 1, decoding and features run in a thread pool (libsndfile, SciPy's FFT and
NumPy release the GIL) while the calling thread writes the results in input order, so the output
is the same as with one thread. Segments of one recording stay together in one task, which loads
the recording once.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Callable

import numpy as np

from spkid.errors import FailureLog
from spkid.kaldi.audio import AudioError, check_sample_rate, iter_loaded, iter_wave_rspecifier, list_audio, resample
from spkid.kaldi.io import TableWriter, parse_specifier

# (utt, features or None, error or None)
Result = tuple[str, "np.ndarray | None", "str | None"]


def resolve_threads(num_threads: int) -> int:
    """--num-threads: N >= 1 as given, 0 (or less) means every CPU this process may use."""
    if num_threads > 0:
        return num_threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def compute_table(rspecifier: str, wspecifier: str, feature_fn: Callable[[np.ndarray], np.ndarray],
                  sample_frequency: float, *, segments: str | None = None, resample_to: int | None = None,
                  channel: int = -1, min_duration: float = 0.0, what: str = "utterances", num_threads: int = 1
                  ) -> tuple[FailureLog, dict[str, int]]:
    """Compute `feature_fn(wave)` for every utterance; returns (failures, utt -> number of frames).

    With `resample_to`, audio at any rate is resampled to it (it must equal sample_frequency);
    otherwise a rate differing from sample_frequency is an error for that utterance.
    `num_threads` > 1 computes utterances in parallel threads (`feature_fn` must be thread-safe);
    the output and the failures reported are the same as with one thread.
    """
    from tqdm import tqdm

    from spkid.errors import SpkidError

    if resample_to is not None:
        try:
            check_sample_rate(resample_to, f"--resample-to={resample_to}")
        except AudioError as err:
            raise SpkidError(str(err)) from None
    log = FailureLog(what=what)
    num_frames: dict[str, int] = {}
    process = partial(_process, feature_fn=feature_fn, sample_frequency=sample_frequency,
                      resample_to=resample_to, min_duration=min_duration)
    tasks = _tasks(rspecifier, segments, channel, process)
    with TableWriter(wspecifier) as writer:
        results = _run_ordered(tasks, resolve_threads(num_threads))
        for utt, feats, error in tqdm(results, desc="utterances", unit="utt", disable=None, leave=False):
            if error is not None:
                log.fail(utt, error)
                continue
            writer.write(utt, feats)
            num_frames[utt] = len(feats)
            log.ok()
    return log, num_frames


def _process(utt: str, wave: np.ndarray | None, rate: int, error: str | None, *,
             feature_fn: Callable[[np.ndarray], np.ndarray], sample_frequency: float,
             resample_to: int | None, min_duration: float) -> Result:
    """One utterance: checks, resampling, features; a problem becomes its error message."""
    if error is not None:
        return utt, None, error
    if rate != sample_frequency:
        if resample_to is None:
            return utt, None, (f"sample rate {rate} Hz differs from --sample-frequency="
                               f"{sample_frequency:g} (use --resample-to {int(sample_frequency)})")
        try:
            wave = resample(wave, rate, int(resample_to))
        except AudioError as err:
            return utt, None, str(err)
    duration = len(wave) / sample_frequency
    if duration < min_duration:
        return utt, None, f"duration {duration:.3f}s is below --min-duration={min_duration:g}"
    feats = feature_fn(wave)
    if len(feats) == 0:
        return utt, None, f"audio too short for one frame ({len(wave)} samples, {duration:.3f}s)"
    return utt, feats, None


def _tasks(rspecifier: str, segments: str | None, channel: int, process: Callable[..., Result]
           ) -> Iterator[Callable[[], list[Result]]]:
    """Units of work in output order: each loads its audio itself (scp) or gets it decoded (ark)."""
    spec = parse_specifier(rspecifier)
    if spec.scp is None:  # an archive of waves is read sequentially; features run in the tasks
        for utt, wave, rate, error in iter_wave_rspecifier(rspecifier, segments=segments, channel=channel):
            yield partial(_one, process, utt, wave, rate, error)
        return
    items, problems = list_audio(spec.scp, segments)
    for utt, reason in problems:
        yield partial(_one, process, utt, None, 0, reason)
    group: list = []
    for item in items:  # consecutive segments of one recording (and channel) share one load
        if group and (item.segment is None or _recording(item, channel) != _recording(group[-1], channel)):
            yield partial(_load_group, process, group, channel)
            group = []
        group.append(item)
    if group:
        yield partial(_load_group, process, group, channel)


def _recording(item, channel: int) -> tuple[str, int] | None:
    if item.segment is None:
        return None
    return item.entry, item.segment.channel if item.segment.channel >= 0 else channel


def _one(process: Callable[..., Result], utt: str, wave, rate: int, error: str | None) -> list[Result]:
    return [process(utt, wave, rate, error)]


def _load_group(process: Callable[..., Result], group: list, channel: int) -> list[Result]:
    return [process(item.utt, wave, rate, error) for item, wave, rate, error in iter_loaded(group, channel)]


def _run_ordered(tasks: Iterator[Callable[[], list[Result]]], num_threads: int) -> Iterator[Result]:
    """Results of `tasks` in order; with several threads at most 4 tasks per thread are in flight."""
    if num_threads <= 1:
        for task in tasks:
            yield from task()
        return
    pool = ThreadPoolExecutor(num_threads, thread_name_prefix="spkid-features")
    pending: deque[Future] = deque()
    try:
        for task in tasks:
            pending.append(pool.submit(task))
            while len(pending) >= 4 * num_threads:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
