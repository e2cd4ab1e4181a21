"""Score calibration: logistic regression from raw scores to log-likelihood ratios, and decision thresholds.

`fit_calibration` fits `llr = scale * score + offset` by minimising the prior-weighted cross-entropy of
labelled development trials (Brümmer's linear logistic-regression calibration; the weighting makes the
result independent of the target/nontarget proportions). The affine map keeps the order of the scores,
so the EER and minDCF do not change; Cllr (the cost of the LLRs as decisions) improves.

The JSON file holds the map, the thresholds of the dev list at the EER point, the minDCF point
and the Bayes point `llr = log(c_fa (1 - p) / (c_miss p))`, and `threshold`, the one chosen with
`operating_point`: accept a trial when its raw score >= threshold (or its calibrated LLR >= llr_threshold).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from spkid.errors import SpkidError

FORMAT = "spkid-calibration-1"
OPERATING_POINTS = ("eer", "min-dcf", "bayes")


def cllr(llrs: np.ndarray, labels: np.ndarray) -> float:
    """The log-likelihood-ratio cost Cllr (bits) of scores read as natural-log LLRs."""
    llrs = np.asarray(llrs, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    tgt = np.logaddexp(0, -llrs[labels]).mean()
    non = np.logaddexp(0, llrs[~labels]).mean()
    return float((tgt + non) / (2 * math.log(2)))


def fit_logistic(scores: np.ndarray, labels: np.ndarray, prior: float = 0.5) -> tuple[float, float]:
    """(scale, offset) minimising the prior-weighted logistic loss of `scale * score + offset` as LLRs."""
    from scipy.optimize import minimize

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if not 0 < prior < 1:
        raise SpkidError("--prior must be between 0 and 1")
    n_tgt, n_non = int(labels.sum()), int((~labels).sum())
    if n_tgt == 0 or n_non == 0:
        raise SpkidError("calibration needs target and nontarget trials")
    center, spread = scores.mean(), scores.std() or 1.0
    z = (scores - center) / spread  # fit on standardised scores for conditioning
    sign = np.where(labels, 1.0, -1.0)
    weight = np.where(labels, prior / n_tgt, (1 - prior) / n_non)
    logit_prior = math.log(prior / (1 - prior))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        margin = sign * (a * z + b + logit_prior)
        value = float((weight * np.logaddexp(0, -margin)).sum())
        grad_margin = -weight * sign / (1 + np.exp(np.clip(margin, -700, 700)))
        return value, np.array([(grad_margin * z).sum(), grad_margin.sum()])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="BFGS")
    a, b = result.x
    if not np.isfinite(result.x).all():
        raise SpkidError("calibration did not converge")
    return float(a / spread), float(b - a * center / spread)


@dataclass
class Calibration:
    """An affine score -> LLR map with decision thresholds from a development trial list."""

    scale: float
    offset: float
    threshold: float
    llr_threshold: float
    operating_point: str
    thresholds: dict[str, float]
    prior: float = 0.5
    p_target: float = 0.01
    c_miss: float = 1.0
    c_fa: float = 1.0
    dev: dict[str, float] = field(default_factory=dict)
    format: str = FORMAT
    model_sha256: str | None = None  # the checkpoint the scores came from, when known (checked at use)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(scores, dtype=np.float64) + self.offset

    def save(self, path: str) -> None:
        from spkid.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str) -> Calibration:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as err:
            raise SpkidError(f"{path}: cannot read ({err.strerror})") from None
        except json.JSONDecodeError as err:
            raise SpkidError(f"{path}: not a JSON calibration file ({err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SpkidError(f"{path}: not a spkid calibration file (format {FORMAT})")
        try:
            calib = cls(**data)
        except TypeError as err:
            raise SpkidError(f"{path}: bad calibration file ({err})") from None
        problem = calib.problem()
        if problem:
            raise SpkidError(f"{path}: bad calibration file: {problem}")
        return calib

    def problem(self) -> str | None:
        """What makes the values unusable (wrong types, NaN, inf, a scale <= 0 ...), or None."""
        def number(key: str, value) -> str | None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{key} is {value!r}, not a number"
            return None if math.isfinite(value) else f"{key} is {value}, not a finite number"

        for key in ("scale", "offset", "threshold", "llr_threshold", "prior", "p_target", "c_miss", "c_fa"):
            bad = number(key, getattr(self, key))
            if bad:
                return bad
        if self.scale <= 0:
            return f"scale is {self.scale} (must be > 0: a calibration keeps the order of the scores)"
        for key in ("prior", "p_target"):
            if not 0 < getattr(self, key) < 1:
                return f"{key} is {getattr(self, key)} (must be between 0 and 1)"
        for key in ("c_miss", "c_fa"):
            if getattr(self, key) <= 0:
                return f"{key} is {getattr(self, key)} (must be > 0)"
        if self.operating_point not in OPERATING_POINTS:
            return f"operating_point is {self.operating_point!r} (one of {', '.join(OPERATING_POINTS)})"
        if not isinstance(self.thresholds, dict) or not isinstance(self.dev, dict):
            return "thresholds and dev must be objects"
        for key, value in self.thresholds.items():
            bad = number(f"thresholds.{key}", value)
            if bad:
                return bad
        if self.model_sha256 is not None and (not isinstance(self.model_sha256, str) or len(self.model_sha256) != 64):
            return f"model_sha256 is {self.model_sha256!r}, not a sha256 (64 hex digits)"
        return None

    def check_model(self, fingerprint: str, model: str, path: str) -> None:
        """SpkidError when this calibration records another model than `model` (sha256 `fingerprint`)."""
        if self.model_sha256 is not None and fingerprint and self.model_sha256 != fingerprint:
            raise SpkidError(f"{path}: a calibration of another model (sha256 {self.model_sha256[:12]}...), not of "
                             f"{model} ({fingerprint[:12]}...); its threshold would not fit: recalibrate "
                             "(spkid calibrate) or give a threshold")


def fit_calibration(scores: np.ndarray, labels: np.ndarray, operating_point: str = "eer",
                    prior: float = 0.5, p_target: float = 0.01, c_miss: float = 1.0,
                    c_fa: float = 1.0) -> Calibration:
    """Fit the LLR map on labelled dev scores and pick the decision threshold at `operating_point`."""
    from spkid.scoring.metrics import compute_eer, compute_min_dcf

    if operating_point not in OPERATING_POINTS:
        raise SpkidError(f"unknown operating point '{operating_point}' (choose {', '.join(OPERATING_POINTS)})")
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if scores.size and not np.isfinite(scores).all():
        raise SpkidError(f"calibration: {int((~np.isfinite(scores)).sum())} dev scores are NaN or infinite")
    if scores.size and np.ptp(scores) == 0:
        raise SpkidError(f"calibration: all {scores.size} dev scores are the same ({scores[0]:g}): they tell targets "
                         "from nontargets not at all (a broken model or scores file?)")
    scale, offset = fit_logistic(scores, labels, prior)
    if scale <= 0:
        raise SpkidError("calibration: target scores are not higher than nontarget scores on the dev list "
                         "(the fitted scale is not positive)")
    eer, eer_threshold = compute_eer(scores[labels], scores[~labels])
    min_dcf, dcf_threshold = compute_min_dcf(scores, labels, p_target, c_miss, c_fa)
    bayes_llr = math.log(c_fa * (1 - p_target) / (c_miss * p_target))
    thresholds = {"eer": eer_threshold, "min-dcf": dcf_threshold, "bayes": (bayes_llr - offset) / scale}
    threshold = thresholds[operating_point]
    llrs = scale * scores + offset
    dev = {"trials": int(labels.size), "targets": int(labels.sum()), "eer": eer, "min_dcf": min_dcf,
           "cllr_raw": cllr(scores, labels), "cllr": cllr(llrs, labels)}
    return Calibration(scale, offset, threshold, scale * threshold + offset, operating_point, thresholds,
                       prior, p_target, c_miss, c_fa, dev)
