"""softplus / nssa / hasa: contracts and references (PyKEEN, the formulas)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch

from harness.testing import LossContract, make_scored_batch
from negbench_plugins.losses.hasa import HaSaLoss
from negbench_plugins.losses.kge_pointwise import NSSA, Softplus


class TestSoftplusContract(LossContract):
    loss_cls = Softplus


class TestNSSAContract(LossContract):
    loss_cls = NSSA


class TestNSSAUniformContract(LossContract):
    loss_cls = NSSA
    loss_kwargs = {"adversarial_temperature": 0.0, "margin": 2.0}


class TestHaSaContract(LossContract):
    loss_cls = HaSaLoss


class TestHaSaQuirkContract(LossContract):
    loss_cls = HaSaLoss
    loss_kwargs = {"n_scale": 500.0, "tau_plus": 0.3}


def _scores(seed: int = 0, b: int = 9, k: int = 7):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, generator=gen) * 3, torch.randn(b, k, generator=gen) * 3


def test_nssa_and_softplus_match_pykeen() -> None:
    from pykeen import losses

    logging.getLogger("pykeen").setLevel(logging.ERROR)
    positive, negative = _scores()
    mask = torch.ones_like(negative, dtype=torch.bool)
    ours = NSSA(margin=9.0, adversarial_temperature=1.0)(positive, negative, mask)
    theirs = losses.NSSALoss(margin=9.0, adversarial_temperature=1.0)
    reference = theirs.process_slcwa_scores(positive[:, None], negative)
    assert float(ours.mean()) == pytest.approx(float(reference), rel=1e-5)
    ours = Softplus()(positive, negative, mask)
    reference = losses.SoftplusLoss().process_slcwa_scores(positive[:, None], negative)
    assert float(ours.mean()) == pytest.approx(float(reference), rel=1e-5)


def test_nssa_weights_are_detached_and_masked() -> None:
    positive, negative = _scores(1)
    negative.requires_grad_()
    mask = torch.rand(negative.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    NSSA()(positive, negative, mask).sum().backward()
    weights = torch.softmax(negative.detach().masked_fill(~mask, -torch.inf), dim=1)
    # d/ds_j of -½ p_j log σ(-(γ+s_j)) with p detached = ½ p_j σ(γ+s_j)
    expected = 0.5 * weights.nan_to_num(0) * torch.sigmoid(9.0 + negative.detach())
    torch.testing.assert_close(negative.grad, expected.masked_fill(~mask, 0.0))


def test_hasa_matches_its_formula() -> None:
    batch = make_scored_batch(seed=3)
    loss = HaSaLoss(tau_plus=0.2, temperature=0.5, margin=1.0)
    got = loss.forward_batch(batch).detach()
    for row in range(batch.size):
        mask, sus = batch.mask[row], batch.suspected[row] & batch.mask[row]
        neg = mask & ~sus
        p = batch.negative[row].detach() / 0.5
        pos = batch.positive[row].detach() / 0.5 - 1.0
        w = torch.softmax(p[neg] / p[neg].norm(), 0)
        de1 = (w * p[neg].exp()).sum()
        de2 = (
            0.2 * (torch.softmax(p[sus] / p[sus].norm(), 0) * p[sus].exp()).sum()
            if sus.any()
            else 0.0
        )
        n = int(neg.sum())
        expected = -torch.log(pos.exp() / (pos.exp() + n / 0.8 * max(de1 - de2, 0)))
        assert float(got[row]) == pytest.approx(float(expected), rel=1e-5)


def test_hasa_without_suspects_is_weighted_infonce() -> None:
    batch = make_scored_batch(seed=4)
    batch = replace(batch, suspected=torch.zeros_like(batch.mask))
    got = HaSaLoss(margin=0.0, tau_plus=0.0).forward_batch(batch)
    assert bool((got > 0).all())
    # raising the positive lowers the loss
    better = HaSaLoss(margin=0.0, tau_plus=0.0).forward_batch(
        replace(batch, positive=batch.positive + 1.0)
    )
    assert bool((better < got).all())
