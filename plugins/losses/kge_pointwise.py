"""Sigmoid losses of KGE training: ``softplus`` and ``nssa``.

* ``softplus`` (Trouillon et al., ICML 2016; PyKEEN ``SoftplusLoss``): the
  logistic loss of each score as a binary label, positive 1 and negatives 0,
  averaged over the anchor's positive and valid negatives:
  ``(softplus(-s+) + Σ_j softplus(s_j)) / (1 + n)``.
* ``nssa`` (Sun et al., "RotatE", ICLR 2019; code ``model.py`` ``train_step``;
  METHODS.md B6): self-adversarial negative sampling,
  ``L = ½[-log σ(γ + s+)] + ½[-Σ_j p_j log σ(-(γ + s_j))]`` with
  ``p = softmax(α s_j)`` over the valid negatives, **detached**.  Scores are
  the model's (``-distance`` for TransE/RotatE), so ``γ + s`` is the paper's
  ``γ - d``.  ``adversarial_temperature = 0`` gives the uniform mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import Loss, hookimpl

__all__ = ["NSSA", "Softplus"]


class Softplus(Loss):
    """Pointwise logistic loss over the positive and each negative."""

    name = "softplus"
    families = frozenset({"kge"})

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        negative_part = F.softplus(negative).masked_fill(~mask, 0.0).sum(dim=1)
        return (F.softplus(-positive) + negative_part) / (1 + mask.sum(dim=1))


class NSSA(Loss):
    """Self-adversarial negative sampling loss (RotatE).

    :param margin: γ, added to every score (``γ - d`` for distance models).
    :param adversarial_temperature: α; 0 = plain mean over negatives.
    """

    name = "nssa"
    families = frozenset({"kge"})

    def __init__(
        self,
        *,
        margin: float = 9.0,
        adversarial_temperature: float = 1.0,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if adversarial_temperature < 0:
            raise ValueError("adversarial_temperature must be >= 0")
        self.margin = margin
        self.adversarial_temperature = adversarial_temperature

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        logits = (self.adversarial_temperature * negative.detach()).masked_fill(
            ~mask, float("-inf")
        )
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0)  # rows with none: 0
        negative_part = -(weights * F.logsigmoid(-(self.margin + negative)))
        negative_part = negative_part.masked_fill(~mask, 0.0).sum(dim=1)
        positive_part = -F.logsigmoid(self.margin + positive)
        return (positive_part + negative_part) / 2


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [Softplus, NSSA]
