"""``fork_map``: the leaderboard build's independent pieces on every core.

Ranking a task and rendering a page depend on nothing but the build's data,
so a big store (10,000 runs: 50 tasks to rank, a page per run) splits them
over forked workers, which read the parent's data copy-on-write instead of
receiving it pickled.  Small builds, and platforms without ``fork``, run in
the calling process, and so does a process with other threads running
(``harness bench`` ranks its results under a live display).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["fork_map"]

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 8
#: the work of the running fork_map, inherited by its forked workers
_work: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def fork_map(
    function: Callable[[T], R], items: Sequence[T], *, min_items: int
) -> list[R]:
    """``[function(x) for x in items]``, in forked workers when worth it.

    :param min_items: below this many items the pool's start-up (~50 ms)
        costs more than it saves.
    """
    workers = min(os.cpu_count() or 1, MAX_WORKERS, len(items))
    if (
        len(items) < min_items
        or workers < 2
        or "fork" not in multiprocessing.get_all_start_methods()
        # forking while another thread may hold a lock (a live progress
        # display, a logging handler) can deadlock the child: stay in process
        or threading.active_count() > 1
    ):
        return [function(item) for item in items]
    global _work  # noqa: PLW0603 - forked workers inherit module state
    _work = (function, items)
    # Without this, the workers' garbage collector walks (and so copies) every
    # object of the parent's heap: a 10,000-run build got slower, not faster.
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            # small chunks balance uneven items (an STS task costs 10x a
            # retrieval one) at little messaging cost
            chunk = max(1, len(items) // (workers * 8))
            return pool.map(_run_one, range(len(items)), chunksize=chunk)
    finally:
        if not frozen_before:  # a caller's own freeze stays as it was
            gc.unfreeze()
        _work = None


def _run_one(index: int) -> Any:
    assert _work is not None, "only called in a worker forked by fork_map()"
    function, items = _work
    return function(items[index])
