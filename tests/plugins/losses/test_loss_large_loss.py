"""assume-negative, ll-r and ll-ct against the Large Loss Matters reference."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from harness.testing import LabelLossContract, make_label_batch
from negbench_plugins.losses.large_loss import (
    AssumeNegative,
    LargeLossCorrection,
    LargeLossRejection,
)


class TestAssumeNegativeContract(LabelLossContract):
    loss_cls = AssumeNegative


class TestLLRContract(LabelLossContract):
    loss_cls = LargeLossRejection
    loss_kwargs = {"delta": 0.05}


class TestLLCtContract(LabelLossContract):
    loss_cls = LargeLossCorrection
    loss_kwargs = {"delta": 0.05}


def reference_batch_loss(logits, label_vec, clean_rate, scheme):
    """``compute_batch_loss`` of snucml/LargeLossMatters (losses.py), transcribed
    for the LL-R / LL-Ct schemes (label_vec: 1 observed positive, 0 unobserved)."""
    batch_size, num_classes = logits.shape
    unobserved_mask = label_vec == 0
    loss_matrix = F.binary_cross_entropy_with_logits(
        logits, label_vec.clip(0), reduction="none"
    )
    corrected_loss_matrix = F.binary_cross_entropy_with_logits(
        logits, torch.logical_not(label_vec.clip(0)).float(), reduction="none"
    )
    if clean_rate == 1:
        final_loss_matrix = loss_matrix
    else:
        k = math.ceil(batch_size * num_classes * (1 - clean_rate))
        unobserved_loss = unobserved_mask.bool() * loss_matrix
        topk = torch.topk(unobserved_loss.flatten(), k)
        topk_lossvalue = topk.values[-1]
        if scheme == "LL-Ct":
            final_loss_matrix = torch.where(
                unobserved_loss < topk_lossvalue, loss_matrix, corrected_loss_matrix
            )
        else:
            zero_loss_matrix = torch.zeros_like(loss_matrix)
            final_loss_matrix = torch.where(
                unobserved_loss < topk_lossvalue, loss_matrix, zero_loss_matrix
            )
    return final_loss_matrix.mean()


def _full_partial(seed):
    batch = make_label_batch(seed=seed, batch_size=16, num_labels=20)
    view = replace(batch.labels, mask=torch.ones_like(batch.labels.mask))
    return replace(batch, labels=view), view


@pytest.mark.parametrize(
    ("cls", "scheme"), [(LargeLossRejection, "LL-R"), (LargeLossCorrection, "LL-Ct")]
)
@pytest.mark.parametrize("epoch", [0, 1, 4, 10])
def test_matches_the_reference_code(cls, scheme, epoch):
    batch, view = _full_partial(epoch)
    loss = cls(delta=0.02)
    ours = loss.forward_batch(replace(batch, labels=replace(view, epoch=epoch)))
    reference = reference_batch_loss(
        view.logits, view.targets, loss.clean_rate(epoch), scheme
    )
    assert float(ours.mean().detach()) == pytest.approx(
        float(reference.detach()), rel=1e-6
    )


def test_epoch_zero_is_assume_negative_and_rejection_lowers_the_loss():
    batch, view = _full_partial(3)
    batch = replace(batch, labels=replace(view, epoch=0))
    an = AssumeNegative().forward_batch(batch)
    assert torch.allclose(LargeLossRejection().forward_batch(batch), an)
    late = replace(batch, labels=replace(view, epoch=20))
    rejected = LargeLossRejection(delta=0.01).forward_batch(late)
    assert float(rejected.sum().detach()) < float(an.sum().detach())


def test_only_assumed_negatives_are_touched():
    batch, view = _full_partial(5)
    observed = replace(view, assumed=torch.zeros_like(view.assumed), epoch=30)
    full_labels = replace(batch, labels=observed)
    assert torch.allclose(
        LargeLossCorrection(delta=0.02).forward_batch(full_labels),
        AssumeNegative().forward_batch(full_labels),
    )


def test_weak_assume_negative_scales_assumed_entries():
    batch, view = _full_partial(6)
    weak = AssumeNegative(negative_weight=0.0).forward_batch(batch)
    bce = F.binary_cross_entropy_with_logits(
        view.logits, view.targets, reduction="none"
    )
    expected = (bce * view.targets).mean(dim=1)  # only the observed positives
    assert torch.allclose(weak, expected, atol=1e-6)
