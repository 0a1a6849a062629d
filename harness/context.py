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

if TYPE_CHECKING:
    from .components import Loss, Sampler
    from .registry import Registries
    from .types import CandidateBatch, Run

__all__ = ["ComponentRef", "Diagnostics", "RunContext"]

#: cap on stored per-negative values; beyond it a reservoir sample is kept
_RESERVOIR = 200_000


@dataclass(slots=True)
class ComponentRef:
    """A component instance plus who contributed it (for error messages)."""

    kind: str
    name: str
    plugin: str


class Diagnostics:
    """Accumulates what the sampled negatives looked like over a run."""

    def __init__(self, seed: int) -> None:
        self._values: dict[str, list[np.ndarray]] = defaultdict(list)
        self._counts: dict[str, float] = defaultdict(float)
        self._rng = np.random.default_rng(seed)
        self.extra: dict[str, float] = {}

    def add_values(self, key: str, values: torch.Tensor) -> None:
        array = values.detach().float().cpu().numpy().ravel()
        self._values[key].append(array)
        total = sum(len(a) for a in self._values[key])
        if total > 2 * _RESERVOIR:  # keep memory bounded on long runs
            merged = np.concatenate(self._values[key])
            self._values[key] = [self._rng.choice(merged, _RESERVOIR, replace=False)]

    def count(self, key: str, amount: float) -> None:
        self._counts[key] += amount

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, chunks in self._values.items():
            merged = np.concatenate(chunks)
            if merged.size == 0:
                continue
            for q in (10, 50, 90):
                out[f"{key}_q{q}"] = float(np.percentile(merged, q))
            out[f"{key}_mean"] = float(merged.mean())
        sampled = self._counts.get("negatives_sampled", 0.0)
        out.update({k: v for k, v in self._counts.items() if not k.startswith("fn_")})
        for key in ("fn", "fn_lower_bound"):
            if self._counts.get(f"{key}_checked"):
                rate = self._counts[f"{key}_hits"] / self._counts[f"{key}_checked"]
                out["fn_rate" if key == "fn" else "fn_rate_lower_bound"] = rate
        if sampled:
            out["negatives_sampled"] = sampled
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

    def _violation(self, kind: str, message: str) -> ContractError:
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
    ) -> torch.Tensor:
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
        :returns: shape: (B, K) long positions into ``batch.candidate_ids``.
        """
        if self.sampler is None:
            raise HarnessError("this run has no sampler")
        with self.guard("sampler"):
            chosen = self.sampler.sample(batch, num_negatives, self.generator)
        chosen = self._check_sample(batch, num_negatives, chosen)
        self._record(batch, chosen, oracle_positive, oracle_is_exact, ranks)
        return chosen

    def _check_sample(
        self, batch: CandidateBatch, k: int, chosen: object
    ) -> torch.Tensor:
        if not isinstance(chosen, torch.Tensor):
            raise self._violation(
                "sampler", f"returned {type(chosen).__name__}, not a tensor"
            )
        expected = (batch.size, k)
        if tuple(chosen.shape) != expected:
            raise self._violation(
                "sampler", f"returned shape {tuple(chosen.shape)}, expected {expected}"
            )
        if chosen.dtype.is_floating_point or chosen.dtype == torch.bool:
            raise self._violation(
                "sampler", f"returned dtype {chosen.dtype}, not integer"
            )
        chosen = chosen.long().to(batch.candidate_ids.device)
        if chosen.numel() and (
            chosen.min() < 0 or chosen.max() >= batch.num_candidates
        ):
            raise self._violation(
                "sampler",
                f"returned positions outside [0, {batch.num_candidates})",
            )
        hits = batch.known_positive.gather(1, chosen)
        if bool(hits.any()):
            row, col = (int(i) for i in hits.nonzero()[0])
            cand = int(batch.candidate_ids[row, chosen[row, col]])
            raise self._violation(
                "sampler",
                f"returned a known positive as a negative (anchor "
                f"{int(batch.anchor_ids[row])}, candidate {cand})",
            )
        return chosen

    def _record(
        self,
        batch: CandidateBatch,
        chosen: torch.Tensor,
        oracle: torch.Tensor | None,
        exact: bool,
        ranks: torch.Tensor | None,
    ) -> None:
        d = self.diagnostics
        scores = batch.scores.gather(1, chosen)
        d.add_values("hardness_gap", scores - batch.positive_scores[:, None])
        if ranks is not None:
            d.add_values("neg_rank", ranks.gather(1, chosen).float())
        d.count("negatives_sampled", chosen.numel())
        if oracle is not None:
            key = "fn" if exact else "fn_lower_bound"
            d.count(f"{key}_hits", float(oracle.gather(1, chosen).sum()))
            d.count(f"{key}_checked", chosen.numel())

    def compute_loss(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Per-anchor losses from the run's loss, checked, reduced by mean."""
        if self.loss is None:
            raise HarnessError("this run has no loss")
        with self.guard("loss"):
            losses = self.loss(positive, negative, mask)
        if not isinstance(losses, torch.Tensor):
            raise self._violation(
                "loss", f"returned {type(losses).__name__}, not a tensor"
            )
        if tuple(losses.shape) != (positive.shape[0],):
            raise self._violation(
                "loss",
                f"returned shape {tuple(losses.shape)}, expected "
                f"({positive.shape[0]},): one loss per anchor, unreduced",
            )
        if not bool(torch.isfinite(losses).all()):
            bad = "NaN" if bool(torch.isnan(losses).any()) else "infinite"
            raise self._violation("loss", f"returned {bad} loss values")
        return losses.mean()
