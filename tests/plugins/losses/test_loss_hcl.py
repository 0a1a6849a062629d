"""HCL: contract, a naive reference from the authors' estimator, and β = 0 = DCL."""

from __future__ import annotations

import math

import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract
from negbench_plugins.losses.dcl import DCL
from negbench_plugins.losses.hcl import HCL


class TestHCLContract(LossContract):
    loss_cls = HCL


class TestHCLHardOnlyContract(LossContract):
    loss_cls = HCL
    loss_kwargs = {"beta": 0.5, "tau_plus": 0.0, "in_batch": False}


class TestHCLVeryHardContract(LossContract):
    loss_cls = HCL
    loss_kwargs = {"beta": 6.0, "temperature": 0.1}


def _inputs(seed, b=7, k=11, p_mask=0.4):
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(b, generator=gen, dtype=torch.float64) * 2 - 1
    negative = torch.rand(b, k, generator=gen, dtype=torch.float64) * 2 - 1
    mask = torch.rand(b, k, generator=gen) > p_mask
    mask[0] = False  # every negative masked out
    mask[1] = True  # none masked out
    return positive, negative, mask


def _reference(positive, negative, mask, *, beta, tau_plus, temperature):
    """joshr17/HCL ``criterion`` (estimator 'hard'), one anchor at a time."""
    out = []
    for row in range(positive.shape[0]):
        pos = math.exp(float(positive[row]) / temperature)
        negs = [
            math.exp(float(negative[row, j]) / temperature)
            for j in range(negative.shape[1])
            if mask[row, j]
        ]
        n = len(negs)
        if n == 0:
            out.append(0.0)  # the positive-only limit: -log(pos / pos)
            continue
        imp = [x**beta for x in negs]
        reweight = sum(i * x for i, x in zip(imp, negs, strict=True)) / (sum(imp) / n)
        ng = (-tau_plus * n * pos + reweight) / (1 - tau_plus)
        ng = max(ng, n * math.exp(-1 / temperature))
        out.append(-math.log(pos / (pos + ng)))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0, 6.0])
@pytest.mark.parametrize("tau_plus", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("seed", range(3))
def test_matches_naive_loop(beta, tau_plus, seed):
    positive, negative, mask = _inputs(seed)
    loss = HCL(beta=beta, tau_plus=tau_plus, temperature=0.5)
    expected = _reference(
        positive, negative, mask, beta=beta, tau_plus=tau_plus, temperature=0.5
    )
    torch.testing.assert_close(loss(positive, negative, mask), expected)


def test_defaults_are_the_papers():
    positive, negative, mask = _inputs(3)
    expected = _reference(
        positive, negative, mask, beta=1.0, tau_plus=0.1, temperature=0.5
    )
    torch.testing.assert_close(HCL()(positive, negative, mask), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(5))
def test_beta_zero_is_dcl_exactly(seed, dtype):
    positive, negative, mask = _inputs(seed)
    kwargs = {"tau_plus": 0.1 + 0.1 * seed, "temperature": 0.2 + 0.2 * seed}
    p1 = positive.to(dtype).requires_grad_()
    n1 = negative.to(dtype).requires_grad_()
    p2 = positive.to(dtype).requires_grad_()
    n2 = negative.to(dtype).requires_grad_()
    hcl = HCL(beta=0.0, **kwargs)(p1, n1, mask)
    dcl = DCL(**kwargs)(p2, n2, mask)
    assert torch.equal(hcl, dcl)
    hcl.sum().backward()
    dcl.sum().backward()
    assert torch.equal(p1.grad, p2.grad)
    assert torch.equal(n1.grad, n2.grad)


def test_harder_weighting_never_lowers_the_loss():
    """w ∝ e^{β s/t} shifts mass to larger negatives, so R grows with β."""
    positive, negative, mask = _inputs(11)
    previous = None
    for beta in [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]:
        current = HCL(beta=beta)(positive, negative, mask)
        if previous is not None:
            assert bool((current >= previous - 1e-12).all())
        previous = current


def test_gradients_flow_through_the_importance_weights():
    positive, negative, mask = _inputs(12)
    p1, n1 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    HCL(beta=1.5, tau_plus=0.2, temperature=0.4)(p1, n1, mask).sum().backward()
    p2, n2 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    total = p2.sum() * 0
    for row in range(p2.shape[0]):
        valid = [j for j in range(11) if mask[row, j]]
        if not valid:
            continue
        pos = torch.exp(p2[row] / 0.4)
        neg = torch.exp(n2[row, valid] / 0.4)
        imp = (1.5 * neg.log()).exp()  # as the authors' code: not detached
        reweight = (imp * neg).sum() / imp.mean()
        ng = (-0.2 * len(valid) * pos + reweight) / 0.8
        ng = torch.clamp(ng, min=len(valid) * math.exp(-1 / 0.4))
        total = total - torch.log(pos / (pos + ng))
    total.backward()
    torch.testing.assert_close(p1.grad, p2.grad)
    torch.testing.assert_close(n1.grad, n2.grad)


def test_zero_valid_negatives_and_masked_non_finite():
    positive = torch.tensor([0.3, 0.2])
    negative = torch.tensor([[float("nan"), 0.4], [float("inf"), 0.1]])
    mask = torch.tensor([[False, False], [False, True]])
    out = HCL()(positive, negative, mask)
    expected = _reference(
        positive.double(),
        torch.tensor([[0.0, 0.4], [0.0, 0.1]]).double(),
        mask,
        beta=1.0,
        tau_plus=0.1,
        temperature=0.5,
    )
    torch.testing.assert_close(out.double(), expected)
    assert float(out[0]) == 0.0


def test_extreme_scores_match_a_float64_reference():
    positive, negative, mask = _inputs(13)
    got = HCL()(positive.float() * 50, negative.float() * 50, mask)
    assert bool(torch.isfinite(got).all())
    # beta 1 at t 0.5: imp * neg reaches e^{400}, beyond float64; shift by hand
    expected = []
    for row in range(7):
        valid = [j for j in range(11) if mask[row, j]]
        s_pos = 50 * float(positive[row]) / 0.5
        s = [50 * float(negative[row, j]) / 0.5 for j in valid]
        if not s:
            expected.append(0.0)
            continue
        m = max([s_pos, *s])
        pos = math.exp(s_pos - m)
        top = max(s)
        imp = [math.exp(x - top) for x in s]
        neg = [math.exp(x - m) for x in s]
        n = len(s)
        reweight = sum(i * x for i, x in zip(imp, neg, strict=True)) / (sum(imp) / n)
        ng = max((reweight - n * 0.1 * pos) / 0.9, n * math.exp(-2 - m))
        expected.append(math.log(pos + ng) + m - s_pos)
    torch.testing.assert_close(
        got.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-3
    )


def test_is_registered_apart_from_dcl():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.losses.get("hcl").cls is HCL
    assert host.registries.losses.get("dcl").cls is DCL
    assert HCL.in_batch_default is True


def test_negative_beta_raises():
    with pytest.raises(ValueError, match="beta"):
        HCL(beta=-0.5)
