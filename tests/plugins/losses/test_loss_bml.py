"""BML (ClusterNS): contract plus naive InfoNCE + margin references."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract, make_scored_batch
from harness.types import ScoredBatch
from negbench_plugins.losses.bml import BML
from negbench_plugins.losses.infonce import InfoNCE


class TestBMLContract(LossContract):
    loss_cls = BML


class TestBMLQuirkContract(LossContract):
    loss_cls = BML
    loss_kwargs = {"quirk_constant": True, "alpha": 0.2, "beta": 0.5}


class TestBMLDropContract(LossContract):
    loss_cls = BML
    loss_kwargs = {"drop_suspected": True, "bml_weight": 0.1, "in_batch": False}


class TestBMLHeavyContract(LossContract):
    loss_cls = BML
    loss_kwargs = {"bml_weight": 10.0, "beta": 0.1}
    # BML pulls a false negative back towards the positive once the gap
    # exceeds beta, so with a heavy weight a better positive can cost more.
    monotone_in_positive = False


def _batch(seed, b=7, k=11, p_mask=0.4, p_suspect=0.4):
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(b, generator=gen, dtype=torch.float64) * 2 - 1
    negative = torch.rand(b, k, generator=gen, dtype=torch.float64) * 2 - 1
    mask = torch.rand(b, k, generator=gen) > p_mask
    mask[0] = False  # every negative masked out
    mask[1] = True  # none masked out
    # suspicions on masked columns too: they must be ignored
    suspected = torch.rand(b, k, generator=gen) < p_suspect
    suspected[2] = False  # a row with no suspects
    return ScoredBatch(
        positive=positive, negative=negative, mask=mask, suspected=suspected
    )


def _reference(batch, *, temperature, weight, alpha, beta, quirk, drop):
    out = []
    for row in range(batch.size):
        s_pos = float(batch.positive[row])
        valid = [j for j in range(batch.negative.shape[1]) if batch.mask[row, j]]
        flagged = [j for j in valid if batch.suspected[row, j]]
        denominator = [j for j in valid if not (drop and j in flagged)]
        logits = [s_pos / temperature] + [
            float(batch.negative[row, j]) / temperature for j in denominator
        ]
        top = max(logits)
        nce = top + math.log(sum(math.exp(x - top) for x in logits)) - logits[0]

        def band(x):
            return max(0.0, x + alpha) + max(0.0, -x - beta)

        if quirk:
            entries = [band(0.0)]  # the positive's own entry
            for j in valid:
                x = float(batch.negative[row, j]) - s_pos
                entries.append(band(x if j in flagged else 0.0))
            margin = sum(entries) / len(entries)
        else:
            terms = [band(float(batch.negative[row, j]) - s_pos) for j in flagged]
            margin = sum(terms) / len(terms) if terms else 0.0
        out.append(nce + weight * margin)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize(
    ("alpha", "beta"), [(0.0, 0.3), (0.2, 0.5), (0.1, 0.1), (-0.1, 0.3)]
)
@pytest.mark.parametrize("quirk", [False, True])
@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_matches_naive_loop(alpha, beta, quirk, drop, seed):
    batch = _batch(seed)
    loss = BML(
        temperature=0.1,
        bml_weight=0.7,
        alpha=alpha,
        beta=beta,
        quirk_constant=quirk,
        drop_suspected=drop,
    )
    expected = _reference(
        batch,
        temperature=0.1,
        weight=0.7,
        alpha=alpha,
        beta=beta,
        quirk=quirk,
        drop=drop,
    )
    torch.testing.assert_close(loss.forward_batch(batch), expected)


def test_defaults_are_the_bert_row():
    batch = _batch(4)
    expected = _reference(
        batch,
        temperature=0.05,
        weight=1e-3,
        alpha=0.0,
        beta=0.3,
        quirk=False,
        drop=False,
    )
    torch.testing.assert_close(BML().forward_batch(batch), expected)


def test_without_suspicions_it_is_infonce():
    batch = _batch(5)
    infonce = InfoNCE(temperature=0.05)(batch.positive, batch.negative, batch.mask)
    for unflagged in (
        replace(batch, suspected=None),
        replace(batch, suspected=torch.zeros_like(batch.mask)),
    ):
        torch.testing.assert_close(BML().forward_batch(unflagged), infonce)
    torch.testing.assert_close(BML(bml_weight=0.0).forward_batch(batch), infonce)


def test_the_band_is_free_and_both_sides_cost():
    # x = s_fn - s+ = -0.4 / -0.1 / -0.9 with alpha 0.2, beta 0.5
    positive = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    negative = torch.tensor([[0.1], [0.4], [-0.4]], dtype=torch.float64)
    mask = torch.ones(3, 1, dtype=torch.bool)
    batch = ScoredBatch(
        positive=positive, negative=negative, mask=mask, suspected=mask.clone()
    )
    loss = BML(alpha=0.2, beta=0.5, bml_weight=1.0)
    nce = InfoNCE(temperature=0.05)(positive, negative, mask)
    margin = loss.forward_batch(batch) - nce
    torch.testing.assert_close(
        margin, torch.tensor([0.0, 0.1, 0.4], dtype=torch.float64)
    )


def test_quirk_dilutes_the_margin_by_the_column_count():
    batch = _batch(6)
    nce = InfoNCE(temperature=0.05)(batch.positive, batch.negative, batch.mask)
    paper = BML(bml_weight=1.0).forward_batch(batch) - nce
    quirk = BML(bml_weight=1.0, quirk_constant=True).forward_batch(batch) - nce
    flagged = (batch.suspected & batch.mask).sum(1).double()
    columns = 1 + batch.mask.sum(1).double()
    # alpha = 0 and beta > 0: unflagged entries add nothing, only dilute
    torch.testing.assert_close(quirk, paper * flagged / columns)


def test_quirk_adds_the_constant_alpha_of_unflagged_entries():
    batch = _batch(7)
    batch = replace(batch, suspected=torch.zeros_like(batch.mask))
    nce = InfoNCE(temperature=0.05)(batch.positive, batch.negative, batch.mask)
    quirk = BML(bml_weight=1.0, alpha=0.2, quirk_constant=True).forward_batch(batch)
    torch.testing.assert_close(quirk - nce, torch.full_like(nce, 0.2))


def test_suspected_columns_stay_in_the_denominator_unless_dropped():
    positive = torch.tensor([0.5], dtype=torch.float64)
    negative = torch.tensor([[0.45, 0.0]], dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.bool)
    suspected = torch.tensor([[True, False]])
    batch = ScoredBatch(
        positive=positive, negative=negative, mask=mask, suspected=suspected
    )
    kept = BML(bml_weight=0.0).forward_batch(batch)
    dropped = BML(bml_weight=0.0, drop_suspected=True).forward_batch(batch)
    torch.testing.assert_close(kept, InfoNCE()(positive, negative, mask))
    torch.testing.assert_close(dropped, InfoNCE()(positive, negative, ~suspected))


def test_gradients_match_the_reference():
    batch = make_scored_batch(seed=8)
    loss = BML(bml_weight=0.5, alpha=0.1, beta=0.2)
    positive = batch.positive.detach().double().requires_grad_()
    negative = batch.negative.detach().double().requires_grad_()
    loss.forward_batch(
        replace(batch, positive=positive, negative=negative)
    ).sum().backward()
    p2 = batch.positive.detach().double().requires_grad_()
    n2 = batch.negative.detach().double().requires_grad_()
    total = p2.sum() * 0
    for row in range(batch.size):
        valid = [j for j in range(n2.shape[1]) if batch.mask[row, j]]
        flagged = [j for j in valid if batch.suspected[row, j]]
        logits = torch.cat([p2[row : row + 1], n2[row, valid]]) / 0.05
        total = total + torch.logsumexp(logits, 0) - logits[0]
        if flagged:
            x = n2[row, flagged] - p2[row]
            band = torch.relu(x + 0.1) + torch.relu(-x - 0.2)
            total = total + 0.5 * band.mean()
    total.backward()
    torch.testing.assert_close(positive.grad, p2.grad)
    torch.testing.assert_close(negative.grad, n2.grad)


def test_a_better_positive_can_cost_more_with_a_heavy_weight():
    # one suspected column already beta below the positive: lifting the
    # positive widens the gap beyond beta, and BML outweighs InfoNCE's gain
    positive = torch.tensor([0.5], dtype=torch.float64)
    negative = torch.tensor([[0.4, -0.9]], dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.bool)
    batch = ScoredBatch(
        positive=positive,
        negative=negative,
        mask=mask,
        suspected=torch.tensor([[True, False]]),
    )
    loss = BML(bml_weight=10.0, beta=0.1)
    lifted = replace(batch, positive=positive + 0.5)
    assert float(loss.forward_batch(lifted)) > float(loss.forward_batch(batch))


def test_in_batch_default_true():
    assert BML.in_batch_default is True
    assert BML(in_batch=False).in_batch is False


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"bml_weight": -1.0}])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        BML(**kwargs)


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.losses.get("bml").cls is BML
