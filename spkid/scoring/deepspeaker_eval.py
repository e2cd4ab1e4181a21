"""Deep Speaker's verification test (philipperemy/deep-speaker test.py and eval_metrics.py).

For every test speaker: an anchor utterance, a positive (another utterance of the speaker) and
`num_negatives` (99) negatives, each a random utterance of a speaker drawn at random (with repetition)
among the other speakers. The anchor is scored by cosine against the 1 + 99 others, giving a (speakers,
100) score matrix whose first column holds the targets. The metrics are deep-speaker's:

- thresholds 0, 0.001, ..., 0.999 (cosines); a pair is accepted when its score is above the threshold;
- F-measure, recall (true-positive rate) and accuracy at the threshold with the best F-measure;
- EER = (FRR + FAR) / 2 at the threshold where |FRR - FAR| is smallest (the first such).

Kaldi's EER of the same scores (spkid.scoring.metrics.compute_eer) is reported beside it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from spkid.errors import SpkidError

logger = logging.getLogger("spkid.scoring")


@dataclass
class VerificationSet:
    anchor: str
    positive: str
    negatives: list[str]


def sample_verification_sets(utt2spk: dict[str, str], num_negatives: int = 99, seed: int = 0,
                             anchors_per_speaker: int = 1) -> list[VerificationSet]:
    """Anchor/positive/negatives sets, `anchors_per_speaker` for every speaker with 2 or more utterances."""
    if num_negatives < 1 or anchors_per_speaker < 1:
        raise SpkidError("num_negatives and anchors_per_speaker must be >= 1")
    spk2utt: dict[str, list[str]] = {}
    for utt, spk in sorted(utt2spk.items()):
        spk2utt.setdefault(spk, []).append(utt)
    speakers = sorted(spk2utt)
    anchors = [s for s in speakers if len(spk2utt[s]) >= 2]
    if len(speakers) < 2 or not anchors:
        raise SpkidError(f"the 1 + 1 + {num_negatives} test needs at least 2 speakers, one of them with 2 "
                         f"utterances; found {len(speakers)} speaker(s), {len(anchors)} with 2")
    if len(anchors) < len(speakers):
        logger.info("%d speaker(s) with a single utterance serve only as negatives", len(speakers) - len(anchors))
    rng = np.random.default_rng(seed)
    sets = []
    for spk in anchors:
        others = [s for s in speakers if s != spk]
        for _ in range(anchors_per_speaker):
            a, p = rng.choice(len(spk2utt[spk]), 2, replace=False)
            negs = [spk2utt[s][rng.integers(len(spk2utt[s]))] for s in rng.choice(others, num_negatives)]
            sets.append(VerificationSet(spk2utt[spk][a], spk2utt[spk][p], negs))
    return sets


def verification_scores(embeddings, sets: list[VerificationSet]) -> np.ndarray:
    """(sets, 1 + negatives) cosine scores of each anchor against its positive, then its negatives."""
    from spkid.scoring.embeddings import first_few

    needed = {u for s in sets for u in (s.anchor, s.positive, *s.negatives)}
    missing = sorted(embeddings.missing(needed))
    if missing:
        raise SpkidError(f"{embeddings.source}: {len(missing)} utterances have no embedding ({first_few(missing)})")
    x = embeddings.matrix.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    anchors = x[embeddings.rows(s.anchor for s in sets)]
    others = np.stack([x[embeddings.rows([s.positive, *s.negatives])] for s in sets])     # (S, 1+N, D)
    return np.einsum("sd,snd->sn", anchors, others)


def deepspeaker_metrics(scores: np.ndarray, labels: np.ndarray | None = None,
                        thresholds: np.ndarray | None = None) -> dict[str, float]:
    """philipperemy/deep-speaker's EER, F-measure, recall and accuracy (fractions) of a score matrix
    (labels: first column)."""
    from spkid.scoring.metrics import compute_eer

    scores = np.asarray(scores, dtype=np.float64)
    if labels is None:
        labels = np.zeros(scores.shape, dtype=bool)
        labels[:, 0] = True
    labels = np.asarray(labels, dtype=bool)
    if thresholds is None:
        thresholds = np.arange(0, 1.0, 0.001)
    tgt, non = np.sort(scores[labels]), np.sort(scores[~labels])
    if tgt.size == 0 or non.size == 0:
        raise SpkidError("the evaluation needs target and nontarget scores")
    tp = (tgt.size - np.searchsorted(tgt, thresholds, side="right")).astype(np.float64)   # scores > threshold
    fp = (non.size - np.searchsorted(non, thresholds, side="right")).astype(np.float64)
    tn = non.size - fp
    recall = tp / tgt.size
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
    fm = 2 * precision * recall / (precision + recall + 1e-12)
    acc = (tp + tn) / scores.size
    best = int(np.argmax(fm))
    frr, far = 1 - recall, fp / non.size
    at = int(np.argmin(np.abs(frr - far)))
    kaldi_eer, _ = compute_eer(tgt, non)
    return {"eer": float((frr[at] + far[at]) / 2), "f_measure": float(fm[best]), "recall": float(recall[best]),
            "accuracy": float(acc[best]), "threshold": float(thresholds[best]), "kaldi_eer": kaldi_eer,
            "sets": float(scores.shape[0])}
