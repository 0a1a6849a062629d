"""The protocols' optimiser: SparseAdam for sparse embeddings, AdamW otherwise."""

from __future__ import annotations

import torch

from harness.optim import make_optimizer


class Mixed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.EmbeddingBag(100, 4, mode="mean", sparse=True)
        self.dense = torch.nn.Linear(4, 4)

    def forward(self, ids):
        return self.dense(self.table(ids))


def test_sparse_rows_untouched_by_a_batch_stay_put():
    torch.manual_seed(0)
    model = Mixed()
    optimizer = make_optimizer([model], lr=0.1)
    kinds = sorted(type(p).__name__ for p in optimizer.parts)
    assert kinds == ["AdamW", "SparseAdam"]
    before = model.table.weight.detach().clone()
    dense_before = model.dense.weight.detach().clone()
    optimizer.zero_grad()
    model(torch.tensor([[1, 2, 3]])).sum().backward()
    optimizer.step()
    changed = (model.table.weight.detach() != before).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [1, 2, 3]
    assert not torch.equal(model.dense.weight.detach(), dense_before)


def test_nothing_trainable_gives_a_falsy_optimizer():
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    assert not make_optimizer([frozen], lr=0.1)
    shared = torch.nn.Linear(2, 2)
    optimizer = make_optimizer([shared, shared], lr=0.1)  # a parameter once only
    assert len(optimizer.parts[0].param_groups[0]["params"]) == 2
