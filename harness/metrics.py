"""Ranking metrics through ranx, with per-query scores for significance tests.

ranx (Bassani, ECIR 2022) compiles its metrics with numba.  It stores
document ids as fixed-width numpy strings, so every distinct *maximum id
length* triggers a fresh compilation of its container code (about a second,
and not cached on disk).  We therefore hand ranx canonical ids of one fixed
width — the metrics depend only on which documents match, never on their
names — and :func:`warm_up` compiles that single specialisation once per
worker forkserver.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

from .types import Evaluation

__all__ = ["RANKING_METRICS", "evaluate_ranking", "warm_up"]

RANKING_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100", "map@100")
_ID_WIDTH = 12


def evaluate_ranking(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = RANKING_METRICS,
) -> Evaluation:
    """Mean and per-query ``metrics`` of ``run`` against graded ``qrels``.

    :param qrels: query id -> document id -> relevance (0 = not relevant).
    :param run: query id -> document id -> score (higher ranks first).
    :returns: means over the queries of ``qrels`` (a query without results
        scores 0) and per-query values keyed by query id.
    """
    from ranx import Qrels, Run, evaluate

    # each distinct document's canonical id is formatted once, not once per
    # run entry (a 1M-entry run: ~0.5 s of f-strings otherwise)
    canonical: dict[str, str] = {}
    for table in (qrels, run):
        for docs in table.values():
            for doc in docs:
                if doc not in canonical:
                    canonical[doc] = f"{len(canonical):0{_ID_WIDTH}d}"
    ranx_qrels = Qrels(
        {
            q: {canonical[d]: int(r) for d, r in docs.items()}
            for q, docs in qrels.items()
        }
    )
    ranx_run = Run(
        {
            q: {canonical[d]: float(s) for d, s in docs.items()}
            for q, docs in run.items()
        }
    )
    with warnings.catch_warnings():
        # numba's uint64->int64 notice inside ranx's compiled nDCG; harmless.
        warnings.filterwarnings("ignore", message=".*unsafe cast from uint64")
        means = evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True)
    if isinstance(means, float):  # ranx returns a bare float for one metric
        means = {metrics[0]: means}
    per_query = {
        m: {q: float(v) for q, v in ranx_run.scores[m].items()} for m in metrics
    }
    return Evaluation(
        metrics={m: float(v) for m, v in means.items()}, per_item=per_query
    )


def warm_up() -> None:
    """Compile ranx's code paths used by :func:`evaluate_ranking`."""
    evaluate_ranking(
        {"q1": {"a": 1}, "q2": {"b": 2, "c": 0}},
        {"q1": {"a": 1.0, "b": 0.5}, "q2": {"b": 0.1}},
        (*RANKING_METRICS, "precision@10", "hits@10"),
    )
