"""CoSENT: contract plus a brute-force reference over every ordered pair."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract, make_scored_batch
from harness.types import ScoredBatch
from negbench_plugins.losses.cosent import CoSENT


class TestCoSENTContract(LossContract):
    loss_cls = CoSENT
    # with graded labels, lifting one positive past a higher-labelled one
    # costs more (test_lifting_a_low_label_positive_can_cost_more)
    monotone_in_positive = False


class TestCoSENTSoftContract(LossContract):
    loss_cls = CoSENT
    loss_kwargs = {"scale": 5.0, "in_batch": True}
    monotone_in_positive = False


def _batch(seed, *, b=6, k=5, p_mask=0.4, labels=True, signed=False):
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(b, generator=gen, dtype=torch.float64) * 2 - 1
    negative = torch.rand(b, k, generator=gen, dtype=torch.float64) * 2 - 1
    mask = torch.rand(b, k, generator=gen) > p_mask
    mask[0] = False
    mask[1] = True
    graded = torch.randint(0, 4, (b,), generator=gen).double()  # ties included
    if signed:
        graded = graded - 1.5
    return ScoredBatch(
        positive=positive,
        negative=negative,
        mask=mask,
        positive_labels=graded if labels else None,
    )


def _reference(batch, scale):
    items = []
    for row in range(batch.size):
        label = 1.0 if batch.positive_labels is None else batch.positive_labels[row]
        items.append((float(batch.positive[row]), float(label)))
        for j in range(batch.negative.shape[1]):
            if batch.mask[row, j]:
                items.append((float(batch.negative[row, j]), 0.0))
    total = 0.0
    for s_i, y_i in items:
        for s_j, y_j in items:
            if y_i > y_j:
                total += math.exp(scale * (s_j - s_i))
    return math.log(1 + total)


@pytest.mark.parametrize("scale", [1.0, 5.0, 20.0])
@pytest.mark.parametrize("labels", [True, False])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_matches_brute_force_over_pairs(scale, labels, signed, seed):
    batch = _batch(seed, labels=labels, signed=signed)
    got = CoSENT(scale=scale).forward_batch(batch)
    expected = torch.full((batch.size,), _reference(batch, scale), dtype=torch.float64)
    torch.testing.assert_close(got, expected)


def test_default_scale_is_20():
    batch = _batch(4)
    got = CoSENT().forward_batch(batch)
    torch.testing.assert_close(got[0], torch.tensor(_reference(batch, 20.0)).double())


def test_one_value_for_every_anchor_and_the_mean_is_it():
    batch = make_scored_batch(seed=5)
    out = CoSENT().forward_batch(batch)
    assert tuple(out.shape) == (batch.size,)
    assert bool((out == out[0]).all())
    torch.testing.assert_close(out.mean(), out[0])


def test_gradients_match_the_brute_force():
    batch = _batch(6, k=3)
    positive = batch.positive.clone().requires_grad_()
    negative = batch.negative.clone().requires_grad_()
    CoSENT(scale=3.0).forward_batch(
        replace(batch, positive=positive, negative=negative)
    ).mean().backward()
    p2, n2 = batch.positive.clone().requires_grad_(), batch.negative.clone()
    n2.requires_grad_()
    items = []
    for row in range(batch.size):
        items.append((p2[row], float(batch.positive_labels[row])))
        items += [(n2[row, j], 0.0) for j in range(3) if batch.mask[row, j]]
    total = p2.sum() * 0
    for s_i, y_i in items:
        for s_j, y_j in items:
            if y_i > y_j:
                total = total + torch.exp(3.0 * (s_j - s_i))
    torch.log(1 + total).backward()
    torch.testing.assert_close(positive.grad, p2.grad)
    torch.testing.assert_close(negative.grad, n2.grad)


def test_masked_negatives_and_non_finite_values_are_ignored():
    batch = _batch(7)
    dirty = replace(
        batch, negative=torch.where(batch.mask, batch.negative, float("nan"))
    )
    torch.testing.assert_close(
        CoSENT().forward_batch(dirty), CoSENT().forward_batch(batch)
    )


def test_no_pairs_gives_a_constant_zero():
    positive = torch.tensor([0.3, -0.2], requires_grad=True)
    negative = torch.tensor([[0.5], [0.1]], requires_grad=True)
    batch = ScoredBatch(
        positive=positive,
        negative=negative,
        mask=torch.zeros(2, 1, dtype=torch.bool),
        positive_labels=torch.tensor([2.0, 2.0]),
    )
    out = CoSENT().forward_batch(batch)
    torch.testing.assert_close(out, torch.zeros(2))
    assert not out.requires_grad  # a constant: the protocol skips the step


def test_lifting_every_positive_helps_but_one_can_hurt():
    positive = torch.tensor([0.6, 0.5], dtype=torch.float64)
    negative = torch.tensor([[0.0], [0.1]], dtype=torch.float64)
    batch = ScoredBatch(
        positive=positive,
        negative=negative,
        mask=torch.ones(2, 1, dtype=torch.bool),
        positive_labels=torch.tensor([5.0, 1.0], dtype=torch.float64),
    )
    loss = CoSENT()
    base = float(loss.forward_batch(batch)[0])
    shifted = replace(batch, positive=positive + 0.3)
    assert float(loss.forward_batch(shifted)[0]) < base
    # the label-1 pair overtakes the label-5 pair: the batch loss rises
    lifted = replace(batch, positive=torch.tensor([0.6, 0.9], dtype=torch.float64))
    assert float(loss.forward_batch(lifted)[0]) > base


def test_in_batch_default_false():
    assert CoSENT.in_batch_default is False
    assert CoSENT(in_batch=True).in_batch is True


def test_non_positive_scale_raises():
    with pytest.raises(ValueError, match="scale"):
        CoSENT(scale=0.0)


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.losses.get("cosent").cls is CoSENT
