"""Dense retrieval tasks on BEIR-format data: SciFact, Cranfield, any ``beir:PATH``.

Protocol (the same for every sampler and loss, so they compare fairly):

* training pairs are the (query, relevant document) pairs of the train qrels;
  a folder without train qrels (Cranfield) is split deterministically by
  query: every other query (in id order) trains, the rest are the test set —
  for *every* model, so zero-shot and trained rows stay comparable;
* before each epoch the current model re-embeds the corpus and faiss mines
  each training query's top ``depth`` documents (the ``mined`` pool), or a
  uniform draw of ``depth`` documents is offered (the ``uniform`` pool);
* per batch, the sampler picks ``num_negatives`` negatives per query from the
  pool; losses with ``in_batch`` also see the other queries' positives;
* evaluation embeds the test queries and the corpus, retrieves the top
  ``eval_depth`` with faiss (exact inner product) and scores the ranking with
  ranx: nDCG@10 (main), MRR@10, Recall@100 and MAP@100, per query as well.

The false-negative rate recorded here is a *lower bound*: a sampled negative
counts as false only when the test qrels mark it relevant for the same query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from harness import Evaluation, Model, Task, TextEncoder, hookimpl
from harness.context import RunContext
from harness.data import DataLocator, DatasetSource
from harness.errors import DataError
from harness.metrics import RANKING_METRICS, evaluate_ranking
from harness.types import CandidateBatch, DatasetRef

from .beir import beir_files, read_beir
from .cranfield import unpack_cranfield

__all__ = ["BeirTask", "Cranfield", "RetrievalTask", "SciFact"]

METRICS = RANKING_METRICS


@dataclass(slots=True)
class RetrievalData:
    """A BEIR folder split into what training and evaluation need."""

    doc_ids: list[str]
    doc_texts: list[str]
    train_query_texts: list[str]
    train_pairs: torch.Tensor  #: shape: (P, 2) (train query index, doc index)
    train_positives: list[set[int]]  #: per train query, its relevant docs
    test_query_ids: list[str]
    test_query_texts: list[str]
    test_qrels: dict[str, dict[str, int]]
    #: per train query, docs the *test* qrels call relevant (false-negative oracle)
    hidden_positives: list[set[int]] = field(default_factory=list)


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
        hidden.append(
            {doc_index[d] for d, r in test.get(qid, {}).items() if r > 0} - relevant
        )
    if not pairs:
        raise DataError(f"{folder}: the train qrels contain no relevant documents")
    test_qids = sorted(
        q for q, docs in test.items() if any(r > 0 for r in docs.values())
    )
    return RetrievalData(
        doc_ids=beir.doc_ids,
        doc_texts=beir.doc_texts,
        train_query_texts=[beir.queries[q] for q in train_qids],
        train_pairs=torch.tensor(pairs, dtype=torch.long),
        train_positives=positives,
        test_query_ids=test_qids,
        test_query_texts=[beir.queries[q] for q in test_qids],
        test_qrels={q: test[q] for q in test_qids},
        hidden_positives=hidden,
    )


def _faiss_search(
    queries: torch.Tensor, docs: torch.Tensor, k: int
) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    doc_matrix = np.ascontiguousarray(docs.detach().cpu().numpy(), dtype=np.float32)
    index = faiss.IndexFlatIP(doc_matrix.shape[1])
    index.add(doc_matrix)
    query_matrix = np.ascontiguousarray(
        queries.detach().cpu().numpy(), dtype=np.float32
    )
    scores, ids = index.search(query_matrix, min(k, doc_matrix.shape[0]))
    return scores, ids


@torch.no_grad()
def _embed_all(
    model: TextEncoder,
    features: torch.Tensor,
    side: str,
    device: torch.device,
    batch: int = 4096,
) -> torch.Tensor:
    chunks = [
        model.embed(features[i : i + batch].to(device), side=side)
        for i in range(0, features.shape[0], batch)
    ]
    return torch.cat(chunks).float()


@dataclass(slots=True)
class Pool:
    """Candidates offered to the sampler for every training query."""

    ids: torch.Tensor  #: shape: (Q, C)
    scores: torch.Tensor  #: shape: (Q, C)
    ranks: torch.Tensor | None  #: shape: (Q, C) 1-based full-corpus rank


class RetrievalTask(Task):
    """Base class of BEIR-format retrieval tasks (subclass and set ``source``).

    :param epochs: passes over the training pairs.
    :param batch_size: training pairs per step.
    :param num_negatives: negatives the sampler picks per query.
    :param depth: candidates per query in the sampler's pool.
    :param eval_depth: documents retrieved per test query.
    """

    family = "retrieval"
    main_metric = "ndcg@10"
    source: DatasetSource

    #: rank diagnostics need a full score matrix; skip them beyond this size
    MAX_RANKED_CELLS: ClassVar[int] = 30_000_000

    def __init__(
        self,
        *,
        epochs: int = 3,
        batch_size: int = 32,
        num_negatives: int = 7,
        depth: int = 100,
        eval_depth: int = 100,
    ) -> None:
        if min(epochs, batch_size, num_negatives, depth, eval_depth) < 1:
            raise ValueError(
                "epochs, batch_size, num_negatives, depth and eval_depth must be >= 1"
            )
        self.epochs = epochs
        self.batch_size = batch_size
        self.num_negatives = num_negatives
        self.depth = depth
        self.eval_depth = eval_depth

    def locate(self, locator: DataLocator) -> DatasetRef:
        return locator.locate(self.source)

    def load(self, dataset: DatasetRef, context: RunContext) -> RetrievalData:
        return prepare(Path(dataset.path))

    # -- training -----------------------------------------------------------------

    def fit(self, data: RetrievalData, model: Model, context: RunContext) -> None:
        model = _text_encoder(model)
        device = context.device
        with context.phase("embed"):
            query_features = model.featurize(
                data.train_query_texts, side="query", context=context
            )
            doc_features = model.featurize(
                data.doc_texts, side="document", context=context
            )
        params = [p for p in model.parameters() if p.requires_grad]
        if context.loss is not None:
            params += [p for p in context.loss.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=model.lr) if params else None
        sampler = context.sampler
        assert sampler is not None and context.loss is not None
        pairs = data.train_pairs
        positive_sets = data.train_positives
        for epoch in range(self.epochs):
            context.progress(f"epoch {epoch + 1}/{self.epochs}")
            model.eval()
            with context.phase("mine", f"epoch {epoch + 1}"):
                doc_emb = _embed_all(model, doc_features, "document", device)
                query_emb = _embed_all(model, query_features, "query", device)
                pool = self._pool(sampler.pool, query_emb, doc_emb, context)
                pair_scores = query_emb[pairs[:, 0]] * doc_emb[pairs[:, 1]]
                positive_scores = pair_scores.sum(-1).cpu()
            model.train()
            order = torch.randperm(len(pairs), generator=context.generator)
            steps = (len(order) + self.batch_size - 1) // self.batch_size
            for step in range(steps):
                index = order[step * self.batch_size : (step + 1) * self.batch_size]
                q_idx, d_idx = pairs[index, 0], pairs[index, 1]
                candidate_ids = pool.ids[q_idx]
                known = _membership(
                    candidate_ids, [positive_sets[q] for q in q_idx.tolist()]
                )
                oracle = _membership(
                    candidate_ids, [data.hidden_positives[q] for q in q_idx.tolist()]
                )
                batch = CandidateBatch(
                    anchor_ids=q_idx,
                    candidate_ids=candidate_ids,
                    scores=pool.scores[q_idx],
                    positive_scores=positive_scores[index],
                    known_positive=known,
                )
                chosen = context.sample_negatives(
                    batch,
                    self.num_negatives,
                    oracle_positive=oracle,
                    ranks=None if pool.ranks is None else pool.ranks[q_idx],
                )
                negative_ids = candidate_ids.gather(1, chosen)
                loss = self._step_loss(
                    model=model,
                    context=context,
                    query_features=query_features,
                    doc_features=doc_features,
                    q_idx=q_idx,
                    d_idx=d_idx,
                    negative_ids=negative_ids,
                    positive_sets=positive_sets,
                )
                if optimizer is not None:
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                context.progress(
                    f"epoch {epoch + 1}/{self.epochs} step {step + 1}/{steps}"
                )

    def _pool(
        self,
        kind: str,
        query_emb: torch.Tensor,
        doc_emb: torch.Tensor,
        context: RunContext,
    ) -> Pool:
        n_docs = doc_emb.shape[0]
        depth = min(self.depth, n_docs)
        full = None
        if query_emb.shape[0] * n_docs <= self.MAX_RANKED_CELLS:
            full = torch.sort(query_emb @ doc_emb.T, dim=1, descending=True).values
        if kind == "uniform":
            ids = torch.randint(
                n_docs, (query_emb.shape[0], depth), generator=context.generator
            )
        else:
            ids = torch.from_numpy(_faiss_search(query_emb, doc_emb, depth)[1]).long()
        # Scores in torch for both pools, so they match the positives' scores.
        scores = torch.einsum("qd,qcd->qc", query_emb, doc_emb[ids.to(doc_emb.device)])
        ranks = None
        if full is not None:
            # rank = 1 + documents scored higher (beyond float noise between kernels)
            higher = -(scores + 1e-6)
            ranks = (
                torch.searchsorted(-full.contiguous(), higher.contiguous(), side="left")
                + 1
            )
        # Pools live on the CPU with the ids and masks built from them.
        return Pool(
            ids=ids,
            scores=scores.cpu(),
            ranks=None if ranks is None else ranks.cpu(),
        )

    def _step_loss(
        self,
        *,
        model: TextEncoder,
        context: RunContext,
        query_features: torch.Tensor,
        doc_features: torch.Tensor,
        q_idx: torch.Tensor,
        d_idx: torch.Tensor,
        negative_ids: torch.Tensor,
        positive_sets: list[set[int]],
    ) -> torch.Tensor:
        device = context.device
        b, k = negative_ids.shape
        queries = model.embed(query_features[q_idx].to(device), side="query")
        positives = model.embed(doc_features[d_idx].to(device), side="document")
        negatives = model.embed(
            doc_features[negative_ids.reshape(-1)].to(device), side="document"
        ).view(b, k, -1)
        positive_scores = (queries * positives).sum(-1)
        negative_scores = model.score(queries, negatives)
        mask = torch.ones_like(negative_scores, dtype=torch.bool)
        assert context.loss is not None
        if context.loss.in_batch and b > 1:
            in_batch = model.similarity(queries, positives)
            docs = d_idx.tolist()
            valid = torch.tensor(
                [
                    [i != j and docs[j] not in positive_sets[q] for j in range(b)]
                    for i, q in enumerate(q_idx.tolist())
                ],
                device=device,
            )
            negative_scores = torch.cat([negative_scores, in_batch], dim=1)
            mask = torch.cat([mask, valid], dim=1)
        return context.compute_loss(positive_scores, negative_scores, mask)

    # -- evaluation -----------------------------------------------------------------

    def evaluate(
        self, data: RetrievalData, model: Model, context: RunContext
    ) -> Evaluation:
        model = _text_encoder(model)
        with context.phase("embed"):
            query_features = model.featurize(
                data.test_query_texts, side="query", context=context
            )
            doc_features = model.featurize(
                data.doc_texts, side="document", context=context
            )
        query_emb = _embed_all(model, query_features, "query", context.device)
        doc_emb = _embed_all(model, doc_features, "document", context.device)
        scores, ids = _faiss_search(query_emb, doc_emb, self.eval_depth)
        run = {
            qid: {
                data.doc_ids[d]: float(s)
                for d, s in zip(ids[i], scores[i], strict=True)
                if d >= 0
            }
            for i, qid in enumerate(data.test_query_ids)
        }
        return evaluate_ranking(data.test_qrels, run, METRICS)


def _text_encoder(model: Model) -> TextEncoder:
    if not isinstance(model, TextEncoder):
        raise TypeError(
            "retrieval tasks need a harness.TextEncoder model, "
            f"got {type(model).__name__}"
        )
    return model


def _membership(candidate_ids: torch.Tensor, sets: list[set[int]]) -> torch.Tensor:
    """shape: (B, C) bool, True where candidate_ids[b, c] is in sets[b]."""
    out = torch.zeros(candidate_ids.shape, dtype=torch.bool)
    for row, members in enumerate(sets):
        if members:
            out[row] = torch.isin(candidate_ids[row], torch.tensor(sorted(members)))
    return out


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
            how_to_get=(
                "The folder needs corpus.jsonl[.gz], queries.jsonl and qrels/test.tsv."
            ),
        )

    def locate(self, locator: DataLocator) -> DatasetRef:
        return locator.locate_path(f"beir:{self.folder}", self.folder, self.source)


@hookimpl
def harness_register_tasks() -> list[type[Task]]:
    return [SciFact, Cranfield, BeirTask]
