"""STAR: static hard negatives plus in-batch random negatives.

Zhan et al., "Optimizing Dense Retrieval Model Training with Hard Negatives",
SIGIR 2021 (jingtaozhan/DRhard, ``star/``).  A warm-up model retrieves the top
200 documents of every training query once, before training, and relevant
documents are dropped; this list stays fixed.  Each step a query gets
``hard_num`` = 1 hard negative drawn uniformly from its list, and the other
queries' positives and hard negatives in the batch act as random negatives.
The random negatives are what keeps training on static hard negatives stable.

Here the warm-up model is the model as it is before training: the sampler asks
for a ``static`` pool (mined once) and forces the in-batch columns on.  The
paper's loss is the pairwise logistic ``softplus(s_j - s+)``
(``pairwise-logistic``); any loss can be paired with it.
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl
from harness.sampling import weighted_draw

__all__ = ["STAR"]


class STAR(Sampler):
    """``hard_num`` uniform draws from the ``top`` best-ranked allowed candidates.

    :param hard_num: hard negatives per query and step (paper: 1); this is the
        sampler's K, whatever the task asks for.
    :param top: size of the static list the draws come from (paper: 200);
        clipped to the pool the task offers (its ``depth``).
    """

    name = "star"
    families = frozenset({"retrieval", "sts"})
    pool = "mined"
    refresh = "static"
    in_batch_negatives = True

    def __init__(self, *, hard_num: int = 1, top: int = 200) -> None:
        if hard_num < 1 or top < 1:
            raise ValueError("hard_num and top must be >= 1")
        self.hard_num = hard_num
        self.top = top

    def num_negatives(self, requested: int) -> int:
        return self.hard_num

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        allowed = ~batch.known_positive
        if not bool(allowed.any(dim=1).all()):
            raise ValueError(
                "an anchor has no candidate that may be drawn as a negative"
            )
        # Rank among the allowed candidates, by descending score (stable).
        order = torch.argsort(
            batch.scores.masked_fill(~allowed, float("-inf")),
            dim=1,
            descending=True,
            stable=True,
        )
        rank_of = torch.empty_like(order)
        rank_of.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
        # The static list: the top `top` allowed candidates (relevant ones dropped).
        listed = allowed & (rank_of < self.top)
        return weighted_draw(listed.float(), num_negatives, generator)


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [STAR]
