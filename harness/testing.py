"""Contract tests for component authors (pytorch-metric-learning / PyKEEN style).

Subclass a contract in your own test module and name the class under test;
pytest collects the inherited tests::

    from harness.testing import SamplerContract
    from my_plugin import MySampler

    class TestMySampler(SamplerContract):
        sampler_cls = MySampler
        sampler_kwargs = {"alpha": 0.5}

The same checks run inside every real run (the harness enforces them), so a
component that passes here will not fail a benchmark on its contract.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .components import Loss, Sampler
from .context import ComponentRef, RunContext
from .registry import Registries
from .sampling import cap_negatives
from .types import (
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
    "LabelLossContract",
    "LossContract",
    "SamplerContract",
    "make_candidate_batch",
    "make_context",
    "make_label_batch",
    "make_run_results",
    "make_scored_batch",
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
    *, sampler: Sampler | None = None, loss: Loss | None = None, seed: int = 0
) -> RunContext:
    """A context with no task, good for calling guarded components directly."""
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
        cache_dir=Path("."),
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
