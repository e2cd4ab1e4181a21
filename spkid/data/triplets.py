"""Deep Speaker batch samplers: random crops for softmax pre-training and random triplets.

Like spkid.data.samplers, every batch is a list of (utterance index, crop seed) and a pure function of
(seed, step, rank), so resuming reproduces a run and DDP ranks draw different batches. Triplet
batches are laid out [anchors; positives; negatives] (T each), the layout TripletCosineLoss reads.
Utterances shorter than the crop are never used (with a logged count).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.data")


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


class _StepSampler:
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


class RandomCropSampler(_StepSampler):
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


class RandomTripletSampler(_StepSampler):
    """`--batch random`: T triplets of a random anchor utterance, another utterance of its speaker and an
    utterance of a random other speaker."""

    def __init__(self, utt_speaker: np.ndarray, lengths: np.ndarray, triplets: int, min_frames: int,
                 seed: int = 0, rank: int = 0, start_step: int = 0, source_name: str = "data"):
        self.groups = speaker_groups(utt_speaker, lengths, min_frames)
        self.speakers = np.array(sorted(self.groups), dtype=np.int64)
        self.anchor_speakers = np.array([s for s in self.speakers if len(self.groups[s]) >= 2], dtype=np.int64)
        if len(self.speakers) < 2 or len(self.anchor_speakers) == 0:
            raise SpkidError(f"{source_name}: random triplets need at least 2 speakers with utterances of >= "
                             f"{min_frames} frames, one of them with 2 such utterances; found {len(self.speakers)} "
                             f"speaker(s), {len(self.anchor_speakers)} with 2 (lower data.crop_frames?)")
        self.triplets, self.seed, self.rank, self.start_step = int(triplets), seed, rank, start_step

    def batch(self, step: int) -> list[tuple[int, int]]:
        rng = self.rng(step)
        t = self.triplets
        anchors, positives, negatives = [], [], []
        for spk in rng.choice(self.anchor_speakers, t):
            utts = self.groups[int(spk)]
            a, p = rng.choice(len(utts), 2, replace=False)
            other = self.speakers[self.speakers != spk]
            negs = self.groups[int(rng.choice(other))]
            anchors.append(int(utts[a]))
            positives.append(int(utts[p]))
            negatives.append(int(negs[rng.integers(len(negs))]))
        seeds = rng.integers(0, 2**31, 3 * t)
        return [(int(u), int(s)) for u, s in zip(anchors + positives + negatives, seeds)]
