"""Harness overhead: a KGE run through ``harness bench`` vs a bare PyTorch loop.

Both sides train TransE (L1, dim 64) on UMLS with the NSSA loss and uniform
(unfiltered) corruption negatives, K per fact split between head and tail by
a coin per negative, AdamW (fused, lr 0.01, torch's default weight decay),
the same batch size, epochs and seed, on the CPU, with the same thread count
and glibc malloc settings (harness.allocator), each in a fresh process.

* harness: ``harness bench --task umls --model transe --loss nssa --sampler
  uniform --jobs 1`` (worker process, contract checks, sampler diagnostics,
  store and all); its time is the run's stored ``train`` phase, in wall
  seconds and in CPU seconds (``train_cpu``).
* bare: a loop written here by hand: shuffling, batching, inverse-relation
  rows, the head/tail coin, the uniform pool and the draw of K non-answers,
  the NSSA loss, the optimiser step and TransE's unit-norm projection.  It
  calls only TransE's scoring (``score_pairs``) from negbench, and draws its
  random numbers in the harness's order from the same seed, so both sides
  do the same training step for step (their test MRRs agree to the last
  digit).  Its time covers the same span as the harness's
  ``train`` phase: building the model and the optimiser, then every step;
  also in wall and in CPU seconds (``time.process_time``).

Data loading, process start-up and evaluation are excluded on both sides
(reported separately as end-to-end wall time, which is not the goal).  The
two sides alternate (harness first on even repeats, bare first on odd ones)
and the table shows medians.  Both sides are evaluated by negbench's filtered
MRR, which must agree to prove that they did the same training.

    HARNESS_DATA_DIR=../shared/datasets python benchmarks/harness_overhead.py \\
        [--dataset umls] [--epochs 40] [--batch-size 256] [--negatives 32] \\
        [--repeats 5] [--threads 1] [--profile [--profile-rounds 3]]

Threads: 1 on both sides by default (``harness bench --threads 1``);
``--threads N`` sets both, ``--threads 0`` gives both the executor's default
for ``--jobs 1`` (all cores).  On a shared 2-core machine a 2-thread run
slows down 2-50x whenever another process takes a core, so its medians say
more about the neighbours than about the harness (the minima still hold);
1-thread runs repeat to within a few per cent.

``--profile`` then attributes the harness's extra time, in a separate
process: inline harness runs (``--jobs 0``) and the bare loop, 1 thread,
CPU seconds of the train span (robust to other processes), rounds
interleaved, switching off cumulatively (by monkeypatching, in that process
only) the sampler diagnostics (with the fact look-ups that only feed them)
and the contract checks; what is left is the protocol's own bookkeeping.
The inline process carries the whole harness, so its bare loop runs a few
per cent slower than the bare script's own process; compare rows with each
other, and the headline overhead above for the goal.

Goal: overhead = harness train s / bare train s - 1 <= 3%, in CPU seconds
(the work each side does; wall seconds are printed too, and agree with them
when no other process takes the core).  Even CPU seconds of the same
1-thread run vary by a few per cent from one run to the next on a shared
VM (caches, memory bandwidth): use 9 or more repeats, and read the paired
ratios, which pair runs made a few seconds apart.
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
from pathlib import Path

import torch
import torch.nn.functional as F


def _harness_flags(args: argparse.Namespace) -> list[str]:
    task = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "num_negatives": args.negatives,
    }
    flags = [
        f"--param=task.{args.dataset}.{key}={value}" for key, value in task.items()
    ]
    flags += [
        f"--param=model.transe.dim={args.dim}",
        f"--param=model.transe.lr={args.lr}",
        f"--param=loss.nssa.margin={args.margin}",
        f"--param=loss.nssa.adversarial_temperature={args.temperature}",
    ]
    return [
        "--task",
        args.dataset,
        "--model",
        "transe",
        "--loss",
        "nssa",
        "--sampler",
        "uniform",
        "--seeds",
        "1",  # seed 0, as the bare loop
        *flags,
    ]


def harness_side(args: argparse.Namespace, store: Path) -> dict[str, float]:
    base = [sys.executable, "-m", "harness.cli"]
    start = time.perf_counter()
    subprocess.run(
        [
            *base,
            "bench",
            "--store",
            str(store),
            "--jobs",
            "1",
            "--rerun",
            *(["--threads", str(args.threads)] if args.threads else []),
            *_harness_flags(args),
        ],
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    out = subprocess.run(
        [*base, "results", "--store", str(store), "--json"],
        check=True,
        capture_output=True,
    ).stdout
    (result,) = json.loads(out)
    if result["status"] != "ok":
        sys.exit(f"harness run failed: {result['error']}")
    return {
        "train": result["timings"]["train"],
        "train_cpu": result["timings"]["train_cpu"],
        "mrr": result["metrics"]["mrr"],
        "wall": wall,
    }


def bare_side(args: argparse.Namespace) -> dict[str, float]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--bare-child", *sys.argv[1:]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - start
    return {**json.loads(out.strip().splitlines()[-1]), "wall": wall}


# -- the bare loop (runs in its own process) ---------------------------------------


def _warm_torch() -> None:
    """What the harness's forkserver does before forking a worker
    (harness._preload): the first optimiser step imports part of torch."""
    layer = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    layer(torch.ones(2, 4)).logsumexp(dim=1).mean().backward()
    optimizer.step()


def bare_train(graph, args: argparse.Namespace, seed: int):
    """Train TransE by hand; returns the model (the harness's RNG order)."""
    from negbench_plugins.models.kge import TransE

    torch.manual_seed(seed)  # the model's initialisation
    generator = torch.Generator().manual_seed(seed)  # every draw of training
    e, r = graph.num_entities, graph.num_relations
    model = TransE(dim=args.dim, lr=args.lr)
    model.build(e, 2 * r)  # relations and their inverses
    entity, relation = model.entity.weight, model.relation.weight
    optimizer = torch.optim.AdamW([entity, relation], lr=args.lr, fused=True)
    facts, bs, k, margin = graph.train, args.batch_size, args.negatives, args.margin
    pool = k + 16  # the uniform pool: K plus headroom for the answer itself
    steps = (len(facts) + bs - 1) // bs
    column = torch.arange(k)[None, :]
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(facts), generator=generator)
        for number in range(steps):
            batch = facts[order[number * bs :][:bs]]
            b = len(batch)
            # tail queries (h, r) -> t, then head queries (t, r + R) -> h
            inverse = torch.stack([batch[:, 2], batch[:, 1] + r, batch[:, 0]], 1)
            rows = torch.cat([batch, inverse])
            # each of a fact's K negatives corrupts its head or tail (a coin):
            # the tail row keeps its first K - n_head, the head row n_head
            n_head = (torch.rand(b, k, generator=generator) < 0.5).sum(dim=1)
            used = torch.cat([column < (k - n_head)[:, None], column < n_head[:, None]])
            # uniform corruption, unfiltered: K random entities that are not
            # the row's own answer (other true facts may be drawn); a row
            # with fewer than K non-answers among K + 16 (negbench then draws
            # with replacement) needs 17+ copies of its answer: never here
            ids = torch.randint(e, (2 * b, pool), generator=generator)
            keys = torch.rand(ids.shape, generator=generator)
            keys.masked_fill_(ids == rows[:, 2:3], -1.0)
            negatives = ids.gather(1, keys.topk(k, dim=1, sorted=False).indices)
            width = int(used.sum(dim=1).max())  # score only the kept prefix
            negatives, used = negatives[:, :width], used[:, :width]
            tails = torch.cat([rows[:, 2:3], negatives], 1)
            scores = model.score_pairs(rows[:, 0], rows[:, 1], tails)
            positive, negative = scores[:, 0], scores[:, 1:]
            # NSSA (RotatE): self-adversarial weights, detached
            logits = (args.temperature * negative.detach()).masked_fill(
                ~used, float("-inf")
            )
            weights = torch.softmax(logits, dim=1).nan_to_num(0.0)
            negative_part = -(weights * F.logsigmoid(-(margin + negative)))
            negative_part = negative_part.masked_fill(~used, 0.0).sum(dim=1)
            positive_part = -F.logsigmoid(margin + positive)
            loss = ((positive_part + negative_part) / 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # TransE: entities back onto the unit sphere
                entity.div_(entity.norm(dim=-1, keepdim=True).clamp(1e-12))
    return model


def bare_child(args: argparse.Namespace) -> None:
    from harness.allocator import keep_freed_memory
    from negbench_plugins.tasks.kg_data import read_graph
    from negbench_plugins.tasks.kge_protocol import evaluate

    keep_freed_memory()  # as every harness worker
    # the executor's default for --jobs 1, or --threads as passed to both
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    _warm_torch()
    graph = read_graph(
        args.dataset, Path(os.environ["HARNESS_DATA_DIR"]) / args.dataset
    )
    if graph.num_entities <= args.negatives + 16:
        sys.exit(
            f"{args.dataset} has {graph.num_entities} entities; the bare loop "
            f"needs more than K + 16 = {args.negatives + 16} (below, the "
            "harness's pool is every entity): use umls, kinship or larger"
        )
    start, cpu_start = time.perf_counter(), time.process_time()
    model = bare_train(graph, args, seed=0)
    train = time.perf_counter() - start
    train_cpu = time.process_time() - cpu_start
    model.eval()
    with torch.no_grad():
        mrr = evaluate(graph, model).metrics["mrr"]
    print(json.dumps({"train": train, "train_cpu": train_cpu, "mrr": mrr}))


# -- where the harness's extra time goes ---------------------------------------------

#: what each ablation switches off, cumulatively (in the profiling process only)
ABLATIONS = (
    ("harness", "as it runs"),
    (
        "- diagnostics",
        "Diagnostics.observe, add_values (and the fact look-ups they run): no-ops",
    ),
    ("- contract checks", "_check_sample, compute_loss's checks: skipped"),
)


def _ablate(level: int) -> None:
    """Switch off exactly the first ``level`` harness extras (monkeypatches,
    this process only; the others are put back); none of them changes what
    is trained."""
    from harness.context import RunContext
    from harness.diagnostics import Diagnostics

    patches = (
        (
            (Diagnostics, "observe", lambda self, **kwargs: None),
            (Diagnostics, "add_values", lambda self, key, values, where=None: None),
        ),
        (
            (RunContext, "_check_sample", lambda self, batch, k, chosen: chosen.long()),
            (
                RunContext,
                "compute_loss",
                lambda self, batch: self.loss.forward_batch(batch).mean(),
            ),
        ),
    )
    for number, group in enumerate(patches, start=1):
        for owner, name, replacement in group:
            original = _ORIGINALS.setdefault((owner, name), getattr(owner, name))
            setattr(owner, name, replacement if level >= number else original)


_ORIGINALS: dict[tuple[type, str], object] = {}


def profile_child(args: argparse.Namespace) -> None:
    """CPU seconds of the train span of the bare loop and of inline harness
    runs (``--jobs 0``) with the extras of ABLATIONS[:level] switched off."""
    import contextlib
    import gc
    import io

    from harness.allocator import keep_freed_memory
    from harness.cli import main as harness_main
    from harness.store import ResultStore
    from negbench_plugins.tasks.kg_data import read_graph
    from negbench_plugins.tasks.kge import KGETask

    keep_freed_memory()
    torch.set_num_threads(1)  # CPU time = work: robust to a busy machine
    _warm_torch()
    graph = read_graph(
        args.dataset, Path(os.environ["HARNESS_DATA_DIR"]) / args.dataset
    )
    spans: list[float] = []
    fit = KGETask.fit

    def timed_fit(self, data, model, context) -> None:
        start = time.process_time()
        fit(self, data, model, context)
        spans.append(time.process_time() - start)

    KGETask.fit = timed_fit
    tmp = Path(tempfile.mkdtemp())

    def harness_run() -> tuple[float, float]:
        store = tmp / f"run{len(spans)}.db"
        with contextlib.redirect_stdout(io.StringIO()):
            bench = ["bench", "--store", str(store), "--jobs", "0", "--rerun"]
            harness_main([*bench, *_harness_flags(args)])
        with ResultStore(store) as results:
            (result,) = results.load()
        if result.status != "ok":
            sys.exit(f"harness run failed: {result.error}")
        return spans[-1], result.metrics["mrr"]

    def bare_run() -> tuple[float, float]:
        start = time.process_time()
        bare_train(graph, args, seed=0)
        return time.process_time() - start, math.nan

    harness_run()  # warm-up: the first inline run imports lazily
    gc.freeze()  # as a worker does before its run (harness.executor)
    samples: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.profile_rounds):  # interleaved: drift hits all alike
        samples.setdefault("bare", []).append(bare_run())
        for level, (name, _) in enumerate(ABLATIONS):
            _ablate(level)
            samples.setdefault(name, []).append(harness_run())
    steps = args.epochs * -(-len(graph.train) // args.batch_size)
    print(json.dumps({"steps": steps, "samples": samples}))


def profile(args: argparse.Namespace) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--profile-child", *sys.argv[1:]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    answer = json.loads(out.strip().splitlines()[-1])
    steps, samples = answer["steps"], answer["samples"]
    bare = statistics.median(cpu for cpu, _ in samples["bare"])
    print(
        f"\nwhere the harness's extra train time goes: inline runs (--jobs 0), "
        f"1 thread, CPU seconds of the train span, median of "
        f"{args.profile_rounds}; each row also switches off the rows above it"
    )
    print(
        f"{'':18} {'cpu s':>6} {'ms/step':>7} {'vs bare':>8} {'saved':>7} "
        f"{'MRR':>7}  switched off"
    )
    print(f"{'bare loop':18} {bare:6.2f} {1000 * bare / steps:7.3f}")
    previous = None
    for name, what in ABLATIONS:
        cpu = statistics.median(cpu for cpu, _ in samples[name])
        saved = "" if previous is None else f"{(previous - cpu) / bare:+7.1%}"
        print(
            f"{name:18} {cpu:6.2f} {1000 * cpu / steps:7.3f} {cpu / bare - 1:+8.1%} "
            f"{saved:>7} {samples[name][0][1]:7.4f}  {what}"
        )
        previous = cpu
    print(
        "    saved = the row above minus this row, as a share of the bare loop; "
        "what is left in the last row's 'vs bare' is the protocol's own "
        "bookkeeping (CandidateBatch, masks, guards, the optimiser wrapper)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="umls")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=32)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--margin", type=float, default=9.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of both sides; 0 = the executor's default (all cores)",
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-rounds", type=int, default=3)
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not os.environ.get("HARNESS_DATA_DIR"):
        sys.exit("set HARNESS_DATA_DIR to the datasets folder")
    if args.bare_child:
        bare_child(args)
        return
    if args.profile_child:
        profile_child(args)
        return
    harness: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for repeat in range(args.repeats):
            store = tmp / f"repeat{repeat}.db"
            if repeat % 2 == 0:
                harness.append(harness_side(args, store))
                bare.append(bare_side(args))
            else:
                bare.append(bare_side(args))
                harness.append(harness_side(args, store))
        print(
            f"{args.dataset}: TransE dim {args.dim}, NSSA, uniform corruption, "
            f"{args.negatives} negatives/fact, batch {args.batch_size}, "
            f"{args.epochs} epochs, seed 0, "
            f"{args.threads or max(1, os.cpu_count() or 1)} threads, "
            f"{args.repeats} alternating repeats (medians)"
        )
        print(
            f"{'':9} {'train s':>8} {'min':>7} {'max':>7} {'cpu s':>7} {'min':>7} "
            f"{'test MRR':>9} {'end-to-end s':>13}"
        )
        for side, results in (("harness", harness), ("bare", bare)):
            train = [result["train"] for result in results]
            cpu = [result["train_cpu"] for result in results]
            print(
                f"{side:9} {statistics.median(train):8.3f} {min(train):7.3f} "
                f"{max(train):7.3f} {statistics.median(cpu):7.3f} {min(cpu):7.3f} "
                f"{results[0]['mrr']:9.4f} "
                f"{statistics.median(result['wall'] for result in results):13.1f}"
            )
        print(
            "    train s = wall seconds of the run's train phase (model + "
            "optimiser built, every step); cpu s = CPU seconds of the same span "
            "(the harness's stored train_cpu); end-to-end = the whole command: "
            "`harness bench` (CLI, forkserver, store) vs the bare script "
            "(imports, data, evaluation)"
        )
        print(
            f"load average (1 min) before/after: {load_before:.1f}/"
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; other "
            "processes stretch wall time unevenly, CPU time much less"
        )
        for key, what in (("train_cpu", "CPU s"), ("train", "wall s")):
            medians = statistics.median(r[key] for r in harness) / statistics.median(
                r[key] for r in bare
            )
            paired = statistics.median(
                h[key] / b[key] for h, b in zip(harness, bare, strict=True)
            )
            best = min(r[key] for r in harness) / min(r[key] for r in bare)
            print(
                f"overhead harness/bare - 1, {what + ':':7} {medians - 1:+.1%} of "
                f"medians, {paired - 1:+.1%} median of paired ratios, "
                f"{best - 1:+.1%} of minima (goal <= +3%)"
            )
        mrr_gap = max(
            abs(h["mrr"] - b["mrr"]) for h, b in zip(harness, bare, strict=True)
        )
        print(f"largest test MRR difference: {mrr_gap:.4f} (0: the same training)")
    if args.profile:
        profile(args)


if __name__ == "__main__":
    main()
