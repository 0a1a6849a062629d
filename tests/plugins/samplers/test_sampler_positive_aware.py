"""PositiveAware: contract, the filters and fallback against a naive loop.

NV-Retriever's TopK-PercPos and sentence-transformers' ``mine_hard_negatives``
filters: drop s > max_score, s < min_score, s > s+ - absolute_margin and
s > s+ - |s+| * relative_margin, then take the best (or uniform) K inside
``[range_min, range_max)`` of what remains; when too few remain, fill with the
other allowed candidates, lowest scores first.
"""

from __future__ import annotations

import pytest
import torch
from toy_text import ToyEncoder, toy_data

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch, make_context
from harness.types import CandidateBatch
from negbench_plugins.losses.infonce import InfoNCE
from negbench_plugins.samplers.positive_aware import PositiveAware
from negbench_plugins.tasks.contrastive import ContrastiveProtocol


class TestPositiveAwareContract(SamplerContract):
    sampler_cls = PositiveAware


class TestPositiveAwareRandomContract(SamplerContract):
    sampler_cls = PositiveAware
    sampler_kwargs = {"sampling": "random", "range_min": 1, "range_max": 12}


class TestPositiveAwareAllFiltersContract(SamplerContract):
    sampler_cls = PositiveAware
    sampler_kwargs = {
        "relative_margin": 0.1,
        "absolute_margin": 0.05,
        "max_score": 0.6,
        "min_score": -0.5,
        "range_min": 2,
    }


class TestPositiveAwareSignedContract(SamplerContract):
    sampler_cls = PositiveAware
    sampler_kwargs = {"relative_mode": "signed", "sampling": "random"}


def test_class_attributes():
    assert PositiveAware.pool == "mined"
    assert PositiveAware.refresh is None
    assert PositiveAware.in_batch_negatives is None
    assert PositiveAware.freeze_candidates is False
    assert PositiveAware.families == {"retrieval", "sts", "kge", "multilabel"}


DEFAULTS = {
    "relative_margin": 0.05,
    "absolute_margin": None,
    "max_score": None,
    "min_score": None,
    "range_min": 0,
    "range_max": None,
    "relative_mode": "abs",
}


def _passes(x, p, o):
    if o["max_score"] is not None and x > o["max_score"]:
        return False
    if o["min_score"] is not None and x < o["min_score"]:
        return False
    if o["absolute_margin"] is not None and x > p - o["absolute_margin"]:
        return False
    if o["relative_margin"] is not None:
        if o["relative_mode"] == "abs":
            limit = p - abs(p) * o["relative_margin"]
        else:
            limit = p * (1.0 - o["relative_margin"])
        if x > limit:
            return False
    return True


def _preference(batch, row, o):
    """Naive loop: (window, full preference list) of one row."""
    scores = batch.scores[row].double().tolist()
    p = float(batch.positive_scores[row].double())
    allowed = [c for c in range(len(scores)) if not batch.known_positive[row, c]]
    eligible = [c for c in allowed if _passes(scores[c], p, o)]
    ranked = sorted(eligible, key=lambda c: -scores[c])
    window = ranked[o["range_min"] : o["range_max"]]
    other = sorted((c for c in eligible if c not in window), key=lambda c: scores[c])
    rest = sorted((c for c in allowed if c not in eligible), key=lambda c: scores[c])
    return window, window + other + rest


def _reference_top(batch, k, o):
    out = []
    for row in range(batch.size):
        _, preferred = _preference(batch, row, o)
        out.append([preferred[i % len(preferred)] for i in range(k)])
    return out


OPTIONS = [
    {},
    {"relative_margin": None},
    {"relative_margin": 0.2, "range_min": 2, "range_max": 9},
    {"relative_margin": None, "absolute_margin": 0.1},
    {"max_score": 0.5, "min_score": -0.6},
    {"max_score": 0.3, "absolute_margin": 0.0, "relative_margin": 0.5},
    {"relative_mode": "signed"},
    {"relative_mode": "signed", "relative_margin": 0.3, "range_min": 4},
    {"min_score": 0.9},  # almost nothing passes: the fallback does the work
]


def _ids(option):
    return ",".join(f"{a}={v}" for a, v in option.items()) or "default"


@pytest.mark.parametrize("option", OPTIONS, ids=_ids)
@pytest.mark.parametrize("k", [1, 4, 12])
@pytest.mark.parametrize("sorted_scores", [True, False])
def test_top_matches_naive_loop(option, k, sorted_scores):
    sampler = PositiveAware(**option)
    full = DEFAULTS | option
    for seed in range(5):
        batch = make_candidate_batch(
            batch_size=10,
            num_candidates=20,
            positives_per_row=1 + 2 * seed,
            seed=seed,
            sorted_scores=sorted_scores,
        )
        out = sampler.sample(batch, k, torch.Generator().manual_seed(seed))
        assert out.tolist() == _reference_top(batch, k, full)


@pytest.mark.parametrize("option", OPTIONS, ids=_ids)
@pytest.mark.parametrize("k", [1, 4, 12])
def test_random_draws_from_the_window_or_falls_back(option, k):
    sampler = PositiveAware(sampling="random", **option)
    full = DEFAULTS | option
    for seed in range(5):
        batch = make_candidate_batch(
            batch_size=10, num_candidates=20, positives_per_row=1 + 2 * seed, seed=seed
        )
        out = sampler.sample(batch, k, torch.Generator().manual_seed(seed))
        for row in range(batch.size):
            window, preferred = _preference(batch, row, full)
            got = out[row].tolist()
            if len(window) >= k:
                assert set(got) <= set(window)
                assert len(set(got)) == k
            else:
                assert got == [preferred[i % len(preferred)] for i in range(k)]


def test_random_covers_the_whole_window():
    batch = make_candidate_batch(batch_size=1, num_candidates=30, positives_per_row=2)
    window, _ = _preference(batch, 0, DEFAULTS)
    assert len(window) >= 3
    sampler = PositiveAware(sampling="random")
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(300):
        seen.update(sampler.sample(batch, 2, gen)[0].tolist())
    assert seen == set(window)


def test_never_above_the_margin_when_enough_others_exist():
    sampler = PositiveAware()
    checked = 0
    for seed in range(30):
        batch = make_candidate_batch(
            batch_size=16, num_candidates=30, positives_per_row=1 + seed % 8, seed=seed
        )
        k = 1 + seed % 6
        out = sampler.sample(batch, k, torch.Generator().manual_seed(seed))
        limit = batch.positive_scores - batch.positive_scores.abs() * 0.05
        for row in range(batch.size):
            below = (~batch.known_positive[row]) & (batch.scores[row] <= limit[row])
            if int(below.sum()) >= k:
                checked += 1
                chosen = batch.scores[row, out[row]]
                assert bool((chosen <= limit[row]).all())
    assert checked > 100


def _one_row(scores, positive, known=None):
    scores = torch.tensor([scores])
    return CandidateBatch(
        anchor_ids=torch.arange(1),
        candidate_ids=torch.arange(scores.shape[1])[None],
        scores=scores,
        positive_scores=torch.tensor([positive]),
        known_positive=(
            torch.zeros_like(scores, dtype=torch.bool)
            if known is None
            else torch.tensor([known])
        ),
    )


def test_topk_percpos_on_a_worked_example():
    # s+ = 0.8: 95% of it is 0.76, so 0.9, 0.79 and 0.77 go; the hardest left
    # are 0.75 and 0.5 (0.85 is a known positive)
    batch = _one_row(
        [0.9, 0.85, 0.79, 0.77, 0.75, 0.5, 0.1],
        0.8,
        [False, True, False, False, False, False, False],
    )
    out = PositiveAware().sample(batch, 2, torch.Generator().manual_seed(0))
    assert out.tolist() == [[4, 5]]
    out = PositiveAware(range_min=1).sample(batch, 2, torch.Generator().manual_seed(0))
    assert out.tolist() == [[5, 6]]


def test_fallback_prefers_low_scores():
    # only 0.1 passes the margin; the rest are filled lowest-scored first
    batch = _one_row([0.9, 0.8, 0.7, 0.1], 0.5)
    out = PositiveAware().sample(batch, 3, torch.Generator().manual_seed(0))
    assert out.tolist() == [[3, 2, 1]]
    out = PositiveAware(sampling="random").sample(
        batch, 3, torch.Generator().manual_seed(0)
    )
    assert out.tolist() == [[3, 2, 1]]


@pytest.mark.parametrize(
    ("mode", "expected"), [("abs", [[3, 4]]), ("signed", [[1, 2]])]
)
def test_relative_mode_with_a_negative_positive_score(mode, expected):
    # s+ = -0.5, relative_margin 0.2: "abs" keeps s <= -0.6, "signed" s <= -0.4
    batch = _one_row([-0.3, -0.45, -0.55, -0.65, -0.9], -0.5)
    sampler = PositiveAware(relative_margin=0.2, relative_mode=mode)
    assert sampler.sample(batch, 2, torch.Generator().manual_seed(0)).tolist() == (
        expected
    )


def test_zero_negatives():
    batch = make_candidate_batch()
    out = PositiveAware().sample(batch, 0, torch.Generator().manual_seed(0))
    assert out.shape == (batch.size, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"relative_margin": -0.1},
        {"absolute_margin": -1.0},
        {"max_score": 0.1, "min_score": 0.2},
        {"range_min": -1},
        {"range_min": 3, "range_max": 3},
        {"sampling": "hard"},
        {"relative_mode": "percent"},
    ],
)
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        PositiveAware(**kwargs)


def test_row_without_allowed_candidate_raises():
    batch = _one_row([0.1, 0.2], 0.5, [True, True])
    with pytest.raises(ValueError, match="no candidate"):
        PositiveAware().sample(batch, 1, torch.Generator().manual_seed(0))


# -- through the real protocol ---------------------------------------------------


def test_trains_through_the_protocol():
    sampler = PositiveAware(relative_margin=0.05)
    context = make_context(sampler=sampler, loss=InfoNCE())
    protocol = ContrastiveProtocol(epochs=2, batch_size=4, num_negatives=2, depth=6)
    protocol.fit(toy_data(), ToyEncoder(), context)
    summary = context.diagnostics.summary()
    assert summary["negatives_sampled"] == 4 * 4 * 2
    assert 0.0 <= summary["fn_rate"] <= 1.0
    assert "hardness_gap_mean" in summary


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.samplers.get("positive-aware").cls is PositiveAware
