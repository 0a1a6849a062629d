"""Time ``harness leaderboard build`` on a store of 10,000 runs.

The store is synthesised (harness.testing.make_run_results: real run ids,
per-item scores for the paired tests, all four families) and is not timed;
the build is: loading the runs and their main metric's per-item scores,
ranking with bootstrap intervals and Holm-corrected tie groups, and writing
leaderboard.json plus every page (one per run, method, task and family).

    python benchmarks/leaderboard_build.py [--tasks 50] [--methods 100] \\
        [--seeds 2] [--items 100] [--repeats 3]

Goal (issue #6): <= 5 s for 10,000 runs.  The peer line is the bare cost of
reading the same runs out of the store (`harness results --json`'s path), so
the ratio says how much the ranking and rendering add on top of I/O.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.store import ResultStore
from harness.testing import make_run_results
from harness.types import TaskInfo

FAMILIES = (
    ("retrieval", "ndcg@10"),
    ("sts", "spearman"),
    ("kge", "mrr"),
    ("multilabel", "map"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--methods", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tasks = {f"task{i:03d}": FAMILIES[i % len(FAMILIES)] for i in range(args.tasks)}
    methods = [
        (f"model{i % 5}", f"loss{i % 7}", f"sampler{i}") for i in range(args.methods)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "results.db"
        start = time.perf_counter()
        results = make_run_results(
            tasks=tasks, methods=methods, seeds=args.seeds, items=args.items
        )
        with ResultStore(store_path) as store:
            for result in results:
                store.save(result)
            # as `harness bench` does: the build then needs no task plugin
            store.save_tasks(
                TaskInfo(name=name, family=family, main_metric=metric)
                for name, (family, metric) in tasks.items()
            )
        print(
            f"synthesised {len(results)} runs x {args.items} items in "
            f"{time.perf_counter() - start:.1f} s (not timed)"
        )
        start = time.perf_counter()
        with ResultStore(store_path) as store:
            store.load()
            store.per_item_of_runs(extra_metrics=("cosine", "gold"))
        read = time.perf_counter() - start
        # as a user runs it: a fresh process, imports and plugin discovery
        # included; the median of --repeats builds, each into a fresh folder,
        # since a shared VM's disk makes single timings vary by ~10%
        builds = []
        for attempt in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "harness.cli",
                    "leaderboard",
                    "build",
                    "--store",
                    str(store_path),
                    "--out",
                    f"{tmp}/site{attempt}",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            builds.append(time.perf_counter() - start)
        build = statistics.median(builds)
        pages = sum(1 for _ in Path(tmp, "site0").rglob("*.html"))
    print(f"{'':28} {'seconds':>8}")
    print(f"{'read runs (peer: bare I/O)':28} {read:8.2f}")
    print(
        f"{'harness leaderboard build':28} {build:8.2f}   ({pages} pages, wall; "
        f"median of {', '.join(f'{b:.2f}' for b in builds)})"
    )
    print(
        f"build / bare read: {build / read:.1f}x; goal <= 5 s: {build / 5.0:.2f} of it"
    )


if __name__ == "__main__":
    main()
