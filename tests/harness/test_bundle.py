"""Bundles: `harness submit` packs, `harness leaderboard add` validates and keeps."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from harness.bundle import (
    BundleError,
    add_bundle,
    bundle_tasks,
    load_submissions,
    make_bundle,
    read_bundle,
    submissions_dir_for,
    write_bundle,
)
from harness.cli import main
from harness.errors import ExitCode, UsageError
from harness.store import ResultStore
from harness.types import (
    DatasetRef,
    Run,
    RunResult,
    RunSpec,
    TaskInfo,
    canonical_json,
)

PLUGINS = [
    {"name": "negbench_plugins.tasks.kge", "distribution": "negbench", "version": "1"}
]


def make_run(seed: int, *, status: str = "ok", sampler: str = "uniform") -> RunResult:
    """A kge result whose run_id is the one the harness would compute."""
    spec = RunSpec(
        task="nations",
        model="transe",
        loss="nssa",
        sampler=sampler,
        seed=seed,
        params={"task": {"epochs": 1}},
    )
    versions = {"task": "1", "model": "1", "loss": "1", "sampler": "1"}
    dataset = DatasetRef(name="nations", path="", sha256="cd" * 32)
    run = Run(
        spec=spec, family="kge", dataset=dataset, versions=versions, main_metric="mrr"
    )
    ok = status == "ok"
    return RunResult(
        run_id=run.run_id,
        spec=spec,
        family="kge",
        status=status,  # type: ignore[arg-type]
        main_metric="mrr",
        error=None if ok else "loss 'nssa' (plugin 'x'): NaN",
        metrics={"mrr": 0.25 + seed / 10, "hits@10": 0.875} if ok else {},
        per_item={"mrr": {"0:head": 0.5, "0:tail": 1 / 3}} if ok else {},
        diagnostics={"fn_rate_lower_bound": 0.125, "negatives_sampled": 64.0},
        timings={"train": 1.5, "total": 2.0},
        environment={"python": "3.11.7", "packages": {"torch": "2.13.0"}},
        dataset_sha256=dataset.sha256,
        versions=versions,
        started_at="2024-01-01T00:00:00+00:00",
        finished_at="2024-01-01T00:00:02+00:00",
    )


def as_dicts(results: list[RunResult]) -> list[dict[str, Any]]:
    return sorted(
        (r.to_dict(per_item=True) for r in results), key=lambda d: d["run_id"]
    )


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store with two ok runs and one failed run."""
    path = tmp_path / "store" / "results.db"
    with ResultStore(path) as store:
        for result in (make_run(0), make_run(1), make_run(2, status="failed")):
            store.save(result)
    return path


NATIONS = TaskInfo(name="nations", family="kge", main_metric="mrr")


def write(tmp_path: Path, name: str, runs: list[RunResult] | None = None) -> Path:
    tasks = {"nations": NATIONS}
    bundle = make_bundle(runs or [make_run(0), make_run(1)], PLUGINS, tasks)
    return write_bundle(bundle, tmp_path / name)


def load_plain(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def save_plain(path: Path, bundle: dict[str, Any]) -> None:
    path.write_text(json.dumps(bundle))


def rehash(bundle: dict[str, Any], *, content: bool = True) -> None:
    """What someone editing a bundle by hand would do to hide the edit."""

    def sha(value: Any) -> str:
        return hashlib.sha256(canonical_json(value).encode()).hexdigest()

    bundle["hashes"] = {run["run_id"]: sha(run) for run in bundle["runs"]}
    if content:
        bundle["content_sha256"] = sha(bundle["runs"])


def rejected(path: Path) -> str:
    with pytest.raises(BundleError) as info:
        read_bundle(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# -- packing and the round trip -------------------------------------------------------


def test_bundle_layout(tmp_path: Path) -> None:
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    assert bundle["bundle_schema"] == 3
    assert bundle["plugins"] == PLUGINS
    assert bundle["created_at"].endswith("+00:00")
    assert set(bundle["hashes"]) == {r["run_id"] for r in bundle["runs"]}
    assert len(bundle["content_sha256"]) == 64
    assert len(bundle["tasks_sha256"]) == 64
    assert bundle["runs"][0]["per_item"] == {"mrr": {"0:head": 0.5, "0:tail": 1 / 3}}
    assert bundle["tasks"] == {
        "nations": {
            "family": "kge",
            "main_metric": "mrr",
            "higher_is_better": True,
            "description": "",
        }
    }


def test_a_schema_1_bundle_is_still_read_without_task_infos(tmp_path: Path) -> None:
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    bundle["bundle_schema"] = 1  # as packed before bundles carried task infos
    del bundle["tasks_sha256"]
    tasks = bundle.pop("tasks")  # outside the runs' hashes: nothing else changes
    save_plain(path, bundle)
    old, results = read_bundle(path)
    assert bundle_tasks(old) == {} and len(results) == 2
    bundle["tasks"] = tasks  # a field schema 1 does not have
    save_plain(path, bundle)
    assert "unknown field 'tasks'" in rejected(path)


def test_a_schema_2_bundle_is_still_read_without_the_tasks_hash(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    bundle["bundle_schema"] = 2  # as packed before task infos were hashed
    del bundle["tasks_sha256"]
    save_plain(path, bundle)
    old, results = read_bundle(path)
    assert bundle_tasks(old)["nations"].main_metric == "mrr" and len(results) == 2
    bundle["tasks_sha256"] = "0" * 64  # a field schema 2 does not have
    save_plain(path, bundle)
    assert "unknown field 'tasks_sha256'" in rejected(path)


def test_an_edited_task_info_is_a_tasks_hash_mismatch(tmp_path: Path) -> None:
    """Turning a task's ranking round after packing is caught like an edited
    metric (the runs' own hashes do not cover the task infos)."""
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    bundle["tasks"]["nations"]["higher_is_better"] = False
    save_plain(path, bundle)
    assert rejected(path).endswith(
        "tasks_sha256 mismatch — task infos were added, removed or edited after packing"
    )


def _board_run(task: str, metric: str, sampler: str, seed: int, value: float):
    """A KGE run whose main metric is ``value`` on average over 30 items."""
    spec = RunSpec(task=task, model="transe", loss="nssa", sampler=sampler, seed=seed)
    versions = {"task": "1", "model": "1", "loss": "1", "sampler": "1"}
    dataset = DatasetRef(name=task, path="", sha256="ef" * 32)
    run = Run(
        spec=spec, family="kge", dataset=dataset, versions=versions, main_metric=metric
    )
    per_item = {f"{i}:tail": value + (i % 3) / 100 for i in range(30)}
    return RunResult(
        run_id=run.run_id,
        spec=spec,
        family="kge",
        status="ok",
        main_metric=metric,
        metrics={metric: sum(per_item.values()) / len(per_item)},
        per_item={metric: per_item},
        dataset_sha256=dataset.sha256,
        versions=versions,
    )


def _good_and_bad(task: str, metric: str, *, good: float, bad: float) -> list:
    """Three seeds each of samplers 'good' and 'bad' on ``task``."""
    return [
        _board_run(task, metric, sampler, seed, value)
        for sampler, value in (("good", good), ("bad", bad))
        for seed in range(3)
    ]


def _lower_is_better(task: str, metric: str) -> TaskInfo:
    return TaskInfo(name=task, family="kge", main_metric=metric, higher_is_better=False)


def _first_on_the_board(tmp_path: Path, bundle: dict[str, Any]) -> str:
    """The sampler ranked first by a board of ``bundle`` alone."""
    path = write_bundle(bundle, tmp_path / "submission.json")
    store = tmp_path / "board" / "results.db"
    assert main(["leaderboard", "add", str(path), "--store", str(store)]) == 0
    site = tmp_path / "site"
    build = ["leaderboard", "build", "--store", str(store), "--out", str(site)]
    assert main(build) == 0
    board = json.loads((site / "leaderboard.json").read_text())
    sampler: str = next(row for row in board["rows"] if row["rank"] == 1)["sampler"]
    return sampler


@pytest.mark.parametrize("carries_tasks", [True, False])
def test_a_board_ranks_an_uninstalled_task_as_its_bundle_says(
    tmp_path: Path, carries_tasks: bool
) -> None:
    """'my-kge' is installed on the submitter's machine only, and its mean
    rank is better when lower: the bundle says so, and the maintainer's
    board ranks the lower mean rank first.  A bundle without task infos
    leaves the board to guess (higher is better), the wrong way round."""
    runs = _good_and_bad("my-kge", "mr", good=5.0, bad=20.0)
    info = _lower_is_better("my-kge", "mr")
    bundle = make_bundle(runs, PLUGINS, {"my-kge": info} if carries_tasks else {})
    assert _first_on_the_board(tmp_path, bundle) == ("good" if carries_tasks else "bad")


def test_a_bundle_cannot_turn_an_installed_tasks_ranking_round(
    tmp_path: Path,
) -> None:
    """A bundle that says Nations' MRR is better when lower is overruled by
    the task plugin installed where the board is built."""
    runs = _good_and_bad("nations", "mrr", good=0.8, bad=0.4)
    lie = _lower_is_better("nations", "mrr")
    bundle = make_bundle(runs, PLUGINS, {"nations": lie})
    assert _first_on_the_board(tmp_path, bundle) == "good"


@pytest.mark.parametrize("name", ["b.json", "b.json.gz"])
def test_read_returns_the_packed_runs(tmp_path: Path, name: str) -> None:
    runs = [make_run(0), make_run(1), make_run(2, status="failed")]
    path = write(tmp_path, name, runs)
    assert path.read_bytes().startswith(b"\x1f\x8b") == name.endswith(".gz")
    _, results = read_bundle(path)
    assert as_dicts(results) == as_dicts(runs)


@pytest.mark.parametrize("name", ["my-method.json", "my-method.json.gz"])
def test_submit_add_load_round_trip(
    tmp_path: Path, store_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / name
    assert main(["submit", "--store", str(store_path), "--out", str(out)]) == 0
    assert f"2 run(s) packed into {out}" in capsys.readouterr().out
    bundle, _ = read_bundle(out)
    assert "negbench" in {p["distribution"] for p in bundle["plugins"]}
    assert {p["name"] for p in bundle["plugins"]} >= {"negbench_plugins.tasks.kge"}

    board = tmp_path / "board" / "results.db"
    assert main(["leaderboard", "add", str(out), "--store", str(board)]) == 0
    assert "2 run(s) accepted" in capsys.readouterr().out
    kept = list(submissions_dir_for(board).iterdir())
    assert [p.name for p in kept] == [
        bundle["content_sha256"][:16] + name.removeprefix("my-method")
    ]
    assert kept[0].read_bytes() == out.read_bytes()  # the file as received
    with ResultStore(store_path) as store:
        ok_runs = store.load(per_item=True, filters={"status": ["ok"]})
    runs, tasks = load_submissions(submissions_dir_for(board))
    assert as_dicts(runs) == as_dicts(ok_runs)
    # the store recorded no task info: the installed task plugin gave it
    assert tasks["nations"].main_metric == "mrr" and tasks["nations"].family == "kge"


def test_submit_filters_like_results(tmp_path: Path, store_path: Path) -> None:
    with ResultStore(store_path) as store:
        store.save(make_run(0, sampler="bernoulli"))
    out = tmp_path / "b.json"
    argv = ["submit", "--store", str(store_path), "--out", str(out)]
    assert main([*argv, "--sampler", "bernoulli"]) == 0
    _, results = read_bundle(out)
    assert [r.spec.sampler for r in results] == ["bernoulli"]


def test_submit_without_matching_runs_is_a_usage_error(
    tmp_path: Path, store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.json"
    argv = ["submit", "--store", str(store_path), "--out", str(out), "--task", "umls"]
    assert main(argv) == ExitCode.USAGE_ERROR
    assert "ERROR: no ok runs" in capsys.readouterr().err
    assert not out.exists()


def test_submit_refuses_runs_of_unloaded_plugins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = tmp_path / "results.db", tmp_path / "b.json"
    with ResultStore(path) as store:
        store.save(make_run(0, sampler="not-a-sampler"))
    argv = ["submit", "--store", str(path), "--out", str(out)]
    assert main(argv) == ExitCode.USAGE_ERROR
    assert (
        "no loaded plugin provides sampler 'not-a-sampler'" in capsys.readouterr().err
    )
    assert not out.exists()


# -- validation -----------------------------------------------------------------------


def test_edited_metric_is_a_content_hash_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    bundle["runs"][0]["metrics"]["hits@10"] = 0.99
    save_plain(path, bundle)
    run_id = bundle["runs"][0]["run_id"]
    assert rejected(path).endswith(
        f"run {run_id} (nations · transe · nssa · uniform seed 0): content hash "
        "mismatch — its metrics/diagnostics were edited after packing"
    )


def test_edited_config_is_a_run_id_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    bundle["runs"][1]["params"]["task"]["epochs"] = 100
    rehash(bundle)  # even with every hash recomputed
    save_plain(path, bundle)
    assert "run_id does not match its config" in rejected(path)


def test_rehashed_runs_still_fail_the_content_hash(tmp_path: Path) -> None:
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    bundle["runs"][0]["diagnostics"]["fn_rate_lower_bound"] = 0.0
    rehash(bundle, content=False)
    save_plain(path, bundle)
    assert "content_sha256 mismatch" in rejected(path)


def test_dropped_run_fails_the_content_hash(tmp_path: Path) -> None:
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    dropped = bundle["runs"].pop()
    del bundle["hashes"][dropped["run_id"]]
    save_plain(path, bundle)
    assert "content_sha256 mismatch" in rejected(path)


def _set(bundle: dict[str, Any], where: str, value: Any) -> None:
    """Set (or, with ``...``, delete) ``runs.0.metrics``-style paths."""
    *parents, last = where.split(".")
    target: Any = bundle
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    index: Any = int(last) if isinstance(target, list) else last
    if value is ...:
        del target[index]
    else:
        target[index] = value


@pytest.mark.parametrize(
    ("where", "value", "reason"),
    [
        ("bundle_schema", ..., "missing field 'bundle_schema'"),
        ("bundle_schema", 4, "unknown bundle_schema 4 (this harness reads 1, 2 and 3)"),
        ("tasks_sha256", ..., "missing field 'tasks_sha256'"),
        ("tasks", ..., "missing field 'tasks'"),
        ("runs", {}, "field 'runs' must be a list, got dict"),
        ("content_sha256", ..., "missing field 'content_sha256'"),
        ("plugins.0.distribution", 3, "plugins[0]: field 'distribution' must be"),
        ("runs.0.metrics", ..., "run #0 ("),
        ("runs.0.metrics", ..., "missing field 'metrics'"),
        ("runs.1.seed", "1", "run #1 ("),
        ("runs.1.seed", "1", "field 'seed' must be an integer, got str"),
        ("runs.0.metrics.mrr", "high", "field 'metrics' must be an object of numbers"),
        ("runs.0.per_item.mrr", [1.0], "field 'per_item' must be an object of objects"),
        ("runs.0.surprise", 1, "unknown field 'surprise'"),
        ("runs.0.status", "skipped", "status 'skipped' is not 'ok' or 'failed'"),
        ("runs.0.metrics.hits@10", float("nan"), "metric 'hits@10' is nan"),
        ("runs.0.per_item.mrr.0:head", float("inf"), "of item '0:head' is inf"),
        ("runs.0.main_score", 0.9, "main_score disagrees with its metrics"),
        ("runs.0", [], "runs[0] must be an object"),
        ("tasks.nations.higher_is_better", "no", "field 'higher_is_better' must be"),
        ("tasks.nations.surprise", 1, "tasks['nations']: unknown field 'surprise'"),
        ("tasks.nations.main_metric", "hits@10", "main_metric 'hits@10' disagrees"),
        # a family names a page of the site: never a path
        ("runs.0.family", "../../etc", "family '../../etc' is not one of"),
    ],
)
def test_schema_violations_name_the_field(
    tmp_path: Path, where: str, value: Any, reason: str
) -> None:
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    _set(bundle, where, value)
    save_plain(path, bundle)
    assert reason in rejected(path)


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("{not json")
    assert "not JSON" in rejected(path)
    path.write_text("[1, 2]")
    assert "not a bundle" in rejected(path)


def test_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "b.json.gz"
    path.write_text("{}")
    assert "not a gzip file" in rejected(path)
    path.write_bytes(gzip.compress(b"{}")[:12])
    assert "damaged gzip data" in rejected(path)


def test_rejected_bundle_is_one_error_line_on_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "b.json")
    bundle = load_plain(path)
    bundle["runs"][0]["metrics"]["mrr"] = 1.0
    save_plain(path, bundle)
    board = tmp_path / "board" / "results.db"
    assert main(["leaderboard", "add", str(path), "--store", str(board)]) == 4
    err = capsys.readouterr().err
    assert err.startswith(f"ERROR: bundle {path}: run ") and err.count("\n") == 1
    assert not submissions_dir_for(board).exists()


def test_bundle_error_is_a_usage_error() -> None:
    assert issubclass(BundleError, UsageError)


# -- the submissions folder -----------------------------------------------------------


def test_adding_twice_is_a_no_op_with_a_note(tmp_path: Path) -> None:
    path = write(tmp_path, "b.json.gz")
    folder = tmp_path / "submissions"
    first, runs = add_bundle(path, folder)
    notes: list[str] = []
    second, again = add_bundle(path, folder, notes)
    assert first == second and as_dicts(runs) == as_dicts(again)
    assert list(folder.iterdir()) == [first]
    assert notes and "already added" in notes[0]


def test_same_runs_packed_again_are_the_same_submission(tmp_path: Path) -> None:
    folder = tmp_path / "submissions"
    first, _ = add_bundle(write(tmp_path, "a.json"), folder)
    second, _ = add_bundle(write(tmp_path, "b.json.gz"), folder)
    assert first == second and len(list(folder.iterdir())) == 1


def test_load_submissions_keeps_each_run_once(tmp_path: Path) -> None:
    folder = tmp_path / "submissions"
    add_bundle(write(tmp_path, "a.json", [make_run(0), make_run(1)]), folder)
    add_bundle(write(tmp_path, "b.json", [make_run(1), make_run(3)]), folder)
    loaded, _ = load_submissions(folder)
    assert sorted(r.spec.seed for r in loaded) == [0, 1, 3]
    assert all(r.per_item for r in loaded)


def test_load_submissions_revalidates(tmp_path: Path) -> None:
    folder = tmp_path / "submissions"
    kept, _ = add_bundle(write(tmp_path, "a.json"), folder)
    bundle = load_plain(kept)
    bundle["runs"][0]["metrics"]["hits@10"] = 1.0
    save_plain(kept, bundle)
    with pytest.raises(BundleError, match="content hash mismatch"):
        load_submissions(folder)


def test_load_submissions_without_a_folder(tmp_path: Path) -> None:
    assert load_submissions(tmp_path / "nothing") == ([], {})


def test_submissions_live_beside_the_store(tmp_path: Path) -> None:
    store = tmp_path / "harness-results" / "results.db"
    assert submissions_dir_for(store) == tmp_path / "harness-results" / "submissions"


def test_submit_and_add_leave_the_store_alone(tmp_path: Path, store_path: Path) -> None:
    def snapshot() -> list[dict[str, Any]]:
        with ResultStore(store_path) as store:
            return as_dicts(store.load(per_item=True))

    before = snapshot()
    out = tmp_path / "b.json.gz"
    assert main(["submit", "--store", str(store_path), "--out", str(out)]) == 0
    assert main(["leaderboard", "add", str(out), "--store", str(store_path)]) == 0
    assert snapshot() == before
    assert out.exists()  # the received bundle is copied, never moved
    assert len(list(submissions_dir_for(store_path).iterdir())) == 1


def test_real_bench_round_trip(run_harness, data_dir: Path, tmp_path: Path) -> None:
    """A real run's config, versions and dataset fingerprint survive the trip."""
    bench = run_harness(
        "bench",
        "--task",
        "nations",
        "--model",
        "transe",
        "--loss",
        "nssa",
        "--sampler",
        "uniform",
        "--param",
        "task.nations.epochs=1",
        env={"HARNESS_DATA_DIR": str(data_dir)},
    )
    assert bench.returncode == 0, bench.stdout + bench.stderr
    submit = run_harness("submit", "--out", "my-method.json.gz")
    assert submit.returncode == 0, submit.stderr
    add = run_harness("leaderboard", "add", "my-method.json.gz")
    assert add.returncode == 0, add.stderr
    assert "1 run(s) accepted" in add.stdout
    (result,), tasks = load_submissions(tmp_path / "harness-results" / "submissions")
    assert result.spec.task == "nations" and result.per_item["mrr"]
    # the bench recorded its task's info, and the bundle carries it
    assert tasks["nations"].description and tasks["nations"].main_metric == "mrr"
    # a maintainer's board of submissions only: add to an empty place, build
    board = ["--store", "board/results.db"]
    add = run_harness("leaderboard", "add", "my-method.json.gz", *board)
    assert add.returncode == 0, add.stderr
    build = run_harness("leaderboard", "build", *board, "--out", "site")
    assert build.returncode == 0, build.stderr
    assert "(1 submitted)" in build.stdout
    data = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert list(data["runs"]) == [result.run_id]
    assert (tmp_path / "site" / "run" / f"{result.run_id}.html").is_file()
    assert not (tmp_path / "board" / "results.db").exists()  # nothing invented
