"""HaSa sampler: contract, hard negatives first, proxies from the 2-hop set."""

from __future__ import annotations

from dataclasses import replace

import torch

from harness.testing import SamplerContract, make_candidate_batch, make_context
from negbench_plugins.samplers.hasa import HaSa


class TestHaSaContract(SamplerContract):
    sampler_cls = HaSa


class TestHaSaFixedContract(SamplerContract):
    sampler_cls = HaSa
    sampler_kwargs = {"hard": 2, "proxies": 4}


def test_hard_columns_are_the_best_allowed_and_proxies_are_neighbours() -> None:
    batch = make_candidate_batch(batch_size=6, num_candidates=40, seed=2)
    sampler = HaSa(hard=3, proxies=3)
    answer = sampler.sample(batch, 6, torch.Generator().manual_seed(0))
    allowed = ~batch.known_positive
    for row in range(batch.size):
        best = [c for c in range(40) if allowed[row, c]][:3]  # pool is best-first
        assert answer.positions[row, :3].tolist() == best
        flagged = answer.positions[row, 3:][answer.suspected[row, 3:]]
        assert bool(batch.neighbour[row, flagged].all())
        assert not bool(answer.suspected[row, :3].any())
    # with neighbours everywhere, every proxy slot is a flagged neighbour
    assert int(answer.suspected.sum()) > 0


def test_rows_without_neighbours_get_unflagged_hard_negatives() -> None:
    batch = make_candidate_batch(batch_size=4, num_candidates=20, seed=1)
    batch = replace(batch, neighbour=torch.zeros(4, 20, dtype=torch.bool))
    sampler = HaSa(hard=2, proxies=2)
    context = make_context(sampler=sampler)
    answer = context.sample_negatives(batch, 4)
    assert not bool(answer.suspected.any())
    assert sampler.diagnostics()["rows_with_proxies"] == 0.0
