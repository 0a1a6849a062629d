"""Positive-aware hard negatives: drop candidates scored too close to the positive.

Moreira et al., "NV-Retriever: Improving text embedding models with effective
hard-negative mining", 2024: *TopK-PercPos* keeps the top-k candidates whose
score is below a percentage of the positive's score (95%, i.e. a relative
margin of 0.05), which removes most false negatives at the top of the ranking.
sentence-transformers' ``mine_hard_negatives`` recommends the same setting and
exposes the filters this sampler mirrors, under the same names: ``max_score``,
``min_score``, ``absolute_margin``, ``relative_margin``, ``range_min`` /
``range_max`` and ``sampling_strategy`` (``sampling`` here, as in
``topk-hard``).

A candidate with score s, for an anchor whose positive scores s+, is dropped
when any of these holds (a filter set to None is off):

* ``s > max_score`` or ``s < min_score``;
* ``s > s+ - absolute_margin``;
* ``s > s+ - |s+| * relative_margin`` (``relative_mode="abs"``, the default:
  the threshold stays below s+ when s+ is negative).  NV-Retriever and
  sentence-transformers compute ``s+ * (1 - relative_margin)``, which is the
  same for s+ >= 0 but lies *above* a negative s+ (``relative_mode="signed"``).

The rank window ``[range_min, range_max)`` is then taken over the remaining
candidates (ranked by descending score), and K negatives are the best-ranked
(``"top"``) or a uniform draw (``"random"``) from it.  (sentence-transformers
cuts its rank window from the retrieved list before it applies the score
filters; counting ranks among the remaining candidates keeps ``range_min``
meaning "skip this many plausible negatives" whatever the filters removed.)

Fallback, when the window holds fewer than K candidates: the window is used in
full (best first) and the rest is filled with the other allowed candidates,
first those that pass the score filters, then those that do not, each group
lowest score first (the least likely false negatives).  Only when a row has
fewer allowed candidates than K does it repeat that list from the start.  So a
candidate above the margin is returned only when too few others exist.
"""

from __future__ import annotations

from typing import Literal

import torch

from harness import CandidateBatch, Sampler, hookimpl
from harness.sampling import weighted_draw

__all__ = ["PositiveAware"]


class PositiveAware(Sampler):
    """Hardest (or random) candidates scored safely below the positive.

    :param relative_margin: drop s > s+ - |s+| * relative_margin (NV-Retriever's
        TopK-PercPos 95% = 0.05); None = off.
    :param absolute_margin: drop s > s+ - absolute_margin; None = off.
    :param max_score: drop s > max_score; None = off.
    :param min_score: drop s < min_score; None = off.
    :param range_min: skip this many best-ranked remaining candidates.
    :param range_max: consider remaining candidates ranked below this; None =
        all of them.
    :param sampling: ``"top"`` takes the K best-ranked in the window,
        ``"random"`` draws K uniformly from it.
    :param relative_mode: ``"abs"`` uses ``|s+|`` in the relative margin;
        ``"signed"`` uses ``s+ * (1 - relative_margin)`` as NV-Retriever and
        sentence-transformers do.
    """

    name = "positive-aware"
    families = frozenset({"retrieval", "sts", "kge", "multilabel"})
    pool = "mined"

    def __init__(
        self,
        *,
        relative_margin: float | None = 0.05,
        absolute_margin: float | None = None,
        max_score: float | None = None,
        min_score: float | None = None,
        range_min: int = 0,
        range_max: int | None = None,
        sampling: Literal["top", "random"] = "top",
        relative_mode: Literal["abs", "signed"] = "abs",
    ) -> None:
        if relative_margin is not None and relative_margin < 0:
            raise ValueError("relative_margin must be >= 0")
        if absolute_margin is not None and absolute_margin < 0:
            raise ValueError("absolute_margin must be >= 0")
        if max_score is not None and min_score is not None and min_score > max_score:
            raise ValueError("min_score must be <= max_score")
        if range_min < 0 or (range_max is not None and range_max <= range_min):
            raise ValueError("need 0 <= range_min < range_max")
        if sampling not in ("top", "random"):
            raise ValueError("sampling must be 'top' or 'random'")
        if relative_mode not in ("abs", "signed"):
            raise ValueError("relative_mode must be 'abs' or 'signed'")
        self.relative_margin = relative_margin
        self.absolute_margin = absolute_margin
        self.max_score = max_score
        self.min_score = min_score
        self.range_min = range_min
        self.range_max = range_max
        self.sampling = sampling
        self.relative_mode = relative_mode

    def eligible(self, batch: CandidateBatch) -> torch.Tensor:
        """Candidates that pass every score filter (known positives excluded).

        :returns: shape: (B, C) bool.
        """
        scores = batch.scores.double()
        positive = batch.positive_scores.double()[:, None]
        keep = ~batch.known_positive
        if self.max_score is not None:
            keep = keep & (scores <= self.max_score)
        if self.min_score is not None:
            keep = keep & (scores >= self.min_score)
        if self.absolute_margin is not None:
            keep = keep & (scores <= positive - self.absolute_margin)
        if self.relative_margin is not None:
            if self.relative_mode == "abs":
                limit = positive - positive.abs() * self.relative_margin
            else:
                limit = positive * (1.0 - self.relative_margin)
            keep = keep & (scores <= limit)
        return keep

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        allowed = ~batch.known_positive
        n_allowed = allowed.sum(dim=1, keepdim=True)
        if not bool((n_allowed > 0).all()):
            raise ValueError(
                "an anchor has no candidate that may be drawn as a negative"
            )
        if num_negatives == 0:
            return torch.zeros(batch.size, 0, dtype=torch.long)
        eligible = self.eligible(batch)
        scores = batch.scores.double()
        width = batch.num_candidates
        # Rank among the eligible candidates, by descending score (stable).
        order = torch.argsort(
            scores.masked_fill(~eligible, float("-inf")),
            dim=1,
            descending=True,
            stable=True,
        )
        rank_of = torch.empty_like(order)
        rank_of.scatter_(1, order, torch.arange(width).expand_as(order))
        upper = self.range_max if self.range_max is not None else width
        window = eligible & (rank_of >= self.range_min) & (rank_of < upper)
        # Preference order of every column: the window best first, then the
        # other eligible candidates, then the filtered ones, each lowest first.
        within = torch.where(window, -scores, scores)
        by_score = torch.argsort(within, dim=1, stable=True)
        group = torch.full_like(order, 3)
        group[allowed] = 2
        group[eligible] = 1
        group[window] = 0
        by_group = torch.argsort(group.gather(1, by_score), dim=1, stable=True)
        preferred = by_score.gather(1, by_group)
        # Repeat the allowed list only when a row has fewer than K of them.
        slots = torch.arange(num_negatives).expand(batch.size, -1) % n_allowed
        out = preferred.gather(1, slots)
        if self.sampling == "random":
            full = window.sum(dim=1) >= num_negatives
            if bool(full.any()):
                out[full] = weighted_draw(
                    window[full].float(), num_negatives, generator
                )
        return out


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [PositiveAware]
