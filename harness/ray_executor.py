"""The ``ray`` executor: runs as Ray tasks, on a local or a remote cluster.

``harness bench --executor ray [--address ADDR]`` hands each run to Ray
(Moritz et al., "Ray: A Distributed Framework for Emerging AI Applications",
OSDI 2018) instead of a home-made scheduler: Ray places the task on a node
with the resources it asks for (``num_gpus=1`` for a GPU run, ``--threads``
CPUs), restarts it once if its worker dies, and the driver -- this process --
stores each result as it arrives, so an interrupted session resumes where it
stopped (runs already in the store are never dispatched: the store's
``harness_modify_runs`` removed them before any executor sees the runs).

Only as many runs are dispatched as the cluster has room for, so a run's
``--timeout`` counts from (about) when it starts, and the remaining runs can
still be cancelled cheaply.  Progress inside a run streams back as it does
from a local worker: each task sends its phase updates (throttled, fire and
forget) to a small Ray actor, :class:`PhaseBoard`, which the driver drains
while it waits for results, so the live display and the ``harness_run_phase``
hook see ``train epoch 2/3`` from a run on another node, and a run whose
worker died is reported with the phase it died in.

Pointing it at a real cluster: start Ray on the nodes (``ray start --head``
on one, ``ray start --address HEAD:6379`` on the others), install the same
negbench and plugin distributions on every node, make the datasets reachable
at the same path (or set ``HARNESS_DATA_DIR`` on the nodes), then run
``harness bench --executor ray --address auto`` on the head node, or
``--address ray://HEAD:10001`` from elsewhere.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .executor import (
    PhaseCallback,
    ResultCallback,
    RunExecutor,
    Throttled,
    WorkerConfig,
    failed_result,
    first_line,
    run_one,
)
from .plugin import PluginHost, PluginOptions, hookimpl, make_plugin_host
from .types import Run, RunResult

if TYPE_CHECKING:
    from .session import Session

__all__ = ["PhaseBoard", "RayExecutor"]

#: a run whose worker process dies is started once more, then marked failed
RETRIES = 1
_WAIT_S = 0.5
#: ``--timeout`` counts from a run's start on its worker (its first phase);
#: a run that has not started this long after its dispatch (a worker that
#: cannot come up) fails too
START_GRACE_S = 300.0


def _import_ray() -> Any:
    try:
        import ray  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise UsageError(
            "--executor ray needs Ray: pip install 'negbench[ray]'"
        ) from None
    return ray


@dataclass(slots=True, kw_only=True)
class RayExecutor:
    """Dispatches runs as Ray tasks and stores their results as they finish.

    :param address: the cluster to join (``auto``, ``ray://host:10001``);
        None starts a local Ray instance for this session and stops it after.
    :param device: ``--device``: ``cpu`` never asks for GPUs; ``auto``/None
        asks for one GPU per run when the cluster has GPUs.
    :param max_in_flight: ``--jobs`` caps the runs executing at once
        (None or 0: as many as the cluster has room for).
    """

    config: WorkerConfig
    address: str | None = None
    device: str | None = None
    timeout: float | None = None
    max_in_flight: int | None = None
    retries: int = RETRIES

    def run(
        self, runs: Sequence[Run], on_phase: PhaseCallback, on_result: ResultCallback
    ) -> None:
        if not runs:  # everything was stored already: no cluster to start
            return
        ray = _import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            _connect(ray, self.address)
        try:
            self._dispatch(ray, runs, on_phase, on_result)
        finally:
            if started_here:
                ray.shutdown()

    def _gpus_per_run(self, ray: Any) -> int:
        if self.device == "cpu":
            return 0
        if self.device and self.device.startswith("cuda"):
            return 1
        return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0

    def _slots(self, ray: Any, cpus: int, gpus: int) -> int:
        """How many runs the cluster can execute at once (re-read every time:
        an autoscaling cluster grows)."""
        resources = ray.cluster_resources()
        slots = int(resources.get("CPU", 1) // cpus)
        if gpus:
            slots = min(slots, int(resources.get("GPU", 0) // gpus))
        if self.max_in_flight:
            slots = min(slots, self.max_in_flight)
        return max(1, slots)

    def _dispatch(
        self,
        ray: Any,
        runs: Sequence[Run],
        on_phase: PhaseCallback,
        on_result: ResultCallback,
    ) -> None:
        cpus = self.config.threads or 1
        gpus = self._gpus_per_run(ray)
        # the run's torch threads are exactly the CPUs Ray reserved for it
        config = dataclasses.replace(self.config, threads=cpus)
        task = ray.remote(_execute).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=self.retries
        )
        # no CPU reserved: the board must not take a slot from the runs
        board = ray.remote(PhaseBoard).options(num_cpus=0).remote()
        pending = deque(runs)
        active: dict[Any, tuple[Run, float | None]] = {}
        phases: dict[str, str] = {}  # run id -> the last phase it reported
        try:
            while pending or active:
                slots = self._slots(ray, cpus, gpus)
                while pending and len(active) < slots:
                    run = pending.popleft()
                    deadline = (
                        time.monotonic() + self.timeout + START_GRACE_S
                        if self.timeout
                        else None
                    )
                    active[task.remote(run, config, board)] = (run, deadline)
                    on_phase(run, "dispatched", "ray")
                done, _ = ray.wait(list(active), num_returns=1, timeout=_WAIT_S)
                # before the results: a finished run's last phases come first,
                # and none can arrive after its result (which would leave a
                # stale line in the live display)
                running = {run.run_id: ref for ref, (run, _) in active.items()}
                for run_id, phase, detail in _drain(ray, board):
                    if run_id in running:
                        ref = running[run_id]
                        run = active[ref][0]
                        if run_id not in phases and self.timeout:
                            # started: --timeout counts from now, not from
                            # the dispatch (a worker's start-up is not the run's)
                            active[ref] = (run, time.monotonic() + self.timeout)
                        phases[run_id] = phase
                        on_phase(run, phase, detail)
                for ref in done:
                    run, _ = active.pop(ref)
                    on_result(_collect(ray, ref, run, phases.pop(run.run_id, "")))
                now = time.monotonic()
                for ref, (run, deadline) in list(active.items()):
                    if deadline is not None and now > deadline:
                        ray.cancel(ref, force=True)
                        del active[ref]
                        started = phases.pop(run.run_id, None) is not None
                        on_result(failed_result(run, self._timed_out(started)))
        except BaseException:
            for ref in active:  # Ctrl-C or a store error: stop the cluster's work
                ray.cancel(ref, force=True)
            raise

    def _timed_out(self, started: bool) -> str:
        assert self.timeout is not None
        if started:
            return f"timed out after {self.timeout:g}s (--timeout)"
        return (
            f"not started {self.timeout + START_GRACE_S:g}s after its dispatch "
            f"(--timeout {self.timeout:g}s plus {START_GRACE_S:g}s for a worker "
            "to start)"
        )


def _connect(ray: Any, address: str | None) -> None:
    """Join ``address``, or start a private local instance (no dashboard,
    no usage statistics: a benchmark run must not phone home)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {
        "log_to_driver": False,  # a worker's prints would tear the live display
        "configure_logging": False,
    }
    if address is None:
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise UsageError(f"could not start {where}: {exc}") from None


def _drain(ray: Any, board: Any) -> list[tuple[str, str, str]]:
    """The phase updates posted since the last drain; none if the board is
    gone (its node died): progress is lost then, never a result."""
    try:
        updates: list[tuple[str, str, str]] = ray.get(board.drain.remote())
    except ray.exceptions.RayError:
        return []
    return updates


def _collect(ray: Any, ref: Any, run: Run, phase: str) -> RunResult:
    try:
        payload = ray.get(ref)
    except ray.exceptions.RayError as exc:  # the worker died even after retries
        during = f" during {phase!r}" if phase else ""
        return failed_result(
            run,
            f"Ray worker failed ({type(exc).__name__}){during}: {first_line(str(exc))}",
        )
    return RunResult.from_dict(payload)


class PhaseBoard:
    """A Ray actor: collects the phase updates of every running task until
    the driver drains them (Ray runs one actor method at a time, in the
    order each caller sent them, so a run's updates stay in order)."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, str, str]] = []

    def post(self, run_id: str, phase: str, detail: str) -> None:
        self.updates.append((run_id, phase, detail))

    def drain(self) -> list[tuple[str, str, str]]:
        updates, self.updates = self.updates, []
        return updates


@functools.cache
def _host(options: PluginOptions) -> PluginHost:
    """One plugin manager per Ray worker process (workers are reused)."""
    return make_plugin_host(options)


def _execute(run: Run, config: WorkerConfig, board: Any) -> dict[str, Any]:
    """The Ray task: execute one run in a Ray worker, return its result dict
    (plain data: the driver may run another negbench version's classes).
    Phase updates go to ``board`` without waiting for an answer: a
    training step never waits on the network."""
    import ray
    import torch

    from .allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(config.threads)
    # Ray sets CUDA_VISIBLE_DEVICES to the GPU it granted: it is cuda:0 here
    device = "cuda:0" if ray.get_gpu_ids() else "cpu"
    try:
        host = _host(config.plugin_options)
    except Exception as exc:  # e.g. a plugin missing on this node
        return failed_result(
            run, f"Ray worker could not load the plugins: {type(exc).__name__}: {exc}"
        ).to_dict()
    report = Throttled(
        lambda phase, detail: board.post.remote(run.run_id, phase, detail)
    )
    # as a local worker does (harness.executor._worker_main): keep what is
    # alive now (torch, the plugins) out of the cyclic collector's passes
    # during the run; a Ray worker is reused, so unfreeze afterwards, or a
    # cycle among those objects that dies later would never be collected
    gc.freeze()
    try:
        return run_one(host, run, device, config, report).to_dict()
    finally:
        gc.unfreeze()


@hookimpl
def harness_executor(session: Session, name: str) -> RunExecutor | None:
    """The built-in ``ray`` executor."""
    if name != "ray":
        return None
    _import_ray()  # fail before planning output scrolls by, with the fix
    options = session.options
    return RayExecutor(
        config=session.worker_config(),
        address=options.address,
        device=options.device,
        timeout=options.timeout,
        max_in_flight=options.jobs,
    )
