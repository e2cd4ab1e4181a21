"""`--batch hard`: triplets chosen from a history of embedded candidate batches (the reproduction report of
Deep Speaker; philipperemy/deep-speaker's LazyTripletBatcher is the simpler form of it).

Every `candidate_every` steps a candidate batch -- `candidate_speakers` speakers x
`candidate_utterances` utterances (640 x 2), random crops -- is embedded by the current model in eval
mode without gradients and appended to a history holding the last `history_batches` (20) candidate
batches. Each step then draws `anchors` (16) history entries and, for each, takes the
`negatives_per_anchor` (2) most similar entries of other speakers and the `positives_per_anchor` (2)
least similar entries of its own speaker (another utterance): max(P, N) triplets per anchor, pairing
the i-th hardest positive with the i-th hardest negative (16 x 2 = 32 triplets). The selection is a few
matrix operations over the whole history (`select_hard_triplets`); its time is the `select_ms` metric.
The chosen crops are reloaded (history entries keep only the utterance and crop seed) and the batch is
embedded with gradients by the training step.

With fewer speakers than `candidate_speakers` the candidate batches take every speaker (logged once);
an anchor with fewer positives (or negatives) than asked reuses the ones it has, hardest first.
Candidate crops are loaded by DataLoader workers; embedding them happens in the training process when
the trainer asks for the next batch, so the trainer's `data_wait_share` includes it (`candidate_s`
is the time it took). Resuming starts a fresh history from the current candidate batch.
"""
from __future__ import annotations

import logging
import time
from collections import deque

import numpy as np
import torch
from torch.nn import functional as F

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.data")


def select_hard_triplets(embeds: torch.Tensor, speakers: torch.Tensor, utts: torch.Tensor, anchors: torch.Tensor,
                         positives_per_anchor: int, negatives_per_anchor: int
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """History rows of (anchor, positive, negative) for each of A * max(P, N) triplets, anchor-major.

    `embeds` (K, D) history embeddings (any scale: cosines are used), `speakers`/`utts` (K,) their speaker
    and utterance ids, `anchors` (A,) history rows, each with at least one positive (same speaker, other
    utterance) and one negative (other speaker) in the history.
    """
    p, n = int(positives_per_anchor), int(negatives_per_anchor)
    if p < 1 or n < 1:
        raise ValueError("positives_per_anchor and negatives_per_anchor must be >= 1")
    e = F.normalize(embeds.float(), dim=1, eps=1e-12)
    sims = e[anchors] @ e.T                                               # (A, K)
    same = speakers[anchors].unsqueeze(1) == speakers.unsqueeze(0)
    pos_mask = same & (utts[anchors].unsqueeze(1) != utts.unsqueeze(0))
    neg_mask = ~same
    pos_count, neg_count = pos_mask.sum(dim=1), neg_mask.sum(dim=1)
    if bool((pos_count == 0).any()) or bool((neg_count == 0).any()):
        raise ValueError("every anchor needs a positive and a negative in the history")
    big = torch.finfo(sims.dtype).max
    k = sims.shape[1]
    # least similar positives: smallest cosines among positives; most similar negatives: largest
    pos_top = torch.topk(torch.where(pos_mask, -sims, -big), min(p, k), dim=1).indices   # (A, P')
    neg_top = torch.topk(torch.where(neg_mask, sims, -big), min(n, k), dim=1).indices    # (A, N')
    per = max(p, n)
    col = torch.arange(per, device=sims.device).unsqueeze(0)
    pos_col = (col % p) % pos_count.clamp(max=pos_top.shape[1]).unsqueeze(1)
    neg_col = (col % n) % neg_count.clamp(max=neg_top.shape[1]).unsqueeze(1)
    positive = pos_top.gather(1, pos_col).reshape(-1)
    negative = neg_top.gather(1, neg_col).reshape(-1)
    return anchors.repeat_interleave(per), positive, negative


def choose_anchors(speakers: np.ndarray, utts: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` history rows that have a positive and a negative (without repeats when there are enough)."""
    pairs = np.unique(np.stack([speakers, utts], axis=1), axis=0)       # distinct (speaker, utterance)
    spk, distinct = np.unique(pairs[:, 0], return_counts=True)
    if len(spk) < 2:
        raise SpkidError("hard triplet selection: the history holds fewer than 2 speakers")
    ok = np.flatnonzero(distinct[np.searchsorted(spk, speakers)] >= 2)
    if len(ok) == 0:
        raise SpkidError("hard triplet selection: no speaker has 2 different utterances in the history")
    return rng.choice(ok, count, replace=len(ok) < count)


class TripletHistory:
    """The last `max_batches` embedded candidate batches: (utterance, crop seed, speaker, embedding)."""

    def __init__(self, max_batches: int):
        self.batches: deque = deque(maxlen=int(max_batches))
        self._cache: tuple | None = None

    def add(self, utts: np.ndarray, seeds: np.ndarray, speakers: np.ndarray, embeds: torch.Tensor) -> None:
        self.batches.append((np.asarray(utts), np.asarray(seeds), np.asarray(speakers), embeds))
        self._cache = None

    def __len__(self) -> int:
        return sum(len(b[0]) for b in self.batches)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
        if self._cache is None:
            self._cache = tuple(np.concatenate([b[i] for b in self.batches]) for i in range(3)) + (
                torch.cat([b[3] for b in self.batches]),)
        return self._cache


class HardTripletBatches:
    """Iterable of training batches {"feats", "speakers", "step", "select_ms", "candidate_s", "history"}:
    `select_ms` is this step's selection time, `candidate_s` the time the last candidate batch took to
    load and embed, `history` the number of embedded entries selected from."""

    def __init__(self, model: torch.nn.Module, source, crop_frames: int, cfg: dict, seed: int, rank: int = 0,
                 world_size: int = 1, start_step: int = 0, num_workers: int = 2, source_name: str = "data",
                 log_notes: bool = True, min_frames: int | None = None, augmentation=None):
        from spkid.data.samplers import speaker_groups

        self.model, self.source, self.crop = model, source, int(crop_frames)
        self.augmentation = augmentation  # the crop seed fixes its augmentation: a reloaded crop is the same
        self.min_frames = int(min_frames) if min_frames else self.crop
        self.cfg, self.seed, self.rank, self.world = cfg, int(seed), rank, world_size
        self.start_step, self.num_workers = start_step, num_workers
        m = int(cfg["candidate_utterances"])
        if m < 1:
            raise SpkidError("triplet.hard.candidate_utterances must be >= 1")
        groups = speaker_groups(source.utt_speaker, source.lengths, self.min_frames)
        eligible = sum(len(v) >= m for v in groups.values())
        per_rank = eligible // world_size
        if per_rank < 2:
            raise SpkidError(f"{source_name}: hard triplet selection needs at least 2 speakers per process with "
                             f"{m} utterances of >= {self.min_frames} frames; {eligible} speaker(s) have them for "
                             f"{world_size} process(es) (lower data.min_frames or triplet.hard.candidate_utterances)")
        self.speakers = int(cfg["candidate_speakers"])
        if self.speakers > per_rank and log_notes:
            logger.info("triplet.hard.candidate_speakers %d > the %d speakers available per process: candidate "
                        "batches take %d speakers x %d utterances", self.speakers, per_rank, per_rank, m)
        self.speakers = min(self.speakers, per_rank)
        self.utts_per_speaker = m
        self.every = max(1, int(cfg["candidate_every"]))
        self.history = TripletHistory(int(cfg["history_batches"]))
        self.source_name = source_name

    def _candidates(self, first: int):
        from spkid.data.loader import make_loader
        from spkid.data.samplers import SpeakerUtteranceSampler

        sampler = SpeakerUtteranceSampler(
            self.source.utt_speaker, self.source.lengths, self.speakers, self.utts_per_speaker,
            min_frames=self.min_frames, seed=self.seed + 1, rank=self.rank, world_size=self.world, start_step=first,
            source_name=self.source_name)
        loader = make_loader(self.source, sampler, self.crop, self.num_workers, prefetch=1,
                             augmentation=self.augmentation)
        for k, batch in zip(range(first, 2**62), loader):
            items = sampler.batch(k)
            yield np.array([u for u, _ in items]), np.array([s for _, s in items]), batch

    @torch.no_grad()
    def _embed(self, feats: torch.Tensor) -> torch.Tensor:
        param = next(self.model.parameters())
        was_training = self.model.training
        self.model.eval()
        try:
            size = max(1, int(self.cfg["embed_batch_size"]))
            out = [self.model(feats[i:i + size].to(param.device)).float() for i in range(0, len(feats), size)]
        finally:
            self.model.train(was_training)
        return torch.cat(out)

    def __iter__(self):
        from spkid.data.loader import CropDataset, collate

        dataset = CropDataset(self.source, self.crop, self.augmentation)
        step = self.start_step
        candidates = self._candidates(step // self.every)
        anchors_wanted = int(self.cfg["anchors"])
        p, n = int(self.cfg["positives_per_anchor"]), int(self.cfg["negatives_per_anchor"])
        candidate_s = 0.0
        while True:
            if step % self.every == 0 or len(self.history) == 0:
                start = time.perf_counter()
                utts, seeds, batch = next(candidates)
                self.history.add(utts, seeds, batch["speakers"].numpy(), self._embed(batch["feats"]))
                candidate_s = time.perf_counter() - start
            start = time.perf_counter()
            h_utts, h_seeds, h_spk, h_emb = self.history.arrays()
            rng = np.random.default_rng([self.seed, step, self.rank, 23])
            anchors = choose_anchors(h_spk, h_utts, anchors_wanted, rng)
            dev = h_emb.device
            a, pos, neg = select_hard_triplets(h_emb, torch.from_numpy(h_spk).to(dev), torch.from_numpy(h_utts).to(dev),
                                               torch.from_numpy(anchors).to(dev), p, n)
            rows = torch.cat([a, pos, neg]).cpu().numpy()
            select_ms = 1000 * (time.perf_counter() - start)
            out = collate([dataset[(int(h_utts[r]), int(h_seeds[r]))] for r in rows])
            out.update(step=step, select_ms=select_ms, candidate_s=candidate_s, history=float(len(self.history)))
            yield out
            step += 1
