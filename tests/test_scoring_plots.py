"""Plots: DET curves and histograms from compute-eer (one or several systems), t-SNE of embeddings."""
from __future__ import annotations

import numpy as np
import pytest
from embedding_data import make_speakers, write_embeddings, write_utt2spk

from spkid.scoring.plots import System, det_plot, det_points, hist_plot

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def systems(tmp_path):
    """Trials and two systems' score files (a good and a worse one) over 60 target / 300 nontarget trials."""
    rng = np.random.default_rng(3)
    labels = np.array([True] * 60 + [False] * 300)
    rows = [(f"e{i % 17}", f"t{i}", "target" if lab else "nontarget") for i, lab in enumerate(labels)]
    (tmp_path / "trials").write_text("".join(" ".join(r) + "\n" for r in rows))
    out = {}
    for name, sep in (("good", 2.5), ("weak", 1.0)):
        scores = np.where(labels, rng.normal(sep, 1, labels.size), rng.normal(0, 1, labels.size))
        (tmp_path / name).write_text("".join(f"{e} {t} {s:.5f}\n" for (e, t, _), s in zip(rows, scores)))
        out[name] = np.round(scores, 5)
    return tmp_path, labels, out


def test_det_points_are_the_error_rate_staircase():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    labels = np.array([0, 1, 0, 1, 0, 1], dtype=bool)
    p_fa, p_miss = det_points(scores, labels)
    # all 3 nontargets below all 3 targets: from (1, 0) along p_miss = 0 to (0, 0), then up to (0, 1)
    np.testing.assert_allclose(p_fa, [1, 2 / 3, 0, 0])
    np.testing.assert_allclose(p_miss, [0, 0, 0, 1])
    rng = np.random.default_rng(0)
    labels = rng.random(500) < 0.3
    scores = rng.normal(size=500) + labels
    p_fa, p_miss = det_points(scores, labels)
    assert (np.diff(p_fa) <= 0).all() and (np.diff(p_miss) >= 0).all()
    # consecutive corners differ in one coordinate only: the staircase is drawn exactly
    assert ((np.diff(p_fa) == 0) | (np.diff(p_miss) == 0)).all()


def test_det_and_hist_plot_functions(tmp_path, systems):
    _, labels, scores = systems
    sys = [System(name, s, labels) for name, s in scores.items()]
    det_plot(sys, str(tmp_path / "det.png"))
    hist_plot(sys, str(tmp_path / "hist.png"))
    assert png_size(tmp_path / "det.png") == (600, 600) and (tmp_path / "det.png").stat().st_size > 20000
    width, height = png_size(tmp_path / "hist.png")
    assert width == 700 and height > 500 and (tmp_path / "hist.png").stat().st_size > 20000
    det_plot(sys[:1], str(tmp_path / "det.svg"), p_target=None)
    assert (tmp_path / "det.svg").read_text().lstrip().startswith("<?xml")


def test_compute_eer_single_system_plots(run, systems):
    d, _, _ = systems
    plain = run(["spkid", "compute-eer", "--trials", str(d / "trials"), str(d / "good")], text=True)
    proc = run(["spkid", "compute-eer", "--trials", str(d / "trials"), str(d / "good"),
                "--det-plot", str(d / "det.png"), f"--hist-plot={d / 'hist.png'}"], text=True)
    assert proc.stdout == plain.stdout and proc.stdout.count("\n") == 1  # Kaldi's single-system output
    assert png_size(d / "det.png")[0] > 0 and (d / "det.png").stat().st_size > 15000
    assert (d / "hist.png").stat().st_size > 15000


def test_compute_eer_several_systems(run, systems):
    d, _, _ = systems
    single = {name: run(["spkid", "compute-eer", "--trials", str(d / "trials"), str(d / name)],
                        text=True).stdout.strip() for name in ("good", "weak")}
    proc = run(["spkid", "compute-eer", "--trials", str(d / "trials"), str(d / "good"), str(d / "weak"),
                "--name", "good", "--name", "weak", "--det-plot", str(d / "det.png")], text=True)
    assert proc.stdout == f"{single['good']} good\n{single['weak']} weak\n"
    assert "good: Equal error rate is" in proc.stderr and "weak: minDCF is" in proc.stderr
    assert (d / "det.png").stat().st_size > 15000
    proc = run(["spkid", "compute-eer", "--trials", str(d / "trials"), str(d / "good"), str(d / "weak"),
                "--name", "only-one"], check=False, text=True)
    assert proc.returncode != 0 and "--name given 1 times for 2 score inputs" in proc.stderr


def test_plot_embeddings_tsne(run, tmp_path):
    data = make_speakers(dim=16, n_spk=8, n_utt=10, seed=4, between_scale=6.0)
    scp = write_embeddings(tmp_path / "x", data.utts, data.x)
    utt2spk = write_utt2spk(tmp_path / "utt2spk", data.spk_of)
    proc = run(["spkid", "plot-embeddings", "--embeddings", scp, "--utt2spk", utt2spk, "--output",
                str(tmp_path / "tsne.png"), "--max-speakers", "6"], text=True)
    assert "t-SNE of 60 embeddings (6 speakers)" in proc.stderr
    width, height = png_size(tmp_path / "tsne.png")
    assert width > 500 and height == 600 and (tmp_path / "tsne.png").stat().st_size > 10000
