"""KGE evaluation and scoring agree with PyKEEN; training runs end to end.

PyKEEN is the reference implementation for rank-based link prediction: the
same weights are loaded into a PyKEEN model and into ours, and the filtered
scores, ranks and metrics must agree.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from pykeen import models as pk_models
from pykeen.evaluation import RankBasedEvaluator
from pykeen.triples import TriplesFactory

from harness.testing import make_context
from negbench_plugins.losses.kge_pointwise import NSSA
from negbench_plugins.models.kge import ComplEx, DistMult, RotatE, TransE
from negbench_plugins.samplers.corruption import Filtered, Uniform
from negbench_plugins.tasks.kg_data import KnowledgeGraph, read_graph
from negbench_plugins.tasks.kge_protocol import KGEProtocol, evaluate

logging.getLogger("pykeen").setLevel(logging.ERROR)

PAIRS = [
    (TransE, pk_models.TransE, {"scoring_fct_norm": 1}),
    (DistMult, pk_models.DistMult, {}),
    (ComplEx, pk_models.ComplEx, {}),
    (RotatE, pk_models.RotatE, {}),
]


@pytest.fixture(scope="module")
def nations(data_dir: Path):
    return read_graph("nations", data_dir / "nations")


def _fit(cls, graph, sampler, epochs: int):
    """One of our models trained from seed 0, and its run's diagnostics."""
    torch.manual_seed(0)
    model = cls(dim=16)
    model.build(graph.num_entities, 2 * graph.num_relations)
    context = make_context(sampler=sampler, loss=NSSA())
    context.run = type(context.run)(  # a KGE-family run for the context
        spec=context.run.spec,
        family="kge",
        dataset=context.run.dataset,
        versions={},
        main_metric="mrr",
    )
    KGEProtocol(epochs=epochs, batch_size=128, num_negatives=8, corruptions=64).fit(
        graph, model, context
    )
    model.eval()
    return model, context.diagnostics.summary()


def _trained(cls, graph, epochs: int = 5):
    """One of our models, briefly trained so its ranks are not random."""
    return _fit(cls, graph, Uniform(), epochs)[0]


def _as_pykeen(ours, pk_cls, kwargs, graph):
    factory = TriplesFactory(
        mapped_triples=graph.train,
        entity_to_id={label: i for i, label in enumerate(graph.entities)},
        relation_to_id={label: i for i, label in enumerate(graph.relations)},
        create_inverse_triples=True,
    )
    theirs = pk_cls(
        triples_factory=factory, embedding_dim=ours.dim, random_seed=0, **kwargs
    )
    r = graph.num_relations
    relation = ours.relation.weight.detach()
    if isinstance(ours, RotatE):  # ours normalises on use, PyKEEN after updates
        pairs = relation.reshape(len(relation), -1, 2)
        relation = (pairs / pairs.norm(dim=-1, keepdim=True)).reshape_as(relation)
    # PyKEEN's relation 2r is our r; its 2r + 1 (the inverse) is our r + R
    interleaved = torch.empty_like(relation)
    interleaved[0::2], interleaved[1::2] = relation[:r], relation[r:]
    with torch.no_grad():
        theirs.entity_representations[0]._embeddings.weight.copy_(ours.entity.weight)
        theirs.relation_representations[0]._embeddings.weight.copy_(interleaved)
    theirs.eval()
    return theirs


@pytest.mark.parametrize(("ours_cls", "pk_cls", "kwargs"), PAIRS)
def test_scores_match_pykeen(nations, ours_cls, pk_cls, kwargs) -> None:
    ours = _trained(ours_cls, nations, epochs=1)
    theirs = _as_pykeen(ours, pk_cls, kwargs, nations)
    test = nations.test
    with torch.no_grad():
        tail_ours = ours.score_shared(test[:, 0], test[:, 1])
        tail_theirs = theirs.predict_t(test[:, :2])
        head_ours = ours.score_shared(test[:, 2], test[:, 1] + nations.num_relations)
        head_theirs = theirs.predict_h(test[:, 1:])
        pairs_ours = ours.score_pairs(test[:, 0], test[:, 1], test[:, 2:3])[:, 0]
    torch.testing.assert_close(tail_ours, tail_theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head_ours, head_theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        pairs_ours, tail_ours[torch.arange(len(test)), test[:, 2]]
    )


@pytest.mark.parametrize(("ours_cls", "pk_cls", "kwargs"), PAIRS[:2])
def test_filtered_metrics_match_pykeens_rank_based_evaluator(
    nations, ours_cls, pk_cls, kwargs
) -> None:
    ours = _trained(ours_cls, nations)
    theirs = _as_pykeen(ours, pk_cls, kwargs, nations)
    result = RankBasedEvaluator(filtered=True).evaluate(
        theirs,
        mapped_triples=nations.test,
        additional_filter_triples=[nations.train, nations.valid],
        batch_size=256,
        use_tqdm=False,
    )
    mine = evaluate(nations, ours)
    reference = {
        "mrr": result.get_metric("both.realistic.inverse_harmonic_mean_rank"),
        "hits@1": result.get_metric("both.realistic.hits_at_1"),
        "hits@3": result.get_metric("both.realistic.hits_at_3"),
        "hits@10": result.get_metric("both.realistic.hits_at_10"),
        "mrr_tail": result.get_metric("tail.realistic.inverse_harmonic_mean_rank"),
        "mrr_head": result.get_metric("head.realistic.inverse_harmonic_mean_rank"),
        "rank": result.get_metric("both.realistic.arithmetic_mean_rank"),
    }
    for name, value in reference.items():
        assert mine.metrics[name] == pytest.approx(value, abs=1e-6), name
    # a trained model, so agreement is not the trivial one of random ranks
    assert mine.metrics["mrr"] > 0.3
    assert len(mine.per_item["mrr"]) == 2 * len(nations.test)


def test_ties_use_the_realistic_rank(nations) -> None:
    """A model that scores everything equal ranks each answer mid-field."""
    model = DistMult(dim=4)
    model.build(nations.num_entities, 2 * nations.num_relations)
    with torch.no_grad():
        model.entity.weight.zero_()
    metrics = evaluate(nations, model).metrics
    # every candidate that is not filtered ties with the answer
    assert metrics["hits@1"] <= metrics["mrr"] < 0.5
    assert metrics["rank"] > 2


def test_training_improves_on_the_untrained_model(nations) -> None:
    untrained = DistMult(dim=16)
    torch.manual_seed(0)
    untrained.build(nations.num_entities, 2 * nations.num_relations)
    before = evaluate(nations, untrained).metrics["mrr"]
    after = evaluate(nations, _trained(DistMult, nations, epochs=20)).metrics["mrr"]
    assert after > before + 0.2


class _ScoredUniform(Uniform):
    """``uniform`` that asks for a scored pool (the slow path)."""

    reads_scores = True


@pytest.mark.parametrize("name", ["nations", "umls"])  # all entities; a draw
def test_skipping_the_pool_scores_changes_no_number(data_dir: Path, name) -> None:
    """A sampler that does not read scores gets an unscored pool, and the
    hardness is taken from the loss's scores instead: same model, same
    diagnostics as scoring the pool first."""
    graph = read_graph(name, data_dir / name)
    fast_model, fast = _fit(TransE, graph, Uniform(), epochs=2)
    slow_model, slow = _fit(TransE, graph, _ScoredUniform(), epochs=2)
    assert torch.allclose(fast_model.entity.weight, slow_model.entity.weight)
    assert fast.keys() == slow.keys()
    assert {"hardness_gap_q50", "fn_rate_lower_bound"} <= fast.keys()
    for key, value in slow.items():
        assert fast[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


class _FilteredBothSides(Filtered):
    """``filtered`` with K negatives in every query row (no head/tail split)."""

    sides = "both"


def test_a_query_whose_every_candidate_is_an_answer_trains_without_negatives():
    """Entity 0 is related to every entity by relation 0, so for a filtered
    sampler the tail query (0, r0) has no candidate that may be a negative:
    the step drops that row and trains on the others, every negative it
    counts is a non-answer, and nothing fails."""
    e = 6
    hub = [[0, 0, t] for t in range(e)]
    ring = [[h, 1, (h + 1) % e] for h in range(e)]
    graph = KnowledgeGraph(
        name="hub",
        entities=[f"e{i}" for i in range(e)],
        relations=["all", "next"],
        train=torch.tensor(hub + ring),
        valid=torch.tensor([[1, 1, 2]]),
        test=torch.tensor([[2, 1, 3]]),
    )
    torch.manual_seed(0)
    model = TransE(dim=8)
    model.build(e, 4)
    before = model.entity.weight.detach().clone()
    context = make_context(sampler=_FilteredBothSides(), loss=NSSA())
    KGEProtocol(epochs=2, batch_size=32, num_negatives=2, corruptions=64).fit(
        graph, model, context
    )
    summary = context.diagnostics.summary()
    # every training fact is a query row in each direction, minus the hub's
    # tail query (6 rows, one per fact of relation 0): 2 epochs x 2 negatives
    rows_with_negatives = 2 * len(graph.train) - len(hub)
    assert summary["negatives_sampled"] == 2 * 2 * rows_with_negatives
    assert not torch.equal(model.entity.weight, before)  # it trained


def _recording(base: type[Uniform]) -> Uniform:
    """A ``base`` sampler that keeps what each step told it about its rows."""

    class Recording(base):  # type: ignore[valid-type, misc]
        seen: list[tuple[int | None, int, int]] = []

        def sample(self, batch, num_negatives, generator):
            known = batch.known_positive
            fewest = known.shape[1] - int(known.sum(dim=1).max())
            self.seen.append((batch.fewest_allowed, fewest, num_negatives))
            return super().sample(batch, num_negatives, generator)

    return Recording()


def test_the_step_tells_the_sampler_how_many_columns_every_row_may_draw(
    nations,
) -> None:
    """``fewest_allowed`` is the count the step made of every row's answers.
    Nations has 14 entities, all in every pool: unfiltered, a row holds one
    answer, so every row may draw K = 8 and the sampler skips its short-row
    check; filtered, some rows have fewer than 8 non-answers, and the
    sampler still repeats rather than return an answer (the run would fail
    on the contract)."""
    unfiltered, filtered = _recording(Uniform), _recording(Filtered)
    _fit(TransE, nations, unfiltered, epochs=1)
    _fit(TransE, nations, filtered, epochs=1)
    for sampler in (unfiltered, filtered):
        assert sampler.seen
        assert all(told == counted for told, counted, _ in sampler.seen)
    assert all(told == 13 for told, _, _ in unfiltered.seen)
    assert any(told < k for told, _, k in filtered.seen)


def test_every_trained_negative_is_counted_when_most_steps_are_not_measured(
    nations,
) -> None:
    """A side split trains exactly K negatives per fact (split between its
    two query rows): the count of an unmeasured step is that number, and the
    run's total is exact while only a sample of its steps is measured."""
    epochs, k = 20, 8
    _, summary = _fit(TransE, nations, Uniform(), epochs=epochs)
    assert 0 < summary["measured_step_share"] < 1
    assert summary["negatives_sampled"] == epochs * len(nations.train) * k
    measured = summary["negatives_measured"]
    assert 0 < measured < summary["negatives_sampled"]
