"""Dense retrieval tasks on BEIR-format data: SciFact, Cranfield, any ``beir:PATH``.

Protocol (the same for every sampler and loss, so they compare fairly):

* training pairs are the (query, relevant document) pairs of the train qrels;
  a folder without train qrels (Cranfield) is split deterministically by
  query: every other query (in id order) trains, the rest are the test set —
  for *every* model, so zero-shot and trained rows stay comparable;
* training follows the shared contrastive protocol
  (:mod:`negbench_plugins.tasks.contrastive`): pools re-mined every epoch by
  default, ``num_negatives`` per query from the sampler, in-batch negatives
  when the loss (or sampler) asks;
* evaluation embeds the test queries and the corpus, retrieves the top
  ``eval_depth`` with faiss (exact inner product) and scores the ranking with
  ranx: nDCG@10 (main), MRR@10, Recall@100 and MAP@100, per query as well,
  with trec_eval's rule for tied scores (:mod:`harness.metrics`), so the
  numbers equal pytrec_eval's, BEIR's and MTEB's.

The false-negative rate recorded here is a *lower bound*: a sampled negative
counts as false only when the test qrels mark it relevant for the same query.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness import Evaluation, Model, Task, hookimpl
from harness.context import RunContext
from harness.data import DataLocator, DatasetSource
from harness.errors import DataError
from harness.metrics import RANKING_METRICS, evaluate_ranking
from harness.types import DatasetRef

from .beir import beir_files, read_beir
from .contrastive import (
    ContrastiveProtocol,
    PairData,
    embed_all,
    faiss_search,
    text_encoder,
)
from .cranfield import unpack_cranfield

__all__ = ["BeirTask", "Cranfield", "RetrievalTask", "SciFact"]

METRICS = RANKING_METRICS


@dataclass(slots=True)
class RetrievalData:
    """A BEIR folder split into what training and evaluation need."""

    training: PairData
    doc_ids: list[str]
    test_query_ids: list[str]
    test_query_texts: list[str]
    test_qrels: dict[str, dict[str, int]]


def split_without_train(
    qrels: dict[str, dict[str, int]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every other query (sorted by id, numeric ids numerically) trains."""

    def key(qid: str) -> tuple[int, int | str]:
        return (0, int(qid)) if qid.isdigit() else (1, qid)

    ordered = sorted(qrels, key=key)
    train = {q: qrels[q] for q in ordered[0::2]}
    test = {q: qrels[q] for q in ordered[1::2]}
    return train, test


def prepare(folder: Path) -> RetrievalData:
    beir = read_beir(folder)
    doc_index = {d: i for i, d in enumerate(beir.doc_ids)}
    test = beir.qrels["test"]
    train = beir.qrels.get("train")
    if train is None:
        train, test = split_without_train(test)
    train_qids = sorted(
        q for q, docs in train.items() if any(r > 0 for r in docs.values())
    )
    pairs: list[tuple[int, int]] = []
    positives: list[set[int]] = []
    hidden: list[set[int]] = []
    for qi, qid in enumerate(train_qids):
        relevant = {doc_index[d] for d, r in train[qid].items() if r > 0}
        positives.append(relevant)
        pairs.extend((qi, di) for di in sorted(relevant))
        # the false-negative oracle: test judgements of the same query
        hidden.append(
            {doc_index[d] for d, r in test.get(qid, {}).items() if r > 0} - relevant
        )
    if not pairs:
        raise DataError(f"{folder}: the train qrels contain no relevant documents")
    test_qids = sorted(
        q for q, docs in test.items() if any(r > 0 for r in docs.values())
    )
    return RetrievalData(
        training=PairData(
            anchor_texts=[beir.queries[q] for q in train_qids],
            candidate_texts=beir.doc_texts,
            pairs=torch.tensor(pairs, dtype=torch.long),
            positives=positives,
            hidden=hidden,
            hidden_exact=False,
        ),
        doc_ids=beir.doc_ids,
        test_query_ids=test_qids,
        test_query_texts=[beir.queries[q] for q in test_qids],
        test_qrels={q: test[q] for q in test_qids},
    )


class RetrievalTask(Task):
    """Base class of BEIR-format retrieval tasks (subclass and set ``source``).

    :param epochs: passes over the training pairs.
    :param batch_size: training pairs per step.
    :param num_negatives: negatives the sampler picks per query.
    :param depth: candidates per query in the sampler's pool.
    :param refresh: when pools are re-mined: ``"epoch"`` (default),
        ``"static"``, ``"step"`` or every N steps (samplers may override).
    :param queue_size: memory-queue length for queue samplers.
    :param eval_depth: documents retrieved per test query.
    """

    family = "retrieval"
    # 2: tied scores rank as in trec_eval (harness.metrics); runs of 1 may differ
    version = "2"
    main_metric = "ndcg@10"
    source: DatasetSource

    def __init__(
        self,
        *,
        epochs: int = 3,
        batch_size: int = 32,
        num_negatives: int = 7,
        depth: int = 100,
        refresh: str | int = "epoch",
        queue_size: int = 1024,
        eval_depth: int = 100,
    ) -> None:
        if eval_depth < 1:
            raise ValueError("eval_depth must be >= 1")
        self.protocol = ContrastiveProtocol(
            epochs=epochs,
            batch_size=batch_size,
            num_negatives=num_negatives,
            depth=depth,
            refresh=refresh,
            queue_size=queue_size,
        )
        self.eval_depth = eval_depth

    def locate(self, locator: DataLocator) -> DatasetRef:
        return locator.locate(self.source)

    def load(self, dataset: DatasetRef, context: RunContext) -> RetrievalData:
        return prepare(Path(dataset.path))

    def fit(self, data: RetrievalData, model: Model, context: RunContext) -> None:
        self.protocol.fit(data.training, model, context)

    def evaluate(
        self, data: RetrievalData, model: Model, context: RunContext
    ) -> Evaluation:
        encoder = text_encoder(model)
        with context.phase("embed"):
            query_features = encoder.featurize(
                data.test_query_texts, side="query", context=context
            )
            doc_features = encoder.featurize(
                data.training.candidate_texts, side="document", context=context
            )
        query_emb = embed_all(encoder, query_features, "query", context.device)
        doc_emb = embed_all(encoder, doc_features, "document", context.device)
        scores, ids = faiss_search(query_emb, doc_emb, self.eval_depth)
        run = {
            qid: {
                data.doc_ids[d]: float(s)
                for d, s in zip(ids[i], scores[i], strict=True)
                if d >= 0
            }
            for i, qid in enumerate(data.test_query_ids)
        }
        return evaluate_ranking(data.test_qrels, run, METRICS)


# -- registered tasks ------------------------------------------------------------------

_HOW = (
    "Set --data-dir or HARNESS_DATA_DIR to a folder that contains "
    "'{name}/' in BEIR format."
)


class SciFact(RetrievalTask):
    """SciFact claim -> abstract retrieval (Wadden et al., EMNLP 2020; BEIR)."""

    name = "scifact"
    description = "SciFact (BEIR): 5,183 abstracts, 809 train / 300 test claims."
    source = DatasetSource(
        name="scifact",
        files=beir_files,
        check=read_beir,
        url="https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip",
        how_to_get=_HOW.format(name="scifact"),
    )


class Cranfield(RetrievalTask):
    """Cranfield aeronautics abstracts (Cleverdon 1967); graded, no train split."""

    name = "cranfield"
    description = (
        "Cranfield: 1,400 abstracts, 225 queries split half train / half test."
    )
    source = DatasetSource(
        name="cranfield",
        files=beir_files,
        check=read_beir,
        url="http://ir.dcs.gla.ac.uk/resources/test_collections/cran/cran.tar.gz",
        unpack=unpack_cranfield,
        how_to_get=_HOW.format(name="cranfield"),
    )


class BeirTask(RetrievalTask):
    """Any BEIR-format folder: ``--task beir:/path/to/folder``."""

    name = "beir"
    description = "A BEIR-format folder given by path."
    accepts_argument = True

    def __init__(self, *, argument: str = "", **protocol: Any) -> None:
        super().__init__(**protocol)
        if not argument:
            raise ValueError("use beir:PATH with the folder's path")
        self.folder = Path(argument).expanduser().resolve()
        self.source = DatasetSource(
            name=self.folder.name,
            files=beir_files,
            check=read_beir,
            how_to_get=(
                "The folder needs corpus.jsonl[.gz], queries.jsonl and qrels/test.tsv."
            ),
        )

    def locate(self, locator: DataLocator) -> DatasetRef:
        return locator.locate_path(f"beir:{self.folder}", self.folder, self.source)


@hookimpl
def harness_register_tasks() -> list[type[Task]]:
    return [SciFact, Cranfield, BeirTask]
