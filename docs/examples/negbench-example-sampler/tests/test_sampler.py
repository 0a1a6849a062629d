"""The example sampler passes negbench's sampler contract, and does what it says."""

from __future__ import annotations

import torch
from negbench_example_sampler import SemiHard

from harness import CandidateBatch
from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract


class TestSemiHard(SamplerContract):
    sampler_cls = SemiHard


class TestSemiHardWithMargin(SamplerContract):
    sampler_cls = SemiHard
    sampler_kwargs = {"margin": 0.3}


def one_row(scores: list[float], positive: float, known: list[int]) -> CandidateBatch:
    known_positive = torch.zeros(1, len(scores), dtype=torch.bool)
    known_positive[0, known] = True
    return CandidateBatch(
        anchor_ids=torch.tensor([0]),
        candidate_ids=torch.arange(len(scores))[None],
        scores=torch.tensor([scores]),
        positive_scores=torch.tensor([positive]),
        known_positive=known_positive,
    )


def sample(sampler: SemiHard, batch: CandidateBatch, k: int) -> list[int]:
    out = sampler.sample(batch, k, torch.Generator().manual_seed(0))
    return [int(i) for i in out[0]]


def test_takes_the_highest_scores_below_the_positive() -> None:
    # column 0 is a known positive, column 1 scores above the positive (hard)
    batch = one_row([0.9, 0.8, 0.6, 0.5, 0.1, -0.4], positive=0.7, known=[0])
    assert sample(SemiHard(), batch, 2) == [2, 3]
    # a margin of 0.3 leaves 0.6 and 0.5 semi-hard; then the hardest (0.8)
    assert sample(SemiHard(margin=0.3), batch, 3) == [2, 3, 1]


def test_falls_back_to_the_hardest_non_positives() -> None:
    batch = one_row([0.9, 0.8, 0.7, 0.2], positive=0.3, known=[1])
    assert sample(SemiHard(), batch, 3) == [3, 0, 2]


def test_prefers_semi_hard_negatives_when_there_are_enough(
    harness_candidate_batch: CandidateBatch,  # a fixture of negbench's pytest plugin
) -> None:
    batch, k = harness_candidate_batch, 3
    chosen = SemiHard().sample(batch, k, torch.Generator().manual_seed(0))
    below = batch.scores < batch.positive_scores[:, None]
    semi_hard = below & ~batch.known_positive
    for row in range(batch.size):
        if int(semi_hard[row].sum()) >= k:
            assert bool(semi_hard[row, chosen[row]].all())


def test_reports_the_semi_hard_share() -> None:
    sampler = SemiHard()
    sample(sampler, one_row([0.9, 0.8, 0.2], positive=0.5, known=[]), 2)
    assert sampler.diagnostics() == {"share": 0.5}


def test_the_installed_entry_point_registers_it() -> None:
    host = make_plugin_host(PluginOptions())
    entry = host.registries.samplers.get("semi-hard")
    assert entry.cls is SemiHard and entry.plugin == "example_sampler"
    assert host.infos["example_sampler"].origin == "entrypoint"
