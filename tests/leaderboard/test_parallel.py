"""fork_map: same answers, same order, in workers or in process."""

from __future__ import annotations

import os
import threading

from negbench_leaderboard.parallel import fork_map


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_forked_results_equal_the_sequential_ones_in_order():
    items = list(range(101))
    forked = fork_map(_square_and_pid, items, min_items=1)
    assert [value for value, _ in forked] == [x * x for x in items]
    # the work really left this process, unless a thread another test left
    # running makes fork_map stay in process (by design: see the test below)
    if (os.cpu_count() or 1) > 1 and threading.active_count() == 1:
        assert {pid for _, pid in forked} - {os.getpid()}


def test_small_inputs_stay_in_process():
    out = fork_map(_square_and_pid, [3, 4], min_items=10)
    assert out == [(9, os.getpid()), (16, os.getpid())]


def test_a_process_with_other_threads_does_not_fork():
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        out = fork_map(_square_and_pid, list(range(50)), min_items=1)
    finally:
        stop.set()
        worker.join()
    assert {pid for _, pid in out} == {os.getpid()}
