"""Contract tests for component authors (pytorch-metric-learning / PyKEEN style).

Subclass a contract in your own test module and name the class under test;
pytest collects the inherited tests::

    from harness.testing import SamplerContract
    from my_plugin import MySampler

    class TestMySampler(SamplerContract):
        sampler_cls = MySampler
        sampler_kwargs = {"alpha": 0.5}

The sampler and loss checks also run inside every real run (the harness
enforces them), so a component that passes here will not fail a benchmark on
its contract.  :class:`ModelContract` and :class:`TaskContract` add real runs
in the test process (:func:`run_in_process`, as ``harness bench`` executes
them) on the tiny in-memory task of each family (``tiny-retrieval``,
``tiny-sts``, ``tiny-kge``, ``tiny-multilabel``), so they need no dataset.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import numpy as np
import torch

from .components import (
    Component,
    KGEModel,
    LabelModel,
    Loss,
    Model,
    Sampler,
    Task,
    TextEncoder,
)
from .context import ComponentRef, RunContext
from .errors import DatasetUnavailable
from .plugin import PluginHost, PluginOptions, hookimpl, make_plugin_host
from .registry import Registries
from .sampling import cap_negatives
from .types import (
    NONE,
    CandidateBatch,
    DatasetRef,
    LabelScores,
    Negatives,
    Run,
    RunResult,
    RunSpec,
    ScoredBatch,
)

__all__ = [
    "FAMILY_PARTNERS",
    "TINY_TASKS",
    "LabelLossContract",
    "LossContract",
    "ModelContract",
    "SamplerContract",
    "TaskContract",
    "bench_once",
    "component_plugin",
    "make_candidate_batch",
    "make_context",
    "make_label_batch",
    "make_run_results",
    "make_scored_batch",
    "run_in_process",
    "write_tiny_beir",
]


def make_candidate_batch(
    *,
    batch_size: int = 8,
    num_candidates: int = 30,
    positives_per_row: int = 2,
    seed: int = 0,
    sorted_scores: bool = True,
) -> CandidateBatch:
    """A random batch; known positives sit at random columns of each row."""
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(batch_size, num_candidates, generator=gen) * 2 - 1
    if sorted_scores:
        scores = scores.sort(dim=1, descending=True).values
    known = torch.zeros(batch_size, num_candidates, dtype=torch.bool)
    for row in range(batch_size):
        cols = torch.randperm(num_candidates, generator=gen)[:positives_per_row]
        known[row, cols] = True
    positive_scores = torch.rand(batch_size, generator=gen) * 2 - 1
    # structural neighbours (needs_structure samplers): about a third of each row
    neighbour = torch.rand(batch_size, num_candidates, generator=gen) < 0.3
    return CandidateBatch(
        anchor_ids=torch.arange(batch_size),
        candidate_ids=torch.randint(
            10_000, (batch_size, num_candidates), generator=gen
        ),
        scores=scores,
        positive_scores=positive_scores,
        known_positive=known,
        neighbour=neighbour,
    )


def make_context(
    *,
    sampler: Sampler | None = None,
    loss: Loss | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> RunContext:
    """A context with no task, good for calling guarded components directly.

    :param cache_dir: where featurizers may cache arrays (default: the
        current folder; pass a temporary one when a model caches).
    """
    run = Run(
        spec=RunSpec(task="contract", model="contract", seed=seed),
        family="retrieval",
        dataset=DatasetRef(name="contract", path=".", sha256="0"),
        versions={},
        main_metric="none",
    )
    context = RunContext(
        run=run,
        registries=Registries(),
        device=torch.device("cpu"),
        cache_dir=cache_dir or Path("."),
        seed=seed,
        sampler=sampler,
        loss=loss,
    )
    if sampler is not None:
        context.refs["sampler"] = ComponentRef("sampler", sampler.name, "contract-test")
    if loss is not None:
        context.refs["loss"] = ComponentRef("loss", loss.name, "contract-test")
    return context


def _positions(answer: torch.Tensor | Negatives) -> torch.Tensor:
    return answer.positions if isinstance(answer, Negatives) else answer


def make_scored_batch(
    *, seed: int = 0, batch_size: int = 6, num_negatives: int = 9, dim: int = 8
) -> ScoredBatch:
    """A batch with embeddings (requiring grad) and the scores they imply."""
    gen = torch.Generator().manual_seed(seed)

    def unit(*shape: int) -> torch.Tensor:
        x = torch.randn(*shape, generator=gen)
        out: torch.Tensor = (x / x.norm(dim=-1, keepdim=True)).requires_grad_()
        return out

    anchors, positives = unit(batch_size, dim), unit(batch_size, dim)
    negatives = unit(batch_size, num_negatives, dim)
    mask = torch.rand(batch_size, num_negatives, generator=gen) > 0.3
    mask[:, 0] = True
    return ScoredBatch(
        positive=(anchors * positives).sum(-1),
        negative=torch.einsum("bd,bkd->bk", anchors, negatives),
        mask=mask,
        suspected=(torch.rand(batch_size, num_negatives, generator=gen) > 0.7) & mask,
        anchor_embeddings=anchors,
        positive_embeddings=positives,
        negative_embeddings=negatives,
        positive_labels=torch.rand(batch_size, generator=gen) * 5,
    )


class SamplerContract:
    """Checks every sampler must pass: shape, range, positives, determinism."""

    sampler_cls: ClassVar[type[Sampler]]
    sampler_kwargs: ClassVar[dict[str, Any]] = {}
    num_negatives: ClassVar[int] = 5

    def make_sampler(self) -> Sampler:
        return self.sampler_cls(**self.sampler_kwargs)

    def _k(self, sampler: Sampler, batch: CandidateBatch) -> int:
        # as protocols do: ALL_CANDIDATES becomes the most allowed in a row
        return cap_negatives(
            sampler.num_negatives(self.num_negatives), batch.known_positive
        )

    def _sample(
        self, sampler: Sampler, batch: CandidateBatch, seed: int
    ) -> torch.Tensor:
        k = self._k(sampler, batch)
        return _positions(sampler.sample(batch, k, torch.Generator().manual_seed(seed)))

    def test_shape_dtype_and_range(self) -> None:
        batch = make_candidate_batch()
        sampler = self.make_sampler()
        out = self._sample(sampler, batch, 0)
        assert isinstance(out, torch.Tensor), (
            f"sample() returned {type(out).__name__}: return a tensor of positions "
            "(or harness.Negatives)"
        )
        expected = (batch.size, self._k(sampler, batch))
        assert tuple(out.shape) == expected, (
            f"sample() returned shape {tuple(out.shape)}, expected {expected}: one "
            "row per anchor, num_negatives columns"
        )
        assert not out.dtype.is_floating_point, (
            f"sample() returned {out.dtype}: positions must be integers (torch.long)"
        )
        if out.numel():
            assert int(out.min()) >= 0 and int(out.max()) < batch.num_candidates, (
                "sample() returned positions outside [0, batch.num_candidates): "
                "return column positions into the batch, not candidate ids"
            )

    def test_never_returns_a_known_positive(self) -> None:
        sampler = self.make_sampler()
        for seed in range(20):
            # Up to half of each row are positives, which stresses the fallback.
            batch = make_candidate_batch(seed=seed, positives_per_row=1 + seed % 15)
            out = self._sample(sampler, batch, seed)
            assert not bool(batch.known_positive.gather(1, out.long()).any()), (
                "sample() chose a column where batch.known_positive is True: mask "
                "the known positives out before choosing"
            )

    def test_few_allowed_candidates(self) -> None:
        """Fewer allowed candidates than K must still give valid negatives."""
        batch = make_candidate_batch(num_candidates=8, positives_per_row=5)
        sampler = self.make_sampler()
        out = self._sample(sampler, batch, 0)
        expected = (batch.size, self._k(sampler, batch))
        assert tuple(out.shape) == expected, (
            f"with few allowed candidates sample() returned shape "
            f"{tuple(out.shape)}, expected {expected}"
        )
        assert not bool(batch.known_positive.gather(1, out.long()).any()), (
            "with few allowed candidates sample() chose a known positive"
        )

    def test_deterministic_under_a_seed(self) -> None:
        batch = make_candidate_batch(seed=3)
        first = self._sample(self.make_sampler(), batch, 7)
        second = self._sample(self.make_sampler(), batch, 7)
        assert torch.equal(first, second), (
            "two calls with generators seeded alike gave different negatives: draw "
            "randomness only from the `generator` argument"
        )

    def test_declared_score_blind_samplers_ignore_the_scores(self) -> None:
        """``reads_scores = False`` lets a protocol pass NaN scores: the answer
        must be the same as with the real scores."""
        sampler = self.make_sampler()
        if sampler.reads_scores:
            import pytest  # only the test run imports it

            pytest.skip(f"{sampler.name} reads scores (reads_scores = True)")
        batch = make_candidate_batch(seed=4)
        blind = replace(
            batch,
            scores=torch.full_like(batch.scores, float("nan")),
            positive_scores=torch.full_like(batch.positive_scores, float("nan")),
        )
        assert torch.equal(
            self._sample(sampler, batch, 9), self._sample(self.make_sampler(), blind, 9)
        )

    def test_passes_the_harness_checks(self) -> None:
        sampler = self.make_sampler()
        context = make_context(sampler=sampler)
        batch = make_candidate_batch(seed=5)
        k = self._k(sampler, batch)
        out = context.sample_negatives(batch, k)
        assert tuple(out.positions.shape) == (batch.size, k)


class LossContract:
    """Checks every loss must pass: shape, finiteness, gradients, the mask."""

    loss_cls: ClassVar[type[Loss]]
    loss_kwargs: ClassVar[dict[str, Any]] = {}
    #: whether raising the positive's score can never raise the loss
    monotone_in_positive: ClassVar[bool] = True

    def make_loss(self) -> Loss:
        return self.loss_cls(**self.loss_kwargs)

    def test_one_finite_loss_per_anchor(self) -> None:
        batch = make_scored_batch()
        out = self.make_loss().forward_batch(batch)
        assert tuple(out.shape) == (batch.size,), (
            f"the loss returned shape {tuple(out.shape)}, expected ({batch.size},): "
            "one value per anchor, not a mean"
        )
        assert bool(torch.isfinite(out).all()), "the loss returned NaN or inf"

    def test_backward_reaches_the_anchors(self) -> None:
        batch = make_scored_batch()
        self.make_loss().forward_batch(batch).mean().backward()
        assert batch.anchor_embeddings is not None
        grad = batch.anchor_embeddings.grad
        assert grad is not None and bool(torch.isfinite(grad).all()), (
            "no finite gradient reached the anchor embeddings: keep the loss a "
            "differentiable function of the scores (no .detach(), .item(), numpy)"
        )
        assert float(grad.abs().sum()) > 0, "the gradient on the anchors is zero"

    def test_masked_negatives_do_not_matter(self) -> None:
        batch = make_scored_batch(seed=1)
        loss = self.make_loss()
        before = loss.forward_batch(batch)
        assert batch.negative_embeddings is not None
        changed = replace(
            batch,
            negative=torch.where(batch.mask, batch.negative, batch.negative + 5.0),
            negative_embeddings=torch.where(
                batch.mask[..., None],
                batch.negative_embeddings,
                -batch.negative_embeddings,
            ),
        )
        after = loss.forward_batch(changed)
        assert torch.allclose(before, after, atol=1e-6), (
            "changing negatives where mask is False changed the loss: ignore "
            "masked-out columns (padding)"
        )

    def test_extreme_scores_stay_finite(self) -> None:
        batch = make_scored_batch(seed=2)
        scaled = replace(
            batch, positive=batch.positive * 50, negative=batch.negative * 50
        )
        out = self.make_loss().forward_batch(scaled)
        assert bool(torch.isfinite(out).all()), (
            "scores x50 gave NaN/inf: use logsumexp/softplus instead of exp/log"
        )

    def test_a_better_positive_never_costs_more(self) -> None:
        if not self.monotone_in_positive:
            return
        batch = make_scored_batch(seed=3)
        loss = self.make_loss()
        low = loss.forward_batch(batch).detach()
        high = loss.forward_batch(
            replace(batch, positive=batch.positive + 0.5)
        ).detach()
        assert bool((high <= low + 1e-6).all()), (
            "raising the positive's score raised the loss (set "
            "monotone_in_positive = False if that is intended)"
        )

    def test_passes_the_harness_checks(self) -> None:
        value = make_context(loss=self.make_loss()).compute_loss(
            make_scored_batch(seed=4)
        )
        assert value.ndim == 0


def make_label_batch(
    *, seed: int = 0, batch_size: int = 6, num_labels: int = 12, partial: bool = True
) -> ScoredBatch:
    """A multi-label batch: logits (requiring grad) with a :class:`LabelScores`.

    About a quarter of the labels are observed positives; about two thirds of
    the columns are switched on (every positive among them); with
    ``partial``, every non-positive label is an assumed negative.
    """
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch_size, num_labels, generator=gen) * 2).requires_grad_()
    targets = (torch.rand(batch_size, num_labels, generator=gen) < 0.25).float()
    targets[:, 0] = 1.0
    mask = (torch.rand(batch_size, num_labels, generator=gen) < 0.66) | targets.bool()
    lowest = logits.masked_fill(~targets.bool(), float("inf")).min(dim=1).values
    return ScoredBatch(
        positive=lowest,
        negative=logits[:, 1:],
        mask=mask[:, 1:],
        labels=LabelScores(
            logits=logits,
            targets=targets,
            mask=mask,
            assumed=~targets.bool() if partial else torch.zeros_like(mask),
            epoch=3,
        ),
    )


class LabelLossContract:
    """Checks every multi-label loss must pass (losses reading ``batch.labels``)."""

    loss_cls: ClassVar[type[Loss]]
    loss_kwargs: ClassVar[dict[str, Any]] = {}
    #: whether raising a positive label's logit can never raise the loss
    monotone_in_positive: ClassVar[bool] = True

    def make_loss(self) -> Loss:
        return self.loss_cls(**self.loss_kwargs)

    @staticmethod
    def _labels(batch: ScoredBatch) -> LabelScores:
        assert batch.labels is not None
        return batch.labels

    def test_one_finite_loss_per_example(self) -> None:
        batch = make_label_batch()
        out = self.make_loss().forward_batch(batch)
        assert tuple(out.shape) == (batch.size,), (
            f"the loss returned shape {tuple(out.shape)}, expected ({batch.size},): "
            "one value per anchor, not a mean"
        )
        assert bool(torch.isfinite(out).all()), "the loss returned NaN or inf"

    def test_backward_reaches_the_logits(self) -> None:
        batch = make_label_batch()
        self.make_loss().forward_batch(batch).sum().backward()
        grad = self._labels(batch).logits.grad
        assert grad is not None and bool(torch.isfinite(grad).all()), (
            "no finite gradient reached the anchor embeddings: keep the loss a "
            "differentiable function of the scores (no .detach(), .item(), numpy)"
        )
        assert float(grad.abs().sum()) > 0, "the gradient on the anchors is zero"

    def test_masked_columns_do_not_matter(self) -> None:
        batch = make_label_batch(seed=1)
        loss = self.make_loss()
        view = self._labels(batch)
        before = loss.forward_batch(batch)
        moved = torch.where(view.mask, view.logits, view.logits + 7.0)
        after = loss.forward_batch(replace(batch, labels=replace(view, logits=moved)))
        assert torch.allclose(before, after, atol=1e-6)

    def test_extreme_logits_stay_finite(self) -> None:
        batch = make_label_batch(seed=2)
        view = self._labels(batch)
        scaled = replace(batch, labels=replace(view, logits=view.logits * 60))
        out = self.make_loss().forward_batch(scaled)
        assert bool(torch.isfinite(out).all()), (
            "scores x50 gave NaN/inf: use logsumexp/softplus instead of exp/log"
        )

    def test_a_better_positive_never_costs_more(self) -> None:
        if not self.monotone_in_positive:
            return
        batch = make_label_batch(seed=3, partial=False)
        view = self._labels(batch)
        loss = self.make_loss()
        low = loss.forward_batch(batch).detach()
        raised = view.logits + 0.5 * view.targets
        high = loss.forward_batch(
            replace(batch, labels=replace(view, logits=raised))
        ).detach()
        assert bool((high <= low + 1e-6).all()), (
            "raising the positive's score raised the loss (set "
            "monotone_in_positive = False if that is intended)"
        )

    def test_passes_the_harness_checks(self) -> None:
        value = make_context(loss=self.make_loss()).compute_loss(
            make_label_batch(seed=4)
        )
        assert value.ndim == 0


def make_run_results(
    *,
    tasks: dict[str, tuple[str, str]] | None = None,
    methods: Sequence[tuple[str, str, str]] = (
        ("bow", "infonce", "random"),
        ("bow", "infonce", "topk-hard"),
        ("bow", "margin", "simans"),
    ),
    seeds: int = 2,
    items: int = 30,
    seed: int = 0,
) -> list[RunResult]:
    """Plausible stored results with per-item scores, for leaderboard tests
    and build benchmarks (no training: numbers are drawn, ids are real).

    :param tasks: task name -> (family, main metric); a ``spearman`` task gets
        STS-style ``cosine``/``gold`` pairs instead of per-item main scores.
    :param methods: (model, loss, sampler) triples; later ones score higher
        and sample harder, more often false negatives.
    """
    tasks = tasks or {
        "scifact": ("retrieval", "ndcg@10"),
        "stsb": ("sts", "spearman"),
        "nations": ("kge", "mrr"),
        "yeast": ("multilabel", "map"),
    }
    from scipy.stats import spearmanr  # heavy; only this helper needs it

    rng = np.random.default_rng(seed)
    out = []
    for task, (family, metric) in tasks.items():
        dataset = DatasetRef(name=task, path="/data/" + task, sha256="0" * 64)
        base = rng.uniform(0.2, 0.6, items)
        gold = rng.uniform(0, 5, items)
        for number, (model, loss, sampler) in enumerate(methods):
            for s in range(seeds):
                spec = RunSpec(
                    task=task, model=model, loss=loss, sampler=sampler, seed=s
                )
                versions = {"task": "1", "model": "1", "loss": "1", "sampler": "1"}
                run = Run(
                    spec=spec,
                    family=family,
                    dataset=dataset,
                    versions=versions,
                    main_metric=metric,
                )
                ids = [f"q{i}" for i in range(items)]
                if metric == "spearman":
                    noise = rng.normal(0, 3.0 / (1 + number), items)
                    cosine = gold + noise
                    score = float(spearmanr(cosine, gold).statistic)
                    per_item = {
                        "cosine": dict(zip(ids, cosine.tolist(), strict=True)),
                        "gold": dict(zip(ids, gold.tolist(), strict=True)),
                    }
                else:
                    values = np.clip(
                        base + 0.05 * number + rng.normal(0, 0.05, items), 0, 1
                    )
                    score = float(values.mean())
                    per_item = {metric: dict(zip(ids, values.tolist(), strict=True))}
                hardness = -2.0 + 0.5 * number + rng.normal(0, 0.05)
                out.append(
                    RunResult(
                        run_id=run.run_id,
                        spec=spec,
                        family=family,
                        status="ok",
                        main_metric=metric,
                        metrics={metric: score, "other": score / 2},
                        per_item=per_item,
                        diagnostics={
                            "fn_rate_lower_bound": 0.01 * (1 + number),
                            "hardness_gap_q10": hardness - 1.0,
                            "hardness_gap_q50": hardness,
                            "hardness_gap_q90": hardness + 1.0,
                            "hardness_gap_mean": hardness,
                        },
                        timings={"train": 1.0 + number, "total": 2.0 + number},
                        environment={"python": "3.11", "torch": "2.13.0"},
                        dataset_sha256=dataset.sha256,
                        versions=versions,
                        started_at="2026-01-01T00:00:00+00:00",
                        finished_at="2026-01-01T00:00:05+00:00",
                    )
                )
    return out


_WORDS = [f"w{i}" for i in range(120)]


def write_tiny_beir(folder: Path, *, seed: int = 0, with_train: bool = True) -> Path:
    """A small BEIR folder: 10 topics, 80 docs, 40 train and 20 test queries.

    Documents of a topic share topic words; a query borrows words from one
    document, which is its (only) labelled positive.
    """
    rng = random.Random(seed)
    topics = [_WORDS[i * 12 : (i + 1) * 12] for i in range(10)]
    docs: list[dict[str, str]] = []
    queries: list[dict[str, str]] = []
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for d in range(80):
        topic = topics[d % 10]
        words = rng.sample(topic, 6) + rng.sample(_WORDS, 3) + [f"doc{d}"]
        docs.append(
            {"_id": f"d{d}", "title": f"title {d % 10}", "text": " ".join(words)}
        )
    for q in range(60):
        target = rng.randrange(80)
        text = " ".join([*docs[target]["text"].split()[:4], f"doc{target}"])
        queries.append({"_id": f"q{q}", "text": text})
        (train if q < 40 else test).append((f"q{q}", f"d{target}"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in queries)
    )
    (folder / "qrels").mkdir(exist_ok=True)
    header = "query-id\tcorpus-id\tscore\n"
    rows = test if with_train else train + test
    (folder / "qrels" / "test.tsv").write_text(
        header + "".join(f"{q}\t{d}\t1\n" for q, d in rows)
    )
    if with_train:
        (folder / "qrels" / "train.tsv").write_text(
            header + "".join(f"{q}\t{d}\t1\n" for q, d in train)
        )
    return folder


# -- one real run, in this process ------------------------------------------------

#: the components a tiny run of a family pairs with the one under test:
#: (model, loss, sampler); all are cheap built-ins
FAMILY_PARTNERS: dict[str, tuple[str, str, str]] = {
    "retrieval": ("bow", "infonce", "random"),
    "sts": ("bow", "infonce", "in-batch"),
    "kge": ("distmult", "nssa", "uniform"),
    "multilabel": ("mlp", "bce", "all"),
}
#: the built-in in-memory task of each family (``negbench_plugins.tasks.tiny``)
TINY_TASKS: dict[str, str] = {
    "retrieval": "tiny-retrieval",
    "sts": "tiny-sts",
    "kge": "tiny-kge",
    "multilabel": "tiny-multilabel",
}
_REGISTER_HOOK = {
    "task": "harness_register_tasks",
    "model": "harness_register_models",
    "loss": "harness_register_losses",
    "sampler": "harness_register_samplers",
}


def component_plugin(*classes: type[Component]) -> object:
    """A plugin object registering ``classes``, for ``make_plugin_host(extra=)``:
    a component defined in a test module runs without a plugin module."""
    plugin = type("InlineComponents", (), {})()
    for kind, hook in _REGISTER_HOOK.items():
        chosen = [c for c in classes if c.kind == kind]
        if chosen:
            setattr(plugin, hook, hookimpl(lambda chosen=chosen: list(chosen)))
    return plugin


def _host_with(classes: Sequence[type[Component]]) -> PluginHost:
    """Built-ins only, plus those of ``classes`` that are not built-ins."""
    host = make_plugin_host(PluginOptions(autoload=False))
    missing = []
    for cls in classes:
        registry = host.registries[cls.kind]
        if cls.name not in registry.names() or registry.get(cls.name).cls is not cls:
            missing.append(cls)
    if not missing:
        return host
    plugin = component_plugin(*missing)
    return make_plugin_host(
        PluginOptions(autoload=False), extra=[("contract-test", plugin)]
    )


def bench_once(
    host: PluginHost,
    chosen: dict[str, str],
    *,
    params: Sequence[str] = (),
    jobs: int = 0,
    plugin_options: PluginOptions | None = None,
    timeout: float | None = None,
) -> tuple[RunResult | None, str]:
    """Seed 0 of the matrix ``chosen`` (kind -> name) as ``harness bench``
    executes it, into a throw-away store: (the result, or why there is none).

    :param params: ``KIND.NAME.KEY=VALUE`` strings, as ``--param`` takes them.
    :param jobs: 0 runs in this process; 1 in a worker process, so a crash
        fails the run instead of the caller.
    :param plugin_options: how a worker process loads the plugins (jobs=1).
    :param timeout: seconds before the run fails (worker processes only).
    """
    import io
    import tempfile

    from rich.console import Console

    from .config import Selections
    from .session import BenchOptions, Session

    with tempfile.TemporaryDirectory(prefix="harness-once-") as tmp:
        options = BenchOptions(
            selections=Selections(**{kind: [name] for kind, name in chosen.items()}),
            seeds=1,
            params=list(params),
            jobs=jobs,
            timeout=timeout,
            store=Path(tmp) / "results.db",
            plugin_options=plugin_options or PluginOptions(autoload=False),
        )
        # the bench's own output is not the caller's
        session = Session(host, options, Console(file=io.StringIO(), width=160))
        session.run()
        if not session.results:
            return None, "; ".join(session.notes) or "nothing ran"
        return session.results[0], ""


_RUNS: dict[tuple[Any, ...], RunResult] = {}


def run_in_process(
    *,
    task: str,
    model: str | None = None,
    loss: str | None = None,
    sampler: str | None = None,
    components: Sequence[type[Component]] = (),
    params: Sequence[str] = (),
    reuse: bool = False,
) -> RunResult:
    """Seed 0 of one run in this process, as ``harness bench`` executes it.

    Kinds not named take the task family's partner (:data:`FAMILY_PARTNERS`);
    an untrainable model takes no loss and no sampler.

    :param components: the classes under test; those that are not built-ins
        are registered for this run.
    :param reuse: answer a repeated identical call from memory (contract
        classes share one run among their tests).
    :raises AssertionError: when the run was not executed (the data is
        missing, the matrix skipped it); the message says why.
    """
    key = (task, model, loss, sampler, tuple(components), tuple(params))
    if reuse and key in _RUNS:
        return _RUNS[key]
    host = _host_with(components)
    family = host.registries.tasks.get(task).cls.info(task).family
    partners = dict(
        zip(("model", "loss", "sampler"), FAMILY_PARTNERS.get(family, ()), strict=False)
    )
    chosen = {"task": task, "model": model or partners.get("model", "")}
    if host.registries.models.get(chosen["model"]).cls.trainable:
        chosen["loss"] = loss or partners.get("loss", NONE)
        chosen["sampler"] = sampler or partners.get("sampler", NONE)
    result, why_not = bench_once(host, chosen, params=params)
    assert result is not None, f"{' · '.join(chosen.values())} did not run: {why_not}"
    _RUNS[key] = result
    return result


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and bool(np.isfinite(value))


def _assert_ran(result: RunResult, what: str) -> None:
    assert result.ok, f"{what} failed: {result.error}"
    metric = result.metrics.get(result.main_metric)
    assert _finite(metric), (
        f"{what}: the main metric {result.main_metric!r} is {metric!r}; "
        "evaluate() must return it as a finite number"
    )


def _skip(reason: str) -> NoReturn:
    import pytest  # only the test run imports it

    pytest.skip(reason)


def _assert_same_metrics(first: RunResult, second: RunResult) -> None:
    assert first.metrics == second.metrics, (
        "two runs with the same seed gave different metrics: draw randomness "
        "from torch's global generator (seeded per run) or context.generator"
    )


class ModelContract:
    """Checks every model must pass: the shapes its family's interface
    promises, finite outputs, gradients reaching its parameters, and a real
    run on the tiny task of each family it declares, identical under a seed.
    """

    model_cls: ClassVar[type[Model]]
    model_kwargs: ClassVar[dict[str, Any]] = {}
    #: extra ``--param`` strings for the tiny runs (``model.NAME.KEY=VALUE``)
    run_params: ClassVar[tuple[str, ...]] = ()

    def make_model(self) -> Model:
        return self.model_cls(**self.model_kwargs)

    def _families(self) -> list[str]:
        families = sorted(self.model_cls.families)
        assert families, (
            f"{self.model_cls.__name__}.families is empty: declare the task "
            "families the model serves, e.g. frozenset({'retrieval', 'sts'})"
        )
        return families

    def _tiny(self, family: str, *, reuse: bool = True) -> RunResult:
        params = [
            f"model.{self.model_cls.name}.{key}={value}"
            for key, value in self.model_kwargs.items()
        ]
        return run_in_process(
            task=TINY_TASKS[family],
            model=self.model_cls.name,
            components=(self.model_cls,),
            params=(*params, *self.run_params),
            reuse=reuse,
        )

    def _runnable_families(self) -> list[str]:
        host = make_plugin_host(PluginOptions(autoload=False))
        out = []
        for family in self._families():
            if family not in TINY_TASKS:
                continue
            task = host.registries.tasks.get(TINY_TASKS[family]).cls
            if self.model_cls.needs_text and not task.provides_text:
                continue
            out.append(family)
        return out

    def test_is_a_family_base_class(self) -> None:
        bases = (TextEncoder, KGEModel, LabelModel)
        assert issubclass(self.model_cls, bases), (
            f"{self.model_cls.__name__} subclasses none of TextEncoder, "
            "KGEModel, LabelModel: the tasks call one of those interfaces"
        )

    def test_outputs_have_the_promised_shapes(self) -> None:
        import tempfile

        model = self.make_model()
        with tempfile.TemporaryDirectory() as tmp:
            model.setup(make_context(cache_dir=Path(tmp)))
            if isinstance(model, TextEncoder):
                _check_text_encoder(model, Path(tmp))
            elif isinstance(model, KGEModel):
                _check_kge_model(model)
            elif isinstance(model, LabelModel):
                _check_label_model(model)

    def test_trains_and_evaluates_on_each_family(self) -> None:
        families = self._runnable_families()
        if not families:
            _skip(f"no tiny task for {self._families()}")
        for family in families:
            _assert_ran(self._tiny(family), f"a tiny {family} run")

    def test_deterministic_under_a_seed(self) -> None:
        families = self._runnable_families()
        if not families:
            _skip(f"no tiny task for {self._families()}")
        _assert_same_metrics(
            self._tiny(families[0]), self._tiny(families[0], reuse=False)
        )


def _grad_reaches_parameters(model: torch.nn.Module, output: torch.Tensor) -> None:
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        return
    model.zero_grad()
    output.float().square().sum().backward()
    grads = [
        p.grad.coalesce().values() if p.grad.is_sparse else p.grad  # EmbeddingBag
        for p in trainable
        if p.grad is not None
    ]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads), (
        "no gradient reached the model's trainable parameters: keep the forward "
        "path differentiable (no .detach(), numpy or torch.no_grad() inside it)"
    )
    assert all(bool(torch.isfinite(g).all()) for g in grads), (
        "a parameter gradient is NaN or inf"
    )


def _check_text_encoder(model: TextEncoder, cache_dir: Path) -> None:
    context = make_context(cache_dir=cache_dir)
    texts = ["a cat sat on the mat", "dogs bark", "", "négatifs durs ✓ 42"]
    queries = model.featurize(texts, side="query", context=context)
    documents = model.featurize(texts[:2], side="document", context=context)
    assert queries.ndim >= 2 and queries.shape[0] == len(texts), (
        f"featurize() of {len(texts)} texts returned shape {tuple(queries.shape)}, "
        f"expected one row per text: ({len(texts)}, F, ...)"
    )
    assert bool(torch.isfinite(queries.float()).all()), "featurize() gave NaN/inf"
    model.train()
    anchors = model.embed(queries, side="query")
    candidates = model.embed(documents, side="document")
    assert anchors.ndim == 2 and anchors.shape[0] == len(texts), (
        f"embed() returned shape {tuple(anchors.shape)}, expected ({len(texts)}, D)"
    )
    assert bool(torch.isfinite(anchors).all()), "embed() gave NaN/inf"
    assert tuple(model.similarity(anchors, candidates).shape) == (len(texts), 2), (
        "similarity(left (N, D), right (M, D)) must return (N, M)"
    )
    stacked = candidates[None].expand(len(texts), -1, -1)
    scores = model.score(anchors, stacked)
    assert tuple(scores.shape) == (len(texts), 2), (
        f"score(anchors (B, D), candidates (B, K, D)) returned "
        f"{tuple(scores.shape)}, expected (B, K)"
    )
    if model.trainable:
        _grad_reaches_parameters(model, scores)


def _check_kge_model(model: KGEModel) -> None:
    entities, relations = 12, 6  # 3 relations and their inverses
    model.build(entities, relations)
    assert model.built, "built is False after build()"
    gen = torch.Generator().manual_seed(0)
    heads = torch.randint(entities, (5,), generator=gen)
    rels = torch.randint(relations, (5,), generator=gen)
    tails = torch.randint(entities, (5, 4), generator=gen)
    model.train()
    pairs = model.score_pairs(heads, rels, tails)
    assert tuple(pairs.shape) == (5, 4), (
        f"score_pairs(heads (B,), relations (B,), tails (B, K)) returned "
        f"{tuple(pairs.shape)}, expected (B, K) = (5, 4)"
    )
    assert bool(torch.isfinite(pairs).all()), "score_pairs() gave NaN/inf"
    every = model.score_shared(heads, rels)
    assert tuple(every.shape) == (5, entities), (
        f"score_shared(heads, relations) returned {tuple(every.shape)}, expected "
        f"(B, num_entities) = (5, {entities})"
    )
    some = model.score_shared(heads, rels, tails[0])
    assert tuple(some.shape) == (5, 4), (
        f"score_shared(heads, relations, tails (M,)) returned {tuple(some.shape)}, "
        "expected (B, M) = (5, 4): score only the given tails"
    )
    assert torch.allclose(some, every[:, tails[0]], atol=1e-5), (
        "score_shared(..., tails) disagrees with the same columns of "
        "score_shared(...) over every entity"
    )
    assert torch.allclose(pairs[:, :1], every.gather(1, tails[:, :1]), atol=1e-5), (
        "score_pairs() and score_shared() score the same triple differently"
    )
    _grad_reaches_parameters(model, pairs)


def _check_label_model(model: LabelModel) -> None:
    model.build(10, 7)
    assert model.built, "built is False after build()"
    model.train()
    logits = model(torch.randn(4, 10, generator=torch.Generator().manual_seed(0)))
    assert tuple(logits.shape) == (4, 7), (
        f"forward(features (N, F)) returned {tuple(logits.shape)}, expected "
        "(N, num_labels) = (4, 7)"
    )
    assert bool(torch.isfinite(logits).all()), "forward() gave NaN/inf"
    _grad_reaches_parameters(model, logits)


class TaskContract:
    """Checks every task must pass: a known family and main metric, data
    located with a stable fingerprint, a real run that returns the main
    metric (finite, with per-item scores) and that repeats under a seed.

    The run pairs the task with its family's cheap partners
    (:data:`FAMILY_PARTNERS`); shrink the protocol with ``task_kwargs``.
    """

    task_cls: ClassVar[type[Task]]
    #: protocol parameters for the contract's run (``epochs``, ``max_test``...)
    task_kwargs: ClassVar[dict[str, Any]] = {}
    #: the ``ARGUMENT`` of a ``NAME:ARGUMENT`` task
    task_argument: ClassVar[str | None] = None
    #: False skips the second run (an expensive task whose protocol another
    #: task of the same class already checks)
    check_determinism: ClassVar[bool] = True

    @property
    def task_name(self) -> str:
        name = self.task_cls.name
        return name if self.task_argument is None else f"{name}:{self.task_argument}"

    def _run(self, *, reuse: bool = True) -> RunResult:
        name = self.task_cls.name  # --param keys name the task without its argument
        params = [f"task.{name}.{k}={v}" for k, v in self.task_kwargs.items()]
        return run_in_process(
            task=self.task_name,
            components=(self.task_cls,),
            params=params,
            reuse=reuse,
        )

    def _locate(self) -> DatasetRef:
        from .data import DataLocator

        kwargs = dict(self.task_kwargs)
        if self.task_argument is not None:
            kwargs["argument"] = self.task_argument
        try:
            return self.task_cls(**kwargs).locate(DataLocator.from_env())
        except DatasetUnavailable as exc:
            _skip(f"{self.task_name}: data unavailable ({exc})")

    def test_declares_a_family_and_a_main_metric(self) -> None:
        info = self.task_cls.info(self.task_name)
        assert info.family in FAMILY_PARTNERS, (
            f"family {info.family!r} is none of {sorted(FAMILY_PARTNERS)}: set the "
            "class attribute `family` (or subclass a family's task class)"
        )
        assert info.main_metric, "set `main_metric`: the key evaluate() ranks by"
        assert info.description, "set `description`: one line the leaderboard shows"

    def test_locates_its_data_with_a_stable_fingerprint(self) -> None:
        first, second = self._locate(), self._locate()
        assert first.sha256 and first.sha256 == second.sha256, (
            "locate() gave two fingerprints for the same data: hash the files "
            "(harness.data.fingerprint) or the generator's config"
        )

    def test_returns_its_main_metric(self) -> None:
        self._locate()  # skips when the data is missing
        result = self._run()
        _assert_ran(result, f"a {self.task_name} run")
        per_item = result.per_item
        assert per_item, (
            "evaluate() returned no per-item scores: the leaderboard's paired "
            "tests need them (Evaluation.per_item[metric][item_id])"
        )
        values = [v for scores in per_item.values() for v in scores.values()]
        assert all(_finite(v) for v in values), "a per-item score is NaN or inf"

    def test_deterministic_under_a_seed(self) -> None:
        if not self.check_determinism:
            _skip("check_determinism = False")
        self._locate()
        _assert_same_metrics(self._run(), self._run(reuse=False))
