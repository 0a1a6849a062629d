"""weighted_draw: zero weights are never drawn, fallbacks, errors, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import ALL_CANDIDATES
from harness.sampling import (
    cap_negatives,
    first_occurrence,
    uniform_draw,
    uniform_negatives,
    weighted_draw,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _random_weights(seed, rows=50, cols=20, zero_fraction=0.5):
    gen = _gen(seed)
    weights = torch.rand(rows, cols, generator=gen) + 0.01
    zero = torch.rand(rows, cols, generator=gen) < zero_fraction
    # every row keeps at least one drawable column
    zero[:, 0] = False
    return weights.masked_fill(zero, 0.0)


def test_shape_and_dtype():
    out = weighted_draw(torch.ones(4, 10), 3, _gen(0))
    assert out.shape == (4, 3)
    assert out.dtype == torch.long


@pytest.mark.parametrize("k", [1, 3, 8, 25])
@pytest.mark.parametrize("seed", range(5))
def test_zero_weights_are_never_drawn(seed, k):
    weights = _random_weights(seed)
    out = weighted_draw(weights, k, _gen(seed))
    assert out.shape == (weights.shape[0], k)
    assert bool((weights.gather(1, out) > 0).all())


def test_negative_weights_count_as_zero():
    weights = torch.tensor([[-1.0, 0.0, 2.0, -3.0, 1.0, 0.5]]).repeat(200, 1)
    out = weighted_draw(weights, 2, _gen(0))
    assert set(out.unique().tolist()) <= {2, 4, 5}


def test_without_replacement_when_enough_allowed():
    weights = _random_weights(1, rows=200, cols=20, zero_fraction=0.3)
    k = 4
    out = weighted_draw(weights, k, _gen(1))
    for row in range(weights.shape[0]):
        allowed = int((weights[row] > 0).sum())
        if allowed >= k:
            assert len(set(out[row].tolist())) == k, row


def test_rows_with_fewer_allowed_than_k_draw_with_replacement_among_allowed():
    weights = torch.zeros(3, 10)
    weights[0, [2, 7]] = 1.0  # 2 allowed < k
    weights[1, 4] = 0.3  # 1 allowed < k
    weights[2] = 1.0  # 10 allowed >= k
    k = 6
    out = weighted_draw(weights, k, _gen(0))
    assert set(out[0].tolist()) <= {2, 7}
    assert set(out[0].tolist()) == {2, 7}  # 6 draws over 2 columns: both show up
    assert out[1].tolist() == [4] * k
    assert len(set(out[2].tolist())) == k


def test_with_replacement_rows_are_proportional_to_weights():
    n = 20000
    weights = torch.zeros(1, 5, dtype=torch.float64)
    weights[0, 1], weights[0, 3] = 1.0, 3.0
    out = weighted_draw(weights, n, _gen(0))
    freq = float((out == 3).double().mean())
    se = (0.75 * 0.25 / n) ** 0.5
    assert abs(freq - 0.75) < 5 * se
    assert set(out.unique().tolist()) == {1, 3}


def test_single_draw_frequencies_match_the_weights():
    base = torch.tensor([0.0, 1.0, 2.0, 0.0, 4.0, 8.0, 0.5], dtype=torch.float64)
    n = 20000
    out = weighted_draw(base.repeat(n, 1), 1, _gen(3)).squeeze(1)
    p = (base / base.sum()).numpy()
    freq = np.bincount(out.numpy(), minlength=len(p)) / n
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * se + 1e-12)


def test_row_without_allowed_column_raises():
    weights = torch.ones(3, 5)
    weights[1] = 0.0
    with pytest.raises(ValueError, match="no candidate"):
        weighted_draw(weights, 2, _gen(0))


def test_all_negative_row_raises():
    weights = torch.ones(2, 4)
    weights[0] = -1.0
    with pytest.raises(ValueError):
        weighted_draw(weights, 1, _gen(0))


def test_deterministic_under_a_seed():
    weights = _random_weights(4, rows=30, cols=15, zero_fraction=0.6)
    first = weighted_draw(weights, 5, _gen(11))
    second = weighted_draw(weights, 5, _gen(11))
    assert torch.equal(first, second)
    third = weighted_draw(weights, 5, _gen(12))
    assert not torch.equal(first, third)


def test_tiny_weights_are_still_drawn():
    # float64 keeps weights far below float32's range drawable
    weights = torch.tensor([[1e-300, 0.0, 1e-300, 0.0]], dtype=torch.float64)
    out = weighted_draw(weights, 2, _gen(0))
    assert sorted(out[0].tolist()) == [0, 2]


def test_first_occurrence_marks_repeats_within_a_row_only():
    positions = torch.tensor([[3, 1, 3, 0, 1], [2, 2, 2, 2, 2], [0, 1, 2, 3, 4]])
    expected = torch.tensor(
        [
            [True, True, False, True, False],
            [True, False, False, False, False],
            [True, True, True, True, True],
        ]
    )
    assert torch.equal(first_occurrence(positions), expected)
    assert first_occurrence(torch.zeros(3, 0, dtype=torch.long)).shape == (3, 0)


def test_cap_negatives_is_the_most_allowed_columns_of_a_row():
    known = torch.zeros(3, 10, dtype=torch.bool)
    known[0, :4] = True
    known[1, :2] = True
    known[2, :7] = True
    assert cap_negatives(ALL_CANDIDATES, known) == 8
    assert cap_negatives(5, known) == 5


def test_uniform_draw_is_uniform_without_replacement_over_allowed_columns():
    n, k = 20000, 2
    allowed = torch.tensor([[True, False, True, True, False, True]]).repeat(n, 1)
    out = uniform_draw(allowed, k, _gen(0))
    assert tuple(out.shape) == (n, k)
    assert bool((out[:, 0] != out[:, 1]).all())
    assert bool(allowed.gather(1, out).all())
    freq = np.bincount(out.reshape(-1).numpy(), minlength=6) / (n * k)
    p = np.array([0.25, 0, 0.25, 0.25, 0, 0.25])
    se = np.sqrt(p * (1 - p) / (n * k))
    assert np.all(np.abs(freq - p) <= 5 * se + 1e-12)


def test_uniform_negatives_trusts_fewest_allowed_only_when_no_row_is_short():
    """A protocol that counted the drawable columns (``fewest_allowed``)
    saves the short-row check: same draw as without it; below K the check
    still runs and a short row repeats its only allowed columns."""
    known = torch.zeros(50, 12, dtype=torch.bool)
    known[::3, :4] = True  # 8 allowed columns in every third row, 12 in the rest
    plain = uniform_negatives(known, 6, _gen(4))
    trusted = uniform_negatives(known, 6, _gen(4), fewest_allowed=8)
    assert torch.equal(plain, trusted)
    assert not bool(known.gather(1, trusted).any())
    known[0, :10] = True  # row 0: 2 allowed columns < K
    short = uniform_negatives(known, 6, _gen(4), fewest_allowed=2)
    assert set(short[0].tolist()) == {10, 11}
    assert not bool(known.gather(1, short).any())


def test_uniform_draw_falls_back_to_repeats_in_a_short_row():
    allowed = torch.zeros(2, 8, dtype=torch.bool)
    allowed[0, [1, 6]] = True  # 2 allowed < k
    allowed[1] = True
    out = uniform_draw(allowed, 4, _gen(1))
    assert set(out[0].tolist()) == {1, 6}
    assert len(set(out[1].tolist())) == 4
