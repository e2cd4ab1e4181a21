"""Scoring of speaker-verification trials and their metrics (EER and minDCF as Kaldi computes them)."""
from spkid.scoring.metrics import compute_eer, compute_error_rates, compute_min_dcf

__all__ = ["compute_eer", "compute_error_rates", "compute_min_dcf"]
