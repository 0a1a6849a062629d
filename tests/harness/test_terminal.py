"""The bench's report in the terminal (:mod:`harness.terminal`)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from harness import hookimpl
from harness.config import Selections
from harness.errors import ExitCode
from harness.plugin import PluginOptions, make_plugin_host
from harness.session import BenchOptions, Session


class _CtrlCBeforeAnyResult:
    """An executor whose user presses Ctrl-C before the first run ends."""

    def run(self, runs, on_phase, on_result):
        raise KeyboardInterrupt


class _Interrupting:
    @hookimpl
    def harness_executor(self, session, name):
        return _CtrlCBeforeAnyResult() if name == "interrupting" else None


def test_ctrl_c_before_any_result_says_what_was_not_executed(tmp_path: Path):
    """Not "the matrix is empty": every run is still to do, and the same
    command does them (the command line test covers runs that finished)."""
    host = make_plugin_host(
        PluginOptions(autoload=False), extra=[("interrupting", _Interrupting())]
    )
    options = BenchOptions(
        selections=Selections(
            task=["tiny-sts"], model=["bow"], loss=["infonce"], sampler=["random"]
        ),
        seeds=2,
        executor="interrupting",
        store=tmp_path / "results.db",
        plugin_options=PluginOptions(autoload=False),
    )
    out = io.StringIO()
    session = Session(host, options, Console(file=out, width=200))
    assert session.run() == ExitCode.INTERRUPTED
    report = out.getvalue()
    assert "no runs" not in report
    assert report.strip().splitlines()[-1] == (
        "interrupted: 2 run(s) not executed; every finished run is stored, and "
        "the same command runs the rest"
    )
