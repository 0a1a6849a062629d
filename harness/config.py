"""Suites (TOML) and the expansion of the run matrix.

A suite is a TOML file::

    name = "quick"
    description = "..."
    seeds = 1

    [params.task.scifact]          # defaults for every run of a component
    epochs = 2

    [[matrix]]                      # one block = one cartesian product
    task = ["scifact"]
    model = ["minilm-adapter"]
    loss = ["infonce", "margin"]
    sampler = "*"                   # every registered, compatible sampler

    [matrix.params.sampler.simans]  # params for this block only
    a = 0.5

Parameters are keyed by component *kind* then name, because a loss and a
sampler may share a name (``hasa``).  A model that does not train takes no
loss or sampler: its runs record ``none`` for both.
"""

from __future__ import annotations

import difflib
import inspect
import itertools
import tomllib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .components import KINDS
from .errors import UsageError
from .registry import Registries, split_name
from .types import NONE, RunSpec

__all__ = [
    "MatrixBlock",
    "Selections",
    "Suite",
    "builtin_suites",
    "expand_matrix",
    "load_suite",
    "parse_param",
]

SUITE_KEYS = {"name", "description", "seeds", "params", "matrix"}
BLOCK_KEYS = {"task", "model", "loss", "sampler", "params"}
ALL = "*"

ParamTable = dict[str, dict[str, dict[str, Any]]]  # kind -> name -> key -> value


@dataclass(slots=True, kw_only=True)
class MatrixBlock:
    """One cartesian product of component names (``*`` = all compatible)."""

    axes: dict[str, list[str]]
    params: ParamTable = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Suite:
    name: str
    source: str
    description: str = ""
    seeds: int = 1
    params: ParamTable = field(default_factory=dict)
    blocks: list[MatrixBlock] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Selections:
    """``--task/--model/--loss/--sampler`` values from the command line."""

    task: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    loss: list[str] = field(default_factory=list)
    sampler: list[str] = field(default_factory=list)

    def axis(self, kind: str) -> list[str]:
        values: list[str] = getattr(self, kind)
        return values

    @property
    def any(self) -> bool:
        return any(self.axis(k) for k in KINDS)


def builtin_suites() -> dict[str, Path]:
    folder = resources.files("harness") / "suites"
    return {
        Path(str(entry)).stem: Path(str(entry))
        for entry in folder.iterdir()
        if str(entry).endswith(".toml")
    }


def _unknown(what: str, key: str, allowed: Iterable[str]) -> UsageError:
    hint = difflib.get_close_matches(key, list(allowed), n=1)
    return UsageError(
        f"{what}: unknown key '{key}'"
        + (f"; did you mean '{hint[0]}'?" if hint else "")
    )


def _names(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UsageError(f"{where}: expected a name or a list of names, got {value!r}")


def _param_table(value: object, where: str) -> ParamTable:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a table")
    table: ParamTable = {}
    for kind, per_name in value.items():
        if kind not in KINDS:
            raise _unknown(where, kind, KINDS)
        if not isinstance(per_name, dict) or not all(
            isinstance(v, dict) for v in per_name.values()
        ):
            raise UsageError(f"{where}.{kind}: expected [params.{kind}.NAME] tables")
        table[kind] = {name: dict(kv) for name, kv in per_name.items()}
    return table


def load_suite(name_or_path: str) -> Suite:
    """Load a built-in suite by name or a suite file by path."""
    suites = builtin_suites()
    path = suites.get(name_or_path) or Path(name_or_path)
    if not path.is_file():
        hint = difflib.get_close_matches(name_or_path, list(suites), n=1)
        raise UsageError(
            f"suite '{name_or_path}' is neither a built-in suite "
            f"({', '.join(sorted(suites))}) nor a file"
            + (f"; did you mean '{hint[0]}'?" if hint else "")
        )
    where = f"suite file {path}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UsageError(f"{where}: line {line} is not valid UTF-8") from None
    for key in data:
        if key not in SUITE_KEYS:
            raise _unknown(where, key, SUITE_KEYS)
    seeds = data.get("seeds", 1)
    # a TOML true is a Python bool, and bool is an int
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise UsageError(f"{where}: 'seeds' must be a positive integer")
    suite = Suite(
        name=str(data.get("name", path.stem)),
        source=str(path),
        description=str(data.get("description", "")),
        seeds=seeds,
        params=_param_table(data.get("params", {}), f"{where}: [params]"),
    )
    blocks = data.get("matrix", [])
    if not isinstance(blocks, list) or not blocks:
        raise UsageError(f"{where}: needs at least one [[matrix]] block")
    for i, block in enumerate(blocks, 1):
        bwhere = f"{where}: [[matrix]] #{i}"
        if not isinstance(block, dict):
            raise UsageError(f"{bwhere}: expected a table, got {block!r}")
        for key in block:
            if key not in BLOCK_KEYS:
                raise _unknown(bwhere, key, BLOCK_KEYS)
        for required in ("task", "model"):
            if required not in block:
                raise UsageError(f"{bwhere}: missing '{required}'")
        suite.blocks.append(
            MatrixBlock(
                axes={
                    k: _names(block[k], f"{bwhere}.{k}") for k in KINDS if k in block
                },
                params=_param_table(block.get("params", {}), f"{bwhere}.params"),
            )
        )
    return suite


def parse_param(text: str) -> tuple[str, str, str, Any]:
    """Parse ``--param KIND.NAME.KEY=VALUE`` (VALUE is a TOML value or a string)."""
    target, sep, raw = text.partition("=")
    parts = target.strip().split(".")
    if not sep or len(parts) < 3 or parts[0] not in KINDS:
        raise UsageError(
            f"--param {text!r}: expected KIND.NAME.KEY=VALUE with KIND one of "
            f"{', '.join(KINDS)} (e.g. sampler.simans.a=0.5)"
        )
    kind, key = parts[0], parts[-1]
    name = ".".join(parts[1:-1])
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return kind, name, key, value


def _merge(*tables: ParamTable) -> ParamTable:
    merged: ParamTable = {}
    for table in tables:
        for kind, per_name in table.items():
            for name, values in per_name.items():
                merged.setdefault(kind, {}).setdefault(name, {}).update(values)
    return merged


def _check_params(registries: Registries, table: ParamTable, where: str) -> None:
    """Every parameter must be a keyword of the component's constructor."""
    for kind, per_name in table.items():
        for name, values in per_name.items():
            if name not in registries[kind]:
                registries[kind].get(name)  # raises the did-you-mean error
            cls = registries[kind].get(name).cls
            if cls.__init__ is object.__init__:  # takes no parameters at all
                signature = inspect.Signature()
            else:
                signature = inspect.signature(cls.__init__)
            if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
                continue
            accepted = [
                p for p in signature.parameters if p not in ("self", "argument")
            ]
            hints = _type_hints(cls.__init__)
            for key, value in values.items():
                if key not in accepted:
                    hint = difflib.get_close_matches(key, accepted, n=1)
                    raise UsageError(
                        f"{where}: {kind} '{name}' has no parameter '{key}'"
                        + (f"; did you mean '{hint[0]}'?" if hint else "")
                        + (f" (it takes: {', '.join(accepted)})" if accepted else "")
                    )
                wanted = hints.get(key, inspect.Parameter.empty)
                if not _fits(value, wanted):
                    # before any run: a wrong type would fail every run of
                    # the component at its construction, and store them all
                    raise UsageError(
                        f"{where}: {kind} '{name}' parameter '{key}' takes "
                        f"{_describe(wanted)}, got {value!r}"
                    )


def _type_hints(function: Any) -> dict[str, Any]:
    """A constructor's resolved annotations; none where they cannot be
    resolved (a plugin's forward reference): then only the names are checked."""
    try:
        return typing.get_type_hints(function)
    except Exception:
        return {}


def _fits(value: object, annotation: Any) -> bool:
    """Whether a parameter value (a TOML value) fits ``annotation``.

    Knows the annotations of component parameters: int, float, bool, str,
    None, Literal and unions of them; True for any other (the constructor
    then decides).  A bool is not an int here, and an int is a float.
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(
            value == choice and type(value) is type(choice)
            for choice in typing.get_args(annotation)
        )
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, member) for member in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True


def _describe(annotation: Any) -> str:
    """``annotation`` in words: 'an int', "one of 'top', 'random'"."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(annotation)))
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(_describe(member) for member in members)
    article = "an" if annotation is int else "a"
    return f"{article} {getattr(annotation, '__name__', annotation)}"


@dataclass(slots=True)
class Expansion:
    specs: list[RunSpec]
    notes: list[str]


def expand_matrix(
    registries: Registries,
    *,
    suites: Sequence[Suite] = (),
    selections: Selections | None = None,
    seeds: int | None = None,
    cli_params: ParamTable | None = None,
) -> Expansion:
    """Expand suites and/or CLI selections into run specs.

    With suites and selections, the selections *filter* the suites' runs.
    With selections only, they define the matrix (a missing axis means every
    compatible component).
    """
    selections = selections or Selections()
    cli_params = cli_params or {}
    _check_params(registries, cli_params, "--param")
    notes: list[str] = []
    specs: list[RunSpec] = []
    seen: set[str] = set()
    # (kind, name) -> the families a requested component was skipped for,
    # so that each component gets one note naming them all
    unsupported: dict[tuple[str, str], list[str]] = {}

    def needs_negatives(loss: str) -> bool:
        return bool(registries.losses.get(loss).cls.needs_negatives)

    def names(kind: str, requested: Sequence[str], family: str) -> list[str]:
        if ALL in requested:
            return [e.name for e in registries[kind] if family in e.cls.families]
        out = []
        for name in requested:
            entry = registries[kind].get(name)
            if family in entry.cls.families:
                out.append(name)
            else:
                families = unsupported.setdefault((kind, name), [])
                if family not in families:
                    families.append(family)
        return out

    plans: list[tuple[MatrixBlock, ParamTable, int, bool]] = []
    for suite in suites:
        _check_params(registries, suite.params, f"suite {suite.name}")
        for block in suite.blocks:
            _check_params(registries, block.params, f"suite {suite.name}")
            params = _merge(suite.params, block.params, cli_params)
            plans.append((block, params, seeds or suite.seeds, True))
    if not suites:
        if not selections.any:
            raise UsageError("nothing to run: give a --suite or at least --task")
        if not selections.task:
            raise UsageError("--task is required when no --suite is given")
        axes = {k: selections.axis(k) or [ALL] for k in KINDS}
        plans.append((MatrixBlock(axes=axes), cli_params, seeds or 1, False))

    for block, params, n_seeds, filter_by_cli in plans:
        tasks = block.axes["task"]
        if ALL in tasks:  # tasks that need NAME:ARGUMENT cannot be enumerated
            tasks = [e.name for e in registries.tasks if not e.cls.accepts_argument]
        for task in tasks:
            family = registries.tasks.get(task).cls.info(task).family
            task_cls = registries.tasks.get(task).cls
            for model in names("model", block.axes["model"], family):
                if (
                    registries.models.get(model).cls.needs_text
                    and not task_cls.provides_text
                ):
                    if ALL not in block.axes["model"]:
                        notes.append(
                            f"model '{model}' reads text and task '{task}' has "
                            "feature vectors, not texts; skipped"
                        )
                    continue
                trainable = registries.models.get(model).cls.trainable
                combos: list[tuple[str, str]] = [(NONE, NONE)]
                if trainable:
                    losses = names("loss", block.axes.get("loss", [ALL]), family)
                    samplers = names(
                        "sampler", block.axes.get("sampler", [ALL]), family
                    )
                    combos = [
                        # negative-free losses (W-MSE) take no sampler
                        (loss, sampler if needs_negatives(loss) else NONE)
                        for loss, sampler in itertools.product(losses, samplers)
                    ]
                for loss, sampler in dict.fromkeys(combos):
                    chosen = {
                        "task": task,
                        "model": model,
                        "loss": loss,
                        "sampler": sampler,
                    }
                    if filter_by_cli and not all(
                        not selections.axis(k) or chosen[k] in selections.axis(k)
                        for k in KINDS
                    ):
                        continue
                    run_params = {
                        kind: dict(params.get(kind, {}).get(split_name(name)[0], {}))
                        for kind, name in chosen.items()
                        if name != NONE
                    }
                    run_params = {k: v for k, v in run_params.items() if v}
                    for seed in range(n_seeds):
                        spec = RunSpec(
                            task=task,
                            model=model,
                            loss=loss,
                            sampler=sampler,
                            seed=seed,
                            params=run_params,
                        )
                        if spec.label not in seen:
                            seen.add(spec.label)
                            specs.append(spec)
    family_notes = [
        f"{kind} '{name}' does not support the {_and(families)} "
        f"{'family' if len(families) == 1 else 'families'} (it supports "
        f"{', '.join(sorted(registries[kind].get(name).cls.families))}); skipped"
        for (kind, name), families in unsupported.items()
    ]
    return Expansion(specs=specs, notes=list(dict.fromkeys(family_notes + notes)))


def _and(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join(filter(None, [", ".join(words[:-1]), words[-1]]))


def param_table_from_cli(values: Iterable[str]) -> ParamTable:
    table: ParamTable = {}
    for text in values:
        kind, name, key, value = parse_param(text)
        table.setdefault(kind, {}).setdefault(name, {})[key] = value
    return table
