"""Candidate pools of the contrastive families (:mod:`negbench_plugins.tasks.pools`)."""

from __future__ import annotations

import pytest
import torch

from negbench_plugins.tasks.pools import membership


def _by_hand(ids: torch.Tensor, sets: list[set[int]]) -> torch.Tensor:
    rows = zip(ids.tolist(), sets, strict=True)
    flags = [[i in members for i in row] for row, members in rows]
    return torch.tensor(flags, dtype=torch.bool).reshape(ids.shape)


@pytest.mark.parametrize("seed", range(5))
def test_membership_is_each_rows_own_set(seed: int) -> None:
    """A member of another row's set is not a member; ids repeat within a
    row; sets hold ids the pool lacks, and may be empty."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 40, (16, 12), generator=generator)
    sets = [
        set(torch.randint(0, 60, (int(n),), generator=generator).tolist())
        for n in torch.randint(0, 5, (16,), generator=generator)
    ]
    sets[3] = set(ids[3, :2].tolist())  # certainly present
    sets[4] = set()
    assert torch.equal(membership(ids, sets), _by_hand(ids, sets))
    assert membership(ids, sets)[3, :2].all()


def test_membership_with_padding_ids_nothing_to_find_or_no_rows() -> None:
    ids = torch.tensor([[-1, 5, 7], [2, -1, 9]])
    sets = [{7, 100}, {-1}]
    assert membership(ids, sets).tolist() == [
        [False, False, True],
        [False, True, False],
    ]
    assert not membership(ids, [set(), set()]).any()
    assert membership(torch.zeros(0, 4, dtype=torch.long), []).shape == (0, 4)
