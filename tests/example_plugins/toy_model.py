"""A hashed bag-of-words encoder: trains in milliseconds, needs no weights.

Used by the end-to-end tests so they exercise the real runner, store and
CLI on a tiny BEIR folder without embedding anything with MiniLM.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from harness import CandidateBatch, Model, RunContext, Sampler, TextEncoder, hookimpl


class ToyBow(TextEncoder):
    """Hashed token counts -> linear projection -> L2 normalisation."""

    name = "toy-bow"
    families = frozenset({"retrieval"})
    default_lr = 0.05

    def __init__(
        self, *, lr: float | None = None, dim: int = 32, buckets: int = 256
    ) -> None:
        super().__init__(lr=lr)
        self.buckets = buckets
        self.proj = torch.nn.Linear(buckets, dim)

    def featurize(
        self, texts: Sequence[str], *, side: str, context: RunContext
    ) -> torch.Tensor:
        out = torch.zeros(len(texts), self.buckets)
        for row, text in enumerate(texts):
            for token in text.lower().split():
                out[row, zlib.crc32(token.encode()) % self.buckets] += 1.0
        return out

    def embed(self, features: torch.Tensor, *, side: str) -> torch.Tensor:
        return F.normalize(self.proj(features), dim=-1)


class ToyBowFrozen(ToyBow):
    """The same encoder, untrained: a zero-shot reference row."""

    name = "toy-bow-frozen"
    trainable = False


class SleepySampler(Sampler):
    """Uniform negatives, slowly: makes runs long enough to kill or time out."""

    name = "sleepy"
    families = frozenset({"retrieval", "sts"})
    pool = "uniform"

    def __init__(self, *, seconds: float = 0.3) -> None:
        self.seconds = seconds

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        time.sleep(self.seconds)
        weights = (~batch.known_positive).float()
        return torch.multinomial(weights, num_negatives, generator=generator)


@hookimpl
def harness_register_models() -> list[type[Model]]:
    return [ToyBow, ToyBowFrozen]


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [SleepySampler]
