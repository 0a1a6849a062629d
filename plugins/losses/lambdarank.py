"""LambdaRank-style pairwise loss of ADORE (Zhan et al., SIGIR 2021).

For the positive + and every valid negative j of an anchor:
``C_j = log(1 + exp(-scale * (s+ - s_j)))`` weighted by the change in
reciprocal rank if the two swapped, ``w_j = |1/rank+ - 1/rank_j|``, where the
ranks are those of the current (detached) scores among the positive and the
valid negatives and ``1/rank = 0`` beyond ``metric_cut`` (ΔMRR@cut).

Reference: Zhan et al., "Optimizing Dense Retrieval Model Training with Hard
Negatives", SIGIR 2021 (code: jingtaozhan/DRhard, ``adore/train.py``;
METHODS.md §5b).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import Loss, hookimpl

__all__ = ["LambdaRank", "reciprocal_ranks"]


def reciprocal_ranks(
    scores: torch.Tensor, valid: torch.Tensor, metric_cut: int | None
) -> torch.Tensor:
    """``1/rank`` of every column among the valid ones, 0 beyond ``metric_cut``.

    Ranks are 1-based in descending score order; ties go to the lower column
    index (the positive, at column 0, wins its ties).  Invalid columns get 0.

    :param scores: shape: (B, C) detached scores.
    :param valid: shape: (B, C) bool.
    :returns: shape: (B, C).
    """
    filled = scores.masked_fill(~valid, float("-inf"))
    order = torch.sort(filled, dim=1, descending=True, stable=True).indices
    positions = torch.arange(1, scores.shape[1] + 1, device=scores.device)
    ranks = torch.empty_like(order).scatter_(
        1, order, positions.expand_as(order).contiguous()
    )
    inverse = 1.0 / ranks.to(scores.dtype)
    keep = valid if metric_cut is None else valid & (ranks <= metric_cut)
    return inverse.masked_fill(~keep, 0.0)


class LambdaRank(Loss):
    """Pairwise logistic loss weighted by ΔMRR of swapping the pair.

    Per anchor the loss is the mean over its valid negatives of ``w_j * C_j``.
    ADORE divides the sum over its pair matrix by ``2 * #pos-pairs``; that
    matrix holds each (relevant, non-relevant) pair twice, once per ordering,
    so the quotient is this same per-pair mean.  With one positive per anchor,
    the ranks are those among the positive and the valid negatives (ADORE's
    retrieved top-k, with the positive appended when it was not retrieved).
    A row with no valid negative has loss 0.

    :param scale: logit scale on the cosine scores (20 = temperature 0.05, the
        harness convention); ADORE uses raw dot products (scale 1).
    :param metric_cut: reciprocal ranks beyond this are 0 (MRR@10 by default;
        the ADORE README command uses 200); None for no cut.
    :param in_batch: also use the other anchors' positives and negatives as
        negatives (off: ADORE ranks each query's own retrieved list).
    """

    name = "lambdarank"
    families = frozenset({"retrieval", "sts"})
    in_batch_default = False

    def __init__(
        self,
        *,
        scale: float = 20.0,
        metric_cut: int | None = 10,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if scale <= 0:
            raise ValueError("scale must be > 0")
        if metric_cut is not None and metric_cut < 1:
            raise ValueError("metric_cut must be >= 1 or None")
        self.scale = scale
        self.metric_cut = metric_cut

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        negative = negative.masked_fill(~mask, 0.0)  # masked entries may be inf/NaN
        with torch.no_grad():
            scores = torch.cat([positive[:, None], negative], dim=1)
            valid = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
            inverse = reciprocal_ranks(scores, valid, self.metric_cut)
            weight = (inverse[:, :1] - inverse[:, 1:]).abs()
        pair = F.softplus(self.scale * (negative - positive[:, None]))
        pair = (weight * pair).masked_fill(~mask, 0.0)
        return pair.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [LambdaRank]
