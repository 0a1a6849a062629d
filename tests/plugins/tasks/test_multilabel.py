"""The multi-label tasks through the CLI: MULAN features, text sets, partial labels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import results_json
from sklearn.metrics import average_precision_score

from harness.testing import make_context
from harness.types import DatasetRef
from negbench_plugins.losses.asl import BCE
from negbench_plugins.models.label_models import LinearLabels
from negbench_plugins.samplers.labels import AllLabels
from negbench_plugins.tasks.multilabel import TASKS
from negbench_plugins.tasks.multilabel_protocol import predict

pytestmark = pytest.mark.usefixtures("data_dir")


def test_yeast_runs_report_map_and_exact_false_negative_rates(run_harness):
    done = run_harness(
        "bench",
        "--task", "yeast", "--task", "yeast-partial",
        "--model", "mlp", "--model", "minilm-adapter",
        "--loss", "asl",
        "--sampler", "all", "--sampler", "topk-hard",
        "--param", "task.yeast.epochs=3", "--param", "task.yeast-partial.epochs=3",
        "--jobs", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # a text encoder cannot read MULAN's feature vectors: skipped with a note
    assert "minilm-adapter" in done.stdout + done.stderr
    results = {
        (r["task"], r["sampler"]): r for r in results_json(run_harness, "--per-item")
    }
    assert set(results) == {
        (t, s) for t in ("yeast", "yeast-partial") for s in ("all", "topk-hard")
    }
    for result in results.values():
        assert result["family"] == "multilabel" and result["main_metric"] == "map"
        metrics = result["metrics"]
        assert set(metrics) == {"map", "micro_f1", "macro_f1", "lrap", "hamming_loss"}
        assert 0.3 < metrics["map"] < 1  # yeast's label priors alone give ~0.3
        per_label = result["per_item"]["map"]
        assert len(per_label) == 14
        assert np.mean(list(per_label.values())) == pytest.approx(metrics["map"])
        assert len(result["per_item"]["lrap"]) == 917
    full, partial = results["yeast", "all"], results["yeast-partial", "all"]
    assert full["diagnostics"]["fn_rate"] == 0.0
    share = partial["diagnostics"]["assumed_negative_fn_share"]
    assert 0.1 < share < 0.3
    # `all` trains on every assumed negative, so it hits hidden positives at
    # exactly their share; top-k hard negatives hit them more often
    assert partial["diagnostics"]["fn_rate"] == pytest.approx(share, rel=1e-6)
    assert results["yeast-partial", "topk-hard"]["diagnostics"]["fn_rate"] > share


def test_text_set_with_frozen_minilm_features(run_harness, data_dir):
    done = run_harness(
        "bench",
        "--task", "goemotions",
        "--model", "linear", "--model", "minilm-adapter",
        "--loss", "bce",
        "--sampler", "partial-fc",
        "--param", "task.goemotions.max_train=400",
        "--param", "task.goemotions.max_test=300",
        "--param", "task.goemotions.epochs=2",
        "--jobs", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["model"]: r for r in results_json(run_harness)}
    assert set(results) == {"linear", "minilm-adapter"}
    for result in results.values():
        assert result["status"] == "ok"
        assert 0 < result["metrics"]["map"] < 1
        assert result["diagnostics"]["num_labels"] == 28


def test_reported_map_is_scikit_learns_on_the_models_scores(data_dir):
    """The task's evaluation calls scikit-learn on the classifier's logits."""
    task = {t.name: t for t in TASKS}["emotions"](epochs=2)
    folder = data_dir / "mulan-emotions"
    context = make_context(sampler=AllLabels(), loss=BCE())
    data = task.load(DatasetRef(name="e", path=str(folder), sha256="0"), context)
    model = LinearLabels()
    task.fit(data, model, context)
    evaluation = task.evaluate(data, model, context)
    scores = predict(model, task._features["test"], context.device)
    assert evaluation.metrics["map"] == pytest.approx(
        average_precision_score(data.test_labels, scores, average="macro"), abs=1e-12
    )
