"""HaSa's sampler: hard tails plus structure-aware false-negative proxies.

Zhang et al., "Hardness- and Structure-aware Contrastive Knowledge Graph
Embedding", WWW 2024 (code: honggen-zhang/HaSa-CKGE, ``negative_sample.py``;
METHODS.md §4).  Per query (h, r):

1. **hard negatives**: the ``hard`` best-scored candidates that are not known
   answers (the task's mined pool plays the part of HaSa's embedding bank:
   a KGE model's entity table *is* an up-to-date bank);
2. **false-negative proxies**: candidates inside h's 2-hop neighbourhood in
   the training graph (hard ones first, then random ones from the pool), up
   to ``proxies``; they are returned flagged ``suspected`` and the ``hasa``
   loss uses them to estimate, and subtract, the false negatives' share of
   the negative term.

Deviation: HaSa tops up missing proxies with other true tails of (h, r);
those are known positives, which a sampler may not return, so a row with
too few 2-hop candidates gets further hard negatives instead (unflagged).
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl
from harness.types import Negatives

__all__ = ["HaSa"]


class HaSa(Sampler):
    """Top-``hard`` negatives plus ``proxies`` 2-hop false-negative proxies.

    :param hard: hard negatives per query (None = the task's K).
    :param proxies: k_f, structural false-negative proxies per query.
    """

    name = "hasa"
    families = frozenset({"kge"})
    pool = "mined"
    needs_structure = True

    def __init__(self, *, hard: int | None = None, proxies: int = 3) -> None:
        if (hard is not None and hard < 1) or proxies < 0:
            raise ValueError("hard must be >= 1 and proxies >= 0")
        self.hard = hard
        self.proxies = proxies
        self.proxy_rows = 0.0
        self.rows = 0.0

    def num_negatives(self, requested: int) -> int:
        return (self.hard or requested) + self.proxies

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> Negatives:
        if batch.neighbour is None:
            raise ValueError("hasa needs CandidateBatch.neighbour (needs_structure)")
        allowed = ~batch.known_positive
        b, c = allowed.shape
        n_proxies = min(self.proxies, num_negatives - 1)
        n_hard = num_negatives - n_proxies
        column = torch.arange(c).expand(b, -1)
        # pools are best-first: the first allowed columns are the hardest
        order = torch.where(allowed, column, c + column).argsort(dim=1)
        count = allowed.sum(dim=1, keepdim=True).clamp(min=1)
        # a row with fewer allowed columns than asked for repeats its own
        hard = order.gather(1, torch.arange(n_hard).expand(b, -1) % count)
        # proxies: 2-hop candidates, the hard ones first, then random others
        near = allowed & batch.neighbour
        is_hard = torch.zeros(b, c, dtype=torch.bool).scatter_(1, hard, True)
        noise = torch.rand(b, c, generator=generator)
        key = torch.where(near, noise + 2.0 * is_hard, torch.full((b, c), -1.0))
        proxy_key, proxy = key.topk(n_proxies, dim=1)
        found = proxy_key >= 0
        # rows short of proxies: the next hard negatives stand in, unflagged
        spare = order.gather(
            1, torch.arange(n_hard, n_hard + n_proxies).expand(b, -1) % count
        )
        proxy = torch.where(found, proxy, spare)
        self.rows += b
        self.proxy_rows += float(found.any(dim=1).sum())
        positions = torch.cat([hard, proxy], dim=1)
        suspected = torch.cat([torch.zeros(b, n_hard, dtype=torch.bool), found], dim=1)
        return Negatives(positions=positions, suspected=suspected)

    def diagnostics(self) -> dict[str, float]:
        return {"rows_with_proxies": self.proxy_rows / self.rows if self.rows else 0.0}


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [HaSa]
