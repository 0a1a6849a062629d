"""TopKHard: contract plus a brute-force reference for the rank window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch
from harness.types import CandidateBatch
from negbench_plugins.samplers.topk_hard import TopKHard


class TestTopKHardContract(SamplerContract):
    sampler_cls = TopKHard


class TestTopKHardWindowRandomContract(SamplerContract):
    sampler_cls = TopKHard
    sampler_kwargs = {"range_min": 2, "range_max": 10, "sampling": "random"}


class TestTopKHardWindowTopContract(SamplerContract):
    sampler_cls = TopKHard
    sampler_kwargs = {"range_min": 2, "range_max": 10, "sampling": "top"}


def _window(scores, known, range_min, range_max):
    """Naive reference: allowed columns by descending score (stable), sliced."""
    allowed = [c for c in range(len(scores)) if not known[c]]
    ranked = sorted(allowed, key=lambda c: -scores[c])  # sorted() is stable
    window = ranked[range_min:range_max]
    return window if window else ranked


def _reference_top(batch, k, range_min, range_max):
    out = []
    for row in range(batch.size):
        scores = batch.scores[row].tolist()
        known = batch.known_positive[row].tolist()
        window = _window(scores, known, range_min, range_max)
        out.append([window[i % len(window)] for i in range(k)])
    return out


def _batch_with_ties(seed, batch_size=10, num_candidates=25, positives=3):
    batch = make_candidate_batch(
        batch_size=batch_size,
        num_candidates=num_candidates,
        positives_per_row=positives,
        seed=seed,
        sorted_scores=False,
    )
    # coarse scores: many exact ties, which the stable order must break by column
    coarse = (batch.scores * 3).round() / 3
    return CandidateBatch(
        anchor_ids=batch.anchor_ids,
        candidate_ids=batch.candidate_ids,
        scores=coarse,
        positive_scores=batch.positive_scores,
        known_positive=batch.known_positive,
    )


WINDOWS = [(0, None), (2, 10), (5, 8), (0, 1), (3, None), (21, None), (40, 50)]


@pytest.mark.parametrize(("range_min", "range_max"), WINDOWS)
@pytest.mark.parametrize("k", [1, 4, 7, 30])
@pytest.mark.parametrize("sorted_scores", [True, False])
def test_top_matches_naive_loop(range_min, range_max, k, sorted_scores):
    sampler = TopKHard(range_min=range_min, range_max=range_max, sampling="top")
    for seed in range(4):
        batch = make_candidate_batch(
            batch_size=10,
            num_candidates=25,
            positives_per_row=1 + 3 * seed,
            seed=seed,
            sorted_scores=sorted_scores,
        )
        out = sampler.sample(batch, k, torch.Generator().manual_seed(seed))
        assert out.tolist() == _reference_top(batch, k, range_min, range_max)


@pytest.mark.parametrize(("range_min", "range_max"), WINDOWS)
def test_top_matches_naive_loop_with_tied_scores(range_min, range_max):
    sampler = TopKHard(range_min=range_min, range_max=range_max)
    for seed in range(4):
        batch = _batch_with_ties(seed)
        out = sampler.sample(batch, 6, torch.Generator().manual_seed(0))
        assert out.tolist() == _reference_top(batch, 6, range_min, range_max)


@pytest.mark.parametrize(("range_min", "range_max"), [(0, None), (2, 10)])
def test_top_matches_naive_loop_with_minus_infinite_scores(range_min, range_max):
    """An allowed candidate scored -inf is still a candidate, after every
    finite one and never a known positive (which the sampler masks with
    -inf itself): the whole-pool window's shortcut must not take one."""
    sampler = TopKHard(range_min=range_min, range_max=range_max)
    for seed in range(4):
        batch = make_candidate_batch(
            batch_size=10, num_candidates=12, positives_per_row=3, seed=seed
        )
        scores = batch.scores.clone()
        scores[:, 4:] = float("-inf")  # 8 columns, some of them positives
        batch = CandidateBatch(
            anchor_ids=batch.anchor_ids,
            candidate_ids=batch.candidate_ids,
            scores=scores,
            positive_scores=batch.positive_scores,
            known_positive=batch.known_positive,
        )
        out = sampler.sample(batch, 7, torch.Generator().manual_seed(0))
        assert out.tolist() == _reference_top(batch, 7, range_min, range_max)
        assert not batch.known_positive.gather(1, out).any()


def test_top_default_returns_the_hardest_non_positives():
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.7, -0.2, 0.95]])
    known = torch.tensor([[False, False, True, False, False, True]])
    batch = CandidateBatch(
        anchor_ids=torch.arange(1),
        candidate_ids=torch.arange(6)[None],
        scores=scores,
        positive_scores=torch.tensor([0.5]),
        known_positive=known,
    )
    out = TopKHard().sample(batch, 3, torch.Generator().manual_seed(0))
    # hardest first: 0.9 (col 0), 0.7 (col 3), 0.1 (col 1); 0.95 and 0.8 are positives
    assert out.tolist() == [[0, 3, 1]]
    out = TopKHard(range_min=1).sample(batch, 2, torch.Generator().manual_seed(0))
    assert out.tolist() == [[3, 1]]


@pytest.mark.parametrize(("range_min", "range_max"), WINDOWS)
@pytest.mark.parametrize("k", [1, 5, 12])
def test_random_stays_inside_the_window(range_min, range_max, k):
    sampler = TopKHard(range_min=range_min, range_max=range_max, sampling="random")
    for seed in range(6):
        batch = make_candidate_batch(
            batch_size=12,
            num_candidates=25,
            positives_per_row=1 + 2 * seed,
            seed=seed,
            sorted_scores=seed % 2 == 0,
        )
        out = sampler.sample(batch, k, torch.Generator().manual_seed(seed))
        for row in range(batch.size):
            window = _window(
                batch.scores[row].tolist(),
                batch.known_positive[row].tolist(),
                range_min,
                range_max,
            )
            assert set(out[row].tolist()) <= set(window)
            if len(window) >= k:
                assert len(set(out[row].tolist())) == k


def test_random_is_uniform_over_the_window():
    range_min, range_max = 2, 10
    base = make_candidate_batch(
        batch_size=2,
        num_candidates=20,
        positives_per_row=3,
        seed=7,
        sorted_scores=False,
    )
    times = 8000

    def rep(t):
        return t.repeat_interleave(times, dim=0)

    batch = CandidateBatch(
        anchor_ids=rep(base.anchor_ids),
        candidate_ids=rep(base.candidate_ids),
        scores=rep(base.scores),
        positive_scores=rep(base.positive_scores),
        known_positive=rep(base.known_positive),
    )
    sampler = TopKHard(range_min=range_min, range_max=range_max, sampling="random")
    for k in (1, 3):
        out = sampler.sample(batch, k, torch.Generator().manual_seed(k))
        out = out.view(base.size, times, k).numpy()
        for row in range(base.size):
            window = _window(
                base.scores[row].tolist(),
                base.known_positive[row].tolist(),
                range_min,
                range_max,
            )
            assert len(window) == range_max - range_min
            inclusion = np.array(
                [(out[row] == c).any(axis=1).mean() for c in range(base.num_candidates)]
            )
            expected = np.zeros(base.num_candidates)
            expected[window] = k / len(window)
            se = np.sqrt(expected * (1 - expected) / times)
            assert np.all(np.abs(inclusion - expected) <= 5 * se + 1e-12), (k, row)


def test_top_is_deterministic_regardless_of_generator():
    batch = make_candidate_batch(seed=9)
    sampler = TopKHard(range_min=1, range_max=12)
    first = sampler.sample(batch, 5, torch.Generator().manual_seed(0))
    second = sampler.sample(batch, 5, torch.Generator().manual_seed(123))
    assert torch.equal(first, second)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"range_min": -1},
        {"range_min": 5, "range_max": 5},
        {"range_min": 5, "range_max": 3},
        {"sampling": "bottom"},
    ],
)
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        TopKHard(**kwargs)


def _batch_with_a_fully_positive_row():
    known = torch.zeros(2, 6, dtype=torch.bool)
    known[0] = True
    return CandidateBatch(
        anchor_ids=torch.arange(2),
        candidate_ids=torch.arange(6).repeat(2, 1),
        scores=torch.linspace(1, -1, 6).repeat(2, 1),
        positive_scores=torch.zeros(2),
        known_positive=known,
    )


def test_random_row_without_allowed_candidate_raises_value_error():
    batch = _batch_with_a_fully_positive_row()
    with pytest.raises(ValueError, match="no candidate"):
        TopKHard(sampling="random").sample(batch, 3, torch.Generator().manual_seed(0))


def test_top_row_without_allowed_candidate_raises_value_error():
    batch = _batch_with_a_fully_positive_row()
    with pytest.raises(ValueError, match="no candidate"):
        TopKHard(sampling="top").sample(batch, 3, torch.Generator().manual_seed(0))


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert "topk-hard" in host.registries.samplers
    assert host.registries.samplers.get("topk-hard").cls is TopKHard
    assert TopKHard.pool == "mined"
