"""Fault injection for the kill -9 tests; inert unless NEGBENCH_TEST_KILL_AT is set.

The variable names where the bench's main process SIGKILLs itself: a run
phase (``mine``, ``train``, ``evaluate``: the main process dies while its
worker is in that phase) or ``store-write``: inside the store's transaction,
after the run's row is written and before it commits.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from harness import hookimpl

KILL_AT = os.environ.get("NEGBENCH_TEST_KILL_AT")


def _die(*_: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def harness_run_phase(phase: str) -> None:
    if phase == KILL_AT:
        _die()


@hookimpl(tryfirst=True)
def harness_result(session: Any) -> None:
    if KILL_AT == "store-write" and session.store is not None:
        # the per-item rows follow the run row in the same transaction
        session.store._db.set_trace_callback(
            lambda sql: _die() if sql.startswith("INSERT INTO item_scores") else None
        )
