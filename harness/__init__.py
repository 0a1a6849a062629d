"""negbench: a plugin-based benchmark harness for negatives in representation learning.

Public API for plugin authors::

    from harness import hookimpl, Sampler, Loss, Model, TextEncoder, Task
    from harness import CandidateBatch, Evaluation, RunContext

The hook specifications (the plugin API reference) are in
:mod:`harness.hookspecs`.
"""

from __future__ import annotations

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
