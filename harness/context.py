"""The per-run context handed to tasks: device, caches, phases, guarded calls.

Tasks never call a sampler or a loss directly.  They call
:meth:`RunContext.sample_negatives` and :meth:`RunContext.compute_loss`, which
enforce the component contracts (a violation fails the run with the plugin
named), reduce the loss, and record the sampler diagnostics (hardness, false
negatives, mining time) that negbench exists to measure.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .cache import ArrayCache
from .errors import ComponentError, ContractError, HarnessError
from .sampling import first_occurrence
from .types import Negatives

if TYPE_CHECKING:
    from .components import Loss, Sampler
    from .data import DataLocator
    from .registry import Registries
    from .types import CandidateBatch, Run, ScoredBatch

__all__ = ["ComponentRef", "Diagnostics", "RunContext"]

#: cap on stored per-negative values; beyond it a reservoir sample is kept
_RESERVOIR = 200_000


@dataclass(slots=True)
class ComponentRef:
    """A component instance plus who contributed it (for error messages)."""

    kind: str
    name: str
    plugin: str


class Reservoir:
    """A uniform sample of at most ``size`` of all the values ever added.

    Vitter's Algorithm R (ACM TOMS 1985), vectorised over each added chunk:
    the i-th value seen (0-based) replaces a random slot with probability
    size / (i + 1), so every value of the run is equally likely to be kept,
    early training steps as much as late ones.
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
        if len(new):
            index = self.seen + np.arange(1, len(new) + 1)
            slot = (self._rng.random(len(new)) * index).astype(np.int64)
            kept = slot < size
            self.buffer[slot[kept]] = new[kept]
            self.seen += len(new)


class Diagnostics:
    """Accumulates what the sampled negatives looked like over a run."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self._values: dict[str, Reservoir] = defaultdict(
            lambda: Reservoir(_RESERVOIR, rng)
        )
        self._counts: dict[str, float] = defaultdict(float)
        self.extra: dict[str, float] = {}

    def add_values(self, key: str, values: torch.Tensor) -> None:
        self._values[key].add(values.detach().float().cpu().numpy().ravel())

    def count(self, key: str, amount: float) -> None:
        self._counts[key] += amount

    def note(self, key: str, value: float) -> None:
        """Store a number as it is (e.g. a statistic of the task's data)."""
        self.extra[key] = float(value)

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
            if hidden is not None:
                self.count(f"{key}_hits", float(hidden.sum()))
                self.count(f"{key}_checked", float(hidden.numel()))

    def summary(self) -> dict[str, float]:
        """Quantiles of every recorded value, counts, and the derived rates."""
        out: dict[str, float] = {}
        for key, reservoir in self._values.items():
            merged = reservoir.values
            if merged.size == 0:
                continue
            for q in (10, 50, 90):
                out[f"{key}_q{q}"] = float(np.percentile(merged, q))
            out[f"{key}_mean"] = float(merged.mean())
        counts = self._counts
        if counts.get("negatives_sampled"):
            out["negatives_sampled"] = counts["negatives_sampled"]
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


@dataclass(slots=True, kw_only=True)
class RunContext:
    """Everything a task needs while it executes one run."""

    run: Run
    registries: Registries
    device: torch.device
    cache_dir: Path
    seed: int
    report: Callable[[str, str], None] = lambda phase, detail: None
    timings: dict[str, float] = field(default_factory=dict)
    sampler: Sampler | None = None
    loss: Loss | None = None
    refs: dict[str, ComponentRef] = field(default_factory=dict)
    #: the session's data search path (data dirs, cache, offline flag)
    locator: DataLocator | None = None
    generator: torch.Generator = field(default_factory=torch.Generator)
    diagnostics: Diagnostics = field(init=False)
    _phase: str = "setup"

    def __post_init__(self) -> None:
        self.generator.manual_seed(self.seed)
        self.diagnostics = Diagnostics(self.seed)

    # -- progress and timing -----------------------------------------------------

    @property
    def cache(self) -> ArrayCache:
        return ArrayCache(self.cache_dir)

    @contextlib.contextmanager
    def phase(self, name: str, detail: str = "") -> Iterator[None]:
        """Time a phase (``embed``, ``mine``, ``train``, ``evaluate``...).

        Nested phases are timed separately: time spent mining inside ``train``
        is counted under both, so ``mine / train`` is the mining share.
        """
        previous, self._phase = self._phase, name
        self.report(name, detail)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = (
                self.timings.get(name, 0.0) + time.perf_counter() - start
            )
            self._phase = previous

    def progress(self, detail: str) -> None:
        """Update the detail line of the current phase (e.g. ``epoch 2/3``)."""
        self.report(self._phase, detail)

    # -- guarded component calls ---------------------------------------------------

    @contextlib.contextmanager
    def guard(self, kind: str) -> Iterator[None]:
        """Attribute any exception raised inside to the run's ``kind`` component."""
        try:
            yield
        except HarnessError:
            raise
        except Exception as exc:
            ref = self.refs[kind]
            raise ComponentError(
                kind, ref.name, ref.plugin, f"raised {type(exc).__name__}: {exc}"
            ) from exc

    def violation(self, kind: str, message: str) -> ContractError:
        """A contract error naming this run's ``kind`` component and its plugin."""
        ref = self.refs[kind]
        return ContractError(kind, ref.name, ref.plugin, message)

    def sample_negatives(
        self,
        batch: CandidateBatch,
        num_negatives: int,
        *,
        oracle_positive: torch.Tensor | None = None,
        oracle_is_exact: bool = False,
        ranks: torch.Tensor | None = None,
        labelled_positive: torch.Tensor | None = None,
        used: torch.Tensor | None = None,
        repeats_train_once: bool = False,
        pool_scored: bool = True,
    ) -> Negatives:
        """Ask the run's sampler for negatives and check the answer.

        :param batch: what the sampler may see.
        :param num_negatives: K.
        :param oracle_positive: shape: (B, C) True where a candidate is a
            positive the sampler was *not* told about (hidden or test labels);
            used only to measure the false-negative rate.
        :param oracle_is_exact: whether the oracle is complete (synthetic
            tasks) or a lower bound (real tasks).
        :param ranks: shape: (B, C) 1-based rank of each candidate in the full
            ranking of the anchor, when the task can compute it.
        :param labelled_positive: shape: (B, C) True where a candidate is a
            labelled positive that an *unfiltered* sampler was allowed to draw
            (other training facts of a KGE query); counted as ``known_fn_rate``.
        :param used: shape: (B, K) bool, the answer's columns the protocol
            will actually train with (a side split keeps fewer than K); the
            diagnostics count only these.
        :param repeats_train_once: the protocol puts a column the sampler
            repeats in the loss once (multi-label: a label is in or out), so
            the diagnostics count it once; otherwise every copy counts, as
            every copy is trained.
        :param pool_scored: False when the protocol skipped scoring the pool
            for a sampler that does not read scores (``batch.scores`` is
            NaN); the protocol then reports hardness through
            :meth:`record_hardness` once the loss's scores exist.
        :returns: the checked answer; ``positions`` has shape (B, K) and is a
            long tensor on the candidates' device.
        """
        if self.sampler is None:
            raise HarnessError("this run has no sampler")
        with self.guard("sampler"):
            answer = self.sampler.sample(batch, num_negatives, self.generator)
        if isinstance(answer, Negatives):
            positions = self._check_sample(batch, num_negatives, answer.positions)
            self._check_extras(batch, positions, answer)
            answer = Negatives(
                positions=positions, suspected=answer.suspected, vectors=answer.vectors
            )
        else:
            answer = Negatives(
                positions=self._check_sample(batch, num_negatives, answer)
            )
        self._record(
            batch,
            answer,
            oracle=oracle_positive,
            exact=oracle_is_exact,
            ranks=ranks,
            labelled=labelled_positive,
            used=used,
            once=repeats_train_once,
            scored=pool_scored,
        )
        return answer

    def record_hardness(self, gaps: torch.Tensor) -> None:
        """Record negatives' score minus their positive's score (detached).

        For protocols that called :meth:`sample_negatives` with
        ``pool_scored=False``: pass the gaps of exactly the negatives that
        the diagnostics count (the trained ones).
        """
        self.diagnostics.add_values("hardness_gap", gaps.detach())

    def _check_extras(
        self, batch: CandidateBatch, positions: torch.Tensor, answer: Negatives
    ) -> None:
        suspected, vectors = answer.suspected, answer.vectors
        if suspected is not None and (
            not isinstance(suspected, torch.Tensor)
            or suspected.dtype != torch.bool
            or suspected.shape != positions.shape
        ):
            raise self.violation(
                "sampler",
                f"'suspected' must be a bool tensor of shape {tuple(positions.shape)}",
            )
        if vectors is not None and (
            not isinstance(vectors, torch.Tensor)
            or vectors.ndim != 3
            or vectors.shape[0] != batch.size
            or not bool(torch.isfinite(vectors).all())
        ):
            raise self.violation(
                "sampler",
                f"'vectors' must be a finite tensor of shape ({batch.size}, E, D)",
            )

    def _check_sample(
        self, batch: CandidateBatch, k: int, chosen: object
    ) -> torch.Tensor:
        if not isinstance(chosen, torch.Tensor):
            raise self.violation(
                "sampler", f"returned {type(chosen).__name__}, not a tensor"
            )
        expected = (batch.size, k)
        if tuple(chosen.shape) != expected:
            raise self.violation(
                "sampler", f"returned shape {tuple(chosen.shape)}, expected {expected}"
            )
        if chosen.dtype.is_floating_point or chosen.dtype == torch.bool:
            raise self.violation(
                "sampler", f"returned dtype {chosen.dtype}, not integer"
            )
        chosen = chosen.long().to(batch.candidate_ids.device)
        if chosen.numel() and not bool(
            ((chosen >= 0) & (chosen < batch.num_candidates)).all()
        ):
            raise self.violation(
                "sampler",
                f"returned positions outside [0, {batch.num_candidates})",
            )
        hits = batch.known_positive.gather(1, chosen)
        if bool(hits.any()):
            row, col = (int(i) for i in hits.nonzero()[0])
            cand = int(batch.candidate_ids[row, chosen[row, col]])
            raise self.violation(
                "sampler",
                f"returned a known positive as a negative (anchor "
                f"{int(batch.anchor_ids[row])}, candidate {cand})",
            )
        return chosen

    def _record(
        self,
        batch: CandidateBatch,
        answer: Negatives,
        *,
        oracle: torch.Tensor | None,
        exact: bool,
        ranks: torch.Tensor | None,
        labelled: torch.Tensor | None = None,
        used: torch.Tensor | None = None,
        once: bool = False,
        scored: bool = True,
    ) -> None:
        d = self.diagnostics
        chosen = answer.positions
        keep = torch.ones(chosen.shape, dtype=torch.bool, device=chosen.device)
        if once:  # the protocol trains a repeated column once: count it once
            keep = first_occurrence(chosen)
        if used is not None:
            keep &= used.to(device=chosen.device, dtype=torch.bool)
        kept = float(keep.sum())
        if not kept:
            return
        if scored:
            scores = batch.scores.gather(1, chosen)
            gaps = scores - batch.positive_scores[:, None]
            d.add_values("hardness_gap", gaps[keep])
        if ranks is not None:
            d.add_values("neg_rank", ranks.gather(1, chosen).float()[keep])
        d.count("negatives_sampled", kept)
        if labelled is not None:
            hits = labelled.gather(1, chosen) & keep
            d.count("known_fn_hits", float(hits.sum()))
            d.count("known_fn_checked", kept)
        if oracle is not None:
            key = "fn" if exact else "fn_lower_bound"
            truly_false = oracle.gather(1, chosen) & keep
            d.count(f"{key}_hits", float(truly_false.sum()))
            d.count(f"{key}_checked", kept)
            if answer.suspected is not None and exact:
                # how good the sampler's own false-negative detection is
                flagged = answer.suspected.to(truly_false.device) & keep
                d.count("suspect_flagged", float(flagged.sum()))
                d.count("suspect_correct", float((flagged & truly_false).sum()))
                d.count("suspect_actual", float(truly_false.sum()))

    def compute_loss(self, batch: ScoredBatch) -> torch.Tensor:
        """Per-anchor losses from the run's loss, checked, reduced by mean."""
        if self.loss is None:
            raise HarnessError("this run has no loss")
        positive = batch.positive
        with self.guard("loss"):
            losses = self.loss.forward_batch(batch)
        if not isinstance(losses, torch.Tensor):
            raise self.violation(
                "loss", f"returned {type(losses).__name__}, not a tensor"
            )
        if tuple(losses.shape) != (positive.shape[0],):
            raise self.violation(
                "loss",
                f"returned shape {tuple(losses.shape)}, expected "
                f"({positive.shape[0]},): one loss per anchor, unreduced",
            )
        if not bool(torch.isfinite(losses).all()):
            bad = "NaN" if bool(torch.isnan(losses).any()) else "infinite"
            raise self.violation("loss", f"returned {bad} loss values")
        return losses.mean()
