"""InfoNCE / multiple-negatives ranking loss.

``L = -log( exp(s+/t) / (exp(s+/t) + sum_j exp(s_j/t)) )`` over the mined
negatives plus, by default, the other queries' positives in the batch.
With ``symmetric`` the d->q direction is added: each positive must also pick
out its own anchor among the batch's anchors, and the two terms are averaged
(sentence-transformers ``MultipleNegativesSymmetricRankingLoss``).

References: van den Oord et al., "Representation Learning with Contrastive
Predictive Coding", 2018; Henderson et al., "Efficient Natural Language
Response Suggestion for Smart Reply", 2017 (in-batch negatives);
sentence-transformers ``MultipleNegativesRankingLoss`` (scale 20 = t 0.05).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from harness import Loss, hookimpl

if TYPE_CHECKING:
    from harness.types import ScoredBatch

__all__ = ["InfoNCE"]


class InfoNCE(Loss):
    """Softmax cross-entropy of the positive against its negatives.

    :param temperature: t; scores are cosines, so 0.05 matches
        sentence-transformers' default scale of 20.
    :param symmetric: average the usual q->d term with the d->q term: for
        positive i, a softmax over ``positive_i · anchor_j / t`` for every
        anchor j of the batch, target i.  The d->q scores are dot products of
        the embeddings (cosines for normalised ones, as
        ``TextEncoder.similarity``), and the other anchors are all treated as
        negatives (no masking, as in sentence-transformers).
    :param in_batch: also use the other anchors' positives as negatives.
    """

    name = "infonce"
    families = frozenset({"retrieval", "sts", "kge"})
    in_batch_default = True
    #: t = 0.05 suits cosines; KGE scores are unbounded distances/products
    family_defaults = {"kge": {"temperature": 1.0}}

    def __init__(
        self,
        *,
        temperature: float = 0.05,
        symmetric: bool = False,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature
        self.symmetric = symmetric

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        forward = self(batch.positive, batch.negative, batch.mask)
        if not self.symmetric:
            return forward  # type: ignore[no-any-return]
        anchors, positives = batch.anchor_embeddings, batch.positive_embeddings
        if anchors is None or positives is None:
            raise ValueError(
                "symmetric infonce needs anchor_embeddings and positive_embeddings"
            )
        logits = positives @ anchors.T / self.temperature
        backward = torch.logsumexp(logits, dim=1) - logits.diagonal()
        return (forward + backward) / 2  # type: ignore[no-any-return]

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        negative = negative.masked_fill(~mask, float("-inf"))
        logits = torch.cat([positive[:, None], negative], dim=1) / self.temperature
        return torch.logsumexp(logits, dim=1) - logits[:, 0]


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [InfoNCE]
