"""Per-label sigmoid losses of the multi-label family: ``bce``, ``focal``, ``asl``.

All three read :attr:`ScoredBatch.labels` (every label column of an example,
observed positives and sampled negatives switched on by ``mask``) and return
one loss per example, *summed* over its label columns as ASL's reference code
sums (the harness then averages over examples).  BCE and focal loss are the
special cases of ASL's formula that the ASL paper compares against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import Loss, hookimpl
from harness.types import LabelScores, ScoredBatch

__all__ = ["ASL", "BCE", "Focal", "asymmetric_loss", "label_view", "row_mean"]

#: ASL's clamp inside the logarithms
EPS = 1e-8


def label_view(batch: ScoredBatch, loss: Loss) -> LabelScores:
    """The batch's :class:`LabelScores`, or a clear error for other families."""
    if batch.labels is None:
        raise ValueError(
            f"loss '{loss.name}' needs the multi-label view (ScoredBatch.labels); "
            "only multi-label tasks provide it"
        )
    return batch.labels


def row_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of each row over its masked-in columns. shapes: (B, L) -> (B,)."""
    weight = mask.to(values.dtype)
    return (values * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)


def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma_neg: float,
    gamma_pos: float,
    clip: float,
    detach_focus: bool,
) -> torch.Tensor:
    """Elementwise ASL (Ridnik et al., ICCV 2021, ``AsymmetricLoss``).

    ``-[y (1-p)^γ+ log p + (1-y) p_m^γ- log(1-p_m)]`` with the shifted
    probability ``p_m = max(p - clip, 0)``; ``detach_focus`` computes the
    focusing weight without gradient (``disable_torch_grad_focal_loss``).
    shapes: (B, L), (B, L) -> (B, L).
    """
    p = torch.sigmoid(logits)
    p_neg = 1.0 - p
    if clip > 0:
        p_neg = (p_neg + clip).clamp(max=1.0)
    loss = targets * torch.log(p.clamp(min=EPS)) + (1.0 - targets) * torch.log(
        p_neg.clamp(min=EPS)
    )
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_focus):
            p_true = p * targets + p_neg * (1.0 - targets)
            gamma = gamma_pos * targets + gamma_neg * (1.0 - targets)
            weight = torch.pow(1.0 - p_true, gamma)
        loss = loss * weight
    return -loss


class BCE(Loss):
    """Binary cross-entropy per label (binary relevance), summed over labels.

    With partial labels, unobserved labels are treated as negatives: this
    *is* the "assume negative" baseline of the partial-label papers (see
    ``assume-negative`` for its averaged form with an optional weight).
    """

    name = "bce"
    families = frozenset({"multilabel"})

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        view = label_view(batch, self)
        loss = F.binary_cross_entropy_with_logits(
            view.logits, view.targets, reduction="none"
        )
        return (loss * view.mask).sum(dim=1)


class Focal(Loss):
    """Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    ``FL = -α_t (1 - p_t)^γ log p_t`` per label, as torchvision's
    ``sigmoid_focal_loss``; summed over labels.

    :param gamma: focusing parameter γ (2 in the paper).
    :param alpha: weight of positives (negatives get 1 - α); None = no
        weighting.  0.25 is RetinaNet's default.
    """

    name = "focal"
    families = frozenset({"multilabel"})

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: float | None = 0.25,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if gamma < 0 or (alpha is not None and not 0.0 <= alpha <= 1.0):
            raise ValueError("need gamma >= 0 and alpha in [0, 1]")
        self.gamma = gamma
        self.alpha = alpha

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        view = label_view(batch, self)
        logits, targets = view.logits, view.targets
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce * (1 - p_t) ** self.gamma
        if self.alpha is not None:
            loss = (self.alpha * targets + (1 - self.alpha) * (1 - targets)) * loss
        return (loss * view.mask).sum(dim=1)


class ASL(Loss):
    """Asymmetric Loss (Ridnik et al., "Asymmetric Loss For Multi-Label
    Classification", ICCV 2021).

    Negatives are down-weighted by ``p_m^γ-`` and the easiest ones discarded
    entirely by the probability shift ``m`` (``clip``), which also rejects
    mislabeled negatives (missing positives) whose probability is high.

    :param gamma_neg: γ- (4, as the official ``train.py``).
    :param gamma_pos: γ+ (0 in ``train.py``; the class default is 1).
    :param clip: probability margin m (0.05).
    :param detach_focus: compute the focusing weight without gradient, as
        ``train.py`` does (``disable_torch_grad_focal_loss=True``).
    """

    name = "asl"
    families = frozenset({"multilabel"})

    def __init__(
        self,
        *,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        detach_focus: bool = True,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if gamma_neg < 0 or gamma_pos < 0 or not 0.0 <= clip < 1.0:
            raise ValueError("need gamma_neg, gamma_pos >= 0 and clip in [0, 1)")
        self.gamma_neg = gamma_neg
        self.gamma_pos = gamma_pos
        self.clip = clip
        self.detach_focus = detach_focus

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        view = label_view(batch, self)
        loss = asymmetric_loss(
            view.logits,
            view.targets,
            gamma_neg=self.gamma_neg,
            gamma_pos=self.gamma_pos,
            clip=self.clip,
            detach_focus=self.detach_focus,
        )
        return (loss * view.mask).sum(dim=1)


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [BCE, Focal, ASL]
