"""ResultStore (SQLite, WAL, atomic saves) and its resume/persist hookimpls."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.errors import UsageError
from harness.store import ResultStore, harness_modify_runs, harness_result
from harness.types import DatasetRef, Run, RunResult, RunSpec


def make_result(
    run_id: str,
    *,
    task: str = "scifact",
    model: str = "minilm",
    loss: str = "infonce",
    sampler: str = "uniform",
    seed: int = 0,
    status: str = "ok",
    score: float = 0.5,
    per_item: dict[str, dict[str, Any]] | None = None,
    **extra: Any,
) -> RunResult:
    return RunResult(
        run_id=run_id,
        spec=RunSpec(task=task, model=model, loss=loss, sampler=sampler, seed=seed),
        family="retrieval",
        status=status,  # type: ignore[arg-type]
        main_metric="ndcg@10",
        error=None if status == "ok" else "boom",
        metrics={"ndcg@10": score, "recall@100": min(1.0, score + 0.25)}
        if status == "ok"
        else {},
        per_item=per_item if per_item is not None else {},
        **extra,
    )


def full_result(run_id: str = "r-full") -> RunResult:
    return make_result(
        run_id,
        seed=3,
        score=0.625,
        per_item={
            "ndcg@10": {"q1": 1.0, "q2": 0.0, "q3": 0.5},
            "recall@100": {"q1": 1.0, "q2": 0.25},
        },
        diagnostics={"false_negative_rate": 0.125, "grad_norm": 2.5},
        timings={"train": 12.5, "eval": 3.25, "total": 15.75},
        environment={
            "python": "3.11.7",
            "torch": "2.2.0",
            "cuda": None,
            "cpu_count": 8,
            "packages": {"numpy": "1.26.4"},
        },
        dataset_sha256="ab" * 32,
        versions={"task": "1", "model": "2", "loss": "1", "sampler": "3"},
        started_at="2024-01-01T00:00:00+00:00",
        finished_at="2024-01-01T00:00:16+00:00",
    )


@pytest.fixture
def store(tmp_path: Path):
    with ResultStore(tmp_path / "store" / "results.db") as opened:
        yield opened


def count(path: Path, table: str, run_id: str) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute(
            f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
    finally:
        db.close()


# -- round trip ------------------------------------------------------------------------


def test_round_trip_with_per_item(store: ResultStore):
    result = full_result()
    store.save(result)
    [loaded] = store.load(per_item=True)
    assert loaded.to_dict() == result.to_dict()
    assert loaded.spec == result.spec
    assert loaded.main_score == 0.625


def test_round_trip_survives_reopening(tmp_path: Path):
    path = tmp_path / "results.db"
    result = full_result()
    with ResultStore(path) as first:
        first.save(result)
    with ResultStore(path, create=False) as second:
        [loaded] = second.load(["r-full"], per_item=True)
    assert loaded.to_dict() == result.to_dict()


def test_failed_run_round_trip(store: ResultStore):
    failed = make_result("r-failed", status="failed", timings={"total": 1.0})
    store.save(failed)
    [loaded] = store.load()
    assert loaded.to_dict() == failed.to_dict()
    assert loaded.status == "failed"
    assert loaded.error == "boom"
    assert loaded.main_score is None


def test_per_item_only_loaded_when_asked(store: ResultStore):
    result = full_result()
    store.save(result)
    [plain] = store.load()
    assert plain.per_item == {}
    assert plain.to_dict(per_item=False) == result.to_dict(per_item=False)
    [with_items] = store.load(per_item=True)
    assert with_items.per_item == result.per_item
    assert store.per_item("r-full") == result.per_item
    assert store.per_item("unknown") == {}


def test_load_by_run_ids(store: ResultStore):
    for i in range(3):
        store.save(make_result(f"r{i}", seed=i))
    assert {r.run_id for r in store.load(["r0", "r2", "nope"])} == {"r0", "r2"}
    assert store.load([]) == []
    assert [r.run_id for r in store.load()] == ["r0", "r1", "r2"]  # ordered by seed


# -- replace, completed, filters -------------------------------------------------------


def test_save_same_run_id_replaces(tmp_path: Path):
    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        store.save(make_result("r1", status="failed"))
        store.save(
            make_result("r1", score=0.25, per_item={"ndcg@10": {"q1": 1.0, "q2": 0.0}})
        )
        store.save(make_result("r1", score=0.75, per_item={"ndcg@10": {"q3": 0.5}}))
        results = store.load(per_item=True)
        assert len(results) == 1
        assert results[0].status == "ok"
        assert results[0].metrics["ndcg@10"] == 0.75
        # replaced, not merged with the q1/q2 rows of the previous save
        assert results[0].per_item == {"ndcg@10": {"q3": 0.5}}
    assert count(path, "runs", "r1") == 1
    assert count(path, "item_scores", "r1") == 1


def test_completed_returns_only_ok_ids(store: ResultStore):
    store.save(make_result("ok1"))
    store.save(make_result("bad", status="failed", seed=1))
    store.save(make_result("ok2", seed=2))
    assert store.completed(["ok1", "bad", "ok2", "missing"]) == {"ok1", "ok2"}
    assert store.completed([]) == set()
    assert store.completed(iter(["bad"])) == set()
    # more ids than one SQL chunk (500)
    many = [f"x{i}" for i in range(1200)] + ["ok2"] + [f"y{i}" for i in range(600)]
    assert store.completed(many) == {"ok2"}
    # a failed run re-run successfully becomes completed
    store.save(make_result("bad", seed=1))
    assert store.completed(["bad"]) == {"bad"}


def test_filters(store: ResultStore):
    store.save(make_result("a", task="scifact", model="m1"))
    store.save(make_result("b", task="scifact", model="m2"))
    store.save(make_result("c", task="cranfield", model="m1", status="failed"))
    store.save(make_result("d", task="cranfield", model="m2", loss="other"))

    def ids(**filters: list[str]) -> set[str]:
        return {r.run_id for r in store.load(filters=filters)}

    assert ids(task=["scifact"]) == {"a", "b"}
    assert ids(model=["m1"]) == {"a", "c"}
    assert ids(status=["failed"]) == {"c"}
    assert ids(status=["ok"]) == {"a", "b", "d"}
    assert ids(task=["cranfield"], model=["m2"]) == {"d"}
    assert ids(task=["scifact", "cranfield"], status=["ok"]) == {"a", "b", "d"}
    assert ids(loss=["other"]) == {"d"}
    assert ids(task=[]) == {"a", "b", "c", "d"}  # an empty list means no filter
    assert ids(task=["nope"]) == set()
    assert {r.run_id for r in store.load(["a", "c"], filters={"model": ["m1"]})} == {
        "a",
        "c",
    }
    with pytest.raises(ValueError, match="record"):
        store.load(filters={"record": ["x"]})


# -- the file itself -------------------------------------------------------------------


def test_wal_mode_is_on(tmp_path: Path):
    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        store.save(make_result("r1"))
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other = sqlite3.connect(path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


def test_garbage_file_is_a_usage_error_and_left_alone(tmp_path: Path):
    path = tmp_path / "results.db"
    garbage = b"garbage" * 100
    path.write_bytes(garbage)
    with pytest.raises(UsageError) as info:
        ResultStore(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == garbage
    assert sorted(os.listdir(tmp_path)) == ["results.db"]


def test_newer_schema_is_a_usage_error(tmp_path: Path):
    path = tmp_path / "results.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(UsageError, match="schema 99") as info:
        ResultStore(path)
    assert str(path) in str(info.value)


def test_schema_1_store_is_migrated_bit_for_bit(tmp_path: Path):
    """A store written by schema 1 (one row per item) opens as schema 2 with
    every per-item value unchanged and nothing else touched."""
    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        store.save(full_result())
        store.save(make_result("r2", seed=1, per_item={"ndcg@10": {"a": 0.1}}))
        record = store._db.execute("SELECT record FROM runs").fetchall()
    values = {"q1": 1 / 3, "q2": 1e-300, "q3": 0.1 + 0.2}
    db = sqlite3.connect(path)
    with db:  # rewrite the per-item scores as schema 1 stored them
        db.execute("DROP TABLE item_scores")
        db.execute(
            "CREATE TABLE per_item (run_id TEXT NOT NULL, metric TEXT NOT NULL, "
            "item TEXT NOT NULL, value REAL NOT NULL, "
            "PRIMARY KEY (run_id, metric, item)) WITHOUT ROWID"
        )
        rows = [("r-full", "ndcg@10", item, value) for item, value in values.items()]
        rows += [("r-full", "recall@100", "q1", 1.0), ("r2", "ndcg@10", "a", 0.1)]
        db.executemany("INSERT INTO per_item VALUES (?,?,?,?)", rows)
        db.execute("PRAGMA user_version = 1")
    db.close()
    with ResultStore(path) as store:
        migrated = store.per_item("r-full")
        assert migrated["recall@100"] == {"q1": 1.0}
        assert list(migrated["ndcg@10"]) == ["q1", "q2", "q3"]
        assert migrated["ndcg@10"] == values  # float equality: bit for bit
        assert store.per_item("r2") == {"ndcg@10": {"a": 0.1}}
        assert store._db.execute("SELECT record FROM runs").fetchall() == record
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == 2
        tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
        assert "per_item" not in tables


def test_create_false_on_missing_path(tmp_path: Path):
    path = tmp_path / "nowhere" / "results.db"
    with pytest.raises(UsageError) as info:
        ResultStore(path, create=False)
    assert str(path) in str(info.value)
    assert not path.exists()
    assert not path.parent.exists()


def test_create_makes_parent_folders(tmp_path: Path):
    path = tmp_path / "a" / "b" / "results.db"
    with ResultStore(path) as store:
        assert store.path == path
        assert store.load() == []
    assert path.is_file()


# -- atomicity -------------------------------------------------------------------------


def test_failed_save_keeps_the_previous_version(tmp_path: Path):
    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        before = make_result(
            "r1", score=0.25, per_item={"ndcg@10": {"q1": 1.0, "q2": 0.0}}
        )
        store.save(before)
        # a per-item value that is not a number fails the save (before its
        # transaction; a failure inside it: test_crash_in_executemany_rolls_back)
        broken = make_result(
            "r1",
            score=0.75,
            per_item={"ndcg@10": {"q1": 0.5, "q2": object(), "q3": 1.0}},
        )
        with pytest.raises(TypeError):
            store.save(broken)
        [loaded] = store.load(per_item=True)
        assert loaded.to_dict() == before.to_dict()
        # the connection is still usable and not stuck inside a transaction
        assert not store._db.in_transaction
        store.save(make_result("r2", seed=1))
    # what is on disk (a fresh connection) is the previous version too
    with ResultStore(path, create=False) as reopened:
        [loaded] = reopened.load(["r1"], per_item=True)
        assert loaded.to_dict() == before.to_dict()
        assert reopened.completed(["r1", "r2"]) == {"r1", "r2"}


def test_failed_save_of_a_new_run_leaves_nothing(tmp_path: Path):
    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        store.save(make_result("other"))
        broken = make_result("new", per_item={"ndcg@10": {"q1": 1.0, "q2": object()}})
        with pytest.raises(TypeError):
            store.save(broken)
        assert [r.run_id for r in store.load()] == ["other"]
        assert store.completed(["new"]) == set()
    assert count(path, "runs", "new") == 0
    assert count(path, "item_scores", "new") == 0


def test_crash_in_executemany_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The same, with the failure injected into executemany itself."""
    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        before = make_result("r1", score=0.25, per_item={"ndcg@10": {"q1": 1.0}})
        store.save(before)

        real = store._db

        class Crashing:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def __enter__(self) -> Any:
                return real.__enter__()

            def __exit__(self, *exc: Any) -> Any:
                return real.__exit__(*exc)

            def executemany(self, *args: Any) -> Any:
                assert real.in_transaction  # the runs row is already written
                raise RuntimeError("simulated crash")

        monkeypatch.setattr(store, "_db", Crashing())
        with pytest.raises(RuntimeError, match="simulated crash"):
            store.save(make_result("r1", score=0.75, per_item={"ndcg@10": {"q9": 0.0}}))
        monkeypatch.setattr(store, "_db", real)
        [loaded] = store.load(per_item=True)
        assert loaded.to_dict() == before.to_dict()


# -- hookimpls -------------------------------------------------------------------------


def make_run(seed: int) -> Run:
    return Run(
        spec=RunSpec(
            task="scifact", model="minilm", loss="infonce", sampler="uniform", seed=seed
        ),
        family="retrieval",
        dataset=DatasetRef(name="scifact", path="/data/scifact", sha256="cd" * 32),
        versions={"task": "1"},
        main_metric="ndcg@10",
    )


def stand_in_session(
    store: ResultStore | None, *, rerun: bool = False, tasks: Any = None
) -> SimpleNamespace:
    return SimpleNamespace(
        store=store,
        options=SimpleNamespace(rerun=rerun),
        notes=[],
        tasks=tasks or {},
        elsewhere={},
    )


def test_modify_runs_records_the_planned_tasks(store: ResultStore):
    from harness.types import TaskInfo

    info = TaskInfo(name="t", family="sts", main_metric="spearman", description="d")
    harness_modify_runs(stand_in_session(store, tasks={"t": info}), [make_run(0)])
    assert store.task_infos() == {"t": info}


def test_modify_runs_drops_completed_runs(store: ResultStore):
    runs = [make_run(seed) for seed in range(4)]
    store.save(make_result(runs[0].run_id, seed=0))
    store.save(make_result(runs[1].run_id, seed=1, status="failed"))  # not completed
    store.save(make_result(runs[3].run_id, seed=3))
    session = stand_in_session(store)
    same_list = runs
    harness_modify_runs(session=session, runs=runs)
    assert runs is same_list  # modified in place
    assert [r.spec.seed for r in runs] == [1, 2]
    assert len(session.notes) == 1
    assert "2 run(s)" in session.notes[0]
    assert str(store.path) in session.notes[0]
    assert "--rerun" in session.notes[0]


def test_modify_runs_keeps_everything_with_rerun(store: ResultStore):
    runs = [make_run(seed) for seed in range(3)]
    for run in runs:
        store.save(make_result(run.run_id, seed=run.spec.seed))
    session = stand_in_session(store, rerun=True)
    harness_modify_runs(session=session, runs=runs)
    assert [r.spec.seed for r in runs] == [0, 1, 2]
    assert session.notes == []


def test_modify_runs_without_completed_runs_adds_no_note(store: ResultStore):
    runs = [make_run(seed) for seed in range(2)]
    session = stand_in_session(store)
    harness_modify_runs(session=session, runs=runs)
    assert len(runs) == 2
    assert session.notes == []
    no_store = stand_in_session(None)
    harness_modify_runs(session=no_store, runs=runs)
    assert len(runs) == 2
    assert no_store.notes == []


def test_result_hook_saves(store: ResultStore):
    result = full_result()
    harness_result(session=stand_in_session(store), result=result)
    [loaded] = store.load(per_item=True)
    assert loaded.to_dict() == result.to_dict()
    harness_result(
        session=stand_in_session(None), result=make_result("x")
    )  # no store: no-op
    assert [r.run_id for r in store.load()] == ["r-full"]


# -- claims: several bench processes on one store ----------------------------------


def _claim_as(store: ResultStore, run_id: str, host: str, pid: int) -> None:
    with sqlite3.connect(store.path) as db:
        db.execute(
            "INSERT OR REPLACE INTO claims VALUES (?,?,?,?)",
            (run_id, host, pid, "2026-01-01T00:00:00+00:00"),
        )


def _dead_pid() -> int:
    """A pid that no process has (a child that already exited)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_claims_respect_live_sessions_and_take_over_dead_ones(store: ResultStore):
    import socket

    here = socket.gethostname()
    runs = [make_run(seed) for seed in range(4)]
    _claim_as(store, runs[0].run_id, here, 1)  # pid 1 is always alive
    _claim_as(store, runs[1].run_id, here, _dead_pid())  # killed with -9
    _claim_as(store, runs[2].run_id, "elsewhere", 123)  # cannot be checked
    held_here, held_elsewhere = runs[0].run_id, runs[2].run_id
    session = stand_in_session(store)
    harness_modify_runs(session=session, runs=runs)
    assert [r.spec.seed for r in runs] == [1, 3]
    # for the final lines, which name the runs not shown and their holders
    assert session.elsewhere == {
        held_here: f"{here} pid 1",
        held_elsewhere: "elsewhere pid 123",
    }
    assert session.notes == [
        "2 run(s) are being executed by another harness bench on this store "
        f"(elsewhere pid 123, {here} pid 1); skipped"
    ]
    # the runs this session kept are claimed by it; storing one releases it
    with sqlite3.connect(store.path) as db:
        mine = dict(db.execute("SELECT run_id, pid FROM claims"))
    assert mine[runs[0].run_id] == os.getpid() and mine[runs[1].run_id] == os.getpid()
    store.save(make_result(runs[0].run_id, seed=1))
    store.release_claims()
    with sqlite3.connect(store.path) as db:
        left = {row[0] for row in db.execute("SELECT run_id FROM claims")}
    assert left == {make_run(0).run_id, make_run(2).run_id}  # the others' claims
    # --rerun takes over another host's claim, never a live local one
    again = [make_run(seed) for seed in range(3)]
    rerun = stand_in_session(store, rerun=True)
    harness_modify_runs(session=rerun, runs=again)
    assert [r.spec.seed for r in again] == [1, 2]


def test_task_infos_round_trip_and_latest_wins(tmp_path: Path):
    from harness.types import TaskInfo

    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        assert store.task_infos() == {}
        store.save_tasks([TaskInfo(name="t", family="kge", main_metric="mrr")])
        store.save_tasks(
            [
                TaskInfo(
                    name="t",
                    family="kge",
                    main_metric="mrr",
                    higher_is_better=False,
                    description="newer",
                )
            ]
        )
    with ResultStore(path, create=False) as store:
        assert store.task_infos() == {
            "t": TaskInfo(
                name="t",
                family="kge",
                main_metric="mrr",
                higher_is_better=False,
                description="newer",
            )
        }
