"""Embedder: the one type every model argument loads into (spkid.inference.load_embedder)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spkid.kaldi.audio import resample


@dataclass
class Embedder:
    """A loaded model with its front-end and window layout."""

    model: torch.nn.Module
    frontend: object
    extraction: dict
    device: torch.device
    checkpoint: str = ""
    precision: str = "float32"  # or "bfloat16": the network under torch.autocast
    fingerprint: str = ""  # sha256 of the checkpoint (of an export: of the checkpoint it was made from)
    source: object = None  # the spkid.inference.ModelSource it was loaded from

    def embed_features(self, feats_list: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        from spkid.models.windows import embed_frames

        autocast = torch.bfloat16 if self.precision == "bfloat16" else None
        return embed_frames(self.model, feats_list, self.extraction, batch_size=batch_size, autocast=autocast,
                            device=self.device)

    def features(self, wave: np.ndarray, rate: int) -> np.ndarray:
        """Front-end features of a waveform (resampled to the model's rate when needed)."""
        if rate != self.frontend.sample_rate:
            wave = resample(wave, rate, self.frontend.sample_rate)
        return self.frontend(wave)
