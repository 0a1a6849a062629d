"""The KGE tasks through the CLI: results, diagnostics, the side split."""

from __future__ import annotations

import pytest
from conftest import results_json

pytestmark = pytest.mark.usefixtures("data_dir")


def test_nations_runs_report_mrr_and_false_negative_diagnostics(run_harness):
    done = run_harness(
        "bench",
        "--task", "nations",
        "--model", "distmult",
        "--loss", "nssa",
        "--sampler", "uniform",
        "--sampler", "filtered",
        "--sampler", "topk-hard",
        "--sampler", "hasa",
        "--param", "task.nations.epochs=5",
        "--jobs", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["sampler"]: r for r in results_json(run_harness, "--per-item")}
    assert set(results) == {"uniform", "filtered", "topk-hard", "hasa"}
    for result in results.values():
        assert result["family"] == "kge" and result["main_metric"] == "mrr"
        assert set(result["metrics"]) >= {"mrr", "hits@1", "hits@3", "hits@10"}
        assert 0 < result["metrics"]["mrr"] <= 1
        assert len(result["per_item"]["mrr"]) == 2 * 201  # both sides of test
        diagnostics = result["diagnostics"]
        assert 0 <= diagnostics["fn_rate_lower_bound"] <= 1
        assert "hardness_gap_q50" in diagnostics
    # unfiltered corruption draws training facts (nations is dense); filtered never
    assert results["uniform"]["diagnostics"]["known_fn_rate"] > 0.05
    assert "known_fn_rate" not in results["filtered"]["diagnostics"]
    # the model's top candidates are where held-out true facts sit
    assert (
        results["topk-hard"]["diagnostics"]["fn_rate_lower_bound"]
        > results["filtered"]["diagnostics"]["fn_rate_lower_bound"]
    )
    # K per fact under a side split, K per direction otherwise
    sampled = {s: r["diagnostics"]["negatives_sampled"] for s, r in results.items()}
    assert sampled["uniform"] * 2 == pytest.approx(sampled["topk-hard"], rel=0.01)
    assert results["hasa"]["diagnostics"]["hasa.rows_with_proxies"] > 0.5


def test_margin_and_infonce_take_kge_defaults(run_harness):
    done = run_harness(
        "bench",
        "--task", "nations",
        "--model", "transe",
        "--loss", "margin",
        "--loss", "infonce",
        "--sampler", "bernoulli",
        "--param", "task.nations.epochs=3",
        "--jobs", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = results_json(run_harness)
    assert {r["status"] for r in results} == {"ok"}
    assert {r["loss"] for r in results} == {"margin", "infonce"}


def test_text_samplers_are_filtered_out_of_kge(run_harness):
    done = run_harness(
        "bench", "--task", "nations", "--model", "transe", "--loss", "nssa",
        "--sampler", "star", "--jobs", "0",
    )  # fmt: skip
    assert "star" in done.stdout + done.stderr
    assert results_json(run_harness) == []
