"""The per-run context handed to tasks: device, caches, phases, guarded calls.

Tasks never call a sampler or a loss directly.  They call
:meth:`RunContext.sample_negatives` and :meth:`RunContext.compute_loss`, which
enforce the component contracts (a violation fails the run with the plugin
named), reduce the loss, and record the sampler diagnostics (hardness, false
negatives, mining time) that negbench exists to measure.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import torch

from .cache import ArrayCache
from .diagnostics import Diagnostics, PairCheck
from .errors import ComponentError, ContractError, HarnessError
from .types import Negatives

if TYPE_CHECKING:
    from .components import Loss, Sampler
    from .data import DataLocator
    from .registry import Registries
    from .types import CandidateBatch, Run, ScoredBatch

__all__ = ["ComponentRef", "Diagnostics", "RunContext"]


@dataclass(slots=True)
class ComponentRef:
    """A component instance plus who contributed it (for error messages)."""

    kind: str
    name: str
    plugin: str


def _dense(tensor: torch.Tensor) -> bool:
    """A plain strided tensor: not sparse, not nested."""
    return tensor.layout is torch.strided and not tensor.is_nested


def _layout(tensor: torch.Tensor) -> str:
    """What kind of tensor it is, for a message: 'nested', 'torch.sparse_coo'."""
    return "nested" if tensor.is_nested else str(tensor.layout)


def _broken_promise(batch: CandidateBatch) -> str | None:
    """What is wrong with the protocol's ``fewest_allowed``, if anything.

    A sampler may trust the promise and skip looking for short rows
    (:func:`harness.sampling.uniform_negatives`); a short row then hands it
    known positives.  Checked only once a sampler has returned one, so a
    protocol's wrong count fails its run under the task's name, not the
    sampler's, at no cost to a step that passes.
    """
    if batch.fewest_allowed is None or not batch.size:
        return None
    fewest = batch.num_candidates - int(batch.known_positive.sum(dim=1).max())
    if batch.fewest_allowed <= fewest:
        return None
    return (
        f"promised every row at least {batch.fewest_allowed} candidates that are "
        f"not known positives (CandidateBatch.fewest_allowed), but a row has "
        f"{fewest}"
    )


class _Guard:
    """:meth:`RunContext.guard`: a plain class, not a generator-based context
    manager, as it wraps component calls in every training step."""

    __slots__ = ("kind", "refs")

    def __init__(self, refs: dict[str, ComponentRef], kind: str) -> None:
        self.refs, self.kind = refs, kind

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if (
            exc is None
            or isinstance(exc, HarnessError)
            or not isinstance(exc, Exception)
        ):
            return  # nothing raised, or nothing to attribute: propagates as is
        ref = self.refs[self.kind]
        raise ComponentError(
            self.kind, ref.name, ref.plugin, f"raised {type(exc).__name__}: {exc}"
        ) from exc


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

        Records wall seconds as ``timings[name]`` and the process's CPU
        seconds (all its threads) as ``timings[name + "_cpu"]``: on a busy
        machine a run's wall time grows with its neighbours, its CPU time
        much less, so CPU time is what to compare across machines and loads.
        Nested phases are timed separately: time spent mining inside ``train``
        is counted under both, so ``mine / train`` is the mining share.
        """
        previous, self._phase = self._phase, name
        self.report(name, detail)
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            timings = self.timings
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
            cpu = f"{name}_cpu"
            timings[cpu] = timings.get(cpu, 0.0) + time.process_time() - cpu_start
            self._phase = previous

    def progress(self, detail: str) -> None:
        """Update the detail line of the current phase (e.g. ``epoch 2/3``)."""
        self.report(self._phase, detail)

    # -- guarded component calls ---------------------------------------------------

    def guard(self, kind: str) -> _Guard:
        """Attribute any exception raised inside to the run's ``kind`` component
        (a context manager)."""
        return _Guard(self.refs, kind)

    def violation(self, kind: str, message: str) -> ContractError:
        """A contract error naming this run's ``kind`` component and its plugin."""
        ref = self.refs[kind]
        return ContractError(kind, ref.name, ref.plugin, message)

    def sample_negatives(
        self,
        batch: CandidateBatch,
        num_negatives: int,
        *,
        oracle_positive: torch.Tensor | PairCheck | None = None,
        oracle_is_exact: bool = False,
        ranks: torch.Tensor | None = None,
        labelled_positive: torch.Tensor | PairCheck | None = None,
        used: torch.Tensor | None = None,
        used_count: int | None = None,
        repeats_train_once: bool = False,
        pool_scored: bool = True,
    ) -> Negatives:
        """Ask the run's sampler for negatives and check the answer.

        :param batch: what the sampler may see.
        :param num_negatives: K.
        :param oracle_positive: shape: (B, C) True where a candidate is a
            positive the sampler was *not* told about (hidden or test labels);
            used only to measure the false-negative rate.  Or a
            :data:`~harness.diagnostics.PairCheck` that answers this for
            (anchor id, candidate id) pairs: the diagnostics then run it on
            the chosen negatives of the steps they measure only, which is far
            cheaper than a (B, C) tensor every step.
        :param oracle_is_exact: whether the oracle is complete (synthetic
            tasks) or a lower bound (real tasks).
        :param ranks: shape: (B, C) 1-based rank of each candidate in the full
            ranking of the anchor, when the task can compute it.
        :param labelled_positive: shape: (B, C) True where a candidate is a
            labelled positive that an *unfiltered* sampler was allowed to draw
            (other training facts of a KGE query); counted as ``known_fn_rate``.
            A PairCheck too, as ``oracle_positive``.
        :param used: shape: (B, K) bool, the answer's columns the protocol
            will actually train with (a side split keeps fewer than K); the
            diagnostics count only these.
        :param used_count: how many entries of ``used`` are True, when the
            protocol knows it without counting (a KGE side split keeps
            exactly K negatives per fact): saves a reduction in every step
            that is not measured.
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
            suspected = self._check_extras(batch, positions, answer)
            answer = Negatives(
                positions=positions, suspected=suspected, vectors=answer.vectors
            )
        else:
            answer = Negatives(
                positions=self._check_sample(batch, num_negatives, answer)
            )
        diagnostics = self.diagnostics
        if not diagnostics.start_step():  # most steps of a long run
            diagnostics.count_unmeasured(
                answer.positions, used, once=repeats_train_once, known=used_count
            )
            return answer
        diagnostics.observe(
            anchor_ids=batch.anchor_ids,
            candidate_ids=batch.candidate_ids,
            positions=answer.positions,
            scores=batch.scores if pool_scored else None,
            positive_scores=batch.positive_scores if pool_scored else None,
            ranks=ranks,
            labelled=labelled_positive,
            oracle=oracle_positive,
            exact=oracle_is_exact,
            suspected=answer.suspected,
            used=used,
            once=repeats_train_once,
        )
        return answer

    def record_hardness(
        self, gaps: torch.Tensor, used: torch.Tensor | None = None
    ) -> None:
        """Record negatives' score minus their positive's score (detached).

        For protocols that called :meth:`sample_negatives` with
        ``pool_scored=False``: pass the gaps of exactly the negatives that
        the diagnostics count (the trained ones), or all of them and ``used``,
        a bool mask of the same shape that selects those.  Does nothing in a
        step whose negatives are not measured (see :attr:`diagnosing`).
        """
        if self.diagnostics.measuring:
            # the rows the step measures, as its sampled negatives' checks
            gaps, used = self.diagnostics.measured(gaps, used)
            self.diagnostics.add_values("hardness_gap", gaps, where=used)

    def plan_diagnostics(self, steps: int, negatives_per_step: int) -> None:
        """Announce the training steps (one :meth:`sample_negatives` each).

        For protocols with many cheap steps: the diagnostics then measure a
        uniform random sample of the steps, about a million negatives in
        all, instead of every step (see :mod:`harness.diagnostics`).
        """
        self.diagnostics.plan(steps, negatives_per_step)

    @property
    def diagnosing(self) -> bool:
        """Whether the current step's negatives are measured: a protocol may
        skip computing what only :meth:`record_hardness` would read."""
        return self.diagnostics.measuring

    def _check_extras(
        self, batch: CandidateBatch, positions: torch.Tensor, answer: Negatives
    ) -> torch.Tensor | None:
        """Check the answer's optional tensors; returns ``suspected`` on the
        positions' device."""
        suspected, vectors = answer.suspected, answer.vectors
        if suspected is not None and (
            not isinstance(suspected, torch.Tensor)
            or not _dense(suspected)
            or suspected.dtype != torch.bool
            or suspected.shape != positions.shape
        ):
            raise self.violation(
                "sampler",
                f"'suspected' must be a bool tensor of shape {tuple(positions.shape)}",
            )
        if suspected is not None and suspected.device != positions.device:
            # the protocol takes it with the positions, on their device
            suspected = self._move(suspected, positions.device, "'suspected'")
        if vectors is not None and (
            not isinstance(vectors, torch.Tensor)
            or not _dense(vectors)
            or vectors.is_meta  # no values to check
            or vectors.ndim != 3
            or vectors.shape[0] != batch.size
            or not bool(torch.isfinite(vectors).all())
        ):
            raise self.violation(
                "sampler",
                f"'vectors' must be a finite tensor of shape ({batch.size}, E, D)",
            )
        return suspected

    def _move(
        self, tensor: torch.Tensor, device: torch.device, what: str
    ) -> torch.Tensor:
        """The sampler's ``tensor`` on ``device``; a tensor that cannot go
        there (a 'meta' one) fails the sampler, not the protocol."""
        try:
            return tensor.to(device)
        except RuntimeError as exc:  # NotImplementedError is one
            raise self.violation(
                "sampler",
                f"returned {what} on {tensor.device}, which cannot be moved to "
                f"{device} ({type(exc).__name__}: {exc})",
            ) from None

    def _check_sample(
        self, batch: CandidateBatch, k: int, chosen: object
    ) -> torch.Tensor:
        if not isinstance(chosen, torch.Tensor):
            raise self.violation(
                "sampler", f"returned {type(chosen).__name__}, not a tensor"
            )
        if not _dense(chosen):  # a nested tensor has no .shape to compare
            raise self.violation(
                "sampler",
                f"returned a {_layout(chosen)} tensor, not a dense (strided) one",
            )
        expected = (batch.size, k)
        if chosen.shape != expected:  # a torch.Size equals the tuple of its sizes
            raise self.violation(
                "sampler", f"returned shape {tuple(chosen.shape)}, expected {expected}"
            )
        if chosen.dtype is not torch.long:  # dtypes are singletons
            dtype = chosen.dtype
            if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
                raise self.violation(
                    "sampler", f"returned dtype {chosen.dtype}, not integer"
                )
            chosen = chosen.long()
        device = batch.candidate_ids.device
        if chosen.device != device:
            chosen = self._move(chosen, device, "positions")
        if not chosen.numel():
            return chosen
        hits: torch.Tensor | None = None
        # chosen is on the candidates' device now; is_cpu costs a tenth of
        # building and comparing torch.device objects, every step
        if chosen.is_cpu and batch.known_positive.is_cpu:
            # the CPU gather checks every position itself, and with the
            # shapes, dtype and devices checked a bad position is the only
            # thing it can fail on: no separate range check per step
            try:
                hits = batch.known_positive.gather(1, chosen)
            except RuntimeError:
                hits = None
        else:
            # on a GPU a bad position would be a device-side assert, which
            # kills the CUDA context: check the range first (one reduction)
            low, high = (int(bound) for bound in torch.aminmax(chosen))
            if low >= 0 and high < batch.num_candidates:
                hits = batch.known_positive.gather(1, chosen)
        if hits is None:
            raise self.violation(
                "sampler", f"returned positions outside [0, {batch.num_candidates})"
            )
        # any(): the max of the bytes costs a third of a bool any() on the CPU
        if hits.view(torch.uint8).max():
            broken = _broken_promise(batch)
            if broken is not None and "task" in self.refs:
                raise self.violation("task", broken)
            row, col = (int(i) for i in hits.nonzero()[0])
            cand = int(batch.candidate_ids[row, chosen[row, col]])
            raise self.violation(
                "sampler",
                f"returned a known positive as a negative (anchor "
                f"{int(batch.anchor_ids[row])}, candidate {cand})",
            )
        return chosen

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
        if not _dense(losses) or losses.is_meta:
            kind = "meta" if losses.is_meta else _layout(losses)
            raise self.violation(
                "loss", f"returned a {kind} tensor, not a dense one with values"
            )
        if not losses.dtype.is_floating_point:  # no gradient, or a complex mean
            raise self.violation(
                "loss", f"returned dtype {losses.dtype}, not floating point"
            )
        if tuple(losses.shape) != (positive.shape[0],):
            raise self.violation(
                "loss",
                f"returned shape {tuple(losses.shape)}, expected "
                f"({positive.shape[0]},): one loss per anchor, unreduced",
            )
        if (
            not losses.requires_grad
            and (positive.requires_grad or batch.negative.requires_grad)
            and torch.is_grad_enabled()
        ):
            # the protocol would step on nothing and report an untrained model
            raise self.violation(
                "loss",
                "returned losses without a gradient (detached from the scores): "
                "the model would not train",
            )
        mean = losses.mean()
        # a NaN or an infinity in any anchor's loss makes the mean non-finite
        # (inf - inf is NaN), so one look at the mean checks them all
        if not math.isfinite(mean.item()):
            if bool(torch.isnan(losses).any()):
                bad = "NaN"
            elif bool(torch.isinf(losses).any()):
                bad = "infinite"
            else:  # finite values whose float32 sum overflowed
                bad = "too large"
            raise self.violation("loss", f"returned {bad} loss values")
        return mean
