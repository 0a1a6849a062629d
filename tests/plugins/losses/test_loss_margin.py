"""MarginRanking: contract plus a naive per-negative hinge reference."""

from __future__ import annotations

import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract
from negbench_plugins.losses.margin import MarginRanking


class TestMarginContract(LossContract):
    loss_cls = MarginRanking


class TestMarginWideContract(LossContract):
    loss_cls = MarginRanking
    loss_kwargs = {"margin": 1.0, "in_batch": True}


def _inputs(seed, b=7, k=11, p_mask=0.4):
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(b, generator=gen, dtype=torch.float64) * 2 - 1
    negative = torch.rand(b, k, generator=gen, dtype=torch.float64) * 2 - 1
    mask = torch.rand(b, k, generator=gen) > p_mask
    mask[0] = False  # every negative masked out
    mask[1] = True  # none masked out
    return positive, negative, mask


def _reference(positive, negative, mask, margin):
    out = []
    for row in range(positive.shape[0]):
        terms = [
            max(0.0, margin - float(positive[row]) + float(negative[row, j]))
            for j in range(negative.shape[1])
            if mask[row, j]
        ]
        out.append(sum(terms) / len(terms) if terms else 0.0)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("margin", [0.0, 0.2, 0.5, 1.0, 2.5])
@pytest.mark.parametrize("seed", range(4))
def test_matches_naive_loop(margin, seed):
    positive, negative, mask = _inputs(seed)
    got = MarginRanking(margin=margin)(positive, negative, mask)
    torch.testing.assert_close(got, _reference(positive, negative, mask, margin))


def test_default_margin_is_02():
    positive, negative, mask = _inputs(5)
    got = MarginRanking()(positive, negative, mask)
    torch.testing.assert_close(got, _reference(positive, negative, mask, 0.2))


def test_all_masked_row_gives_zero():
    positive = torch.tensor([0.1, -0.5])
    negative = torch.tensor([[0.9, 0.8, 0.7], [0.2, 0.3, 0.4]])
    mask = torch.zeros(2, 3, dtype=torch.bool)
    out = MarginRanking(margin=1.0)(positive, negative, mask)
    torch.testing.assert_close(out, torch.zeros(2))


def test_hand_computed_example():
    positive = torch.tensor([0.5])
    negative = torch.tensor([[0.6, 0.1, 0.45, -1.0]])
    mask = torch.tensor([[True, True, True, False]])
    # hinges: 0.2-0.5+0.6=0.3, 0.2-0.5+0.1=0 (clipped), 0.2-0.5+0.45=0.15
    out = MarginRanking(margin=0.2)(positive, negative, mask)
    torch.testing.assert_close(out, torch.tensor([0.15]))


def test_in_batch_default_false_and_overridable():
    assert MarginRanking.in_batch_default is False
    assert MarginRanking().in_batch is False
    assert MarginRanking(in_batch=True).in_batch is True


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_masked_non_finite_negatives_are_ignored(bad):
    positive = torch.tensor([0.5])
    negative = torch.tensor([[0.6, bad]])
    mask = torch.tensor([[True, False]])
    out = MarginRanking(margin=0.2)(positive, negative, mask)
    torch.testing.assert_close(out, torch.tensor([0.3]))


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert "margin" in host.registries.losses
    assert host.registries.losses.get("margin").cls is MarginRanking
