"""ADORE: the current model's retrieved list, re-retrieved every step.

Zhan et al., "Optimizing Dense Retrieval Model Training with Hard Negatives",
SIGIR 2021 (jingtaozhan/DRhard, ``adore/train.py``).  The document encoder and
its index are frozen (typically from STAR); only the query encoder trains.  At
every step each query retrieves its top documents from the frozen index with
its *current* embedding, and a LambdaRank-style loss weights every
(relevant, non-relevant) pair by the change in the metric
(``|1/rank_i - 1/rank_j|`` for MRR).

The sampler asks the protocol for exactly that schedule: ``refresh = "step"``
(re-mine the batch's anchors every step), ``freeze_candidates`` (score
candidates with an index built before training) and no in-batch columns.  It
returns the retrieved list itself, in score order, so a listwise loss
(``lambdarank``) can read the ranks from the column order.  The paper appends
the relevant documents when none was retrieved; here the positive is always
the loss's positive column.
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl

__all__ = ["ADORE"]


class ADORE(Sampler):
    """The first ``top`` allowed candidates, best first.

    :param top: length of the retrieved list (README ``neg_topk`` 200; 100 by
        default here).  It is the sampler's K, whatever the task asks for,
        and should not exceed the pool the task offers (its ``depth``): a row
        with fewer allowed candidates repeats its list from the top, as
        ``topk-hard`` does, which a listwise loss sees as duplicate columns.
    """

    name = "adore"
    families = frozenset({"retrieval", "sts"})
    pool = "mined"
    refresh = "step"
    in_batch_negatives = False
    freeze_candidates = True

    def __init__(self, *, top: int = 100) -> None:
        if top < 1:
            raise ValueError("top must be >= 1")
        self.top = top

    def num_negatives(self, requested: int) -> int:
        return self.top

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        allowed = ~batch.known_positive
        counts = allowed.sum(dim=1, keepdim=True)
        if not bool((counts > 0).all()):
            raise ValueError(
                "an anchor has no candidate that may be drawn as a negative"
            )
        # Allowed columns by descending score (stable); known positives last.
        order = torch.argsort(
            batch.scores.masked_fill(~allowed, float("-inf")),
            dim=1,
            descending=True,
            stable=True,
        )
        slots = torch.arange(num_negatives).expand(batch.size, -1) % counts
        return order.gather(1, slots)


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [ADORE]
