"""The worker forkserver: what it preloads, and starting it before planning.

Every local worker is forked from one server process that has already
imported torch, faiss and the plugins (:mod:`harness._preload`) and the
libraries of the planned runs' families (:data:`FAMILY_PRELOADS`), so a
worker starts in milliseconds.  That preload takes 2-4 s; ``harness bench``
spends about 1.3 s importing and planning before it knows the families.
:func:`start_early` starts the server first, so the two overlap: the server
imports the common part while the bench plans, then waits for
:func:`announce` to name the family libraries (through a file, see
:mod:`harness._forkserver_watch`).  A one-run bench gets its result about a
second sooner.
"""

from __future__ import annotations

import contextlib
import multiprocessing.forkserver
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .types import Run

#: what the worker forkserver imports for a family's runs, on top of
#: :mod:`harness._preload`: the libraries only that family's metrics use
FAMILY_PRELOADS: dict[str, tuple[str, ...]] = {
    "retrieval": ("harness._preload_ranking",),  # ranx, compiled
    "sts": ("scipy.stats",),
    "multilabel": ("sklearn.metrics",),
}

#: names the file through which an early server learns its family libraries
ANNOUNCEMENT_ENV = "HARNESS_FORKSERVER_ANNOUNCEMENT"
#: the bench's pid, for an early server to notice that its bench died
BENCH_PID_ENV = "HARNESS_FORKSERVER_BENCH_PID"
#: what :func:`release` writes to an early server nobody used: exit now
EXIT = "exit"


@dataclass(slots=True)
class _EarlyServer:
    folder: Path | None = None  #: where the announcement goes; None: no server
    announced: bool = False
    pid: int | None = None


_early = _EarlyServer()  # this process's (multiprocessing's server is global too)


def family_modules(runs: Sequence[Run]) -> list[str]:
    """The libraries the families of ``runs`` need (none for KGE)."""
    families = {run.family for run in runs}
    return sorted({m for f in families for m in FAMILY_PRELOADS.get(f, ())})


def preload_modules(runs: Sequence[Run]) -> list[str]:
    """What the worker forkserver imports before forking: the common preload
    plus what the families of ``runs`` need (a KGE-only bench skips ranx),
    and last :mod:`harness._forkserver_exit`, so the server does not hold the
    bench's output open for a slow shutdown after the bench is gone."""
    return ["harness._preload", *family_modules(runs), "harness._forkserver_exit"]


def start_early() -> None:
    """Start the forkserver now, before the runs are planned.

    It imports the common preload at once and then waits for
    :func:`announce` (or :func:`release`, or this process's exit).
    """
    if _early.folder is not None:
        return
    _early.folder = Path(tempfile.mkdtemp(prefix="harness-forkserver-"))
    _early.announced = False
    multiprocessing.forkserver.set_forkserver_preload(
        [
            "harness._forkserver_watch",  # first: it watches during the imports
            "harness._preload",
            "harness._preload_announced",
            "harness._forkserver_exit",
        ]
    )
    os.environ[ANNOUNCEMENT_ENV] = str(_early.folder / "families")
    os.environ[BENCH_PID_ENV] = str(os.getpid())
    try:
        multiprocessing.forkserver.ensure_running()
    finally:  # workers are not early servers
        del os.environ[ANNOUNCEMENT_ENV], os.environ[BENCH_PID_ENV]
    # private, but kept since Python 3.4; without it release() falls back on
    # the announcement, which the server reads between its imports
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    _early.pid = getattr(server, "_forkserver_pid", None)


def announce(runs: Sequence[Run]) -> None:
    """Tell an early server which family libraries to import (no-op without
    one); the next worker start waits for that import, as it would have
    waited for a server started now."""
    # what a server started from here on preloads (none runs, or it died)
    multiprocessing.forkserver.set_forkserver_preload(preload_modules(runs))
    if _early.folder is not None and not _early.announced:
        _write(_early.folder / "families", "\n".join(family_modules(runs)))
        _early.announced = True


def release() -> None:
    """End the bench's use of an early server: it exits now.  Every worker has
    finished or been killed by then; the server would exit anyway when this
    process does, but perhaps only after seconds of imports for nobody (a
    fully resumed bench, Ctrl-C), holding the bench's output open."""
    if _early.folder is None:
        return
    if _early.pid is not None:
        # at once: an extension module's import (torch's is ~0.5 s) does
        # not let the server's watcher thread read an announcement
        with contextlib.suppress(OSError):
            os.kill(_early.pid, signal.SIGKILL)
        shutil.rmtree(_early.folder, ignore_errors=True)
    elif not _early.announced:  # the fallback, where the pid is unknown
        _write(_early.folder / "families", EXIT)
    _early.folder = _early.pid = None


def exit_now() -> None:
    """Leave the forkserver at once: flush its stdio, skip the interpreter's
    shutdown (it has no files to close; its workers are gone)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(0)


def _write(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)  # the server never reads half a list
