"""Imported once by the worker forkserver so each run's process starts warm.

Workers are forked from the server, so whatever is imported (and compiled)
here is inherited for free: torch and faiss, which would otherwise cost every
worker a second or more, and the malloc settings of :mod:`harness.allocator`.
The built-in plugin modules are imported here too (every worker builds a
plugin host).  What only one family needs is preloaded only for benches with
runs of that family (:data:`harness.forkserver.FAMILY_PRELOADS`): ranx's
numba-compiled metrics (about 2.5 s even from numba's disk cache), scikit-
learn's metrics (about 1 s), scipy.stats.
"""

from __future__ import annotations

import contextlib
import importlib

import numpy  # noqa: F401
import torch

from . import context, runner  # noqa: F401
from .allocator import keep_freed_memory
from .plugin import BUILTIN_PLUGINS

keep_freed_memory()  # inherited by every forked worker

with contextlib.suppress(ImportError):
    import faiss  # noqa: F401

for _module in BUILTIN_PLUGINS:
    # a built-in that fails to import fails its runs in the worker, with the
    # reason; here it must not take the forkserver (and every run) down
    with contextlib.suppress(Exception):
        importlib.import_module(_module)


def _warm_torch() -> None:
    # The first optimizer step imports a good part of torch lazily (~1 s).
    layer = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    layer(torch.ones(2, 4)).logsumexp(dim=1).mean().backward()
    optimizer.step()


_warm_torch()
