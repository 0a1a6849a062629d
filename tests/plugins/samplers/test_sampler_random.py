"""RandomSampler: contract, uniformity over allowed columns, no duplicates."""

from __future__ import annotations

import numpy as np
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch
from harness.types import CandidateBatch
from negbench_plugins.samplers.random import RandomSampler


class TestRandomSamplerContract(SamplerContract):
    sampler_cls = RandomSampler


class TestRandomSamplerContractManyNegatives(SamplerContract):
    sampler_cls = RandomSampler
    num_negatives = 12


def _replicate(batch, times):
    def rep(t):
        return t.repeat_interleave(times, dim=0)

    return CandidateBatch(
        anchor_ids=rep(batch.anchor_ids),
        candidate_ids=rep(batch.candidate_ids),
        scores=rep(batch.scores),
        positive_scores=rep(batch.positive_scores),
        known_positive=rep(batch.known_positive),
    )


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert "random" in host.registries.samplers
    assert host.registries.samplers.get("random").cls is RandomSampler
    assert RandomSampler.pool == "uniform"


def test_single_draw_is_uniform_over_allowed_columns():
    base = make_candidate_batch(
        batch_size=3, num_candidates=12, positives_per_row=3, seed=1
    )
    times = 30000
    batch = _replicate(base, times)
    out = RandomSampler().sample(batch, 1, torch.Generator().manual_seed(0))
    out = out.squeeze(1).view(base.size, times).numpy()
    for row in range(base.size):
        allowed = ~base.known_positive[row].numpy()
        p = allowed / allowed.sum()
        freq = np.bincount(out[row], minlength=base.num_candidates) / times
        se = np.sqrt(p * (1 - p) / times)
        assert np.all(np.abs(freq - p) <= 5 * se + 1e-12), (row, freq, p)


def test_k_draws_include_each_allowed_column_with_probability_k_over_n():
    base = make_candidate_batch(
        batch_size=2, num_candidates=10, positives_per_row=2, seed=2
    )
    times, k = 6000, 3
    batch = _replicate(base, times)
    out = RandomSampler().sample(batch, k, torch.Generator().manual_seed(1))
    out = out.view(base.size, times, k).numpy()
    for row in range(base.size):
        allowed = ~base.known_positive[row].numpy()
        n_allowed = int(allowed.sum())
        inclusion = np.array(
            [(out[row] == col).any(axis=1).mean() for col in range(base.num_candidates)]
        )
        expected = np.where(allowed, k / n_allowed, 0.0)
        se = np.sqrt(expected * (1 - expected) / times)
        assert np.all(np.abs(inclusion - expected) <= 5 * se + 1e-12)


def test_no_duplicates_when_enough_allowed():
    sampler = RandomSampler()
    k = 6
    for seed in range(10):
        batch = make_candidate_batch(
            batch_size=16, num_candidates=20, positives_per_row=1 + seed, seed=seed
        )
        out = sampler.sample(batch, k, torch.Generator().manual_seed(seed))
        for row in out.tolist():
            assert len(set(row)) == k


def test_fewer_allowed_than_k_uses_only_allowed():
    batch = make_candidate_batch(
        batch_size=6, num_candidates=8, positives_per_row=6, seed=4
    )
    out = RandomSampler().sample(batch, 5, torch.Generator().manual_seed(0))
    for row in range(batch.size):
        allowed = set((~batch.known_positive[row]).nonzero().view(-1).tolist())
        assert set(out[row].tolist()) <= allowed
