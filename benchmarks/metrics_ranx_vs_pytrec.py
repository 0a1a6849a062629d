"""Ranking metrics: ranx (negbench's path) vs pytrec_eval, same runs, same values.

negbench scores retrieval with ranx through ``harness.metrics.evaluate_ranking``
(nDCG@10, MRR@10, Recall@100, MAP@100, means and per query); pytrec_eval
(trec_eval) is the reference the tests hold it to.  Both get the same qrels
and the same run:

* ``scifact``: the 300 SciFact test claims, each with the top ``--depth``
  abstracts by zero-shot all-MiniLM-L6-v2 (embeddings from the harness cache,
  faiss exact inner product, as the retrieval task evaluates), real qrels;
* ``synthetic``: ``--queries`` x ``--docs`` random scores, 1-5 graded (1-3)
  relevant documents per query (80 % of them inside the run) and 2 judged
  non-relevant ones.

Timed, best of ``--repeats`` after a warm-up, the three taking turns:
negbench's ``evaluate_ranking`` (ranx's compiled metrics on arrays ranked in
trec_eval's order, per-query values included), bare ranx (``Qrels``,
``Run``, ``evaluate``) and pytrec_eval (``ndcg_cut.10 recall.100
map_cut.100``, plus ``recip_rank`` on the run cut to its top 10, as
trec_eval's reciprocal rank has no cutoff).  Agreement is
the largest absolute difference per metric, per query (a query missing from
pytrec_eval's answer counts 0, as in negbench) and of the means.

Then ranx's first-call numba JIT cost, each in a fresh interpreter set up as
the harness sets up every command (``harness.cli._prepare_environment``:
NUMBA_CACHE_DIR unset, so it defaults to ``<cache dir>/numba``): once on an
empty cache dir (cold), once more on the cache the first one wrote (warm).
"warm_up" is ``harness.metrics.warm_up``, what the worker forkserver runs once
per ``harness bench`` (``harness._preload``) so forked runs inherit it.

    HARNESS_DATA_DIR=../shared/datasets python benchmarks/metrics_ranx_vs_pytrec.py \\
        [--depth 1000] [--queries 10000] [--docs 100] [--repeats 2] [--no-jit]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from harness.metrics import RANKING_METRICS, evaluate_ranking

Qrels = dict[str, dict[str, int]]
RunDict = dict[str, dict[str, float]]

#: negbench metric -> trec_eval measure (MRR@10 is recip_rank on a top-10 run)
TREC = {
    "ndcg@10": "ndcg_cut_10",
    "mrr@10": "recip_rank",
    "recall@100": "recall_100",
    "map@100": "map_cut_100",
}

PROBE = """
import json, os, sys, time
start = time.perf_counter()
from harness.cli import _prepare_environment
_prepare_environment(None)
import numba, ranx
from harness import metrics
imported = time.perf_counter()
metrics.warm_up()
warmed = time.perf_counter()
qrels, run = json.loads(sys.stdin.read())
metrics.evaluate_ranking(qrels, run)
done = time.perf_counter()
print(json.dumps({
    "import": imported - start, "warm_up": warmed - imported,
    "call": done - warmed, "cache_dir": numba.config.CACHE_DIR,
}))
"""


# -- the runs ----------------------------------------------------------------------


def scifact_run(depth: int) -> tuple[Qrels, RunDict]:
    """SciFact test qrels and the zero-shot MiniLM top-``depth`` run."""
    from harness.data import default_cache_dir
    from harness.testing import make_context
    from negbench_plugins.models.minilm import MiniLM
    from negbench_plugins.tasks.pools import embed_all, faiss_search
    from negbench_plugins.tasks.retrieval import prepare

    data = prepare(Path(os.environ["HARNESS_DATA_DIR"]) / "scifact")
    context = make_context()
    context.cache_dir = default_cache_dir()
    encoder = MiniLM()
    embeddings = [
        embed_all(
            encoder,
            encoder.featurize(texts, side=side, context=context),
            side,
            context.device,
        )
        for texts, side in (
            (data.test_query_texts, "query"),
            (data.training.candidate_texts, "document"),
        )
    ]
    scores, ids = faiss_search(*embeddings, depth)
    run = {
        qid: {
            data.doc_ids[d]: float(s)
            for d, s in zip(ids[i], scores[i], strict=True)
            if d >= 0
        }
        for i, qid in enumerate(data.test_query_ids)
    }
    return data.test_qrels, run


def synthetic_run(queries: int, docs: int, seed: int = 0) -> tuple[Qrels, RunDict]:
    rng = random.Random(seed)
    space = max(50_000, 2 * docs)
    qrels: Qrels = {}
    run: RunDict = {}
    for q in range(queries):
        qid = f"q{q}"
        ranked = rng.sample(range(space), docs)
        run[qid] = {f"d{d}": rng.random() for d in ranked}
        judged: dict[str, int] = {}
        for _ in range(rng.randint(1, 5)):
            d = rng.choice(ranked) if rng.random() < 0.8 else rng.randrange(space)
            judged[f"d{d}"] = rng.randint(1, 3)
        for d in rng.sample(ranked, 2):
            judged.setdefault(f"d{d}", 0)
        qrels[qid] = judged
    return qrels, run


# -- the evaluators ----------------------------------------------------------------


def negbench(qrels: Qrels, run: RunDict) -> dict[str, dict[str, float]]:
    """Per metric, per query (negbench's own path: ranx's metrics on arrays)."""
    return dict(evaluate_ranking(qrels, run, RANKING_METRICS).per_item)


def bare_ranx(qrels: Qrels, run: RunDict) -> dict[str, float]:
    """Means straight from ranx on the original ids."""
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unsafe cast from uint64")
        means = evaluate(
            RanxQrels(qrels),
            RanxRun(run),
            list(RANKING_METRICS),
            make_comparable=True,
        )
    assert isinstance(means, dict)
    return {m: float(v) for m, v in means.items()}


def pytrec(qrels: Qrels, run: RunDict) -> dict[str, dict[str, float]]:
    """Per metric, per query from trec_eval (via pytrec_eval)."""
    import pytrec_eval

    measures = {"ndcg_cut.10", "recall.100", "map_cut.100"}
    table = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    top10 = {
        q: dict(heapq.nlargest(10, docs.items(), key=itemgetter(1)))
        for q, docs in run.items()
        if docs
    }
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    out: dict[str, dict[str, float]] = {}
    for metric, name in TREC.items():
        source = mrr if name == "recip_rank" else table
        out[metric] = {q: source.get(q, {}).get(name, 0.0) for q in qrels}
    return out


def max_abs(
    ours: Mapping[str, Mapping[str, float]], theirs: Mapping[str, Mapping[str, float]]
) -> dict[str, tuple[float, float]]:
    """Per metric: (max |per-query difference|, |difference of the means|)."""
    out = {}
    for metric in RANKING_METRICS:
        a, b = ours[metric], theirs[metric]
        per_query = max(abs(a.get(q, 0.0) - b[q]) for q in b)
        means = abs(
            sum(a.get(q, 0.0) for q in b) / len(b) - statistics.fmean(b.values())
        )
        out[metric] = (per_query, means)
    return out


def float32_tie(docs: Mapping[str, float]) -> bool:
    """Two different scores that are equal once rounded to float32."""
    scores = np.array(sorted(set(docs.values())), dtype=np.float64)
    return bool((np.diff(scores.astype(np.float32)) == 0).any())


def round_robin(
    calls: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """Warm-up call each, then ``repeats`` rounds taking turns; best seconds."""
    results = {name: call() for name, call in calls.items()}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            results[name] = call()
            best[name] = min(best[name], time.perf_counter() - start)
    return results, best


def compare(name: str, qrels: Qrels, run: RunDict, repeats: int) -> None:
    size = sum(len(docs) for docs in run.values())
    print(
        f"\n{name}: {len(qrels)} queries, {size:,} run entries "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    results, best = round_robin(
        {
            "negbench (ranx)": lambda: negbench(qrels, run),
            "bare ranx": lambda: bare_ranx(qrels, run),
            "pytrec_eval": lambda: pytrec(qrels, run),
        },
        repeats,
    )
    ours, theirs = results["negbench (ranx)"], results["pytrec_eval"]
    gaps = max_abs(ours, theirs)
    print(
        f"  {'metric':12} {'negbench':>9} {'pytrec':>9} {'max |d| query':>14} "
        f"{'|d| mean':>9} {'bare ranx':>9}"
    )
    for metric in RANKING_METRICS:
        mean_ours = statistics.fmean(ours[metric].get(q, 0.0) for q in qrels)
        mean_theirs = statistics.fmean(theirs[metric].values())
        per_query, means = gaps[metric]
        print(
            f"  {metric:12} {mean_ours:9.5f} {mean_theirs:9.5f} {per_query:14.2e} "
            f"{means:9.2e} {results['bare ranx'][metric]:9.5f}"
        )
    differ = [
        q
        for metric in RANKING_METRICS
        for q in qrels
        if abs(ours[metric].get(q, 0.0) - theirs[metric][q]) > 1e-9
    ]
    print(
        f"  (query, metric) cells differing by > 1e-9: {len(differ)}, of which "
        f"{sum(map(float32_tie, (run.get(q, {}) for q in differ)))} in queries "
        "with scores tied in float32 (trec_eval keeps a score as a C float and "
        "orders ties by document id)"
    )
    print(f"  {'':16} {'best s':>8}")
    for evaluator, seconds in best.items():
        print(f"  {evaluator:16} {seconds:8.3f}")
    print(
        "  speed-up over pytrec_eval (its best time / ours): negbench "
        f"{best['pytrec_eval'] / best['negbench (ranx)']:.2f}x, bare ranx "
        f"{best['pytrec_eval'] / best['bare ranx']:.2f}x"
    )


# -- numba JIT -----------------------------------------------------------------------


def jit_cost() -> None:
    qrels, run = synthetic_run(300, 100, seed=1)
    payload = json.dumps([qrels, run])
    print(
        "\nranx's numba JIT, fresh interpreters, NUMBA_CACHE_DIR unset so the "
        "harness's default applies:"
    )
    print(
        f"  {'':6} {'process s':>9} {'import s':>9} {'warm_up s':>9} "
        f"{'next call s':>11} {'cache files':>11}  cache dir"
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = {key: value for key, value in os.environ.items()}
        env.pop("NUMBA_CACHE_DIR", None)
        env["HARNESS_CACHE_DIR"] = tmp
        for label in ("cold", "warm"):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", PROBE],
                input=payload,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - start
            probe = json.loads(done.stdout.strip().splitlines()[-1])
            files = sum(1 for path in Path(tmp).rglob("*") if path.is_file())
            print(
                f"  {label:6} {wall:9.1f} {probe['import']:9.2f} "
                f"{probe['warm_up']:9.2f} {probe['call']:11.3f} {files:11d}  "
                f"{probe['cache_dir'].replace(tmp, '$HARNESS_CACHE_DIR') or '(none)'}"
            )
    print(
        "  warm: importing numba and ranx, loading the cached metrics and numba's "
        "typed list (compiled per process);\n  harness bench pays that once per "
        "invocation, in the worker forkserver (harness._preload_ranking)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=1000, help="SciFact run depth")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--docs", type=int, default=100, help="per synthetic query")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-jit", action="store_true", help="skip the JIT probe")
    args = parser.parse_args()
    if not os.environ.get("HARNESS_DATA_DIR"):
        sys.exit("set HARNESS_DATA_DIR to the datasets folder")
    # the evaluators get the malloc settings harness workers run with
    from harness.allocator import keep_freed_memory

    keep_freed_memory()
    compare(
        f"scifact test, MiniLM top {args.depth}", *scifact_run(args.depth), args.repeats
    )
    compare(
        f"synthetic {args.queries} x {args.docs}",
        *synthetic_run(args.queries, args.docs),
        args.repeats,
    )
    if not args.no_jit:
        jit_cost()


if __name__ == "__main__":
    main()
