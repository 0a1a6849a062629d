"""STAR: contract, the static top list against a naive loop, and the protocol.

METHODS.md §5a: static hard negatives mined once with the warm-up model (the
model before training), ``hard_num`` = 1 drawn uniformly from the top 200
non-relevant documents, plus in-batch random negatives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_text import ToyEncoder, toy_data

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch, make_context
from harness.types import CandidateBatch
from negbench_plugins.losses.infonce import InfoNCE
from negbench_plugins.samplers.star import STAR
from negbench_plugins.tasks import contrastive
from negbench_plugins.tasks.contrastive import ContrastiveProtocol


class TestSTARContract(SamplerContract):
    sampler_cls = STAR


class TestSTARSeveralContract(SamplerContract):
    sampler_cls = STAR
    sampler_kwargs = {"hard_num": 3, "top": 5}


class TestSTARTopOneContract(SamplerContract):
    sampler_cls = STAR
    sampler_kwargs = {"hard_num": 4, "top": 1}


def test_class_attributes():
    assert STAR.pool == "mined"
    assert STAR.refresh == "static"
    assert STAR.in_batch_negatives is True
    assert STAR.freeze_candidates is False
    assert STAR.needs_embeddings is False
    assert {"retrieval", "sts"} <= STAR.families


@pytest.mark.parametrize("hard_num", [1, 2, 7])
def test_num_negatives_is_hard_num(hard_num):
    sampler = STAR(hard_num=hard_num)
    assert [sampler.num_negatives(r) for r in (0, 1, 16)] == [hard_num] * 3


def _top_list(scores, known, top):
    """Naive reference: allowed columns by descending score (stable), first `top`."""
    allowed = [c for c in range(len(scores)) if not known[c]]
    return sorted(allowed, key=lambda c: -scores[c])[:top]


@pytest.mark.parametrize("top", [1, 3, 10, 200])
@pytest.mark.parametrize("hard_num", [1, 3])
@pytest.mark.parametrize("sorted_scores", [True, False])
def test_draws_come_from_the_static_top_list(top, hard_num, sorted_scores):
    sampler = STAR(hard_num=hard_num, top=top)
    for seed in range(5):
        batch = make_candidate_batch(
            batch_size=10,
            num_candidates=25,
            positives_per_row=1 + 2 * seed,
            seed=seed,
            sorted_scores=sorted_scores,
        )
        out = sampler.sample(batch, hard_num, torch.Generator().manual_seed(seed))
        assert out.shape == (10, hard_num)
        for row in range(batch.size):
            listed = _top_list(
                batch.scores[row].tolist(), batch.known_positive[row].tolist(), top
            )
            assert set(out[row].tolist()) <= set(listed)
            if len(listed) >= hard_num:
                assert len(set(out[row].tolist())) == hard_num


def test_draws_are_uniform_over_the_list():
    base = make_candidate_batch(
        batch_size=2,
        num_candidates=20,
        positives_per_row=3,
        seed=4,
        sorted_scores=False,
    )
    times, top = 6000, 6

    def rep(t):
        return t.repeat_interleave(times, dim=0)

    batch = CandidateBatch(
        anchor_ids=rep(base.anchor_ids),
        candidate_ids=rep(base.candidate_ids),
        scores=rep(base.scores),
        positive_scores=rep(base.positive_scores),
        known_positive=rep(base.known_positive),
    )
    out = STAR(top=top).sample(batch, 1, torch.Generator().manual_seed(0))
    out = out.view(base.size, times).numpy()
    for row in range(base.size):
        listed = _top_list(
            base.scores[row].tolist(), base.known_positive[row].tolist(), top
        )
        freq = np.bincount(out[row], minlength=base.num_candidates) / times
        expected = np.zeros(base.num_candidates)
        expected[listed] = 1 / top
        se = np.sqrt(expected * (1 - expected) / times)
        assert np.all(np.abs(freq - expected) <= 5 * se + 1e-12)


def test_relevant_documents_are_dropped_before_the_list_is_cut():
    # top=2 over [pos 0.9, 0.8, pos 0.7, 0.6, 0.5]: the list is columns 1 and 3
    batch = CandidateBatch(
        anchor_ids=torch.arange(1),
        candidate_ids=torch.arange(5)[None],
        scores=torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]]),
        positive_scores=torch.tensor([0.95]),
        known_positive=torch.tensor([[True, False, True, False, False]]),
    )
    out = STAR(hard_num=2, top=2).sample(batch, 2, torch.Generator().manual_seed(0))
    assert sorted(out[0].tolist()) == [1, 3]


@pytest.mark.parametrize("kwargs", [{"hard_num": 0}, {"top": 0}, {"top": -3}])
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        STAR(**kwargs)


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
        STAR().sample(bad, 1, torch.Generator().manual_seed(0))


# -- through the real protocol ---------------------------------------------------


class Recording(InfoNCE):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shapes = []

    def forward_batch(self, batch):
        self.shapes.append(tuple(batch.negative.shape))
        return super().forward_batch(batch)


def test_trains_through_the_protocol(monkeypatch):
    mined = []
    real = contrastive.mine

    def counting(*args, **kwargs):
        mined.append(args[1].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(contrastive, "mine", counting)
    sampler, loss = STAR(top=4), Recording(in_batch=False)
    context = make_context(sampler=sampler, loss=loss)
    protocol = ContrastiveProtocol(epochs=2, batch_size=4, num_negatives=2, depth=6)
    protocol.fit(toy_data(), ToyEncoder(), context)
    assert mined == [8]  # static: mined once, for every anchor, before training
    # hard_num = 1 sampled column, then B positives and B hard negatives in-batch
    # (forced on although the loss was built with in_batch=False)
    assert loss.shapes == [(4, 1 + 4 + 4)] * 4
    summary = context.diagnostics.summary()
    assert summary["negatives_sampled"] == 4 * 4 * 1
    assert 0.0 <= summary["fn_rate"] <= 1.0
    assert "in_batch_fn_rate" in summary
    assert summary["neg_rank_q90"] <= 6


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.samplers.get("star").cls is STAR
