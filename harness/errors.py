"""Exit codes and the exceptions that map onto them.

negbench separates three kinds of trouble, as pytest does: a *user error* (bad
flag, unknown component name, malformed suite file) stops the session before any
run starts; a *plugin or run failure* is recorded as the outcome of that one run
and the session goes on; an *internal error* is a bug in the harness itself.
"""

from __future__ import annotations

import enum

__all__ = [
    "ComponentError",
    "ContractError",
    "DataError",
    "DatasetUnavailable",
    "ExitCode",
    "HarnessError",
    "UsageError",
]


class ExitCode(enum.IntEnum):
    """Process exit status of the ``harness`` command."""

    #: every run that was asked for succeeded (or was already stored, or is
    #: being executed by another live ``harness bench`` on the same store,
    #: which the final lines name)
    OK = 0
    #: at least one run failed; the others completed and are stored
    RUNS_FAILED = 1
    #: interrupted by the user (Ctrl-C); finished runs are stored
    INTERRUPTED = 2
    #: a bug in the harness outside any run
    INTERNAL_ERROR = 3
    #: bad command line, suite file, plugin or component name
    USAGE_ERROR = 4
    #: the matrix expanded to nothing (everything filtered or skipped)
    NO_RUNS = 5


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class UsageError(HarnessError):
    """The user asked for something that cannot work; printed as one line."""


class DataError(HarnessError):
    """A data file is malformed; the message names the file (and line)."""


class DatasetUnavailable(HarnessError):
    """A dataset is in none of the data locations and cannot be downloaded."""


class ComponentError(HarnessError):
    """A component (task, model, loss or sampler) failed inside a run.

    The message always names the component, its kind and the plugin that
    contributed it, so a failed run points at the code to look at.
    """

    def __init__(self, kind: str, name: str, plugin: str, message: str) -> None:
        self.kind = kind
        self.name = name
        self.plugin = plugin
        self.detail = message
        super().__init__(f"{kind} '{name}' (plugin '{plugin}'): {message}")


class ContractError(ComponentError):
    """A component returned something its contract forbids.

    Examples: a sampler returning a known positive as a negative, a loss
    returning NaN or the wrong shape (pytorch-metric-learning's
    ``output_assertion`` idea, with the culprit named).
    """
