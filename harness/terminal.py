"""Terminal reporting with rich: matrix progress, run phases, ranked summary.

The module is a built-in plugin; at session start it registers a stateful
:class:`TerminalReporter` (pytest's ``terminal.py`` pattern), so
``-p no:harness.terminal`` turns all of it off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .errors import ExitCode
from .plugin import hookimpl
from .types import Leaderboard, Run, RunResult

if TYPE_CHECKING:
    from .session import Session

__all__ = ["TerminalReporter", "format_result_line", "leaderboard_tables"]

_KEY_METRICS = 3  # besides the main metric, how many metrics the summary shows


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_result_line(result: RunResult) -> str:
    spec = result.spec
    # escaped: a task argument or an error may hold "[...]", which rich
    # would read as markup (and fail on a stray closing tag)
    label = escape(
        f"{spec.task} · {spec.model} · {spec.loss} · {spec.sampler} · seed {spec.seed}"
    )
    seconds = result.timings.get("total") or sum(
        v
        for k, v in result.timings.items()
        if k in ("setup", "load", "train", "evaluate")
    )
    if result.ok:
        return (
            f"[green]✓[/] {label}  [bold]{result.main_metric}="
            f"{_fmt(result.main_score)}[/]  ({seconds:.1f}s)"
        )
    return f"[red]✗ {label}  FAILED:[/] {escape(str(result.error))}"


def leaderboard_tables(board: Leaderboard) -> list[Table]:
    """One rich table per task, ranked by the main metric (mean ± std over seeds)."""
    tables = []
    for task, info in board.tasks.items():
        rows = [r for r in board.rows if r.task == task]
        if not rows:
            continue
        extra = [m for m in rows[0].metrics if m != info.main_metric][:_KEY_METRICS]
        table = Table(
            title=escape(f"{task} ({info.family}) — ranked by {info.main_metric}"),
            title_justify="left",
        )
        table.add_column("#", justify="right")
        table.add_column("group", justify="right")
        for col in ("model", "loss", "sampler"):
            table.add_column(col)
        table.add_column(f"{info.main_metric} (mean ± std)", justify="right")
        table.add_column("seeds", justify="right")
        for metric in extra:
            table.add_column(metric, justify="right")
        table.add_column("hardness gap q50", justify="right")
        table.add_column("train s", justify="right")
        for row in sorted(rows, key=lambda r: r.rank):
            table.add_row(
                str(row.rank),
                str(row.group),
                escape(row.model),
                escape(row.loss),
                escape(row.sampler),
                f"{_fmt(row.mean)} ± {_fmt(row.std)}",
                str(row.n_seeds) + (f" ({row.failed} failed)" if row.failed else ""),
                *[_fmt(row.metrics.get(m)) for m in extra],
                _fmt(row.diagnostics.get("hardness_gap_q50"), 3),
                f"{row.train_seconds:.1f}",
            )
        tables.append(table)
    return tables


class TerminalReporter:
    """Draws the progress display and prints results and the summary."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.overall = self.progress.add_task("runs", total=total)
        self.active: dict[str, TaskID] = {}
        self.progress.start()

    @hookimpl
    def harness_run_phase(self, run: Run, phase: str, detail: str) -> None:
        label, phase, detail = escape(run.spec.label), escape(phase), escape(detail)
        text = f"  {label}: [cyan]{phase}[/] {detail}"
        if run.run_id not in self.active:
            self.active[run.run_id] = self.progress.add_task(text, total=None)
        else:
            self.progress.update(self.active[run.run_id], description=text)

    @hookimpl
    def harness_result(self, result: RunResult) -> None:
        task_id = self.active.pop(result.run_id, None)
        if task_id is not None:
            self.progress.remove_task(task_id)
        self.progress.advance(self.overall)
        self.progress.console.print(
            format_result_line(result), highlight=False, soft_wrap=True
        )

    @hookimpl
    def harness_session_finish(
        self, session: Session, results: Sequence[RunResult]
    ) -> None:
        self.progress.stop()


@hookimpl
def harness_session_start(session: Session, runs: Sequence[Run]) -> None:
    for note in session.notes:
        session.console.print(
            f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True
        )
    session.notes.clear()
    session.console.print(
        f"[bold]harness bench[/]: {len(runs)} run(s) to execute, "
        f"{len(session.planned) - len(runs)} skipped; "
        f"results in {escape(str(session.options.store))}",
        highlight=False,
    )
    reporter = TerminalReporter(session.console, len(runs))
    pm = session.host.pm
    if pm.has_plugin("harness.terminal.reporter"):  # a previous session's, on
        pm.unregister(name="harness.terminal.reporter")  # a reused host
    pm.register(reporter, name="harness.terminal.reporter")


@hookimpl(trylast=True)
def harness_session_finish(session: Session, results: Sequence[RunResult]) -> None:
    console = session.console
    for note in session.notes:
        console.print(
            f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True
        )
    if session.exitstatus == ExitCode.INTERRUPTED:
        _report_interruption(session, results)
        return
    if not results:
        if session.elsewhere:
            console.print(
                f"[yellow]no results yet:[/] {escape(_elsewhere(session, results))}",
                highlight=False,
                soft_wrap=True,
            )
        else:
            console.print("[yellow]no runs:[/] the matrix is empty after filtering")
        return
    _report_results(session, results)


def _elsewhere(session: Session, results: Sequence[RunResult]) -> str:
    """The planned runs that another bench was still executing at the end
    (it may have stored some meanwhile: those are in ``results``)."""
    shown = {r.run_id for r in results}
    missing = [h for run_id, h in session.elsewhere.items() if run_id not in shown]
    if not missing:
        return ""
    return (
        f"{len(missing)} run(s) of this matrix are still being executed by another "
        f"harness bench on this store ({', '.join(sorted(set(missing)))}); the same "
        "command shows them once it has finished, or runs them if it stopped"
    )


def _report_interruption(session: Session, results: Sequence[RunResult]) -> None:
    """Ctrl-C: what finished is stored; the same command resumes the rest."""
    if results:
        _report_results(session, results)
    left = len(session.runs) - len(session.results)
    session.console.print(
        f"[yellow]interrupted:[/] {left} run(s) not executed; every finished "
        "run is stored, and the same command runs the rest",
        highlight=False,
    )


def _report_results(session: Session, results: Sequence[RunResult]) -> None:
    console = session.console
    board = session.host.hook.harness_rank(results=list(results), tasks=session.tasks)
    if board is not None:
        for table in leaderboard_tables(board):
            console.print(table)
    ok = sum(r.ok for r in results)
    failed = [r for r in session.results if not r.ok]
    console.print(
        f"[bold]{len(session.results)} run(s) executed[/], "
        f"{len(results) - len(session.results)} from the store; "
        f"{ok} ok, [{'red' if failed else 'green'}]{len(failed)} failed[/]",
        highlight=False,
    )
    for result in failed:
        console.print(
            f"[red]FAILED[/] {escape(result.spec.label)}: {escape(str(result.error))}",
            highlight=False,
            soft_wrap=True,
        )
    elsewhere = _elsewhere(session, results)
    if elsewhere:
        console.print(
            f"[yellow]not shown:[/] {escape(elsewhere)}",
            highlight=False,
            soft_wrap=True,
        )
