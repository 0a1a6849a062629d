"""RunContext's phase timings: wall seconds and CPU seconds, per phase."""

from __future__ import annotations

import time

from harness.testing import make_context


def test_a_phase_records_wall_and_cpu_seconds_apart():
    context = make_context()
    with context.phase("wait"):
        time.sleep(0.2)  # wall time, no CPU time
    with context.phase("work"):
        end = time.process_time() + 0.2
        while time.process_time() < end:  # CPU time, as much wall time
            pass
    with context.phase("work"):  # a phase entered again adds up
        end = time.process_time() + 0.1
        while time.process_time() < end:
            pass
    timings = context.timings
    assert timings["wait"] >= 0.2 and timings["wait_cpu"] < 0.05
    assert timings["work_cpu"] >= 0.3
    assert timings["work"] >= timings["work_cpu"] - 0.01  # one thread here
