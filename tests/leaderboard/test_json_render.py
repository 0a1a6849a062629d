"""harness_render writes leaderboard.json: schema, NaN as null, run ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.types import (
    BoardRow,
    Leaderboard,
    MethodSummary,
    RunResult,
    RunSpec,
    TaskInfo,
)
from negbench_leaderboard.json_render import board_to_dict, harness_render, slug
from negbench_leaderboard.ranking import rank_results


def strict_load(path: Path) -> Any:
    """Parse JSON, refusing the NaN/Infinity extensions Python would accept."""

    def refuse(token: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {token} in {path.name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def row(model: str, rank: int, mean: float, **extra: Any) -> BoardRow:
    fields: dict[str, Any] = {
        "task": "scifact",
        "family": "retrieval",
        "model": model,
        "loss": "infonce",
        "sampler": "uniform",
        "main_metric": "ndcg@10",
        "mean": mean,
        "std": 0.0,
        "n_seeds": 1,
        "rank": rank,
    }
    fields.update(extra)
    return BoardRow(**fields)


def summary(model: str, borda: float, rank: int) -> MethodSummary:
    return MethodSummary(
        method=f"{model} · infonce · uniform",
        model=model,
        loss="infonce",
        sampler="uniform",
        params="",
        borda=borda,
        rank=rank,
        tasks=1,
        family_scores={"retrieval": borda},
    )


def make_board() -> Leaderboard:
    info = TaskInfo(
        name="scifact",
        family="retrieval",
        main_metric="ndcg@10",
        description="SciFact (BEIR)",
    )
    return Leaderboard(
        tasks={"scifact": info},
        rows=(
            row(
                "m1",
                1,
                0.7,
                std=0.05,
                n_seeds=2,
                metrics={"ndcg@10": 0.7, "recall@100": float("nan")},
                diagnostics={"fn_rate": float("inf"), "grad": 1.5},
                train_seconds=12.5,
                run_ids=("id-a", "id-b"),
                failed=1,
            ),
            row("m2", 2, float("nan"), std=float("nan"), run_ids=("id-c",)),
        ),
        overall=(summary("m1", 1.0, 1), summary("m2", 0.0, 2)),
    )


def test_writes_valid_leaderboard_json(tmp_path: Path):
    harness_render(board=make_board(), outdir=tmp_path)
    target = tmp_path / "leaderboard.json"
    assert target.is_file()
    data = strict_load(target)
    assert data["schema_version"] == 2
    assert {"tasks", "rows", "overall", "generated_at"} <= set(data)
    assert data["tasks"] == {
        "scifact": {
            "slug": slug("scifact"),
            "family": "retrieval",
            "main_metric": "ndcg@10",
            "higher_is_better": True,
            "description": "SciFact (BEIR)",
        }
    }
    first, second = data["rows"]
    assert first["run_ids"] == ["id-a", "id-b"]
    assert second["run_ids"] == ["id-c"]
    assert first["model"] == "m1"
    assert first["rank"] == 1
    assert first["mean"] == 0.7
    assert first["std"] == 0.05
    assert first["n_seeds"] == 2
    assert first["failed"] == 1
    assert first["train_seconds"] == 12.5
    assert [(o["method"], o["borda"], o["rank"]) for o in data["overall"]] == [
        ("m1 · infonce · uniform", 1.0, 1),
        ("m2 · infonce · uniform", 0.0, 2),
    ]
    assert data["overall"][0]["family_scores"] == {"retrieval": 1.0}
    assert data["families"] == ["retrieval"]
    # no temporary file left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leaderboard.json"]


def test_non_finite_numbers_become_null(tmp_path: Path):
    harness_render(board=make_board(), outdir=tmp_path)
    text = (tmp_path / "leaderboard.json").read_text()
    assert "NaN" not in text
    assert "Infinity" not in text
    first, second = strict_load(tmp_path / "leaderboard.json")["rows"]
    assert first["metrics"] == {"ndcg@10": 0.7, "recall@100": None}
    assert first["diagnostics"] == {"fn_rate": None, "grad": 1.5}
    assert second["mean"] is None
    assert second["std"] is None


def test_overwrites_an_existing_file(tmp_path: Path):
    target = tmp_path / "leaderboard.json"
    target.write_text("old, not even JSON")
    harness_render(board=make_board(), outdir=tmp_path)
    assert strict_load(target)["schema_version"] == 2


def test_board_to_dict_matches_the_file(tmp_path: Path):
    board = make_board()
    harness_render(board=board, outdir=tmp_path)
    written = strict_load(tmp_path / "leaderboard.json")
    expected = board_to_dict(board)
    written.pop("generated_at")
    expected.pop("generated_at")
    assert written == json.loads(json.dumps(expected))


def test_ranked_results_round_trip(tmp_path: Path):
    results = [
        RunResult(
            run_id=f"r{seed}{model}",
            spec=RunSpec(task="t", model=model, loss="l", sampler="s", seed=seed),
            family="retrieval",
            status="ok",
            main_metric="ndcg@10",
            metrics={"ndcg@10": score},
        )
        for model, seed, score in [("a", 0, 0.5), ("a", 1, 0.7), ("b", 0, 0.4)]
    ]
    board = rank_results(results, {})
    harness_render(board=board, outdir=tmp_path)
    data = strict_load(tmp_path / "leaderboard.json")
    assert list(data["tasks"]) == ["t"]
    rows = {r["model"]: r for r in data["rows"]}
    assert rows["a"]["run_ids"] == ["r0a", "r1a"]
    assert rows["a"]["mean"] == pytest.approx(0.6)
    assert rows["a"]["rank"] == 1
    assert rows["b"]["run_ids"] == ["r0b"]
    assert [o["method"] for o in data["overall"]] == ["a · l · s", "b · l · s"]
