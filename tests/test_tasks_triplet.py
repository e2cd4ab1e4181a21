"""Deep Speaker triplets: the cosine triplet loss, hard selection over a history (against brute force),
samplers, collapse/NaN detection, the 1 + 1 + 99 test (against philipperemy/deep-speaker's loops) and score fusion."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from conftest import run_cmd

from spkid.data.hard_triplets import HardTripletBatches, TripletHistory, choose_anchors, select_hard_triplets
from spkid.data.samplers import RandomCropSampler
from spkid.data.sources import UtteranceSource
from spkid.data.triplets import RandomTripletSampler
from spkid.errors import SpkidError
from spkid.losses.triplet import TripletCosineLoss, check_embeddings, mean_pairwise_cosine, triplet_cosine_loss
from spkid.scoring.deepspeaker_eval import deepspeaker_metrics, sample_verification_sets, verification_scores
from spkid.scoring.embeddings import Embeddings
from spkid.scoring.fusion import fit_logistic_fusion, fuse, zscore_fusion


# ------------------------------------------------------------------------------------------------ loss
def test_triplet_loss_matches_a_loop():
    torch.manual_seed(0)
    a, p, n = (torch.randn(9, 5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    loss, cos_ap, cos_an = (x.detach() for x in triplet_cosine_loss(a, p, n, 0.1))
    ref = 0.0
    a_, p_, n_ = a.detach(), p.detach(), n.detach()
    for i in range(9):
        cap = float(a_[i] @ p_[i] / (a_[i].norm() * p_[i].norm()))
        can = float(a_[i] @ n_[i] / (a_[i].norm() * n_[i].norm()))
        assert abs(cap - float(cos_ap[i])) < 1e-12 and abs(can - float(cos_an[i])) < 1e-12
        ref += max(0.0, can - cap + 0.1)
    assert abs(float(loss) - ref / 9) < 1e-12
    assert torch.autograd.gradcheck(lambda x, y, z: triplet_cosine_loss(x, y, z, 0.5)[0], (a, p, n))
    crit = TripletCosineLoss(0.1)
    assert abs(float(crit(torch.cat([a_, p_, n_]).float())) - ref / 9) < 1e-6
    assert set(crit.last) == {"cos_ap", "cos_an", "active"} and 0 <= crit.last["active"] <= 1
    with pytest.raises(ValueError, match="3T"):
        crit(torch.randn(8, 5))


def test_collapse_and_nan_are_reported_with_the_step():
    torch.manual_seed(1)
    spread = torch.nn.functional.normalize(torch.randn(12, 16), dim=1)
    value = check_embeddings(spread, step=7)
    e = spread.double()
    ref = np.mean([float(e[i] @ e[j]) for i in range(12) for j in range(12) if i != j])
    assert abs(value - ref) < 1e-6 and abs(mean_pairwise_cosine(spread) - ref) < 1e-6
    same = torch.ones(12, 16) + 1e-5 * torch.randn(12, 16)
    with pytest.raises(SpkidError, match=r"collapsed at step 42: mean pairwise cosine 1\.0000\d > 0\.999") as err:
        check_embeddings(same, step=42)
    assert "\n" not in str(err.value)
    check_embeddings(same, step=42, collapse_cosine=1.0)  # 1.0 (or 0) switches the check off
    bad = spread.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(SpkidError, match="NaN or infinite at step 5"):
        check_embeddings(bad, step=5)


# ------------------------------------------------------------------------------------------- selection
def brute_force(emb, spk, utt, anchors, p, n):
    """The selection written as loops: per anchor, cosines to every history row, sorted."""
    out = []
    for a in anchors:
        cos = [float(emb[a] @ emb[j] / (np.linalg.norm(emb[a]) * np.linalg.norm(emb[j]))) for j in range(len(emb))]
        negs = sorted((j for j in range(len(emb)) if spk[j] != spk[a]), key=lambda j: -cos[j])[:n]
        poss = sorted((j for j in range(len(emb)) if spk[j] == spk[a] and utt[j] != utt[a]), key=lambda j: cos[j])[:p]
        for i in range(max(p, n)):
            out.append((a, poss[i % p % len(poss)], negs[i % n % len(negs)]))
    return out


@pytest.mark.parametrize("p,n", [(2, 2), (1, 3), (3, 1), (5, 2)])
def test_hard_selection_matches_brute_force(p, n):
    rng = np.random.default_rng(p * 10 + n)
    hist = TripletHistory(3)
    for _ in range(4):  # 4 candidate batches of 6 speakers x 2 utterances; the oldest falls out
        spk = np.repeat(rng.choice(8, 6, replace=False), 2)
        utt = spk * 5 + rng.integers(0, 3, 12)  # same utterance (another crop) may come back
        hist.add(utt, rng.integers(0, 100, 12), spk, torch.from_numpy(rng.normal(size=(12, 6)).astype(np.float32)))
    assert len(hist) == 36 and len(hist.batches) == 3
    utt, _, spk, emb = hist.arrays()
    anchors = choose_anchors(spk, utt, 10, rng)
    for a in anchors:  # every anchor has a positive: its speaker with another utterance
        assert ((spk == spk[a]) & (utt != utt[a])).any()
    a_idx, pos, neg = select_hard_triplets(emb, torch.from_numpy(spk), torch.from_numpy(utt),
                                           torch.from_numpy(anchors), p, n)
    assert len(a_idx) == 10 * max(p, n)
    got = list(zip(a_idx.tolist(), pos.tolist(), neg.tolist()))
    assert got == brute_force(emb.numpy(), spk, utt, anchors, p, n)


def test_anchor_choice_needs_positives():
    rng = np.random.default_rng(0)
    with pytest.raises(SpkidError, match="fewer than 2 speakers"):
        choose_anchors(np.zeros(4, int), np.arange(4), 2, rng)
    with pytest.raises(SpkidError, match="2 different utterances"):
        choose_anchors(np.array([0, 0, 1]), np.array([3, 3, 4]), 2, rng)
    picked = choose_anchors(np.array([0, 0, 1, 2]), np.array([1, 2, 3, 4]), 5, rng)  # only rows 0, 1 qualify
    assert set(picked.tolist()) <= {0, 1} and len(picked) == 5


class ArraySource(UtteranceSource):
    """An in-memory source: utterance i of speaker i // per_spk is a random walk (frames, dim)."""

    def __init__(self, speakers: int, per_spk: int, frames: int = 40, dim: int = 8):
        rng = np.random.default_rng(0)
        self.utts = [f"s{i // per_spk}-u{i}" for i in range(speakers * per_spk)]
        self.feats = [rng.normal(size=(frames, dim)).astype(np.float32) + i // per_spk for i in range(len(self.utts))]
        self.speakers = [f"s{i}" for i in range(speakers)]
        self.utt_speaker = np.repeat(np.arange(speakers), per_spk)
        self.lengths = np.full(len(self.utts), frames)
        self.dim = dim

    def crop(self, idx: int, start: int, length: int) -> np.ndarray:
        return self.feats[idx][start:start + length]


class TinyEncoder(torch.nn.Module):
    def __init__(self, dim: int = 8):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(dim)
        self.lin = torch.nn.Linear(dim, 4)

    def forward(self, x):
        return torch.nn.functional.normalize(self.lin(self.bn(x.mean(1))), dim=1)


def test_hard_batches_layout_scaling_and_eval_mode(caplog):
    src, model = ArraySource(5, 4), TinyEncoder()
    cfg = {"candidate_speakers": 640, "candidate_utterances": 2, "history_batches": 3, "candidate_every": 2,
           "anchors": 4, "positives_per_anchor": 2, "negatives_per_anchor": 2, "embed_batch_size": 3}
    with caplog.at_level(logging.INFO, logger="spkid.data"):
        batches = HardTripletBatches(model, src, 16, cfg, seed=3, num_workers=0)
    assert "candidate batches take 5 speakers x 2 utterances" in caplog.text and batches.speakers == 5
    model.train()
    stats = model.bn.running_mean.clone()
    it = iter(batches)
    for step in range(5):
        b = next(it)
        assert b["feats"].shape == (24, 16, 8) and b["step"] == step and b["select_ms"] >= 0
        spk = b["speakers"].view(3, 8)
        assert (spk[0] == spk[1]).all() and (spk[0] != spk[2]).all()
    assert model.training and torch.equal(model.bn.running_mean, stats)  # candidates: eval mode, no update
    assert len(batches.history.batches) == 3 and len(batches.history) == 30  # steps 0, 2, 4
    with pytest.raises(SpkidError, match="needs at least 2 speakers per process with 2 utterances of >= 16 frames; "
                                         "3 speaker"):
        HardTripletBatches(model, ArraySource(3, 4), 16, cfg, seed=0, world_size=2)
    with pytest.raises(SpkidError, match="0 speaker"):
        HardTripletBatches(model, ArraySource(3, 4, frames=10), 16, cfg, seed=0)


def test_random_samplers_layout_determinism_and_errors():
    spk = np.repeat(np.arange(6), 4)
    lengths = np.full(24, 200)
    lengths[20:23] = 50  # speaker 5 keeps one usable utterance: a negative, never an anchor
    s = RandomTripletSampler(spk, lengths, 7, 160, seed=2)
    for step in range(30):
        b = s.batch(step)
        assert b == s.batch(step) and len(b) == 21
        a, p, n = b[:7], b[7:14], b[14:]
        for (ua, _), (up, _), (un, _) in zip(a, p, n):
            assert spk[ua] == spk[up] and ua != up and spk[un] != spk[ua] and spk[ua] != 5
            assert min(lengths[ua], lengths[up], lengths[un]) >= 160
    assert s.batch(0) != RandomTripletSampler(spk, lengths, 7, 160, seed=2, rank=1).batch(0)
    with pytest.raises(SpkidError, match="random triplets need at least 2 speakers"):
        RandomTripletSampler(spk, lengths, 7, 300)
    c = RandomCropSampler(spk, lengths, 10, 160, seed=1)
    assert c.batch(3) == c.batch(3) and len({u for u, _ in c.batch(3)}) == 10
    with pytest.raises(SpkidError, match="softmax training needs"):
        RandomCropSampler(np.zeros(4, int), np.full(4, 200), 2, 160)
    skewed = np.array([0] * 50 + [1, 1, 2, 2])  # speaker 0 has 50 utterances, 1 and 2 two each
    counts = np.bincount([skewed[u] for step in range(20) for u, _ in
                          RandomCropSampler(skewed, np.full(54, 200), 6, 160, balance_speakers=True).batch(step)])
    assert counts.tolist() == [40, 40, 40]  # every batch: each speaker twice
    plain = np.bincount([skewed[u] for step in range(20) for u, _ in
                         RandomCropSampler(skewed, np.full(54, 200), 6, 160).batch(step)], minlength=3)
    assert plain[0] > 100
    short = RandomTripletSampler(spk, lengths, 7, 40, seed=2)  # min_frames 40: short utterances join in
    used = {u for step in range(50) for u, _ in short.batch(step)}
    assert used & {20, 21, 22}


def test_short_utterances_are_tiled_to_the_crop():
    """data.min_frames < crop: an utterance shorter than the crop comes back tiled (repeat padding)."""
    from spkid.data.loader import CropDataset

    src = ArraySource(2, 2, frames=30)
    feats, spk = CropDataset(src, 100)[(1, 5)]
    assert feats.shape == (100, src.dim) and spk == src.utt_speaker[1]
    whole = src.crop(1, 0, 30)
    np.testing.assert_array_equal(feats, whole[np.arange(100) % 30])


# -------------------------------------------------------------------------------------- 1 + 1 + 99 test
def seed_evaluate(sims, labels):
    """philipperemy/deep-speaker eval_metrics.evaluate, loops as written there."""
    thresholds = np.arange(0, 1.0, 0.001)
    tprs, fms, accs, frrs, fars = [], [], [], [], []
    for t in thresholds:
        pred = np.greater(sims, t)
        tp = np.sum(pred & labels)
        fp = np.sum(pred & ~labels)
        tn = np.sum(~pred & ~labels)
        fn = np.sum(~pred & labels)
        tpr = 0 if tp + fn == 0 else tp / (tp + fn)
        precision = 0 if tp + fp == 0 else tp / (tp + fp)
        fms.append(2 * precision * tpr / (precision + tpr + 1e-12))
        tprs.append(tpr)
        accs.append((tp + tn) / sims.size)
        frrs.append(1 - tp / np.sum(labels))
        fars.append(fp / np.sum(~labels))
    best = int(np.argmax(fms))
    eer_index, eer_diff = 0, 1e8
    for i in range(len(thresholds)):
        if abs(frrs[i] - fars[i]) < eer_diff:
            eer_diff, eer_index = abs(frrs[i] - fars[i]), i
    return fms[best], tprs[best], accs[best], (frrs[eer_index] + fars[eer_index]) / 2


def test_one_plus_one_plus_99_metrics_match_the_seed():
    rng = np.random.default_rng(5)
    for spread in (0.1, 0.3, 0.6):
        scores = np.clip(rng.normal(0.3, spread, size=(40, 100)), -1, 1)
        scores[:, 0] += 0.4
        labels = np.zeros_like(scores, dtype=bool)
        labels[:, 0] = True
        m = deepspeaker_metrics(scores)
        fm, tpr, acc, eer = seed_evaluate(scores, labels)
        assert (m["f_measure"], m["recall"], m["accuracy"], m["eer"]) == pytest.approx((fm, tpr, acc, eer), abs=1e-12)
        assert m["sets"] == 40 and 0 <= m["kaldi_eer"] <= 1


def test_verification_sets_and_scores():
    utt2spk = {f"s{s}-{u}": f"s{s}" for s in range(6) for u in range(3)}
    utt2spk["lonely-0"] = "lonely"
    sets = sample_verification_sets(utt2spk, num_negatives=9, seed=1, anchors_per_speaker=2)
    assert len(sets) == 12  # 6 speakers x 2; the single-utterance speaker is only a negative
    for s in sets:
        spk = utt2spk[s.anchor]
        assert s.positive != s.anchor and utt2spk[s.positive] == spk and len(s.negatives) == 9
        assert all(utt2spk[n] != spk for n in s.negatives)
    assert sets == sample_verification_sets(utt2spk, 9, seed=1, anchors_per_speaker=2)
    keys = sorted(utt2spk)
    rng = np.random.default_rng(0)
    emb = Embeddings(keys, rng.normal(size=(len(keys), 5)).astype(np.float32), "mem")
    scores = verification_scores(emb, sets)
    x = emb.matrix.astype(np.float64)
    for i, s in enumerate(sets):
        for j, other in enumerate([s.positive, *s.negatives]):
            a, b = x[emb.index[s.anchor]], x[emb.index[other]]
            assert abs(scores[i, j] - a @ b / np.linalg.norm(a) / np.linalg.norm(b)) < 1e-12
    with pytest.raises(SpkidError, match="at least 2 speakers"):
        sample_verification_sets({"a": "x", "b": "x"})
    with pytest.raises(SpkidError, match="1 utterances have no embedding"):
        verification_scores(Embeddings(keys[1:], emb.matrix[1:], "part"), sets)


def test_eval_triplets_command(tmp_path):
    import kaldiio

    rng = np.random.default_rng(2)
    centers = rng.normal(size=(8, 16))
    utt2spk = {f"spk{s}-utt{u}": f"spk{s}" for s in range(8) for u in range(4)}
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/e.ark,{tmp_path}/e.scp") as w:
        for utt, spk in utt2spk.items():
            w(utt, (centers[int(spk[3:])] + 0.3 * rng.normal(size=16)).astype(np.float32))
    (tmp_path / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in utt2spk.items()))
    proc = run_cmd(["spkid", "eval-triplets", "--embeddings", f"scp:{tmp_path}/e.scp", "--utt2spk",
                    str(tmp_path / "utt2spk"), "--num-negatives", "99", "--scores-out", str(tmp_path / "sc")])
    values = dict(kv.split("=") for kv in proc.stdout.decode().split())
    assert int(values["sets"]) == 8 and float(values["eer"]) < 0.1 and float(values["accuracy"]) > 0.95
    assert len((tmp_path / "sc").read_text().splitlines()) == 800
    assert sum(ln.endswith(" target") for ln in (tmp_path / "sc.trials").read_text().splitlines()) == 8


# ---------------------------------------------------------------------------------------------- fusion
def test_fusion_methods():
    from spkid.scoring.calibration import fit_logistic
    from spkid.scoring.metrics import compute_eer

    rng = np.random.default_rng(3)
    labels = rng.random(2000) < 0.2
    good = rng.normal(size=2000) + 2.0 * labels
    other = 10 + 3 * (rng.normal(size=2000) + 1.5 * labels)  # another scale and offset
    fused = zscore_fusion([good, other])
    manual = ((good - good.mean()) / good.std() + (other - other.mean()) / other.std()) / 2
    np.testing.assert_allclose(fused, manual)
    eer = lambda s: compute_eer(s[labels], s[~labels])[0]  # noqa: E731
    assert eer(fused) < min(eer(good), eer(other))
    # logistic fusion of a system with itself = calibration of that system
    w, b = fit_logistic_fusion([good, good], labels)
    scale, offset = fit_logistic(good, labels)
    assert w.sum() == pytest.approx(scale, rel=1e-3) and b == pytest.approx(offset, rel=1e-3)
    noise = rng.normal(size=2000)
    w, _ = fit_logistic_fusion([good, noise], labels)
    assert abs(w[1]) < 0.1 * w[0]
    dev, test = slice(0, 1000), slice(1000, None)
    out = fuse([good[test], other[test]], "logistic", [good[dev], other[dev]], labels[dev])
    lt = labels[test]
    eer_t = lambda s: compute_eer(s[lt], s[~lt])[0]  # noqa: E731
    assert len(out) == 1000 and eer_t(out) <= min(eer_t(good[test]), eer_t(other[test]))
    with pytest.raises(SpkidError, match="at least 2 systems"):
        zscore_fusion([good])
    with pytest.raises(SpkidError, match="development list"):
        fuse([good, other], "logistic")


def test_score_fuse_command(tmp_path, run):
    rng = np.random.default_rng(4)
    pairs = [(f"e{i}", f"t{j}", (i + j) % 3 == 0) for i in range(10) for j in range(10)]
    (tmp_path / "trials").write_text("".join(f"{e} {t} {'target' if y else 'nontarget'}\n" for e, t, y in pairs))
    systems = []
    for k, scale in enumerate((1.0, 5.0)):
        s = [scale * (rng.normal() + 2 * y) for *_, y in pairs]
        systems.append(np.array(s))
        rows = list(zip(pairs, s))[::-1]  # another order than the trials
        (tmp_path / f"s{k}").write_text("".join(f"{e} {t} {x:.7g}\n" for (e, t, _), x in rows))
    out = tmp_path / "fused"
    run(["spkid", "score", "--trials", str(tmp_path / "trials"), "--fuse", str(tmp_path / "s0"), "--fuse",
         str(tmp_path / "s1"), "--output", str(out)])
    lines = out.read_text().split("\n")[:-1]
    assert [tuple(ln.split()[:2]) for ln in lines] == [(e, t) for e, t, _ in pairs]
    np.testing.assert_allclose([float(ln.split()[2]) for ln in lines], zscore_fusion(systems), atol=1e-5)
    run(["spkid", "score", "--trials", str(tmp_path / "trials"), "--fuse", str(tmp_path / "s0"), "--fuse",
         str(tmp_path / "s1"), "--fusion", "logistic", "--fusion-dev-trials", str(tmp_path / "trials"),
         "--fusion-dev", str(tmp_path / "s0"), "--fusion-dev", str(tmp_path / "s1"), "--output", str(out)])
    assert len(out.read_text().splitlines()) == 100
    for args, msg in [(["--fuse", str(tmp_path / "s0"), "--fuse", str(tmp_path / "s1"), "--enroll", "scp:x"],
                       "--enroll belong to each system's own"),
                      (["--fuse", str(tmp_path / "s0")], "at least 2 systems"),
                      ([], "Missing option '--enroll'"),
                      (["--fuse", str(tmp_path / "s0"), "--fuse", str(tmp_path / "s1"), "--fusion", "logistic"],
                       "development list")]:
        proc = run(["spkid", "score", "--trials", str(tmp_path / "trials"), *args], check=False)
        assert proc.returncode != 0 and msg in proc.stderr.decode(), proc.stderr


def test_short_audio_utterances_are_tiled_not_edge_padded(shared_data, tmp_path):
    """From audio (no feats.scp), a clip shorter than the crop gives its own frames, which CropDataset tiles."""
    from conftest import flac_files, write_data_dir

    from spkid.data.loader import CropDataset
    from spkid.data.sources import open_source

    files = flac_files(shared_data, "fsdd", n_spk=2, n_utt=2)  # 8 kHz digits of ~0.4 s
    data = write_data_dir(tmp_path / "d", [(s, u, str(p)) for s, u, p in files])
    src = open_source(data, {"type": "kaldi-fbank", "num_mel_bins": 23, "dither": 0.0, "sample_frequency": 8000.0,
                             "cmn": True}, "audio")
    idx = int(np.argmin(src.lengths))
    n = int(src.lengths[idx])
    assert n < 100
    own = src.crop(idx, 0, 100)
    assert own.shape == (n, 23)
    feats, _ = CropDataset(src, 100)[(idx, 0)]
    np.testing.assert_allclose(feats, own[np.arange(100) % n], atol=1e-5)
