"""How wall time grows with the corpus (mining) and with the number of runs (--jobs).

(a) Corpus size.  negbench mines hard negatives (``plugins/tasks/pools.py``)
with an exact faiss inner-product search (``faiss.knn``: ``IndexFlatIP``'s
kernel, with no index to build) in every mining pass (the embeddings change
every epoch); it has no IVF option.  For N = 1k, 10k and
100k documents (dim 384, unit norm) and one mining pass of Q queries at
negbench's default depth (100), this times, per pass (median of --repeats):

* ``faiss_search``: negbench's exact search;
* ``mine``: what a mined pool costs in the protocol: ``faiss_search`` plus
  the pool's scores and its rank diagnostics;
* faiss ``IndexIVFFlat`` (inner product, nlist = 4 sqrt(N), --nprobe), built
  here: training + adding the documents (paid again at every re-mine, since
  the embeddings move), and the search alone, with recall@depth of its top
  ``depth`` against the flat (exact) top ``depth``.

The default corpus is synthetic (a mixture of N/50 topics on the unit
sphere; each query a perturbed document); ``--source scifact`` tiles SciFact's
5,183 cached all-MiniLM-L6-v2 document embeddings (with noise beyond the
first copy) and draws the queries from its 809 training claims (run ``harness bench
--task scifact --model minilm`` once to cache them).

(b) Number of runs.  The same 4-run matrix (UMLS, TransE, NSSA, uniform and
bernoulli corruption, 2 seeds) through ``harness bench --jobs J`` for J = 1,
2, 4, each into a fresh store, timed end to end as a user runs it; J = 1 is
the peer of the speed-up.  The executor gives each worker cores / J torch
threads (at least 1; ``--threads`` overrides).  Also shown: the per-run
times inside the workers, the time spent outside the runs (start-up of the
CLI and of the worker forkserver, spawns, store) and, separately, the same
command once every run is stored (the CLI alone: no worker starts).

    HARNESS_DATA_DIR=../shared/datasets python benchmarks/scaling.py \\
        [--sizes 1000,10000,100000] [--queries 1000] [--depth 100] \\
        [--nprobe 32] [--source synthetic|scifact] [--jobs 1,2,4] \\
        [--threads N] [--repeats 3] [--skip-corpus] [--skip-runs]

Goal: know where time goes before scaling up, not a pass/fail number.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

DIM = 384


# -- (a) corpus size ---------------------------------------------------------------


def _normalise(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def synthetic(n: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents around N/50 topic centres (cosine ~0.6 within a topic, ~0
    across), and queries that are noisy copies of random documents."""
    rng = np.random.default_rng(seed)
    centres = _normalise(rng.standard_normal((max(16, n // 50), DIM)))
    topic = rng.integers(len(centres), size=n)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) * (0.8 / math.sqrt(DIM))
    docs = _normalise(centres[topic] + noise)
    source = rng.integers(n, size=queries)
    noise = rng.standard_normal((queries, DIM)).astype(np.float32)
    return docs, _normalise(docs[source] + noise * (0.8 / math.sqrt(DIM)))


def scifact(n: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """SciFact's cached MiniLM embeddings: documents tiled to ``n`` (copies
    after the first get noise), the training claims as queries."""
    from harness.cache import ArrayCache, digest_texts
    from negbench_plugins.models.minilm import MODEL_ID
    from negbench_plugins.tasks.retrieval import prepare

    data = prepare(Path(os.environ["HARNESS_DATA_DIR"]) / "scifact").training
    cache = ArrayCache(Path(os.environ.get("HARNESS_CACHE_DIR", "")))

    def cached(texts: list[str]) -> np.ndarray:
        key = digest_texts([MODEL_ID, "max_seq_length=256", *texts])
        path = cache.path("embeddings/all-MiniLM-L6-v2", key)
        if not path.exists():
            sys.exit(
                f"no cached SciFact embeddings under {path.parent}: run "
                "`harness bench --task scifact --model minilm` once (or use "
                "--source synthetic)"
            )
        return _normalise(np.load(path))

    base, claims_emb = cached(data.candidate_texts), cached(data.anchor_texts)
    rng = np.random.default_rng(seed)
    copies = -(-n // len(base))
    tiled = np.concatenate([base] * copies)[:n]
    noise = rng.standard_normal(tiled.shape).astype(np.float32) * (0.3 / math.sqrt(DIM))
    noise[: len(base)] = 0.0  # the first copy is the real corpus
    docs = _normalise(tiled + noise)
    return docs, claims_emb[rng.integers(len(claims_emb), size=queries)]


def _median_time(work: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def corpus_scaling(args: argparse.Namespace) -> None:
    import faiss

    from negbench_plugins.tasks import pools

    make = scifact if args.source == "scifact" else synthetic
    generator = torch.Generator().manual_seed(0)
    negbench_rows, ivf_rows = [], []
    for n in args.sizes:
        docs, queries = make(n, args.queries, seed=0)
        doc_t, query_t = torch.from_numpy(docs), torch.from_numpy(queries)

        def flat(d=doc_t, q=query_t) -> tuple[np.ndarray, np.ndarray]:
            return pools.faiss_search(q, d, args.depth)

        def mine(d=doc_t, q=query_t) -> object:
            return pools.mine("mined", q, d, args.depth, generator)

        flat_s, (_, exact) = _median_time(flat, args.repeats)
        mine_s, _ = _median_time(mine, args.repeats)
        negbench_rows.append((n, flat_s, mine_s))

        nlist = max(1, round(4 * math.sqrt(n)))

        def build(nlist=nlist, docs=docs) -> tuple[object, object]:
            quantiser = faiss.IndexFlatIP(DIM)  # fresh: k-means every time
            index = faiss.IndexIVFFlat(
                quantiser, DIM, nlist, faiss.METRIC_INNER_PRODUCT
            )
            index.cp.min_points_per_centroid = 5  # 1k docs: 126 lists of ~8
            index.train(docs)
            index.add(docs)
            index.nprobe = min(args.nprobe, nlist)
            return index, quantiser  # the index needs its quantiser alive

        # once: k-means is seconds at 100k docs, long enough to time alone
        build_s, (index, quantiser) = _median_time(build, 1)

        def add(index=index, docs=docs) -> None:  # reuse the trained lists
            index.reset()
            index.add(docs)

        def search(index=index, q=queries) -> tuple[np.ndarray, np.ndarray]:
            return index.search(q, args.depth)

        add_s, _ = _median_time(add, args.repeats)
        search_s, (_, approx) = _median_time(search, args.repeats)
        recall = statistics.mean(
            len(set(e) & set(a)) / len(e) for e, a in zip(exact, approx, strict=True)
        )
        ivf_rows.append((n, nlist, index.nprobe, build_s, add_s, search_s, recall))
        del index, quantiser

    print(
        f"(a) one mining pass: {args.queries} queries x top-{args.depth}, dim "
        f"{DIM}, {args.source} corpus, {torch.get_num_threads()} torch / "
        f"{faiss.omp_get_max_threads()} faiss threads, median of {args.repeats} "
        "(IVF build: once)"
    )
    print("negbench's mining (plugins/tasks/pools.py), exact faiss.knn:")
    print(f"{'docs':>7} {'flat s':>8} {'mine s':>8} {'mine/flat':>9} {'ms/query':>8}")
    for n, flat_s, mine_s in negbench_rows:
        print(
            f"{n:7d} {flat_s:8.3f} {mine_s:8.3f} {mine_s / flat_s:8.2f}x "
            f"{1000 * mine_s / args.queries:8.3f}"
        )
    print(
        "IVF (faiss IndexIVFFlat built here; negbench has only flat), "
        "nlist = 4 sqrt(N), vs negbench's flat pass:"
    )
    print(
        f"{'docs':>7} {'nlist':>5} {'nprobe':>6} {'build s':>8} {'add s':>7} "
        f"{'search s':>8} {'recall@' + str(args.depth):>10} {'vs flat: search':>15} "
        f"{'build+search':>12} {'add+search':>10}"
    )
    for (n, nlist, nprobe, build_s, add_s, search_s, recall), (_, flat_s, _) in zip(
        ivf_rows, negbench_rows, strict=True
    ):
        print(
            f"{n:7d} {nlist:5d} {nprobe:6d} {build_s:8.3f} {add_s:7.3f} "
            f"{search_s:8.4f} {recall:10.3f} {flat_s / search_s:14.1f}x "
            f"{flat_s / (build_s + search_s):11.2f}x "
            f"{flat_s / (add_s + search_s):9.2f}x"
        )
    print(
        "    flat = pools.faiss_search (index built + searched, as every "
        "re-mine does); mine = pools.mine('mined'), the whole pool: the "
        "search plus the pool's scores and rank diagnostics.  IVF build = "
        "k-means + add (at every re-mine, as the embeddings move); add = "
        "re-adding to lists trained once; recall = share of the exact "
        "top-depth that IVF returns; vs flat = flat s / IVF s (> 1: IVF faster)"
    )


# -- (b) number of runs --------------------------------------------------------------

MATRIX = [
    "--task",
    "umls",
    "--model",
    "transe",
    "--loss",
    "nssa",
    "--sampler",
    "uniform",
    "--sampler",
    "bernoulli",
    "--seeds",
    "2",
]


HARNESS = [sys.executable, "-m", "harness.cli"]


def _bench(store: Path, jobs: int, threads: int | None) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            *HARNESS,
            "bench",
            "--store",
            str(store),
            "--jobs",
            str(jobs),
            *([] if threads is None else ["--threads", str(threads)]),
            *MATRIX,
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def _runs(store: Path) -> list[dict]:
    out = subprocess.run(
        [*HARNESS, "results", "--store", str(store), "--json"],
        check=True,
        capture_output=True,
    ).stdout
    results = json.loads(out)
    for result in results:
        if result["status"] != "ok":
            sys.exit(f"run failed: {result['error']}")
    return results


def run_scaling(args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for jobs in args.jobs:
            store = tmp / f"jobs{jobs}.db"
            wall = _bench(store, jobs, args.threads)
            rows.append((jobs, wall, _runs(store)))
        # the same command again: every run is stored, so no worker starts
        startup = _bench(tmp / f"jobs{args.jobs[0]}.db", args.jobs[0], args.threads)
    print(
        f"\n(b) {len(rows[0][2])} runs (umls, transe, nssa, uniform|bernoulli, "
        f"2 seeds) through `harness bench`, a fresh store per --jobs, {cores} "
        f"CPU cores; the CLI alone (every run stored, no worker): {startup:.1f} s"
    )
    print(
        f"{'jobs':>4} {'threads/run':>11} {'wall s':>7} {'speed-up':>8} "
        f"{'run total s':>11} {'run train s':>11} {'outside runs s':>14} "
        f"{'mean MRR':>8}"
    )
    base = rows[0][1]
    for jobs, wall, results in rows:
        threads = args.threads or max(1, cores // jobs)
        totals = [r["timings"]["total"] for r in results]
        train = statistics.mean(r["timings"]["train"] for r in results)
        mrr = statistics.mean(r["metrics"]["mrr"] for r in results)
        outside = wall - sum(totals) / min(jobs, len(totals))
        print(
            f"{jobs:4d} {threads:11d} {wall:7.1f} {base / wall:7.2f}x "
            f"{statistics.mean(totals):11.2f} {train:11.2f} {outside:14.1f} "
            f"{mrr:8.4f}"
        )
    print(
        f"    speed-up = wall(--jobs {args.jobs[0]}) / wall(--jobs J); run "
        "total/train = mean seconds of a run inside its worker; outside runs = "
        "wall - sum(run totals) / min(J, runs): CLI and forkserver start-up "
        "(torch, faiss, numba warm-up), worker spawns, store writes, table"
    )


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_ints, default=[1_000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument(
        "--source", choices=("synthetic", "scifact"), default="synthetic"
    )
    parser.add_argument("--jobs", type=_ints, default=[1, 2, 4])
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads per run for (b) (default: the executor's cores / jobs)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--skip-runs", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("HARNESS_DATA_DIR"):
        sys.exit("set HARNESS_DATA_DIR to the datasets folder")
    load_before = os.getloadavg()[0]
    if not args.skip_corpus:
        corpus_scaling(args)
    if not args.skip_runs:
        run_scaling(args)
    print(
        f"load average (1 min) before/after: {load_before:.1f}/"
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
