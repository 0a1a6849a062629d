"""The optimiser every training protocol uses: AdamW, plus SparseAdam where it pays.

An embedding table trained from scratch (the ``bow`` model's 65k x 128 rows)
gets a gradient in only the rows a batch touches.  AdamW would still update
all of them every step; an ``nn.Embedding``/``nn.EmbeddingBag`` built with
``sparse=True`` instead gets ``torch.optim.SparseAdam``, which touches only the
rows in the batch and makes such a model several times faster to train.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["Optimizer", "make_optimizer"]


class Optimizer:
    """AdamW over the dense parameters and SparseAdam over sparse embeddings."""

    def __init__(self, modules: Iterable[torch.nn.Module], lr: float) -> None:
        sparse: list[torch.Tensor] = []
        for module in modules:
            for sub in module.modules():
                if (
                    isinstance(sub, torch.nn.Embedding | torch.nn.EmbeddingBag)
                    and sub.sparse
                ):
                    sparse.append(sub.weight)
        seen = {id(p) for p in sparse}
        dense: list[torch.Tensor] = [
            p
            for module in modules
            for p in module.parameters()
            if p.requires_grad and id(p) not in seen
        ]
        dense = list({id(p): p for p in dense}.values())
        sparse = [p for p in sparse if p.requires_grad]
        self.parts: list[torch.optim.Optimizer] = []
        if dense:
            # the fused kernel: one pass per tensor, a third of the time of
            # the default on small models (KGE tables), same update rule
            fused = all(
                p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point
                for p in dense
            )
            self.parts.append(torch.optim.AdamW(dense, lr=lr, fused=fused))
        if sparse:
            self.parts.append(torch.optim.SparseAdam(sparse, lr=lr))

    def __bool__(self) -> bool:
        return bool(self.parts)

    def zero_grad(self) -> None:
        for part in self.parts:
            part.zero_grad()

    def step(self) -> None:
        for part in self.parts:
            part.step()


def make_optimizer(modules: Iterable[torch.nn.Module], lr: float) -> Optimizer:
    """One optimiser over every trainable parameter of ``modules``."""
    return Optimizer(list(modules), lr)
