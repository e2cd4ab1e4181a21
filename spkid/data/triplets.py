"""Deep Speaker random triplets (the softmax pre-training crops are spkid.data.samplers.RandomCropSampler).

Like spkid.data.samplers, every batch is a list of (utterance index, crop seed) and a pure function of
(seed, step, rank), so resuming reproduces a run and DDP ranks draw different batches. Triplet
batches are laid out [anchors; positives; negatives] (T each), the layout TripletCosineLoss reads.
Utterances shorter than the crop are never used (with a logged count).
"""
from __future__ import annotations

import numpy as np

from spkid.data.samplers import StepSampler, speaker_groups
from spkid.errors import SpkidError


class RandomTripletSampler(StepSampler):
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
