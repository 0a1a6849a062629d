"""Hook specifications: the whole plugin API of negbench.

A plugin is any module or object with functions decorated by
:data:`harness.hookimpl` whose names match the specs below.  The built-in
tasks, models, losses, samplers, runner, result store, terminal reporter and
leaderboard renderers are plugins too and use exactly these hooks.

How a plugin is found (in this order): built-ins; ``-p MODULE``; installed
distributions' entry points in group ``harness``; ``HARNESS_PLUGINS=mod1,mod2``;
every ``*.py`` in ``--plugins-dir DIR``.  ``-p no:NAME`` blocks a plugin and
``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points.

Minimal plugin (``my_sampler.py``, run with ``--plugins-dir .``)::

    import torch
    from harness import Sampler, hookimpl

    class FirstK(Sampler):
        name = "first-k"
        families = frozenset({"retrieval"})

        def sample(self, batch, num_negatives, generator):
            order = batch.known_positive.float().argsort(dim=1, stable=True)
            return order[:, :num_negatives]

    @hookimpl
    def harness_register_samplers():
        return [FirstK]

Hook implementations may accept any subset of a spec's arguments, by name.
"""

# The specs have docstrings for bodies; they never run, so no return is needed.
# mypy: disable-error-code="empty-body"
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .components import Loss, Model, Sampler, Task
    from .context import RunContext
    from .executor import RunExecutor
    from .session import Session
    from .types import Leaderboard, Run, RunResult, TaskInfo

hookspec = pluggy.HookspecMarker("harness")

# -- registration -----------------------------------------------------------------


@hookspec
def harness_register_tasks() -> list[type[Task]]:
    """Contribute task classes.

    :returns: classes subclassing :class:`harness.Task`; each is registered
        under its ``name`` class attribute.  Two plugins registering the same
        name is an error that names both.

    Called once per session (and once per worker process).
    """


@hookspec
def harness_register_models() -> list[type[Model]]:
    """Contribute model classes (subclasses of :class:`harness.Model`).

    Each family's tasks expect one contract: :class:`harness.TextEncoder`
    (retrieval, STS; also multi-label text sets, with a label head added),
    :class:`harness.KGEModel` (knowledge graphs), :class:`harness.LabelModel`
    (multi-label classification over feature vectors).

    :returns: model classes keyed by their ``name``.
    """


@hookspec
def harness_register_losses() -> list[type[Loss]]:
    """Contribute loss classes (subclasses of :class:`harness.Loss`).

    A loss maps a :class:`harness.types.ScoredBatch` to one value per anchor;
    multi-label losses read its ``labels`` view (every label column of each
    example) instead of the positive/negative scores.

    :returns: loss classes keyed by their ``name``.
    """


@hookspec
def harness_register_samplers() -> list[type[Sampler]]:
    """Contribute sampler classes (subclasses of :class:`harness.Sampler`).

    :returns: sampler classes keyed by their ``name``.
    """


# -- run protocol -----------------------------------------------------------------


@hookspec
def harness_modify_runs(session: Session, runs: list[Run]) -> None:
    """Filter or reorder the expanded run matrix, in place.

    :param session: the bench session (configuration, registries, notes).
    :param runs: the planned runs; remove, reorder or leave them.  The built-in
        result store removes runs already completed (resume) unless
        ``--rerun`` is given.

    Called once, after the matrix is expanded and datasets located, before
    any run starts.  Add a line to ``session.notes`` to tell the user why a
    run was dropped.
    """


@hookspec
def harness_session_start(session: Session, runs: Sequence[Run]) -> None:
    """Called once, right before the first run starts.

    :param session: the bench session.
    :param runs: the runs about to execute (after ``harness_modify_runs``).

    The built-in terminal reporter registers itself here (pytest's
    ``terminal.py`` pattern), so ``-p no:harness.terminal`` silences it.
    """


@hookspec(firstresult=True)
def harness_executor(session: Session, name: str) -> RunExecutor | None:
    """Return the executor that ``harness bench --executor NAME`` asked for.

    :param session: the bench session: ``session.options`` holds ``jobs``,
        ``threads``, ``timeout``, ``device``, ``address`` and ``slurm``;
        ``session.worker_config()`` is what a worker needs to rebuild the
        plugin manager and find the data.
    :param name: the ``--executor`` value (``local`` by default).
    :returns: an object with ``run(runs, on_phase, on_result)`` (see
        :class:`harness.executor.RunExecutor`), or None if ``name`` is not
        yours.  ``on_result`` must be called exactly once per run, in the
        main process, with a result or a failed result: never lose a run.

    Stops at the first non-None answer.  Built-ins: ``local`` (worker
    processes on this machine, one per GPU or ``--jobs N``), ``ray``
    (Ray tasks on a local or remote cluster, ``negbench[ray]``), ``slurm``
    (one Slurm job per run through submitit, ``negbench[slurm]``) and
    ``submitit-local`` (the same, as subprocesses of this machine).  A
    plugin can add another engine (Kubernetes, say) under its own name.
    """


@hookspec(firstresult=True)
def harness_run(run: Run, context: RunContext) -> RunResult | None:
    """Execute one run and return its result.

    :param run: what to run (components, params, seed, dataset, run_id).
    :param context: device, seed, caches, progress reporting and the guarded
        component calls.
    :returns: the result, or None to let the next implementation run it.

    Stops at the first non-None result.  The built-in runner is ``trylast``,
    so a plugin can answer first (a remote executor, a cache).  Called in the
    worker process that executes the run; an exception here fails only this
    run.
    """


@hookspec
def harness_run_phase(session: Session, run: Run, phase: str, detail: str) -> None:
    """Observe progress inside a run (``embed``, ``mine``, ``train``...).

    :param session: the bench session.
    :param run: the run reporting.
    :param phase: the phase just entered (or still running).
    :param detail: free text such as ``epoch 2/3``.

    Called in the main process, at most a few times a second per run.
    """


@hookspec
def harness_result(session: Session, result: RunResult) -> None:
    """Observe one finished run (ok or failed).

    :param session: the bench session.
    :param result: the run's outcome.  The built-in store writes it to the
        result database first (``tryfirst``), so an implementation that
        raises loses no result; the terminal reporter prints a line.

    Called in the main process, once per executed run, in completion order.
    """


@hookspec
def harness_session_finish(session: Session, results: Sequence[RunResult]) -> None:
    """Called once after all runs, including failed ones.

    :param session: the bench session (``session.exitstatus`` is set).
    :param results: every result of this session's matrix, including runs
        skipped because they were already stored.
    """


# -- leaderboard ------------------------------------------------------------------


@hookspec(firstresult=True)
def harness_rank(
    results: Sequence[RunResult], tasks: dict[str, TaskInfo]
) -> Leaderboard | None:
    """Turn results into a ranked leaderboard.

    :param results: stored results (failed ones included, to be counted).
    :param tasks: task name -> :class:`TaskInfo` (family, main metric).
    :returns: the board, or None to defer.  The built-in ranker (``trylast``)
        averages seeds per (task, model, loss, sampler), ranks per task by the
        main metric with confidence and rank intervals and Holm-corrected tie
        groups from paired tests over the runs' per-item scores, and
        aggregates methods by Borda count and by mean normalised score per
        family.
    """


@hookspec
def harness_render(
    board: Leaderboard, outdir: Path, results: Sequence[RunResult]
) -> None:
    """Write one output format of the leaderboard into ``outdir``.

    :param board: the ranked board from :func:`harness_rank`.
    :param outdir: existing directory; every implementation writes its own
        files (the built-ins write ``leaderboard.json`` and the static site).
    :param results: the runs behind the board (store and accepted
        submissions; per-item scores only for the main metric), for pages
        that drill down to every run.
    """
