"""CET: contract (eval mode), a naive weighted-pair reference, the S step,
and the direction of the inverse-propensity weights."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract, make_context, make_scored_batch
from harness.types import ScoredBatch
from negbench_plugins.losses.cet import CET, inverse_propensity


class TestCETContract(LossContract):
    loss_cls = CET

    def make_loss(self):
        # a training-mode call steps S, so repeated calls would differ
        return self.loss_cls(**self.loss_kwargs).eval()


class TestCETScriptContract(LossContract):
    loss_cls = CET
    loss_kwargs = {"debias_ratio": 10.0, "scale": 5.0, "in_batch": True}

    def make_loss(self):
        return self.loss_cls(**self.loss_kwargs).eval()


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _reference(batch, debias_ratio, scale, adapter=None):
    """Per anchor: mean over valid j of w_R * log(1 + e^{scale (s_j - s+)}),
    w_R = 1 / (1 - sigmoid(scale * S(q, d_j) / T)), S the cosine after the adapter."""

    def encode(x):
        x = x.detach().double()
        if adapter is not None:
            x = x + x @ adapter.T
        return x / x.norm()

    out = []
    for row in range(batch.size):
        q = encode(batch.anchor_embeddings[row])
        s_pos = float(batch.positive[row].detach())
        terms = []
        for j in range(batch.negative.shape[1]):
            if not batch.mask[row, j]:
                continue
            d = encode(batch.negative_embeddings[row, j])
            selection = float(q @ d)
            w_r = 1 / (1 - _sigmoid(scale * selection / debias_ratio))
            s_j = float(batch.negative[row, j].detach())
            terms.append(w_r * math.log1p(math.exp(scale * (s_j - s_pos))))
        out.append(sum(terms) / len(terms) if terms else 0.0)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("debias_ratio", [0.5, 2.0, 10.0])
@pytest.mark.parametrize("scale", [1.0, 20.0])
@pytest.mark.parametrize("seed", range(3))
def test_matches_naive_loop_in_eval_mode(debias_ratio, scale, seed):
    batch = make_scored_batch(seed=seed)
    loss = CET(debias_ratio=debias_ratio, scale=scale).eval()
    got = loss.forward_batch(batch)
    expected = _reference(batch, debias_ratio, scale)
    # weights reach e^(scale/T) = e^40: float32 keeps ~1e-3 relative there
    torch.testing.assert_close(got.double(), expected, rtol=2e-3, atol=1e-5)


def test_matches_naive_loop_with_a_trained_adapter():
    batch = make_scored_batch(seed=5)
    loss = CET()
    loss.forward_batch(batch)  # training mode: one S step
    assert loss.adapter is not None
    weight = loss.adapter.weight.detach().double()
    got = loss.eval().forward_batch(batch)
    expected = _reference(batch, 2.0, 20.0, adapter=weight)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


def test_inverse_propensity_is_the_formula():
    scores = torch.linspace(-3, 3, 13, dtype=torch.float64)
    for ratio in (0.5, 2.0, 10.0):
        expected = torch.tensor(
            [1 / (1 - _sigmoid(float(s) / ratio)) for s in scores], dtype=torch.float64
        )
        torch.testing.assert_close(inverse_propensity(scores, ratio), expected)
    assert bool(torch.isfinite(inverse_propensity(torch.tensor([1e6]), 1.0)).all())


def _two_negatives(selection_cosines, relevance=(0.3, 0.3)):
    """One anchor, two negatives with equal relevance scores but chosen
    cosines (= S's scores while A = 0) to the anchor."""
    q = torch.tensor([1.0, 0.0, 0.0])
    columns = []
    for c in selection_cosines:
        columns.append(torch.tensor([c, math.sqrt(1 - c * c), 0.0]))
    negative = torch.tensor([list(relevance)], requires_grad=True)
    batch = ScoredBatch(
        positive=torch.tensor([0.5]),
        negative=negative,
        mask=torch.ones(1, 2, dtype=torch.bool),
        anchor_embeddings=q[None],
        positive_embeddings=torch.tensor([[0.0, 0.0, 1.0]]),
        negative_embeddings=torch.stack(columns)[None],
    )
    return batch, negative


def test_w_r_trusts_negatives_that_s_thinks_were_judged():
    """w_R = 1/(1 - sigmoid(S/T)) grows with S: a negative the selection model
    scores as likely selected for judging (so likely a true negative) weighs
    more in the relevance loss than one S thinks was never judged (a possible
    false negative), at equal relevance scores."""
    batch, negative = _two_negatives((0.9, -0.9))
    loss = CET().eval()
    loss.forward_batch(batch).sum().backward()
    assert negative.grad is not None
    judged, unjudged = negative.grad[0].tolist()
    assert judged > unjudged > 0
    ratio = (1 + math.exp(20 * 0.9 / 2)) / (1 + math.exp(-20 * 0.9 / 2))
    assert judged / unjudged == pytest.approx(ratio, rel=1e-5)
    # and the weights carry no gradient back to the embeddings' side of S
    assert loss.adapter is not None and loss.adapter.weight.grad is None


def test_w_s_follows_the_relevance_scores():
    """S's loss weighs pairs by w_S = 1/(1 - sigmoid(R/T)): checked exactly by
    swapping S's optimiser for plain SGD (lr 1) and comparing the step with
    autograd on the formula."""
    batch = make_scored_batch(seed=7)
    loss = CET(debias_ratio=2.0)
    loss.eval().forward_batch(batch)  # creates S (A = 0) without a step
    assert loss.adapter is not None
    loss.train()
    loss._optimizer = torch.optim.SGD(loss.adapter.parameters(), lr=1.0)
    weight = torch.zeros_like(loss.adapter.weight, dtype=torch.float64)
    weight.requires_grad_()
    total = weight.sum() * 0
    for row in range(batch.size):

        def encode(x):
            x = x.detach().double()
            x = x + weight @ x
            return x / x.norm()

        q = encode(batch.anchor_embeddings[row])
        s_pos = q @ encode(batch.positive_embeddings[row])
        terms = []
        for j in range(batch.negative.shape[1]):
            if batch.mask[row, j]:
                s_j = q @ encode(batch.negative_embeddings[row, j])
                r_j = float(batch.negative[row, j].detach())
                w_s = 1 / (1 - _sigmoid(20.0 * r_j / 2.0))
                terms.append(w_s * F.softplus(20.0 * (s_j - s_pos)))
        total = total + torch.stack(terms).mean() / batch.size
    total.backward()
    loss.forward_batch(batch)
    step = -loss.adapter.weight.detach().double()
    torch.testing.assert_close(step, weight.grad, rtol=1e-4, atol=1e-6)


def test_a_training_call_steps_s_and_returns_the_pre_step_loss():
    batch = make_scored_batch(seed=8)
    reference = CET().eval().forward_batch(batch)
    loss = CET()
    assert loss.training
    first = loss.forward_batch(batch)
    torch.testing.assert_close(first, reference)  # w_R from S before its step
    assert loss.adapter is not None
    after_one = loss.adapter.weight.detach().clone()
    assert float(after_one.abs().max()) > 0  # A moved off zero
    loss.forward_batch(batch)
    assert not torch.equal(loss.adapter.weight.detach(), after_one)


def test_s_learns_its_own_ranking():
    batch = make_scored_batch(seed=9, batch_size=16, dim=8)
    loss = CET(lr=1e-2)

    def s_loss():
        with torch.no_grad():
            s_pos, s_neg = loss.selection_scores(
                batch.anchor_embeddings,
                batch.positive_embeddings,
                batch.negative_embeddings,
            )
            w_s = inverse_propensity(20.0 * batch.negative, 2.0)
            return float(loss._pairwise(s_pos, s_neg, w_s, batch.mask).mean())

    loss.eval().forward_batch(batch)
    before = s_loss()
    loss.train()
    for _ in range(30):
        loss.forward_batch(batch)
    assert s_loss() < before


def test_no_step_in_eval_mode_or_without_grad():
    batch = make_scored_batch(seed=10)
    loss = CET().eval()
    loss.forward_batch(batch)
    assert loss.adapter is not None
    assert float(loss.adapter.weight.detach().abs().max()) == 0.0
    loss.train()
    with torch.no_grad():
        out = loss.forward_batch(batch)
    assert float(loss.adapter.weight.detach().abs().max()) == 0.0
    assert not out.requires_grad


def test_the_relevance_loss_reaches_only_the_run_model():
    batch = make_scored_batch(seed=11)
    loss = CET()
    value = loss.forward_batch(batch)
    assert loss.adapter is not None and loss.adapter.weight.grad is None
    value.mean().backward()
    assert loss.adapter.weight.grad is None  # w_R is a constant for R's loss
    assert batch.anchor_embeddings is not None
    assert batch.anchor_embeddings.grad is not None
    # S saw detached embeddings: its step left no gradient on the batch's
    # negative embeddings (only the relevance scores carry one)
    assert batch.negative_embeddings is not None
    assert batch.negative_embeddings.grad is not None
    grad_from_scores = batch.negative_embeddings.grad.clone()
    fresh = make_scored_batch(seed=11)
    CET().eval().forward_batch(fresh).mean().backward()
    assert fresh.negative_embeddings is not None
    torch.testing.assert_close(grad_from_scores, fresh.negative_embeddings.grad)


def test_training_mode_passes_the_harness_checks():
    loss = CET()
    context = make_context(loss=loss)
    value = context.compute_loss(make_scored_batch(seed=12))
    assert value.ndim == 0 and bool(torch.isfinite(value))
    assert (
        loss.adapter is not None and float(loss.adapter.weight.detach().abs().max()) > 0
    )


def test_missing_negative_embeddings_raise():
    batch = replace(make_scored_batch(), negative_embeddings=None)
    with pytest.raises(ValueError, match="negative_embeddings"):
        CET().eval().forward_batch(batch)


def test_class_metadata():
    assert CET.needs_negative_embeddings is True
    assert CET.in_batch_default is False
    assert CET().debias_ratio == 2.0


@pytest.mark.parametrize(
    "kwargs", [{"debias_ratio": 0.0}, {"scale": -1.0}, {"lr": 0.0}]
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        CET(**kwargs)


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.losses.get("cet").cls is CET
