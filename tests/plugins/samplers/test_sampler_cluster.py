"""ClusterNS: contract, trigger, initialisation, update and suspicions.

METHODS.md §3 and djz233/ClusterNS ``kmeans_cluster``: start once the batch's
mean cosine falls to ``start_cosine``; initialise by a greedy farthest chain;
move the centroids that received anchors by ``lr * sum + (1 - lr) * c``; the
2nd-nearest centroid is each anchor's hard negative; in-batch columns in the
anchor's cluster are suspected false negatives.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from toy_text import ToyEncoder, toy_data

import harness.testing
from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch, make_context
from harness.types import Negatives
from negbench_plugins.losses.infonce import InfoNCE
from negbench_plugins.samplers.cluster import ClusterNS
from negbench_plugins.tasks.contrastive import ContrastiveProtocol

DIM = 8


def unit(*shape, seed=0):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=-1, keepdim=True)


def with_embeddings(batch, seed=0):
    """The contract's batch plus the embeddings a ``needs_embeddings`` sampler gets."""
    return replace(
        batch,
        anchor_embeddings=unit(batch.size, DIM, seed=seed + 100),
        candidate_embeddings=unit(batch.size, batch.num_candidates, DIM, seed=seed),
        positive_embeddings=unit(batch.size, DIM, seed=seed + 200),
    )


class TestClusterNotStartedContract(SamplerContract):
    sampler_cls = ClusterNS


class TestClusterStartedContract(SamplerContract):
    """The same checks once the centroids exist (every answer carries vectors)."""

    sampler_cls = ClusterNS
    sampler_kwargs = {"clusters": 4, "start_cosine": 2.0}

    @pytest.fixture(autouse=True)
    def _batches_with_embeddings(self, monkeypatch):
        original = harness.testing.make_candidate_batch

        def make(**kwargs):
            return with_embeddings(original(**kwargs), seed=kwargs.get("seed", 0))

        monkeypatch.setattr(harness.testing, "make_candidate_batch", make)

    def make_sampler(self):
        sampler = super().make_sampler()
        anchors, columns = unit(8, DIM, seed=1), unit(8, 8, DIM, seed=2)
        assert sampler.suspect(anchors, columns) is None  # starts
        assert sampler.suspect(anchors, columns) is not None  # first update
        return sampler

    def test_answers_carry_centroid_vectors(self):
        batch = harness.testing.make_candidate_batch(seed=1)
        answer = self.make_sampler().sample(batch, 0, torch.Generator())
        assert isinstance(answer, Negatives)
        assert answer.vectors.shape == (batch.size, batch.size, DIM)


def test_class_attributes():
    assert ClusterNS.needs_embeddings is True
    assert ClusterNS.in_batch_negatives is True
    assert ClusterNS.refresh is None
    assert ClusterNS.freeze_candidates is False
    assert {"retrieval", "sts"} <= ClusterNS.families
    assert [ClusterNS().num_negatives(r) for r in (0, 2, 9)] == [0, 0, 0]


# -- naive references ------------------------------------------------------------


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def _nearest(point, centroids, skip=0):
    """Index of the (skip+1)-th most similar centroid, by plain loops."""
    sims = [(_cos(point, c), j) for j, c in enumerate(centroids)]
    ranked = sorted(sims, key=lambda t: -t[0])
    return ranked[skip][1]


def _chain(points, first, k):
    chosen = [first]
    while len(chosen) < k:
        last = chosen[-1]
        others = [j for j in range(len(points)) if j not in chosen]
        chosen.append(min(others, key=lambda j: _cos(points[last], points[j])))
    return chosen


def _momentum(centroids, points, lr):
    out = [c.clone() for c in centroids]
    for j in range(len(centroids)):
        members = [p for p in points if _nearest(p, centroids) == j]
        if members:
            out[j] = lr * torch.stack(members).sum(0) + (1 - lr) * centroids[j]
    return out


# -- trigger and initialisation ---------------------------------------------------


def test_does_not_start_above_the_threshold():
    sampler = ClusterNS(start_cosine=-0.5)
    anchors, columns = unit(6, DIM, seed=3), unit(6, 6, DIM, seed=4)
    for _ in range(3):
        assert sampler.suspect(anchors, columns) is None
    assert not sampler.started
    out = sampler.sample(
        with_embeddings(make_candidate_batch(batch_size=6)), 0, torch.Generator()
    )
    assert isinstance(out, torch.Tensor) and out.shape == (6, 0)
    assert sampler.diagnostics() == {"started": 0.0, "clusters": 0.0}


@pytest.mark.parametrize("trigger", ["batch", "paired"])
def test_trigger_cosine_matches_naive_mean(trigger):
    sampler = ClusterNS(trigger=trigger)
    anchors, columns = unit(5, DIM, seed=5), unit(5, 7, DIM, seed=6)
    if trigger == "batch":
        pairs = [(i, m) for i in range(5) for m in range(7)]
    else:
        pairs = [(i, i) for i in range(5)]
    expected = sum(_cos(anchors[i], columns[i, m]) for i, m in pairs) / len(pairs)
    assert sampler.trigger_cosine(anchors, columns) == pytest.approx(expected, abs=1e-6)


def test_starts_when_the_mean_cosine_falls_to_the_threshold():
    anchors = unit(6, DIM, seed=7)
    close = anchors[:, None, :].expand(6, 6, DIM)  # mean cosine 1
    spread = unit(6, 6, DIM, seed=8)
    sampler = ClusterNS(start_cosine=0.4)
    assert sampler.suspect(anchors, close) is None
    assert not sampler.started
    assert sampler.trigger_cosine(anchors, spread) <= 0.4
    assert sampler.suspect(anchors, spread) is None  # the starting step only inits
    assert sampler.started
    assert sampler.diagnostics()["start_step"] == 1.0
    assert sampler.suspect(anchors, spread) is not None


def test_start_cosine_of_one_starts_at_once():
    sampler = ClusterNS(start_cosine=1.0)
    anchors = unit(4, DIM, seed=9)
    sampler.suspect(anchors, anchors[:, None, :].expand(4, 4, DIM))
    assert sampler.started and sampler.started_at == 0


def test_a_single_anchor_does_not_start():
    sampler = ClusterNS(start_cosine=2.0)
    assert sampler.suspect(unit(1, DIM), unit(1, 1, DIM)) is None
    assert not sampler.started
    sampler.suspect(unit(2, DIM), unit(2, 2, DIM))
    assert sampler.started and sampler.diagnostics()["clusters"] == 2.0


@pytest.mark.parametrize(("clusters", "points"), [(3, 10), (10, 10), (128, 6)])
def test_initialisation_is_a_greedy_farthest_chain(clusters, points):
    anchors = unit(points, DIM, seed=10)
    sampler = ClusterNS(clusters=clusters, start_cosine=2.0)
    batch = with_embeddings(make_candidate_batch(batch_size=points))
    sampler.sample(batch, 0, torch.Generator().manual_seed(5))  # hands over the RNG
    sampler.suspect(anchors, unit(points, 3, DIM, seed=11))
    first = int(torch.randint(points, (1,), generator=torch.Generator().manual_seed(5)))
    chosen = _chain(anchors, first, min(clusters, points))
    assert torch.equal(sampler.centroids, anchors[chosen])
    assert sampler.diagnostics()["clusters"] == min(clusters, points)


# -- update, suspicions, centroid negatives -----------------------------------------


def _started(clusters=3, lr=1e-3, seed=12, points=9):
    sampler = ClusterNS(clusters=clusters, start_cosine=2.0, kmeans_lr=lr)
    sampler.suspect(unit(points, DIM, seed=seed), unit(points, 2, DIM, seed=seed + 1))
    return sampler


@pytest.mark.parametrize("lr", [1e-3, 0.1, 1.0])
def test_momentum_update_over_the_sum(lr):
    sampler = _started(lr=lr)
    before = [c.clone() for c in sampler.centroids]
    anchors = unit(9, DIM, seed=20) * 3.0  # not unit: the sum, not the mean, counts
    sampler.suspect(anchors, unit(9, 9, DIM, seed=21))
    expected = _momentum(before, list(anchors), lr)
    assert torch.allclose(sampler.centroids, torch.stack(expected), atol=1e-6)
    # at least one centroid got no anchors in some draws; it must not move
    for j, c in enumerate(before):
        if not any(_nearest(p, before) == j for p in anchors):
            assert torch.equal(sampler.centroids[j], c)


def test_suspected_mask_is_same_cluster_membership():
    sampler = _started(clusters=4)
    anchors, columns = unit(6, DIM, seed=30), unit(6, 10, DIM, seed=31)
    flagged = sampler.suspect(anchors, columns)
    assert flagged.dtype == torch.bool and flagged.shape == (6, 10)
    centroids = list(sampler.centroids)  # after this step's update
    for i in range(6):
        mine = _nearest(anchors[i], centroids)
        for m in range(10):
            assert bool(flagged[i, m]) == (_nearest(columns[i, m], centroids) == mine)
    assert 0.0 < sampler.diagnostics()["suspected_fraction"] < 1.0


def test_a_copy_of_the_anchor_is_always_suspected():
    sampler = _started(clusters=4)
    anchors = unit(5, DIM, seed=32)
    flagged = sampler.suspect(anchors, anchors[:, None, :].expand(5, 3, DIM))
    assert bool(flagged.all())


def test_centroid_negatives_are_the_second_nearest():
    sampler = _started(clusters=5)
    batch = with_embeddings(make_candidate_batch(batch_size=6), seed=40)
    answer = sampler.sample(batch, 0, torch.Generator().manual_seed(0))
    assert isinstance(answer, Negatives)
    assert answer.positions.shape == (6, 0) and answer.positions.dtype == torch.long
    assert answer.suspected is None
    vectors = answer.vectors
    assert vectors.shape == (6, 6, DIM) and not vectors.requires_grad
    centroids = list(sampler.centroids)
    for j in range(6):
        second = _nearest(batch.anchor_embeddings[j], centroids, skip=1)
        target = centroids[second] / centroids[second].norm()
        for i in range(6):  # every anchor sees every anchor's centroid negative
            assert torch.allclose(vectors[i, j], target, atol=1e-6)


def test_passes_the_harness_checks_once_started():
    sampler = _started()
    context = make_context(sampler=sampler)
    batch = with_embeddings(make_candidate_batch(batch_size=5))
    answer = context.sample_negatives(batch, 0)
    assert answer.vectors.shape == (5, 5, DIM)


def test_started_sampler_needs_embeddings():
    with pytest.raises(ValueError, match="anchor_embeddings"):
        _started().sample(make_candidate_batch(), 0, torch.Generator())


@pytest.mark.parametrize(
    "kwargs",
    [{"clusters": 1}, {"kmeans_lr": 0.0}, {"kmeans_lr": 1.5}, {"trigger": "mean"}],
)
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        ClusterNS(**kwargs)


# -- through the real protocol ---------------------------------------------------


class Recording(InfoNCE):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.batches = []

    def forward_batch(self, batch):
        self.batches.append(batch)
        return super().forward_batch(batch)


def test_trains_through_the_protocol():
    sampler, loss = ClusterNS(clusters=3, start_cosine=2.0), Recording()
    context = make_context(sampler=sampler, loss=loss)
    protocol = ContrastiveProtocol(epochs=2, batch_size=4, num_negatives=2, depth=6)
    protocol.fit(toy_data(), ToyEncoder(), context)
    # step 0 starts the clustering; later steps add B centroid columns
    assert [tuple(b.negative.shape) for b in loss.batches] == [(4, 4)] + [(4, 8)] * 3
    for batch in loss.batches:
        assert batch.suspected.shape == batch.negative.shape
        assert not bool(batch.suspected[:, 4:].any())  # centroids are not suspects
    assert sampler.diagnostics()["started"] == 1.0
    assert sampler.diagnostics()["start_step"] == 0.0
    assert sampler.diagnostics()["clusters"] == 3.0
    summary = context.diagnostics.summary()
    assert summary["negatives_sampled"] == 4 * 3 * 4  # the in-batch columns
    assert 0.0 <= summary["fn_rate"] <= 1.0


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.samplers.get("cluster").cls is ClusterNS
