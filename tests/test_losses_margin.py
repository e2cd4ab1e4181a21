"""Margin softmax heads (AM, AAM, sub-center AAM) against direct float64 formulas, and the margin schedule."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spkid.losses import build_head, head_names
from spkid.losses.margin import margin_at


def cosines(embeds: torch.Tensor, weight: torch.Tensor, subcenters: int = 1) -> torch.Tensor:
    """float64 cosines, computed one pair at a time (no shared code with the heads)."""
    e, w = embeds.double(), weight.double()
    cos = torch.tensor([[float(a @ b / (a.norm() * b.norm())) for b in w] for a in e], dtype=torch.float64)
    if subcenters > 1:
        cos = torch.stack([cos[:, c * subcenters:(c + 1) * subcenters].max(dim=1).values
                           for c in range(w.shape[0] // subcenters)], dim=1)
    return cos


def arc_target(cos: float, m: float, easy: bool) -> float:
    theta = math.acos(max(-1.0, min(1.0, cos)))
    if easy:
        return math.cos(theta + m) if cos > 0 else cos
    return math.cos(theta + m) if theta + m < math.pi else cos - 1 - math.cos(math.pi - m)


def expected_logits(cos: torch.Tensor, labels: torch.Tensor, kind: str, m: float, s: float, easy=False):
    out = cos.clone()
    for i, y in enumerate(labels.tolist()):
        c = float(cos[i, y])
        out[i, y] = c - m if kind == "am" else arc_target(c, m, easy)
    return s * out


def test_registered():
    assert {"am_softmax", "aam_softmax", "subcenter_aam"} <= set(head_names())


@pytest.mark.parametrize("name,kind,extra", [
    ("am_softmax", "am", {}),
    ("aam_softmax", "aam", {}),
    ("aam_softmax", "aam", {"easy_margin": True}),
    ("subcenter_aam", "aam", {"subcenters": 3}),
])
def test_logits_and_loss_match_formula(name, kind, extra):
    torch.manual_seed(0)
    head = build_head(name, 16, 7, margin=0.3, scale=30.0, **extra)
    k = extra.get("subcenters", 1)
    assert head.weight.shape == (7 * k, 16)
    embeds, labels = torch.randn(40, 16), torch.randint(0, 7, (40,))
    # a few embeddings near or opposite their class weight: cos near +-1, theta + m past pi
    embeds[:3] = head.weight.detach()[labels[:3] * k] * 2
    embeds[3:6] = -head.weight.detach()[labels[3:6] * k] + 0.05 * torch.randn(3, 16)
    loss, logits = head(embeds, labels)
    cos = cosines(embeds, head.weight.detach(), k)
    want = expected_logits(cos, labels, kind, 0.3, 30.0, extra.get("easy_margin", False))
    torch.testing.assert_close(logits.double(), want, rtol=0, atol=2e-4)
    torch.testing.assert_close(loss.double(), F.cross_entropy(want, labels), rtol=1e-5, atol=1e-5)
    # the margin touches only the target logits
    off_target = ~F.one_hot(labels, 7).bool()
    torch.testing.assert_close(logits[off_target].double(), 30.0 * cos[off_target], rtol=0, atol=2e-4)


def test_theta_past_pi_branch_and_easy_margin():
    """cos = -0.99 with m = 0.3: theta + m > pi, so WeSpeaker's continuation cos - (1 + cos(pi - m))."""
    head = build_head("aam_softmax", 2, 2, margin=0.3, scale=1.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    theta = math.acos(-0.99)
    embeds = torch.tensor([[math.cos(theta), math.sin(theta)]])
    _, logits = head(embeds, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(-0.99 - 1 - math.cos(math.pi - 0.3), abs=1e-5)
    head.easy_margin = True
    _, logits = head(embeds, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(-0.99, abs=1e-6)
    embeds = torch.tensor([[math.cos(1.0), math.sin(1.0)]])
    _, logits = head(embeds, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(math.cos(1.3), abs=1e-6)


def test_subcenter_takes_the_closest_subcenter():
    head = build_head("subcenter_aam", 3, 2, margin=0.0, scale=1.0, subcenters=2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]]))
    _, logits = head(torch.tensor([[0.0, 2.0, 0.0], [-1.0, 0.0, 1.0]]), torch.tensor([0, 1]))
    # class 0 = max(cos to e1, cos to e2); class 1 = max(cos to e3, cos to -e1)
    torch.testing.assert_close(logits, torch.tensor([[1.0, 0.0], [0.0, math.sqrt(0.5)]]))


@pytest.mark.parametrize("name", ["am_softmax", "aam_softmax", "subcenter_aam"])
def test_finite_loss_and_gradients_at_cos_plus_minus_one(name):
    torch.manual_seed(0)
    head = build_head(name, 8, 4, margin=0.2, scale=32.0)
    k = getattr(head, "subcenters", 1)
    w = head.weight.detach()
    embeds = torch.stack([w[0], -w[k], 3 * w[2 * k], -w[3 * k]]).clone().requires_grad_(True)
    loss, logits = head(embeds, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits).all()
    assert torch.isfinite(embeds.grad).all() and torch.isfinite(head.weight.grad).all()
    assert logits.abs().max() <= 32.0 * 2.0 + 1e-4


@pytest.mark.parametrize("name", ["am_softmax", "aam_softmax", "subcenter_aam"])
def test_set_margin(name):
    torch.manual_seed(0)
    head = build_head(name, 8, 5, margin=0.0, scale=10.0)
    embeds, labels = torch.randn(6, 8), torch.randint(0, 5, (6,))
    _, plain = head(embeds, labels)
    head.set_margin(0.25)
    assert head.margin == 0.25
    loss, margined = head(embeds, labels)
    target = F.one_hot(labels, 5).bool()
    torch.testing.assert_close(margined[~target], plain[~target])
    assert (margined[target] < plain[target]).all()  # a margin only lowers the target logit
    assert loss > F.cross_entropy(plain, labels)


def test_margin_schedule_is_linear_from_zero():
    assert margin_at(0, 0.2, 100, 300) == 0.0
    assert margin_at(99, 0.2, 100, 300) == 0.0
    assert margin_at(100, 0.2, 100, 300) == 0.0
    assert margin_at(200, 0.2, 100, 300) == pytest.approx(0.1)
    assert margin_at(250, 0.2, 100, 300) == pytest.approx(0.15)
    assert margin_at(300, 0.2, 100, 300) == 0.2
    assert margin_at(10_000, 0.2, 100, 300) == 0.2
    assert margin_at(5, 0.3, 0, 0) == 0.3  # no ramp: the final margin from the start


def test_logits_are_the_scaled_cosines_without_margin():
    torch.manual_seed(0)
    for name in ("am_softmax", "aam_softmax", "subcenter_aam"):
        head = build_head(name, embed_dim=8, num_classes=5, margin=0.3, scale=30.0)
        embeds = torch.randn(4, 8)
        weight = head.weight.view(5, -1, 8) if name == "subcenter_aam" else head.weight.view(5, 1, 8)
        cos = torch.einsum("bd,ckd->bck", F.normalize(embeds, dim=1), F.normalize(weight, dim=2)).amax(dim=2)
        assert torch.allclose(head.logits(embeds), 30.0 * cos, atol=1e-5), name


def test_margin_heads_compute_in_float32_under_autocast():
    """train.amp: bfloat16 embeddings from the encoder, the cosines, margin and loss in float32."""
    torch.manual_seed(0)
    for name in ("am_softmax", "aam_softmax", "subcenter_aam"):
        head = build_head(name, embed_dim=8, num_classes=5, margin=0.2, scale=32.0)
        embeds, labels = torch.randn(6, 8).bfloat16(), torch.randint(0, 5, (6,))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, logits = head(embeds, labels)
        assert loss.dtype == logits.dtype == torch.float32, name
        reference, _ = head(embeds.float(), labels)
        assert loss.item() == pytest.approx(reference.item(), rel=1e-6), name
