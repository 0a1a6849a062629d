"""The README's main command on real data: the quick suite on SciFact."""

from __future__ import annotations

from conftest import results_json


def test_quick_suite_runs_and_prints_a_ranked_table(run_harness, data_dir):
    done = run_harness("bench", env={"HARNESS_DATA_DIR": str(data_dir)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scifact (retrieval) — ranked by ndcg@10" in done.stdout
    results = results_json(run_harness)
    assert len(results) == 7 and all(r["status"] == "ok" for r in results)
    by_method = {(r["model"], r["loss"], r["sampler"]): r for r in results}
    zero_shot = by_method[("minilm", "none", "none")]["metrics"]["ndcg@10"]
    assert abs(zero_shot - 0.6451) < 5e-4
    trained = [r for r in results if r["model"] == "minilm-adapter"]
    assert len(trained) == 6
    for result in trained:
        assert result["diagnostics"]["negatives_sampled"] > 0
        assert (
            result["diagnostics"]["fn_rate_lower_bound"] == 0.0
        )  # disjoint train/test claims
    # a second run is answered from the store
    again = run_harness("bench", env={"HARNESS_DATA_DIR": str(data_dir)})
    assert "7 run(s) already completed" in again.stdout
