"""uniform / bernoulli / filtered: contract, and what they ask of the protocol."""

from __future__ import annotations

import torch

from harness.testing import SamplerContract, make_candidate_batch
from negbench_plugins.samplers.corruption import Bernoulli, Filtered, Uniform


class TestUniformContract(SamplerContract):
    sampler_cls = Uniform


class TestBernoulliContract(SamplerContract):
    sampler_cls = Bernoulli


class TestFilteredContract(SamplerContract):
    sampler_cls = Filtered


def test_protocol_requests() -> None:
    assert (Uniform.filtered, Uniform.sides, Uniform.pool) == (
        False,
        "uniform",
        "uniform",
    )
    assert (Bernoulli.filtered, Bernoulli.sides) == (False, "bernoulli")
    assert (Filtered.filtered, Filtered.sides) == (True, "uniform")


def test_draws_are_uniform_over_allowed_columns() -> None:
    batch = make_candidate_batch(batch_size=1, num_candidates=10, positives_per_row=2)
    counts = torch.zeros(10)
    gen = torch.Generator().manual_seed(0)
    for _ in range(2000):
        counts[Uniform().sample(batch, 1, gen)[0, 0]] += 1
    allowed = ~batch.known_positive[0]
    assert counts[~allowed].sum() == 0
    share = counts[allowed] / counts.sum()
    assert bool((share - 1 / 8).abs().max() < 0.03)
