"""Top-k hard-negative mining on SciFact: negbench vs sentence-transformers.

Both sides mine, for every (train claim, cited abstract) pair of SciFact, the
K highest-scored abstracts that are not a known positive of the claim, among
the top ``depth`` of the 5,183-abstract corpus, from the SAME embeddings:
negbench's ``minilm`` model (all-MiniLM-L6-v2 through the harness's embedding
cache, then ``pools.embed_all``).  Encoding happens once, before any clock
starts; only the mining is timed, best of ``--repeats`` after one warm-up:

* negbench: the contrastive protocol's code path (``_Step._refresh`` and
  ``_Step._candidates``): ``pools.mine`` (faiss exact inner-product
  top-``depth`` with its scores and in-pool ranks) and the claims' table
  of known positives (``pools.member_table``), then per batch of pairs
  ``pools.membership`` (known positives) and
  ``RunContext.sample_negatives`` with the ``topk-hard`` sampler (``top``,
  window = the whole pool), the harness's checks and diagnostics included;
* sentence-transformers: ``util.mine_hard_negatives`` (``sampling_strategy=
  "top"``, ``range_min=0``, ``range_max = depth - max positives per claim``
  so it too searches ``depth`` documents, positives excluded, n-tuple
  output), given a MiniLM model whose ``encode_query``/``encode_document``
  return the precomputed embeddings; once with its default torch
  similarity + topk and once with ``use_faiss=True``.

    HARNESS_DATA_DIR=../shared/datasets python \\
        benchmarks/mining_vs_sentence_transformers.py [--negatives 7] \\
        [--depth 100] [--batch-size 32] [--repeats 7] [--threads 2]

Both sides run in this one process with the same torch / faiss threads; on a
busy 2-core machine two threads wait on each other in every parallel kernel
(negbench's small per-batch ops suffer most), so ``--threads 1`` is steadier.

The negatives are then compared pair by pair (ordered lists of corpus ids);
rows that differ are explained (tied / float-noise scores, or claims whose
text occurs twice, which sentence-transformers merges into one query).

Goal (issue): negbench >= 2x faster than sentence-transformers at identical
negatives.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.data import default_cache_dir
from harness.testing import make_context
from harness.types import CandidateBatch
from negbench_plugins.models.minilm import MiniLM, load_sentence_transformer
from negbench_plugins.samplers.topk_hard import TopKHard
from negbench_plugins.tasks.pools import (
    embed_all,
    faiss_search,
    member_table,
    membership,
    mine,
)
from negbench_plugins.tasks.retrieval import RetrievalData, prepare

TIE = 1e-6  # scores closer than this are a tie (faiss vs torch kernels differ)


def round_robin(
    calls: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, Any], dict[str, list[float]], dict[str, float]]:
    """Warm-up call each, then ``repeats`` rounds taking turns (load hits all).

    :returns: the last result, the seconds of each round and of the warm-up
        call, per name.
    """
    results: dict[str, Any] = {}
    seconds: dict[str, list[float]] = defaultdict(list)
    first: dict[str, float] = {}
    for round_ in range(repeats + 1):
        for name, call in calls.items():
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # st's progress bars
                results[name] = call()
            elapsed = time.perf_counter() - start
            if round_:
                seconds[name].append(elapsed)
            else:
                first[name] = elapsed
    return results, seconds, first


def negbench(
    data: RetrievalData,
    anchor_emb: torch.Tensor,
    doc_emb: torch.Tensor,
    args: argparse.Namespace,
    *,
    parts: dict[str, list[float]] | None = None,
) -> torch.Tensor:
    """Negative corpus ids per training pair, shape (P, K), via negbench's path
    (the pool's in-pool rank diagnostics included)."""
    context = make_context(sampler=TopKHard(sampling="top"))
    training = data.training
    start = time.perf_counter()
    pool = mine("mined", anchor_emb, doc_emb, args.depth, context.generator)
    # built once per run by the protocol; timed here, as the peer's set-up is
    known = member_table(training.positives)
    mined = time.perf_counter()
    out = []
    pairs = training.pairs
    for begin in range(0, len(pairs), args.batch_size):
        anchors = pairs[begin : begin + args.batch_size, 0]
        positives = pairs[begin : begin + args.batch_size, 1]
        ids, scores = pool.ids[anchors], pool.scores[anchors]
        pool_ranks = None if pool.ranks is None else pool.ranks[anchors]
        batch = CandidateBatch(
            anchor_ids=anchors,
            candidate_ids=ids,
            scores=scores,
            positive_scores=(anchor_emb[anchors] * doc_emb[positives]).sum(-1),
            known_positive=membership(ids, known[anchors]),
            positive_ids=positives,
        )
        negatives = context.sample_negatives(batch, args.negatives, ranks=pool_ranks)
        out.append(ids.gather(1, negatives.positions))
    done = time.perf_counter()
    if parts is not None:
        parts["mine() + member_table()"].append(mined - start)
        parts["membership + sample_negatives"].append(done - mined)
    return torch.cat(out)


class Precomputed:
    """Swap a SentenceTransformer's encoders for lookups of given embeddings."""

    def __init__(self, texts: list[str], embeddings: np.ndarray) -> None:
        self.row = {text: i for i, text in reversed(list(enumerate(texts)))}
        self.embeddings = embeddings

    def __call__(self, texts: list[str], **_: Any) -> np.ndarray:
        return self.embeddings[[self.row[text] for text in texts]]


def sentence_transformers(
    data: RetrievalData,
    anchor_emb: torch.Tensor,
    doc_emb: torch.Tensor,
    args: argparse.Namespace,
) -> tuple[dict[str, Callable[[], Any]], int]:
    """The timed calls (default, faiss) and the max positives per claim text."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    training = data.training
    model = load_sentence_transformer("cpu")
    # nn.Module.__setattr__ keeps plain callables as instance attributes
    model.encode_query = Precomputed(training.anchor_texts, anchor_emb.numpy())
    model.encode_document = Precomputed(training.candidate_texts, doc_emb.numpy())
    dataset = Dataset.from_dict(
        {
            "query": [training.anchor_texts[a] for a in training.pairs[:, 0]],
            "positive": [training.candidate_texts[d] for d in training.pairs[:, 1]],
        }
    )
    per_text = Counter(training.anchor_texts[a] for a in training.pairs[:, 0])
    max_positives = max(per_text.values())

    def call(use_faiss: bool) -> Callable[[], Any]:
        return lambda: mine_hard_negatives(
            dataset,
            model,
            corpus=training.candidate_texts,
            range_min=0,
            range_max=args.depth - max_positives,  # it searches range_max + that
            num_negatives=args.negatives,
            sampling_strategy="top",
            output_format="n-tuple",
            use_faiss=use_faiss,
            verbose=False,
        )

    return {
        "sentence-transformers": call(False),
        "st use_faiss=True": call(True),
    }, max_positives


def st_negatives(result: Any, data: RetrievalData, k: int) -> torch.Tensor:
    """mine_hard_negatives' n-tuple rows as corpus ids, in negbench's pair order."""
    training = data.training
    doc_row = {text: i for i, text in enumerate(training.candidate_texts)}
    found: dict[tuple[str, int], list[int]] = {}
    rows = result.to_dict()
    for i, (query, positive) in enumerate(
        zip(rows["query"], rows["positive"], strict=True)
    ):
        found[query, doc_row[positive]] = [
            doc_row[rows[f"negative_{j}"][i]] for j in range(1, k + 1)
        ]
    return torch.tensor(
        [found[training.anchor_texts[a], d] for a, d in training.pairs.tolist()]
    )


def compare(
    ours: torch.Tensor,
    theirs: torch.Tensor,
    data: RetrievalData,
    anchor_emb: torch.Tensor,
    doc_emb: torch.Tensor,
) -> tuple[int, dict[str, int]]:
    """Identical rows, and why the others differ."""
    training = data.training
    shared = Counter(training.anchor_texts)
    same = (ours == theirs).all(dim=1)
    why: dict[str, int] = defaultdict(int)
    for row in (~same).nonzero().flatten().tolist():
        anchor = int(training.pairs[row, 0])
        a_scores = (doc_emb[ours[row]] @ anchor_emb[anchor]).sort().values
        b_scores = (doc_emb[theirs[row]] @ anchor_emb[anchor]).sort().values
        if shared[training.anchor_texts[anchor]] > 1:
            why["claim text shared by 2 query ids (st merges them)"] += 1
        elif set(ours[row].tolist()) == set(theirs[row].tolist()):
            why["same negatives, tied scores in another order"] += 1
        elif float((a_scores - b_scores).abs().max()) < TIE:
            why[f"tie at the K-th place (scores within {TIE:g})"] += 1
        else:
            why["other"] += 1
    return int(same.sum()), dict(why)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--negatives", type=int, default=7, help="K per pair")
    parser.add_argument("--depth", type=int, default=100, help="pool depth")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="negbench pairs per step"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not os.environ.get("HARNESS_DATA_DIR"):
        sys.exit("set HARNESS_DATA_DIR to the datasets folder")
    if args.repeats < 1:
        sys.exit("--repeats must be >= 1")
    import faiss

    # both sides get the malloc settings harness workers run with
    from harness.allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    data = prepare(Path(os.environ["HARNESS_DATA_DIR"]) / "scifact")
    training = data.training

    # -- the embeddings, once (harness cache; not timed) -----------------------
    start = time.perf_counter()
    context = make_context()
    context.cache_dir = default_cache_dir()
    encoder = MiniLM()
    anchor_emb = embed_all(
        encoder,
        encoder.featurize(training.anchor_texts, side="query", context=context),
        "query",
        context.device,
    )
    doc_emb = embed_all(
        encoder,
        encoder.featurize(training.candidate_texts, side="document", context=context),
        "document",
        context.device,
    )
    with contextlib.redirect_stderr(io.StringIO()):  # "Loading weights" bar
        st_calls, max_positives = sentence_transformers(data, anchor_emb, doc_emb, args)
    print(
        f"SciFact train: {len(training.anchor_texts)} claims, "
        f"{len(training.pairs)} pairs, {doc_emb.shape[0]} abstracts, "
        f"dim {doc_emb.shape[1]}; K={args.negatives} negatives per pair from the "
        f"top {args.depth} (st: range_max={args.depth - max_positives} + "
        f"{max_positives} max positives); {args.threads} threads; embeddings and "
        f"model ready in {time.perf_counter() - start:.1f} s (not timed); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )

    # -- timing (taking turns) ---------------------------------------------------
    parts: dict[str, list[float]] = defaultdict(list)
    calls: dict[str, Callable[[], Any]] = {
        "negbench": lambda: negbench(data, anchor_emb, doc_emb, args, parts=parts),
        **st_calls,
        "(faiss_search() alone)": lambda: faiss_search(anchor_emb, doc_emb, args.depth),
    }
    results, seconds, first = round_robin(calls, args.repeats)
    print(f"\n{'':28} {'best s':>8} {'median s':>9} {'1st call s':>11}")
    for name in calls:
        print(
            f"{name:28} {min(seconds[name]):8.3f} "
            f"{statistics.median(seconds[name]):9.3f} {first[name]:11.3f}"
        )
    print(f"(load average after timing: {os.getloadavg()[0]:.1f})")
    print("negbench, best of its parts:")
    for part, part_s in parts.items():
        print(f"  {part:26} {min(part_s[1:]):8.3f}")

    # -- identical negatives? ----------------------------------------------------
    print()
    ours = results["negbench"]
    for name in st_calls:
        theirs = st_negatives(results[name], data, args.negatives)
        same, why = compare(ours, theirs, data, anchor_emb, doc_emb)
        share = same / len(ours)
        print(
            f"identical negative lists negbench vs {name}: {same}/{len(ours)} "
            f"({share:.1%})"
        )
        for reason, count in why.items():
            print(f"  {count:4d} differ: {reason}")
    print()
    for name in st_calls:
        ratio = min(seconds[name]) / min(seconds["negbench"])
        print(f"speed-up of negbench over {name} (its best time / ours): {ratio:.2f}x")


if __name__ == "__main__":
    main()
