"""Ranking metrics agree with pytrec_eval (trec_eval), the reference implementation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import pytrec_eval

from harness.metrics import evaluate_ranking


def random_case(seed: int, graded: bool, ties: bool = False):
    rng = random.Random(seed)
    docs = [f"doc-{i}" for i in range(300)]
    qrels, run = {}, {}
    for q in range(25):
        qid = f"query{q}"
        relevant = rng.sample(docs, rng.randint(1, 12))
        qrels[qid] = {d: (rng.randint(1, 3) if graded else 1) for d in relevant}
        qrels[qid].update({d: 0 for d in rng.sample(docs, 3) if d not in qrels[qid]})
        run[qid] = {d: rng.random() for d in rng.sample(docs, 150)}
        if ties:  # few distinct scores, and ones equal only once in float32
            run[qid] = {
                d: rng.choice((0.5, 0.25, 0.25 + 1e-12, rng.random())) for d in run[qid]
            }
    run["query0"] = {}  # a query with no results scores 0
    return qrels, run


def trec_order(item: tuple[str, float]) -> tuple[np.float32, str]:
    return np.float32(item[1]), item[0]


def trec(qrels, run, measures, cutoff_run=None):
    if cutoff_run is not None:  # trec_eval's recip_rank has no cutoff: truncate the
        # run, in trec_eval's order (float32 score, then document id, descending)
        run = {
            q: dict(sorted(d.items(), key=trec_order, reverse=True)[:cutoff_run])
            for q, d in run.items()
        }
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, set(measures))
    return evaluator.evaluate({q: d for q, d in run.items() if d})


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_trec_eval_per_query(seed, graded, ties):
    """Also with tied scores: trec_eval compares scores as float32 and ranks
    ties by document id, descending; so must we."""
    qrels, run = random_case(seed, graded, ties)
    ours = evaluate_ranking(qrels, run)
    reference = trec(qrels, run, {"ndcg_cut.10", "recall.100", "map_cut.100"})
    mrr = trec(qrels, run, {"recip_rank"}, cutoff_run=10)
    expected = {
        "ndcg@10": ("ndcg_cut_10", reference),
        "recall@100": ("recall_100", reference),
        "map@100": ("map_cut_100", reference),
        "mrr@10": ("recip_rank", mrr),
    }
    for metric, (name, table) in expected.items():
        for qid in qrels:
            value = table.get(qid, {}).get(name, 0.0)
            assert ours.per_item[metric][qid] == pytest.approx(value, abs=1e-9), (
                metric,
                qid,
            )
        mean = sum(table.get(q, {}).get(name, 0.0) for q in qrels) / len(qrels)
        assert ours.metrics[metric] == pytest.approx(mean, abs=1e-9)


def test_ideal_ranking_scores_one():
    qrels = {"q": {"a": 1, "b": 1}}
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.1}}
    out = evaluate_ranking(qrels, run)
    assert out.metrics == {
        "ndcg@10": 1.0,
        "mrr@10": 1.0,
        "recall@100": 1.0,
        "map@100": 1.0,
    }


def test_document_names_do_not_matter():
    qrels, run = random_case(5, graded=True)
    renamed_qrels = {
        q: {f"x{d}-long-name": r for d, r in docs.items()} for q, docs in qrels.items()
    }
    renamed_run = {
        q: {f"x{d}-long-name": s for d, s in docs.items()} for q, docs in run.items()
    }
    assert (
        evaluate_ranking(qrels, run).metrics
        == evaluate_ranking(renamed_qrels, renamed_run).metrics
    )
