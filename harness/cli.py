"""The ``harness`` command: bench, plugins, list, results, submit, leaderboard.

Exceptions map to exit codes here and nowhere else: a :class:`UsageError`
prints one ``ERROR:`` line (exit 4), Ctrl-C exits 2, and anything unexpected
is an internal error with a traceback (exit 3).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import ExitCode, UsageError

if TYPE_CHECKING:
    from .plugin import PluginHost, PluginOptions
    from .types import TaskInfo

__all__ = ["main"]

#: where `harness leaderboard build` writes the site and `serve` serves it
DEFAULT_SITE = Path("harness-results") / "leaderboard"

KIND_PLURALS = {
    "tasks": "task",
    "models": "model",
    "losses": "loss",
    "samplers": "sampler",
}


def _plugin_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("plugins")
    group.add_argument(
        "-p",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="load plugin module MODULE; '-p no:NAME' blocks plugin NAME",
    )
    group.add_argument(
        "--plugins-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="load every *.py file in DIR as a plugin (repeatable)",
    )
    return parent


def _store_parent() -> argparse.ArgumentParser:
    from .store import DEFAULT_STORE

    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--store",
        type=Path,
        default=Path(os.environ.get("HARNESS_STORE", DEFAULT_STORE)),
        help="result database (default: %(default)s; env HARNESS_STORE)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    plugins, store = _plugin_parent(), _store_parent()
    parser = argparse.ArgumentParser(
        prog="harness",
        description="negbench: benchmark negative samplers, losses and models.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = sub.add_parser(
        "bench",
        parents=[plugins, store],
        help="run a suite or a matrix of task x model x loss x sampler x seed",
        description=(
            "Run the matrix. Without --suite or selections the 'quick' suite runs. "
            "With --suite, --task/--model/--loss/--sampler filter the suite; "
            "without, they define the matrix (a missing axis = all compatible)."
        ),
    )
    bench.add_argument(
        "--suite", action="append", default=[], help="suite name or TOML file"
    )
    for kind in ("task", "model", "loss", "sampler"):
        bench.add_argument(f"--{kind}", action="append", default=[], metavar="NAME")
    bench.add_argument("--seeds", type=int, help="number of seeds (0..N-1)")
    bench.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KIND.NAME.KEY=VALUE",
        help="component parameter, e.g. sampler.simans.a=0.5",
    )
    bench.add_argument(
        "--device", help="'cpu', 'cuda:0', a comma list, or 'auto' (default)"
    )
    bench.add_argument(
        "--jobs",
        type=int,
        help=(
            "runs in parallel worker processes (default: one per GPU, else 1; "
            "0 = inline, no isolation)"
        ),
    )
    bench.add_argument(
        "--threads",
        type=int,
        help="torch threads per run (default: the cores divided by --jobs)",
    )
    bench.add_argument(
        "--executor",
        default="local",
        help="'local' (default), 'ray' (needs negbench[ray]), 'slurm' (one Slurm "
        "job per run, needs negbench[slurm]), 'submitit-local' (the same through "
        "local subprocesses), or a plugin's",
    )
    bench.add_argument(
        "--address",
        help="with --executor ray: the cluster to join, e.g. 'auto' or "
        "'ray://head:10001' (default: start a local Ray)",
    )
    bench.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --executor slurm: a job parameter for submitit, e.g. "
        "partition=gpu, mem_gb=32, account=abc (repeatable)",
    )
    bench.add_argument(
        "--timeout", type=float, help="seconds per run before it is failed"
    )
    bench.add_argument(
        "--rerun", action="store_true", help="repeat runs already stored"
    )
    bench.add_argument(
        "--data-dir",
        action="append",
        default=[],
        help="folder with one sub-folder per dataset (also HARNESS_DATA_DIR)",
    )
    bench.add_argument(
        "--cache-dir",
        help="cache folder (default: HARNESS_CACHE_DIR or ~/.cache/negbench)",
    )
    bench.add_argument(
        "--offline", action="store_true", default=None, help="never download"
    )

    p_new = sub.add_parser(
        "new-plugin", help="write a minimal installable plugin package to edit"
    )
    p_new.add_argument("name", help="the component's name, e.g. soft-hard")
    p_new.add_argument(
        "--kind", default="sampler", help="sampler (default), loss, model or task"
    )
    p_new.add_argument(
        "--dir", type=Path, default=Path(), help="where to create the package folder"
    )

    p_validate = sub.add_parser(
        "validate",
        help="check a plugin: the component contracts and a smoke run per family",
    )
    p_validate.add_argument(
        "plugin", help="a .py file, an importable module or an installed distribution"
    )
    p_validate.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds a component's contract checks, and each smoke run, may take "
        "before they fail (default 600)",
    )

    p_plugins = sub.add_parser(
        "plugins", parents=[plugins], help="list plugins and what they contribute"
    )
    p_plugins.add_argument("--json", action="store_true")

    p_list = sub.add_parser(
        "list", parents=[plugins], help="list registered components or suites"
    )
    p_list.add_argument("what", choices=[*KIND_PLURALS, "suites"])

    p_results = sub.add_parser("results", parents=[store], help="print stored runs")
    p_results.add_argument("--json", action="store_true")
    p_results.add_argument(
        "--per-item", action="store_true", help="include per-item scores (JSON)"
    )
    for kind in ("task", "model", "loss", "sampler", "status"):
        p_results.add_argument(
            f"--{kind}", action="append", default=[], metavar="VALUE"
        )

    p_submit = sub.add_parser(
        "submit",
        parents=[plugins, store],
        help="pack stored ok runs into one bundle file to send to a leaderboard",
    )
    p_submit.add_argument(
        "--out",
        type=Path,
        default=Path("harness-results") / "bundle.json.gz",
        help="bundle file; gzip when it ends in .gz (default: %(default)s)",
    )
    for kind in ("task", "model", "loss", "sampler"):
        p_submit.add_argument(f"--{kind}", action="append", default=[], metavar="VALUE")

    p_board = sub.add_parser("leaderboard", help="build the leaderboard")
    board_sub = p_board.add_subparsers(dest="board_command", required=True)
    board_add = board_sub.add_parser(
        "add",
        parents=[store],
        help="validate a submitted bundle and add it to the store's submissions",
    )
    board_add.add_argument("bundle", type=Path, help="a file from `harness submit`")
    build = board_sub.add_parser(
        "build", parents=[plugins, store], help="render the leaderboard from the store"
    )
    build.add_argument(
        "--out", type=Path, default=DEFAULT_SITE, help="site folder (%(default)s)"
    )
    serve = board_sub.add_parser(
        "serve", help="preview a built leaderboard at http://127.0.0.1:PORT/"
    )
    serve.add_argument("--dir", type=Path, default=DEFAULT_SITE)
    serve.add_argument("--port", type=int, default=8000)
    return parser


def _version() -> str:
    from . import __version__

    return f"negbench {__version__}"


def _prepare_environment(cache_dir: str | None) -> None:
    """Process-wide settings every command (and every worker) inherits."""
    from .data import default_cache_dir

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    # ranx compiles its metrics with numba; a persistent cache pays that once.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache / "numba"))
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Third-party progress bars would tear through rich's live display.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")


def _host(args: argparse.Namespace) -> tuple[PluginHost, PluginOptions]:
    from .plugin import PluginOptions, make_plugin_host

    options = PluginOptions.from_cli(args.plugins, args.plugins_dir)
    return make_plugin_host(options), options


def cmd_bench(args: argparse.Namespace, console: Console) -> ExitCode:
    from . import forkserver  # light: it must start before torch is imported

    if args.jobs is not None and args.jobs < 0:
        raise UsageError("--jobs must be >= 0")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be >= 1")
    if args.address and args.executor != "ray":
        raise UsageError("--address needs --executor ray")
    if args.slurm and args.executor not in ("slurm", "submitit-local"):
        raise UsageError("--slurm needs --executor slurm (or submitit-local)")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError("--seeds must be >= 1")
    if args.timeout is not None and not args.timeout > 0:  # NaN too
        raise UsageError(f"--timeout {args.timeout}: must be a positive number")
    for folder in args.data_dir or ():
        # a typo would otherwise pass unseen: the datasets come from the next
        # place on the search path (HARNESS_DATA_DIR, the cache, a download)
        if not Path(folder).expanduser().is_dir():
            raise UsageError(f"--data-dir {folder}: no such folder")
    if args.executor == "local" and args.jobs != 0:
        # its imports overlap ours and the planning (~1 s of every bench)
        forkserver.start_early()
    try:
        return _bench(args, console)
    finally:
        forkserver.release()  # unused (nothing to run, an error): it exits now


def _bench(args: argparse.Namespace, console: Console) -> ExitCode:
    from .config import Selections
    from .session import BenchOptions, Session
    from .submitit_executor import parse_slurm_parameters

    slurm = parse_slurm_parameters(args.slurm)
    host, plugin_options = _host(args)
    options = BenchOptions(
        suites=args.suite,
        selections=Selections(
            task=args.task, model=args.model, loss=args.loss, sampler=args.sampler
        ),
        seeds=args.seeds,
        params=args.param,
        device=args.device,
        jobs=args.jobs,
        threads=args.threads,
        executor=args.executor,
        address=args.address,
        slurm=slurm,
        timeout=args.timeout,
        rerun=args.rerun,
        store=args.store,
        data_dirs=args.data_dir,
        cache_dir=args.cache_dir,
        offline=args.offline,
        plugin_options=plugin_options,
    )
    code = Session(host, options, console).run()
    _exit_when_done.set()  # the store is closed, the workers (and Ray) are gone
    return code


def cmd_new_plugin(args: argparse.Namespace, console: Console) -> ExitCode:
    from .scaffold import new_plugin

    folder = new_plugin(args.name, args.kind, args.dir)
    console.print(
        f"wrote {folder}: pip install -e {folder} && pytest {folder} && "
        f"harness validate {args.name}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return ExitCode.OK


def cmd_validate(args: argparse.Namespace, console: Console) -> ExitCode:
    from .validate import validate

    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout}: must be a positive number")
    return validate(args.plugin, console, timeout=args.timeout)


def cmd_plugins(args: argparse.Namespace, console: Console) -> ExitCode:
    host, _ = _host(args)
    infos = list(host.infos.values())
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=1))
        return ExitCode.OK
    table = Table(title=f"{len(infos)} plugins")
    for col in ("plugin", "origin", "from", "contributes", "hooks"):
        table.add_column(col, overflow="fold")
    for info in infos:
        components = "; ".join(
            f"{k}: {', '.join(v)}" for k, v in info.components.items()
        )
        hooks = ", ".join(h.removeprefix("harness_") for h in info.hooks)
        cells = (info.name, info.origin, info.detail, components, hooks)
        table.add_row(*map(escape, cells))  # a path may hold "[...]": not markup
    console.print(table)
    return ExitCode.OK


def cmd_list(args: argparse.Namespace, console: Console) -> ExitCode:
    if args.what == "suites":
        from .config import builtin_suites, load_suite

        for name in sorted(builtin_suites()):
            print(f"{name}\t{load_suite(name).description}")
        return ExitCode.OK
    host, _ = _host(args)
    for name in host.registries[KIND_PLURALS[args.what]].names():
        print(name)
    return ExitCode.OK


def cmd_results(args: argparse.Namespace, console: Console) -> ExitCode:
    from .store import ResultStore

    with ResultStore(args.store, create=False) as store:
        results = store.load(
            per_item=args.per_item,
            filters={
                k: getattr(args, k)
                for k in ("task", "model", "loss", "sampler", "status")
            },
        )
    if args.json:
        print(
            json.dumps([r.to_dict(per_item=args.per_item) for r in results], indent=1)
        )
        return ExitCode.OK
    table = Table(title=f"{len(results)} run(s) in {args.store}")
    for col in (
        "run_id",
        "task",
        "model",
        "loss",
        "sampler",
        "seed",
        "status",
        "main metric",
        "error",
    ):
        table.add_column(col)
    for r in results:
        score = (
            f"{r.main_metric}={r.main_score:.4f}" if r.main_score is not None else ""
        )
        cells = (
            r.run_id,
            r.spec.task,
            r.spec.model,
            r.spec.loss,
            r.spec.sampler,
            str(r.spec.seed),
            r.status,
            score,
            r.error or "",
        )
        table.add_row(*map(escape, cells))  # an error may hold "[...]": not markup
    console.print(table)
    return ExitCode.OK


def cmd_submit(args: argparse.Namespace, console: Console) -> ExitCode:
    from .bundle import component_plugins, make_bundle, write_bundle
    from .store import ResultStore

    filters = {k: getattr(args, k) for k in ("task", "model", "loss", "sampler")}
    with ResultStore(args.store, create=False) as store:
        results = store.load(per_item=True, filters={**filters, "status": ["ok"]})
        tasks = store.task_infos()  # as the benches that ran them recorded
    if not results:
        raise UsageError(
            f"no ok runs in {args.store} match the filters; nothing to submit"
        )
    host, _ = _host(args)
    registry = host.registries.tasks
    for name in {r.spec.task for r in results} - tasks.keys():
        if name in registry:  # a store from before benches recorded tasks
            tasks[name] = registry.get(name).cls.info(name)
    bundle = make_bundle(results, component_plugins(host, results), tasks)
    write_bundle(bundle, args.out)
    console.print(f"{len(results)} run(s) packed into {args.out}", markup=False)
    return ExitCode.OK


def cmd_leaderboard_add(args: argparse.Namespace, console: Console) -> ExitCode:
    from .bundle import add_bundle, submissions_dir_for

    notes: list[str] = []
    path, results = add_bundle(args.bundle, submissions_dir_for(args.store), notes)
    for note in notes:
        console.print(f"note: {note}", markup=False)
    if not notes:  # a note says the bundle was already there
        console.print(
            f"{len(results)} run(s) accepted from {args.bundle}; kept as {path}",
            markup=False,
        )
    return ExitCode.OK


def cmd_leaderboard(args: argparse.Namespace, console: Console) -> ExitCode:
    if args.board_command == "add":
        return cmd_leaderboard_add(args, console)
    if args.board_command == "serve":
        return _serve(args.dir, args.port, console)
    from .bundle import load_submissions, submissions_dir_for
    from .store import ResultStore

    results = []
    stored_tasks: dict[str, TaskInfo] = {}
    if args.store.exists():  # a maintainer's board may hold submissions only
        with ResultStore(args.store, create=False) as store:
            results = store.load()
            # paired tests need the main metric's per-item scores (STS: the
            # cosine/gold pairs its correlation is computed from)
            per_item = store.per_item_of_runs(extra_metrics=("cosine", "gold"))
            stored_tasks = store.task_infos()
        for result in results:
            result.per_item = per_item.get(result.run_id, {})
    # the runs live until the build ends: in the permanent generation, the
    # garbage collector stops walking their millions of objects on every
    # collection the ranking and rendering trigger (a 10,000-run build: ~1 s)
    gc.freeze()
    local = {r.run_id for r in results}
    submissions = submissions_dir_for(args.store)
    submitted_runs, submitted_tasks = load_submissions(submissions)
    submitted = [
        r
        for r in submitted_runs
        if r.run_id not in local  # a run in the store wins over a copy
    ]
    results += submitted
    if not results:
        raise UsageError(
            f"nothing to build: no runs in {args.store} and no bundles in "
            f"{submissions} (run `harness bench`, or `harness leaderboard add`)"
        )
    host, tasks = _board_host(
        args, {r.spec.task for r in results}, stored_tasks, submitted_tasks
    )
    board = host.hook.harness_rank(results=results, tasks=tasks)
    if board is None:
        raise UsageError(
            "no plugin ranked the results (is a harness_rank plugin blocked?)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    host.hook.harness_render(board=board, outdir=args.out, results=results)
    console.print(
        f"leaderboard of {len(results)} run(s) ({len(submitted)} submitted) "
        f"written to {args.out}; open {args.out / 'index.html'} or run "
        f"`harness leaderboard serve --dir {args.out}`",
        markup=False,
    )
    _exit_when_done.set()  # every file is written and closed; only stdio is left
    return ExitCode.OK


def _board_host(
    args: argparse.Namespace,
    needed: set[str],
    stored: dict[str, TaskInfo],
    submitted: dict[str, TaskInfo],
) -> tuple[PluginHost, dict[str, TaskInfo]]:
    """The plugin host of a leaderboard build and the infos of its tasks.

    When the store knows every task (benches record them), the built-in
    components are not loaded: they import torch, about a second of a build.
    Otherwise the task plugins answer for the tasks installed here, then the
    store, then the bundles (a bundle never overrides what this machine
    knows, such as a task's direction); a task known nowhere is inferred from
    its runs by the ranker.
    """
    from dataclasses import replace

    from .plugin import LEADERBOARD_PLUGINS, PluginOptions, make_plugin_host

    options = PluginOptions.from_cli(args.plugins, args.plugins_dir)
    if needed <= stored.keys():
        light = make_plugin_host(replace(options, builtins=LEADERBOARD_PLUGINS))
        return light, {name: stored[name] for name in needed}
    host = make_plugin_host(options)
    registry = host.registries.tasks
    known = {**submitted, **stored}
    infos = {name: known[name] for name in needed if name in known}
    for name in needed:
        if name in registry:
            infos[name] = registry.get(name).cls.info(name)
    return host, infos


def _serve(directory: Path, port: int, console: Console) -> ExitCode:
    import functools
    import http.server

    if not (directory / "index.html").is_file():
        raise UsageError(
            f"{directory} has no index.html; run `harness leaderboard build` first"
        )
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(directory)
    )
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        console.print(
            f"serving {directory} at http://127.0.0.1:{port}/ (Ctrl-C stops)",
            markup=False,
        )
        server.serve_forever()
    return ExitCode.OK


COMMANDS = {
    "bench": cmd_bench,
    "plugins": cmd_plugins,
    "validate": cmd_validate,
    "new-plugin": cmd_new_plugin,
    "list": cmd_list,
    "results": cmd_results,
    "submit": cmd_submit,
    "leaderboard": cmd_leaderboard,
}


#: set by a command that leaves nothing to clean up but stdio, so that the
#: console command can skip the interpreter's teardown of its modules: after
#: a bench, freeing torch's, faiss's and numba's objects takes ~0.4 s (5% of
#: a small bench), after a 10,000-run leaderboard build ~0.25 s.  ``atexit``
#: callbacks still run (a plugin's exit hook is honoured), and a plugin's
#: non-daemon thread still alive means a normal exit.  Only
#: :func:`console_main` acts on it; ``main()`` (tests, embedding) returns.
_exit_when_done = threading.Event()


def console_main() -> None:
    """The ``harness`` console command: :func:`main`, then exit."""
    code = main()
    if _exit_when_done.is_set() and not _other_threads_running():
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _other_threads_running() -> bool:
    """Whether a thread the interpreter's exit would wait for is alive."""
    main_thread = threading.main_thread()
    return any(
        t is not main_thread and not t.daemon and t.is_alive()
        for t in threading.enumerate()
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs (CI, pipes) get wide tables instead of rich's 80-column default.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    _prepare_environment(getattr(args, "cache_dir", None))
    try:
        return int(COMMANDS[args.command](args, console))
    except UsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except OSError as exc:
        if exc.filename is None:
            return _internal_error()
        # a path the user gave (--store, --out, --dir) that cannot be made,
        # written or read: a missing parent, no permission, a full disk
        print(f"ERROR: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return int(ExitCode.USAGE_ERROR)
    except Exception:
        return _internal_error()


def _internal_error() -> int:
    """Report an exception of the harness itself, with its traceback."""
    import traceback

    print("INTERNALERROR: the harness itself failed:", file=sys.stderr)
    traceback.print_exc()
    return int(ExitCode.INTERNAL_ERROR)


if __name__ == "__main__":
    console_main()
