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

from pathlib import Path
from typing import Any, ClassVar

import torch

from .components import Loss, Sampler
from .context import ComponentRef, RunContext
from .registry import Registries
from .types import CandidateBatch, DatasetRef, Run, RunSpec

__all__ = ["LossContract", "SamplerContract", "make_candidate_batch", "make_context"]


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
    return CandidateBatch(
        anchor_ids=torch.arange(batch_size),
        candidate_ids=torch.randint(
            10_000, (batch_size, num_candidates), generator=gen
        ),
        scores=scores,
        positive_scores=positive_scores,
        known_positive=known,
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


class SamplerContract:
    """Checks every sampler must pass: shape, range, positives, determinism."""

    sampler_cls: ClassVar[type[Sampler]]
    sampler_kwargs: ClassVar[dict[str, Any]] = {}
    num_negatives: ClassVar[int] = 5

    def make_sampler(self) -> Sampler:
        return self.sampler_cls(**self.sampler_kwargs)

    def test_shape_dtype_and_range(self) -> None:
        batch = make_candidate_batch()
        out = self.make_sampler().sample(
            batch, self.num_negatives, torch.Generator().manual_seed(0)
        )
        assert isinstance(out, torch.Tensor)
        assert tuple(out.shape) == (batch.size, self.num_negatives)
        assert not out.dtype.is_floating_point
        assert int(out.min()) >= 0 and int(out.max()) < batch.num_candidates

    def test_never_returns_a_known_positive(self) -> None:
        sampler = self.make_sampler()
        for seed in range(20):
            # Up to half of each row are positives, which stresses the fallback.
            batch = make_candidate_batch(seed=seed, positives_per_row=1 + seed % 15)
            out = sampler.sample(
                batch, self.num_negatives, torch.Generator().manual_seed(seed)
            )
            assert not bool(batch.known_positive.gather(1, out.long()).any())

    def test_few_allowed_candidates(self) -> None:
        """Fewer allowed candidates than K must still give valid negatives."""
        batch = make_candidate_batch(num_candidates=8, positives_per_row=5)
        out = self.make_sampler().sample(
            batch, self.num_negatives, torch.Generator().manual_seed(0)
        )
        assert tuple(out.shape) == (batch.size, self.num_negatives)
        assert not bool(batch.known_positive.gather(1, out.long()).any())

    def test_deterministic_under_a_seed(self) -> None:
        batch = make_candidate_batch(seed=3)
        first = self.make_sampler().sample(
            batch, self.num_negatives, torch.Generator().manual_seed(7)
        )
        second = self.make_sampler().sample(
            batch, self.num_negatives, torch.Generator().manual_seed(7)
        )
        assert torch.equal(first, second)

    def test_passes_the_harness_checks(self) -> None:
        sampler = self.make_sampler()
        context = make_context(sampler=sampler)
        batch = make_candidate_batch(seed=5)
        out = context.sample_negatives(batch, self.num_negatives)
        assert tuple(out.shape) == (batch.size, self.num_negatives)


class LossContract:
    """Checks every loss must pass: shape, finiteness, gradients, the mask."""

    loss_cls: ClassVar[type[Loss]]
    loss_kwargs: ClassVar[dict[str, Any]] = {}
    #: whether raising the positive's score can never raise the loss
    monotone_in_positive: ClassVar[bool] = True

    def make_loss(self) -> Loss:
        return self.loss_cls(**self.loss_kwargs)

    @staticmethod
    def _inputs(
        seed: int = 0, b: int = 6, k: int = 9
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        positive = (torch.rand(b, generator=gen) * 2 - 1).requires_grad_()
        negative = (torch.rand(b, k, generator=gen) * 2 - 1).requires_grad_()
        mask = torch.rand(b, k, generator=gen) > 0.3
        mask[:, 0] = True
        return positive, negative, mask

    def test_one_finite_loss_per_anchor(self) -> None:
        positive, negative, mask = self._inputs()
        out = self.make_loss()(positive, negative, mask)
        assert tuple(out.shape) == (positive.shape[0],)
        assert bool(torch.isfinite(out).all())

    def test_backward_reaches_the_scores(self) -> None:
        positive, negative, mask = self._inputs()
        self.make_loss()(positive, negative, mask).mean().backward()
        assert positive.grad is not None and bool(torch.isfinite(positive.grad).all())
        assert negative.grad is not None and bool(torch.isfinite(negative.grad).all())

    def test_masked_negatives_do_not_matter(self) -> None:
        positive, negative, mask = self._inputs(seed=1)
        loss = self.make_loss()
        before = loss(positive, negative, mask)
        changed = torch.where(mask, negative, negative + 5.0)
        after = loss(positive, changed, mask)
        assert torch.allclose(before, after, atol=1e-6)

    def test_extreme_scores_stay_finite(self) -> None:
        positive, negative, mask = self._inputs(seed=2)
        out = self.make_loss()(positive * 50, negative * 50, mask)
        assert bool(torch.isfinite(out).all())

    def test_a_better_positive_never_costs_more(self) -> None:
        if not self.monotone_in_positive:
            return
        positive, negative, mask = self._inputs(seed=3)
        loss = self.make_loss()
        low = loss(positive.detach(), negative.detach(), mask)
        high = loss(positive.detach() + 0.5, negative.detach(), mask)
        assert bool((high <= low + 1e-6).all())

    def test_passes_the_harness_checks(self) -> None:
        loss = self.make_loss()
        positive, negative, mask = self._inputs(seed=4)
        value = make_context(loss=loss).compute_loss(positive, negative, mask)
        assert value.ndim == 0
