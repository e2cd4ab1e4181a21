"""GE2ELoss against a slow, loop-based transcription of Wan et al. 2018's equations."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import test_seed

from spkid.losses import GE2ELoss


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum() / (a.norm() * b.norm())


def reference_loss(embeds: torch.Tensor, w: torch.Tensor, b: torch.Tensor, method: str) -> torch.Tensor:
    """The paper's equations with explicit loops over j, i, k; mean over the N*M utterances."""
    n, m, _ = embeds.shape
    w = torch.clamp(w, min=1e-6)
    centroids = [sum(embeds[k, i] for i in range(m)) / m for k in range(n)]
    losses = []
    for j in range(n):
        for i in range(m):
            e = embeds[j, i]
            s = []
            for k in range(n):
                if k == j:
                    c = sum(embeds[j, q] for q in range(m) if q != i) / (m - 1)
                else:
                    c = centroids[k]
                s.append(w * _cos(e, c) + b)
            if method == "softmax":
                loss = -s[j] + torch.log(sum(torch.exp(v) for v in s))
            else:
                loss = 1 - torch.sigmoid(s[j]) + max(torch.sigmoid(s[k]) for k in range(n) if k != j)
            losses.append(loss)
    return sum(losses) / len(losses)


def _grads(loss_fn, embeds, w, b, method):
    """(loss, d/d embeds, d/dw, d/db) of GE2ELoss (loss_fn=None -> the reference) in float64."""
    x = embeds.clone().requires_grad_(True)
    if loss_fn is None:
        wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        loss = reference_loss(x, wt, bt, method)
        loss.backward()
        return loss.detach(), x.grad, wt.grad, bt.grad
    loss = loss_fn(x)
    loss.backward()
    return loss.detach(), x.grad, loss_fn.w.grad, loss_fn.b.grad


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add spin-wait overhead (badly so on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CASES = [(2, 2, 3, 0), (3, 4, 8, 1), (4, 5, 16, 2), (5, 3, 7, 3), (6, 6, 32, 4)]


@pytest.mark.parametrize("method", ["softmax", "contrast"])
@pytest.mark.parametrize("normalised", [True, False])
@pytest.mark.parametrize("n,m,d,seed", CASES)
def test_matches_reference(n, m, d, seed, normalised, method):
    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(n, m, d, generator=g, dtype=torch.float64)
    if normalised:
        embeds = torch.nn.functional.normalize(embeds, dim=-1)
    else:
        embeds = embeds * torch.rand(n, m, 1, generator=g, dtype=torch.float64).mul(5).add(0.1)
    w, b = 3.0 + seed, -1.5 - 0.5 * seed
    loss_fn = GE2ELoss(init_w=w, init_b=b, method=method).double()
    got = _grads(loss_fn, embeds, w, b, method)
    ref = _grads(None, embeds, w, b, method)
    for name, a, r in zip(("loss", "d_embeds", "d_w", "d_b"), got, ref):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-11, msg=lambda s, nm=name: f"{nm}: {s}")


def test_float32_module_float64_input_and_float32_input():
    embeds = torch.randn(4, 5, 10, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    loss_fn = GE2ELoss()
    ref = reference_loss(embeds, torch.tensor(10.0, dtype=torch.float64),
                         torch.tensor(-5.0, dtype=torch.float64), "softmax")
    out64 = loss_fn(embeds)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64, ref, rtol=1e-9, atol=1e-12)
    out32 = loss_fn(embeds.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), ref, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_computes_in_float32():
    embeds = torch.randn(4, 5, 16, generator=torch.Generator().manual_seed(8))
    loss_fn = GE2ELoss()
    expected = loss_fn(embeds.bfloat16().float())
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        got = loss_fn(embeds.bfloat16())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)


def test_w_clamped_positive():
    embeds = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for init_w in (-3.0, 0.0):
        loss_fn = GE2ELoss(init_w=init_w).double()
        ref = reference_loss(embeds, torch.tensor(1e-6, dtype=torch.float64),
                             torch.tensor(-5.0, dtype=torch.float64), "softmax")
        torch.testing.assert_close(loss_fn(embeds), ref)
    # Pushed negative during training: the forward still uses w = 1e-6 > 0.
    loss_fn = GE2ELoss().double()
    with torch.no_grad():
        loss_fn.w.fill_(-2.0)
    ref_neg = reference_loss(embeds, torch.tensor(1e-6, dtype=torch.float64),
                             torch.tensor(-5.0, dtype=torch.float64), "softmax")
    torch.testing.assert_close(loss_fn(embeds), ref_neg)
    # With w ~ 0 every similarity equals b: the softmax loss is log N exactly.
    torch.testing.assert_close(loss_fn(embeds).item(), math.log(3), rtol=1e-5, atol=1e-5)


def test_scale_grads_multiplies_by_factor():
    embeds = torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(10))
    loss_fn = GE2ELoss()
    loss_fn(embeds).backward()
    gw, gb = loss_fn.w.grad.clone(), loss_fn.b.grad.clone()
    assert gw.abs() > 0 and gb.abs() > 0
    loss_fn.scale_grads(0.01)
    assert torch.equal(loss_fn.w.grad, gw * 0.01)
    assert torch.equal(loss_fn.b.grad, gb * 0.01)
    assert not torch.equal(loss_fn.w.grad, gw)
    loss_fn.scale_grads(0.5)
    assert torch.equal(loss_fn.w.grad, gw * 0.01 * 0.5)
    fresh = GE2ELoss()
    fresh.scale_grads()  # no grads yet: no-op
    assert fresh.w.grad is None and fresh.b.grad is None


@pytest.mark.learning
@pytest.mark.parametrize("method", ["softmax", "contrast"])
def test_training_reduces_loss(method):
    """300 Adam steps on free embeddings: over SPKID_TEST_SEED 0-9 (1 and 2 threads, identical) the loss
    falls from 2.3-4.7 (softmax) / 0.98-1.22 (contrast) to 0.0003-0.0010, under 0.001 of where it began,
    and the accuracy from 0.15-0.50 to 1; the bound (a fifth) has a margin of 200x."""
    torch.manual_seed(test_seed())
    embeds = torch.nn.Parameter(torch.randn(4, 5, 8))
    loss_fn = GE2ELoss(method=method)
    opt = torch.optim.Adam([embeds, *loss_fn.parameters()], lr=0.05)
    first = loss_fn(embeds).item()
    first_acc = loss_fn.last_accuracy.item()
    for _ in range(300):
        opt.zero_grad()
        loss = loss_fn(embeds)
        loss.backward()
        loss_fn.scale_grads(0.01)
        opt.step()
    final = loss_fn(embeds).item()
    print(f"ge2e loss {method} seed {test_seed()}: {first:.4f} -> {final:.4f}, accuracy {first_acc:.3f} -> "
          f"{loss_fn.last_accuracy.item():.3f}")
    assert final < 0.2 * first, (first, final)
    assert loss_fn.last_accuracy.item() == 1.0 >= first_acc
    assert loss_fn.w.item() > 0


def test_accuracy_on_separable_batch():
    centres = torch.eye(4, 8)
    embeds = centres.unsqueeze(1) + 0.01 * torch.randn(4, 3, 8, generator=torch.Generator().manual_seed(12))
    loss_fn = GE2ELoss()
    loss_fn(embeds)
    assert loss_fn.last_accuracy.item() == 1.0
    # Two "speakers" with the same two orthogonal utterances: each utterance is closer to the other
    # speaker's inclusive centroid (cos 1/sqrt 2) than to its own exclusive one (cos 0).
    x, y = torch.eye(2, 8)
    loss_fn(torch.stack([torch.stack([x, y]), torch.stack([x, y])]))
    assert loss_fn.last_accuracy.item() == 0.0


@pytest.mark.parametrize("shape", [(3, 1, 4), (1, 5, 4), (5, 4), (2, 3, 4, 5)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match="GE2ELoss"):
        GE2ELoss()(torch.randn(*shape))


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="unknown method"):
        GE2ELoss(method="triplet")
