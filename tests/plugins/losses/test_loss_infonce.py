"""InfoNCE: contract plus a per-row cross-entropy reference."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract, make_scored_batch
from negbench_plugins.losses.infonce import InfoNCE


class TestInfoNCEContract(LossContract):
    loss_cls = InfoNCE


class TestInfoNCEWarmContract(LossContract):
    loss_cls = InfoNCE
    loss_kwargs = {"temperature": 1.0, "in_batch": False}


class TestInfoNCESymmetricContract(LossContract):
    loss_cls = InfoNCE
    loss_kwargs = {"symmetric": True}


class TestInfoNCESymmetricWarmContract(LossContract):
    loss_cls = InfoNCE
    loss_kwargs = {"symmetric": True, "temperature": 0.5, "in_batch": False}


def _inputs(seed, b=7, k=11, p_mask=0.4, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(b, generator=gen, dtype=dtype) * 2 - 1
    negative = torch.rand(b, k, generator=gen, dtype=dtype) * 2 - 1
    mask = torch.rand(b, k, generator=gen) > p_mask
    mask[0] = False  # a row with every negative masked out
    mask[1] = True  # a row with none masked out
    return positive, negative, mask


def _reference(positive, negative, mask, temperature):
    out = []
    for row in range(positive.shape[0]):
        negs = [negative[row, j] for j in range(negative.shape[1]) if mask[row, j]]
        logits = torch.stack([positive[row], *negs]) / temperature
        target = torch.zeros((), dtype=torch.long)
        out.append(F.cross_entropy(logits[None], target[None]))
    return torch.stack(out)


@pytest.mark.parametrize("temperature", [0.05, 0.2, 1.0, 3.0])
@pytest.mark.parametrize("seed", range(4))
def test_matches_per_row_cross_entropy(temperature, seed):
    positive, negative, mask = _inputs(seed)
    got = InfoNCE(temperature=temperature)(positive, negative, mask)
    expected = _reference(positive, negative, mask, temperature)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_default_temperature_is_005():
    positive, negative, mask = _inputs(5)
    got = InfoNCE()(positive, negative, mask)
    torch.testing.assert_close(got, _reference(positive, negative, mask, 0.05))


def test_gradients_match_the_reference():
    positive, negative, mask = _inputs(6)
    p1, n1 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    p2, n2 = positive.clone().requires_grad_(), negative.clone().requires_grad_()
    InfoNCE(temperature=0.1)(p1, n1, mask).sum().backward()
    _reference(p2, n2, mask, 0.1).sum().backward()
    torch.testing.assert_close(p1.grad, p2.grad)
    torch.testing.assert_close(n1.grad, n2.grad)
    assert bool((n1.grad[~mask] == 0).all())


def test_all_masked_row_gives_zero():
    positive = torch.tensor([0.3, -0.4])
    negative = torch.tensor([[0.9, 0.8], [0.1, 0.2]])
    mask = torch.zeros(2, 2, dtype=torch.bool)
    out = InfoNCE()(positive, negative, mask)
    torch.testing.assert_close(out, torch.zeros(2))


def test_masked_non_finite_negatives_are_ignored():
    positive = torch.tensor([0.5, 0.1])
    negative = torch.tensor([[0.2, float("inf")], [float("nan"), -0.3]])
    mask = torch.tensor([[True, False], [False, True]])
    out = InfoNCE(temperature=0.5)(positive, negative, mask)
    clean = torch.where(mask, negative, torch.zeros(()))
    expected = _reference(positive.double(), clean.double(), mask, 0.5).float()
    torch.testing.assert_close(out, expected)


def test_in_batch_default_true_and_overridable():
    assert InfoNCE.in_batch_default is True
    assert InfoNCE().in_batch is True
    assert InfoNCE(in_batch=False).in_batch is False
    assert InfoNCE(in_batch=True).in_batch is True


@pytest.mark.parametrize("temperature", [0.0, -0.05, -1.0])
def test_non_positive_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        InfoNCE(temperature=temperature)


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert "infonce" in host.registries.losses
    assert host.registries.losses.get("infonce").cls is InfoNCE


def _symmetric_reference(batch, temperature):
    """Per anchor: mean of the q->d cross-entropy over its columns and the
    d->q cross-entropy of its positive over the batch's anchors."""
    anchors = batch.anchor_embeddings.detach().double()
    positives = batch.positive_embeddings.detach().double()
    forward = _reference(
        batch.positive.detach().double(),
        batch.negative.detach().double(),
        batch.mask,
        temperature,
    )
    out = []
    for i in range(batch.size):
        logits = (
            torch.stack([positives[i] @ anchors[j] for j in range(batch.size)])
            / temperature
        )
        backward = F.cross_entropy(logits[None], torch.tensor([i]))
        out.append((forward[i] + backward) / 2)
    return torch.stack(out)


@pytest.mark.parametrize("temperature", [0.05, 0.5, 2.0])
@pytest.mark.parametrize("seed", range(3))
def test_symmetric_matches_per_row_reference(temperature, seed):
    batch = make_scored_batch(seed=seed)
    got = InfoNCE(temperature=temperature, symmetric=True).forward_batch(batch)
    expected = _symmetric_reference(batch, temperature)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


def test_symmetric_gradients_reach_both_sides():
    batch = make_scored_batch(seed=7)
    InfoNCE(symmetric=True).forward_batch(batch).mean().backward()
    assert batch.positive_embeddings is not None
    assert batch.positive_embeddings.grad is not None
    assert float(batch.positive_embeddings.grad.abs().sum()) > 0


def test_symmetric_off_keeps_forward_unchanged():
    batch = make_scored_batch(seed=8)
    plain = InfoNCE().forward_batch(batch)
    assert torch.equal(plain, InfoNCE()(batch.positive, batch.negative, batch.mask))
    assert InfoNCE().symmetric is False


def test_symmetric_single_anchor_has_a_zero_backward_term():
    batch = make_scored_batch(batch_size=1)
    got = InfoNCE(symmetric=True).forward_batch(batch)
    forward = InfoNCE()(batch.positive, batch.negative, batch.mask)
    torch.testing.assert_close(got, forward / 2)


def test_symmetric_needs_embeddings():
    batch = replace(make_scored_batch(), anchor_embeddings=None)
    with pytest.raises(ValueError, match="embeddings"):
        InfoNCE(symmetric=True).forward_batch(batch)
