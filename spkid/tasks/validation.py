"""Validation EER on a trial list: features of the validation utterances are computed once, then each
call embeds them with the current model, scores the trials by cosine and computes Kaldi's EER."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.train")


class TrialValidator:
    def __init__(self, data_dir: str, trials: str, features: dict, extraction: dict):
        from spkid.data.sources import open_source
        from spkid.scoring.metrics import read_trials

        self.trials = read_trials(trials)
        needed = sorted({u for pair in self.trials for u in pair})
        src = open_source(data_dir, features)
        index = {u: i for i, u in enumerate(src.utts)}
        missing = [u for u in needed if u not in index]
        if missing:
            raise SpkidError(f"{trials}: {len(missing)} utterances are not in {data_dir} (first: {missing[0]})")
        self.utts = needed
        self.feats = [src.crop(index[u], 0, int(src.lengths[index[u]])) for u in needed]
        self.extraction = extraction
        logger.info("validation: %d trials over %d utterances of %s", len(self.trials), len(needed),
                    Path(data_dir).name)

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, float]:
        from spkid.models.windows import embed_frames
        from spkid.scoring.metrics import compute_eer

        emb = embed_frames(model, self.feats, self.extraction)
        index = {u: i for i, u in enumerate(self.utts)}
        pairs = list(self.trials)
        e = emb[[index[a] for a, _ in pairs]]
        t = emb[[index[b] for _, b in pairs]]
        scores = np.sum(e * t, axis=1) / np.maximum(
            np.linalg.norm(e, axis=1) * np.linalg.norm(t, axis=1), 1e-12)
        labels = np.array([self.trials[p] for p in pairs])
        eer, _ = compute_eer(scores[labels], scores[~labels])
        return {"eer": 100.0 * float(eer)}
