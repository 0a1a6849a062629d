"""The KGE models' hand-written backward passes equal autograd's.

Scores themselves are checked against PyKEEN in
``tests/plugins/tasks/test_kge_protocol.py``; here the two custom autograd
functions (the table lookup and TransE's L1 score) are checked with
``gradcheck`` and against the plain autograd expressions they replace.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from negbench_plugins.models.kge import TransE, _Lookup, _NegativeL1


def test_lookup_gradient_is_the_embedding_gradient() -> None:
    table = torch.randn(7, 3, dtype=torch.double, requires_grad=True)
    ids = torch.tensor([[0, 3, 3], [6, 0, 0]])  # repeated ids accumulate
    assert torch.autograd.gradcheck(lambda t: _Lookup.apply(t, ids), (table,))
    upstream = torch.randn(2, 3, 3, dtype=torch.double)
    (ours,) = torch.autograd.grad(_Lookup.apply(table, ids), table, upstream)
    (reference,) = torch.autograd.grad(
        nn.functional.embedding(ids, table), table, upstream
    )
    assert torch.equal(ours, reference)


@pytest.mark.parametrize(
    ("h_shape", "r_shape", "t_shape"),
    [
        ((4, 1, 5), (4, 1, 5), (4, 3, 5)),
        ((4, 5), (1, 5), (4, 5)),
        ((1, 5), (4, 5), (4, 5)),
    ],
)
def test_l1_score_gradient_is_autograds(h_shape, r_shape, t_shape) -> None:
    gen = torch.Generator().manual_seed(0)
    h, r, t = (
        torch.randn(shape, dtype=torch.double, generator=gen, requires_grad=True)
        for shape in (h_shape, r_shape, t_shape)
    )
    assert torch.autograd.gradcheck(_NegativeL1.apply, (h, r, t))
    ours = _NegativeL1.apply(h, r, t)
    reference = -(h + r - t).abs().sum(dim=-1)
    assert torch.allclose(ours, reference)
    upstream = torch.randn(reference.shape, dtype=torch.double, generator=gen)
    for mine, theirs in zip(
        torch.autograd.grad(ours, (h, r, t), upstream),
        torch.autograd.grad(reference, (h, r, t), upstream),
        strict=True,
    ):
        assert torch.allclose(mine, theirs)


def test_transe_trains_through_the_custom_functions() -> None:
    torch.manual_seed(0)
    model = TransE(dim=8)
    model.build(10, 4)
    scores = model.score_pairs(
        torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([[4, 5], [6, 6]])
    )
    scores.sum().backward()
    entity, relation = model.tables()
    assert entity.weight.grad is not None and relation.weight.grad is not None
    touched = entity.weight.grad.abs().sum(dim=1) > 0
    assert touched.nonzero().flatten().tolist() == [0, 1, 4, 5, 6]
    assert relation.weight.grad.abs().sum(dim=1).nonzero().flatten().tolist() == [2, 3]
