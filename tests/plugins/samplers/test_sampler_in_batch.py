"""InBatch: no sampled negatives; the protocol's in-batch columns do the work."""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F

from harness import TextEncoder
from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch, make_context
from negbench_plugins.losses.infonce import InfoNCE
from negbench_plugins.samplers.in_batch import InBatch
from negbench_plugins.tasks.contrastive import ContrastiveProtocol, PairData


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


class ToyEncoder(TextEncoder):
    """Hashed bag of words -> linear -> L2 normalisation."""

    name = "toy-encoder"
    families = frozenset({"retrieval", "sts"})
    default_lr = 0.05

    def __init__(self, *, lr=None, dim=16, buckets=64):
        super().__init__(lr=lr)
        self.buckets = buckets
        self.proj = torch.nn.Linear(buckets, dim)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(dim, buckets, generator=gen) * 0.3)
            self.proj.bias.zero_()

    def featurize(self, texts, *, side, context):
        out = torch.zeros(len(texts), self.buckets)
        for row, text in enumerate(texts):
            for token in text.split():
                out[row, zlib.crc32(token.encode()) % self.buckets] += 1.0
        return out

    def embed(self, features, *, side):
        return F.normalize(self.proj(features), dim=-1)


def toy_data():
    texts = [f"w{i} w{i + 1} common{i % 3}" for i in range(12)]
    return PairData(
        anchor_texts=texts[:8],
        candidate_texts=texts,
        pairs=torch.tensor([[i, (i + 1) % 12] for i in range(8)]),
        positives=[{(i + 1) % 12} for i in range(8)],
        hidden=[{(i + 2) % 12} for i in range(8)],
        hidden_exact=True,
    )


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
