"""The built-in runner: contract checks and blaming the right component."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from harness import Evaluation, Loss, Sampler, Task, TextEncoder, hookimpl
from harness.context import ComponentRef, RunContext
from harness.errors import ContractError
from harness.plugin import PluginOptions, make_plugin_host
from harness.runner import execute
from harness.testing import make_candidate_batch, make_context
from harness.types import DatasetRef, Negatives, Run, RunSpec, ScoredBatch


class TinyTask(Task):
    name = "tiny-task"
    family = "retrieval"
    main_metric = "score"
    mode = "ok"

    def __init__(self, *, mode: str = "ok") -> None:
        self.mode = mode

    def locate(self, locator):
        return DatasetRef(name="tiny", path=".", sha256="0")

    def load(self, dataset, context):
        return torch.ones(4, 3)

    def fit(self, data, model, context):
        model.embed(data, side="query")

    def evaluate(self, data, model, context):
        if self.mode == "no-main":
            return Evaluation(metrics={"other": 1.0})
        if self.mode == "nan-item":
            return Evaluation(
                metrics={"score": 1.0}, per_item={"score": {"q1": float("nan")}}
            )
        return Evaluation(
            metrics={"score": float(model.embed(data, side="query").sum())}
        )


class TinyModel(TextEncoder):
    name = "tiny-model"
    families = frozenset({"retrieval"})

    def __init__(self, *, lr=None, explode: bool = False) -> None:
        super().__init__(lr=lr)
        self.explode = explode

    def featurize(self, texts, *, side, context):
        return torch.ones(len(texts), 3)

    def embed(self, features, *, side):
        if self.explode:
            raise ZeroDivisionError("model arithmetic went wrong")
        return features


class Plugin:
    @hookimpl
    def harness_register_tasks(self):
        return [TinyTask]

    @hookimpl
    def harness_register_models(self):
        return [TinyModel]


@pytest.fixture(scope="module")
def host():
    return make_plugin_host(
        PluginOptions(autoload=False), extra=[("tiny-plugin", Plugin())]
    )


def run_tiny(host, task_params=None, model_params=None):
    params = {"task": task_params or {}, "model": model_params or {}}
    spec = RunSpec(
        task="tiny-task",
        model="tiny-model",
        loss="infonce",
        sampler="random",
        params={k: v for k, v in params.items() if v},
    )
    run = Run(
        spec=spec,
        family="retrieval",
        dataset=DatasetRef(name="tiny", path=".", sha256="0"),
        versions={},
        main_metric="score",
    )
    context = RunContext(
        run=run,
        registries=host.registries,
        device=torch.device("cpu"),
        cache_dir=".",
        seed=0,
    )
    return execute(run, context, host.registries)


def test_ok_run_has_metrics_timings_and_environment(host):
    result = run_tiny(host)
    assert result.status == "ok", result.error
    assert result.metrics == {"score": 12.0}
    assert {"setup", "load", "train", "evaluate", "total"} <= set(result.timings)
    assert {"setup_cpu", "train_cpu", "evaluate_cpu", "total_cpu"} <= set(
        result.timings
    )
    assert result.environment["torch_threads"] >= 1


def test_exception_is_blamed_on_the_component_whose_code_raised(host):
    result = run_tiny(host, model_params={"explode": True})
    assert result.error == (
        "model 'tiny-model' (plugin 'tiny-plugin'): "
        "raised ZeroDivisionError: model arithmetic went wrong"
    )


def test_bad_constructor_argument_fails_the_run_naming_the_component(host):
    result = run_tiny(host, model_params={"explode": True, "nonsense": 1})
    assert result.status == "failed"
    assert result.error.startswith(
        "model 'tiny-model' (plugin 'tiny-plugin'): could not be created"
    )


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("no-main", "did not return the main metric 'score'"),
        ("nan-item", "per-item 'score' of item 'q1' is nan"),
    ],
)
def test_evaluation_contract(host, mode, message):
    result = run_tiny(host, task_params={"mode": mode})
    assert result.status == "failed"
    assert result.error.startswith("task 'tiny-task' (plugin 'tiny-plugin'):")
    assert message in result.error


# -- the guarded calls of RunContext -------------------------------------------------


class Returns(Sampler):
    name = "returns"
    families = frozenset({"retrieval"})

    def __init__(self, value):
        self.value = value

    def sample(self, batch, num_negatives, generator):
        return self.value(batch, num_negatives)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (lambda b, k: [[0] * k] * b.size, "returned list, not a tensor"),
        (lambda b, k: torch.zeros(b.size, k + 1, dtype=torch.long), "returned shape"),
        (lambda b, k: torch.zeros(b.size, k), "not integer"),
        (lambda b, k: torch.full((b.size, k), b.num_candidates), "outside"),
        (lambda b, k: torch.full((b.size, k), -1), "outside"),
        # these three were blamed on the task, or (complex) passed
        (
            lambda b, k: torch.zeros(b.size, k, dtype=torch.long).to_sparse(),
            "returned a torch.sparse_coo tensor, not a dense \\(strided\\) one",
        ),
        (
            lambda b, k: torch.nested.nested_tensor(
                [torch.zeros(k, dtype=torch.long)], layout=torch.jagged
            ),
            "returned a nested tensor, not a dense \\(strided\\) one",
        ),
        (lambda b, k: torch.zeros(b.size, k, dtype=torch.complex64), "not integer"),
        (
            lambda b, k: torch.zeros(b.size, k, dtype=torch.long, device="meta"),
            "returned positions on meta, which cannot be moved to cpu",
        ),
    ],
)
def test_sampler_output_is_checked(value, message):
    context = make_context(sampler=Returns(value))
    with pytest.raises(ContractError, match=message) as failure:
        context.sample_negatives(make_candidate_batch(), 3)
    assert failure.value.kind == "sampler"


def test_a_broken_fewest_allowed_promise_is_the_tasks_fault():
    """A protocol that over-counts the drawable columns leads a trusting
    sampler to a known positive: the run fails under the task's name."""
    from negbench_plugins.samplers.random import RandomSampler

    known = torch.zeros(4, 10, dtype=torch.bool)
    known[2, 1:] = True  # row 2 has a single drawable column
    batch = make_candidate_batch(batch_size=4, num_candidates=10)
    context = make_context(sampler=RandomSampler())
    context.refs["task"] = ComponentRef("task", "miscounting", "test-plugin")
    lying = replace(batch, known_positive=known, fewest_allowed=9)
    with pytest.raises(ContractError) as failure:
        context.sample_negatives(lying, 3)
    assert failure.value.kind == "task" and failure.value.name == "miscounting"
    assert "at least 9 candidates" in str(failure.value)
    assert "but a row has 1" in str(failure.value)
    # the honest count: the sampler finds the short row and repeats its column
    honest = replace(batch, known_positive=known, fewest_allowed=1)
    answer = context.sample_negatives(honest, 3)
    assert answer.positions[2].tolist() == [0, 0, 0]


class BadLoss(Loss):
    name = "bad-loss"
    families = frozenset({"retrieval"})

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, positive, negative, mask):
        return self.out(positive)


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (lambda p: p.sum(), "expected \\(4,\\): one loss per anchor, unreduced"),
        (lambda p: p * float("inf"), "returned infinite loss values"),
        (lambda p: p * float("nan"), "returned NaN loss values"),
        (lambda p: "x", "returned str, not a tensor"),
        # these were blamed on the task, or (detached) trained nothing in silence
        (lambda p: p.long(), "returned dtype torch.int64, not floating point"),
        (lambda p: p.to(torch.complex64), "dtype torch.complex64, not floating"),
        (lambda p: p.to_sparse(), "returned a torch.sparse_coo tensor, not a dense"),
        (lambda p: p.to("meta"), "returned a meta tensor, not a dense one"),
        (lambda p: p.detach(), "returned losses without a gradient"),
    ],
)
def test_loss_output_is_checked(out, message):
    context = make_context(loss=BadLoss(out))
    with pytest.raises(ContractError, match=message) as failure:
        context.compute_loss(
            ScoredBatch(
                positive=torch.ones(4, requires_grad=True),
                negative=torch.zeros(4, 2),
                mask=torch.ones(4, 2, dtype=torch.bool),
            )
        )
    assert failure.value.kind == "loss"


def test_a_loss_without_gradient_is_fine_where_the_scores_have_none():
    # a frozen model's scores: nothing to train, nothing to complain about
    context = make_context(loss=BadLoss(lambda p: p.detach()))
    batch = ScoredBatch(
        positive=torch.ones(4),
        negative=torch.zeros(4, 2),
        mask=torch.ones(4, 2, dtype=torch.bool),
    )
    assert float(context.compute_loss(batch)) == 1.0


def test_diagnostics_measure_false_negatives_and_hardness():
    from negbench_plugins.samplers.topk_hard import TopKHard

    context = make_context(sampler=TopKHard())
    batch = make_candidate_batch(batch_size=4, num_candidates=10, positives_per_row=0)
    oracle = torch.zeros(4, 10, dtype=torch.bool)
    oracle[:, 0] = True  # the top candidate of each row is a hidden positive
    ranks = torch.arange(1, 11).expand(4, 10)
    chosen = context.sample_negatives(
        batch, 2, oracle_positive=oracle, oracle_is_exact=True, ranks=ranks
    )
    assert chosen.positions.tolist() == [[0, 1]] * 4  # hardest two, sorted scores
    summary = context.diagnostics.summary()
    assert summary["fn_rate"] == pytest.approx(0.5)
    assert summary["negatives_sampled"] == 8
    assert summary["neg_rank_mean"] == pytest.approx(1.5)
    gaps = batch.scores[:, :2] - batch.positive_scores[:, None]
    assert summary["hardness_gap_mean"] == pytest.approx(float(gaps.mean()), abs=1e-6)


class Suspicious(Sampler):
    """Returns the two hardest columns and suspects the first of them."""

    name = "suspicious"
    families = frozenset({"retrieval"})

    def sample(self, batch, num_negatives, generator):
        positions = torch.arange(2).expand(batch.size, 2)
        suspected = torch.zeros(batch.size, 2, dtype=torch.bool)
        suspected[:, 0] = True
        return Negatives(positions=positions, suspected=suspected)


def test_false_negative_detection_is_scored_against_the_oracle():
    context = make_context(sampler=Suspicious())
    batch = make_candidate_batch(batch_size=4, num_candidates=10, positives_per_row=0)
    oracle = torch.zeros(4, 10, dtype=torch.bool)
    oracle[:2, 0] = True  # right about 2 of its 4 suspicions, misses column 1 twice
    oracle[2:, 1] = True
    answer = context.sample_negatives(
        batch, 2, oracle_positive=oracle, oracle_is_exact=True
    )
    assert answer.suspected.tolist() == [[True, False]] * 4
    summary = context.diagnostics.summary()
    assert summary["fn_detection_precision"] == pytest.approx(0.5)
    assert summary["fn_detection_recall"] == pytest.approx(0.5)


def test_malformed_suspicions_are_a_contract_violation():
    class Bad(Suspicious):
        def sample(self, batch, num_negatives, generator):
            return Negatives(
                positions=torch.zeros(batch.size, 2, dtype=torch.long),
                suspected=torch.ones(1),
            )

    with pytest.raises(ContractError, match="'suspected' must be a bool tensor"):
        make_context(sampler=Bad()).sample_negatives(
            make_candidate_batch(positives_per_row=0), 2
        )

    class OnMeta(Suspicious):
        def sample(self, batch, num_negatives, generator):
            answer = super().sample(batch, num_negatives, generator)
            return replace(answer, suspected=answer.suspected.to("meta"))

    with pytest.raises(
        ContractError, match="returned 'suspected' on meta, which cannot be moved"
    ):
        make_context(sampler=OnMeta()).sample_negatives(
            make_candidate_batch(positives_per_row=0), 2
        )
