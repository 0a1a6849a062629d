"""Deliberately broken components: each must fail only its own run, named."""

from __future__ import annotations

import torch

from harness import CandidateBatch, Loss, Sampler, hookimpl


class ExplodingSampler(Sampler):
    """Raises inside sample()."""

    name = "exploding"
    families = frozenset({"retrieval"})

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        raise RuntimeError("boom from the exploding sampler")


class PositiveReturningSampler(Sampler):
    """Returns the anchor's known positive as a negative when it is in the pool."""

    name = "returns-positive"
    families = frozenset({"retrieval"})

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        # Known positives first: a contract violation whenever one is in the pool.
        order = torch.argsort(
            batch.known_positive.float(), dim=1, descending=True, stable=True
        )
        return order[:, :num_negatives]


class WrongShapeSampler(Sampler):
    """Returns one negative too many per anchor."""

    name = "wrong-shape"
    families = frozenset({"retrieval"})

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        return torch.zeros(batch.size, num_negatives + 1, dtype=torch.long)


class MemoryHogSampler(Sampler):
    """Asks for a petabyte."""

    name = "memory-hog"
    families = frozenset({"retrieval"})

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        return torch.empty(1 << 50, dtype=torch.uint8)


class NaNLoss(Loss):
    """Returns NaN for every anchor."""

    name = "nan-loss"
    families = frozenset({"retrieval"})

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        return positive * float("nan")


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [
        ExplodingSampler,
        PositiveReturningSampler,
        WrongShapeSampler,
        MemoryHogSampler,
    ]


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [NaNLoss]


class CrashingSampler(Sampler):
    """Kills its own process: the worker dies without sending a result."""

    name = "segfaulting"
    families = frozenset({"retrieval"})

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


@hookimpl(specname="harness_register_samplers")
def register_crashing() -> list[type[Sampler]]:
    return [CrashingSampler]
