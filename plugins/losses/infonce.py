"""InfoNCE / multiple-negatives ranking loss.

``L = -log( exp(s+/t) / (exp(s+/t) + sum_j exp(s_j/t)) )`` over the mined
negatives plus, by default, the other queries' positives in the batch.

References: van den Oord et al., "Representation Learning with Contrastive
Predictive Coding", 2018; Henderson et al., "Efficient Natural Language
Response Suggestion for Smart Reply", 2017 (in-batch negatives);
sentence-transformers ``MultipleNegativesRankingLoss`` (scale 20 = t 0.05).
"""

from __future__ import annotations

import torch

from harness import Loss, hookimpl

__all__ = ["InfoNCE"]


class InfoNCE(Loss):
    """Softmax cross-entropy of the positive against its negatives.

    :param temperature: t; scores are cosines, so 0.05 matches
        sentence-transformers' default scale of 20.
    :param in_batch: also use the other anchors' positives as negatives.
    """

    name = "infonce"
    families = frozenset({"retrieval", "sts", "kge"})
    in_batch_default = True

    def __init__(
        self, *, temperature: float = 0.05, in_batch: bool | None = None
    ) -> None:
        super().__init__(in_batch=in_batch)
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.temperature = temperature

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        negative = negative.masked_fill(~mask, float("-inf"))
        logits = torch.cat([positive[:, None], negative], dim=1) / self.temperature
        return torch.logsumexp(logits, dim=1) - logits[:, 0]


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [InfoNCE]
