"""The worker forkserver started before planning (harness.forkserver): it
preloads the announced families' libraries, exits when released or when its
bench dies, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

#: a bench's use of an early server: start it, announce multilabel runs, fork
#: a worker that says what it inherited, release the server
ANNOUNCED = textwrap.dedent(
    """
    import json, multiprocessing, sys, types
    from harness import forkserver

    def inherited(queue):
        queue.put({m: m in sys.modules for m in ("torch", "ranx", "sklearn.metrics")})

    if __name__ == "__main__":
        forkserver.start_early()
        server, folder = forkserver._early.pid, forkserver._early.folder
        forkserver.announce([types.SimpleNamespace(family="multilabel")])
        ctx = multiprocessing.get_context("forkserver")
        queue = ctx.SimpleQueue()
        worker = ctx.Process(target=inherited, args=(queue,))
        worker.start()
        worker.join()
        forkserver.release()
        print(json.dumps({"modules": queue.get(), "server": server,
                          "folder": str(folder)}))
    """
)

#: a bench that dies (no release, no clean exit) while its server imports
DIES = textwrap.dedent(
    """
    import json, os
    from harness import forkserver

    forkserver.start_early()
    print(json.dumps({"server": forkserver._early.pid,
                      "folder": str(forkserver._early.folder)}), flush=True)
    os._exit(9)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _run(script: str, tmp_path: Path, harness_env) -> dict:
    (tmp_path / "bench.py").write_text(script)
    done = subprocess.run(
        [sys.executable, "bench.py"],
        cwd=tmp_path,
        env=harness_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return json.loads(done.stdout.splitlines()[0])


def test_an_early_server_preloads_the_announced_families(tmp_path, harness_env):
    seen = _run(ANNOUNCED, tmp_path, harness_env)
    # the common preload and multilabel's scikit-learn, not retrieval's ranx
    assert seen["modules"] == {"torch": True, "ranx": False, "sklearn.metrics": True}
    assert _gone_within(seen["server"], 5)
    assert not Path(seen["folder"]).exists()


def test_a_server_whose_bench_dies_exits_and_cleans_up(tmp_path, harness_env):
    seen = _run(DIES, tmp_path, harness_env)
    # well before its imports (several seconds) would have finished
    assert _gone_within(seen["server"], 10)
    assert not Path(seen["folder"]).exists()  # only its watcher removes this
