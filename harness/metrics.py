"""Ranking metrics through ranx, with per-query scores for significance tests.

ranx (Bassani, ECIR 2022) compiles its metrics with numba and caches them on
disk.  Its ``Qrels`` and ``Run`` containers are numba typed dictionaries,
whose methods compile again in every process (about 5 s, never cached), so we
hand ranx's metrics the arrays they work on directly: per query, rows of
(document number, score) in rank order.  The order is trec_eval's, the
reference that pytrec_eval, BEIR and MTEB use: score descending, compared as a
C ``float`` (float32), ties broken by document id descending.  Only which
documents match decides a metric, so each document id becomes a number; the
numbers follow the ids' sort order, which makes that tie-break a comparison
of numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from .types import Evaluation

__all__ = ["RANKING_METRICS", "evaluate_ranking", "warm_up"]

RANKING_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100", "map@100")


def evaluate_ranking(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = RANKING_METRICS,
) -> Evaluation:
    """Mean and per-query ``metrics`` of ``run`` against graded ``qrels``.

    :param qrels: query id -> document id -> relevance (0 = not relevant).
    :param run: query id -> document id -> score (higher ranks first; equal
        float32 scores rank by document id, descending, as in trec_eval).
    :returns: means over the queries of ``qrels`` (a query without results
        scores 0; queries only in ``run`` are ignored) and per-query values
        keyed by query id.
    """
    from numba.typed import List as TypedList
    from ranx import evaluate

    query_ids = list(qrels)
    if not query_ids:
        raise ValueError("no judged queries to evaluate (qrels is empty)")
    documents = {doc for docs in qrels.values() for doc in docs}
    for query in query_ids:
        documents.update(run.get(query, ()))
    number = {doc: float(i) for i, doc in enumerate(sorted(documents))}
    judged = TypedList([_ranked(qrels[q], number, np.int64) for q in query_ids])
    ranked = TypedList([_ranked(run.get(q, {}), number, np.float32) for q in query_ids])
    with warnings.catch_warnings():
        # numba's uint64->int64 notice inside ranx's compiled nDCG; harmless.
        warnings.filterwarnings("ignore", message=".*unsafe cast from uint64")
        scores = evaluate(judged, ranked, list(metrics), return_mean=False)
    if not isinstance(scores, dict):  # ranx returns the bare array for one metric
        scores = {metrics[0]: scores}
    per_query = {
        m: dict(zip(query_ids, map(float, scores[m]), strict=True)) for m in metrics
    }
    means = {m: float(np.mean(scores[m])) for m in metrics}
    return Evaluation(metrics=means, per_item=per_query)


def _ranked(
    docs: Mapping[str, float], number: Mapping[str, float], precision: type
) -> np.ndarray:
    """(document number, value) rows, value descending, then number descending.

    :param precision: the type values compare in (trec_eval's float for run
        scores; relevance grades are integers).
    """
    rows = np.empty((len(docs), 2))
    if len(docs):
        rows[:, 0] = [number[doc] for doc in docs]
        rows[:, 1] = np.fromiter(docs.values(), dtype=np.float64, count=len(docs))
        compared: np.ndarray = rows[:, 1].astype(precision)
        rows = rows[np.lexsort((-rows[:, 0], -compared))]
    return rows


def warm_up() -> None:
    """Load ranx's compiled metrics (from numba's disk cache, once it has
    them) used by :func:`evaluate_ranking`."""
    evaluate_ranking(
        {"q1": {"a": 1}, "q2": {"b": 2, "c": 0}},
        {"q1": {"a": 1.0, "b": 0.5}, "q2": {"b": 0.1}},
        (*RANKING_METRICS, "precision@10", "hits@10"),
    )
