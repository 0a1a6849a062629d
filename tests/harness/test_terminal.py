"""The bench's report in the terminal (:mod:`harness.terminal`)."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from harness import hookimpl
from harness.config import Selections
from harness.errors import ExitCode
from harness.executor import failed_result
from harness.plugin import PluginOptions, make_plugin_host
from harness.session import BenchOptions, Session
from harness.store import ResultStore
from harness.terminal import TerminalReporter


class _CtrlCBeforeAnyResult:
    """An executor whose user presses Ctrl-C before the first run ends."""

    def run(self, runs, on_phase, on_result):
        raise KeyboardInterrupt


class _Interrupting:
    @hookimpl
    def harness_executor(self, session, name):
        return _CtrlCBeforeAnyResult() if name == "interrupting" else None


def _tiny_sts_session(
    tmp_path: Path, executor: str, plugins: list[tuple[str, object]]
) -> Session:
    """tiny-sts, 2 seeds, through ``executor`` (one of ``plugins``); the
    report goes to a StringIO, ``session.console.file``."""
    return Session(
        make_plugin_host(PluginOptions(autoload=False), extra=plugins),
        BenchOptions(
            selections=Selections(
                task=["tiny-sts"], model=["bow"], loss=["infonce"], sampler=["random"]
            ),
            seeds=2,
            executor=executor,
            store=tmp_path / "results.db",
            plugin_options=PluginOptions(autoload=False),
        ),
        Console(file=io.StringIO(), width=400),
    )


def _report(session: Session) -> str:
    out = session.console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def test_ctrl_c_before_any_result_says_what_was_not_executed(tmp_path: Path):
    """Not "the matrix is empty": every run is still to do, and the same
    command does them (the command line test covers runs that finished)."""
    session = _tiny_sts_session(
        tmp_path, "interrupting", [("interrupting", _Interrupting())]
    )
    assert session.run() == ExitCode.INTERRUPTED
    report = _report(session)
    assert "no runs" not in report
    assert report.strip().splitlines()[-1] == (
        "interrupted: 2 run(s) not executed; every finished run is stored, and "
        "the same command runs the rest"
    )


class _FailingEngine:
    """An executor, ``failing``, whose every run reports a phase and fails
    with ``error`` (no training: the report is what is under test)."""

    def __init__(self, error: str) -> None:
        self.error = error

    @hookimpl
    def harness_executor(self, session, name):
        return self if name == "failing" else None

    def run(self, runs, on_phase, on_result):
        for run in runs:
            on_phase(run, "train", "epoch [1/2]")
            on_result(failed_result(run, self.error))


def _failing_session(tmp_path: Path, *extra: tuple[str, object]) -> Session:
    """tiny-sts, 2 seeds, through the ``failing`` executor."""
    error = "sampler 'x' (plugin 'p'): raised ValueError: index [/0] of [bold] a"
    return _tiny_sts_session(
        tmp_path, "failing", [("failing", _FailingEngine(error)), *extra]
    )


def test_an_error_is_printed_as_it_is_never_read_as_markup(tmp_path: Path):
    """A plugin's error may hold "[...]": rich must print it, not parse it
    (a stray closing tag made the bench crash after the first failure)."""
    session = _failing_session(tmp_path)
    assert session.run() == ExitCode.RUNS_FAILED
    report = _report(session)
    error = "raised ValueError: index [/0] of [bold] a"
    lines = [line for line in report.splitlines() if error in line]
    assert len(lines) == 4, report  # as each failed, and in the summary


def test_a_phase_detail_is_shown_as_it_is(tmp_path: Path):
    """The live display's line of a run: its phase detail, not markup."""
    run = _failing_session(tmp_path).plan()[0]
    out = io.StringIO()
    reporter = TerminalReporter(Console(file=out, width=200), total=1)
    try:
        reporter.harness_run_phase(run=run, phase="train", detail="step [/3] [bold]")
        reporter.console.print(reporter.progress.get_renderable())
    finally:
        reporter.progress.stop()
    assert f"{run.spec.label}: train step [/3] [bold]" in out.getvalue()


class _BrokenReporter:
    @hookimpl
    def harness_result(self, result):
        raise RuntimeError("the reporter broke")


def test_a_reporter_that_raises_loses_no_result(tmp_path: Path):
    """The store sees each result before any other plugin: the first result
    is stored although the bench stops at the broken reporter."""
    session = _failing_session(tmp_path, ("broken-reporter", _BrokenReporter()))
    try:
        session.run()
    except RuntimeError as exc:
        assert str(exc) == "the reporter broke"
    else:
        raise AssertionError("the broken reporter's error was swallowed")
    with ResultStore(tmp_path / "results.db") as store:
        stored = store.load()
    assert [r.run_id for r in stored] == [session.results[0].run_id]
    assert stored[0].status == "failed"


def _bench(tmp_path: Path) -> tuple[Session, list[str]]:
    """tiny-sts, 2 seeds, inline; the session and its report's lines."""
    out = io.StringIO()
    session = Session(
        make_plugin_host(PluginOptions(autoload=False)),
        BenchOptions(
            selections=Selections(
                task=["tiny-sts"], model=["bow"], loss=["infonce"], sampler=["random"]
            ),
            seeds=2,
            jobs=0,
            store=tmp_path / "results.db",
            plugin_options=PluginOptions(autoload=False),
        ),
        Console(file=out, width=400),
    )
    assert session.run() == ExitCode.OK
    return session, out.getvalue().strip().splitlines()


def test_runs_another_bench_is_executing_are_named_not_called_an_empty_matrix(
    tmp_path: Path,
):
    """A bench skips the runs another live bench on its store has claimed,
    and its last line says how many and whose: neither "the matrix is
    empty" (what it said at first) nor silence about the missing rows."""
    store_path = tmp_path / "results.db"
    session, _ = _bench(tmp_path)  # stores both seeds: their run ids
    seed_0, seed_1 = sorted(session.results, key=lambda r: r.spec.seed)
    store_path.unlink()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        where = f"{socket.gethostname()} pid {other.pid}"
        with ResultStore(store_path) as store, store._db:  # as its claim() does
            store._db.executemany(
                "INSERT INTO claims VALUES (?, ?, ?, '2026-01-01T00:00:00+00:00')",
                [(r.run_id, socket.gethostname(), other.pid) for r in (seed_0, seed_1)],
            )
        session, lines = _bench(tmp_path)
        assert session.results == []
        assert lines[-1] == (
            "no results yet: 2 run(s) of this matrix are still being executed by "
            f"another harness bench on this store ({where}); the same command "
            "shows them once it has finished, or runs them if it stopped"
        )

        # the other bench stored seed 0 (its claim goes in the same
        # transaction) and is still executing seed 1: this bench shows seed 0
        # and names seed 1's holder
        with ResultStore(store_path) as store:
            store.save(seed_0)
            with store._db:
                store._db.execute(
                    "DELETE FROM claims WHERE run_id = ?", (seed_0.run_id,)
                )
        session, lines = _bench(tmp_path)
        assert session.results == []
        assert "0 run(s) executed, 1 from the store; 1 ok, 0 failed" in lines
        assert lines[-1] == (
            "not shown: 1 run(s) of this matrix are still being executed by "
            f"another harness bench on this store ({where}); the same command "
            "shows them once it has finished, or runs them if it stopped"
        )
    finally:
        other.kill()
        other.wait()
    # its process is gone: the next bench takes over the claim and runs it
    session, lines = _bench(tmp_path)
    assert [r.run_id for r in session.results] == [seed_1.run_id]
    assert "not shown" not in "\n".join(lines)
