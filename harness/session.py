"""A bench session: plan the matrix, run it through the hooks, report.

The session only orchestrates; everything observable happens in plugins:
the store resumes and persists (``harness.store``), the terminal reporter
draws progress and the summary (``harness.terminal``), the runner executes
(``harness.runner``).  That is pytest's ``wrap_session`` shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from .config import Selections, expand_matrix, load_suite, param_table_from_cli
from .data import DataLocator
from .errors import DataError, DatasetUnavailable, ExitCode, UsageError
from .executor import WorkerConfig
from .plugin import PluginHost, PluginOptions
from .registry import split_name
from .store import DEFAULT_STORE, ResultStore
from .types import DatasetRef, Run, RunResult, RunSpec, TaskInfo

__all__ = ["BenchOptions", "Session"]


@dataclass(slots=True, kw_only=True)
class BenchOptions:
    """Everything ``harness bench`` was asked to do."""

    suites: list[str] = field(default_factory=list)
    selections: Selections = field(default_factory=Selections)
    seeds: int | None = None
    params: list[str] = field(default_factory=list)
    device: str | None = None
    #: parallel runs; None = one per GPU, or one on a CPU-only machine
    jobs: int | None = None
    #: torch threads per run; None = the executor's default
    threads: int | None = None
    #: which engine executes the runs (the ``harness_executor`` hook)
    executor: str = "local"
    #: the Ray cluster to join (``--address``); None starts a local one
    address: str | None = None
    #: Slurm job parameters (``--slurm KEY=VALUE``, without the ``slurm_``
    #: prefix submitit's ``update_parameters`` takes)
    slurm: dict[str, int | float | str] = field(default_factory=dict)
    timeout: float | None = None
    rerun: bool = False
    store: Path = DEFAULT_STORE
    data_dirs: list[str] = field(default_factory=list)
    cache_dir: str | None = None
    offline: bool | None = None
    plugin_options: PluginOptions = field(default_factory=PluginOptions)


class Session:
    """State shared by the hooks during one ``harness bench``."""

    def __init__(
        self, host: PluginHost, options: BenchOptions, console: Console | None = None
    ) -> None:
        self.host = host
        self.options = options
        self.console = console or Console(stderr=False)
        self.locator = DataLocator.from_env(
            options.data_dirs, options.cache_dir, options.offline
        )
        self.store: ResultStore | None = None
        self.notes: list[str] = []
        self.runs: list[Run] = []
        self.planned: list[Run] = []
        #: run id -> "host pid N" of planned runs that another live
        #: ``harness bench`` on the same store is executing (skipped here)
        self.elsewhere: dict[str, str] = {}
        self.results: list[RunResult] = []
        self.tasks: dict[str, TaskInfo] = {}
        self.exitstatus: ExitCode = ExitCode.OK
        self.shared: dict[str, Any] = {}  #: scratch space for plugins

    @property
    def registries(self) -> Any:
        return self.host.registries

    # -- planning ---------------------------------------------------------------------

    def plan(self) -> list[Run]:
        """Expand the matrix and locate every task's data."""
        suites = [load_suite(s) for s in self.options.suites]
        if not suites and not self.options.selections.any:
            suites = [load_suite("quick")]
        expansion = expand_matrix(
            self.registries,
            suites=suites,
            selections=self.options.selections,
            seeds=self.options.seeds,
            cli_params=param_table_from_cli(self.options.params),
        )
        self.notes.extend(expansion.notes)
        datasets: dict[str, DatasetRef | None] = {}
        runs: list[Run] = []
        for spec in expansion.specs:
            key = f"{spec.task}|{sorted(spec.params.get('task', {}).items())}"
            if key not in datasets:
                datasets[key] = self._locate(spec)
            dataset = datasets[key]
            if dataset is None:
                continue
            info = self.registries.tasks.get(spec.task).cls.info(spec.task)
            self.tasks[spec.task] = info
            runs.append(
                Run(
                    spec=spec,
                    family=info.family,
                    dataset=dataset,
                    versions=self._versions(spec),
                    main_metric=info.main_metric,
                )
            )
        self.planned = list(runs)
        return runs

    def _locate(self, spec: RunSpec) -> DatasetRef | None:
        entry = self.registries.tasks.get(spec.task)
        kwargs = dict(spec.params.get("task", {}))
        argument = split_name(spec.task)[1]
        if argument is not None:
            kwargs["argument"] = argument
        try:
            task = entry.cls(**kwargs)
            return task.locate(self.locator)  # type: ignore[no-any-return]
        except DatasetUnavailable as exc:
            self.notes.append(f"task '{spec.task}' skipped: {exc}")
            return None
        except DataError as exc:
            # bad data stops the session before any run: nothing is stored
            raise UsageError(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"task '{spec.task}' (plugin {entry.plugin}): {exc}"
            ) from None

    def _versions(self, spec: RunSpec) -> dict[str, str]:
        versions = {}
        for kind, name in spec.components.items():
            if name == "none":
                continue
            entry = self.registries[kind].get(name)
            info = self.host.infos.get(entry.plugin)
            version = entry.cls.version
            if info is not None and info.origin == "entrypoint":
                version += f"+{info.detail}"
            versions[kind] = version
        return versions

    # -- running ----------------------------------------------------------------------

    def run(self) -> ExitCode:
        """Plan, execute and report; returns the exit status."""
        hook = self.host.hook
        runs = self.plan()
        # before the store is touched: a wrong --executor claims no runs
        executor = hook.harness_executor(session=self, name=self.options.executor)
        if executor is None:
            raise UsageError(
                f"no plugin provides the executor '{self.options.executor}' "
                "(built-in: local, ray, slurm, submitit-local)"
            )
        self.store = ResultStore(self.options.store)
        try:
            hook.harness_modify_runs(session=self, runs=runs)
            self.runs = runs
            if not self.planned:
                self.exitstatus = ExitCode.NO_RUNS
                hook.harness_session_finish(session=self, results=[])
                return self.exitstatus
            hook.harness_session_start(session=self, runs=runs)
            try:
                executor.run(runs, self._on_phase, self._on_result)
            except KeyboardInterrupt:
                self.exitstatus = ExitCode.INTERRUPTED
            if self.exitstatus == ExitCode.OK and any(not r.ok for r in self.results):
                self.exitstatus = ExitCode.RUNS_FAILED
            hook.harness_session_finish(session=self, results=self.matrix_results())
            return self.exitstatus
        finally:
            self.store.close()

    def worker_config(self) -> WorkerConfig:
        """What a worker process needs to execute this session's runs."""
        return WorkerConfig(
            plugin_options=self.options.plugin_options,
            cache_dir=str(self.locator.cache_dir),
            threads=self.options.threads or 0,
            locator=self.locator,
        )

    def _on_phase(self, run: Run, phase: str, detail: str) -> None:
        self.host.hook.harness_run_phase(
            session=self, run=run, phase=phase, detail=detail
        )

    def _on_result(self, result: RunResult) -> None:
        self.results.append(result)
        self.host.hook.harness_result(session=self, result=result)

    def matrix_results(self) -> Sequence[RunResult]:
        """This session's results plus stored results of its other planned runs."""
        fresh = {r.run_id: r for r in self.results}
        stored = []
        if self.store is not None:
            missing = [r.run_id for r in self.planned if r.run_id not in fresh]
            stored = self.store.load(missing) if missing else []
        return [*stored, *fresh.values()]
