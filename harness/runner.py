"""The built-in run executor (``harness_run``, ``trylast``).

Instantiates the run's components, seeds everything, lets the task load its
data, train (trainable models only) and evaluate, and turns any failure into
a failed :class:`RunResult` whose error names the component and plugin at
fault.  Runs in the worker process that owns the run.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
import traceback
from types import TracebackType
from typing import Any

import numpy as np
import torch

from .components import Loss, Model, Sampler, Task
from .context import ComponentRef, RunContext
from .environment import environment
from .errors import ComponentError, ContractError, DataError, HarnessError
from .plugin import hookimpl
from .registry import Registries, split_name
from .types import NONE, Evaluation, Run, RunResult

__all__ = ["execute", "harness_run"]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _instantiate(
    registries: Registries,
    kind: str,
    name: str,
    params: dict[str, Any],
    family: str = "",
) -> tuple[Any, ComponentRef]:
    entry = registries[kind].get(name)
    ref = ComponentRef(kind=kind, name=name, plugin=entry.plugin)
    # the user's values win over the component's defaults for this family
    kwargs = {**entry.cls.family_defaults.get(family, {}), **params}
    argument = split_name(name)[1]
    if argument is not None:
        kwargs["argument"] = argument
    try:
        instance = entry.cls(**kwargs)
    except Exception as exc:
        raise ComponentError(
            kind,
            name,
            entry.plugin,
            f"could not be created: {type(exc).__name__}: {exc}",
        ) from exc
    return instance, ref


def _blame(
    tb: TracebackType | None, components: dict[str, tuple[Any, ComponentRef]]
) -> ComponentRef | None:
    """The component whose code raised: innermost frame that belongs to one.

    A frame belongs to a component when its ``self`` is the component instance,
    or else when it runs in the module that defines the component's class.
    """
    frames = [frame for frame, _ in traceback.walk_tb(tb)]
    for frame in reversed(frames):
        owner = frame.f_locals.get("self")
        for instance, ref in components.values():
            if owner is instance:
                return ref
    for frame in reversed(frames):
        module = frame.f_globals.get("__name__")
        for instance, ref in components.values():
            if type(instance).__module__ == module:
                return ref
    return None


def _check_evaluation(
    evaluation: object, main_metric: str, ref: ComponentRef
) -> Evaluation:
    def bad(message: str) -> ContractError:
        return ContractError("task", ref.name, ref.plugin, message)

    if not isinstance(evaluation, Evaluation):
        raise bad(f"evaluate() returned {type(evaluation).__name__}, not Evaluation")
    if main_metric not in evaluation.metrics:
        raise bad(f"evaluate() did not return the main metric '{main_metric}'")
    for key, value in evaluation.metrics.items():
        if not isinstance(value, float | int) or not math.isfinite(value):
            raise bad(f"metric '{key}' is {value!r}, not a finite number")
    for key, values in evaluation.per_item.items():
        for item, value in values.items():
            if not isinstance(value, float | int) or not math.isfinite(value):
                raise bad(f"per-item '{key}' of item {item!r} is {value!r}, not finite")
    return evaluation


def execute(run: Run, context: RunContext, registries: Registries) -> RunResult:
    """Execute ``run``; never raises for failures inside the run."""
    spec = run.spec
    started = _now()
    result = RunResult(
        run_id=run.run_id,
        spec=spec,
        family=run.family,
        status="failed",
        main_metric=run.main_metric,
        dataset_sha256=run.dataset.sha256,
        versions=dict(run.versions),
        started_at=started,
    )
    components: dict[str, tuple[Any, ComponentRef]] = {}
    clock, cpu_clock = time.perf_counter(), time.process_time()
    extras: dict[str, float] = {}
    try:
        seed_everything(spec.seed)
        for kind, name in spec.components.items():
            if name == NONE:
                continue
            params = dict(spec.params.get(kind, {}))
            components[kind] = _instantiate(registries, kind, name, params, run.family)
            context.refs[kind] = components[kind][1]
        task: Task = components["task"][0]
        model: Model = components["model"][0]
        if "sampler" in components:
            context.sampler = components["sampler"][0]
            assert isinstance(context.sampler, Sampler)
        if "loss" in components:
            context.loss = components["loss"][0]
            assert isinstance(context.loss, Loss)
            context.loss.to(context.device)
        with context.phase("setup"):
            model.setup(context)
            model.to(context.device)
        with context.phase("load"):
            data = task.load(run.dataset, context)
        if model.trainable:
            with context.phase("train"):
                task.fit(data, model, context)
        model.eval()
        with context.phase("evaluate"), torch.no_grad():
            evaluation = _check_evaluation(
                task.evaluate(data, model, context),
                run.main_metric,
                components["task"][1],
            )
        if context.sampler is not None:
            with context.guard("sampler"):
                extras = {
                    f"{context.sampler.name}.{key}": float(value)
                    for key, value in context.sampler.diagnostics().items()
                }
        result.status = "ok"
        result.metrics = {k: float(v) for k, v in evaluation.metrics.items()}
        result.per_item = {
            metric: {str(i): float(v) for i, v in values.items()}
            for metric, values in evaluation.per_item.items()
        }
    except ComponentError as exc:
        result.error = str(exc)
    except DataError as exc:
        result.error = f"data: {exc}"
    except HarnessError as exc:
        result.error = str(exc)
    except Exception as exc:
        ref = _blame(exc.__traceback__, components)
        detail = f"raised {type(exc).__name__}: {exc}"
        if ref is not None:
            result.error = str(ComponentError(ref.kind, ref.name, ref.plugin, detail))
        else:
            result.error = f"internal error: {detail}"
    if result.error:
        result.error = " ".join(result.error.split())  # one line, always
    result.diagnostics = {**context.diagnostics.summary(), **extras}
    if "train" in context.timings and "mine" in context.timings:
        result.diagnostics["mining_seconds"] = context.timings["mine"]
        result.diagnostics["mining_share"] = context.timings["mine"] / max(
            context.timings["train"], 1e-9
        )
    result.timings = dict(context.timings)
    result.timings["total"] = time.perf_counter() - clock
    result.timings["total_cpu"] = time.process_time() - cpu_clock
    result.environment = environment(context.device)
    result.finished_at = _now()
    return result


@hookimpl(trylast=True)
def harness_run(run: Run, context: RunContext) -> RunResult:
    """Default implementation: execute the run in this process."""
    return execute(run, context, context.registries)
