"""ADORE: contract, the retrieved list against a naive loop, and the protocol.

METHODS.md §5b: re-retrieve every step with the current query encoder from a
frozen document index; the loss (LambdaRank) weights pairs by the change in
1/rank, so the sampler returns the retrieved list itself, in score order.
"""

from __future__ import annotations

import pytest
import torch
from toy_text import ToyEncoder, toy_data

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch, make_context
from harness.types import CandidateBatch
from negbench_plugins.losses.infonce import InfoNCE
from negbench_plugins.samplers.adore import ADORE
from negbench_plugins.tasks import contrastive
from negbench_plugins.tasks.contrastive import ContrastiveProtocol


class TestADOREContract(SamplerContract):
    sampler_cls = ADORE


class TestADOREShortListContract(SamplerContract):
    sampler_cls = ADORE
    sampler_kwargs = {"top": 4}


class TestADORELongListContract(SamplerContract):
    sampler_cls = ADORE
    sampler_kwargs = {"top": 25}


def test_class_attributes():
    assert ADORE.pool == "mined"
    assert ADORE.refresh == "step"
    assert ADORE.freeze_candidates is True
    assert ADORE.in_batch_negatives is False
    assert ADORE.needs_embeddings is False
    assert {"retrieval", "sts"} <= ADORE.families


def test_num_negatives_is_the_list_length():
    assert ADORE().num_negatives(2) == 100
    assert ADORE(top=7).num_negatives(50) == 7


def _reference(batch, k):
    """Naive loop: allowed columns by descending score (stable), cycled to k."""
    out = []
    for row in range(batch.size):
        scores = batch.scores[row].tolist()
        allowed = [
            c for c in range(batch.num_candidates) if not batch.known_positive[row, c]
        ]
        ranked = sorted(allowed, key=lambda c: -scores[c])
        out.append([ranked[i % len(ranked)] for i in range(k)])
    return out


@pytest.mark.parametrize("top", [1, 5, 23, 40])
@pytest.mark.parametrize("sorted_scores", [True, False])
def test_matches_naive_loop(top, sorted_scores):
    sampler = ADORE(top=top)
    for seed in range(4):
        batch = make_candidate_batch(
            batch_size=9,
            num_candidates=25,
            positives_per_row=1 + 3 * seed,
            seed=seed,
            sorted_scores=sorted_scores,
        )
        k = sampler.num_negatives(3)
        out = sampler.sample(batch, k, torch.Generator().manual_seed(seed))
        assert out.tolist() == _reference(batch, k)


def test_tied_scores_keep_column_order():
    batch = make_candidate_batch(batch_size=6, num_candidates=20, sorted_scores=False)
    coarse = CandidateBatch(
        anchor_ids=batch.anchor_ids,
        candidate_ids=batch.candidate_ids,
        scores=(batch.scores * 2).round() / 2,
        positive_scores=batch.positive_scores,
        known_positive=batch.known_positive,
    )
    out = ADORE(top=10).sample(coarse, 10, torch.Generator().manual_seed(0))
    assert out.tolist() == _reference(coarse, 10)


def test_list_is_the_retrieved_order_without_positives():
    batch = CandidateBatch(
        anchor_ids=torch.arange(1),
        candidate_ids=torch.arange(6)[None],
        scores=torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]]),
        positive_scores=torch.tensor([0.5]),
        known_positive=torch.tensor([[False, True, False, False, True, False]]),
    )
    out = ADORE(top=4).sample(batch, 4, torch.Generator().manual_seed(0))
    assert out.tolist() == [[0, 2, 3, 5]]


def test_ignores_the_generator():
    batch = make_candidate_batch(seed=2)
    sampler = ADORE(top=6)
    first = sampler.sample(batch, 6, torch.Generator().manual_seed(0))
    second = sampler.sample(batch, 6, torch.Generator().manual_seed(99))
    assert torch.equal(first, second)


@pytest.mark.parametrize("top", [0, -1])
def test_invalid_parameters_raise(top):
    with pytest.raises(ValueError):
        ADORE(top=top)


def test_row_without_allowed_candidate_raises():
    batch = make_candidate_batch(batch_size=2, num_candidates=4)
    known = batch.known_positive.clone()
    known[1] = True
    bad = CandidateBatch(
        anchor_ids=batch.anchor_ids,
        candidate_ids=batch.candidate_ids,
        scores=batch.scores,
        positive_scores=batch.positive_scores,
        known_positive=known,
    )
    with pytest.raises(ValueError, match="no candidate"):
        ADORE().sample(bad, 3, torch.Generator().manual_seed(0))


# -- through the real protocol ---------------------------------------------------


class Recording(InfoNCE):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shapes = []

    def forward_batch(self, batch):
        self.shapes.append(tuple(batch.negative.shape))
        return super().forward_batch(batch)


def test_trains_through_the_protocol(monkeypatch):
    mined, embedded = [], []
    real_mine, real_embed = contrastive.mine, contrastive.embed_all

    def counting_mine(*args, **kwargs):
        mined.append(args[1].shape[0])
        return real_mine(*args, **kwargs)

    def counting_embed(model, features, side, *args, **kwargs):
        embedded.append(side)
        return real_embed(model, features, side, *args, **kwargs)

    monkeypatch.setattr(contrastive, "mine", counting_mine)
    monkeypatch.setattr(contrastive, "embed_all", counting_embed)
    sampler, loss = ADORE(top=4), Recording()  # InfoNCE defaults to in-batch
    context = make_context(sampler=sampler, loss=loss)
    model = ToyEncoder()
    before = model.proj.weight.detach().clone()
    protocol = ContrastiveProtocol(epochs=2, batch_size=4, num_negatives=2, depth=6)
    protocol.fit(toy_data(), model, context)
    assert not torch.equal(before, model.proj.weight.detach())
    assert mined == [4] * 4  # every step, for the batch's anchors only
    assert embedded.count("document") == 1  # the frozen index is built once
    assert embedded.count("query") == 4
    assert loss.shapes == [(4, 4)] * 4  # the list only: in-batch forced off
    summary = context.diagnostics.summary()
    assert summary["negatives_sampled"] == 4 * 4 * 4
    assert 0.0 <= summary["fn_rate"] <= 1.0
    assert "in_batch_fn_rate" not in summary


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.samplers.get("adore").cls is ADORE
