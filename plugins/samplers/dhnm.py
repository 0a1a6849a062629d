"""Conan-embedding's dynamic hard-negative mining (DHNM).

Li et al., "Conan-embedding: General Text Embedding with More and Better
Negative Samples", arXiv 2408.15710, 2024 (no public code; METHODS.md §10
summarises the paper and third-party notes).  Each training example keeps its
hard negatives and the score s0 each had when it was mined.  Every 100 steps
the negatives are re-scored with the current model; one whose score s has
decayed, ``s * 1.15 < s0`` and ``|s| < 0.8``, is "no longer hard" and is
replaced by a new negative mined with the current model from a mid-rank window
(about ranks 30-100).

Here the protocol re-mines the pool on its own schedule (every epoch by
default; ``check_every=100`` gives the paper's interval, which short CPU runs
of a few hundred steps would barely reach) and this sampler keeps, per anchor
id, its current negatives (candidate ids) and their initial scores.  On every
call a stored negative is kept when it is still in the anchor's pool and has not
decayed; the others are
replaced by the best-ranked allowed candidates of the window
``[window_min, window_max)`` (ranks among the allowed candidates, clipped to
the pool) that are not already chosen (neither a kept negative nor one being
dropped), and their s0 is their current score.
When the window is empty (a pool of at most ``window_min`` allowed candidates)
the lower half of the allowed candidates is used instead.  When the window has
too few unchosen candidates, the candidates ranked below it are used next
(best first), then those above it (nearest first), and only then are
candidates repeated.  An anchor seen for the first time gets the top K
allowed candidates.

The decay rule is the paper's, read literally: for a negative score
(s0 < 0, |s| < abs_limit) ``s * 1.15 < s0`` holds even when the score has not
moved, so negatives scored below 0 always count as "no longer hard".
"""

from __future__ import annotations

import torch

from harness import CandidateBatch, Sampler, hookimpl

__all__ = ["DHNM"]


class DHNM(Sampler):
    """Keep each anchor's hard negatives until they decay, then re-mine them.

    :param ratio: a negative has decayed when ``s * ratio < s0`` ...
    :param abs_limit: ... and ``|s| < abs_limit`` (paper: 1.15 and 0.8).
    :param window_min: first rank (0-based, among allowed candidates) that
        replacements are drawn from (paper: about 30).
    :param window_max: end of the window, exclusive (paper: about 100).
    :param check_every: re-mine the pool (and so re-check decay) every N
        steps; None keeps the protocol's schedule (per epoch).
    """

    name = "dhnm"
    families = frozenset({"retrieval", "sts"})
    pool = "mined"

    def __init__(
        self,
        *,
        ratio: float = 1.15,
        abs_limit: float = 0.8,
        window_min: int = 30,
        window_max: int = 100,
        check_every: int | None = None,
    ) -> None:
        if ratio <= 0 or abs_limit < 0:
            raise ValueError("ratio must be > 0 and abs_limit >= 0")
        if window_min < 0 or window_max <= window_min:
            raise ValueError("need 0 <= window_min < window_max")
        if check_every is not None and check_every < 1:
            raise ValueError("check_every must be >= 1")
        self.refresh = check_every
        self.ratio = ratio
        self.abs_limit = abs_limit
        self.window_min = window_min
        self.window_max = window_max
        self._negatives: dict[int, list[int]] = {}
        self._initial: dict[int, list[float]] = {}
        self._remined = 0
        self._remined_anchors: set[int] = set()

    def decayed(self, score: float, initial: float) -> bool:
        """Whether a negative first scored ``initial`` is no longer hard."""
        return score * self.ratio < initial and abs(score) < self.abs_limit

    def state(self, anchor: int) -> tuple[list[int], list[float]] | None:
        """The anchor's current negatives (candidate ids) and their s0."""
        if anchor not in self._negatives:
            return None
        return list(self._negatives[anchor]), list(self._initial[anchor])

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        allowed = ~batch.known_positive
        counts = allowed.sum(dim=1)
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
        out = torch.empty(batch.size, num_negatives, dtype=torch.long)
        for row in range(batch.size):
            ranked = order[row, : int(counts[row])].tolist()
            out[row] = torch.tensor(
                self._row(
                    int(batch.anchor_ids[row]),
                    ranked,
                    batch.candidate_ids[row].tolist(),
                    batch.scores[row].tolist(),
                    num_negatives,
                ),
                dtype=torch.long,
            )
        return out

    def _row(
        self,
        anchor: int,
        ranked: list[int],
        ids: list[int],
        scores: list[float],
        k: int,
    ) -> list[int]:
        """Columns of one anchor's negatives; updates its stored state."""
        stored = self._negatives.get(anchor)
        if stored is None or len(stored) != k:
            chosen = [ranked[i % len(ranked)] for i in range(k)]
        else:
            column: dict[int, int] = {}
            for col in ranked:  # the best-ranked allowed column of each id
                column.setdefault(ids[col], col)
            kept: list[int | None] = []
            for negative, initial in zip(stored, self._initial[anchor], strict=True):
                found = column.get(negative)
                stale = found is None or self.decayed(scores[found], initial)
                kept.append(None if stale else found)
            missing = sum(col is None for col in kept)
            if missing:
                # never the negatives it has, nor the ones being dropped
                fresh = iter(self._replacements(ranked, ids, set(stored), missing))
                self._remined += missing
                self._remined_anchors.add(anchor)
                chosen = [next(fresh) if col is None else col for col in kept]
                initial_scores = self._initial[anchor]
                self._initial[anchor] = [
                    scores[col] if old is None else initial_scores[j]
                    for j, (col, old) in enumerate(zip(chosen, kept, strict=True))
                ]
                self._negatives[anchor] = [ids[col] for col in chosen]
            else:
                chosen = [col for col in kept if col is not None]
            return chosen
        self._negatives[anchor] = [ids[col] for col in chosen]
        self._initial[anchor] = [scores[col] for col in chosen]
        return chosen

    def _replacements(
        self, ranked: list[int], ids: list[int], taken: set[int], count: int
    ) -> list[int]:
        """``count`` new columns, best first from the window, none already taken."""
        n = len(ranked)
        low, high = self.window_min, min(self.window_max, n)
        if low >= high:  # empty window: the lower half of the allowed list
            low, high = n // 2, n
        preference = ranked[low:high] + ranked[high:] + ranked[:low][::-1]
        out: list[int] = []
        seen = set(taken)
        for col in preference:
            if len(out) == count:
                break
            if ids[col] not in seen:
                seen.add(ids[col])
                out.append(col)
        # Too few distinct candidates: repeat the preference list.
        out += [preference[i % n] for i in range(count - len(out))]
        return out

    def diagnostics(self) -> dict[str, float]:
        return {
            "remined_negatives": float(self._remined),
            "remined_anchors": float(len(self._remined_anchors)),
            "tracked_anchors": float(len(self._negatives)),
        }


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [DHNM]
