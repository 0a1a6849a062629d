"""dice: the JDT semimetric equals soft Dice on hard labels and is 0 at x = y."""

from __future__ import annotations

import pytest
import torch

from harness.testing import LabelLossContract, make_label_batch
from negbench_plugins.losses.dice import DiceSemimetric, jdt_loss


class TestDiceContract(LabelLossContract):
    loss_cls = DiceSemimetric


class TestPureDiceContract(LabelLossContract):
    loss_cls = DiceSemimetric
    loss_kwargs = {"bce_weight": 0.0, "label_smoothing": 0.1}


def soft_dice(x, y, smooth):
    """The soft Dice loss (Milletari et al. 2016 with p = 1)."""
    return 1 - (2 * (x * y).sum(1) + smooth) / (x.sum(1) + y.sum(1) + smooth)


def _probabilities(seed, shape=(5, 9)):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen, dtype=torch.float64)


def test_equals_soft_dice_on_hard_labels():
    x = _probabilities(0)
    y = (_probabilities(1) > 0.6).double()
    mask = torch.ones_like(y, dtype=torch.bool)
    # equal without smoothing, as the paper's unit test states (float64 round-off)
    assert torch.allclose(
        jdt_loss(x, y, mask, smooth=0.0), soft_dice(x, y, 0.0), rtol=0, atol=1e-12
    )
    # JDT's s enters numerator and denominator once: soft Dice's 2s
    assert torch.allclose(jdt_loss(x, y, mask, smooth=1.0), soft_dice(x, y, 2.0))


def test_is_a_semimetric_on_soft_labels():
    x, y = _probabilities(2), _probabilities(3)
    mask = torch.ones_like(x, dtype=torch.bool)
    assert torch.allclose(
        jdt_loss(y, y, mask, smooth=0.0), torch.zeros(5, dtype=torch.float64)
    )
    assert bool((soft_dice(y, y, 0.0) > 0.01).all())  # soft Dice is not
    assert torch.allclose(jdt_loss(x, y, mask), jdt_loss(y, x, mask))
    assert bool((jdt_loss(x, y, mask) > 0).all())


def test_jaccard_and_masked_columns():
    x = _probabilities(4)
    y = (_probabilities(5) > 0.5).double()
    mask = torch.ones_like(y, dtype=torch.bool)
    tp = (x * y).sum(1)
    jaccard = 1 - tp / (x.sum(1) + y.sum(1) - tp)
    ours = jdt_loss(x, y, mask, alpha=1.0, beta=1.0, smooth=0.0)
    assert torch.allclose(ours, jaccard)
    half = mask.clone()
    half[:, 5:] = False
    assert torch.allclose(
        jdt_loss(x, y, half, smooth=0.0), soft_dice(x[:, :5], y[:, :5], 0.0)
    )


def test_default_mixes_averaged_bce():
    batch = make_label_batch(seed=6, partial=False)
    view = batch.labels
    both = DiceSemimetric().forward_batch(batch)
    dice = DiceSemimetric(bce_weight=0.0).forward_batch(batch)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        view.logits, view.targets, reduction="none"
    )
    weight = view.mask.float()
    bce = (bce * weight).sum(1) / weight.sum(1)
    assert torch.allclose(both, 0.25 * bce + 0.75 * dice, atol=1e-6)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        DiceSemimetric(p=3)
    with pytest.raises(ValueError):
        DiceSemimetric(bce_weight=2.0)
