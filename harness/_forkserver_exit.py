"""Imported last by the worker forkserver: it exits at once when its bench does.

The forkserver inherits the bench's stdout and stderr.  When the bench exits,
the server notices (its "alive" pipe closes) and leaves through ``SystemExit``,
and a normal interpreter shutdown with torch, faiss and numba loaded takes
about 1.4 s, during which the bench's output pipe stays open: whoever reads it
(a shell pipeline, ``subprocess.run(capture_output=True)``, CI) waits that long
for a bench that has already finished.  The server has nothing to clean up
(it writes no files; every worker has exited or been killed), so its last
``atexit`` callback, registered here after every library's own, ends it.

Only the forkserver imports this module.  Workers forked from it inherit the
callback but never run it: a worker leaves through ``os._exit`` (see
:mod:`multiprocessing.forkserver`).
"""

from __future__ import annotations

import atexit

from .forkserver import exit_now

atexit.register(exit_now)
