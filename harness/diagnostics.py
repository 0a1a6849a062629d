"""Sampler diagnostics: what the sampled negatives looked like over a run.

negbench measures every sampler, not only the model it trains: how hard its
negatives were (score minus the positive's score, and rank in the pool), how
many were false negatives (hidden positives, and known training answers that
an unfiltered sampler drew), and how often a sampler's own false-negative
suspicions were right.

Measuring must not slow training down:

* A membership test such as "is this (query, entity) a held-out fact" can be
  handed over as a :data:`PairCheck` instead of a (B, C) tensor; it then runs
  on the chosen negatives only, and only in measured steps.
* A protocol with many cheap steps (KGE: a few milliseconds each) announces
  them (:meth:`Diagnostics.plan`).  Its steps are then measured with a fixed
  probability that gives about ``MEASURED_NEGATIVES`` negatives (at least
  ``MIN_MEASURED_STEPS`` steps): a uniform random sample of the run's steps,
  drawn from a stream of its own (training is unchanged), so the rates and
  quantiles are unbiased estimates over the whole run.  Where the floor of
  steps would measure far more than that (a short run of large steps), each
  measured step measures a uniform sample of its rows (anchors) instead of
  all of them, so every negative of the run is still equally likely to be
  measured.  ``negatives_sampled`` still counts every negative;
  ``negatives_measured`` says how many the rates and quantiles come from.
* A measured step is measured at once and nothing of it is kept: tensors
  held across steps to be measured together later cost every other step
  more (a fragmented heap, colder caches: 3% of a KGE run on UMLS) than the
  batching saved.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch

from .sampling import first_occurrence

__all__ = ["Diagnostics", "PairCheck", "Reservoir"]

#: cap on stored per-negative values; beyond it a reservoir sample is kept
RESERVOIR_SIZE = 200_000

#: an announced run's steps are measured down to about this many negatives
MEASURED_NEGATIVES = 1 << 18

#: ... but no fewer steps than this (all of them in a shorter run)
MIN_MEASURED_STEPS = 32

#: (anchor_ids (B,), candidate_ids (B, K)) -> (B, K) bool: a membership test
#: (e.g. "is this a held-out fact") that the diagnostics run on the negatives
#: a sampler chose, in the steps they measure
PairCheck = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: below this acceptance probability a reservoir skips ahead geometrically
_SKIP_BELOW = 0.25


class Reservoir:
    """A uniform sample of at most ``size`` of all the values ever added.

    Vitter's Algorithm R (ACM TOMS 1985): the value with 0-based index t
    replaces a uniformly chosen slot with probability size / (t + 1), each
    value independently, so every value of the run is equally likely to be
    kept, early training steps as much as late ones.

    One random number per value would cost more than the training step that
    produced the values, so once that probability is below ``_SKIP_BELOW``
    the accepted values are drawn directly: within a stretch of indices
    [i, 2i) every probability is at most p = size / (i + 1), so candidates
    are a Bernoulli(p) process (geometric gaps), each then kept with
    probability (size / (t + 1)) / p.  The same distribution, with a few
    times size * ln(n / size) random numbers for n values instead of n.
    """

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.buffer = np.empty(size, dtype=np.float32)
        self.seen = 0
        self._rng = rng

    @property
    def values(self) -> np.ndarray:
        return self.buffer[: min(self.seen, len(self.buffer))]

    def add(self, new: np.ndarray) -> None:
        size = len(self.buffer)
        room = max(size - self.seen, 0)
        if room:
            head = new[:room]
            self.buffer[self.seen : self.seen + len(head)] = head
            self.seen += len(head)
            new = new[room:]
        while len(new):
            stretch = new[: max(self.seen, 1)]  # indices [i, 2i): p within 2x
            self._replace(stretch)
            self.seen += len(stretch)
            new = new[len(stretch) :]

    def _replace(self, stretch: np.ndarray) -> None:
        size, first, rng = len(self.buffer), self.seen, self._rng
        p = size / (first + 1)  # the stretch's highest acceptance probability
        if p > _SKIP_BELOW:  # one draw per value, as Algorithm R
            index = first + np.arange(1, len(stretch) + 1)
            slot = (rng.random(len(stretch)) * index).astype(np.int64)
            kept = slot < size
            self.buffer[slot[kept]] = stretch[kept]
            return
        candidates = _bernoulli_positions(len(stretch), p, rng)
        accept = rng.random(len(candidates)) * p < size / (first + candidates + 1)
        chosen = candidates[accept]
        # in index order, so a later value overwrites an earlier one in a slot
        self.buffer[rng.integers(0, size, len(chosen))] = stretch[chosen]


def _kept_only(flags: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """``flags`` of the kept columns only (``keep`` None: all are kept)."""
    return flags if keep is None else flags.to(keep.device) & keep


def _bernoulli_positions(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """The successes among n Bernoulli(p) trials, as ascending positions."""
    parts, last = [], -1
    while True:
        expected = (n - last) * p
        positions = last + np.cumsum(rng.geometric(p, int(expected + 16)))
        parts.append(positions[positions < n])
        if positions[-1] >= n:
            return np.concatenate(parts)
        last = int(positions[-1])


class Diagnostics:
    """Accumulates what the sampled negatives looked like over a run."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._values: dict[str, Reservoir] = {}
        self._counts: dict[str, float] = defaultdict(float)
        self.extra: dict[str, float] = {}
        #: whether the current step's negatives are measured
        self.measuring = True
        self._rate = 1.0
        self._steps = self._steps_measured = 0
        self._step_rng = random.Random(seed)  # not the training generator
        #: negatives a measured step measures at most (None: all of them)
        self._step_cap: int | None = None
        self._row_rng = np.random.default_rng([seed, 1])
        #: the rows the current measured step measures (None: all of them),
        #: out of how many
        self.step_rows: torch.Tensor | None = None
        self._step_size = 0
        #: negatives of unmeasured steps: one tensor, summed into in place
        #: (no sync per step, nothing new kept per step)
        self._unmeasured: torch.Tensor | None = None

    # -- which steps are measured -------------------------------------------------

    def plan(self, steps: int, negatives_per_step: int) -> None:
        """Announce a run's training steps and negatives per step.

        Steps are then measured with the probability that gives about
        ``MEASURED_NEGATIVES`` negatives (all of them in a small run).
        """
        total = steps * negatives_per_step
        if steps > 0 and total > 0:
            rate = max(MEASURED_NEGATIVES / total, MIN_MEASURED_STEPS / steps)
            self._rate = min(1.0, rate)
            if total > MEASURED_NEGATIVES:
                # the steps' share of the budget: below negatives_per_step
                # only where the floor of steps binds
                self._step_cap = -(-MEASURED_NEGATIVES // round(self._rate * steps))

    def start_step(self) -> bool:
        """Decide whether the step that starts now is measured."""
        self._steps += 1
        self.step_rows = None
        self.measuring = self._rate >= 1.0 or self._step_rng.random() < self._rate
        self._steps_measured += self.measuring
        return self.measuring

    # -- recording ------------------------------------------------------------------

    def add_values(
        self, key: str, values: torch.Tensor, where: torch.Tensor | None = None
    ) -> None:
        """Record values (e.g. hardness gaps) of any shape.

        :param where: a bool mask of ``values``' shape: only those count.
        """
        values = values.detach()
        if where is not None:
            # masked_select: the same values in the same order as
            # values[where], a third of the time on the CPU
            values = values.masked_select(where.to(values.device))
        if values.numel():
            self._reservoir(key).add(values.float().cpu().numpy().ravel())

    def count(self, key: str, amount: float) -> None:
        self._counts[key] += amount

    def note(self, key: str, value: float) -> None:
        """Store a number as it is (e.g. a statistic of the task's data)."""
        self.extra[key] = float(value)

    @staticmethod
    def _kept(
        positions: torch.Tensor, used: torch.Tensor | None, once: bool
    ) -> torch.Tensor | None:
        """Which chosen columns are trained (None: all of them)."""
        keep = first_occurrence(positions) if once else None
        if used is not None:
            if used.dtype != torch.bool or used.device != positions.device:
                used = used.to(positions.device, torch.bool)
            keep = used if keep is None else keep & used
        return keep

    def count_unmeasured(
        self,
        positions: torch.Tensor,
        used: torch.Tensor | None,
        *,
        once: bool,
        known: int | None = None,
    ) -> None:
        """Count the trained negatives of a step that is not measured.

        :param known: the number of True entries of ``used``, when the caller
            knows it (then nothing is counted here; ignored with ``once``).

        Otherwise summed into one tensor in place: no sync per step, nothing
        new kept.
        """
        if known is not None and not once:
            self._counts["negatives_sampled"] += known
            return
        keep = self._kept(positions, used, once)
        if keep is None:
            self._counts["negatives_sampled"] += positions.numel()
        elif self._unmeasured is None:
            self._unmeasured = keep.count_nonzero()
        else:
            self._unmeasured += keep.count_nonzero()

    def observe(
        self,
        *,
        anchor_ids: torch.Tensor,
        candidate_ids: torch.Tensor,
        positions: torch.Tensor,
        scores: torch.Tensor | None,
        positive_scores: torch.Tensor | None,
        ranks: torch.Tensor | None,
        labelled: torch.Tensor | PairCheck | None,
        oracle: torch.Tensor | PairCheck | None,
        exact: bool,
        suspected: torch.Tensor | None,
        used: torch.Tensor | None,
        once: bool,
        measure: bool = True,
    ) -> None:
        """Record one sampler answer (see :meth:`RunContext.sample_negatives`).

        With ``measure`` False only ``negatives_sampled`` counts them
        (:meth:`count_unmeasured`).
        """
        if not measure:
            self.count_unmeasured(positions, used, once=once)
            return
        keep = self._kept(positions, used, once)  # None: every chosen column
        kept = float(positions.numel() if keep is None else keep.sum())
        self.count("negatives_sampled", kept)
        rows = self._sample_rows(len(positions), kept)
        if rows is not None:  # measure these rows only
            anchor_ids, candidate_ids, positions = (
                t.index_select(0, rows.to(t.device))
                for t in (anchor_ids, candidate_ids, positions)
            )
            keep, scores, positive_scores, ranks, suspected = (
                None if t is None else t.index_select(0, rows.to(t.device))
                for t in (keep, scores, positive_scores, ranks, suspected)
            )
            labelled, oracle = (
                t.index_select(0, rows.to(t.device))
                if isinstance(t, torch.Tensor)
                else t
                for t in (labelled, oracle)
            )
            kept = float(positions.numel() if keep is None else keep.sum())
        self.count("negatives_measured", kept)
        if not kept:
            return

        chosen_ids: list[torch.Tensor] = []  # gathered once, for every PairCheck

        def at_chosen(value: torch.Tensor | PairCheck) -> torch.Tensor:
            if isinstance(value, torch.Tensor):
                return value.gather(1, positions)
            if not chosen_ids:
                chosen_ids.append(candidate_ids.gather(1, positions))
            return value(anchor_ids, chosen_ids[0])

        if scores is not None and positive_scores is not None:
            gaps = at_chosen(scores) - positive_scores[:, None]
            self.add_values("hardness_gap", gaps, where=keep)
        if ranks is not None:
            self.add_values("neg_rank", at_chosen(ranks), where=keep)
        if labelled is not None:
            hits = _kept_only(at_chosen(labelled), keep)
            self.count("known_fn_hits", float(hits.sum()))
            self.count("known_fn_checked", kept)
        if oracle is not None:
            key = "fn" if exact else "fn_lower_bound"
            truly_false = _kept_only(at_chosen(oracle), keep)
            self.count(f"{key}_hits", float(truly_false.sum()))
            self.count(f"{key}_checked", kept)
            if suspected is not None and exact:
                # how good the sampler's own false-negative detection is
                flagged = _kept_only(suspected, keep).to(truly_false.device)
                self.count("suspect_flagged", float(flagged.sum()))
                self.count("suspect_correct", float((flagged & truly_false).sum()))
                self.count("suspect_actual", float(truly_false.sum()))

    def _sample_rows(self, rows: int, kept: float) -> torch.Tensor | None:
        """A uniform sample of a measured step's ``rows`` whose ``kept``
        negatives fit the step cap (see :meth:`plan`); None: all rows."""
        cap = self._step_cap
        if cap is None or kept <= cap or rows < 2:
            return None
        size = max(1, min(rows, round(cap * rows / kept)))
        picked = self._row_rng.choice(rows, size, replace=False)
        self.step_rows, self._step_size = torch.from_numpy(np.sort(picked)), rows
        return self.step_rows

    def measured(
        self, values: torch.Tensor, where: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The rows of a step's per-negative ``values`` (and mask) that the
        step measures: those :meth:`observe` sampled, or all of them."""
        rows = self.step_rows
        if rows is None or not values.dim() or len(values) != self._step_size:
            return values, where
        index = rows.to(values.device)
        return (
            values.index_select(0, index),
            None if where is None else where.index_select(0, index.to(where.device)),
        )

    def observe_in_batch(
        self,
        *,
        gaps: torch.Tensor,
        hidden: torch.Tensor | None,
        exact: bool,
        as_sampled: bool,
    ) -> None:
        """Valid in-batch negative columns: their hardness and false negatives.

        :param gaps: negative minus positive score of each valid column.
        :param hidden: whether each valid column is a hidden positive.
        :param as_sampled: count them as the sampler's negatives (when the
            sampler returns none of its own, i.e. in-batch only).
        """
        key = "fn" if exact else "fn_lower_bound"
        if hidden is not None:
            self.count(f"in_batch_{key}_hits", float(hidden.sum()))
            self.count(f"in_batch_{key}_checked", float(hidden.numel()))
        if as_sampled:
            self.add_values("hardness_gap", gaps)
            self.count("negatives_sampled", gaps.numel())
            self.count("negatives_measured", gaps.numel())
            if hidden is not None:
                self.count(f"{key}_hits", float(hidden.sum()))
                self.count(f"{key}_checked", float(hidden.numel()))

    def _reservoir(self, key: str) -> Reservoir:
        if key not in self._values:  # a stream of its own per key
            rng = np.random.default_rng([self._seed, zlib.crc32(key.encode())])
            self._values[key] = Reservoir(RESERVOIR_SIZE, rng)
        return self._values[key]

    # -- the result ----------------------------------------------------------------

    def summary(self) -> dict[str, float]:
        """Quantiles of every recorded value, counts, and the derived rates."""
        if self._unmeasured is not None:
            self.count("negatives_sampled", float(self._unmeasured))
            self._unmeasured = None
        out: dict[str, float] = {}
        for key, reservoir in self._values.items():
            merged = reservoir.values
            if merged.size == 0:
                continue
            for q in (10, 50, 90):
                out[f"{key}_q{q}"] = float(np.percentile(merged, q))
            out[f"{key}_mean"] = float(merged.mean())
        counts = self._counts
        for key in ("negatives_sampled", "negatives_measured"):
            if counts.get(key):
                out[key] = counts[key]
        if self._steps_measured < self._steps:
            out["measured_step_share"] = self._steps_measured / self._steps
        for prefix in ("", "in_batch_"):
            for key, name in (
                ("fn", "fn_rate"),
                ("fn_lower_bound", "fn_rate_lower_bound"),
                ("known_fn", "known_fn_rate"),
            ):
                if counts.get(f"{prefix}{key}_checked"):
                    out[prefix + name] = (
                        counts[f"{prefix}{key}_hits"] / counts[f"{prefix}{key}_checked"]
                    )
        if counts.get("suspect_flagged"):
            out["fn_detection_precision"] = (
                counts["suspect_correct"] / counts["suspect_flagged"]
            )
        if "suspect_flagged" in counts and counts.get("suspect_actual"):
            out["fn_detection_recall"] = (
                counts["suspect_correct"] / counts["suspect_actual"]
            )
        out.update(self.extra)
        return out
