"""MoCo hard-negative filtering: keep only the hardest entries of the queue.

Hoang et al., "Enhancing Contrastive Learning with Efficient Combined
Negative Sampling and Hard Negative Filtering", arXiv 2501.16360, 2025 (no
public code; METHODS.md §7 reconstructs it from the abstract).  MoCo keeps a
FIFO queue of recent keys and contrasts every query against all of them; this
variant scores the queue entries against the anchor and keeps only the top M
"most challenging" ones as negatives, which cuts noise from uninformative
negatives and memory.  An optional skip of the top ``r0`` ranks guards against
false negatives (``r0 = 0`` reproduces "hardest M").

The protocol supplies the queue (``pool = "queue"``): the most recent
positives with the embeddings they had when they were stored, shared by all
anchors.  A queue entry that is a known positive of the anchor is never
returned.  The same item may sit in the queue more than once (it was a
positive at several steps); each entry is a separate key, as in MoCo.
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl

__all__ = ["MoCoFilter"]


class MoCoFilter(Sampler):
    """Queue entries ranked ``[skip_top, skip_top + M)`` by score.

    :param top_m: M, negatives kept per anchor; None = the number the task
        asks for.  It is the sampler's K.
    :param skip_top: r0, best-ranked queue entries skipped as likely false
        negatives (0 = the paper's "hardest M").  A row with fewer entries
        falls back to all of them; a row with fewer than K repeats its list.
    """

    name = "moco-filter"
    families = frozenset({"retrieval", "sts"})
    pool = "queue"

    def __init__(self, *, top_m: int | None = None, skip_top: int = 0) -> None:
        if top_m is not None and top_m < 1:
            raise ValueError("top_m must be >= 1 (or None for the task's K)")
        if skip_top < 0:
            raise ValueError("skip_top must be >= 0")
        self.top_m = top_m
        self.skip_top = skip_top

    def num_negatives(self, requested: int) -> int:
        return requested if self.top_m is None else self.top_m

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        allowed = ~batch.known_positive
        counts = allowed.sum(dim=1, keepdim=True)
        if not bool((counts > 0).all()):
            raise ValueError(
                "an anchor has no candidate that may be drawn as a negative"
            )
        # Allowed queue entries by descending score (stable); positives last.
        order = torch.argsort(
            batch.scores.masked_fill(~allowed, float("-inf")),
            dim=1,
            descending=True,
            stable=True,
        )
        # Skip the top r0 where the row has more than r0 entries, else none.
        skip = torch.where(counts > self.skip_top, self.skip_top, 0)
        usable = counts - skip
        slots = skip + torch.arange(num_negatives).expand(batch.size, -1) % usable
        return order.gather(1, slots)


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [MoCoFilter]
