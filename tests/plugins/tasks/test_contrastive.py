"""The shared contrastive protocol: pools, refresh schedule, in-batch columns."""

from __future__ import annotations

import pytest
import torch
from conftest import EXAMPLE_PLUGINS

from harness import CandidateBatch, Loss, Sampler
from harness.context import ComponentRef
from harness.testing import make_context
from harness.types import ScoredBatch
from negbench_plugins.tasks.contrastive import ContrastiveProtocol, PairData, mine


def test_pool_ranks_are_full_corpus_ranks():
    gen = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    docs = torch.nn.functional.normalize(torch.randn(50, 8, generator=gen), dim=-1)
    for kind in ("mined", "uniform"):
        pool = mine(kind, queries, docs, 10, torch.Generator().manual_seed(1))
        full = queries @ docs.T
        for q in range(6):
            for c in range(10):
                doc = int(pool.ids[q, c])
                expected = 1 + int((full[q] > full[q, doc] + 1e-6).sum())
                assert abs(int(pool.ranks[q, c]) - expected) <= 1
                assert float(pool.scores[q, c]) == pytest.approx(
                    float(full[q, doc]), abs=1e-5
                )
        if kind == "mined":
            assert pool.ranks[:, 0].tolist() == [1] * 6
            assert bool((pool.scores[:, :-1] >= pool.scores[:, 1:] - 1e-6).all())


class Recorder(Sampler):
    """Takes the first K allowed columns; remembers what it was shown."""

    name = "recorder"
    families = frozenset({"retrieval"})

    def __init__(self, pool="mined", refresh=None, in_batch=None):
        self.seen: list[CandidateBatch] = []
        self.pool = pool
        self.refresh = refresh
        self.in_batch_negatives = in_batch

    def sample(self, batch, num_negatives, generator):
        self.seen.append(batch)
        order = torch.argsort(batch.known_positive.float(), dim=1, stable=True)
        return order[:, :num_negatives]


class Capture(Loss):
    """Mean negative score; remembers the batches it scored."""

    name = "capture"
    families = frozenset({"retrieval"})

    def __init__(self, in_batch=False):
        super().__init__(in_batch=in_batch)
        self.batches: list[ScoredBatch] = []

    def forward_batch(self, batch):
        self.batches.append(batch)
        masked = batch.negative.masked_fill(~batch.mask, 0.0)
        return masked.sum(1) - batch.positive


@pytest.fixture
def toy_model():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "toy_model_for_protocol", EXAMPLE_PLUGINS / "toy_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ToyBow()


def toy_data(shared=False):
    texts = [f"w{i} w{i + 1} common{i % 3}" for i in range(12)]
    pairs = torch.tensor([[i, (i + 1) % 12] for i in range(8)])
    positives = [{(i + 1) % 12} for i in range(8)]
    hidden = [{(i + 2) % 12} for i in range(8)]
    return PairData(
        anchor_texts=texts[:8],
        candidate_texts=texts,
        pairs=pairs,
        positives=positives,
        hidden=hidden,
        hidden_exact=True,
        shared_texts=shared,
    )


def fit(model, sampler, loss, **protocol):
    context = make_context(sampler=sampler, loss=loss)
    context.refs["model"] = ComponentRef("model", "toy", "test")
    settings = {"epochs": 2, "batch_size": 4, "num_negatives": 2, "depth": 6} | protocol
    ContrastiveProtocol(**settings).fit(toy_data(), model, context)
    return context


def test_pools_exclude_nothing_but_mark_known_positives(toy_model):
    sampler, loss = Recorder(), Capture()
    context = fit(toy_model, sampler, loss)
    for batch in sampler.seen:
        assert batch.candidate_ids.shape[1] == 6
        for row, anchor in enumerate(batch.anchor_ids.tolist()):
            ids = batch.candidate_ids[row].tolist()
            marked = {ids[c] for c in range(6) if batch.known_positive[row, c]}
            assert marked == {(anchor + 1) % 12} & set(ids)
    summary = context.diagnostics.summary()
    assert 0.0 <= summary["fn_rate"] <= 1.0  # exact oracle: the hidden neighbour


def test_refresh_schedule(toy_model, monkeypatch):
    from negbench_plugins.tasks import contrastive

    calls = []
    real = contrastive.mine

    def counting(*args, **kwargs):
        calls.append(args[1].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(contrastive, "mine", counting)
    for refresh, expected in [
        ("epoch", [8, 8]),
        ("static", [8]),
        ("step", [4] * 4),
        (3, [8, 8]),
    ]:
        calls.clear()
        fit(toy_model, Recorder(), Capture(), refresh=refresh)
        assert calls == expected, refresh
    calls.clear()
    fit(toy_model, Recorder(refresh="static"), Capture(), refresh="step")
    assert calls == [8]  # the sampler's own refresh wins


def test_in_batch_columns_share_positives_and_negatives(toy_model):
    loss = Capture(in_batch=True)
    fit(toy_model, Recorder(), loss, epochs=1)
    batch = loss.batches[0]
    b, k = 4, 2
    assert batch.negative.shape == (b, k + b + b * k)
    mask = batch.mask.cpu()
    for row in range(b):
        assert not mask[row, k + row]  # its own positive
        assert not mask[
            row, k + b + row * k : k + b + (row + 1) * k
        ].any()  # own negatives
    # the sampler can turn them off
    loss = Capture(in_batch=True)
    fit(toy_model, Recorder(in_batch=False), loss, epochs=1)
    assert loss.batches[0].negative.shape == (b, k)


def test_queue_pool_holds_recent_positives(toy_model):
    sampler = Recorder(pool="queue")
    fit(toy_model, sampler, Capture(), queue_size=5, epochs=1)
    first, second = sampler.seen[0], sampler.seen[1]
    assert first.candidate_ids.shape == (4, 5)
    # after one step, the first batch's 4 positives are the newest queue entries
    assert (
        second.candidate_ids[0, -4:].tolist() == sampler.seen[0].positive_ids.tolist()
    )
