"""Hard-negative contrastive loss, HCL (Robinson et al., ICLR 2021).

DCL's debiased estimator with the negatives importance-weighted towards the
hard ones: ``imp_j = neg_j^β = e^{β s_j / t}`` and::

    R  = Σ_j imp_j neg_j / mean_j(imp_j)        (= N Σ_j w̃_j neg_j)
    Ng = max( (R - N τ⁺ pos) / (1 - τ⁺), N e^{-1/t} )
    L  = -log( pos / (pos + Ng) )

β = 0 recovers DCL exactly; τ⁺ = 0 gives hard-negative weighting alone.

Reference: Robinson et al., "Contrastive Learning with Hard Negative
Samples", ICLR 2021 (code: joshr17/HCL ``image/main.py``, estimator
``hard``; METHODS.md B3).
"""

from __future__ import annotations

import torch

from harness import Loss, hookimpl

from .dcl import DCL

__all__ = ["HCL"]


class HCL(DCL):
    """DCL with negatives reweighted by ``e^{β s_j / t}`` (self-normalised).

    N counts the anchor's valid negatives; a row with none has loss 0, as
    in DCL.  Gradients flow through the importance weights, as in the
    authors' code.

    :param beta: concentration β >= 0 on hard negatives (0 = DCL).
    :param tau_plus: τ⁺ in [0, 1), the class prior of false negatives.
    :param temperature: t; the paper's 0.5 is for L2-normalised features.
    :param in_batch: also use the other anchors' positives and negatives as
        negatives (on by default: HCL's negatives are the rest of the batch).
    """

    name = "hcl"

    def __init__(
        self,
        *,
        beta: float = 1.0,
        tau_plus: float = 0.1,
        temperature: float = 0.5,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(temperature=temperature, tau_plus=tau_plus, in_batch=in_batch)
        if beta < 0:
            raise ValueError("beta must be >= 0")
        self.beta = beta

    def negative_mass(
        self, logits: torch.Tensor, shifted: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """``Σ_j imp_j e^{s_j/t - m} / mean_j imp_j`` (imp shifted to <= 1)."""
        weighted = self.beta * logits
        top = weighted.masked_fill(~mask, float("-inf")).amax(dim=1).detach()
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        imp = torch.exp(weighted - top[:, None]).masked_fill(~mask, 0.0)
        n = mask.sum(dim=1).to(imp.dtype)
        mean_imp = torch.where(
            n > 0, imp.sum(dim=1) / n.clamp(min=1), torch.ones_like(n)
        )
        return (imp * shifted).sum(dim=1) / mean_imp


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [HCL]
