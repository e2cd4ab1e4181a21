"""Batch samplers yielding lists of (utterance index, crop seed), one list per training step.

Batches are a pure function of (seed, step, rank): resuming at step S reproduces the run, and under
DDP every rank draws its own, different speakers for the same step.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.data")


class SpeakerUtteranceSampler:
    """GE2E batches: N speakers x M utterances, speaker-major order.

    Speakers with fewer than M usable utterances (at least `min_frames` long) are dropped, with a
    logged count, unless `replacement` lets their utterances repeat within a batch.
    """

    def __init__(self, utt_speaker: np.ndarray, lengths: np.ndarray, num_speakers: int,
                 num_utterances: int, min_frames: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start_step: int = 0, replacement: bool = False, source_name: str = "data"):
        self.n, self.m = num_speakers, num_utterances
        self.seed, self.rank, self.world = seed, rank, world_size
        self.start_step = start_step
        self.replacement = replacement
        usable = np.flatnonzero(lengths >= min_frames)
        by_spk: dict[int, list[int]] = {}
        for idx in usable:
            by_spk.setdefault(int(utt_speaker[idx]), []).append(int(idx))
        need = 1 if replacement else num_utterances
        self.groups = [np.array(v) for _, v in sorted(by_spk.items()) if len(v) >= need]
        total_spk = len(set(utt_speaker.tolist()))
        dropped = total_spk - len(self.groups)
        if dropped:
            logger.info("dropped %d of %d speakers with fewer than %d utterances of >= %d frames",
                        dropped, total_spk, need, min_frames)
        if len(self.groups) < num_speakers * world_size:
            raise SpkidError(
                f"{source_name}: only {len(self.groups)} speakers have {need} utterance(s) of >= {min_frames} "
                f"frames; a batch needs {num_speakers} speakers x {world_size} process(es) "
                "(lower data.speakers_per_batch / data.utterances_per_speaker, or set "
                "data.sample_with_replacement true)")

    def batch(self, step: int) -> list[tuple[int, int]]:
        order = np.random.default_rng([self.seed, step]).permutation(len(self.groups))
        mine = order[self.rank * self.n:(self.rank + 1) * self.n]
        rng = np.random.default_rng([self.seed, step, self.rank, 1])
        out = []
        for g in mine:
            utts = self.groups[g]
            pick = rng.choice(len(utts), self.m, replace=len(utts) < self.m)
            out.extend((int(utts[i]), int(s)) for i, s in zip(pick, rng.integers(0, 2**31, self.m)))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1
