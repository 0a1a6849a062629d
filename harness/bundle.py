"""Result bundles: how runs travel from a submitter's store to the leaderboard.

A bundle is one JSON document (gzip-compressed when its file name ends in
``.gz``) holding every selected run with its per-item scores, environment,
versions and timings, plus the plugins that provided the runs' components::

    {"bundle_schema": 3, "created_at": ..., "negbench_version": ...,
     "plugins": [{"name", "distribution", "version"}, ...],
     "tasks": {name: {"family", "main_metric", "higher_is_better",
                      "description"}, ...},
     "runs": [RunResult.to_dict(per_item=True), ...],
     "hashes": {run_id: sha256 of the run's canonical JSON},
     "content_sha256": sha256 of the canonical JSON of "runs",
     "tasks_sha256": sha256 of the canonical JSON of "tasks"}

The hashes are integrity checks, not signatures: they catch a bundle whose
numbers were edited by hand (or damaged) after packing, and the recomputed
``run_id`` catches an edited config, because the id is a hash of the config,
the dataset fingerprint and the component versions.  Someone determined to
forge results can recompute everything; the maintainer's review of a
submission and a re-run of suspicious rows remain the defence against that.

``tasks`` (new in schema 2; schema-1 bundles, still read, lack it) tells a
leaderboard how to rank a task that is not installed where it is built: a
third-party task whose main metric is lower-is-better would otherwise be
ranked as higher-is-better.  Each entry must agree with its runs' family and
main metric.  Schema 3 adds ``tasks_sha256``: a task info edited after
packing (``higher_is_better`` turned round, say) is caught like an edited
metric.  Schema-2 bundles, without it, are still read.

Accepted bundles are copied, byte for byte, into a ``submissions`` folder
next to the result store and named by their content hash, so adding the same
runs twice changes nothing.  The result store itself is never touched: the
store holds what *this* machine ran, submissions hold what others sent.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .types import (
    FAMILIES,
    NONE,
    SCHEMA_VERSION,
    DatasetRef,
    Run,
    RunResult,
    TaskInfo,
    canonical_json,
)

if TYPE_CHECKING:
    from .plugin import PluginHost

__all__ = [
    "BUNDLE_SCHEMA",
    "BundleError",
    "add_bundle",
    "bundle_tasks",
    "component_plugins",
    "load_submissions",
    "make_bundle",
    "read_bundle",
    "submissions_dir_for",
    "write_bundle",
]

#: version of the bundle layout this harness writes (3: ``tasks`` and their hash)
BUNDLE_SCHEMA = 3

#: the layouts it reads (schema 1: without ``tasks``; 2: without their hash)
_READABLE_SCHEMAS = (1, 2, 3)

_GZIP_MAGIC = b"\x1f\x8b"


class BundleError(UsageError):
    """A bundle file cannot be accepted; the message names the file and why.

    A :class:`UsageError`, so the CLI prints it as one ``ERROR:`` line and
    exits with the usage-error code: a bad bundle is the sender's mistake,
    not a bug in the harness.
    """


# -- packing --------------------------------------------------------------------------


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def make_bundle(
    results: Sequence[RunResult],
    plugins: Sequence[Mapping[str, str | None]],
    tasks: Mapping[str, TaskInfo] | None = None,
) -> dict[str, Any]:
    """Pack ``results`` (with their per-item scores) into a bundle document.

    The packed bundle is validated exactly as a receiver will validate it, so
    ``harness submit`` fails on the sender's machine rather than on the
    maintainer's.

    :param plugins: provenance of the runs' components, as returned by
        :func:`component_plugins`.
    :param tasks: what the leaderboard shows of each task, by name; those of
        the runs' tasks are packed.
    """
    from . import __version__

    # Through canonical JSON once, so the dict holds only JSON values and its
    # hashes are those a reader computes from the file.
    runs = json.loads(canonical_json([r.to_dict(per_item=True) for r in results]))
    task_records = {
        name: _task_record(info)
        for name, info in sorted((tasks or {}).items())
        if name in {r.spec.task for r in results}
    }
    bundle = {
        "bundle_schema": BUNDLE_SCHEMA,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "negbench_version": __version__,
        "plugins": [dict(p) for p in plugins],
        "tasks": task_records,
        "runs": runs,
        "hashes": {run["run_id"]: _sha256(run) for run in runs},
        "content_sha256": _sha256(runs),
        "tasks_sha256": _sha256(task_records),
    }
    _validate(bundle, "new bundle")
    return bundle


def _task_record(info: TaskInfo) -> dict[str, Any]:
    return {
        "family": info.family,
        "main_metric": info.main_metric,
        "higher_is_better": info.higher_is_better,
        "description": info.description,
    }


def bundle_tasks(bundle: Mapping[str, Any]) -> dict[str, TaskInfo]:
    """The task infos a (validated) bundle carries, by task name."""
    return {
        name: TaskInfo(name=name, **record)
        for name, record in bundle.get("tasks", {}).items()
    }


def write_bundle(bundle: Mapping[str, Any], path: Path) -> Path:
    """Write ``bundle`` to ``path`` (gzip when it ends in ``.gz``), atomically."""
    data = json.dumps(bundle, indent=1, sort_keys=True).encode()
    if path.name.endswith(".gz"):
        # mtime=0: the same bundle always gives the same bytes
        data = gzip.compress(data, mtime=0)
    _write_atomically(path, lambda out: out.write(data))
    return path


def _write_atomically(path: Path, write: Callable[[Any], object]) -> None:
    """Write through a temporary file and rename, so no half file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # open() rather than mkstemp: the file gets the umask's permissions, not 0600
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            write(out)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def component_plugins(
    host: PluginHost, results: Iterable[RunResult]
) -> list[dict[str, str | None]]:
    """The plugins that provided the components used by ``results``.

    The registries record which plugin registered each component (what
    ``harness plugins`` prints); the plugin's module then names the installed
    distribution it came from.  A local ``--plugins-dir`` file belongs to no
    distribution: its ``distribution`` and ``version`` are ``None``.
    """
    names: set[str] = set()
    for result in results:
        for kind, component in result.spec.components.items():
            if component == NONE:
                continue
            if component not in host.registries[kind]:
                raise UsageError(
                    f"{_describe(result)}: no loaded plugin provides {kind} "
                    f"'{component}'; load it with -p MODULE or --plugins-dir DIR"
                )
            names.add(host.registries[kind].get(component).plugin)
    return [_provenance(name, host.pm.get_plugin(name)) for name in sorted(names)]


def _provenance(name: str, plugin: object) -> dict[str, str | None]:
    module = (
        plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
    )
    dists = _distributions().get(module.partition(".")[0], [])
    if not dists:
        return {"name": name, "distribution": None, "version": None}
    return {
        "name": name,
        "distribution": dists[0],
        "version": importlib.metadata.version(dists[0]),
    }


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    """Top-level import name -> distributions (scans site-packages once)."""
    return importlib.metadata.packages_distributions()


# -- reading and validating -----------------------------------------------------------


def read_bundle(path: Path) -> tuple[dict[str, Any], list[RunResult]]:
    """Read and fully validate the bundle at ``path``.

    :returns: the bundle document and its runs (with per-item scores).
    :raises BundleError: naming the file, and the run and field at fault.
    """
    bundle = _parse(path, _read_bytes(path))
    return bundle, _validate(bundle, f"bundle {path}")


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"bundle {path}: cannot read it ({exc.strerror})") from None
    if raw.startswith(_GZIP_MAGIC):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise BundleError(f"bundle {path}: damaged gzip data ({exc})") from None
    if path.name.endswith(".gz"):
        raise BundleError(f"bundle {path}: not a gzip file (the name ends in .gz)")
    return raw


def _parse(path: Path, data: bytes) -> dict[str, Any]:
    try:
        bundle = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"bundle {path}: not JSON ({exc})") from None
    if not isinstance(bundle, dict):
        raise BundleError(
            f"bundle {path}: not a bundle (a JSON {type(bundle).__name__}, "
            "not an object)"
        )
    return bundle


@dataclass(frozen=True, slots=True)
class _Type:
    """A hand-written schema type: a test and how to name it in messages."""

    name: str
    test: Callable[[Any], bool]

    def __call__(self, value: Any) -> bool:
        return self.test(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_mapping_of(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: (
        isinstance(value, dict)
        and all(isinstance(k, str) and test(v) for k, v in value.items())
    )


STR = _Type("a string", lambda v: isinstance(v, str))
OPT_STR = _Type("a string or null", lambda v: v is None or isinstance(v, str))
INT = _Type("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
OPT_NUMBER = _Type("a number or null", lambda v: v is None or _is_number(v))
OBJECT = _Type("an object", lambda v: isinstance(v, dict))
LIST = _Type("a list", lambda v: isinstance(v, list))
NUMBERS = _Type("an object of numbers", _is_mapping_of(_is_number))
STRINGS = _Type("an object of strings", _is_mapping_of(lambda v: isinstance(v, str)))
OBJECTS = _Type("an object of objects", _is_mapping_of(lambda v: isinstance(v, dict)))
NESTED_NUMBERS = _Type(
    "an object of objects of numbers", _is_mapping_of(_is_mapping_of(_is_number))
)

_BUNDLE_FIELDS: dict[str, _Type] = {
    "bundle_schema": INT,
    "created_at": STR,
    "negbench_version": STR,
    "plugins": LIST,
    "runs": LIST,
    "hashes": STRINGS,
    "content_sha256": STR,
}
#: the top-level fields of each readable schema: 2 adds ``tasks``, 3 their hash
_SCHEMA_FIELDS: dict[int, dict[str, _Type]] = {1: _BUNDLE_FIELDS}
_SCHEMA_FIELDS[2] = {**_SCHEMA_FIELDS[1], "tasks": OBJECTS}
_SCHEMA_FIELDS[3] = {**_SCHEMA_FIELDS[2], "tasks_sha256": STR}
_TASK_FIELDS: dict[str, _Type] = {
    "family": STR,
    "main_metric": STR,
    "higher_is_better": _Type("true or false", lambda v: isinstance(v, bool)),
    "description": STR,
}
_PLUGIN_FIELDS: dict[str, _Type] = {
    "name": STR,
    "distribution": OPT_STR,
    "version": OPT_STR,
}
#: the keys of ``RunResult.to_dict(per_item=True)``
_RUN_FIELDS: dict[str, _Type] = {
    "schema_version": INT,
    "run_id": STR,
    "task": STR,
    "family": STR,
    "model": STR,
    "loss": STR,
    "sampler": STR,
    "seed": INT,
    "params": OBJECTS,
    "status": STR,
    "error": OPT_STR,
    "metrics": NUMBERS,
    "main_metric": STR,
    "main_score": OPT_NUMBER,
    "diagnostics": NUMBERS,
    "timings": NUMBERS,
    "environment": OBJECT,
    "dataset_sha256": STR,
    "versions": STRINGS,
    "started_at": STR,
    "finished_at": STR,
    "per_item": NESTED_NUMBERS,
}


def _check_fields(
    record: Mapping[str, Any], fields: Mapping[str, _Type], where: str
) -> None:
    """Every field present with its type, and no field the schema lacks."""
    for key, kind in fields.items():
        if key not in record:
            raise BundleError(f"{where}: missing field '{key}'")
        if not kind(record[key]):
            got = type(record[key]).__name__
            raise BundleError(f"{where}: field '{key}' must be {kind.name}, got {got}")
    unknown = sorted(set(record) - set(fields))
    if unknown:
        raise BundleError(f"{where}: unknown field '{unknown[0]}'")


def _validate(bundle: Mapping[str, Any], source: str) -> list[RunResult]:
    """Check a parsed bundle top to bottom; returns its runs."""
    if "bundle_schema" not in bundle:
        raise BundleError(f"{source}: missing field 'bundle_schema' (not a bundle?)")
    schema = bundle["bundle_schema"]
    if schema not in _READABLE_SCHEMAS or isinstance(schema, bool):
        *first, last = map(str, _READABLE_SCHEMAS)
        readable = f"{', '.join(first)} and {last}"
        raise BundleError(
            f"{source}: unknown bundle_schema {schema!r} (this harness reads "
            f"{readable}); upgrade negbench"
        )
    _check_fields(bundle, _SCHEMA_FIELDS[schema], source)
    for index, plugin in enumerate(bundle["plugins"]):
        where = f"{source}: plugins[{index}]"
        if not isinstance(plugin, dict):
            raise BundleError(f"{where}: must be an object")
        _check_fields(plugin, _PLUGIN_FIELDS, where)
    for name, task in bundle.get("tasks", {}).items():
        _check_fields(task, _TASK_FIELDS, f"{source}: tasks[{name!r}]")
    results = [
        _validate_run(run, index, bundle["hashes"], source)
        for index, run in enumerate(bundle["runs"])
    ]
    _check_run_set(results, bundle["hashes"], source)
    _check_tasks_match_runs(bundle.get("tasks", {}), results, source)
    if _sha256(bundle["runs"]) != bundle["content_sha256"]:
        raise BundleError(
            f"{source}: content_sha256 mismatch — runs were added, removed, "
            "reordered or edited after packing"
        )
    if "tasks_sha256" in bundle and _sha256(bundle["tasks"]) != bundle["tasks_sha256"]:
        raise BundleError(
            f"{source}: tasks_sha256 mismatch — task infos were added, removed or "
            "edited after packing"
        )
    return results


def _validate_run(
    run: Any, index: int, hashes: Mapping[str, str], source: str
) -> RunResult:
    """Schema, values, identity, then content hash of one packed run.

    The run_id is checked before the content hash: an edited config breaks
    both, and "the config was edited" is the more useful thing to say.
    """
    if not isinstance(run, dict):
        raise BundleError(f"{source}: runs[{index}] must be an object")
    run_id = run.get("run_id")
    label = f"{source}: run #{index}" + (
        f" ({run_id})" if isinstance(run_id, str) else ""
    )
    _check_fields(run, _RUN_FIELDS, label)
    if run["schema_version"] != SCHEMA_VERSION:
        raise BundleError(
            f"{label}: result schema_version {run['schema_version']} is not "
            f"{SCHEMA_VERSION}"
        )
    if run["status"] not in ("ok", "failed"):
        raise BundleError(f"{label}: status {run['status']!r} is not 'ok' or 'failed'")
    result = RunResult.from_dict(run)
    where = f"{source}: {_describe(result)}"
    _check_finite(result, where)
    if run["main_score"] != result.main_score:
        raise BundleError(f"{where}: main_score disagrees with its metrics")
    expected = _recomputed_id(result)
    if expected != result.run_id:
        raise BundleError(
            f"{where}: run_id does not match its config, dataset_sha256 and "
            f"versions (recomputed {expected}) — its config was edited after the run"
        )
    if hashes.get(result.run_id) != _sha256(run):
        raise BundleError(
            f"{where}: content hash mismatch — its metrics/diagnostics were edited "
            "after packing"
        )
    return result


def _check_tasks_match_runs(
    tasks: Mapping[str, Mapping[str, Any]], results: Sequence[RunResult], source: str
) -> None:
    """A task's info names the family and main metric its runs were scored by."""
    for result in results:
        task = tasks.get(result.spec.task)
        if task is None:
            continue
        for key, value in (
            ("family", result.family),
            ("main_metric", result.main_metric),
        ):
            if task[key] != value:
                raise BundleError(
                    f"{source}: tasks[{result.spec.task!r}]: {key} {task[key]!r} "
                    f"disagrees with {_describe(result)} ({value!r})"
                )


def _describe(result: RunResult) -> str:
    spec = result.spec
    return (
        f"run {result.run_id} ({spec.task} · {spec.model} · {spec.loss} · "
        f"{spec.sampler} seed {spec.seed})"
    )


def _check_finite(result: RunResult, where: str) -> None:
    """Metrics and per-item scores are finite, as the runner guarantees; the
    family is one negbench knows (the site names a page after it)."""
    if result.family not in FAMILIES:
        raise BundleError(
            f"{where}: family {result.family!r} is not one of {', '.join(FAMILIES)}"
        )
    for name, value in result.metrics.items():
        if not math.isfinite(value):
            raise BundleError(f"{where}: metric '{name}' is {value}, not finite")
    for name, values in result.per_item.items():
        for item, value in values.items():
            if not math.isfinite(value):
                raise BundleError(
                    f"{where}: per-item '{name}' of item {item!r} is {value}, "
                    "not finite"
                )


def _recomputed_id(result: RunResult) -> str:
    """The id :class:`Run` gives this config, dataset and component versions."""
    dataset = DatasetRef(name=result.spec.task, path="", sha256=result.dataset_sha256)
    return Run(
        spec=result.spec,
        family=result.family,
        dataset=dataset,
        versions=result.versions,
        main_metric=result.main_metric,
    ).run_id


def _check_run_set(
    results: Sequence[RunResult], hashes: Mapping[str, str], source: str
) -> None:
    """Each run once, and a hash for exactly the runs the bundle holds."""
    seen: set[str] = set()
    for result in results:
        if result.run_id in seen:
            raise BundleError(f"{source}: {_describe(result)} appears twice")
        seen.add(result.run_id)
    extra = sorted(set(hashes) - seen)
    if extra:
        raise BundleError(f"{source}: hashes lists run {extra[0]}, which is not in it")


# -- the submissions folder -----------------------------------------------------------


def submissions_dir_for(store_path: Path) -> Path:
    """Where accepted bundles live: ``submissions/`` beside the result store."""
    return Path(store_path).parent / "submissions"


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def add_bundle(
    path: Path, submissions_dir: Path, notes: list[str] | None = None
) -> tuple[Path, list[RunResult]]:
    """Validate the bundle at ``path`` and keep a copy in ``submissions_dir``.

    The copy is the file as received (so its hashes can be re-checked later),
    named ``<content_sha256[:16]>.json`` or ``.json.gz``.  Adding a bundle
    whose runs are already there is a no-op; a note saying so is appended to
    ``notes``.  Nothing is ever modified or deleted.

    :returns: the copy's path and the bundle's runs.
    """
    bundle, results = read_bundle(path)
    stem = bundle["content_sha256"][:16]
    for existing in (
        submissions_dir / f"{stem}.json",
        submissions_dir / f"{stem}.json.gz",
    ):
        if existing.exists():
            if notes is not None:
                notes.append(
                    f"bundle {path} was already added as {existing}; unchanged"
                )
            return existing, results
    target = submissions_dir / (f"{stem}.json.gz" if _is_gzip(path) else f"{stem}.json")
    with path.open("rb") as source:
        _write_atomically(target, lambda out: shutil.copyfileobj(source, out))
    return target, results


def load_submissions(
    submissions_dir: Path,
) -> tuple[list[RunResult], dict[str, TaskInfo]]:
    """Every accepted run (with per-item scores), each bundle re-validated,
    and the task infos the bundles carry.

    A run_id found in several bundles is the same run (same config, data and
    code), so it is kept once: from the first bundle in file-name order; a
    task's info likewise comes from the first bundle that has it.
    """
    runs: dict[str, RunResult] = {}
    tasks: dict[str, TaskInfo] = {}
    if not submissions_dir.is_dir():
        return [], tasks
    for path in sorted(submissions_dir.iterdir()):
        if path.is_file() and path.name.endswith((".json", ".json.gz")):
            bundle, results = read_bundle(path)
            for result in results:
                runs.setdefault(result.run_id, result)
            for name, info in bundle_tasks(bundle).items():
                tasks.setdefault(name, info)
    return list(runs.values()), tasks
