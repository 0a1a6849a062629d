"""Candidate pools of the contrastive families (:mod:`negbench_plugins.tasks.pools`)."""

from __future__ import annotations

import warnings

import pytest
import torch

from negbench_plugins.tasks import pools
from negbench_plugins.tasks.pools import (
    NO_MEMBER,
    member_rows,
    member_table,
    membership,
)


def _by_hand(ids: torch.Tensor, sets: list[set[int]]) -> torch.Tensor:
    rows = zip(ids.tolist(), sets, strict=True)
    flags = [[i in members for i in row] for row, members in rows]
    return torch.tensor(flags, dtype=torch.bool).reshape(ids.shape)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("largest", [4, 40])  # compared at once; searched
def test_membership_is_each_rows_own_set(seed: int, largest: int) -> None:
    """A member of another row's set is not a member; ids repeat within a
    row; sets hold ids the pool lacks, and may be empty; a member table's
    looked-up rows answer as the sets do."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 40, (16, 12), generator=generator)
    sets = [
        set(torch.randint(0, 60, (int(n),), generator=generator).tolist())
        for n in torch.randint(0, largest + 1, (16,), generator=generator)
    ]
    sets[3] = set(ids[3, :2].tolist())  # certainly present
    sets[4] = set()
    expected = _by_hand(ids, sets)
    assert torch.equal(membership(ids, sets), expected)
    assert expected[3, :2].all()
    table = member_table([set(), *sets])  # the anchors' rows: 1..16
    assert (table.shape[1] > 16) == (largest > 16)  # both look-ups are tested
    assert torch.equal(membership(ids, table[torch.arange(1, 17)]), expected)


@pytest.mark.parametrize("largest", [4, 40])
def test_membership_of_ids_shared_by_every_row(largest: int) -> None:
    """In-batch columns: one id row expanded over the batch (a view), which
    the look-up takes without a warning (the harness fails a run on one)."""
    shared = torch.arange(50).expand(3, -1)
    sets = [set(range(0, 2 * largest, 2)), set(), {49}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = membership(shared, member_table(sets))
    assert torch.equal(found, _by_hand(shared, sets))


def test_member_table_rows_are_ascending_and_padded() -> None:
    table = member_table([{5, 2}, set(), {7}])
    assert table.tolist() == [[2, 5], [NO_MEMBER, NO_MEMBER], [7, NO_MEMBER]]
    assert member_table([]).shape == (0, 0)
    assert member_table([set(), set()]).shape == (2, 0)


def test_membership_with_padding_ids_nothing_to_find_or_no_rows() -> None:
    ids = torch.tensor([[-1, 5, 7], [2, -1, 9]])
    sets = [{7, 100}, {-1}]
    assert membership(ids, sets).tolist() == [
        [False, False, True],
        [False, True, False],
    ]
    assert not membership(ids, [set(), set()]).any()
    assert membership(torch.zeros(0, 4, dtype=torch.long), []).shape == (0, 4)


def test_member_rows_fall_back_to_sets_when_a_table_would_be_huge(monkeypatch):
    """One anchor with very many positives would make every row of a table
    that wide: past the size cap, the anchors' sets are looked up instead,
    with the same answers."""
    sets = [{1, 2}, set(range(100)), {7}]
    anchors = torch.tensor([2, 0, 1])
    ids = torch.tensor([[7, 1, 150], [2, 3, 1], [99, 100, 0]])
    table_rows = member_rows(sets)(anchors)
    assert isinstance(table_rows, torch.Tensor)
    monkeypatch.setattr(pools, "MAX_TABLE_CELLS", 10)
    set_rows = member_rows(sets)(anchors)
    assert set_rows == [{7}, {1, 2}, set(range(100))]
    expected = [[True, False, False], [True, False, True], [True, False, True]]
    assert membership(ids, table_rows).tolist() == expected
    assert membership(ids, set_rows).tolist() == expected
