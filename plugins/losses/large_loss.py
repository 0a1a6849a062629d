"""Partial-label losses: ``assume-negative``, ``ll-r`` and ``ll-ct``.

In the partial-label setting only some positive labels are observed; every
unobserved label is *assumed* negative, so some of those "negatives" are
hidden positives: false negatives by construction.  Kim, Kim, Akata & Lee,
"Large Loss Matters in Weakly Supervised Multi-Label Classification", CVPR
2022 (code ``losses.py``, ``compute_batch_loss``; also used by BoostLU, Kim
et al., CVPR 2023) observe that the model memorises those false negatives
late, after the clean labels, so the assumed negatives with the *largest*
loss are likely false: reject them (LL-R) or correct them to positive for
the step (LL-Ct).

The schedule: epoch 1 is unmodified (clean rate 1); from then on the clean
rate drops by Δ per epoch, and in each batch the top
``k = ceil(N_entries x (1 - clean rate))`` assumed-negative entries by loss
are modified.  Loss = mean over the entries (the reference averages over
the batch's B x L entries; here over each example's columns, which the
harness then averages over examples; equal when every column counts).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from harness import Loss, hookimpl
from harness.types import ScoredBatch

from .asl import label_view, row_mean

__all__ = ["AssumeNegative", "LargeLossCorrection", "LargeLossRejection"]


class AssumeNegative(Loss):
    """ "Assume negative" (AN): BCE with unobserved labels as negatives.

    The baseline of the partial-label papers (Cole et al., "Multi-Label
    Learning from Single Positive Labels", CVPR 2021; Kim et al., CVPR 2022),
    averaged over label entries.  ``negative_weight`` scales the assumed
    negatives' loss: 1 = AN, ``1 / (L - 1)`` = Cole et al.'s weak AN (WAN).
    With full labels nothing is assumed and this is averaged BCE.
    """

    name = "assume-negative"
    families = frozenset({"multilabel"})

    def __init__(
        self, *, negative_weight: float = 1.0, in_batch: bool | None = None
    ) -> None:
        super().__init__(in_batch=in_batch)
        if negative_weight < 0:
            raise ValueError("negative_weight must be >= 0")
        self.negative_weight = negative_weight

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        view = label_view(batch, self)
        loss = F.binary_cross_entropy_with_logits(
            view.logits, view.targets, reduction="none"
        )
        if self.negative_weight != 1.0:
            scale = torch.where(view.assumed, self.negative_weight, 1.0)
            loss = loss * scale.to(loss.dtype)
        return row_mean(loss, view.mask)


class _LargeLoss(Loss):
    """AN, then the largest-loss assumed negatives are modified."""

    families = frozenset({"multilabel"})
    scheme: ClassVar[Literal["reject", "correct"]]
    default_delta: ClassVar[float]

    def __init__(
        self, *, delta: float | None = None, in_batch: bool | None = None
    ) -> None:
        super().__init__(in_batch=in_batch)
        delta = self.default_delta if delta is None else delta
        if not 0.0 <= delta < 1.0:
            raise ValueError("delta (clean-rate drop per epoch) must be in [0, 1)")
        self.delta = delta

    def clean_rate(self, epoch: int) -> float:
        """Share of assumed negatives left as they are in 0-based ``epoch``."""
        return max(0.0, 1.0 - epoch * self.delta)

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        view = label_view(batch, self)
        loss = F.binary_cross_entropy_with_logits(
            view.logits, view.targets, reduction="none"
        )
        candidates = view.assumed & view.mask
        k = math.ceil(int(view.mask.sum()) * (1.0 - self.clean_rate(view.epoch)))
        k = min(k, int(candidates.sum()))
        if k > 0:
            ranked = loss.detach().masked_fill(~candidates, float("-inf"))
            threshold = ranked.flatten().topk(k).values[-1]
            # ties with the k-th largest are modified too, as the reference does
            large = candidates & (ranked >= threshold)
            if self.scheme == "reject":
                replacement = torch.zeros_like(loss)
            else:  # the assumed negative is treated as a positive this step
                replacement = F.binary_cross_entropy_with_logits(
                    view.logits, 1.0 - view.targets, reduction="none"
                )
            loss = torch.where(large, replacement, loss)
        return row_mean(loss, view.mask)


class LargeLossRejection(_LargeLoss):
    """LL-R: the largest-loss assumed negatives are dropped from the loss.

    :param delta: clean-rate drop per epoch Δ (0.5% in the reference).
    """

    name = "ll-r"
    scheme = "reject"
    default_delta = 0.005


class LargeLossCorrection(_LargeLoss):
    """LL-Ct: the largest-loss assumed negatives are trained as positives
    for that step (temporary correction).

    :param delta: clean-rate drop per epoch Δ (0.2% in the reference).
    """

    name = "ll-ct"
    scheme = "correct"
    default_delta = 0.002


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [AssumeNegative, LargeLossRejection, LargeLossCorrection]
