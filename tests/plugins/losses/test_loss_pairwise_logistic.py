"""PairwiseLogistic (STAR): contract plus a naive per-pair softplus reference."""

from __future__ import annotations

import math

import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract
from negbench_plugins.losses.pairwise_logistic import PairwiseLogistic


class TestPairwiseLogisticContract(LossContract):
    loss_cls = PairwiseLogistic


class TestPairwiseLogisticRawContract(LossContract):
    loss_cls = PairwiseLogistic
    loss_kwargs = {"scale": 1.0, "in_batch": False}


def _inputs(seed, b=7, k=11, p_mask=0.4):
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(b, generator=gen, dtype=torch.float64) * 2 - 1
    negative = torch.rand(b, k, generator=gen, dtype=torch.float64) * 2 - 1
    mask = torch.rand(b, k, generator=gen) > p_mask
    mask[0] = False  # every negative masked out
    mask[1] = True  # none masked out
    return positive, negative, mask


def _reference(positive, negative, mask, scale):
    out = []
    for row in range(positive.shape[0]):
        terms = [
            math.log1p(
                math.exp(scale * (float(negative[row, j]) - float(positive[row])))
            )
            for j in range(negative.shape[1])
            if mask[row, j]
        ]
        out.append(sum(terms) / len(terms) if terms else 0.0)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("scale", [0.5, 1.0, 5.0, 20.0])
@pytest.mark.parametrize("seed", range(4))
def test_matches_naive_loop(scale, seed):
    positive, negative, mask = _inputs(seed)
    got = PairwiseLogistic(scale=scale)(positive, negative, mask)
    torch.testing.assert_close(got, _reference(positive, negative, mask, scale))


def test_default_scale_is_20():
    positive, negative, mask = _inputs(5)
    got = PairwiseLogistic()(positive, negative, mask)
    torch.testing.assert_close(got, _reference(positive, negative, mask, 20.0))


def test_each_pair_is_a_two_way_softmax_cross_entropy():
    positive = torch.tensor([0.4], dtype=torch.float64)
    negative = torch.tensor([[0.1, 0.6]], dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.bool)
    got = PairwiseLogistic(scale=1.0)(positive, negative, mask)
    ce = [-math.log(math.exp(0.4) / (math.exp(0.4) + math.exp(s))) for s in (0.1, 0.6)]
    torch.testing.assert_close(got, torch.tensor([sum(ce) / 2], dtype=torch.float64))


def test_gradients_match_the_reference():
    positive, negative, mask = _inputs(6)
    p1, n1 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    PairwiseLogistic(scale=3.0)(p1, n1, mask).sum().backward()
    p2, n2 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    out = []
    for row in range(p2.shape[0]):
        terms = [
            torch.nn.functional.softplus(3.0 * (n2[row, j] - p2[row]))
            for j in range(n2.shape[1])
            if mask[row, j]
        ]
        out.append(torch.stack(terms).mean() if terms else p2[row] * 0)
    torch.stack(out).sum().backward()
    torch.testing.assert_close(p1.grad, p2.grad)
    torch.testing.assert_close(n1.grad, n2.grad)
    assert bool((n1.grad[~mask] == 0).all())


def test_all_masked_row_gives_zero():
    positive = torch.tensor([0.1, -0.5])
    negative = torch.tensor([[0.9, 0.8], [0.2, 0.3]])
    mask = torch.zeros(2, 2, dtype=torch.bool)
    out = PairwiseLogistic()(positive, negative, mask)
    torch.testing.assert_close(out, torch.zeros(2))


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_masked_non_finite_negatives_are_ignored(bad):
    positive = torch.tensor([0.5], dtype=torch.float64)
    negative = torch.tensor([[0.6, bad]], dtype=torch.float64)
    mask = torch.tensor([[True, False]])
    out = PairwiseLogistic(scale=2.0)(positive, negative, mask)
    torch.testing.assert_close(
        out, torch.tensor([math.log1p(math.exp(0.2))], dtype=torch.float64)
    )


def test_extreme_margins_stay_finite_and_exact():
    positive = torch.tensor([-50.0, 50.0])
    negative = torch.tensor([[50.0], [-50.0]])
    mask = torch.ones(2, 1, dtype=torch.bool)
    out = PairwiseLogistic()(positive, negative, mask)
    torch.testing.assert_close(out, torch.tensor([2000.0, 0.0]))


def test_in_batch_default_true_and_overridable():
    assert PairwiseLogistic.in_batch_default is True
    assert PairwiseLogistic(in_batch=False).in_batch is False


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_non_positive_scale_raises(scale):
    with pytest.raises(ValueError, match="scale"):
        PairwiseLogistic(scale=scale)


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.losses.get("pairwise-logistic").cls is PairwiseLogistic
    assert PairwiseLogistic.families == frozenset({"retrieval", "sts"})
