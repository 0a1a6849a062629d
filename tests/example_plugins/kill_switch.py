"""Fault injection for the kill -9 and Ctrl-C tests; inert unless
NEGBENCH_TEST_KILL_AT or NEGBENCH_TEST_INTERRUPT_AFTER is set.

NEGBENCH_TEST_KILL_AT names where the bench's main process SIGKILLs itself:
a run phase (``mine``, ``train``, ``evaluate``: the main process dies while
its worker is in that phase) or ``store-write``: inside the store's
transaction, after the run's row is written and before it commits.

NEGBENCH_TEST_INTERRUPT_AFTER=N: once N runs are stored, the next progress
report of a run sends SIGINT to the bench's process group, as a terminal's
Ctrl-C does (the bench must lead its own group).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from harness import hookimpl

KILL_AT = os.environ.get("NEGBENCH_TEST_KILL_AT")
INTERRUPT_AFTER = os.environ.get("NEGBENCH_TEST_INTERRUPT_AFTER")
_interrupted: list[bool] = []


def _die(*_: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def harness_run_phase(session: Any, phase: str) -> None:
    if phase == KILL_AT:
        _die()
    if (
        INTERRUPT_AFTER is not None
        and not _interrupted
        and len(session.results) >= int(INTERRUPT_AFTER)
    ):
        _interrupted.append(True)
        os.killpg(os.getpgrp(), signal.SIGINT)


@hookimpl(tryfirst=True)
def harness_result(session: Any) -> None:
    if KILL_AT == "store-write" and session.store is not None:
        # the per-item rows follow the run row in the same transaction
        session.store._db.set_trace_callback(
            lambda sql: _die() if sql.startswith("INSERT INTO item_scores") else None
        )
