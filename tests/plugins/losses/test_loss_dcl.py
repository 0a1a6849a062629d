"""DCL: contract plus a naive reference written from the paper's estimator."""

from __future__ import annotations

import math

import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract
from negbench_plugins.losses.dcl import DCL
from negbench_plugins.losses.infonce import InfoNCE


class TestDCLContract(LossContract):
    loss_cls = DCL


class TestDCLSharpContract(LossContract):
    loss_cls = DCL
    loss_kwargs = {"temperature": 0.05, "tau_plus": 0.0, "in_batch": False}


class TestDCLHighPriorContract(LossContract):
    loss_cls = DCL
    loss_kwargs = {"temperature": 0.2, "tau_plus": 0.3}


def _inputs(seed, b=7, k=11, p_mask=0.4):
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(b, generator=gen, dtype=torch.float64) * 2 - 1
    negative = torch.rand(b, k, generator=gen, dtype=torch.float64) * 2 - 1
    mask = torch.rand(b, k, generator=gen) > p_mask
    mask[0] = False  # every negative masked out
    mask[1] = True  # none masked out
    return positive, negative, mask


def _reference(positive, negative, mask, temperature, tau_plus):
    """B2 of METHODS.md, one anchor at a time, in float64 python."""
    out = []
    for row in range(positive.shape[0]):
        pos = math.exp(float(positive[row]) / temperature)
        negs = [
            math.exp(float(negative[row, j]) / temperature)
            for j in range(negative.shape[1])
            if mask[row, j]
        ]
        n = len(negs)
        ng = max(
            (sum(negs) - n * tau_plus * pos) / (1 - tau_plus),
            n * math.exp(-1 / temperature),
        )
        out.append(-math.log(pos / (pos + ng)))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("tau_plus", [0.0, 0.05, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_matches_naive_loop(tau_plus, temperature, seed):
    positive, negative, mask = _inputs(seed)
    got = DCL(temperature=temperature, tau_plus=tau_plus)(positive, negative, mask)
    expected = _reference(positive, negative, mask, temperature, tau_plus)
    torch.testing.assert_close(got, expected)


def test_defaults_are_the_papers():
    positive, negative, mask = _inputs(4)
    got = DCL()(positive, negative, mask)
    torch.testing.assert_close(got, _reference(positive, negative, mask, 0.5, 0.1))


def test_the_clamp_applies_when_the_estimate_is_too_small():
    # a strong positive and weak negatives: the debiased sum goes negative
    positive = torch.tensor([1.0], dtype=torch.float64)
    negative = torch.tensor([[-1.0, -0.9, -0.95]], dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    got = DCL(temperature=0.5, tau_plus=0.5)(positive, negative, mask)
    pos, ng = math.exp(2.0), 3 * math.exp(-2.0)
    assert sum(math.exp(x / 0.5) for x in (-1.0, -0.9, -0.95)) - 3 * 0.5 * pos < 0
    expected = torch.tensor([-math.log(pos / (pos + ng))], dtype=torch.float64)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("temperature", [0.05, 0.5, 2.0])
def test_tau_plus_zero_is_infonce_on_cosines(temperature):
    """With τ⁺ = 0 and scores >= -1 the clamp never binds: plain InfoNCE."""
    positive, negative, mask = _inputs(8)
    got = DCL(temperature=temperature, tau_plus=0.0)(positive, negative, mask)
    expected = InfoNCE(temperature=temperature)(positive, negative, mask)
    torch.testing.assert_close(got, expected)


def test_zero_valid_negatives_give_zero_loss_and_zero_gradient():
    positive = torch.tensor([0.3, -0.2], requires_grad=True)
    negative = torch.tensor([[0.9, float("nan")], [float("inf"), 0.1]])
    negative.requires_grad_()
    mask = torch.zeros(2, 2, dtype=torch.bool)
    out = DCL()(positive, negative, mask)
    torch.testing.assert_close(out, torch.zeros(2))
    out.sum().backward()
    assert positive.grad is not None and negative.grad is not None
    assert bool((positive.grad == 0).all()) and bool((negative.grad == 0).all())


def test_extreme_scores_match_a_float64_reference():
    positive, negative, mask = _inputs(9)
    got = DCL()(positive.float() * 50, negative.float() * 50, mask)
    expected = _reference(positive * 50, negative * 50, mask, 0.5, 0.1)
    assert bool(torch.isfinite(got).all())
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4)


def test_gradients_match_autograd_on_the_formula():
    positive, negative, mask = _inputs(10)
    p1, n1 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    DCL(temperature=0.3, tau_plus=0.2)(p1, n1, mask).sum().backward()
    p2, n2 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    total = p2.sum() * 0
    for row in range(p2.shape[0]):
        pos = torch.exp(p2[row] / 0.3)
        negs = [torch.exp(n2[row, j] / 0.3) for j in range(11) if mask[row, j]]
        n = len(negs)
        if n == 0:
            continue
        estimate = (torch.stack(negs).sum() - n * 0.2 * pos) / 0.8
        ng = torch.clamp(estimate, min=n * math.exp(-1 / 0.3))
        total = total - torch.log(pos / (pos + ng))
    total.backward()
    torch.testing.assert_close(p1.grad, p2.grad)
    torch.testing.assert_close(n1.grad, n2.grad)


def test_in_batch_default_true():
    assert DCL.in_batch_default is True
    assert DCL(in_batch=False).in_batch is False


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": 0.0}, {"tau_plus": 1.0}, {"tau_plus": -0.1}],
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        DCL(**kwargs)


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.losses.get("dcl").cls is DCL
