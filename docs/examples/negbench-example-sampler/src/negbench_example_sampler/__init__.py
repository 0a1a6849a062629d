"""An example negbench plugin: semi-hard negatives.

FaceNet's semi-hard mining (Schroff, Kalenichenko and Philbin, "FaceNet: A
Unified Embedding for Face Recognition and Clustering", CVPR 2015, §3.2)
picks negatives that are farther from the anchor than the positive but still
close to it: hard enough to be informative, and less likely than the very
hardest ones to be mislabelled positives.  With scores (higher = closer),
that is a negative scoring *below* the positive, as high as possible.

Installed, it is found through the ``harness`` entry point in
``pyproject.toml``; ``harness bench ... --sampler semi-hard`` uses it.
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl

__all__ = ["SemiHard"]


class SemiHard(Sampler):
    """The highest-scoring non-positive candidates that score below the positive.

    Among the anchor's candidates that are not known positives, those scoring
    below its positive (and above ``positive - margin`` when a margin is
    given) are *semi-hard*; the K highest-scoring of them are returned.  A row
    with fewer than K falls back to the hardest remaining non-positives
    (highest score first), and a row with fewer allowed candidates than K
    repeats them.  On multi-label tasks the "positive score" is the decision
    threshold (logit 0).  Deterministic: the generator is not used.

    :param margin: FaceNet's α in score units: only negatives scoring within
        ``margin`` of the positive are semi-hard; None (the default) = any
        score below the positive's.
    """

    name = "semi-hard"
    families = frozenset({"retrieval", "sts", "kge", "multilabel"})
    pool = "mined"  # the current model's top candidates

    def __init__(self, *, margin: float | None = None) -> None:
        if margin is not None and margin <= 0:
            raise ValueError("margin must be positive (or None)")
        self.margin = margin
        self._semi_hard = 0
        self._sampled = 0

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        allowed = ~batch.known_positive
        counts = allowed.sum(dim=1, keepdim=True)
        if not bool((counts > 0).all()):
            raise ValueError("an anchor has no candidate that may be a negative")
        scores, positive = batch.scores, batch.positive_scores[:, None]
        semi = allowed & (scores < positive)
        if self.margin is not None:
            semi &= scores > positive - self.margin
        # Sort by group (semi-hard, other allowed, known positive), then by
        # descending score inside a group: two stable sorts.
        group = torch.where(semi, 0, torch.where(allowed, 1, 2))
        by_score = torch.argsort(scores, dim=1, descending=True, stable=True)
        by_group = torch.argsort(group.gather(1, by_score), dim=1, stable=True)
        order = by_score.gather(1, by_group)
        slots = torch.arange(num_negatives, device=scores.device) % counts
        chosen = order.gather(1, slots)
        self._semi_hard += int(semi.gather(1, chosen).sum())
        self._sampled += chosen.numel()
        return chosen

    def diagnostics(self) -> dict[str, float]:
        """``semi-hard.share``: how many negatives were semi-hard, not fallbacks."""
        return {"share": self._semi_hard / self._sampled} if self._sampled else {}


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [SemiHard]
