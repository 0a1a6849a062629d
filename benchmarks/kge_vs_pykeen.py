"""TransE training throughput and filtered MRR: negbench vs PyKEEN, same run.

Both train TransE (L1, dim 64) with the NSSA loss, Adam(-W) at lr 0.01, K
uniform corruptions per training fact (head or tail by a coin), the same
batch size and epochs, on the same graph, on the CPU, then evaluate filtered
MRR (both sides, realistic ties) on the test split, for seeds 0..N-1 one
after the other.  negbench runs through ``harness bench`` (worker process,
store and all); PyKEEN through its ``pipeline``.  Throughput = training facts
per second of training time; MRR = mean +- std over the seeds.

    HARNESS_DATA_DIR=../shared/datasets python benchmarks/kge_vs_pykeen.py \
        [--dataset umls] [--epochs 40] [--batch-size 256] [--negatives 32] \
        [--seeds 3]

Both sides run with the same glibc malloc settings (harness.allocator).

Goal (issue #4): negbench >= 3x PyKEEN's throughput at equal MRR (+-0.01).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def negbench(args: argparse.Namespace, store: Path) -> tuple[list[float], list[float]]:
    params = {
        "task": {
            args.dataset: {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "num_negatives": args.negatives,
            }
        },
        "model": {"transe": {"dim": args.dim, "lr": args.lr}},
        "loss": {"nssa": {"margin": args.margin, "adversarial_temperature": 1.0}},
    }
    flags = [
        f"--param={kind}.{name}.{key}={value}"
        for kind, names in params.items()
        for name, values in names.items()
        for key, value in values.items()
    ]
    base = [sys.executable, "-m", "harness.cli"]
    common = ["--store", str(store)]
    subprocess.run(
        [
            *base,
            "bench",
            *common,
            "--task",
            args.dataset,
            "--model",
            "transe",
            "--loss",
            "nssa",
            "--sampler",
            "uniform",
            "--seeds",
            str(args.seeds),
            "--jobs",
            "1",  # one run at a time, as PyKEEN's
            "--rerun",
            *flags,
        ],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [*base, "results", *common, "--json"], check=True, capture_output=True
    ).stdout
    results = sorted(json.loads(out), key=lambda result: result["seed"])
    for result in results:
        if result["status"] != "ok":
            sys.exit(f"negbench run failed: {result['error']}")
    return (
        [result["timings"]["train"] for result in results],
        [result["metrics"]["mrr"] for result in results],
    )


def pykeen(args: argparse.Namespace, seed: int) -> tuple[float, float]:
    from pykeen.pipeline import pipeline
    from pykeen.triples import TriplesFactory

    from negbench_plugins.tasks.kg_data import read_graph

    logging.getLogger("pykeen").setLevel(logging.ERROR)
    graph = read_graph(
        args.dataset, Path(os.environ["HARNESS_DATA_DIR"]) / args.dataset
    )
    ids = {
        "entity_to_id": {label: i for i, label in enumerate(graph.entities)},
        "relation_to_id": {label: i for i, label in enumerate(graph.relations)},
    }
    train, valid, test = (
        TriplesFactory(mapped_triples=split, **ids)
        for split in (graph.train, graph.valid, graph.test)
    )
    result = pipeline(
        training=train,
        validation=valid,
        testing=test,
        model="TransE",
        model_kwargs={"embedding_dim": args.dim, "scoring_fct_norm": 1},
        loss="NSSA",
        loss_kwargs={"margin": args.margin, "adversarial_temperature": 1.0},
        optimizer="Adam",
        optimizer_kwargs={"lr": args.lr},
        training_loop="sLCWA",
        negative_sampler="basic",
        negative_sampler_kwargs={"num_negs_per_pos": args.negatives},
        training_kwargs={
            "num_epochs": args.epochs,
            "batch_size": args.batch_size,
            "use_tqdm": False,
        },
        evaluation_kwargs={"use_tqdm": False, "batch_size": 256},
        random_seed=seed,
        device="cpu",
    )
    mrr = result.metric_results.get_metric("both.realistic.inverse_harmonic_mean_rank")
    return float(result.train_seconds), float(mrr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="umls")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=32)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--margin", type=float, default=9.0)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not os.environ.get("HARNESS_DATA_DIR"):
        sys.exit("set HARNESS_DATA_DIR to the datasets folder")
    torch.set_num_threads(int(os.environ.get("HARNESS_TORCH_THREADS", "2")))
    # PyKEEN gets the malloc settings harness workers run with, so neither
    # side lands on glibc's slow path (see harness.allocator)
    from harness.allocator import keep_freed_memory

    keep_freed_memory()
    from negbench_plugins.tasks.kg_data import read_graph

    facts = len(
        read_graph(
            args.dataset, Path(os.environ["HARNESS_DATA_DIR"]) / args.dataset
        ).train
    )
    with tempfile.TemporaryDirectory() as tmp:
        ours_s, ours_mrr = negbench(args, Path(tmp) / "results.db")
    theirs = [pykeen(args, seed) for seed in range(args.seeds)]
    theirs_s, theirs_mrr = [s for s, _ in theirs], [m for _, m in theirs]
    work = facts * args.epochs
    ours_rate, theirs_rate = (
        work / statistics.mean(ours_s),
        work / statistics.mean(theirs_s),
    )
    print(
        f"{args.dataset}: TransE dim {args.dim}, {args.negatives} negatives/fact, "
        f"batch {args.batch_size}, {args.epochs} epochs, {facts} training facts, "
        f"seeds 0..{args.seeds - 1}"
    )
    print(f"{'':10} {'train s':>9} {'facts/s':>10} {'test MRR':>17}")
    for name, seconds, rate, mrr in (
        ("negbench", ours_s, ours_rate, ours_mrr),
        ("PyKEEN", theirs_s, theirs_rate, theirs_mrr),
    ):
        print(
            f"{name:10} {statistics.mean(seconds):9.1f} {rate:10.0f} "
            f"{statistics.mean(mrr):9.4f} ± {_std(mrr):.4f}"
        )
    gap = statistics.mean(ours_mrr) - statistics.mean(theirs_mrr)
    print(
        f"throughput ratio negbench/PyKEEN: {ours_rate / theirs_rate:.2f}x; "
        f"MRR difference: {gap:+.4f}"
    )


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


if __name__ == "__main__":
    main()
