"""Pairwise logistic loss of STAR (Zhan et al., SIGIR 2021).

``L = mean_j softplus(scale * (s_j - s+))`` over every valid negative column,
i.e. the two-way softmax cross-entropy
``-log( e^{s+} / (e^{s+} + e^{s_j}) )`` of each (positive, negative) pair,
averaged.  STAR pairs each query with its static hard negatives and with the
other queries' positives and hard negatives (in-batch random negatives).

Reference: Zhan et al., "Optimizing Dense Retrieval Model Training with Hard
Negatives", SIGIR 2021 (code: jingtaozhan/DRhard, ``model.py``
``inbatch_train``; METHODS.md §5a).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import Loss, hookimpl

__all__ = ["PairwiseLogistic"]


class PairwiseLogistic(Loss):
    """Softplus of each negative's margin over the positive, averaged.

    STAR averages over all (query, negative) pairs of the batch; here each
    anchor averages over its own valid negatives and the harness takes the
    mean over anchors (identical when every anchor has as many valid columns).
    A row with no valid negative has loss 0.

    :param scale: logit scale applied to the cosine scores; 20 matches the
        sentence-transformers convention (temperature 0.05).  STAR itself uses
        raw dot products of unnormalised embeddings (scale 1).
    :param in_batch: also use the other anchors' positives and negatives as
        negatives (STAR's in-batch random negatives; on by default).
    """

    name = "pairwise-logistic"
    families = frozenset({"retrieval", "sts"})
    in_batch_default = True

    def __init__(self, *, scale: float = 20.0, in_batch: bool | None = None) -> None:
        super().__init__(in_batch=in_batch)
        if scale <= 0:
            raise ValueError("scale must be > 0")
        self.scale = scale

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        negative = negative.masked_fill(~mask, 0.0)  # masked entries may be inf/NaN
        pair = F.softplus(self.scale * (negative - positive[:, None]))
        pair = pair.masked_fill(~mask, 0.0)
        return pair.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [PairwiseLogistic]
