"""Diagnostics: uniform reservoirs, lazy fact checks, measuring a sample of steps."""

from __future__ import annotations

import numpy as np
import torch

from harness.diagnostics import Diagnostics, Reservoir, _bernoulli_positions


def test_reservoir_keeps_everything_below_its_size() -> None:
    reservoir = Reservoir(10, np.random.default_rng(0))
    reservoir.add(np.arange(4, dtype=np.float32))
    reservoir.add(np.arange(4, 7, dtype=np.float32))
    assert reservoir.values.tolist() == [0, 1, 2, 3, 4, 5, 6]


def _times_kept(size: int, chunk: int, trials: int, seed: int) -> np.ndarray:
    """How often each of 20 chunks of values (0, 1, ...) ends up in a
    reservoir of ``size``, over ``trials`` fresh reservoirs."""
    rng = np.random.default_rng(seed)
    kept = np.zeros(20 * chunk)
    for _ in range(trials):
        reservoir = Reservoir(size, rng)
        for start in range(0, 20 * chunk, chunk):
            reservoir.add(np.arange(start, start + chunk, dtype=np.float32))
        assert len(reservoir.values) == size
        assert len(set(reservoir.values.tolist())) == size
        kept[reservoir.values.astype(int)] += 1
    return kept


def test_reservoir_keeps_early_and_late_values_equally_often() -> None:
    # 20 chunks of 50 values into a reservoir of 100: each of the 1000 values
    # must be kept with probability 0.1, whether it came first or last
    trials = 2000
    share = _times_kept(size=100, chunk=50, trials=trials, seed=0) / trials
    first, last = share[:100].mean(), share[-100:].mean()
    assert abs(first - 0.1) < 0.01 and abs(last - 0.1) < 0.01
    # bookkeeping only (follows from the size check above), not a rate check
    assert abs(share.mean() - 0.1) < 1e-9


def test_diagnostic_quantiles_come_from_the_whole_run() -> None:
    # a run whose hardness drifts from 0 to 1: the median of a uniform sample
    # of all steps is near 0.5 (a sample biased to late steps would be higher)
    diagnostics = Diagnostics(seed=0)
    for step in range(100):
        diagnostics.add_values("hardness_gap", torch.full((10_000,), step / 99))
    summary = diagnostics.summary()
    assert abs(summary["hardness_gap_q50"] - 0.5) < 0.02
    assert abs(summary["hardness_gap_mean"] - 0.5) < 0.01


def test_reservoir_stays_uniform_where_it_skips_ahead() -> None:
    # 10,000 values into 20 slots: past 80 values the reservoir draws the
    # accepted values by geometric skips; each value must still be kept with
    # probability 20 / 10,000, early or late alike
    kept = _times_kept(size=20, chunk=500, trials=500, seed=1)
    per_block = kept.reshape(10, 1000).sum(axis=1)  # expected 1,000 each
    assert np.all(np.abs(per_block - 1000) < 5 * np.sqrt(1000)), per_block


def test_bernoulli_positions_are_a_bernoulli_process() -> None:
    rng = np.random.default_rng(2)
    hits = np.zeros(1000)
    for _ in range(400):
        positions = _bernoulli_positions(1000, 0.05, rng)
        assert np.all(np.diff(positions) > 0)
        assert positions.min(initial=0) >= 0 and positions.max(initial=0) < 1000
        hits[positions] += 1
    # 400 trials x 1,000 positions x 0.05 = 20,000 successes, spread evenly
    assert abs(hits.sum() - 20_000) < 5 * np.sqrt(20_000 * 0.95)
    halves = hits.reshape(2, 500).sum(axis=1)
    assert np.all(np.abs(halves - 10_000) < 5 * np.sqrt(10_000))


def _observe(
    diagnostics: Diagnostics, step: int, rows: int = 64, **overrides: object
) -> None:
    """A step of ``rows`` rows x 8 chosen columns; candidate id 3 is a false
    negative."""
    gen = torch.Generator().manual_seed(step)
    ids = torch.randint(10, (rows, 20), generator=gen)
    arguments: dict[str, object] = {
        "anchor_ids": torch.arange(rows),
        "candidate_ids": ids,
        "positions": torch.randperm(20, generator=gen)[:8].expand(rows, 8),
        "scores": torch.rand(rows, 20, generator=gen),
        "positive_scores": torch.ones(rows),
        "ranks": None,
        "labelled": None,
        "oracle": ids == 3,
        "exact": True,
        "suspected": None,
        "used": None,
        "once": False,
        "measure": diagnostics.start_step(),  # as RunContext.sample_negatives
    }
    diagnostics.observe(**{**arguments, **overrides})  # type: ignore[arg-type]


def test_a_pair_check_counts_what_the_oracle_tensor_counts() -> None:
    eager, lazy = Diagnostics(seed=0), Diagnostics(seed=0)
    for step in range(5):
        _observe(eager, step)
        _observe(lazy, step, oracle=lambda anchors, ids: ids == 3)
    assert lazy.summary() == eager.summary()
    assert 0.05 < eager.summary()["fn_rate"] < 0.15  # 1 id in 10


def test_a_planned_run_measures_a_sample_of_its_steps() -> None:
    every, sampled = Diagnostics(seed=0), Diagnostics(seed=0)
    sampled.plan(steps=2000, negatives_per_step=64 * 8)  # 1M negatives
    used = torch.ones(64, 8, dtype=torch.bool)
    used[:, 6:] = False  # 6 of the 8 columns are trained
    for step in range(2000):
        _observe(every, step, used=used)
        _observe(sampled, step, used=used)
    full, estimate = every.summary(), sampled.summary()
    # every trained negative is still counted; a quarter of a million measured
    assert full["negatives_sampled"] == estimate["negatives_sampled"] == 2000 * 64 * 6
    assert "measured_step_share" not in full
    share = estimate["measured_step_share"]
    assert 0.2 < share < 0.3  # 2^18 / 2^20 of the negatives
    assert estimate["negatives_measured"] == round(share * 2000) * 64 * 6
    # unbiased: the sample's rate and median agree with the full measurement
    assert abs(estimate["fn_rate"] - full["fn_rate"]) < 0.01
    assert abs(estimate["hardness_gap_q50"] - full["hardness_gap_q50"]) < 0.01


def test_a_short_planned_run_is_measured_whole() -> None:
    diagnostics = Diagnostics(seed=0)
    diagnostics.plan(steps=20, negatives_per_step=1 << 20)  # fewer than 32 steps
    for step in range(20):
        _observe(diagnostics, step)
    summary = diagnostics.summary()
    assert "measured_step_share" not in summary
    assert summary["negatives_measured"] == summary["negatives_sampled"] == 20 * 512


def test_a_short_run_of_large_steps_measures_a_sample_of_each_step() -> None:
    """The floor of 32 measured steps would measure 8x the budget: each
    measured step measures a uniform sample of its rows instead."""
    every, sampled = Diagnostics(seed=0), Diagnostics(seed=0)
    steps, rows = 100, 4096
    sampled.plan(steps=steps, negatives_per_step=rows * 8)  # 3.3M negatives
    for step in range(steps):
        _observe(every, step, rows=rows)
        _observe(sampled, step, rows=rows)
        if sampled.measuring:
            # the protocol's own hardness record (pool not scored) follows
            # the same rows; a tensor of another length is taken whole
            assert sampled.step_rows is not None and len(sampled.step_rows) == 1024
            gaps, _ = sampled.measured(torch.arange(rows * 8.0).view(rows, 8), None)
            assert gaps.shape == (1024, 8)
            assert torch.equal(gaps[:, 0], 8.0 * sampled.step_rows)
            other = torch.zeros(rows + 1, 8)
            assert sampled.measured(other, None)[0] is other
    full, estimate = every.summary(), sampled.summary()
    assert (
        full["negatives_sampled"] == estimate["negatives_sampled"] == steps * rows * 8
    )
    measured_steps = round(estimate["measured_step_share"] * steps)
    assert 20 <= measured_steps <= 45  # 32 expected
    # 2^18 / 32 negatives per measured step: 1024 of its 4096 rows
    assert estimate["negatives_measured"] == measured_steps * 1024 * 8
    assert abs(estimate["fn_rate"] - full["fn_rate"]) < 0.01
    assert abs(estimate["hardness_gap_q50"] - full["hardness_gap_q50"]) < 0.02


def test_the_row_sample_counts_trained_negatives_not_columns() -> None:
    """With half of each row's columns trained (a KGE side split), twice the
    rows make the step's share of the budget."""
    diagnostics = Diagnostics(seed=0)
    diagnostics.plan(steps=100, negatives_per_step=4096 * 4)
    used = torch.zeros(4096, 8, dtype=torch.bool)
    used[:, :4] = True
    for step in range(100):
        _observe(diagnostics, step, rows=4096, used=used)
        if diagnostics.measuring:
            assert diagnostics.step_rows is not None
            assert len(diagnostics.step_rows) == 2048
    summary = diagnostics.summary()
    measured_steps = round(summary["measured_step_share"] * 100)
    assert summary["negatives_measured"] == measured_steps * 2048 * 4
