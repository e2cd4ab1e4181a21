"""Speaker-verification metrics equal to Kaldi's: EER (`compute-eer`) and minDCF (`sid/compute_min_dcf.py`).

`compute_eer` reproduces `ComputeEer` of Kaldi's src/ivectorbin/compute-eer.cc on float32 scores, and
`compute_min_dcf` reproduces egs/sre08/v1/sid/compute_min_dcf.py on float64 scores; both are vectorised
with numpy and give the same numbers as the original loops, ties included.

The readers parse `<score> target|nontarget` lines (compute-eer's input), trials
`<enroll> <test> target|nontarget` and scores `<enroll> <test> <score>`; a bad line is a SpkidError
naming file:line. `rxfilename` may be a file, `-` (stdin) or `cmd |` (a shell pipe), as in Kaldi.
"""
from __future__ import annotations

import io
import logging
import math
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from spkid.errors import SpkidError, where

logger = logging.getLogger("spkid.scoring")

_LABELS = {"target": True, "nontarget": False}
_SHOW = 5  # how many offending items an error message lists


# ---------------------------------------------------------------------------------------------- metrics
def compute_eer(target_scores: Sequence[float] | np.ndarray,
                nontarget_scores: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Equal error rate (a fraction, 0..1) and its threshold, exactly as Kaldi's `ComputeEer`.

    Scores are taken as float32 (Kaldi's BaseFloat) and sorted; the EER is the first target position p
    (0 <= p < len(targets) - 1) where the nontarget at `N - 1 - int(N * p / T)` is below the target at p
    (or the last position when there is none), `eer = float32(p / T)`, `threshold = targets[p]`.
    Both values are returned as Python floats holding the float32 numbers.
    """
    tgt = np.sort(np.asarray(target_scores, dtype=np.float32).ravel())
    non = np.sort(np.asarray(nontarget_scores, dtype=np.float32).ravel())
    if tgt.size == 0 or non.size == 0:
        raise ValueError("compute_eer needs at least one target and one nontarget score")
    if np.isnan(tgt).any() or np.isnan(non).any():
        raise ValueError("compute_eer: scores contain NaN")
    t_size, n_size = tgt.size, non.size
    position = np.arange(t_size - 1, dtype=np.int64)
    # C++: ssize_t nontarget_n = nontarget_size * target_position * 1.0 / target_size (integer product,
    # then double arithmetic, truncated); nontarget_position = max(0, nontarget_size - 1 - nontarget_n).
    nontarget_n = ((np.int64(n_size) * position).astype(np.float64) / np.float64(t_size)).astype(np.int64)
    nontarget_position = np.maximum(n_size - 1 - nontarget_n, 0)
    stop = non[nontarget_position] < tgt[position]
    target_position = int(np.argmax(stop)) if stop.any() else t_size - 1
    eer = np.float32(target_position * 1.0 / t_size)
    return float(eer), float(tgt[target_position])


def compute_error_rates(scores: Sequence[float] | np.ndarray,
                        labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-negative rates, false-positive rates and thresholds, as compute_min_dcf.py's ComputeErrorRates.

    Scores are sorted ascending with a stable sort (ties keep the input order); `fnrs[i]` is the fraction
    of targets among sorted positions 0..i, `fprs[i] = 1 - (nontargets among 0..i) / nontargets`.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(np.int64)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 1 (target) or 0 (nontarget)")
    order = np.argsort(scores, kind="stable")
    thresholds = scores[order]
    sorted_labels = labels[order]
    fnrs_norm = int(sorted_labels.sum())
    fprs_norm = sorted_labels.size - fnrs_norm
    if fnrs_norm == 0 or fprs_norm == 0:
        raise ValueError("error rates need at least one target and one nontarget trial")
    fnrs = np.cumsum(sorted_labels) / float(fnrs_norm)
    fprs = 1 - np.cumsum(1 - sorted_labels) / float(fprs_norm)
    return fnrs, fprs, thresholds


def compute_min_dcf(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                    p_target: float, c_miss: float = 1, c_fa: float = 1) -> tuple[float, float]:
    """Normalised minimum detection cost and its threshold, exactly as Kaldi's sid/compute_min_dcf.py.

    `labels` are 1/True for target trials and 0/False for nontarget trials. The minimum of
    `c_miss * fnr * p_target + c_fa * fpr * (1 - p_target)` over the sorted scores (the first one on
    ties) is divided by `min(c_miss * p_target, c_fa * (1 - p_target))`.
    """
    if not 0 < p_target < 1:
        raise ValueError("p_target must be greater than 0 and less than 1")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError("c_miss and c_fa must be greater than 0")
    fnrs, fprs, thresholds = compute_error_rates(scores, labels)
    c_det = c_miss * fnrs * p_target + c_fa * fprs * (1 - p_target)
    best = int(np.argmin(c_det))  # the first minimum, like the script's strict `<`
    c_def = min(c_miss * p_target, c_fa * (1 - p_target))
    return float(c_det[best] / c_def), float(thresholds[best])


# ---------------------------------------------------------------------------------------------- readers
def display_name(rxfilename: str) -> str:
    return "stdin" if rxfilename in ("-", "") else rxfilename


@contextmanager
def open_rxfilename(rxfilename: str) -> Iterator[io.TextIOBase]:
    """Open a Kaldi rxfilename for text reading: a file, `-` (stdin) or `cmd |` (a shell pipe)."""
    if rxfilename in ("-", ""):
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
        try:
            yield stdin
        finally:
            stdin.detach()  # leave sys.stdin open
        return
    if rxfilename.rstrip().endswith("|"):
        command = rxfilename.rstrip()[:-1]
        proc = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE)
        try:
            yield io.TextIOWrapper(proc.stdout, encoding="utf-8", errors="surrogateescape")
        finally:
            proc.stdout.close()
            status = proc.wait()
        if status != 0:
            raise SpkidError(f"{rxfilename}: command exited with status {status}")
        return
    try:
        handle = open(rxfilename, encoding="utf-8", errors="surrogateescape")
    except OSError as err:
        raise SpkidError(f"{rxfilename}: cannot read ({err.strerror})") from None
    with handle:
        yield handle


def _fields(rxfilename: str, expected: int, what: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of each line; a line with another number of fields is an error."""
    name = display_name(rxfilename)
    with open_rxfilename(rxfilename) as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if len(fields) != expected:
                raise SpkidError(f"{where(name, lineno)}: expected {expected} fields ({what}), "
                                 f"got {len(fields)}: '{line.strip()}'")
            yield lineno, fields


def _score(text: str, name: str, lineno: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpkidError(f"{where(name, lineno)}: score '{text}' is not a number") from None
    if math.isnan(value):
        raise SpkidError(f"{where(name, lineno)}: score is NaN")
    if math.isfinite(value) and abs(value) > float(np.finfo(np.float32).max):
        raise SpkidError(f"{where(name, lineno)}: score {text} is out of float32 range")
    return value


def _label(text: str, name: str, lineno: int) -> bool:
    try:
        return _LABELS[text]
    except KeyError:
        raise SpkidError(f"{where(name, lineno)}: label must be 'target' or 'nontarget', "
                         f"got '{text}'") from None


def _check_both(labels: np.ndarray, name: str) -> None:
    n_target = int(labels.sum())
    if labels.size == 0:
        raise SpkidError(f"{name}: empty input")
    if n_target == 0:
        raise SpkidError(f"{name}: no target scores seen")
    if n_target == labels.size:
        raise SpkidError(f"{name}: no nontarget scores seen")


def read_labelled_scores(rxfilename: str) -> tuple[np.ndarray, np.ndarray]:
    """Read compute-eer input, `<score> target|nontarget` per line: (float64 scores, bool labels).

    Needs at least one target and one nontarget line.
    """
    name = display_name(rxfilename)
    scores: list[float] = []
    labels: list[bool] = []
    for lineno, (score, label) in _fields(rxfilename, 2, "<score> target|nontarget"):
        scores.append(_score(score, name, lineno))
        labels.append(_label(label, name, lineno))
    labels_arr = np.array(labels, dtype=bool)
    _check_both(labels_arr, name)
    return np.array(scores, dtype=np.float64), labels_arr


class TrialLabels(dict):
    """{(enroll, test): is_target}, and `listed`: how many lines of the trials list name each pair."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: dict[tuple[str, str], int] = {}


@dataclass
class TrialList:
    """Trials in file order: `<enroll> <test> [target|nontarget]` (labels None when absent)."""

    enroll: list[str]
    test: list[str]
    labels: np.ndarray | None  # bool, when every line has a label

    def __len__(self) -> int:
        return len(self.enroll)


def read_trial_list(rxfilename: str, labelled: bool = False) -> TrialList:
    """Read trials `<enroll> <test> [target|nontarget]`; every line is kept, in order. `labelled`:
    every line must have its label (`<enroll> <test> target|nontarget`)."""
    name = display_name(rxfilename)
    enroll: list[str] = []
    test: list[str] = []
    labels: list[bool] = []
    with open_rxfilename(rxfilename) as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if labelled and len(fields) != 3:
                raise SpkidError(f"{where(name, lineno)}: expected 3 fields (<enroll> <test> target|nontarget), "
                                 f"got {len(fields)}: '{line.strip()}'")
            if len(fields) not in (2, 3):
                raise SpkidError(f"{where(name, lineno)}: expected '<enroll> <test> [target|nontarget]', "
                                 f"got {len(fields)} fields: '{line.strip()}'")
            if len(fields) == 3:
                labels.append(_label(fields[2], name, lineno))
            enroll.append(fields[0])
            test.append(fields[1])
    if not enroll:
        raise SpkidError(f"{name}: no trials")
    label_arr = np.array(labels, dtype=bool) if len(labels) == len(enroll) else None
    return TrialList(enroll, test, label_arr)


def read_trials(rxfilename: str) -> TrialLabels:
    """Read a labelled trials list, `<enroll> <test> target|nontarget` per line: {(enroll, test): is_target}.

    A pair listed twice with the same label is kept once (with a warning); with both labels it is an error.
    """
    name = display_name(rxfilename)
    trial_list = read_trial_list(rxfilename, labelled=True)
    trials = TrialLabels()
    first_line: dict[tuple[str, str], int] = {}
    repeated = 0
    for lineno, (enroll, test, is_target) in enumerate(zip(trial_list.enroll, trial_list.test,
                                                           trial_list.labels.tolist()), 1):
        key = (enroll, test)
        trials.listed[key] = trials.listed.get(key, 0) + 1
        if key in trials:
            if trials[key] != is_target:
                raise SpkidError(f"{where(name, lineno)}: trial '{enroll} {test}' is listed as both target "
                                 f"and nontarget (first at line {first_line[key]})")
            repeated += 1
            continue
        trials[key] = is_target
        first_line[key] = lineno
    if repeated:
        logger.warning("%s: %d repeated trial lines ignored", name, repeated)
    return trials


@dataclass
class ScoreTable:
    """Scores `<enroll> <test> <score>` in file order."""

    enroll: list[str]
    test: list[str]
    scores: np.ndarray  # float64
    linenos: list[int] | None = None  # line of each score, for messages


def read_scores(rxfilename: str) -> ScoreTable:
    """Read a scores file, `<enroll> <test> <score>` per line."""
    name = display_name(rxfilename)
    enroll: list[str] = []
    test: list[str] = []
    scores: list[float] = []
    linenos: list[int] = []
    for lineno, (utt1, utt2, score) in _fields(rxfilename, 3, "<enroll> <test> <score>"):
        enroll.append(utt1)
        test.append(utt2)
        scores.append(_score(score, name, lineno))
        linenos.append(lineno)
    if not scores:
        raise SpkidError(f"{name}: no scores")
    return ScoreTable(enroll, test, np.array(scores, dtype=np.float64), linenos)


def _first(items: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"'{a} {b}'" for a, b in items[:_SHOW])
    return shown + (", ..." if len(items) > _SHOW else "")


def join_trials(table: ScoreTable, trials: dict[tuple[str, str], bool],
                scores_name: str = "scores", trials_name: str = "trials") -> tuple[np.ndarray, np.ndarray]:
    """Label each score by its trial: (float64 scores, bool labels), in the scores-file order.

    As in compute_min_dcf.py, a score whose pair is not in the trials is an error; so is a trial without a
    score (every trial must be scored), and so is a pair scored twice (it would count twice) unless the
    trials list repeats it as often.
    """
    labels = np.empty(len(table.scores), dtype=bool)
    extra: list[tuple[str, str]] = []
    seen: dict[tuple[str, str], int] = {}
    times_scored: dict[tuple[str, str], int] = {}
    listed = getattr(trials, "listed", {})
    for i, key in enumerate(zip(table.enroll, table.test)):
        label = trials.get(key)
        if label is None:
            extra.append(key)
            continue
        labels[i] = label
        times_scored[key] = times_scored.get(key, 0) + 1
        if times_scored[key] > listed.get(key, 1):
            lines = table.linenos or list(range(1, len(table.scores) + 1))
            times = listed.get(key, 1)
            raise SpkidError(f"{where(scores_name, lines[i])}: trial '{key[0]} {key[1]}' is scored again (first "
                             f"at line {lines[seen[key]]}) but {trials_name} lists it "
                             f"{'once' if times == 1 else f'{times} times'}; each trial needs one score")
        seen.setdefault(key, i)
    if extra:
        raise SpkidError(f"{scores_name}: {len(extra)} of {len(table.scores)} scores are for pairs not in "
                         f"{trials_name}: {_first(extra)}")
    if len(seen) < len(trials):
        missing = [key for key in trials if key not in seen]
        raise SpkidError(f"{trials_name}: {len(missing)} of {len(trials)} trials have no score in "
                         f"{scores_name}: {_first(missing)}")
    _check_both(labels, f"{scores_name} joined with {trials_name}")
    return table.scores, labels
