"""Plots: DET curves, score histograms and t-SNE maps of embeddings (matplotlib Agg, imported lazily).

Figures are drawn with matplotlib's object API (no pyplot state, no display needed) and written
atomically; the format follows the file extension (png, pdf, svg; png when there is none).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.errors import SpkidError

DET_TICKS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.5, 0.6, 0.8,
             0.9, 0.95, 0.98, 0.99)


@dataclass
class System:
    """One system's labelled scores, for the plots."""

    name: str
    scores: np.ndarray
    labels: np.ndarray  # bool, True for target trials


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str) -> None:
    from spkid.atomic import commit, discard, open_temp

    fmt = Path(path).suffix[1:].lower() or "png"
    handle, tmp = open_temp(path, "wb")
    try:
        with handle:
            fig.savefig(handle, format=fmt)
        commit(tmp, path)
    except ValueError as err:
        discard(tmp)
        raise SpkidError(f"{path}: cannot write the plot ({err})") from None
    except BaseException:
        discard(tmp)
        raise


def det_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-alarm rates, miss rates) at every threshold, thinned to the corners of the staircase."""
    from spkid.scoring.metrics import compute_error_rates

    fnrs, fprs, _ = compute_error_rates(scores, labels)
    order_labels = np.asarray(labels, dtype=np.int64)[np.argsort(scores, kind="stable")]
    keep = np.ones(len(fnrs), dtype=bool)
    keep[1:-1] = order_labels[1:-1] != order_labels[2:]  # a corner where the next label differs
    p_miss = np.concatenate([[0.0], fnrs[keep]])
    p_fa = np.concatenate([[1.0], fprs[keep]])
    return p_fa, p_miss


def det_plot(systems: Sequence[System], path: str, p_target: float | None = 0.01, title: str = "DET curve",
             c_miss: float = 1.0, c_fa: float = 1.0) -> None:
    """DET curves of the systems on normal-deviate axes, each with its EER point (and minDCF point)."""
    from scipy.special import ndtri  # the normal deviate (probit), lighter to import than scipy.stats

    from spkid.scoring.metrics import compute_eer, compute_error_rates

    fig = _figure(6.0, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    coarsest = 0.0  # the largest step of an error rate among the systems: resolution of the curves
    max_eer = 0.0
    for i, sys in enumerate(systems):
        labels = np.asarray(sys.labels, dtype=bool)
        eer, _ = compute_eer(sys.scores[labels], sys.scores[~labels])
        max_eer = max(max_eer, eer)
        p_fa, p_miss = det_points(sys.scores, labels)
        coarsest = max(coarsest, 1.0 / labels.sum(), 1.0 / (~labels).sum())
        color = f"C{i % 10}"
        lo = 1e-6
        ax.plot(ndtri(np.clip(p_fa, lo, 1 - lo)), ndtri(np.clip(p_miss, lo, 1 - lo)), color=color,
                label=f"{sys.name} (EER {100 * eer:.2f}%)")
        eer_dev = ndtri(np.clip(eer, lo, 1 - lo))
        ax.plot([eer_dev], [eer_dev], "o", color=color, markersize=7, markerfacecolor="none")
        if p_target is not None:
            fnrs, fprs, _ = compute_error_rates(sys.scores, labels)
            cost = c_miss * fnrs * p_target + c_fa * fprs * (1 - p_target)
            best = int(np.argmin(cost))
            ax.plot(ndtri(np.clip(fprs[best], lo, 1 - lo)), ndtri(np.clip(fnrs[best], lo, 1 - lo)),
                    "s", color=color, markersize=6)
    low = max(t for t in DET_TICKS[:7] if t <= max(coarsest, DET_TICKS[0]))  # 0.01% .. 1%
    high = 0.5 if max_eer < 0.3 else 0.99
    ticks = [t for t in DET_TICKS if low <= t <= high]
    ax.plot(ndtri([low, high]), ndtri([low, high]), color="0.7", linestyle=":", linewidth=1)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(ndtri(ticks))
        axis.set_ticklabels([f"{100 * t:g}" for t in ticks], fontsize=8)
    ax.set_xlim(ndtri(low), ndtri(high))
    ax.set_ylim(ndtri(low), ndtri(high))
    ax.set_xlabel("False alarm probability (%)")
    ax.set_ylabel("Miss probability (%)")
    marks = "o: EER" + (f", \u25a0: minDCF (p-target={p_target:g})" if p_target is not None else "")
    ax.set_title(f"{title}\n{marks}", fontsize=10)
    ax.grid(True, color="0.85")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def hist_plot(systems: Sequence[System], path: str, bins: int = 50) -> None:
    """Target and nontarget score histograms (densities), one panel per system, EER threshold marked."""
    from spkid.scoring.metrics import compute_eer

    fig = _figure(7.0, 2.8 * len(systems) + 0.4)
    for i, sys in enumerate(systems):
        ax = fig.add_subplot(len(systems), 1, i + 1)
        labels = np.asarray(sys.labels, dtype=bool)
        eer, threshold = compute_eer(sys.scores[labels], sys.scores[~labels])
        edges = np.histogram_bin_edges(sys.scores, bins=bins)
        ax.hist(sys.scores[~labels], bins=edges, density=True, alpha=0.55, color="C3",
                label=f"nontarget ({int((~labels).sum())})")
        ax.hist(sys.scores[labels], bins=edges, density=True, alpha=0.55, color="C0",
                label=f"target ({int(labels.sum())})")
        ax.axvline(threshold, color="k", linestyle="--", linewidth=1,
                   label=f"EER threshold {threshold:.4g} (EER {100 * eer:.2f}%)")
        ax.set_title(sys.name, fontsize=10)
        ax.set_xlabel("score")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def tsne_plot(x: np.ndarray, speakers: Sequence[str], path: str, perplexity: float = 30.0, seed: int = 0,
              title: str = "t-SNE of embeddings") -> np.ndarray:
    """2-D t-SNE of the rows of `x` (after length normalisation), coloured by speaker; returns the points."""
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 3:
        raise SpkidError(f"t-SNE needs at least 3 embeddings, got {n}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perplexity = float(min(perplexity, (n - 1) / 3))
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    spk = np.asarray(speakers)
    names = list(dict.fromkeys(spk.tolist()))
    fig = _figure(7.5 if len(names) <= 20 else 6.0, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib import colormaps

    cmap = colormaps["tab20" if len(names) <= 20 else "nipy_spectral"]
    for i, name in enumerate(names):
        sel = spk == name
        color = cmap(i % 20) if len(names) <= 20 else cmap(i / max(len(names) - 1, 1))
        ax.scatter(points[sel, 0], points[sel, 1], s=12, color=color, label=name)
    ax.set_title(f"{title} ({n} embeddings, {len(names)} speakers)", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(names) <= 20:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=1.5)
    fig.tight_layout()
    _save(fig, path)
    return points
