"""Top-k hard negatives within a rank window.

The current model's highest-scored non-positive candidates, as mined by
ANCE/STAR-style training (Xiong et al., ICLR 2021; Zhan et al., SIGIR 2021)
and by sentence-transformers' ``mine_hard_negatives``, whose ``range_min`` /
``range_max`` / ``sampling_strategy`` parameters this sampler mirrors.  Hard
negatives are informative until they are false negatives: the top ranks of
an incompletely labelled corpus are where unlabelled positives sit.
"""

from __future__ import annotations

from typing import Literal

import torch

from harness import CandidateBatch, Sampler, hookimpl
from harness.sampling import weighted_draw

__all__ = ["TopKHard"]


class TopKHard(Sampler):
    """Negatives from ranks ``[range_min, range_max)`` among non-positive candidates.

    :param range_min: skip this many top-ranked non-positive candidates
        (a crude false-negative guard).
    :param range_max: consider ranks below this; None = the whole pool.
    :param sampling: ``"top"`` takes the K best-ranked in the window;
        ``"random"`` draws K uniformly from it.
    """

    name = "topk-hard"
    families = frozenset({"retrieval", "sts", "kge", "multilabel"})
    pool = "mined"

    def __init__(
        self,
        *,
        range_min: int = 0,
        range_max: int | None = None,
        sampling: Literal["top", "random"] = "top",
    ) -> None:
        if range_min < 0 or (range_max is not None and range_max <= range_min):
            raise ValueError("need 0 <= range_min < range_max")
        if sampling not in ("top", "random"):
            raise ValueError("sampling must be 'top' or 'random'")
        self.range_min = range_min
        self.range_max = range_max
        self.sampling = sampling

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        allowed = ~batch.known_positive
        counts = allowed.sum(dim=1, keepdim=True)
        if not bool(counts.all()):
            raise ValueError(
                "an anchor has no candidate that may be drawn as a negative"
            )
        order = _allowed_by_score(batch.scores, allowed)
        upper = self.range_max if self.range_max is not None else order.shape[1]
        if (
            self.sampling == "top"
            and self.range_min == 0
            and upper >= order.shape[1]
            and int(counts.min()) >= num_negatives
        ):
            # the window is every allowed column: the K best are the first
            # K of `order`, as the general path below finds them
            return order[:, :num_negatives]
        rank_of = torch.empty_like(order)
        rank_of.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
        window = allowed & (rank_of >= self.range_min) & (rank_of < upper)
        # Rows whose window is empty (tiny pools) fall back to every allowed column.
        window = torch.where(window.any(dim=1, keepdim=True), window, allowed)
        if self.sampling == "random":
            return weighted_draw(window.float(), num_negatives, generator)
        # "top": the K best-ranked columns inside the window (repeat if too few).
        keyed = torch.where(window, rank_of, rank_of.new_full((), order.shape[1] * 2))
        best = torch.argsort(keyed, dim=1, stable=True)
        counts = window.sum(dim=1, keepdim=True)  # the window's, not `allowed`'s
        slots = torch.arange(num_negatives).expand(batch.size, -1) % counts
        return best.gather(1, slots)


def _allowed_by_score(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Each row's columns: the allowed ones by descending score (ties in
    column order), then the others.  shape: (B, C) long.

    Masking the others with -inf and sorting once does it, unless an allowed
    candidate itself scores -inf: it would then tie with the masked ones.
    """
    masked = scores.masked_fill(~allowed, float("-inf"))
    order = torch.argsort(masked, dim=1, descending=True, stable=True)
    if bool(torch.isneginf(scores).any()):
        # a second stable sort by allowed-ness keeps the score order within
        # each group
        later = (~allowed).gather(1, order).to(torch.uint8)
        order = order.gather(1, torch.argsort(later, dim=1, stable=True))
    return order


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [TopKHard]
