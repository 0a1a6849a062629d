"""The ``local`` executor: runs in worker processes (isolated, parallel, with
timeouts) on this machine, or inline.

Each run gets its own worker process (started from a forkserver that has
already imported torch, so a worker starts in milliseconds).  The worker
builds its own plugin manager from the session's :class:`PluginOptions`,
calls the ``harness_run`` hook and sends the result back over a pipe, along
with phase updates for the progress display.  The main process enforces
``--timeout``, notices workers that die (segfault, out-of-memory kill) and
turns both into failed results, so one bad run never takes the session down.
Workers exit on their own if the main process disappears (``kill -9``).

With several GPUs, one worker runs per GPU and sees only its own device
(``CUDA_VISIBLE_DEVICES``), so a run's code can say ``cuda:0``.  Other
engines (``harness.ray_executor``) implement the same :class:`RunExecutor`
protocol and are chosen through the ``harness_executor`` hook.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from . import forkserver
from .allocator import keep_freed_memory
from .context import RunContext
from .data import DataLocator
from .errors import UsageError
from .plugin import PluginHost, PluginOptions, hookimpl, make_plugin_host
from .types import Run, RunResult

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "LocalExecutor",
    "RunExecutor",
    "Throttled",
    "WorkerConfig",
    "check_local_devices",
    "default_devices",
    "failed_result",
    "first_line",
]

PhaseCallback = Callable[[Run, str, str], None]
ResultCallback = Callable[[RunResult], None]

_REPORT_INTERVAL_S = 0.25


def default_devices(requested: str | None) -> list[str]:
    """``--device`` value -> device list; default: every GPU, else the CPU."""
    if requested and requested != "auto":
        return [d.strip() for d in requested.split(",") if d.strip()]
    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"]


def check_local_devices(devices: Sequence[str]) -> None:
    """A :class:`UsageError` now, with the fix, for a device this machine
    does not have: otherwise every run would fail the same way, one by one."""
    for device in devices:
        try:
            parsed = torch.device(device)
        except RuntimeError as exc:
            raise UsageError(f"--device {device!r}: {first_line(str(exc))}") from None
        if parsed.type == "cpu":
            continue
        if parsed.type == "mps" and torch.backends.mps.is_available():
            continue
        if parsed.type != "cuda":
            raise UsageError(
                f"--device {device}: not available here; the local executor "
                "runs on 'cpu' and 'cuda[:N]' (or 'mps' on Apple silicon)"
            )
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus == 0:
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
            raise UsageError(
                f"--device {device}: no CUDA GPU is visible on this machine "
                f"(torch {torch.__version__}, a {build} build); use --device "
                "cpu, or --executor ray/slurm to run on GPU nodes"
            )
        if parsed.index is not None and parsed.index >= gpus:
            raise UsageError(
                f"--device {device}: this machine has {gpus} visible GPU(s), "
                f"cuda:0 to cuda:{gpus - 1}"
            )


class RunExecutor(Protocol):
    """What every executor does (the ``harness_executor`` hook returns one)."""

    def run(
        self, runs: Sequence[Run], on_phase: PhaseCallback, on_result: ResultCallback
    ) -> None:
        """Execute ``runs``; call ``on_result`` once per run, in this process,
        as each finishes (a failed result if it could not finish), and
        ``on_phase`` for progress where the engine can report it."""


def visible_device(device: str, visible: str | None) -> tuple[str, str | None]:
    """(device name inside the worker, ``CUDA_VISIBLE_DEVICES`` to set).

    A worker for ``cuda:N`` sees only that GPU, as ``cuda:0``: a run that
    allocates on "the" GPU cannot touch another run's.  If the user already
    narrowed the GPUs (``CUDA_VISIBLE_DEVICES=2,3``), N indexes that list.
    """
    if not device.startswith("cuda:"):
        return device, None
    index = int(device.split(":", 1)[1])
    if visible:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if index >= len(ids):
            raise ValueError(f"{device} is not among CUDA_VISIBLE_DEVICES={visible!r}")
        return "cuda:0", ids[index]
    return "cuda:0", str(index)


def first_line(text: str) -> str:
    """The first non-blank line of an error message: a failed run's error
    is one line, whatever an engine's exception says."""
    return (text.strip().splitlines() or [""])[0]


def failed_result(run: Run, error: str) -> RunResult:
    return RunResult(
        run_id=run.run_id,
        spec=run.spec,
        family=run.family,
        status="failed",
        main_metric=run.main_metric,
        error=" ".join(error.split()),
        dataset_sha256=run.dataset.sha256,
        versions=dict(run.versions),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    """What a worker needs besides the run (picklable)."""

    plugin_options: PluginOptions
    cache_dir: str
    #: torch threads per run; 0 = the machine's cores divided by the jobs
    threads: int = 0
    #: the session's data search path, for tasks that locate more data in a run
    locator: DataLocator | None = None


def run_one(
    host: PluginHost,
    run: Run,
    device: str,
    config: WorkerConfig,
    report: Callable[[str, str], None],
) -> RunResult:
    """Call the ``harness_run`` hook for ``run`` in this process."""
    context = RunContext(
        run=run,
        registries=host.registries,
        device=torch.device(device),
        cache_dir=Path(config.cache_dir),
        seed=run.spec.seed,
        report=report,
        locator=config.locator,
    )
    try:
        result = host.hook.harness_run(run=run, context=context)
    except Exception as exc:  # a harness_run implementation itself crashed
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" in {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        return failed_result(
            run, f"harness_run hook raised {type(exc).__name__}: {exc}{where}"
        )
    if result is None:
        return failed_result(run, "no plugin's harness_run returned a result")
    if not isinstance(result, RunResult):
        return failed_result(
            run, f"harness_run returned {type(result).__name__}, not RunResult"
        )
    return result


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent_pid, 0)
        except OSError:
            os._exit(3)  # the session is gone: nobody will read our result


class Throttled:
    """Passes a worker's phase updates on to ``send``: every new phase, and
    detail changes at most every ``_REPORT_INTERVAL_S`` (a step counter must
    not flood the pipe, or the Ray actor, that carries them to the driver)."""

    def __init__(self, send: Callable[[str, str], object]) -> None:
        self.send = send
        self.phase = ""
        self.sent_at = 0.0

    def __call__(self, phase: str, detail: str) -> None:
        now = time.monotonic()
        if phase != self.phase or now - self.sent_at > _REPORT_INTERVAL_S:
            self.phase, self.sent_at = phase, now
            self.send(phase, detail)


def _worker_main(
    conn: multiprocessing.connection.Connection,
    run: Run,
    device: str,
    config: WorkerConfig,
    parent_pid: int,
) -> None:
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's job
    if config.threads:
        torch.set_num_threads(config.threads)
    report = Throttled(lambda phase, detail: conn.send(("phase", phase, detail)))
    # before anything initialises CUDA in this process (the forkserver never
    # does): from here on the run sees its one GPU as cuda:0
    device, visible = visible_device(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible

    try:
        host = make_plugin_host(config.plugin_options)
        # Everything alive now (torch, the plugins, the host) lives until the
        # process exits: take it out of the cyclic collector's full passes,
        # which would otherwise walk those ~300k objects every few hundred
        # training steps (6% of a KGE run on UMLS).  Freed by refcounting
        # as before; only a cycle among them would be kept, until the exit.
        gc.freeze()
        result = run_one(host, run, device, config, report)
    except BaseException as exc:  # plugin loading differs from the parent's?
        result = failed_result(
            run, f"worker could not start the run: {type(exc).__name__}: {exc}"
        )
    try:
        conn.send(("result", result.to_dict()))
        conn.close()
    except OSError:  # the session stopped (Ctrl-C while this worker started)
        os._exit(3)  # nobody will read our result; no traceback for it


@dataclass(slots=True)
class _Active:
    process: BaseProcess
    conn: multiprocessing.connection.Connection
    run: Run
    device: str
    deadline: float | None
    result: RunResult | None = None
    phase: str = ""  #: the last phase the worker reported


@dataclass(slots=True, kw_only=True)
class LocalExecutor:
    """Runs a list of runs, ``jobs`` at a time, and reports as they finish.

    :param jobs: parallel worker processes; 0 runs inline in this process
        (no isolation and no timeout; for debugging with pdb).  Runs are
        spread over ``devices`` (the least busy first): jobs = number of
        GPUs runs one run per GPU.
    :param timeout: seconds per run, or None.
    """

    config: WorkerConfig
    jobs: int = 1
    timeout: float | None = None
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    host: PluginHost | None = None

    def run(
        self, runs: Sequence[Run], on_phase: PhaseCallback, on_result: ResultCallback
    ) -> None:
        if self.jobs == 0:
            self._inline(runs, on_phase, on_result)
        else:
            self._processes(runs, on_phase, on_result)

    def _inline(
        self, runs: Sequence[Run], on_phase: PhaseCallback, on_result: ResultCallback
    ) -> None:
        host = self.host or make_plugin_host(self.config.plugin_options)
        keep_freed_memory()
        for run in runs:
            result = run_one(
                host,
                run,
                self.devices[0],
                self.config,
                lambda phase, detail, run=run: on_phase(run, phase, detail),  # type: ignore[misc]
            )
            on_result(result)

    def _processes(
        self, runs: Sequence[Run], on_phase: PhaseCallback, on_result: ResultCallback
    ) -> None:
        if not runs:  # all resumed: an early server is not told, it exits
            return
        ctx = multiprocessing.get_context("forkserver")
        forkserver.announce(runs)  # to a server started early, or for a new one
        pending = deque(runs)
        active: dict[int, _Active] = {}
        busy: dict[str, int] = dict.fromkeys(self.devices, 0)
        threads = self.config.threads or max(
            1, (os.cpu_count() or 1) // max(1, self.jobs)
        )
        config = WorkerConfig(
            plugin_options=self.config.plugin_options,
            cache_dir=self.config.cache_dir,
            threads=threads,
            locator=self.config.locator,
        )
        try:
            while pending or active:
                while pending and len(active) < self.jobs:
                    run = pending.popleft()
                    device = min(busy, key=lambda d: busy[d])
                    busy[device] += 1
                    receiver, sender = ctx.Pipe(duplex=False)
                    process = ctx.Process(
                        target=_worker_main,
                        args=(sender, run, device, config, os.getpid()),
                        name=f"harness-{run.run_id}",
                    )
                    process.start()
                    sender.close()
                    deadline = time.monotonic() + self.timeout if self.timeout else None
                    active[id(receiver)] = _Active(
                        process, receiver, run, device, deadline
                    )
                self._poll(active, busy, on_phase, on_result)
        except BaseException:
            for item in active.values():
                item.process.kill()
            raise

    def _poll(
        self,
        active: dict[int, _Active],
        busy: dict[str, int],
        on_phase: PhaseCallback,
        on_result: ResultCallback,
    ) -> None:
        now = time.monotonic()
        deadlines = [a.deadline - now for a in active.values() if a.deadline]
        wait_s = max(0.0, min([0.5, *deadlines]))
        waitables: list[Any] = [a.conn for a in active.values()]
        waitables += [a.process.sentinel for a in active.values()]
        multiprocessing.connection.wait(waitables, timeout=wait_s)
        for key, item in list(active.items()):
            finished = self._drain(item, on_phase)
            if not finished and item.deadline and time.monotonic() > item.deadline:
                item.process.kill()
                item.process.join()
                item.result = failed_result(
                    item.run, f"timed out after {self.timeout:g}s (--timeout)"
                )
                finished = True
            if not finished and not item.process.is_alive():
                self._drain(item, on_phase)
                finished = True
            if finished:
                item.process.join()
                item.conn.close()
                del active[key]
                busy[item.device] -= 1
                if item.result is None:
                    code = item.process.exitcode
                    how = (
                        f"killed by signal {-code}"
                        if code is not None and code < 0
                        else f"exit code {code}"
                    )
                    during = f" during {item.phase!r}" if item.phase else ""
                    item.result = failed_result(
                        item.run,
                        f"worker process died without a result ({how}){during}",
                    )
                on_result(item.result)

    @staticmethod
    def _drain(item: _Active, on_phase: PhaseCallback) -> bool:
        """Read every pending message; True once the result has arrived."""
        try:
            while item.conn.poll():
                message = item.conn.recv()
                if message[0] == "phase":
                    item.phase = message[1]
                    on_phase(item.run, message[1], message[2])
                elif message[0] == "result":
                    item.result = RunResult.from_dict(message[1])
        except (EOFError, OSError):
            return item.result is not None or not item.process.is_alive()
        return item.result is not None


def default_jobs(requested: int | None, devices: Sequence[str]) -> int:
    """``--jobs`` default: one run per GPU when there are GPUs, else one."""
    if requested is not None:
        return requested
    gpus = sum(1 for d in devices if d.startswith("cuda"))
    return max(1, gpus)


@hookimpl(trylast=True)
def harness_executor(session: Session, name: str) -> RunExecutor | None:
    """The built-in ``local`` executor."""
    if name != "local":
        return None
    devices = default_devices(session.options.device)
    check_local_devices(devices)
    return LocalExecutor(
        config=session.worker_config(),
        jobs=default_jobs(session.options.jobs, devices),
        timeout=session.options.timeout,
        devices=devices,
        host=session.host,
    )
