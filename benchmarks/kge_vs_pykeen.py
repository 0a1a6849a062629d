"""TransE training throughput and filtered MRR: negbench vs PyKEEN, same run.

Both train TransE (L1, dim 64) with the NSSA loss, Adam(-W) at lr 0.01, K
uniform corruptions per training fact (head or tail by a coin), the same
batch size and epochs, on the same graph, on the CPU, then evaluate filtered
MRR (both sides, realistic ties) on the test split.  negbench runs through
``harness bench`` (worker process, store and all); PyKEEN through its
``pipeline``.  Throughput = training facts per second of training time.

    HARNESS_DATA_DIR=../shared/datasets python benchmarks/kge_vs_pykeen.py \
        [--dataset umls] [--epochs 40] [--batch-size 256] [--negatives 32]

Goal (issue #4): negbench >= 3x PyKEEN's throughput at equal MRR (+-0.01).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def negbench(args: argparse.Namespace, store: Path) -> tuple[float, float]:
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
            "1",
            "--rerun",
            *flags,
        ],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [*base, "results", *common, "--json"], check=True, capture_output=True
    ).stdout
    (result,) = json.loads(out)
    if result["status"] != "ok":
        sys.exit(f"negbench run failed: {result['error']}")
    return result["timings"]["train"], result["metrics"]["mrr"]


def pykeen(args: argparse.Namespace) -> tuple[float, float]:
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
    start = time.perf_counter()
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
        random_seed=0,
        device="cpu",
    )
    del start
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
    args = parser.parse_args()
    if not os.environ.get("HARNESS_DATA_DIR"):
        sys.exit("set HARNESS_DATA_DIR to the datasets folder")
    torch.set_num_threads(int(os.environ.get("HARNESS_TORCH_THREADS", "2")))
    from negbench_plugins.tasks.kg_data import read_graph

    facts = len(
        read_graph(
            args.dataset, Path(os.environ["HARNESS_DATA_DIR"]) / args.dataset
        ).train
    )
    with tempfile.TemporaryDirectory() as tmp:
        ours_s, ours_mrr = negbench(args, Path(tmp) / "results.db")
    theirs_s, theirs_mrr = pykeen(args)
    work = facts * args.epochs
    ours_rate, theirs_rate = work / ours_s, work / theirs_s
    print(
        f"{args.dataset}: TransE dim {args.dim}, {args.negatives} negatives/fact, "
        f"batch {args.batch_size}, {args.epochs} epochs, {facts} training facts"
    )
    print(f"{'':10} {'train s':>9} {'facts/s':>10} {'test MRR':>9}")
    print(f"{'negbench':10} {ours_s:9.1f} {ours_rate:10.0f} {ours_mrr:9.4f}")
    print(f"{'PyKEEN':10} {theirs_s:9.1f} {theirs_rate:10.0f} {theirs_mrr:9.4f}")
    print(
        f"throughput ratio negbench/PyKEEN: {ours_rate / theirs_rate:.2f}x; "
        f"MRR difference: {ours_mrr - theirs_mrr:+.4f}"
    )


if __name__ == "__main__":
    main()
