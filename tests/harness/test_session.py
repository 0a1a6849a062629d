"""The README's main command on real data: the quick suite."""

from __future__ import annotations

import pytest
from conftest import results_json


@pytest.mark.late  # reads the warm-up's embeddings (tests/conftest.py)
def test_quick_suite_runs_and_prints_ranked_tables(run_harness, data_dir):
    done = run_harness("bench", env={"HARNESS_DATA_DIR": str(data_dir)})
    assert done.returncode == 0, done.stdout + done.stderr
    for title in (
        "scifact (retrieval) — ranked by ndcg@10",
        "stsb (sts) — ranked by spearman",
        "synth-fn (retrieval) — ranked by ndcg@10",
        "nations (kge) — ranked by mrr",
        "umls (kge) — ranked by mrr",
        "yeast (multilabel) — ranked by map",
        "yeast-partial (multilabel) — ranked by map",
    ):
        assert title in done.stdout
    results = results_json(run_harness)
    assert len(results) == 27 and all(r["status"] == "ok" for r in results)
    by_cell = {(r["task"], r["model"], r["loss"], r["sampler"]): r for r in results}
    scifact = by_cell[("scifact", "minilm", "none", "none")]["metrics"]["ndcg@10"]
    assert abs(scifact - 0.6451) < 5e-4  # MTEB's published all-MiniLM-L6-v2 score
    stsb = by_cell[("stsb", "minilm", "none", "none")]["metrics"]["spearman"]
    assert abs(stsb - 0.8203) < 5e-4
    for result in results:
        if result["model"] == "minilm":
            continue
        assert result["diagnostics"]["negatives_sampled"] > 0
        if result["task"] == "scifact":  # disjoint train/test claims
            assert result["diagnostics"]["fn_rate_lower_bound"] == 0.0
        if result["family"] == "kge":
            assert result["metrics"]["mrr"] > 0.5  # small, easy graphs
        if result["family"] == "multilabel":
            assert result["metrics"]["map"] > 0.4  # label priors alone: ~0.3
    # the oracle task measures false negatives exactly
    synth = {
        r["sampler"]: r["diagnostics"]["fn_rate"]
        for r in results
        if r["task"] == "synth-fn"
    }
    assert synth["topk-hard"] > synth["random"]
    # hidden positives among assumed negatives: top-k hard labels hit them more
    partial = {
        (r["loss"], r["sampler"]): r["diagnostics"]["fn_rate"]
        for r in results
        if r["task"] == "yeast-partial"
    }
    assert partial["assume-negative", "topk-hard"] > partial["assume-negative", "all"]
    # a second run is answered from the store
    again = run_harness("bench", env={"HARNESS_DATA_DIR": str(data_dir)})
    assert "27 run(s) already completed" in again.stdout
