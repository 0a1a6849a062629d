"""InfoNCE plus the bidirectional margin loss (BML) of ClusterNS.

``L = InfoNCE(all valid columns) + λ · BML`` where, for each column j the
sampler suspects to be a false negative (same k-means cluster as the anchor),
``x_j = s_j - s+`` and ``BML = mean_j ReLU(x_j + alpha) + ReLU(-x_j - beta)``.  BML
keeps suspected false negatives in the band ``-beta < s_j - s+ < -alpha``: closer to
the anchor than ordinary negatives, but below the positive.

Reference: Deng et al., "Clustering-Aware Negative Sampling for Unsupervised
Sentence Representation", Findings of ACL 2023 (code: djz233/ClusterNS,
``simcse/models.py`` ``false_negative_loss``; METHODS.md §3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from harness import Loss, hookimpl

if TYPE_CHECKING:
    from harness.types import ScoredBatch

__all__ = ["BML"]


class BML(Loss):
    """InfoNCE over the valid columns plus λ times BML on suspected ones.

    The suspected columns come from ``batch.suspected`` (ClusterNS's cluster
    sampler flags in-batch columns in the anchor's cluster); with None, or an
    anchor with no suspected column, the BML term is 0.  As in the authors'
    code the suspected columns stay in the InfoNCE denominator;
    ``drop_suspected=True`` removes them from it instead.

    :param temperature: InfoNCE temperature; 0.05 as in SimCSE/ClusterNS.
    :param bml_weight: λ (1e-3 for BERT-base; 1e-4 for RoBERTa-base).
    :param alpha: the least gap by which a false negative must trail the
        positive (0 for BERT-base; 0.2 for RoBERTa-base).
    :param beta: the largest gap (0.3 for BERT-base; 0.5 for RoBERTa-base).
    :param quirk_constant: reproduce the code's reduction: BML is the mean of
        ``ReLU(x m + alpha) + ReLU(-x m - beta)`` (m = 1 if suspected, else 0) over
        the positive and every valid column, so unflagged entries each add
        the constant ``ReLU(alpha) + ReLU(-beta)`` and the flagged terms are diluted
        by the column count.  Off: the mean over the suspected columns only.
    :param drop_suspected: leave suspected columns out of the InfoNCE
        denominator (the code keeps them).
    :param in_batch: also use the other anchors' positives and negatives as
        negatives (on: ClusterNS is SimCSE with in-batch negatives).
    """

    name = "bml"
    families = frozenset({"retrieval", "sts"})
    in_batch_default = True

    def __init__(
        self,
        *,
        temperature: float = 0.05,
        bml_weight: float = 1e-3,
        alpha: float = 0.0,
        beta: float = 0.3,
        quirk_constant: bool = False,
        drop_suspected: bool = False,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        if bml_weight < 0:
            raise ValueError("bml_weight must be >= 0")
        self.temperature = temperature
        self.bml_weight = bml_weight
        self.alpha = alpha
        self.beta = beta
        self.quirk_constant = quirk_constant
        self.drop_suspected = drop_suspected

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        positive, mask = batch.positive, batch.mask
        negative = batch.negative.masked_fill(~mask, 0.0)  # masked may be inf/NaN
        suspected = (
            torch.zeros_like(mask) if batch.suspected is None else batch.suspected
        )
        suspected = suspected.to(device=mask.device, dtype=torch.bool) & mask
        in_denominator = mask & ~suspected if self.drop_suspected else mask
        logits = torch.cat([positive[:, None], negative], dim=1) / self.temperature
        logits = torch.cat(
            [logits[:, :1], logits[:, 1:].masked_fill(~in_denominator, float("-inf"))],
            dim=1,
        )
        nce = torch.logsumexp(logits, dim=1) - logits[:, 0]
        margin = self.margin_term(positive, negative, suspected, mask)
        return nce + self.bml_weight * margin

    def margin_term(
        self,
        positive: torch.Tensor,
        negative: torch.Tensor,
        suspected: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Per-anchor BML. shape: (B,).

        :param negative: shape: (B, K) scores, finite (masked entries zeroed).
        :param suspected: shape: (B, K) bool, already restricted to ``mask``.
        """
        gap = negative - positive[:, None]
        if self.quirk_constant:
            gap = gap * suspected.to(gap.dtype)
            terms = torch.relu(gap + self.alpha) + torch.relu(-gap - self.beta)
            # the positive's own entry has x = 0 whatever the mask
            diagonal = max(self.alpha, 0.0) + max(-self.beta, 0.0)
            total = terms.masked_fill(~mask, 0.0).sum(dim=1) + diagonal
            return total / (1 + mask.sum(dim=1)).to(gap.dtype)
        terms = torch.relu(gap + self.alpha) + torch.relu(-gap - self.beta)
        total = terms.masked_fill(~suspected, 0.0).sum(dim=1)
        return total / suspected.sum(dim=1).clamp(min=1).to(gap.dtype)


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [BML]
