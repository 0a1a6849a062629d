"""In-batch negatives only: no mined negatives at all.

The classic baseline of dense retrieval and sentence-embedding training: each
anchor's negatives are the other anchors' positives in the batch (Henderson et
al., "Efficient Natural Language Response Suggestion for Smart Reply", 2017;
Karpukhin et al., DPR, EMNLP 2020; sentence-transformers'
``MultipleNegativesRankingLoss``).  Zhan et al. (SIGIR 2021) report it at MS
MARCO dev MRR@10 0.264 ("Inbatch-Neg").

The sampler asks for no negatives (``num_negatives`` is 0) and forces the
protocol's in-batch columns on, so the loss sees exactly the batch.
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl

__all__ = ["InBatch"]


class InBatch(Sampler):
    """No sampled negatives; the other anchors' positives are the negatives."""

    name = "in-batch"
    families = frozenset({"retrieval", "sts"})
    in_batch_negatives = True

    def num_negatives(self, requested: int) -> int:
        return 0

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        return torch.zeros(batch.size, 0, dtype=torch.long)


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [InBatch]
