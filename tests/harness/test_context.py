"""Diagnostics: the reservoir keeps a uniform sample of a whole run's values."""

from __future__ import annotations

import numpy as np
import torch

from harness.context import Diagnostics, Reservoir


def test_reservoir_keeps_everything_below_its_size() -> None:
    reservoir = Reservoir(10, np.random.default_rng(0))
    reservoir.add(np.arange(4, dtype=np.float32))
    reservoir.add(np.arange(4, 7, dtype=np.float32))
    assert reservoir.values.tolist() == [0, 1, 2, 3, 4, 5, 6]


def test_reservoir_keeps_early_and_late_values_equally_often() -> None:
    # 20 chunks of 50 values into a reservoir of 100: each of the 1000 values
    # must be kept with probability 0.1, whether it came first or last
    rng = np.random.default_rng(0)
    kept = np.zeros(1000)
    trials = 2000
    for _ in range(trials):
        reservoir = Reservoir(100, rng)
        for chunk in range(20):
            reservoir.add(np.arange(chunk * 50, chunk * 50 + 50, dtype=np.float32))
        assert len(reservoir.values) == 100
        assert len(set(reservoir.values.tolist())) == 100
        kept[reservoir.values.astype(int)] += 1
    share = kept / trials
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
