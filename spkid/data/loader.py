"""DataLoader over an utterance source: random fixed-length crops made in worker processes."""
from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import torch

from spkid.data.sources import UtteranceSource
from spkid.errors import SpkidError


class CropDataset(torch.utils.data.Dataset):
    """Item (utterance index, seed) -> (crop of `crop_frames` frames, speaker index).

    With an `augmentation` (spkid.data.augmentation.TrainAugmentation) the crop's audio is speed-perturbed
    and augmented before the front-end and its features masked after it, all drawn from the item's own
    Generator; a speed-perturbed crop of `speed_as_new_speakers` is labelled speaker + k x num_speakers.
    """

    def __init__(self, source: UtteranceSource, crop_frames: int, augmentation=None):
        self.source, self.crop_frames, self.augmentation = source, crop_frames, augmentation

    def __len__(self) -> int:
        return len(self.source.utts)

    def __getitem__(self, item: tuple[int, int]) -> tuple[np.ndarray, int]:
        idx, seed = item
        aug = self.augmentation
        rng = aug.rng(seed) if aug is not None else None
        block, speed = aug.draw_speed(rng) if aug is not None else (0, 1.0)
        span = self.crop_frames if speed == 1.0 else int(np.ceil(self.crop_frames * speed))
        length = int(self.source.lengths[idx])
        start = int(np.random.default_rng(seed).integers(0, max(1, length - span + 1)))
        if aug is not None and aug.needs_audio:
            feats = self.source.crop(idx, start, self.crop_frames, speed=speed,
                                     transform=lambda wave, rate: aug.augment_wave(wave, rate, rng))
        else:
            feats = self.source.crop(idx, start, self.crop_frames)
        if len(feats) < self.crop_frames:  # only with replacement sampling of short utterances
            reps = int(np.ceil(self.crop_frames / max(1, len(feats))))
            feats = np.tile(feats, (reps, 1))[: self.crop_frames]
        if aug is not None:
            feats = aug.spec_augment(feats, rng)
        speaker = int(self.source.utt_speaker[idx]) + block * len(self.source.speakers)
        return feats.astype(np.float32, copy=False), speaker


def collate(items: list[tuple[np.ndarray, int]]) -> dict[str, torch.Tensor]:
    feats = torch.from_numpy(np.stack([f for f, _ in items]))
    return {"feats": feats, "speakers": torch.tensor([s for _, s in items], dtype=torch.long)}


def make_loader(source: UtteranceSource, batch_sampler, crop_frames: int, num_workers: int = 2,
                prefetch: int = 4, augmentation=None) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        CropDataset(source, crop_frames, augmentation), batch_sampler=batch_sampler, collate_fn=collate,
        num_workers=num_workers, persistent_workers=num_workers > 0,
        prefetch_factor=prefetch if num_workers > 0 else None, pin_memory=torch.cuda.is_available())


class TimedIterator:
    """Wraps a batch iterator, measuring how long each `next` waited (loader stalls)."""

    def __init__(self, iterable):
        self._it: Iterator = iter(iterable)
        self.last_wait = 0.0

    def __iter__(self) -> TimedIterator:
        return self

    def __next__(self):
        start = time.perf_counter()
        try:
            batch = next(self._it)
        except SpkidError as err:  # from a worker, torch's message holds the worker's traceback: keep the error
            raise SpkidError(str(err).strip().splitlines()[-1].split("SpkidError: ", 1)[-1]) from None
        self.last_wait = time.perf_counter() - start
        return batch
