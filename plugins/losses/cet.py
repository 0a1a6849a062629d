"""CET: coupled estimation of relevance and selection (Cai et al., CIKM 2022).

Under pooling bias an unlabelled top-ranked document is either a true
negative that was judged, or a relevant one that was never selected for
judging.  CET co-trains two scorers on the same (positive, negative) pairs:
the relevance model R (here, the run's model) and a selection model S (here,
owned by the loss).  Each step, with no gradient::

    w_R = 1 / (1 - sigmoid(S(q, d⁻) / T))      w_S = 1 / (1 - sigmoid(R(q, d⁻) / T))

and each model minimises its weighted pairwise softmax cross-entropy
``w · CE([s(q,d⁺), s(q,d⁻)], 0) = w · softplus(scale (s⁻ - s⁺))``.  R thus
trusts negatives that S thinks were judged; S learns from pairs whose
negative R finds relevant (likely unlabelled because never selected).

Reference: Cai et al., "Hard Negatives or False Negatives: Correcting Pooling
Bias in Training Neural Ranking Models", CIKM 2022 (code:
caiyinqiong/Coupled_Estimation_Technique, ``modeling.py``, ``train.py``;
METHODS.md §2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from harness import Loss, hookimpl

if TYPE_CHECKING:
    from harness.types import ScoredBatch

__all__ = ["CET", "inverse_propensity"]

#: exponent cap keeping ``1 + e^x`` finite in float32
_MAX_EXPONENT = 80.0


def inverse_propensity(score: torch.Tensor, debias_ratio: float) -> torch.Tensor:
    """``1 / (1 - sigmoid(score / T))``, computed as ``1 + e^{score / T}``.

    The exponent is capped at 80 so the weight stays finite.
    """
    return 1.0 + torch.exp((score / debias_ratio).clamp(max=_MAX_EXPONENT))


class CET(Loss):
    """Pairwise softmax CE of the run's model, reweighted by a selection model.

    The selection model S is a residual linear adapter A over the *detached*
    embeddings, ``S(q, d) = cos(q + A q, d + A d)``, with A zero-initialised
    (S starts as the relevance model's own cosine, as CET starts both BERTs
    from the same checkpoint).  It is created at the first call (its width
    taken from ``anchor_embeddings``) with its own AdamW.  When the loss is in
    training mode and gradients are enabled, each call performs one S step:
    ``w_S`` from the detached relevance scores, L_S on S's own scores, then
    S's optimiser steps.  The returned relevance loss uses ``w_R`` from S's
    scores *before* that step (both weights are computed first, as in the
    authors' code).  In eval mode, or under ``torch.no_grad()``, the call is
    pure.  S's parameters are not in the run's optimiser (they do not exist
    when it is built), and ``w_R`` carries no gradient to them.

    Per anchor the loss is the mean over its valid negative columns of
    ``w_R · softplus(scale (s_j - s⁺))``; synthetic negative vectors are
    scored by S like any column.  A row with no valid negative has loss 0.

    :param debias_ratio: T; the paper/code default 2.0 (the training script
        passes 10.0).  The weights are computed on the same logits as the CE,
        ``scale * cosine``, since CET's cross-encoders output raw logits (on
        bare cosines, T = 2 would confine them to [1.61, 2.65]).
    :param scale: logit scale of the pairwise CE and the weights (20 =
        temperature 0.05).
    :param lr: learning rate of S's AdamW (CET trains both models at 3e-6;
        the adapter is tiny and starts at zero, so it needs more).
    :param in_batch: also use the other anchors' positives and negatives as
        negatives (off: CET trains on (q, d⁺, d⁻) triples).
    """

    name = "cet"
    families = frozenset({"retrieval", "sts"})
    in_batch_default = False
    needs_negative_embeddings = True

    adapter: torch.nn.Linear | None

    def __init__(
        self,
        *,
        debias_ratio: float = 2.0,
        scale: float = 20.0,
        lr: float = 1e-3,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if debias_ratio <= 0:
            raise ValueError("debias_ratio must be > 0")
        if scale <= 0:
            raise ValueError("scale must be > 0")
        if lr <= 0:
            raise ValueError("lr must be > 0")
        self.debias_ratio = debias_ratio
        self.scale = scale
        self.lr = lr
        self.adapter = None
        self._optimizer: torch.optim.Optimizer | None = None

    # -- the selection model ------------------------------------------------------

    def _selection(self, like: torch.Tensor) -> torch.nn.Linear:
        if self.adapter is None:
            width = like.shape[-1]
            adapter = torch.nn.Linear(width, width, bias=False, device=like.device)
            torch.nn.init.zeros_(adapter.weight)
            self.adapter = adapter
            self._optimizer = torch.optim.AdamW(adapter.parameters(), lr=self.lr)
        return self.adapter

    def selection_scores(
        self,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """S's scores of the positives (B,) and the negative columns (B, K).

        Inputs are detached here; gradients reach only S.
        """
        adapter = self._selection(anchors)
        dtype = adapter.weight.dtype

        def encode(x: torch.Tensor) -> torch.Tensor:
            x = x.detach().to(dtype)
            return F.normalize(x + adapter(x), dim=-1)

        q, d_pos, d_neg = encode(anchors), encode(positives), encode(negatives)
        return (q * d_pos).sum(-1), torch.einsum("bd,bkd->bk", q, d_neg)

    # -- the loss -----------------------------------------------------------------

    def _pairwise(
        self,
        positive: torch.Tensor,
        negative: torch.Tensor,
        weight: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Per-anchor mean over valid columns of ``w · softplus(scale Δ)``."""
        pair = weight * F.softplus(self.scale * (negative - positive[:, None]))
        pair = pair.masked_fill(~mask, 0.0)
        return pair.sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        anchors, positives = batch.anchor_embeddings, batch.positive_embeddings
        negatives = batch.negative_embeddings
        if anchors is None or positives is None or negatives is None:
            raise ValueError(
                "cet needs anchor_embeddings, positive_embeddings and "
                "negative_embeddings"
            )
        mask = batch.mask
        # masked columns may hold anything; S sees zeros there
        negatives = negatives.masked_fill(~mask[..., None], 0.0)
        relevance = batch.negative.masked_fill(~mask, 0.0)
        update = self.training and torch.is_grad_enabled()
        with torch.enable_grad() if update else torch.no_grad():
            s_pos, s_neg = self.selection_scores(anchors, positives, negatives)
        with torch.no_grad():
            # CET's weights are defined on logits; ours are scale * cosine.
            w_r = inverse_propensity(self.scale * s_neg, self.debias_ratio)
            w_r = w_r.to(relevance)
        if update:
            w_s = inverse_propensity(self.scale * relevance.detach(), self.debias_ratio)
            loss_s = self._pairwise(s_pos, s_neg, w_s.to(s_neg), mask)
            assert self._optimizer is not None
            self._optimizer.zero_grad()
            loss_s.mean().backward()
            self._optimizer.step()
            self._optimizer.zero_grad()
        return self._pairwise(batch.positive, relevance, w_r, mask)


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [CET]
