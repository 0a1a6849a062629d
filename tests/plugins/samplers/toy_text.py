"""A tiny text task for running retrieval samplers through the real protocol.

Shared by the sampler tests that check a sampler end to end (pools, refresh,
queues) rather than on a hand-made candidate batch.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F

from harness import TextEncoder
from negbench_plugins.tasks.contrastive import PairData

__all__ = ["ToyEncoder", "toy_data"]


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
