"""W-MSE: contract, a loop-by-loop whitening reference, and the collapse point."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import LossContract, make_scored_batch
from harness.types import ScoredBatch
from negbench_plugins.losses.wmse import WMSE, whiten_batch


class TestWMSEContract(LossContract):
    loss_cls = WMSE
    loss_kwargs = {"dim": 4}  # the contract batch has 6 rows of width 8
    monotone_in_positive = False  # it ignores the scores


class TestWMSEPlainContract(LossContract):
    loss_cls = WMSE
    loss_kwargs = {"dim": 3, "norm": False, "eps": 0.1}
    monotone_in_positive = False


class TestWMSESubBatchContract(LossContract):
    loss_cls = WMSE
    # sub-batches of 3 rows in 4 dims: the shrinkage fallback at work
    loss_kwargs = {"dim": 4, "w_size": 3, "w_iter": 2}
    monotone_in_positive = False

    def make_loss(self):
        return self.loss_cls(**self.loss_kwargs).eval()  # fixed partitions


def _embeddings(seed, b=12, width=10, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(b, width, generator=gen, dtype=dtype)
    p = a + 0.5 * torch.randn(b, width, generator=gen, dtype=dtype)
    return a / a.norm(dim=1, keepdim=True), p / p.norm(dim=1, keepdim=True)


def _scored(anchors, positives):
    b = anchors.shape[0]
    return ScoredBatch(
        positive=(anchors * positives).sum(-1),
        negative=torch.zeros(b, 0, dtype=anchors.dtype),
        mask=torch.zeros(b, 0, dtype=torch.bool),
        anchor_embeddings=anchors,
        positive_embeddings=positives,
    )


def _naive_whiten(h, eps):
    """Covariance, Cholesky and forward substitution, one entry at a time."""
    n, d = len(h), len(h[0])
    mean = [sum(h[i][k] for i in range(n)) / n for k in range(d)]
    c = [[h[i][k] - mean[k] for k in range(d)] for i in range(n)]
    cov = [
        [
            (1 - eps) * sum(c[i][r] * c[i][s] for i in range(n)) / (n - 1)
            + (eps if r == s else 0.0)
            for s in range(d)
        ]
        for r in range(d)
    ]
    chol = [[0.0] * d for _ in range(d)]
    for r in range(d):
        for s in range(r + 1):
            acc = sum(chol[r][k] * chol[s][k] for k in range(s))
            if r == s:
                chol[r][r] = math.sqrt(cov[r][r] - acc)
            else:
                chol[r][s] = (cov[r][s] - acc) / chol[s][s]
    out = []
    for i in range(n):
        z = [0.0] * d
        for r in range(d):
            z[r] = (c[i][r] - sum(chol[r][k] * z[k] for k in range(r))) / chol[r][r]
        out.append(z)
    return out


def _naive_loss(za, zb, norm):
    out = []
    for a, b in zip(za, zb, strict=True):
        if norm:
            na = math.sqrt(sum(x * x for x in a))
            nb = math.sqrt(sum(x * x for x in b))
            out.append(
                2 - 2 * sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)
            )
        else:
            out.append(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) / len(a))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("eps", [0.0, 0.05])
@pytest.mark.parametrize("seed", range(3))
def test_matches_a_naive_whitening_loop(norm, eps, seed):
    anchors, positives = _embeddings(seed)
    loss = WMSE(dim=5, eps=eps, norm=norm)
    got = loss.forward_batch(_scored(anchors, positives))
    assert loss.projection is not None
    h_a = (anchors @ loss.projection).tolist()
    h_b = (positives @ loss.projection).tolist()
    expected = _naive_loss(_naive_whiten(h_a, eps), _naive_whiten(h_b, eps), norm)
    torch.testing.assert_close(got, expected)


def test_whitened_views_have_identity_covariance():
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(50, 6, generator=gen, dtype=torch.float64) @ torch.randn(
        6, 6, generator=gen, dtype=torch.float64
    )
    z = whiten_batch(h)
    torch.testing.assert_close(z.mean(0), torch.zeros(6, dtype=torch.float64))
    cov = (z - z.mean(0)).T @ (z - z.mean(0)) / 49
    torch.testing.assert_close(cov, torch.eye(6, dtype=torch.float64))


def test_the_projection_is_a_fixed_orthonormal_buffer():
    anchors, positives = _embeddings(2)
    first, second = WMSE(dim=4), WMSE(dim=4)
    first.forward_batch(_scored(anchors, positives))
    second.forward_batch(_scored(*_embeddings(3)))
    assert first.projection is not None and second.projection is not None
    assert torch.equal(first.projection, second.projection)  # seed 0, any data
    gram = first.projection.T @ first.projection
    torch.testing.assert_close(gram, torch.eye(4, dtype=torch.float64))
    assert "projection" in dict(first.named_buffers())
    assert list(first.parameters()) == []


def test_collapse_is_a_minimum_only_without_whitening():
    """The point of W-MSE: plain MSE between views is minimised by mapping
    everything to one vector; whitening blows the leftover view noise up to
    unit variance, so a collapsed encoder pays about 2 per pair."""
    gen = torch.Generator().manual_seed(4)
    vector = torch.randn(10, generator=gen, dtype=torch.float64)
    anchors = vector + 1e-4 * torch.randn(64, 10, generator=gen, dtype=torch.float64)
    positives = vector + 1e-4 * torch.randn(64, 10, generator=gen, dtype=torch.float64)
    batch = _scored(anchors, positives)
    plain = WMSE(dim=4, whiten=False).forward_batch(batch)
    assert float(plain.max()) < 1e-6
    whitened = WMSE(dim=4).forward_batch(batch)
    assert float(whitened.mean()) > 1.5
    # aligned, spread-out views do reach zero with whitening
    spread, _ = _embeddings(5, b=40)
    aligned = WMSE(dim=4).forward_batch(_scored(spread, spread.clone()))
    torch.testing.assert_close(aligned, torch.zeros(40, dtype=torch.float64))


def test_exactly_collapsed_embeddings_do_not_crash():
    vector = torch.randn(10, generator=torch.Generator().manual_seed(4))
    collapsed = (vector / vector.norm()).expand(12, -1).clone().requires_grad_()
    out = WMSE(dim=4).forward_batch(_scored(collapsed, collapsed.detach().clone()))
    assert bool(torch.isfinite(out).all())
    out.mean().backward()
    assert collapsed.grad is not None and bool(torch.isfinite(collapsed.grad).all())


def test_negatives_are_ignored_entirely():
    batch = make_scored_batch(seed=6)
    loss = WMSE(dim=4)
    before = loss.forward_batch(batch)
    assert batch.negative_embeddings is not None
    scrambled = replace(
        batch,
        negative=torch.full_like(batch.negative, float("nan")),
        mask=~batch.mask,
        suspected=None,
        negative_embeddings=torch.full_like(batch.negative_embeddings, float("inf")),
        positive=batch.positive + 3.0,
    )
    assert torch.equal(before, loss.forward_batch(scrambled))
    assert WMSE.needs_negatives is False
    assert WMSE.in_batch_default is False


@pytest.mark.parametrize("rows", [1, 2, 3, 4])
def test_small_batches_fall_back_to_shrinkage(rows):
    anchors, positives = _embeddings(7, b=rows)
    a = anchors.float().requires_grad_()
    out = WMSE(dim=4).forward_batch(_scored(a, positives.float()))
    assert tuple(out.shape) == (rows,)
    assert bool(torch.isfinite(out).all())
    out.mean().backward()
    assert a.grad is not None and bool(torch.isfinite(a.grad).all())


def test_small_batch_matches_the_reference_with_eps_1e_3():
    anchors, positives = _embeddings(8, b=4)
    loss = WMSE(dim=4)
    got = loss.forward_batch(_scored(anchors, positives))
    assert loss.projection is not None
    h_a = (anchors @ loss.projection).tolist()
    h_b = (positives @ loss.projection).tolist()
    expected = _naive_loss(_naive_whiten(h_a, 1e-3), _naive_whiten(h_b, 1e-3), True)
    torch.testing.assert_close(got, expected)


def test_sub_batches_use_the_same_partition_for_both_views():
    anchors, _ = _embeddings(9, b=40)
    loss = WMSE(dim=4, w_size=10, w_iter=3)  # training mode: random partitions
    out = loss.forward_batch(_scored(anchors, anchors.clone()))
    torch.testing.assert_close(out, torch.zeros(40, dtype=torch.float64))


def test_sub_batches_whiten_within_each_group():
    anchors, positives = _embeddings(10, b=24)
    loss = WMSE(dim=3, w_size=8).eval()
    got = loss.forward_batch(_scored(anchors, positives))
    groups = loss._groups(24, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(groups).tolist()) == list(range(24))
    assert [len(g) for g in groups] == [8, 8, 8]
    assert loss.projection is not None
    expected = torch.empty(24, dtype=torch.float64)
    for rows in groups:
        h_a = (anchors[rows] @ loss.projection).tolist()
        h_b = (positives[rows] @ loss.projection).tolist()
        expected[rows] = _naive_loss(_naive_whiten(h_a, 0), _naive_whiten(h_b, 0), True)
    torch.testing.assert_close(got, expected)


def test_a_short_remainder_joins_the_last_sub_batch():
    groups = WMSE(w_size=8)._groups(21, torch.Generator().manual_seed(0))
    assert [len(g) for g in groups] == [8, 13]


def test_eval_mode_is_pure_and_training_mode_redraws_partitions():
    anchors, positives = _embeddings(11, b=30)
    batch = _scored(anchors, positives)
    loss = WMSE(dim=3, w_size=10).eval()
    once = loss.forward_batch(batch)
    assert torch.equal(once, loss.forward_batch(batch))
    # w_iter averages over different partitions, also in eval mode
    twice = WMSE(dim=3, w_size=10, w_iter=2).eval().forward_batch(batch)
    assert not torch.equal(once, twice)
    loss.train()
    first, second = loss.forward_batch(batch), loss.forward_batch(batch)
    assert not torch.equal(first, second)


def test_missing_embeddings_raise():
    batch = replace(make_scored_batch(), positive_embeddings=None)
    with pytest.raises(ValueError, match="embeddings"):
        WMSE(dim=4).forward_batch(batch)


@pytest.mark.parametrize(
    "kwargs", [{"dim": 0}, {"eps": 1.5}, {"w_size": 1}, {"w_iter": 0}]
)
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        WMSE(**kwargs)


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.losses.get("w-mse").cls is WMSE
