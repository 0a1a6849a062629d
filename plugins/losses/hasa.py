"""HaSa loss: hardness-weighted, structure-debiased InfoNCE.

Zhang et al., "Hardness- and Structure-aware Contrastive Knowledge Graph
Embedding", WWW 2024 (code: honggen-zhang/HaSa-CKGE ``loss.py``,
``InBatch_hard_loss``; METHODS.md §4).  With logits ``p = s / t`` and the
positive's reduced by the margin, ``ν = e^{p+ - margin}``::

    w_j   = softmax_j( p_j / ||p_negatives||_2 )      hardness, detached
    f_k   = softmax_k( p_k / ||p_proxies||_2 )        over suspected columns
    de1   = Σ_j w_j e^{p_j}          (unsuspected negatives: hard + in-batch)
    de2   = τ⁺ Σ_k f_k e^{p_k}       (suspected columns: 2-hop proxies)
    L     = -log( ν / (ν + N / (1 - τ⁺) · max(de1 - de2, 0)) )

This is DCL's debiasing (Chuang et al. 2020) with the positive-class term
estimated from *structural neighbours* instead of the positive pair, and
HCL-style importance weights.  The ``hasa`` sampler supplies the suspected
columns; with any other sampler none are suspected and the loss is a
hardness-weighted InfoNCE.

Quirk: the authors' code takes N as the embedding dimension (500), not the
number of negatives; here N is the anchor's number of valid negatives, and
``n_scale`` reproduces the code's constant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from harness import Loss, hookimpl

if TYPE_CHECKING:
    from harness.types import ScoredBatch

__all__ = ["HaSaLoss"]


class HaSaLoss(Loss):
    """Hardness-weighted InfoNCE with a structure-estimated false-negative term.

    :param tau_plus: τ⁺ in [0, 1), the assumed share of false negatives.
    :param temperature: t dividing the scores.
    :param margin: subtracted from the positive logit (the code's 1).
    :param n_scale: N in the loss; None = the number of valid negatives.
    """

    name = "hasa"
    families = frozenset({"kge"})
    in_batch_default = True

    def __init__(
        self,
        *,
        tau_plus: float = 0.1,
        temperature: float = 1.0,
        margin: float = 1.0,
        n_scale: float | None = None,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if not 0 <= tau_plus < 1 or temperature <= 0:
            raise ValueError("need 0 <= tau_plus < 1 and temperature > 0")
        self.tau_plus = tau_plus
        self.temperature = temperature
        self.margin = margin
        self.n_scale = n_scale

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        suspected = (
            torch.zeros_like(batch.mask)
            if batch.suspected is None
            else batch.suspected & batch.mask
        )
        negatives = batch.mask & ~suspected
        logits = batch.negative / self.temperature
        positive = batch.positive / self.temperature - self.margin
        # a shared shift per row keeps every exp() finite (scores are unbounded)
        shift = torch.maximum(
            positive, logits.masked_fill(~batch.mask, float("-inf")).amax(dim=1)
        ).detach()
        exp = torch.exp(logits - shift[:, None]).masked_fill(~batch.mask, 0.0)
        hardness = _normalised_softmax(logits.detach(), negatives)
        proxies = _normalised_softmax(logits.detach(), suspected)
        de1 = (hardness * exp).sum(dim=1)
        de2 = self.tau_plus * (proxies * exp).sum(dim=1)
        n = (
            negatives.sum(dim=1).to(exp.dtype)
            if self.n_scale is None
            else torch.full_like(de1, self.n_scale)
        )
        mass = n / (1 - self.tau_plus) * torch.clamp(de1 - de2, min=0.0)
        nu = torch.exp(positive - shift)
        return torch.log(nu + mass) - torch.log(nu)


def _normalised_softmax(logits: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """softmax over ``columns`` of the row-L2-normalised logits; 0 elsewhere."""
    masked = logits.masked_fill(~columns, 0.0)
    norm = masked.norm(dim=1, keepdim=True).clamp(min=1e-12)
    weights = torch.softmax((logits / norm).masked_fill(~columns, float("-inf")), dim=1)
    return weights.nan_to_num(0.0)  # a row without such columns weighs nothing


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [HaSaLoss]
