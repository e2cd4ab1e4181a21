"""Training losses for speaker embeddings."""
from spkid.losses.ge2e import GE2ELoss

__all__ = ["GE2ELoss"]
