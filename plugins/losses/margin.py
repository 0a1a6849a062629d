"""Margin ranking (hinge) loss over every valid negative.

``L = mean_j max(0, m - s+ + s_j)`` — the pairwise hinge of RankNet-era
learning to rank and of TransE (Bordes et al., NeurIPS 2013); with cosine
scores the margin is in cosine units.
"""

from __future__ import annotations

import torch

from harness import Loss, hookimpl

__all__ = ["MarginRanking"]


class MarginRanking(Loss):
    """Hinge on the gap between the positive and each negative.

    :param margin: m, the required gap between positive and negative scores.
    :param in_batch: also use the other anchors' positives as negatives.
    """

    name = "margin"
    families = frozenset({"retrieval", "sts", "kge"})
    in_batch_default = False
    #: cosine gaps are small; KGE scores are distances (PyKEEN's default margin)
    family_defaults = {"kge": {"margin": 1.0}}

    def __init__(self, *, margin: float = 0.2, in_batch: bool | None = None) -> None:
        super().__init__(in_batch=in_batch)
        self.margin = margin

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        hinge = torch.relu(self.margin - positive[:, None] + negative)
        hinge = hinge.masked_fill(~mask, 0.0)  # masked entries may hold inf/NaN
        return hinge.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [MarginRanking]
