"""bce, focal and asl against their reference implementations."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from harness.testing import LabelLossContract, make_label_batch
from negbench_plugins.losses.asl import ASL, BCE, Focal, asymmetric_loss


class TestBCEContract(LabelLossContract):
    loss_cls = BCE


class TestFocalContract(LabelLossContract):
    loss_cls = Focal


class TestASLContract(LabelLossContract):
    loss_cls = ASL


def official_asl(x, y, gamma_neg=4, gamma_pos=1, clip=0.05, *, eps=1e-8, detach=True):
    """``AsymmetricLoss.forward`` of Alibaba-MIIL/ASL (src/loss_functions/losses.py),
    transcribed line by line."""
    x_sigmoid = torch.sigmoid(x)
    xs_pos = x_sigmoid
    xs_neg = 1 - x_sigmoid
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    los_pos = y * torch.log(xs_pos.clamp(min=eps))
    los_neg = (1 - y) * torch.log(xs_neg.clamp(min=eps))
    loss = los_pos + los_neg
    if gamma_neg > 0 or gamma_pos > 0:
        if detach:
            torch.set_grad_enabled(False)
        pt0 = xs_pos * y
        pt1 = xs_neg * (1 - y)
        pt = pt0 + pt1
        one_sided_gamma = gamma_pos * y + gamma_neg * (1 - y)
        one_sided_w = torch.pow(1 - pt, one_sided_gamma)
        if detach:
            torch.set_grad_enabled(True)
        loss *= one_sided_w
    return -loss.sum()


def torchvision_focal(inputs, targets, alpha=0.25, gamma=2.0):
    """``torchvision.ops.sigmoid_focal_loss`` (reduction "none"), transcribed."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


def _full(seed=0):
    batch = make_label_batch(seed=seed, partial=False)
    assert batch.labels is not None
    labels = replace(batch.labels, mask=torch.ones_like(batch.labels.mask))
    return replace(batch, labels=labels), labels


@pytest.mark.parametrize(
    ("gamma_neg", "gamma_pos", "clip", "detach"),
    [(4, 0, 0.05, True), (4, 1, 0.05, True), (2, 1, 0.0, False), (0, 0, 0.0, True)],
)
def test_asl_equals_the_official_code_value_and_gradient(
    gamma_neg, gamma_pos, clip, detach
):
    batch, labels = _full()
    ours = ASL(
        gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, detach_focus=detach
    ).forward_batch(batch)
    ours.sum().backward()
    our_grad = labels.logits.grad.clone()
    logits = labels.logits.detach().clone().requires_grad_()
    reference = official_asl(
        logits, labels.targets, gamma_neg, gamma_pos, clip, detach=detach
    )
    reference.backward()
    assert float(ours.sum().detach()) == pytest.approx(
        float(reference.detach()), rel=1e-6
    )
    assert torch.allclose(our_grad, logits.grad, atol=1e-6)


def test_focal_equals_torchvision():
    batch, labels = _full(1)
    expected = torchvision_focal(labels.logits, labels.targets).sum(dim=1)
    assert torch.allclose(Focal().forward_batch(batch), expected, atol=1e-6)
    no_alpha = Focal(alpha=None).forward_batch(batch)
    assert torch.allclose(
        no_alpha,
        torchvision_focal(labels.logits, labels.targets, alpha=-1).sum(dim=1),
        atol=1e-6,
    )


def test_bce_equals_torch_and_asl_without_focusing():
    batch, labels = _full(2)
    expected = F.binary_cross_entropy_with_logits(
        labels.logits, labels.targets, reduction="none"
    ).sum(dim=1)
    assert torch.allclose(BCE().forward_batch(batch), expected, atol=1e-6)
    plain = ASL(gamma_neg=0, gamma_pos=0, clip=0).forward_batch(batch)
    assert torch.allclose(plain, expected, atol=1e-5)


def test_asl_clip_discards_easy_negatives():
    # a negative with p < clip contributes exactly nothing
    logits = torch.tensor([[-6.0, 3.0]])
    targets = torch.tensor([[0.0, 1.0]])
    loss = asymmetric_loss(
        logits, targets, gamma_neg=4, gamma_pos=0, clip=0.05, detach_focus=True
    )
    assert float(loss[0, 0].detach()) == 0.0
    assert float(loss[0, 1].detach()) > 0.0


def test_label_losses_refuse_a_batch_without_the_label_view():
    from harness.testing import make_scored_batch

    with pytest.raises(ValueError, match="multi-label view"):
        ASL().forward_batch(make_scored_batch())
