"""The ``slurm`` and ``submitit-local`` executors: one Slurm job per run,
through submitit.

``harness bench --executor slurm`` submits each run as a Slurm job with
submitit (https://github.com/facebookincubator/submitit), asking for
``--threads`` CPUs (default 1), one GPU with ``--device cuda`` (or by default
when this machine has one), and a time limit that covers ``--timeout``.  The
driver -- this process -- polls the jobs and stores each result as its job
finishes, so an interrupted session resumes where it stopped (runs already
in the store are never submitted).  ``--slurm KEY=VALUE`` passes any other
job parameter submitit knows (``partition``, ``mem_gb``, ``account``,
``constraint``...) to ``update_parameters`` as ``slurm_KEY``.

``--executor submitit-local`` takes the same code path with submitit's
``local`` cluster: each job is a subprocess of this machine, started and
watched by submitit exactly as on Slurm (job folder, pickles, logs), to try a
Slurm setup without a cluster.

Everything goes through the job folder, ``<cache>/submitit/<session>/<job
id>/`` (the session's cache dir: ``--cache-dir``, else ``HARNESS_CACHE_DIR``,
else ``~/.cache/negbench``; on a cluster it must be on a file system every
node sees): submitit's job script, the pickled run and its result, the job's
stdout/stderr (``<job id>_0_log.out``/``.err``) and ``<job id>_phases.jsonl``,
where the job appends its progress (throttled ``[phase, detail]`` JSON lines)
for the driver to read while it polls: the live display and the
``harness_run_phase`` hook see ``train epoch 2/3`` from a job on another node,
and a job that died is reported with the phase it died in.  Once a run's
result is stored, its job folder goes if the run succeeded (the store holds
everything it had) and stays if it failed, for its logs; a session folder
left with no failed job goes too.

``--timeout`` counts from the job's start (a job may wait in the queue for
long): the driver cancels a job that runs longer and fails its run with
``timed out after ...``.  Slurm's own time limit is set a little longer, so
the driver's deadline comes first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import json
import math
import os
import shutil
import signal
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .executor import (
    PhaseCallback,
    ResultCallback,
    RunExecutor,
    Throttled,
    WorkerConfig,
    default_devices,
    failed_result,
    first_line,
    run_one,
    visible_device,
)
from .forkserver import family_modules
from .plugin import hookimpl, make_plugin_host
from .types import Run, RunResult

if TYPE_CHECKING:
    from .session import Session

__all__ = ["CLUSTERS", "SubmititExecutor", "parse_slurm_parameters"]

#: ``--executor`` name -> submitit's cluster
CLUSTERS = {"slurm": "slurm", "submitit-local": "local"}
#: seconds between two looks at the jobs (a Slurm job's files live on a
#: shared file system: do not hammer it)
POLL_S = {"slurm": 2.0, "local": 0.5}
#: after a job ended without a result file, how long the file system may take
#: to show it (submitit's own allowance on Slurm; a local job writes it first)
RESULT_GRACE_S = {"slurm": 15.0, "local": 0.0}
#: a job's time limit without --timeout (``--slurm time=...`` changes it)
DEFAULT_TIME_MIN = 24 * 60
#: the time limit covers --timeout plus the job's start-up, plus the warning
#: Slurm signals before the limit (submitit's ``signal_delay_s``)
_STARTUP_S = 60
_SIGNAL_DELAY_S = 90
#: submissions per polling round: progress keeps flowing during a long submit
_SUBMIT_BATCH = 16
_STARTED = "started"


def _import_submitit(name: str) -> Any:
    try:
        import submitit  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise UsageError(
            f"--executor {name} needs submitit: pip install 'negbench[slurm]'"
        ) from None
    return submitit


def parse_slurm_parameters(items: Sequence[str]) -> dict[str, int | float | str]:
    """``--slurm KEY=VALUE`` items -> submitit parameters (without the
    ``slurm_`` prefix); values that read as numbers are numbers."""
    parameters: dict[str, int | float | str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f"--slurm {item!r}: expected KEY=VALUE, e.g. partition=gpu"
            )
        value: int | float | str = text
        for number in (int, float):
            try:
                value = number(text)
                break
            except ValueError:
                continue
        parameters[key.removeprefix("slurm_")] = value
    return parameters


def _phase_file(job_folder: Path, job_id: str) -> Path:
    return Path(job_folder) / f"{job_id}_phases.jsonl"


@dataclass(slots=True)
class _Job:
    run: Run
    job: Any  #: submitit's Job
    device: str  #: the device this job was given (GPU accounting)
    offset: int = 0  #: how far the phase file has been read
    phase: str = ""  #: the last phase the job reported
    deadline: float | None = None  #: set once the job has started
    pid: int | None = None  #: the job's process (local cluster), once started
    ended_at: float | None = None  #: when the job was first seen done

    @property
    def phases(self) -> Path:
        return _phase_file(self.job.paths.folder, self.job.job_id)


@dataclass(slots=True, kw_only=True)
class SubmititExecutor:
    """Submits each run as a submitit job and stores results as jobs finish.

    :param cluster: submitit's cluster: ``slurm`` or ``local``.
    :param folder: the submitit folder, with ``%j`` for the job id; None:
        ``<cache_dir>/submitit/<session>/%j``.
    :param device: ``--device``: ``cpu`` asks for no GPU, ``cuda...`` for one
        per job; ``auto``/None for one when this machine has a GPU.  On the
        local cluster, jobs are spread over the GPUs like local workers.
    :param timeout: ``--timeout``, seconds from a job's start.
    :param max_in_flight: ``--jobs``: jobs submitted at once (None or 0: all
        on Slurm; on the local cluster one per GPU, else the cores divided
        by the threads).
    :param slurm: ``--slurm`` job parameters (``partition``, ``mem_gb``...):
        ``update_parameters(slurm_KEY=VALUE)``, over the harness's own.
    """

    config: WorkerConfig
    cluster: str = "slurm"
    folder: Path | None = None
    device: str | None = None
    timeout: float | None = None
    max_in_flight: int | None = None
    slurm: dict[str, int | float | str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The ``--executor`` name."""
        return next(n for n, c in CLUSTERS.items() if c == self.cluster)

    def time_limit_min(self) -> int:
        if self.timeout is None:
            return DEFAULT_TIME_MIN
        return math.ceil((self.timeout + _STARTUP_S + _SIGNAL_DELAY_S) / 60)

    def devices(self) -> list[str]:
        """The device each job may get: on Slurm the job's own (``cuda:0``
        when it asks for a GPU); locally, this machine's (``--device``)."""
        if self.cluster == "local":
            return default_devices(self.device)
        if {"gpus_per_node", "gpus_per_task"} & self.slurm.keys():
            gpu = self.slurm.get("gpus_per_node", self.slurm.get("gpus_per_task"))
            return ["cpu"] if gpu in (0, "0") else ["cuda:0"]
        wants_gpu = any(d.startswith("cuda") for d in default_devices(self.device))
        return ["cuda:0" if wants_gpu else "cpu"]

    def cpus(self) -> int:
        """CPUs per job, the run's torch threads: ``--threads``, else
        ``--slurm cpus_per_task=N``, else 1."""
        asked = self.slurm.get("cpus_per_task")
        return self.config.threads or (asked if isinstance(asked, int) else 1)

    def slots(self, devices: Sequence[str]) -> int:
        """Jobs in flight at once."""
        if self.max_in_flight:
            return self.max_in_flight
        if self.cluster != "local":
            return 1 << 30  # the Slurm queue decides
        gpus = sum(1 for d in devices if d.startswith("cuda"))
        return gpus or max(1, (os.cpu_count() or 1) // self.cpus())

    def make(self, folder: Path) -> Any:
        """submitit's executor for ``folder``, with every job parameter set;
        a parameter submitit rejects is a :class:`UsageError`."""
        submitit = _import_submitit(self.name)
        gpus = int(self.cluster == "slurm" and self.devices() == ["cuda:0"])
        parameters: dict[str, Any] = {
            "name": "negbench",
            "nodes": 1,
            "tasks_per_node": 1,
            "cpus_per_task": self.cpus(),
            "timeout_min": self.time_limit_min(),
            **({"gpus_per_node": gpus} if gpus else {}),
            **{f"slurm_{key}": value for key, value in self.slurm.items()},
        }
        try:
            executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
            executor.update_parameters(**parameters)
        except (AssertionError, NameError, TypeError, ValueError) as exc:
            raise UsageError(f"--slurm: {first_line(str(exc))}") from None
        except RuntimeError as exc:  # e.g. no srun: not on a Slurm cluster
            raise UsageError(
                f"--executor {self.name}: {first_line(str(exc))}"
            ) from None
        return executor

    def check(self) -> None:
        """Fail now, before any planning output, if this cannot work."""
        _import_submitit(self.name)
        if self.cluster == "slurm":
            missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
            if missing:
                raise UsageError(
                    f"--executor slurm: Slurm is not available on this machine "
                    f"(no {' or '.join(missing)} on PATH); to try the setup on "
                    f"this machine, use --executor submitit-local"
                )
        for device in self.devices():
            try:
                visible_device(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
            except ValueError as exc:
                raise UsageError(f"--device: {exc}") from None
        self.make(self._root() / "%j")

    def _root(self) -> Path:
        return Path(self.config.cache_dir) / "submitit"

    def run(
        self, runs: Sequence[Run], on_phase: PhaseCallback, on_result: ResultCallback
    ) -> None:
        if not runs:  # everything was stored already: nothing to submit
            return
        folder, session = self.folder, None
        if folder is None:
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            session = self._root() / name
            folder = session / "%j"
        executor = self.make(folder)
        # the run's torch threads are exactly the CPUs the job asked for
        config = dataclasses.replace(self.config, threads=self.cpus())
        devices = self.devices()
        slots = self.slots(devices)
        busy = dict.fromkeys(devices, 0)
        pending = deque(runs)
        active: list[_Job] = []
        try:
            while pending or active:
                for _ in range(_SUBMIT_BATCH):
                    if not pending or len(active) >= slots:
                        break
                    run = pending.popleft()
                    device = min(busy, key=lambda d: busy[d])
                    active.append(self._submit(executor, run, config, device))
                    busy[device] += 1
                    on_phase(run, "dispatched", self.name)
                time.sleep(POLL_S[self.cluster])
                for item in list(active):
                    result = self._poll(item, on_phase)
                    if result is not None:
                        active.remove(item)
                        busy[item.device] -= 1
                        on_result(result)  # stored: now its files may go
                        if result.ok:
                            shutil.rmtree(item.job.paths.folder, ignore_errors=True)
        except BaseException:
            for item in active:  # Ctrl-C or a store error: stop the jobs
                self._cancel(item)
            raise
        if session is not None:
            _remove_if_empty(session)

    def _submit(
        self, executor: Any, run: Run, config: WorkerConfig, device: str
    ) -> _Job:
        job_device, visible = device, None
        if self.cluster == "local":  # pin the job to its GPU, as a local worker
            job_device, visible = visible_device(
                device, os.environ.get("CUDA_VISIBLE_DEVICES")
            )
        try:
            job = executor.submit(_execute, run, config, job_device, visible)
        except Exception as exc:  # sbatch refused it: a bad partition, account...
            raise UsageError(
                f"--executor {self.name} could not submit a job "
                f"({type(exc).__name__}): {first_line(str(exc))}"
            ) from None
        return _Job(run=run, job=job, device=device)

    def _poll(self, item: _Job, on_phase: PhaseCallback) -> RunResult | None:
        """Pass on the job's new phases; its result once it has ended."""
        ended = item.job.done()  # before reading: no phase can come after
        for phase, detail, pid in _read_phases(item):
            if phase == _STARTED:  # (again, if Slurm requeued the job)
                item.pid = pid
                if self.timeout:
                    item.deadline = time.monotonic() + self.timeout
            item.phase = phase
            on_phase(item.run, phase, detail)
        now = time.monotonic()
        if ended:
            item.ended_at = item.ended_at or now
            pickle = Path(item.job.paths.result_pickle)
            if pickle.exists() or now - item.ended_at >= RESULT_GRACE_S[self.cluster]:
                return self._collect(item)
        elif item.deadline is not None and now > item.deadline:
            self._cancel(item)
            return failed_result(
                item.run, f"timed out after {self.timeout:g}s (--timeout)"
            )
        return None

    def _cancel(self, item: _Job) -> None:
        """Stop the job: ``scancel`` on Slurm; on the local cluster, kill its
        process once known (submitit's own cancel, a SIGINT, has the job's
        controller print a traceback into the live display)."""
        with contextlib.suppress(Exception):  # a failed cancel must not hide why
            if self.cluster == "local" and item.pid is not None:
                os.kill(item.pid, signal.SIGKILL)
            else:
                item.job.cancel(check=False)

    @staticmethod
    def _collect(item: _Job) -> RunResult:
        job = item.job
        job._results_timeout_s = 0  # the grace for the file system is over
        try:
            payload = job.result()
        except Exception as exc:  # died: killed, out of memory, node failure...
            during = f" during {item.phase!r}" if item.phase else ""
            return failed_result(
                item.run,
                f"submitit job {job.job_id} failed ({type(exc).__name__}){during}: "
                f"{first_line(str(exc))}",
            )
        return RunResult.from_dict(payload)


def _remove_if_empty(session: Path) -> None:
    """Remove the session's empty folders (submitit's local cluster leaves
    a literal ``%j`` one), and the session folder if no failed job's
    folder is left in it (``rmdir`` fails on a folder with files)."""
    for folder in [*session.glob("*"), session]:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _read_phases(item: _Job) -> list[tuple[str, str, int | None]]:
    """The complete lines the job appended since the last read: phase,
    detail and, on the ``started`` line, the job's process id."""
    try:
        with item.phases.open("rb") as handle:
            handle.seek(item.offset)
            data = handle.read()
    except FileNotFoundError:  # the job has not started yet
        return []
    end = data.rfind(b"\n") + 1  # a line still being written waits
    item.offset += end
    updates = []
    for line in data[:end].splitlines():
        try:
            phase, detail, *pid = json.loads(line)
        except (TypeError, ValueError):  # not a line the job wrote
            continue
        updates.append((str(phase), str(detail), int(pid[0]) if pid else None))
    return updates


def _append(path: Path, *line: str | int) -> None:
    # opened and closed each time: a driver on another node sees the line
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def _execute(
    run: Run, config: WorkerConfig, device: str, visible: str | None
) -> dict[str, Any]:
    """The job: execute one run in the job's process, return its result dict
    (plain data: the driver may run another negbench version's classes)."""
    import submitit  # type: ignore[import-not-found,unused-ignore]

    env = submitit.JobEnvironment()
    phases = _phase_file(env.paths.folder, env.job_id)
    if visible is not None:  # before anything initialises CUDA in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    # what a local worker's forkserver imports (and compiles) before the run:
    # --timeout counts from here, as it does for a local worker
    for module in ["harness._preload", *family_modules([run])]:
        importlib.import_module(module)
    started = f"job {env.job_id} on {socket.gethostname()}"
    _append(phases, _STARTED, started, os.getpid())

    import torch

    torch.set_num_threads(config.threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        return failed_result(
            run, f"submitit job {env.job_id} asked for a GPU but sees none"
        ).to_dict()
    try:
        host = make_plugin_host(config.plugin_options)
    except Exception as exc:  # e.g. a plugin missing on this node
        return failed_result(
            run,
            f"submitit job {env.job_id} could not load the plugins: "
            f"{type(exc).__name__}: {exc}",
        ).to_dict()
    gc.freeze()  # as in a local worker: one run per process
    report = Throttled(lambda phase, detail: _append(phases, phase, detail))
    return run_one(host, run, device, config, report).to_dict()


@hookimpl
def harness_executor(session: Session, name: str) -> RunExecutor | None:
    """The built-in ``slurm`` and ``submitit-local`` executors."""
    if name not in CLUSTERS:
        return None
    options = session.options
    executor = SubmititExecutor(
        config=session.worker_config(),
        cluster=CLUSTERS[name],
        device=options.device,
        timeout=options.timeout,
        max_in_flight=options.jobs,
        slurm=dict(options.slurm),
    )
    executor.check()  # fail before planning output scrolls by, with the fix
    return executor
