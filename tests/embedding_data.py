"""Synthetic speaker embeddings from a known two-covariance model, for the scoring tests."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.kaldi.io import TableWriter


@dataclass
class Synthetic:
    x: np.ndarray  # (speakers * utts, dim)
    utts: list[str]
    spk_of: dict[str, str]
    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray

    def spk2utt(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for utt in self.utts:
            out.setdefault(self.spk_of[utt], []).append(utt)
        return out


def random_covariance(rng: np.random.Generator, dim: int, scale: float, floor: float) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return scale * a @ a.T / dim + floor * np.eye(dim)


def make_speakers(dim: int = 6, n_spk: int = 40, n_utt: int = 5, seed: int = 0, prefix: str = "spk",
                  between_scale: float = 2.0, within_scale: float = 1.0) -> Synthetic:
    """x = mean + y_spk + e, y ~ N(0, B), e ~ N(0, W), with random B, W and mean; utt ids `<spk>-uNN`."""
    rng = np.random.default_rng(seed)
    between = random_covariance(rng, dim, between_scale, 0.3)
    within = random_covariance(rng, dim, within_scale, 0.2)
    mean = rng.normal(size=dim) * 2
    y = rng.multivariate_normal(np.zeros(dim), between, size=n_spk)
    rows, utts, spk_of = [], [], {}
    for s in range(n_spk):
        spk = f"{prefix}{s:03d}"
        noise = rng.multivariate_normal(np.zeros(dim), within, size=n_utt)
        for u in range(n_utt):
            utt = f"{spk}-u{u:02d}"
            rows.append(mean + y[s] + noise[u])
            utts.append(utt)
            spk_of[utt] = spk
    return Synthetic(np.array(rows), utts, spk_of, mean, between, within)


def write_embeddings(path: Path, keys: list[str], x: np.ndarray) -> str:
    """Write float32 vectors with TableWriter as ark,scp; returns the `scp:` rspecifier."""
    with TableWriter(f"ark,scp:{path}.ark,{path}.scp") as writer:
        for key, vec in zip(keys, x):
            writer.write(key, np.asarray(vec, dtype=np.float32))
    return f"scp:{path}.scp"


def write_utt2spk(path: Path, spk_of: dict[str, str]) -> str:
    path.write_text("".join(f"{u} {s}\n" for u, s in sorted(spk_of.items())))
    return str(path)


def write_spk2utt(path: Path, spk2utt: dict[str, list[str]]) -> str:
    path.write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    return str(path)


def make_trials(utts: list[str], spk_of: dict[str, str], n: int, seed: int = 1) -> list[tuple[str, str, str]]:
    """`n` random (enroll, test, label) utterance pairs, about a third of them target trials."""
    rng = np.random.default_rng(seed)
    by_spk: dict[str, list[str]] = {}
    for u in utts:
        by_spk.setdefault(spk_of[u], []).append(u)
    out = []
    while len(out) < n:
        a = utts[rng.integers(len(utts))]
        if rng.random() < 0.35:
            b = by_spk[spk_of[a]][rng.integers(len(by_spk[spk_of[a]]))]
        else:
            b = utts[rng.integers(len(utts))]
        if a == b:
            continue
        out.append((a, b, "target" if spk_of[a] == spk_of[b] else "nontarget"))
    return out


def write_trials(path: Path, trials: list[tuple[str, ...]]) -> str:
    path.write_text("".join(" ".join(t) + "\n" for t in trials))
    return str(path)


def read_scores(path: Path) -> list[tuple[str, str, float]]:
    out = []
    for line in Path(path).read_text().splitlines():
        a, b, s = line.split()
        out.append((a, b, float(s)))
    return out
