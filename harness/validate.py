"""``harness validate PLUGIN``: the component contracts plus a smoke run.

A method author runs this before benchmarking or submitting: every sampler,
loss, model and task the plugin registers goes through the same contract
checks as the built-ins (:mod:`harness.testing`), and every component gets
one short real run on the tiny in-memory task of each family it declares (a
task: on its own data), through the same session machinery as ``harness
bench`` (a worker process, a temporary store), so no dataset is needed.  The
report says what failed and what to change; the exit code is non-zero on
failure.

PLUGIN is a ``.py`` file, an importable module, or an installed distribution
that declares a ``harness`` entry point.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import itertools
import multiprocessing
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from .errors import ExitCode, UsageError
from .plugin import PluginHost, PluginOptions, make_plugin_host

__all__ = ["Check", "plugin_options", "validate"]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    component: str  #: e.g. "sampler semi-hard"
    name: str  #: what was checked
    outcome: str  #: "pass", "FAIL" or "skip"
    message: str = ""


def plugin_options(target: str) -> tuple[PluginOptions, list[str]]:
    """How to load ``target`` -- in this process and in the smoke runs'
    workers alike -- and the plugin names it will register under."""
    path = Path(target)
    if path.suffix == ".py":
        if not path.is_file():
            raise UsageError(f"{target}: no such file")
        return PluginOptions(autoload=False, files=(str(path.resolve()),)), [path.stem]
    wanted = _normalise(target)
    names = [
        ep.name
        for ep in importlib.metadata.entry_points(group="harness")
        if ep.dist is not None and _normalise(ep.dist.name) == wanted
    ]
    if names:  # entry points load with every installed plugin, as in a bench
        return PluginOptions(), names
    if path.is_dir():
        raise UsageError(
            f"{target}: a folder; install the package (pip install -e {target}) "
            "and validate its distribution name, or pass its plugin's .py file"
        )
    if importlib.util.find_spec(target) is None:
        raise UsageError(
            f"{target}: not a .py file, an installed distribution with a "
            "'harness' entry point, or an importable module"
        )
    return PluginOptions(autoload=False, modules=(target,)), [target]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def validate(target: str, console: Console, *, timeout: float = 600.0) -> ExitCode:
    """Run every check on ``target`` and print the report.

    :param timeout: seconds one component's contract checks, and each of its
        smoke runs, may take; a hung check fails instead of blocking.
    """
    options, names = plugin_options(target)
    host = make_plugin_host(options)
    contributed = [
        (kind, component)
        for name in names
        for kind, components in sorted(host.infos[name].components.items())
        for component in components
    ]
    if not contributed:
        raise UsageError(
            f"{target}: registers no sampler, loss, model or task "
            "(implement harness_register_samplers & co., see docs/writing-plugins.md)"
        )
    checks: list[Check] = []
    for kind, name in contributed:
        cls = host.registries[kind].get(name).cls
        label = f"{kind} {name}"
        console.print(f"[bold]{label}[/] (families: {_families(cls)})")
        # printed as they finish: a smoke run takes seconds
        for check in itertools.chain(
            _isolated(_contract_checks, kind, cls, label, timeout),
            _smoke_checks(host, options, kind, name, cls, label, timeout),
        ):
            checks.append(check)
            _print(console, check)
    failed = [c for c in checks if c.outcome == "FAIL"]
    passed = sum(c.outcome == "pass" for c in checks)
    skipped = sum(c.outcome == "skip" for c in checks)
    colour = "red" if failed else "green"
    console.print(
        f"[{colour}]{escape(target)}: {passed} passed, {len(failed)} failed, "
        f"{skipped} skipped[/]"
    )
    return ExitCode.RUNS_FAILED if failed else ExitCode.OK


ContractChecks = Callable[[str, type, str, Callable[[str], None]], Iterator[Check]]


def _isolated(
    checks: ContractChecks,
    kind: str,
    cls: type,
    label: str,
    timeout: float,
) -> list[Check]:
    """Run ``checks`` in a forked child, so a component that kills its
    process (a segfault, the OOM killer) or hangs fails its check instead of
    the whole report."""
    if not hasattr(os, "fork"):
        return list(checks(kind, cls, label, lambda name: None))
    receiver, sender = multiprocessing.Pipe(duplex=False)
    started = multiprocessing.get_context("fork").Process(
        target=_send_checks, args=(sender, checks, kind, cls, label)
    )
    started.start()
    sender.close()
    done: list[Check] = []
    current = ""
    deadline = time.monotonic() + timeout
    while True:
        if not receiver.poll(max(0.0, deadline - time.monotonic())):
            started.kill()
            started.join()
            done.append(
                Check(
                    label,
                    current or "contracts",
                    "FAIL",
                    f"timed out after {timeout:g} s",
                )
            )
            return done
        try:
            message = receiver.recv()
        except EOFError:
            break
        if message[0] == "start":
            current = message[1]
        else:
            done.append(Check(*message[1]))
    started.join()
    if started.exitcode:
        how = (
            f"killed by signal {-started.exitcode}"
            if started.exitcode < 0
            else f"exit code {started.exitcode}"
        )
        done.append(
            Check(label, current or "contracts", "FAIL", f"process died ({how})")
        )
    return done


def _send_checks(
    conn: Any,
    checks: ContractChecks,
    kind: str,
    cls: type,
    label: str,
) -> None:
    def announce(name: str) -> None:  # the check about to run, in case it kills us
        conn.send(("start", name))

    for check in checks(kind, cls, label, announce):
        conn.send(("done", (check.component, check.name, check.outcome, check.message)))
    conn.close()


def _families(cls: type) -> str:
    return ", ".join(sorted(getattr(cls, "families", ()))) or "none declared"


def _print(console: Console, check: Check) -> None:
    style = {"pass": "green", "FAIL": "red", "skip": "yellow"}[check.outcome]
    # escaped: a check's message quotes exceptions, which may hold "[...]"
    tail = escape(f": {check.message}") if check.message else ""
    console.print(
        f"  [{style}]{check.outcome:4}[/] {escape(check.name)}{tail}",
        highlight=False,
        soft_wrap=True,
    )


# -- contracts ----------------------------------------------------------------------


def _contract_checks(
    kind: str, cls: type, label: str, announce: Callable[[str], None]
) -> Iterator[Check]:
    from . import testing

    families = set(getattr(cls, "families", ()))
    if kind == "sampler":
        if families & {"retrieval", "sts", "kge"}:
            yield from _run_contract(
                testing.SamplerContract, {"sampler_cls": cls}, label, announce
            )
    elif kind == "loss":
        if families & {"retrieval", "sts", "kge"}:
            yield from _run_contract(
                testing.LossContract, {"loss_cls": cls}, label, announce
            )
        if "multilabel" in families:
            yield from _run_contract(
                testing.LabelLossContract, {"loss_cls": cls}, label, announce
            )
    elif kind == "model":
        yield from _run_contract(
            testing.ModelContract, {"model_cls": cls}, label, announce
        )
    elif kind == "task":
        if getattr(cls, "accepts_argument", False):
            yield Check(
                label,
                "contracts",
                "skip",
                "a NAME:ARGUMENT task: subclass harness.testing.TaskContract "
                "with task_argument set in your tests",
            )
            return
        yield from _run_contract(
            testing.TaskContract, {"task_cls": cls}, label, announce
        )


def _run_contract(
    contract: type,
    attrs: dict[str, Any],
    label: str,
    announce: Callable[[str], None],
) -> Iterator[Check]:
    """Call every ``test_*`` method of a contract class, as pytest would."""
    case = type(f"Validate{contract.__name__}", (contract,), attrs)()
    for method in sorted(n for n in dir(case) if n.startswith("test_")):
        test: Callable[[], None] = getattr(case, method)
        title = method.removeprefix("test_").replace("_", " ")
        announce(title)
        try:
            test()
        except AssertionError as exc:
            yield Check(label, title, "FAIL", _assertion_message(exc, test))
        except Exception as exc:
            yield Check(label, title, "FAIL", _raised(exc))
        except BaseException as exc:  # pytest.skip() raises a BaseException
            if type(exc).__name__ != "Skipped":
                raise
            yield Check(label, title, "skip", str(exc))
        else:
            yield Check(label, title, "pass")


def _assertion_message(exc: AssertionError, test: Callable[[], None]) -> str:
    if str(exc):
        return str(exc)
    doc = (test.__doc__ or "").strip().splitlines()
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].line})" if frames and frames[-1].line else ""
    return (doc[0] if doc else "the contract's assertion failed") + where


def _raised(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    )
    return f"raised {type(exc).__name__}: {exc}{where}"


# -- smoke runs -----------------------------------------------------------------------


def _smoke_checks(  # noqa: PLR0917 - one call site, all of them needed
    host: PluginHost,
    host_options: PluginOptions,
    kind: str,
    name: str,
    cls: type,
    label: str,
    timeout: float,
) -> Iterator[Check]:
    from .testing import FAMILY_PARTNERS, TINY_TASKS, bench_once
    from .types import NONE

    families = sorted(getattr(cls, "families", ()))
    if kind == "task":
        if getattr(cls, "accepts_argument", False):
            yield Check(
                label,
                "smoke run",
                "skip",
                f"a NAME:ARGUMENT task: bench it as `harness bench --task "
                f"{name}:ARGUMENT ...`",
            )
            return
        families = [getattr(cls, "family", "")]
    for family in families:
        if family not in TINY_TASKS:
            yield Check(label, f"smoke run ({family})", "skip", "no smoke task")
            continue
        model, loss, sampler = FAMILY_PARTNERS[family]
        chosen = {
            "task": TINY_TASKS[family],  # needs no dataset
            "model": model,
            "loss": loss,
            "sampler": sampler,
        }
        chosen[kind] = name  # a task runs on its own data, with its defaults
        if not host.registries.models.get(chosen["model"]).cls.trainable:
            chosen["loss"] = chosen["sampler"] = NONE
        title = f"smoke run: {' · '.join(chosen.values())}"
        try:
            # a worker process: a crash fails the run, not the report
            result, why_not = bench_once(
                host,
                chosen,
                jobs=1,
                plugin_options=host_options,
                timeout=timeout,
            )
        except UsageError as exc:
            yield Check(label, title, "FAIL", str(exc))
            continue
        if result is None:
            yield Check(label, title, "skip", why_not)
            continue
        if result.ok:
            score = result.main_score
            yield Check(label, title, "pass", f"{result.main_metric}={score:.4f}")
        else:
            yield Check(label, title, "FAIL", result.error or "failed")
