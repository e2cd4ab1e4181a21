"""Validation accuracy of a speaker classifier on held-out utterances of the training speakers.

`--valid-data DIR` of the classification task (`spkid train-deepspeaker --stage softmax|freeze`): a data
dir whose utt2spk names training speakers (utterances of other speakers are left out, with a logged
count; a set of unseen speakers only, as in open-set validation, gets no accuracy: its trials' EER is
spkid.tasks.validation's). Each utterance is cut into the extraction windows (spkid.models.windows),
every window goes through the encoder (what the head sees in training, without dropout) and the head's
`logits`, and the utterance's prediction is the class with the highest mean log-probability over its
windows. Features are computed once, at start.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger("spkid.train")


class ClassifierValidator:
    def __init__(self, data_dir: str, features: dict, extraction: dict, speakers: list[str], head: torch.nn.Module,
                 batch_size: int = 128):
        from spkid.data.sources import open_source

        src = open_source(data_dir, features)
        index = {s: i for i, s in enumerate(speakers)}
        keep = [i for i in range(len(src.utts)) if src.speakers[src.utt_speaker[i]] in index]
        if not keep:  # an open-set validation set: only the trials' EER (TrialValidator) applies
            logger.info("validation accuracy: skipped, no utterance of %s belongs to a training speaker",
                        Path(data_dir).name)
        elif len(keep) < len(src.utts):
            logger.info("validation accuracy: left out %d of %d utterances of speakers not in training",
                        len(src.utts) - len(keep), len(src.utts))
        self.feats: list[np.ndarray] = [src.crop(i, 0, int(src.lengths[i])) for i in keep]
        self.labels = np.array([index[src.speakers[src.utt_speaker[i]]] for i in keep], dtype=np.int64)
        self.extraction, self.head, self.batch_size = extraction, head, batch_size
        if keep:
            logger.info("validation accuracy: %d utterances of %d training speakers in %s", len(keep),
                        len(set(self.labels.tolist())), Path(data_dir).name)

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, float]:
        from spkid.models import encoder_output
        from spkid.models.windows import iter_windows

        if not self.feats:
            return {}
        param = next(model.parameters())
        was_training, head_training = model.training, self.head.training
        model.eval()
        self.head.eval()
        sums: torch.Tensor | None = None
        owners: list[int] = []
        pieces: list[np.ndarray] = []

        def flush() -> None:
            nonlocal sums
            x = torch.from_numpy(np.stack(pieces)).to(device=param.device, dtype=param.dtype)
            logp = torch.log_softmax(self.head.logits(encoder_output(model, x)).float(), dim=1)
            if sums is None:
                sums = torch.zeros(len(self.feats), logp.shape[1], dtype=torch.float64)
            sums.index_add_(0, torch.tensor(owners), logp.double().cpu())
            owners.clear()
            pieces.clear()

        try:
            for owner, window in iter_windows(self.feats, self.extraction):
                if pieces and len(window) != len(pieces[0]):  # scheme "full": one batch per length
                    flush()
                owners.append(owner)
                pieces.append(np.asarray(window, dtype=np.float32))
                if len(pieces) == self.batch_size:
                    flush()
            if pieces:
                flush()
        finally:
            model.train(was_training)
            self.head.train(head_training)
        assert sums is not None
        predicted = sums.argmax(dim=1).numpy()
        return {"accuracy": float((predicted == self.labels).mean())}
