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

Two measurements:

1. **Separate processes** (the table): each repeat runs ``harness bench``
   and the bare script, alternating which goes first; their train spans
   are compared (medians, median of paired ratios, minima).  Data loading,
   process start-up and evaluation are excluded on both sides (end-to-end
   wall time is printed too, not the goal).  On a shared VM the same
   1-thread run varies by up to 30% in CPU time from one process to the
   next (an idle machine; its neighbours on the host, not its own load),
   so this comparison alone cannot resolve a few per cent.
2. **Paired by epoch** (the goal line): a ``harness bench`` whose worker
   also runs the bare loop, one bare epoch after each of the harness's
   epochs, in the same process (this script is the plugin that does it:
   ``-p harness_overhead``, see :func:`harness_run`).  Each epoch gives a
   pair of CPU times taken tens of milliseconds apart, so slow spells of
   the VM cancel out; an A/A test (the bare loop against itself) gives
   +-0.5%.  Reported with a 95% bootstrap interval over the epochs of all
   repeats.  Both sides are evaluated by negbench's filtered MRR, which
   must agree to the last digit to show that they did the same training.

    HARNESS_DATA_DIR=../shared/datasets python benchmarks/harness_overhead.py \\
        [--dataset umls] [--epochs 40] [--batch-size 256] [--negatives 32] \\
        [--repeats 5] [--threads 1] [--profile]

Threads: 1 on both sides by default (``harness bench --threads 1``);
``--threads N`` sets both, ``--threads 0`` gives both the executor's default
for ``--jobs 1`` (all cores) in the separate-process comparison; the
paired runs always use 1 thread.

``--profile`` repeats the paired measurement with the harness's extras
switched off cumulatively (by monkeypatching, in that worker only): the
sampler diagnostics (with the fact look-ups that only feed them), then the
contract checks; what is left is the protocol's own bookkeeping.

Goal: overhead = harness train CPU s / bare train CPU s - 1 <= 3%, paired
by epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from harness import hookimpl


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


def bench_side(args: argparse.Namespace, store: Path) -> dict[str, float]:
    start = time.perf_counter()
    subprocess.run(
        [
            *(sys.executable, "-m", "harness.cli"),
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
    result = _stored(store)
    return {
        "train": result["timings"]["train"],
        "train_cpu": result["timings"]["train_cpu"],
        "mrr": result["metrics"]["mrr"],
        "wall": wall,
    }


def _stored(store: Path) -> dict[str, Any]:
    """The one result in ``store`` (``harness results --json``), if it is ok."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "results",
            "--json",
            "--store",
            str(store),
        ],
        check=True,
        capture_output=True,
    ).stdout
    (result,) = json.loads(out)
    if result["status"] != "ok":
        sys.exit(f"harness run failed: {result['error']}")
    return result


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


def bare_epochs(graph, args: argparse.Namespace, seed: int) -> Iterator:
    """Train TransE by hand, epoch by epoch (the harness's RNG order);
    yields the model after each epoch."""
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
        yield model


def bare_train(graph, args: argparse.Namespace, seed: int):
    """Train TransE by hand; returns the model."""
    model = None
    for trained in bare_epochs(graph, args, seed):
        model = trained
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


#: set (to JSON) for a bench whose worker interleaves bare epochs (below)
PACE_ENV = "HARNESS_OVERHEAD_PACE"


@hookimpl(wrapper=True)
def harness_run(run, context):
    """Interleave the bare loop with the harness's own run, epoch by epoch.

    This script is also a plugin (``-p harness_overhead``): in a bench
    started with ``PACE_ENV`` set, the worker's run switches off the extras
    of ABLATIONS[:level] and, after each of the harness's epochs (its
    ``epoch i/n`` progress report), trains one bare epoch in the same
    process.  Every epoch thus gives a pair of CPU times taken tens of
    milliseconds apart, in the very worker process the harness trains in:
    a slowdown of the VM that lasts longer than that hits both sides of the
    pair alike (an A/A test of the bare loop against itself gives +-0.5%,
    where separate processes differ by up to 30%).  Epoch 1 is left out on
    both sides (it includes building the model and the optimiser).
    """
    pace = os.environ.get(PACE_ENV)
    if not pace:
        return (yield)
    from negbench_plugins.tasks.kg_data import read_graph
    from negbench_plugins.tasks.kge_protocol import evaluate

    options = json.loads(pace)
    args = argparse.Namespace(**options["args"])
    _ablate(options["level"])
    graph = read_graph(args.dataset, Path(options["data"]) / args.dataset)
    bare = bare_epochs(graph, args, seed=0)
    pairs: list[tuple[float, float]] = []
    state: dict[str, Any] = {}
    report = context.report

    def paced(phase: str, detail: str) -> None:
        report(phase, detail)
        if phase != "train" or not detail.startswith("epoch "):
            return
        start = time.process_time()
        state["model"] = next(bare)
        end = time.process_time()
        if "end" in state:  # the harness's epoch: from the last bare epoch to now
            pairs.append((start - state["end"], end - start))
        state["end"] = end

    context.report = paced
    result = yield
    model = state["model"]
    model.eval()
    with torch.no_grad():
        bare_mrr = evaluate(graph, model).metrics["mrr"]
    with open(options["out"], "a") as out:
        out.write(json.dumps({"pairs": pairs, "bare_mrr": bare_mrr}) + "\n")
    return result


def paired_side(args: argparse.Namespace, store: Path, level: int) -> dict[str, Any]:
    """A ``harness bench`` whose worker interleaves bare epochs (see
    :func:`harness_run`), with the extras of ABLATIONS[:level] off."""
    out = store.with_suffix(".pairs.jsonl")
    pace = {
        "level": level,
        "out": str(out),
        "data": os.environ["HARNESS_DATA_DIR"],
        "args": {key: getattr(args, key) for key in BARE_ARGS},
    }
    here = str(Path(__file__).resolve().parent)
    env = {
        **os.environ,
        PACE_ENV: json.dumps(pace),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [here, os.environ.get("PYTHONPATH")])
        ),
    }
    subprocess.run(
        [
            *(sys.executable, "-m", "harness.cli", "bench", "--store", str(store)),
            *("--jobs", "1", "--rerun", "--threads", "1", "-p", "harness_overhead"),
            *_harness_flags(args),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    (line,) = out.read_text().splitlines()
    answer = json.loads(line)
    answer["mrr"] = _stored(store)["metrics"]["mrr"]
    return answer


#: what the bare loop reads of the command line
BARE_ARGS = (
    "dataset",
    "epochs",
    "batch_size",
    "negatives",
    "dim",
    "lr",
    "margin",
    "temperature",
)


def bootstrap_ratio(
    pairs: list[tuple[float, float]], *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """sum(harness) / sum(bare) - 1 over epoch pairs, and its 95% bootstrap
    interval (resampling whole pairs)."""
    import numpy as np

    values = np.asarray(pairs)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), (resamples, len(values)))
    sums = values[picks].sum(axis=1)  # (resamples, 2)
    ratios = sums[:, 0] / sums[:, 1] - 1
    low, high = np.percentile(ratios, [2.5, 97.5])
    return values[:, 0].sum() / values[:, 1].sum() - 1, float(low), float(high)


def print_paired(
    args: argparse.Namespace, rows: dict[int, list[dict[str, Any]]]
) -> None:
    """The epoch-paired overheads, one row per ablation level measured."""
    print(
        f"\npaired by epoch: `harness bench --jobs 1 --threads 1` whose worker "
        f"interleaves the bare loop with its own run, epoch by epoch; CPU "
        f"seconds of epochs 2-{args.epochs}, {args.repeats} runs per row"
        + ("; each row also switches off the rows above it" if len(rows) > 1 else "")
    )
    print(
        f"{'':18} {'ms/step':>7} {'bare':>7} {'vs bare':>8} {'95% interval':>16} "
        f"{'saved':>7} {'MRR':>7} {'bare':>7}  switched off"
    )
    steps_per_epoch = -(-_train_facts(args) // args.batch_size)
    previous = None
    for level, samples in rows.items():
        name, what = ABLATIONS[level]
        pairs = [tuple(pair) for sample in samples for pair in sample["pairs"]]
        ratio, low, high = bootstrap_ratio(pairs)
        steps = len(pairs) * steps_per_epoch
        harness_ms, bare_ms = (1000 * sum(p[i] for p in pairs) / steps for i in (0, 1))
        saved = "" if previous is None else f"{previous - ratio:+7.1%}"
        mrr_gap = max(abs(s["mrr"] - s["bare_mrr"]) for s in samples)
        print(
            f"{name:18} {harness_ms:7.3f} {bare_ms:7.3f} {ratio:+8.1%} "
            f"{f'[{low:+.1%}, {high:+.1%}]':>16} {saved:>7} {samples[0]['mrr']:7.4f} "
            f"{samples[0]['bare_mrr']:7.4f}  {what}"
            + (f" (MRRs differ by {mrr_gap:.4f}!)" if mrr_gap > 0 else "")
        )
        previous = ratio
    print(
        "    vs bare = the harness's epochs' CPU seconds / the interleaved bare "
        "epochs' - 1, with a 95% bootstrap interval over epochs; saved = the "
        "row above minus this row; what is left in the last row is the "
        "protocol's own bookkeeping (its count of each row's known answers, "
        "CandidateBatch, masks, guards, the optimiser wrapper)"
    )


def _train_facts(args: argparse.Namespace) -> int:
    from negbench_plugins.tasks.kg_data import read_graph

    graph = read_graph(
        args.dataset, Path(os.environ["HARNESS_DATA_DIR"]) / args.dataset
    )
    return len(graph.train)


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
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also measure, paired by epoch, with the harness's extras switched off",
    )
    parser.add_argument("--bare-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not os.environ.get("HARNESS_DATA_DIR"):
        sys.exit("set HARNESS_DATA_DIR to the datasets folder")
    if args.bare_child:
        bare_child(args)
        return
    harness: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    levels = range(len(ABLATIONS) if args.profile else 1)
    paired: dict[int, list[dict[str, Any]]] = {level: [] for level in levels}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for repeat in range(args.repeats):
            store = tmp / f"repeat{repeat}.db"
            if repeat % 2 == 0:
                harness.append(bench_side(args, store))
                bare.append(bare_side(args))
            else:
                bare.append(bare_side(args))
                harness.append(bench_side(args, store))
            for level in levels:
                store = tmp / f"repeat{repeat}-paired{level}.db"
                paired[level].append(paired_side(args, store, level))
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
            pair_ratio = statistics.median(
                h[key] / b[key] for h, b in zip(harness, bare, strict=True)
            )
            best = min(r[key] for r in harness) / min(r[key] for r in bare)
            print(
                f"overhead harness/bare - 1, {what + ':':7} {medians - 1:+.1%} of "
                f"medians, {pair_ratio - 1:+.1%} median of paired ratios, "
                f"{best - 1:+.1%} of minima"
            )
        mrr_gap = max(
            abs(h["mrr"] - b["mrr"]) for h, b in zip(harness, bare, strict=True)
        )
        print(f"largest test MRR difference: {mrr_gap:.4f} (0: the same training)")
        print_paired(args, paired)
    pairs = [tuple(pair) for sample in paired[0] for pair in sample["pairs"]]
    ratio, low, high = bootstrap_ratio(pairs)
    print(
        f"\noverhead (paired by epoch, CPU s): {ratio:+.1%}, 95% interval "
        f"[{low:+.1%}, {high:+.1%}] (goal <= +3%)"
    )


if __name__ == "__main__":
    main()
