"""negbench: a plugin-based benchmark harness for negatives in representation learning.

Public API for plugin authors::

    from harness import hookimpl, Sampler, Loss, Model, TextEncoder, Task
    from harness import CandidateBatch, Evaluation, RunContext

The hook specifications (the plugin API reference) are in
:mod:`harness.hookspecs`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, see below
    from .components import (
        ALL_CANDIDATES,
        KGEModel,
        LabelModel,
        Loss,
        Model,
        Sampler,
        Task,
        TextEncoder,
    )
    from .context import RunContext
    from .errors import (
        ComponentError,
        ContractError,
        DataError,
        DatasetUnavailable,
        UsageError,
    )
    from .plugin import hookimpl
    from .types import (
        NONE,
        CandidateBatch,
        DatasetRef,
        Evaluation,
        LabelScores,
        Run,
        RunResult,
        RunSpec,
        TaskInfo,
    )

#: public name -> the module that defines it.  Imported on first use (PEP 562)
#: so that ``import harness`` -- and negbench's pytest plugin, which pytest
#: loads in every project where negbench is installed -- does not pull in
#: torch until a component is actually touched.
_EXPORTS = {
    **dict.fromkeys(
        [
            "ALL_CANDIDATES",
            "KGEModel",
            "LabelModel",
            "Loss",
            "Model",
            "Sampler",
            "Task",
            "TextEncoder",
        ],
        ".components",
    ),
    "RunContext": ".context",
    **dict.fromkeys(
        [
            "ComponentError",
            "ContractError",
            "DataError",
            "DatasetUnavailable",
            "UsageError",
        ],
        ".errors",
    ),
    "hookimpl": ".plugin",
    **dict.fromkeys(
        [
            "NONE",
            "CandidateBatch",
            "DatasetRef",
            "Evaluation",
            "LabelScores",
            "Run",
            "RunResult",
            "RunSpec",
            "TaskInfo",
        ],
        ".types",
    ),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "ALL_CANDIDATES",
    "NONE",
    "CandidateBatch",
    "ComponentError",
    "ContractError",
    "DataError",
    "DatasetRef",
    "DatasetUnavailable",
    "Evaluation",
    "KGEModel",
    "LabelModel",
    "LabelScores",
    "Loss",
    "Model",
    "Run",
    "RunContext",
    "RunResult",
    "RunSpec",
    "Sampler",
    "Task",
    "TaskInfo",
    "TextEncoder",
    "UsageError",
    "hookimpl",
]

__version__ = "0.1.0"
