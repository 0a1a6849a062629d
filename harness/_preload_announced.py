"""Imported by an early worker forkserver after :mod:`harness._preload`: waits
for the bench to announce its runs' family libraries, then imports them
(see :mod:`harness._forkserver_watch`)."""

from __future__ import annotations

import contextlib
import importlib

from ._forkserver_watch import wait_for_announcement

for _module in wait_for_announcement():
    with contextlib.suppress(ImportError):  # as the server does for its list
        importlib.import_module(_module)
