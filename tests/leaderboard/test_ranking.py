"""rank_results: seed means, competition ranks, failed runs, Borda overall."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import replace

import pytest

from harness.types import BoardRow, Leaderboard, RunResult, RunSpec, TaskInfo
from negbench_leaderboard.ranking import harness_rank, rank_results

_ids = itertools.count()


def res(
    task: str,
    model: str,
    score: float | None,
    *,
    seed: int = 0,
    loss: str = "l",
    sampler: str = "s",
    status: str = "ok",
    metric: str = "ndcg@10",
    extra: dict[str, float] | None = None,
    diagnostics: dict[str, float] | None = None,
    train: float | None = None,
) -> RunResult:
    metrics = {} if score is None else {metric: score, **(extra or {})}
    return RunResult(
        run_id=f"{task}-{model}-{seed}-{next(_ids)}",
        spec=RunSpec(task=task, model=model, loss=loss, sampler=sampler, seed=seed),
        family="retrieval",
        status=status,  # type: ignore[arg-type]
        main_metric=metric,
        error=None if status == "ok" else "boom",
        metrics=metrics if status == "ok" else {},
        diagnostics=diagnostics or {},
        timings={} if train is None else {"train": train},
    )


def info(name: str, *, higher: bool = True, metric: str = "ndcg@10") -> TaskInfo:
    return TaskInfo(
        name=name, family="retrieval", main_metric=metric, higher_is_better=higher
    )


def by_model(board: Leaderboard, task: str = "t") -> dict[str, BoardRow]:
    return {r.model: r for r in board.rows if r.task == task}


def overall(board: Leaderboard) -> tuple[tuple[str, float, int], ...]:
    """(method, Borda points, tasks covered), best first."""
    return tuple((s.method, s.borda, s.tasks) for s in board.overall)


def method(model: str) -> str:
    return f"{model} · l · s"


def test_seeds_are_averaged_and_best_mean_ranks_first():
    results = [
        res("t", "a", 0.5, seed=0, train=10.0, diagnostics={"fn": 0.25}),
        res("t", "a", 0.7, seed=1, train=20.0, diagnostics={"fn": 0.75}),
        res("t", "a", 0.6, seed=2, train=30.0, diagnostics={"fn": 0.5}),
        res("t", "b", 0.4, seed=0),
        res("t", "b", 0.5, seed=1),
        res("t", "c", 0.9, seed=0),
    ]
    board = rank_results(results, {"t": info("t")})
    rows = by_model(board)
    assert set(rows) == {"a", "b", "c"}

    a = rows["a"]
    assert a.mean == pytest.approx(0.6)
    assert a.std == pytest.approx(statistics.stdev([0.5, 0.7, 0.6]))
    assert a.std == pytest.approx(0.1)  # sample std (n - 1), not population
    assert a.n_seeds == 3
    assert a.failed == 0
    assert a.train_seconds == pytest.approx(20.0)
    assert a.diagnostics["fn"] == pytest.approx(0.5)
    assert a.metrics["ndcg@10"] == pytest.approx(0.6)
    assert a.run_ids == tuple(sorted(r.run_id for r in results[:3]))
    assert (a.loss, a.sampler, a.main_metric, a.family) == (
        "l",
        "s",
        "ndcg@10",
        "retrieval",
    )

    assert rows["b"].mean == pytest.approx(0.45)
    assert rows["c"].std == 0.0  # a single seed has no spread
    assert rows["c"].n_seeds == 1

    assert {m: r.rank for m, r in rows.items()} == {"c": 1, "a": 2, "b": 3}
    # rows of a task come best first
    assert [r.model for r in board.rows] == ["c", "a", "b"]


def test_secondary_metrics_are_averaged_where_present():
    results = [
        res("t", "a", 0.5, seed=0, extra={"recall@100": 0.8, "mrr@10": 0.2}),
        res("t", "a", 0.7, seed=1, extra={"recall@100": 0.9}),
    ]
    [row] = rank_results(results, {"t": info("t")}).rows
    assert row.metrics["recall@100"] == pytest.approx(0.85)
    assert row.metrics["mrr@10"] == pytest.approx(0.2)


def test_lower_is_better_reverses_the_order():
    results = [
        res("t", "a", 10.0, metric="mr"),
        res("t", "b", 3.0, metric="mr"),
        res("t", "c", 7.0, metric="mr"),
    ]
    board = rank_results(results, {"t": info("t", higher=False, metric="mr")})
    assert {m: r.rank for m, r in by_model(board).items()} == {"b": 1, "c": 2, "a": 3}
    assert [r.model for r in board.rows] == ["b", "c", "a"]
    assert dict((m, p) for m, p, _ in overall(board)) == {
        method("b"): 2.0,
        method("c"): 1.0,
        method("a"): 0.0,
    }


def test_equal_means_share_a_rank():
    results = [
        res("t", "a", 0.5),
        res("t", "b", 0.4, seed=0),
        res("t", "b", 0.6, seed=1),  # mean 0.5, like a
        res("t", "c", 0.3),
        res("t", "d", 0.8),
    ]
    board = rank_results(results, {"t": info("t")})
    ranks = {m: r.rank for m, r in by_model(board).items()}
    assert ranks == {"d": 1, "a": 2, "b": 2, "c": 4}
    points = {m: p for m, p, _ in overall(board)}
    assert points == {
        method("d"): 3.0,
        method("a"): 2.0,
        method("b"): 2.0,
        method("c"): 0.0,
    }


def test_competition_ranking_1_1_3():
    results = [res("t", "a", 0.5), res("t", "b", 0.5), res("t", "c", 0.1)]
    board = rank_results(results, {"t": info("t")})
    assert sorted(r.rank for r in board.rows) == [1, 1, 3]
    assert {m: r.rank for m, r in by_model(board).items()} == {"a": 1, "b": 1, "c": 3}


def test_failed_runs_are_counted_and_excluded():
    results = [
        res("t", "a", 0.4, seed=0),
        res("t", "a", 0.6, seed=1),
        res("t", "a", None, seed=2, status="failed"),
        res("t", "b", 0.45, seed=0),
        res("t", "gone", None, seed=0, status="failed"),
        res("t", "gone", None, seed=1, status="failed"),
    ]
    board = rank_results(results, {"t": info("t")})
    rows = by_model(board)
    assert set(rows) == {"a", "b"}  # only-failed methods get no row
    assert rows["a"].failed == 1
    assert rows["a"].n_seeds == 2
    assert rows["a"].mean == pytest.approx(0.5)
    assert rows["a"].run_ids == tuple(sorted(r.run_id for r in results[:2]))
    assert rows["b"].failed == 0
    assert {m: r.rank for m, r in rows.items()} == {"a": 1, "b": 2}
    assert method("gone") not in {m for m, _, _ in overall(board)}


def test_borda_over_two_tasks():
    results = [
        # t1: a 0.9 > b 0.8 > c 0.7 > d 0.1 -> ranks 1..4, points 3, 2, 1, 0
        res("t1", "a", 0.9),
        res("t1", "b", 0.8),
        res("t1", "c", 0.7),
        res("t1", "d", 0.1),
        # t2: b 0.6 > c 0.55 > a 0.5 (d absent) -> points 2, 1, 0
        res("t2", "b", 0.6),
        res("t2", "c", 0.55),
        res("t2", "a", 0.5),
    ]
    board = rank_results(results, {"t1": info("t1"), "t2": info("t2")})
    # a: 3 + 0 = 3, b: 2 + 2 = 4, c: 1 + 1 = 2, d: 0 (one task)
    assert overall(board) == (
        (method("b"), 4.0, 2),
        (method("a"), 3.0, 2),
        (method("c"), 2.0, 2),
        (method("d"), 0.0, 1),
    )
    assert {m: r.rank for m, r in by_model(board, "t2").items()} == {
        "b": 1,
        "c": 2,
        "a": 3,
    }


def test_borda_with_a_lower_is_better_task_and_distinct_methods():
    results = [
        res("t1", "m", 0.9, loss="x"),
        res("t1", "m", 0.8, loss="y"),
        res("t2", "m", 5.0, loss="x", metric="mr"),
        res("t2", "m", 1.0, loss="y", metric="mr"),
        res("t2", "m", 3.0, loss="z", metric="mr"),
    ]
    tasks = {"t1": info("t1"), "t2": info("t2", higher=False, metric="mr")}
    board = rank_results(results, tasks)
    # t1: x 1 (1 pt), y 2 (0); t2: y 1 (2), z 2 (1), x 3 (0)
    assert overall(board) == (
        ("m · y · s", 2.0, 2),
        ("m · x · s", 1.0, 2),
        ("m · z · s", 1.0, 1),
    )


def test_tasks_without_results_are_dropped():
    results = [
        res("t1", "a", 0.5),
        res("t3", "a", None, status="failed"),  # only failed: no row either
    ]
    tasks = {"t1": info("t1"), "t2": info("t2"), "t3": info("t3")}
    board = rank_results(results, tasks)
    assert set(board.tasks) == {"t1"}
    assert board.tasks["t1"] == tasks["t1"]
    assert {r.task for r in board.rows} == {"t1"}
    assert set(tasks) == {"t1", "t2", "t3"}  # the caller's dict is not changed


def test_task_missing_from_tasks_gets_an_inferred_info():
    results = [res("t1", "a", 0.5), res("new", "a", 0.3), res("new", "b", 0.4)]
    tasks = {"t1": info("t1")}
    board = rank_results(results, tasks)
    assert set(board.tasks) == {"t1", "new"}
    inferred = board.tasks["new"]
    assert (inferred.name, inferred.family, inferred.main_metric) == (
        "new",
        "retrieval",
        "ndcg@10",
    )
    assert inferred.higher_is_better
    assert {m: r.rank for m, r in by_model(board, "new").items()} == {"b": 1, "a": 2}
    assert set(tasks) == {"t1"}


def test_empty_results_give_an_empty_board():
    board = rank_results([], {"t": info("t")})
    assert board.rows == ()
    assert overall(board) == ()
    assert dict(board.tasks) == {}


def test_hookimpl_delegates_to_rank_results():
    results = [res("t", "a", 0.5), res("t", "b", 0.7)]
    board = harness_rank(results=results, tasks={"t": info("t")})
    assert board == rank_results(results, {"t": info("t")})
    assert all(math.isfinite(r.mean) for r in board.rows)


def test_task_parameters_belong_to_the_task_and_method_parameters_to_the_method():
    def run(model: str, score: float, params: dict) -> RunResult:
        spec = RunSpec(task="t", model=model, loss="l", sampler="s", params=params)
        return replace(res("t", model, score), spec=spec)

    results = [
        run("a", 0.5, {"t": {"epochs": 2}}),
        run("b", 0.4, {"t": {"epochs": 2}, "s": {"k": 3}}),
    ]
    board = rank_results(results, {"t": info("t")})
    # one protocol for the task: its name stays plain, its parameters are
    # described; the sampler's parameter names a distinct method
    assert {r.task for r in board.rows} == {"t"}
    assert "epochs" in board.tasks["t"].description
    assert {r.method for r in board.rows} == {"a · l · s", 'b · l · s {"s":{"k":3}}'}
    # two protocols for the same task are two boards, never mixed
    results.append(run("a", 0.9, {"t": {"epochs": 9}}))
    board = rank_results(results, {"t": info("t")})
    assert {r.task for r in board.rows} == {
        't {"t":{"epochs":2}}',
        't {"t":{"epochs":9}}',
    }


def test_overall_groups_split_only_where_shared_tasks_show_a_difference():
    # a beats b on all 8 tasks, b and c trade places: {a}, {b, c}
    results = []
    for i in range(8):
        task = f"t{i}"
        results += [
            res(task, "a", 0.9),
            res(task, "b", 0.5 + (0.01 if i % 2 else -0.01)),
            res(task, "c", 0.5),
        ]
    board = rank_results(results, {})
    groups = {s.method: s.group for s in board.overall}
    assert groups == {method("a"): 1, method("b"): 2, method("c"): 2}
    first = board.overall[0]
    assert first.p_next is not None and first.p_next < 0.05
    assert board.overall[-1].p_next is None
    # with one shared task nothing can be told apart
    one = rank_results([res("t", "a", 0.9), res("t", "b", 0.1)], {})
    assert [s.group for s in one.overall] == [1, 1]
