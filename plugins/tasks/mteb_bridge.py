"""Hand a BEIR folder (or STS pairs) to MTEB as an in-memory task.

MTEB (Muennighoff et al., EACL 2023) normally downloads its tasks from the
Hugging Face hub; overriding ``load_data`` lets it evaluate local files
offline.  negbench uses this to check its own retrieval evaluation against
MTEB's evaluator on the same data (tests) and to time MTEB as a peer
(``benchmarks/``).  Remember ``cache=None`` in ``mteb.evaluate``: MTEB's result
cache would otherwise answer a rerun from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .beir import read_beir
from .sts_data import STSPairs

__all__ = ["mteb_retrieval_task", "mteb_sts_task"]


def mteb_retrieval_task(
    folder: Path, name: str = "LocalBEIR", split: str = "test"
) -> Any:
    """An ``AbsTaskRetrieval`` serving ``folder``'s corpus, queries and qrels."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    beir = read_beir(Path(folder))
    qrels = beir.qrels[split]

    class LocalRetrieval(AbsTaskRetrieval):
        metadata = TaskMetadata(
            type="Retrieval",
            name=name,
            main_score="ndcg_at_10",
            description=f"BEIR folder {folder}, served from disk",
            reference="https://github.com/beir-cellar/beir",
            dataset={"path": str(folder), "revision": "local"},
            category="t2t",
            eval_splits=[split],
            eval_langs=["eng-Latn"],
            date=("2000-01-01", "2000-01-01"),
            dialect=[],
            domains=[],
            task_subtypes=[],
            license="not specified",
            annotations_creators="derived",
            modalities=["text"],
            sample_creation="found",
            bibtex_citation="",
        )

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            # MTEB joins title and text itself, so hand it the raw fields.
            corpus = [
                {"id": doc_id, "title": title, "text": body}
                for doc_id, title, body in zip(
                    beir.doc_ids, beir.doc_titles, beir.doc_bodies, strict=True
                )
            ]
            data = RetrievalSplitData(
                queries=Dataset.from_list(
                    [{"id": q, "text": beir.queries[q]} for q in qrels]
                ),
                corpus=Dataset.from_list(corpus),
                relevant_docs=qrels,
                top_ranked=None,
            )
            self.dataset = {"default": {split: data}}
            self.data_loaded = True

    return LocalRetrieval()


def mteb_sts_task(
    pairs: STSPairs, name: str = "LocalSTS", min_score: int = 0, max_score: int = 5
) -> Any:
    """An ``AbsTaskSTS`` serving ``pairs`` as its test split.

    MTEB rescales the gold scores to [0, 1] with ``min_score``/``max_score``;
    correlations do not change under that rescaling.
    """
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    class LocalSTS(AbsTaskSTS):
        metadata = TaskMetadata(
            type="STS",
            name=name,
            main_score="cosine_spearman",
            description=f"{len(pairs)} local sentence pairs, served from memory",
            reference="https://github.com/embeddings-benchmark/mteb",
            dataset={"path": name, "revision": "local"},
            category="t2t",
            eval_splits=["test"],
            eval_langs=["eng-Latn"],
            date=("2000-01-01", "2000-01-01"),
            dialect=[],
            domains=[],
            task_subtypes=[],
            license="not specified",
            annotations_creators="human-annotated",
            modalities=["text"],
            sample_creation="found",
            bibtex_citation="",
        )

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = DatasetDict(
                {
                    "test": Dataset.from_dict(
                        {
                            "sentence1": list(pairs.sentence1),
                            "sentence2": list(pairs.sentence2),
                            "score": list(pairs.scores),
                        }
                    )
                }
            )
            self.data_loaded = True

    LocalSTS.min_score = min_score
    LocalSTS.max_score = max_score
    return LocalSTS()
