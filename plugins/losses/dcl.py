"""Debiased contrastive loss, DCL (Chuang et al., NeurIPS 2020).

With ``pos = e^{s+/t}``, ``neg_j = e^{s_j/t}`` over the anchor's N valid
negatives and the class prior τ⁺ (the chance that a "negative" shares the
anchor's class, i.e. is a false negative)::

    Ng = max( (Σ_j neg_j - N τ⁺ pos) / (1 - τ⁺), N e^{-1/t} )
    L  = -log( pos / (pos + Ng) )

Reference: Chuang et al., "Debiased Contrastive Learning", NeurIPS 2020
(code: chingyaoc/DCL ``main.py``; METHODS.md B2).
"""

from __future__ import annotations

import torch

from harness import Loss, hookimpl

__all__ = ["DCL"]


class DCL(Loss):
    """Contrastive loss whose negative term is corrected for false negatives.

    N is the number of valid negatives of each anchor (SimCLR's 2B - 2 when
    the negatives are the batch).  A row with no valid negative has N = 0,
    so Ng = 0 and the loss is exactly 0: the positive-only limit of the
    formula (``-log(pos / pos)``), with no gradient.

    Computed in the log domain (shifted by the row's largest logit), so very
    large scores stay finite; the clamp ``N e^{-1/t}`` is the estimator's
    lower bound for cosine scores (every s_j >= -1).

    :param temperature: t; the paper's 0.5 is for L2-normalised features,
        which the harness's cosine scores are.
    :param tau_plus: τ⁺ in [0, 1); 0 gives the biased loss (plain InfoNCE
        apart from the clamp).
    :param in_batch: also use the other anchors' positives and negatives as
        negatives (on by default: DCL's negatives are the rest of the batch).
    """

    name = "dcl"
    families = frozenset({"retrieval", "sts"})
    in_batch_default = True

    def __init__(
        self,
        *,
        temperature: float = 0.5,
        tau_plus: float = 0.1,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        if not 0 <= tau_plus < 1:
            raise ValueError("tau_plus must be in [0, 1)")
        self.temperature = temperature
        self.tau_plus = tau_plus

    def negative_mass(
        self, logits: torch.Tensor, shifted: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The (shifted) sum of negative terms that enters the estimator.

        :param logits: shape: (B, K) ``s_j / t``, 0 where masked.
        :param shifted: shape: (B, K) ``e^{s_j/t - m}``, 0 where masked.
        :param mask: shape: (B, K) bool.
        :returns: shape: (B,) ``Σ_j e^{s_j/t - m}``.
        """
        return shifted.sum(dim=1)

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        t, tau = self.temperature, self.tau_plus
        logits = negative.masked_fill(~mask, 0.0) / t  # masked may be inf/NaN
        pos_logit = positive / t
        # shift by the largest logit of the row so every exp() is <= 1
        shift = torch.maximum(
            pos_logit, logits.masked_fill(~mask, float("-inf")).amax(dim=1)
        ).detach()
        pos = torch.exp(pos_logit - shift)
        shifted = torch.exp(logits - shift[:, None]).masked_fill(~mask, 0.0)
        n = mask.sum(dim=1).to(positive.dtype)
        estimate = (self.negative_mass(logits, shifted, mask) - n * tau * pos) / (
            1 - tau
        )
        floor = n * torch.exp(-1.0 / t - shift)
        ng = torch.maximum(estimate, floor)
        return torch.log(pos + ng) + shift - pos_logit


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [DCL]
