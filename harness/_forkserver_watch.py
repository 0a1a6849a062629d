"""Imported first by an early worker forkserver (``forkserver.start_early``).

The server was started before the bench planned its runs.  A thread here
watches, while the server imports the common preload, for the bench's
announcement (a file named by ``HARNESS_FORKSERVER_ANNOUNCEMENT``): the
family libraries to import next (:mod:`harness._preload_announced` imports
them), or ``exit`` when the bench forks nothing.  If the bench dies first
(``kill -9``), the server exits as soon as it notices, instead of finishing
seconds of imports for nobody while holding the bench's output open.

Ctrl-C is ignored from here on, as :mod:`multiprocessing.forkserver` does once
its loop starts: the bench handles it and stops its workers.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

from .forkserver import ANNOUNCEMENT_ENV, BENCH_PID_ENV, EXIT, exit_now

signal.signal(signal.SIGINT, signal.SIG_IGN)

_POLL_S = 0.005
_modules: list[str] = []  # the announced family libraries
_watcher: threading.Thread | None = None


def wait_for_announcement() -> list[str]:
    """The announced family libraries, once the bench has named them (at
    once for a server started with its whole preload list)."""
    if _watcher is not None:
        _watcher.join()  # no thread is left when the server forks
    return _modules


def _watch(path: Path, bench_pid: int) -> None:
    while True:
        try:
            text = path.read_text()
        except FileNotFoundError:  # not yet announced (or the bench removed it)
            text = None
        if text is not None:
            shutil.rmtree(path.parent, ignore_errors=True)
            if text == EXIT:
                exit_now()
            _modules.extend(line for line in text.splitlines() if line)
            return
        if os.getppid() != bench_pid:  # the bench is gone
            shutil.rmtree(path.parent, ignore_errors=True)
            exit_now()
        time.sleep(_POLL_S)


_path = os.environ.get(ANNOUNCEMENT_ENV)
if _path is not None:  # else an ordinary server: everything was named up front
    # the bench's pid from the bench: it may be gone (and os.getppid() 1)
    # before this interpreter has started
    _bench = int(os.environ[BENCH_PID_ENV])
    _watcher = threading.Thread(target=_watch, args=(Path(_path), _bench), daemon=True)
    _watcher.start()
