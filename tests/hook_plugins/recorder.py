"""Implements every run-protocol and leaderboard hook and records the calls.

Loaded with ``--plugins-dir tests/hook_plugins``; writes one JSON line per
hook call to the file named by ``HARNESS_TEST_RECORD``.  Behaviour switches
(also environment variables) let tests make a hook *do* something:
``RECORDER_DROP_SAMPLER`` (modify_runs drops that sampler's runs),
``RECORDER_ANSWER_RUNS`` (harness_run answers with a canned result),
``RECORDER_RANK`` (harness_rank answers with an empty board),
``RECORDER_RUN_SECONDS`` (harness_run sleeps that long first, to see runs
overlap); the ``reversed`` executor runs the matrix inline, last run first.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from harness import RunResult, hookimpl
from harness.types import Leaderboard


def _record(hook: str, **data: object) -> None:
    target = os.environ.get("HARNESS_TEST_RECORD")
    if target:
        with open(target, "a") as handle:
            handle.write(json.dumps({"hook": hook, "pid": os.getpid(), **data}) + "\n")


@hookimpl
def harness_modify_runs(session, runs):
    _record("harness_modify_runs", runs=len(runs))
    drop = os.environ.get("RECORDER_DROP_SAMPLER")
    if drop:
        runs[:] = [r for r in runs if r.spec.sampler != drop]
        session.notes.append(f"recorder dropped sampler {drop}")


@hookimpl
def harness_session_start(session, runs):
    _record("harness_session_start", runs=[r.spec.label for r in runs])


@hookimpl
def harness_run(run, context):
    start = time.time()
    time.sleep(float(os.environ.get("RECORDER_RUN_SECONDS", "0")))
    _record(
        "harness_run",
        label=run.spec.label,
        device=str(context.device),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        start=start,
        end=time.time(),
    )
    if os.environ.get("RECORDER_ANSWER_RUNS"):
        return RunResult(
            run_id=run.run_id,
            spec=run.spec,
            family=run.family,
            status="ok",
            main_metric=run.main_metric,
            metrics={run.main_metric: 0.123},
            dataset_sha256=run.dataset.sha256,
        )
    return None


class ReversedExecutor:
    """A third-party executor: the built-in inline one, in reverse order."""

    def __init__(self, session):
        from harness.executor import LocalExecutor

        self.inner = LocalExecutor(
            config=session.worker_config(), jobs=0, host=session.host
        )

    def run(self, runs, on_phase, on_result):
        _record("harness_executor", runs=[r.spec.label for r in runs])
        self.inner.run(list(reversed(runs)), on_phase, on_result)


@hookimpl
def harness_executor(session, name):
    return ReversedExecutor(session) if name == "reversed" else None


@hookimpl
def harness_run_phase(session, run, phase, detail):
    _record("harness_run_phase", label=run.spec.label, phase=phase)


@hookimpl
def harness_result(session, result):
    _record("harness_result", label=result.spec.label, status=result.status)


@hookimpl
def harness_session_finish(session, results):
    _record(
        "harness_session_finish",
        results=len(results),
        exitstatus=int(session.exitstatus),
    )


@hookimpl
def harness_rank(results, tasks):
    _record("harness_rank", results=len(results))
    if os.environ.get("RECORDER_RANK"):
        return Leaderboard(tasks={}, rows=())
    return None


@hookimpl
def harness_render(board, outdir):
    _record("harness_render", rows=len(board.rows))
    Path(outdir, "recorder.txt").write_text(f"{len(board.rows)} rows\n")
