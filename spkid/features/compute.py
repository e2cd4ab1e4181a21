"""Run a per-utterance feature function over a wav rspecifier into a Kaldi wspecifier.

Shared by compute-fbank and compute-vad: sample-rate checks and resampling, per-utterance failures
collected (the others go on), output written atomically, progress with tqdm.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from spkid.errors import FailureLog
from spkid.kaldi.audio import iter_wave_rspecifier, resample
from spkid.kaldi.io import TableWriter


def compute_table(rspecifier: str, wspecifier: str, feature_fn: Callable[[np.ndarray], np.ndarray],
                  sample_frequency: float, *, segments: str | None = None, resample_to: int | None = None,
                  channel: int = -1, min_duration: float = 0.0, what: str = "utterances"
                  ) -> tuple[FailureLog, dict[str, int]]:
    """Compute `feature_fn(wave)` for every utterance; returns (failures, utt -> number of frames).

    With `resample_to`, audio at any rate is resampled to it (it must equal sample_frequency);
    otherwise a rate differing from sample_frequency is an error for that utterance.
    """
    from tqdm import tqdm

    log = FailureLog(what=what)
    num_frames: dict[str, int] = {}
    with TableWriter(wspecifier) as writer:
        stream = iter_wave_rspecifier(rspecifier, segments=segments, channel=channel)
        for utt, wave, rate, error in tqdm(stream, desc="utterances", unit="utt", disable=None, leave=False):
            if error is not None:
                log.fail(utt, error)
                continue
            if rate != sample_frequency:
                if resample_to is None:
                    log.fail(utt, f"sample rate {rate} Hz differs from --sample-frequency="
                                  f"{sample_frequency:g} (use --resample-to {int(sample_frequency)})")
                    continue
                wave = resample(wave, rate, int(resample_to))
            duration = len(wave) / sample_frequency
            if duration < min_duration:
                log.fail(utt, f"duration {duration:.3f}s is below --min-duration={min_duration:g}")
                continue
            feats = feature_fn(wave)
            if len(feats) == 0:
                log.fail(utt, f"audio too short for one frame ({len(wave)} samples, {duration:.3f}s)")
                continue
            writer.write(utt, feats)
            num_frames[utt] = len(feats)
            log.ok()
    return log, num_frames
