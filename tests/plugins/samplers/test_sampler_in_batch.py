"""InBatch: no sampled negatives; the protocol's in-batch columns do the work."""

from __future__ import annotations

import torch
from toy_text import ToyEncoder, toy_data

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch, make_context
from negbench_plugins.losses.infonce import InfoNCE
from negbench_plugins.samplers.in_batch import InBatch
from negbench_plugins.tasks.contrastive import ContrastiveProtocol


class TestInBatchContract(SamplerContract):
    sampler_cls = InBatch


def test_class_attributes():
    assert InBatch.in_batch_negatives is True
    assert InBatch.refresh is None
    assert InBatch.freeze_candidates is False
    assert InBatch.needs_embeddings is False
    assert {"retrieval", "sts"} <= InBatch.families


def test_asks_for_no_negatives_and_returns_an_empty_long_tensor():
    sampler = InBatch()
    for requested in (0, 1, 5, 64):
        assert sampler.num_negatives(requested) == 0
    batch = make_candidate_batch(batch_size=6)
    out = sampler.sample(batch, 0, torch.Generator().manual_seed(0))
    assert out.shape == (6, 0)
    assert out.dtype == torch.long


def test_trains_through_the_protocol_with_in_batch_columns_only():
    sampler = InBatch()
    model = ToyEncoder()
    context = make_context(sampler=sampler, loss=InfoNCE(in_batch=False))
    before = model.proj.weight.detach().clone()
    protocol = ContrastiveProtocol(epochs=2, batch_size=4, num_negatives=2, depth=6)
    protocol.fit(toy_data(), model, context)
    assert not torch.equal(before, model.proj.weight.detach())
    summary = context.diagnostics.summary()
    # the in-batch columns are this sampler's negatives: (B - 1) per anchor
    assert summary["negatives_sampled"] == 4 * 3 * 4
    assert 0.0 <= summary["fn_rate"] <= 1.0
    assert summary["fn_rate"] == summary["in_batch_fn_rate"]
    assert "hardness_gap_mean" in summary
    assert "mine" not in context.timings  # no pool is ever mined


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.samplers.get("in-batch").cls is InBatch
