"""Dice semimetric loss (``dice``), the JDTLoss family.

Wang, Popordanoska, Bertels, Lemmens & Blaschko, "Dice Semimetric Losses:
Optimizing the Dice Score with Soft Labels", MICCAI 2023 (official code
``losses/jdt_loss.py``).  With Lp "cardinalities" of predictions x and
(soft) labels y,

    |x| = ‖x‖ₚᵖ,  |y| = ‖y‖ₚᵖ,  Δ = ‖x - y‖ₚᵖ
    TP = (|x| + |y| - Δ) / 2,  FP = |x| - TP,  FN = |y| - TP
    T  = (TP + s) / (TP + α FP + β FN + s),  loss = 1 - T  (or -log T)

α = β = 0.5 is Dice, α = β = 1 Jaccard.  For hard labels and p = 1 it equals
the soft Dice loss; unlike soft Dice it is 0 exactly when x = y, also for
soft labels (a semimetric), which is the paper's point.

In multi-label classification the "pixels" are an example's label columns:
the loss compares the example's predicted probabilities with its label
vector over the columns the sampler kept (per example, JDT's "I" mode with
one class).  The paper's dataset-level "D" mode sums over the whole batch
and so has no per-example value; it is not offered.  As the official
``dice_d`` configs do, the default adds cross-entropy: ``0.25 BCE + 0.75
Dice`` (BCE averaged over the example's columns).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import Loss, hookimpl
from harness.types import ScoredBatch

from .asl import label_view, row_mean

__all__ = ["DiceSemimetric", "jdt_loss"]


def jdt_loss(
    probabilities: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    smooth: float = 1.0,
    p: int = 1,
    log_loss: bool = False,
    gamma: float = 1.0,
) -> torch.Tensor:
    """Per-row JDT (Tversky semimetric) loss over the masked columns.

    shapes: (B, L) probabilities, (B, L) soft labels, (B, L) bool -> (B,).
    """
    weight = mask.to(probabilities.dtype)
    x, y = probabilities * weight, targets * weight
    size_x = x.abs().pow(p).sum(dim=1)
    size_y = y.abs().pow(p).sum(dim=1)
    difference = (x - y).abs().pow(p).sum(dim=1)
    tp = (size_x + size_y - difference) / 2
    fp, fn = size_x - tp, size_y - tp
    tversky = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    loss = -torch.log(tversky.clamp(min=1e-12)) if log_loss else 1.0 - tversky
    return loss.pow(gamma) if gamma != 1.0 else loss


class DiceSemimetric(Loss):
    """Dice semimetric loss over each example's label columns, plus BCE.

    :param bce_weight: weight of the averaged BCE term (Dice gets the rest);
        0.25 as the official configs.
    :param alpha: Tversky weight of false positives (0.5 = Dice).
    :param beta: Tversky weight of false negatives (0.5 = Dice).
    :param smooth: additive smoothing s (1.0).
    :param p: norm of the cardinalities (1 = DML₁; 2 = the V-Net form).
    :param log_loss: use -log T instead of 1 - T.
    :param label_smoothing: ε: targets become ``y (1 - ε) + ε / 2``, the soft
        labels the semimetric is designed for (0 = the observed hard labels).
    """

    name = "dice"
    families = frozenset({"multilabel"})

    def __init__(
        self,
        *,
        bce_weight: float = 0.25,
        alpha: float = 0.5,
        beta: float = 0.5,
        smooth: float = 1.0,
        p: int = 1,
        log_loss: bool = False,
        label_smoothing: float = 0.0,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if not 0.0 <= bce_weight <= 1.0 or not 0.0 <= label_smoothing < 1.0:
            raise ValueError("need bce_weight in [0, 1] and label_smoothing in [0, 1)")
        if p not in (1, 2) or smooth < 0 or alpha < 0 or beta < 0:
            raise ValueError("need p in (1, 2) and non-negative alpha, beta, smooth")
        self.bce_weight = bce_weight
        self.alpha, self.beta, self.smooth, self.p = alpha, beta, smooth, p
        self.log_loss = log_loss
        self.label_smoothing = label_smoothing

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        view = label_view(batch, self)
        eps = self.label_smoothing
        targets = view.targets * (1 - eps) + eps / 2 if eps else view.targets
        dice = jdt_loss(
            torch.sigmoid(view.logits),
            targets,
            view.mask,
            alpha=self.alpha,
            beta=self.beta,
            smooth=self.smooth,
            p=self.p,
            log_loss=self.log_loss,
        )
        if self.bce_weight == 0.0:
            return dice
        bce = F.binary_cross_entropy_with_logits(view.logits, targets, reduction="none")
        return self.bce_weight * row_mean(bce, view.mask) + (1 - self.bce_weight) * dice


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [DiceSemimetric]
