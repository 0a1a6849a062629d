"""Forkserver preload for benches with retrieval runs: ranx's metrics, compiled.

ranx compiles its metrics with numba; even from numba's disk cache, importing
numba and ranx and loading them costs about 2.5 s, paid once per forkserver
here instead of once per worker process.  The other families never call
ranx, so their benches skip this module.
"""

from __future__ import annotations

import contextlib

from . import _preload, metrics  # noqa: F401 - _preload: the common part first

with contextlib.suppress(ImportError):
    metrics.warm_up()
