"""MoCoFilter: contract, queue ranking against a naive loop, and the protocol.

METHODS.md §7 (a reconstruction, no public code): score every queue entry by
its similarity to the anchor, skip the top r0 as likely false negatives, keep
the next M as negatives (r0 = 0 reproduces "hardest M").
"""

from __future__ import annotations

import pytest
import torch
from toy_text import ToyEncoder, toy_data

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch, make_context
from harness.types import CandidateBatch
from negbench_plugins.losses.infonce import InfoNCE
from negbench_plugins.samplers.moco_filter import MoCoFilter
from negbench_plugins.tasks.contrastive import ContrastiveProtocol


class TestMoCoFilterContract(SamplerContract):
    sampler_cls = MoCoFilter


class TestMoCoFilterSkipContract(SamplerContract):
    sampler_cls = MoCoFilter
    sampler_kwargs = {"skip_top": 3}


class TestMoCoFilterFixedMContract(SamplerContract):
    sampler_cls = MoCoFilter
    sampler_kwargs = {"top_m": 12, "skip_top": 25}


def test_class_attributes():
    assert MoCoFilter.pool == "queue"
    assert MoCoFilter.refresh is None
    assert MoCoFilter.in_batch_negatives is None
    assert MoCoFilter.freeze_candidates is False
    assert {"retrieval", "sts"} <= MoCoFilter.families


def test_num_negatives_defaults_to_the_request():
    assert MoCoFilter().num_negatives(7) == 7
    assert MoCoFilter(top_m=64).num_negatives(7) == 64


def _reference(batch, k, skip):
    """Naive loop over one queue per row: rank, skip r0, keep the next k."""
    out = []
    for row in range(batch.size):
        scores = batch.scores[row].tolist()
        allowed = [
            c for c in range(batch.num_candidates) if not batch.known_positive[row, c]
        ]
        ranked = sorted(allowed, key=lambda c: -scores[c])
        if len(ranked) > skip:
            ranked = ranked[skip:]
        out.append([ranked[i % len(ranked)] for i in range(k)])
    return out


@pytest.mark.parametrize("skip", [0, 1, 5, 29])
@pytest.mark.parametrize("top_m", [None, 1, 8, 40])
def test_matches_naive_loop(skip, top_m):
    sampler = MoCoFilter(top_m=top_m, skip_top=skip)
    for seed in range(4):
        # a queue is in insertion order, not score order
        batch = make_candidate_batch(
            batch_size=8,
            num_candidates=30,
            positives_per_row=1 + 3 * seed,
            seed=seed,
            sorted_scores=False,
        )
        k = sampler.num_negatives(5)
        out = sampler.sample(batch, k, torch.Generator().manual_seed(seed))
        assert out.tolist() == _reference(batch, k, skip)


def test_hardest_m_of_a_small_queue():
    # the queue holds the anchor's own positive (col 2) twice over
    batch = CandidateBatch(
        anchor_ids=torch.arange(1),
        candidate_ids=torch.tensor([[11, 12, 13, 14, 13, 15]]),
        scores=torch.tensor([[0.1, 0.5, 0.9, 0.3, 0.9, 0.7]]),
        positive_scores=torch.tensor([0.9]),
        known_positive=torch.tensor([[False, False, True, False, True, False]]),
    )
    gen = torch.Generator().manual_seed(0)
    assert MoCoFilter(top_m=2).sample(batch, 2, gen).tolist() == [[5, 1]]
    skipped = MoCoFilter(top_m=2, skip_top=1).sample(batch, 2, gen)
    assert skipped.tolist() == [[1, 3]]


@pytest.mark.parametrize("kwargs", [{"top_m": 0}, {"skip_top": -1}])
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        MoCoFilter(**kwargs)


def test_row_without_allowed_candidate_raises():
    batch = make_candidate_batch(batch_size=2, num_candidates=4)
    known = batch.known_positive.clone()
    known[0] = True
    bad = CandidateBatch(
        anchor_ids=batch.anchor_ids,
        candidate_ids=batch.candidate_ids,
        scores=batch.scores,
        positive_scores=batch.positive_scores,
        known_positive=known,
    )
    with pytest.raises(ValueError, match="no candidate"):
        MoCoFilter().sample(bad, 2, torch.Generator().manual_seed(0))


# -- through the real protocol ---------------------------------------------------


class Spy(MoCoFilter):
    """Remembers the queues it was shown."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def sample(self, batch, num_negatives, generator):
        self.seen.append(batch)
        return super().sample(batch, num_negatives, generator)


def test_trains_through_the_protocol():
    sampler = Spy(skip_top=1)
    context = make_context(sampler=sampler, loss=InfoNCE())
    protocol = ContrastiveProtocol(
        epochs=2, batch_size=4, num_negatives=2, depth=6, queue_size=8
    )
    protocol.fit(toy_data(), ToyEncoder(), context)
    assert len(sampler.seen) == 4
    for batch in sampler.seen:  # the queue, shared by all anchors
        assert batch.candidate_ids.shape == (4, 8)
        assert bool((batch.candidate_ids == batch.candidate_ids[:1]).all())
    # after a step, the newest entries are the previous step's positives
    assert sampler.seen[1].candidate_ids[0, -4:].tolist() == (
        sampler.seen[0].positive_ids.tolist()
    )
    summary = context.diagnostics.summary()
    assert summary["negatives_sampled"] == 4 * 4 * 2
    assert 0.0 <= summary["fn_rate"] <= 1.0


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.samplers.get("moco-filter").cls is MoCoFilter
