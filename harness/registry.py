"""Name -> component class registries, one per kind.

The host owns names and validation (datasette's ``register_*`` hooks plus
MTEB's duplicate check and "did you mean" lookup): a duplicate name fails with
a message naming both plugins, an unknown name fails with close matches, and a
malformed class fails at registration rather than in the middle of a run.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import UsageError
from .types import FAMILIES, KINDS, NAME_PATTERN

if TYPE_CHECKING:
    # the component base classes import torch; registries do not need them
    # until a component registers (`harness leaderboard build` never does)
    from .components import Component, Loss, Model, Sampler, Task

__all__ = ["Entry", "Registries", "Registry", "plural", "split_name"]


def split_name(name: str) -> tuple[str, str | None]:
    """Split ``"beir:/some/path"`` into ``("beir", "/some/path")``."""
    base, sep, argument = name.partition(":")
    return (base, argument) if sep else (name, None)


def _missing_abstract_methods(cls: type) -> list[str]:
    missing = []
    for klass in cls.__mro__:
        for attr, value in vars(klass).items():
            if getattr(value, "__isabstractmethod__", False) and getattr(
                getattr(cls, attr, None), "__isabstractmethod__", False
            ):
                missing.append(attr)
    return sorted(set(missing))


C = TypeVar("C", bound="Component")


@dataclass(frozen=True, slots=True)
class Entry(Generic[C]):
    """A registered component class and the plugin that contributed it."""

    kind: str
    cls: type[C]
    plugin: str

    @property
    def name(self) -> str:
        return self.cls.name


class Registry(Generic[C]):
    """Components of one kind, keyed by ``cls.name``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[C]] = {}

    def add(self, cls: Any, plugin: str) -> None:
        self._validate(cls, plugin)
        name = cls.name
        if name in self._entries:
            other = self._entries[name].plugin
            raise UsageError(
                f"duplicate {self.kind} name '{name}': registered by plugin "
                f"'{other}' and by plugin '{plugin}'"
            )
        self._entries[name] = Entry(self.kind, cls, plugin)

    def _validate(self, cls: Any, plugin: str) -> None:
        from .components import Loss, base_class

        where = f"plugin '{plugin}' registered {self.kind} {cls!r}"
        base = base_class(self.kind)
        if not (inspect.isclass(cls) and issubclass(cls, base)):
            raise UsageError(f"{where}: not a subclass of harness.{base.__name__}")
        if not isinstance(cls.name, str) or not NAME_PATTERN.match(cls.name):
            raise UsageError(
                f"{where}: 'name' must be a lower-case identifier like "
                f"'topk-hard', got {cls.name!r}"
            )
        families = set(cls.families)
        if not families or not families <= set(FAMILIES):
            raise UsageError(
                f"{where}: 'families' must be a non-empty subset of "
                f"{sorted(FAMILIES)}, got {sorted(families)}"
            )
        missing = _missing_abstract_methods(cls)
        if (
            issubclass(cls, Loss)
            and cls.forward is Loss.forward
            and cls.forward_batch is Loss.forward_batch
        ):
            missing.append("forward (or forward_batch)")
        if missing:
            raise UsageError(f"{where}: does not implement {', '.join(missing)}")

    def get(self, name: str) -> Entry[C]:
        """Look up ``name`` (``NAME:ARGUMENT`` resolves to ``NAME``)."""
        base, argument = split_name(name)
        entry = self._entries.get(base)
        if entry is None:
            hint = difflib.get_close_matches(base, list(self._entries), n=3)
            suggestion = (
                f"; did you mean {' or '.join(map(repr, hint))}?" if hint else ""
            )
            raise UsageError(
                f"unknown {self.kind} '{name}'{suggestion} "
                f"(`harness list {plural(self.kind)}` shows them all)"
            )
        if argument is not None and not getattr(entry.cls, "accepts_argument", False):
            raise UsageError(
                f"{self.kind} '{base}' does not take an argument (got '{name}')"
            )
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry[C]]:
        return iter(self._entries[n] for n in self.names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and split_name(name)[0] in self._entries

    def __len__(self) -> int:
        return len(self._entries)


class Registries:
    """The four registries of a session."""

    def __init__(self) -> None:
        self.tasks: Registry[Task] = Registry("task")
        self.models: Registry[Model] = Registry("model")
        self.losses: Registry[Loss] = Registry("loss")
        self.samplers: Registry[Sampler] = Registry("sampler")
        self.by_kind: dict[str, Registry[Any]] = {
            "task": self.tasks,
            "model": self.models,
            "loss": self.losses,
            "sampler": self.samplers,
        }
        assert tuple(self.by_kind) == KINDS

    def __getitem__(self, kind: str) -> Registry[Any]:
        return self.by_kind[kind]


def plural(kind: str) -> str:
    """``loss`` -> ``losses``: the word ``harness list`` takes."""
    return f"{kind}es" if kind.endswith("s") else f"{kind}s"
