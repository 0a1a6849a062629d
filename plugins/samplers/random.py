"""Uniform random negatives from the whole candidate set ("Rand-neg").

The classic baseline of dense-retrieval training (Karpukhin et al., "Dense
Passage Retrieval", EMNLP 2020; Zhan et al., SIGIR 2021 report it at MRR@10
0.301 on MS MARCO vs 0.264 for in-batch only).  The task offers a uniform draw
of candidates (``pool = "uniform"``); this sampler keeps any K of them that
are not known positives.
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl
from harness.sampling import uniform_negatives

__all__ = ["RandomSampler"]


class RandomSampler(Sampler):
    """K uniform negatives, never a known positive."""

    name = "random"
    families = frozenset({"retrieval", "sts", "kge", "multilabel"})
    pool = "uniform"
    reads_scores = False

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        return uniform_negatives(
            batch.known_positive,
            num_negatives,
            generator,
            fewest_allowed=batch.fewest_allowed,
        )


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [RandomSampler]
