"""Batch samplers yielding lists of (utterance index, crop seed), one list per training step: GE2E's
speakers x utterances and random crops for softmax training (Deep Speaker's triplets: spkid.data.triplets).

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


def speaker_groups(utt_speaker: np.ndarray, lengths: np.ndarray, min_frames: int) -> dict[int, np.ndarray]:
    """Speaker index -> indices of its utterances of at least `min_frames` frames (speakers without any
    are left out, and the number of short utterances left out is logged)."""
    usable = np.flatnonzero(np.asarray(lengths) >= min_frames)
    short = len(lengths) - len(usable)
    if short:
        logger.info("left out %d of %d utterances shorter than %d frames", short, len(lengths), min_frames)
    groups: dict[int, list[int]] = {}
    for idx in usable:
        groups.setdefault(int(utt_speaker[idx]), []).append(int(idx))
    return {s: np.array(v, dtype=np.int64) for s, v in sorted(groups.items())}


class StepSampler:
    seed: int
    rank: int
    start_step: int

    def batch(self, step: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    def rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, self.rank, 11])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


class RandomCropSampler(StepSampler):
    """Softmax pre-training: `batch_size` utterances drawn uniformly (no repeat within a batch when the
    data has enough), each with its own crop seed. With `balance_speakers` the speakers are drawn
    uniformly first (no repeat while the batch has room), then an utterance of each: speakers with few
    utterances are seen as often as the others."""

    def __init__(self, utt_speaker: np.ndarray, lengths: np.ndarray, batch_size: int, min_frames: int,
                 seed: int = 0, rank: int = 0, start_step: int = 0, source_name: str = "data",
                 balance_speakers: bool = False):
        self.groups = speaker_groups(utt_speaker, lengths, min_frames)
        if len(self.groups) < 2:
            raise SpkidError(f"{source_name}: softmax training needs utterances of >= {min_frames} frames from at "
                             f"least 2 speakers; {len(self.groups)} speaker(s) have any (lower data.min_frames?)")
        self.utts = np.concatenate(list(self.groups.values()))
        self.speakers = np.array(sorted(self.groups), dtype=np.int64)
        self.balance = bool(balance_speakers)
        self.batch_size, self.seed, self.rank, self.start_step = int(batch_size), seed, rank, start_step

    def batch(self, step: int) -> list[tuple[int, int]]:
        rng = self.rng(step)
        if self.balance:
            rounds = -(-self.batch_size // len(self.speakers))
            order = np.concatenate([rng.permutation(self.speakers) for _ in range(rounds)])[:self.batch_size]
            chosen = [int(self.groups[int(s)][rng.integers(len(self.groups[int(s)]))]) for s in order]
        else:
            pick = rng.choice(len(self.utts), self.batch_size, replace=len(self.utts) < self.batch_size)
            chosen = [int(self.utts[i]) for i in pick]
        seeds = rng.integers(0, 2**31, self.batch_size)
        return [(u, int(s)) for u, s in zip(chosen, seeds)]
