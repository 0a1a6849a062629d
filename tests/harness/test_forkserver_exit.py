"""The worker forkserver leaves at once when its bench does, instead of holding
the bench's output pipe open through a slow interpreter shutdown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

#: a "bench" whose forkserver preloads a module with a slow exit callback (a
#: stand-in for torch's and numba's teardown), then harness._forkserver_exit;
#: it forks one worker, prints its answer and exits
BENCH = textwrap.dedent(
    """
    import multiprocessing

    def answer():
        return 42

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["slow_teardown", "harness._forkserver_exit"])
        with ctx.Pool(1) as pool:
            print("worker says", pool.apply(answer), flush=True)
    """
)

#: the stand-in teardown; it marks that the forkserver imported it (Python
#: 3.11's forkserver imports preloads from its working directory and skips
#: any that fail, so without the mark a broken setup would pass unnoticed)
SLOW_TEARDOWN = (
    "import atexit, pathlib, time\n"
    "pathlib.Path('preloaded').touch()\n"
    "atexit.register(time.sleep, {seconds})\n"
)


def _seconds_to_eof(tmp_path: Path, preloads: str, teardown_seconds: int) -> float:
    """Run the bench; seconds until its output closes (when the forkserver,
    which inherits it, lets go too)."""
    (tmp_path / "slow_teardown.py").write_text(
        SLOW_TEARDOWN.format(seconds=teardown_seconds)
    )
    (tmp_path / "bench.py").write_text(
        BENCH.replace('"slow_teardown", "harness._forkserver_exit"', preloads)
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "bench.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seconds = time.monotonic() - start
    assert done.stdout == "worker says 42\n"
    assert (tmp_path / "preloaded").exists()
    return seconds


def test_the_bench_output_closes_when_the_bench_exits(tmp_path):
    preloads = '"slow_teardown", "harness._forkserver_exit"'
    assert _seconds_to_eof(tmp_path, preloads, teardown_seconds=60) < 30


def test_without_it_the_forkserver_holds_the_output_through_its_teardown(tmp_path):
    """The control: the slow teardown is real, so the test above measures
    the module, not a forkserver that never ran the callback."""
    assert _seconds_to_eof(tmp_path, '"slow_teardown"', teardown_seconds=1) >= 1
