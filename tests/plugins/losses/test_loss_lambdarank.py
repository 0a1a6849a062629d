"""LambdaRank (ADORE): contract plus a naive rank-and-weight reference."""

from __future__ import annotations

import math

import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract
from negbench_plugins.losses.lambdarank import LambdaRank, reciprocal_ranks


class TestLambdaRankContract(LossContract):
    loss_cls = LambdaRank


class TestLambdaRankNoCutContract(LossContract):
    loss_cls = LambdaRank
    loss_kwargs = {"metric_cut": None, "scale": 5.0, "in_batch": True}


class TestLambdaRankShortCutContract(LossContract):
    loss_cls = LambdaRank
    loss_kwargs = {"metric_cut": 3, "scale": 1.0}


def _inputs(seed, b=7, k=11, p_mask=0.4):
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(b, generator=gen, dtype=torch.float64) * 2 - 1
    negative = torch.rand(b, k, generator=gen, dtype=torch.float64) * 2 - 1
    mask = torch.rand(b, k, generator=gen) > p_mask
    mask[0] = False  # every negative masked out
    mask[1] = True  # none masked out
    return positive, negative, mask


def _naive_inverse_ranks(scores, metric_cut):
    """scores: list of (score, column); column 0 is the positive."""
    # descending score; ties to the lower column (the positive first)
    order = sorted(scores, key=lambda item: (-item[0], item[1]))
    inverse = {}
    for rank, (_, column) in enumerate(order, start=1):
        cut = metric_cut is not None and rank > metric_cut
        inverse[column] = 0.0 if cut else 1.0 / rank
    return inverse


def _reference(positive, negative, mask, scale, metric_cut):
    out = []
    for row in range(positive.shape[0]):
        s_pos = float(positive[row])
        valid = [j for j in range(negative.shape[1]) if mask[row, j]]
        scores = [(s_pos, 0)] + [(float(negative[row, j]), j + 1) for j in valid]
        inverse = _naive_inverse_ranks(scores, metric_cut)
        terms = []
        for j in valid:
            s_j = float(negative[row, j])
            cost = math.log(1 + math.exp(-scale * (s_pos - s_j)))
            weight = abs(inverse[0] - inverse[j + 1])
            terms.append(weight * cost)
        out.append(sum(terms) / len(terms) if terms else 0.0)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("metric_cut", [None, 1, 3, 10])
@pytest.mark.parametrize("scale", [1.0, 20.0])
@pytest.mark.parametrize("seed", range(3))
def test_matches_naive_loop(metric_cut, scale, seed):
    positive, negative, mask = _inputs(seed)
    got = LambdaRank(scale=scale, metric_cut=metric_cut)(positive, negative, mask)
    expected = _reference(positive, negative, mask, scale, metric_cut)
    torch.testing.assert_close(got, expected)


def test_defaults_are_scale_20_and_mrr_at_10():
    positive, negative, mask = _inputs(5, k=15, p_mask=0.1)
    got = LambdaRank()(positive, negative, mask)
    torch.testing.assert_close(got, _reference(positive, negative, mask, 20.0, 10))


def test_hand_computed_example():
    # ranks: n0 0.9 -> 1, positive 0.5 -> 2, n1 0.1 -> 3, n2 (masked) ignored
    positive = torch.tensor([0.5], dtype=torch.float64)
    negative = torch.tensor([[0.9, 0.1, 0.95]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    out = LambdaRank(scale=1.0, metric_cut=None)(positive, negative, mask)
    c0 = math.log1p(math.exp(0.4))
    c1 = math.log1p(math.exp(-0.4))
    expected = (abs(1 / 2 - 1) * c0 + abs(1 / 2 - 1 / 3) * c1) / 2
    torch.testing.assert_close(out, torch.tensor([expected], dtype=torch.float64))


def test_pairs_beyond_the_cut_get_no_weight():
    # positive ranks 4th, the last negative 5th; with cut 3 both have 1/rank = 0
    positive = torch.tensor([0.0])
    negative = torch.tensor([[0.9, 0.8, 0.7, -0.5]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    neg = negative.clone().requires_grad_()
    LambdaRank(metric_cut=3)(positive, neg, mask).sum().backward()
    assert neg.grad is not None
    assert float(neg.grad[0, 3]) == 0.0
    assert bool((neg.grad[0, :3] > 0).all())


def test_ties_rank_the_positive_first():
    scores = torch.tensor([[0.3, 0.3, 0.7, 0.3]])
    valid = torch.tensor([[True, True, True, False]])
    inverse = reciprocal_ranks(scores, valid, None)
    torch.testing.assert_close(inverse, torch.tensor([[1 / 2, 1 / 3, 1.0, 0.0]]))


def test_weights_are_detached():
    positive, negative, mask = _inputs(7)
    p1, n1 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    LambdaRank(scale=2.0, metric_cut=5)(p1, n1, mask).sum().backward()
    # reference gradient: the weights are python floats, constants by nature
    p2, n2 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    total = p2.sum() * 0
    for row in range(p2.shape[0]):
        valid = [j for j in range(n2.shape[1]) if mask[row, j]]
        scores = [(float(positive[row]), 0)]
        scores += [(float(negative[row, j]), j + 1) for j in valid]
        inverse = _naive_inverse_ranks(scores, 5)
        for j in valid:
            weight = abs(inverse[0] - inverse[j + 1])
            cost = torch.nn.functional.softplus(2.0 * (n2[row, j] - p2[row]))
            total = total + weight * cost / len(valid)
    total.backward()
    torch.testing.assert_close(p1.grad, p2.grad)
    torch.testing.assert_close(n1.grad, n2.grad)


def test_all_masked_row_gives_zero_and_masked_non_finite_are_ignored():
    positive = torch.tensor([0.1, 0.5])
    negative = torch.tensor([[0.9, 0.8], [0.2, float("nan")]])
    mask = torch.tensor([[False, False], [True, False]])
    out = LambdaRank(scale=1.0)(positive, negative, mask)
    # row 2: positive rank 1, negative rank 2 -> weight 1/2
    expected = 0.5 * math.log1p(math.exp(-0.3))
    torch.testing.assert_close(out, torch.tensor([0.0, expected]))


def test_a_better_positive_can_cost_more_at_low_scale():
    """The weights follow the ranks: lifting the positive from 3rd to 1st
    raises every weight |1/rank+ - 1/rank_j| more than the costs fall."""
    positive = torch.tensor([0.5])
    negative = torch.tensor([[0.6, 0.55, 0.45]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss = LambdaRank(scale=1.0, metric_cut=None)
    assert float(loss(positive + 0.1, negative, mask)) > float(
        loss(positive, negative, mask)
    )
    sharp = LambdaRank(metric_cut=None)  # scale 20: the costs win
    assert float(sharp(positive + 0.1, negative, mask)) < float(
        sharp(positive, negative, mask)
    )


def test_in_batch_default_false():
    assert LambdaRank.in_batch_default is False
    assert LambdaRank(in_batch=True).in_batch is True


@pytest.mark.parametrize("kwargs", [{"scale": 0.0}, {"metric_cut": 0}])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        LambdaRank(**kwargs)


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.losses.get("lambdarank").cls is LambdaRank
