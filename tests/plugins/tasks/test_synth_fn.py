"""The synth-fn oracle task end to end: exact false-negative rates, two label sets."""

from __future__ import annotations

from conftest import TOY, results_json

from harness.data import DataLocator
from negbench_plugins.tasks.synth_data import SynthConfig, generate
from negbench_plugins.tasks.synth_fn import SynthFN, prepare

SIZES = {
    "n_docs": 600,
    "topics": 6,
    "subtopics": 10,
    "n_train": 150,
    "n_test": 40,
    "epochs": 2,
    "depth": 30,
}
PARAMS = [
    arg
    for key, value in SIZES.items()
    for arg in ("--param", f"task.synth-fn.{key}={value}")
]
METRICS = ("ndcg@10", "mrr@10", "recall@100", "map@100")


def test_samplers_get_exact_fn_rates_and_both_label_sets(run_harness, tmp_path):
    done = run_harness(
        "bench",
        *TOY,
        "--task",
        "synth-fn",
        "--model",
        "toy-bow",
        "--loss",
        "infonce",
        "--sampler",
        "random",
        "--sampler",
        "topk-hard",
        "--sampler",
        "simans",
        "--param",
        "model.toy-bow.buckets=2048",
        *PARAMS,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["sampler"]: r for r in results_json(run_harness, "--per-item")}
    assert set(results) == {"random", "topk-hard", "simans"}
    for result in results.values():
        assert result["status"] == "ok", result["error"]
        expected = {*METRICS, *(m + "_pooled" for m in METRICS)}
        assert set(result["metrics"]) == expected
        assert set(result["per_item"]) == expected
        assert all(len(result["per_item"][m]) == SIZES["n_test"] for m in expected)
        diagnostics = result["diagnostics"]
        # the oracle is complete: an exact rate, never a lower bound
        assert "fn_rate" in diagnostics and "fn_rate_lower_bound" not in diagnostics
        assert 0.3 <= diagnostics["data_train_hidden_share"] <= 0.6
    fn = {name: r["diagnostics"]["fn_rate"] for name, r in results.items()}
    # hidden positives crowd the top of the ranking, not a uniform draw
    assert fn["topk-hard"] > fn["random"]
    # the recorded fingerprint is what any other process computes for these params
    task = SynthFN(**SIZES)
    sha = task.locate(DataLocator(cache_dir=tmp_path, offline=True)).sha256
    assert {r["dataset_sha256"] for r in results.values()} == {sha}


def test_dataset_fingerprint_is_stable_and_follows_the_data(tmp_path):
    locator = DataLocator(cache_dir=tmp_path, offline=True)
    first = SynthFN().locate(locator)
    assert first == SynthFN(epochs=7, batch_size=8).locate(locator)  # protocol only
    assert first.origin == "generated" and first.sha256 == SynthConfig().fingerprint()
    assert not list(tmp_path.iterdir())  # nothing downloaded or written
    others = {
        SynthFN(data_seed=1).locate(locator).sha256,
        SynthFN(pool_depth=20).locate(locator).sha256,
        SynthFN(n_docs=3600).locate(locator).sha256,
    }
    assert len(others) == 3 and first.sha256 not in others


def test_training_pairs_are_the_visible_labels_and_hidden_is_exact():
    synth = generate(
        SynthConfig(n_docs=600, topics=12, subtopics=10, n_train=200, n_test=50)
    )
    data = prepare(synth)
    training = data.training
    assert training.hidden_exact
    assert training.anchor_texts == synth.train.texts
    assert training.candidate_texts == synth.doc_texts
    pairs = {tuple(p) for p in training.pairs.tolist()}
    assert pairs == {(q, d) for q, docs in enumerate(synth.train.visible) for d in docs}
    for q, (pos, hid) in enumerate(
        zip(training.positives, training.hidden, strict=True)
    ):
        assert pos == synth.train.visible[q] and hid == synth.train.hidden[q]
        assert not pos & hid
    for q, qid in enumerate(data.test_query_ids):
        full = {int(d[1:]) for d in data.test_qrels[qid]}
        pooled = {int(d[1:]) for d in data.test_qrels_pooled[qid]}
        assert full == synth.test.full[q] and pooled == synth.test.visible[q]
