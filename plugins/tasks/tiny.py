"""Tiny in-memory tasks, one per family, for contract tests and smoke runs.

Each generates its data from a seed (no files, no download) and trains and
evaluates in about a second under its family's real protocol, so a plugin
author can check that a component runs end to end in every family it
declares without any dataset::

    harness bench --task tiny-kge --model my-kge-model --loss nssa --sampler uniform

They are not benchmarks: the data is synthetic and small, and the scores say
only that learning happens (a trained model beats chance).  The model and
task contracts (:mod:`harness.testing`) run on them.

* ``tiny-retrieval``: SynthIR-Pool (:mod:`.synth_fn`) at 240 documents;
* ``tiny-sts``: sentence pairs over topic vocabularies whose gold score is
  the share of words the second sentence keeps from the first;
* ``tiny-kge``: a graph whose relations are noisy shifts of entity ids
  (``t = h + offset_r mod N``), so every relation is learnable;
* ``tiny-multilabel``: feature vectors whose labels are thresholded noisy
  linear functions of the features.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.components import Task
from harness.context import RunContext
from harness.data import DataLocator
from harness.plugin import hookimpl
from harness.types import DatasetRef

from .kg_data import KnowledgeGraph
from .kge import KGETask
from .multilabel import MultiLabelTask
from .multilabel_data import MultiLabelData
from .sts import STSTask
from .sts_data import STSPairs
from .synth_fn import SynthFN

__all__ = ["TINY_TASKS", "TinyKGE", "TinyMultiLabel", "TinyRetrieval", "TinySTS"]

#: bump when a generator below changes what it generates
TINY_VERSION = 1


def _generated(name: str, description: str, data_seed: int) -> DatasetRef:
    digest = hashlib.sha256(f"{name}|v{TINY_VERSION}|{data_seed}".encode()).hexdigest()
    return DatasetRef(
        name=name,
        path=f"generated: {description}, data_seed {data_seed}",
        sha256=digest,
        origin="generated",
    )


class TinyRetrieval(SynthFN):
    """SynthIR-Pool at 240 documents (Cao et al.-style generated retrieval,
    see :mod:`.synth_fn`): 80 train and 40 test queries, one epoch."""

    name = "tiny-retrieval"
    description = "Tiny generated retrieval (240 docs, 80/40 queries), for tests."
    SMALL: dict[str, Any] = {
        "epochs": 1,
        "batch_size": 16,
        "depth": 20,
        "eval_depth": 20,
        "n_docs": 240,
        "topics": 8,
        "subtopics": 6,
        "vocab": 2000,
        "n_train": 80,
        "n_test": 40,
        "doc_length": 24,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**{**self.SMALL, **params})


class TinySTS(STSTask):
    """Generated sentence pairs graded 0-5 by the share of shared words.

    Sentence one is eight words of one topic's vocabulary; sentence two keeps
    a random share of them and replaces the rest with another topic's words,
    and its gold score is five times the share kept (the STS-B scale).
    """

    name = "tiny-sts"
    description = "Tiny generated STS pairs (300 train / 100 test), for tests."
    TOPICS, WORDS_PER_TOPIC, LENGTH = 10, 20, 8

    def __init__(
        self,
        *,
        data_seed: int = 0,
        n_train: int = 300,
        n_test: int = 100,
        **params: Any,
    ) -> None:
        super().__init__(**{"epochs": 1, "depth": 20, **params})
        if n_train < 1 or n_test < 2:
            raise ValueError("n_train must be >= 1 and n_test >= 2")
        self.data_seed, self.n_train, self.n_test = data_seed, n_train, n_test

    def locate(self, locator: DataLocator) -> DatasetRef:
        return _generated(self.name, "topic-word sentence pairs", self.data_seed)

    def read(self, train_folder: Path, test_folder: Path) -> tuple[STSPairs, STSPairs]:
        """Generated, not read: the folders are the generator's description."""
        rng = np.random.default_rng(self.data_seed)
        return self._pairs(rng, self.n_train, "train"), self._pairs(
            rng, self.n_test, "test"
        )

    def _pairs(self, rng: np.random.Generator, count: int, split: str) -> STSPairs:
        pairs = STSPairs()
        for index in range(count):
            topic, other = rng.choice(self.TOPICS, size=2, replace=False)
            first = [
                f"t{topic}w{w}" for w in rng.choice(self.WORDS_PER_TOPIC, self.LENGTH)
            ]
            kept = int(rng.integers(0, self.LENGTH + 1))
            second = first[:kept] + [
                f"t{other}w{w}"
                for w in rng.choice(self.WORDS_PER_TOPIC, self.LENGTH - kept)
            ]
            pairs.append(
                f"{split}-{index}",
                " ".join(first),
                " ".join(second),
                5.0 * kept / self.LENGTH,
            )
        return pairs


class TinyKGE(KGETask):
    """A generated graph: relation ``r`` maps entity ``h`` to ``h + offset_r``
    (mod the number of entities), with a tenth of the tails replaced at
    random; 90% of the facts train, 5% validate, 5% test."""

    name = "tiny-kge"
    description = "Tiny generated knowledge graph (60 entities, 4 relations)."
    defaults = {"epochs": 30, "batch_size": 64, "num_negatives": 8, "corruptions": 32}

    def __init__(
        self,
        *,
        data_seed: int = 0,
        entities: int = 60,
        relations: int = 4,
        facts_per_entity: int = 3,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        if entities < 8 or relations < 1 or facts_per_entity < 1:
            raise ValueError(
                "entities must be >= 8, relations and facts_per_entity >= 1"
            )
        self.data_seed = data_seed
        self.sizes = (entities, relations, facts_per_entity)

    def locate(self, locator: DataLocator) -> DatasetRef:
        n, r, f = self.sizes
        return _generated(
            self.name, f"{n} entities, {r} relations, {f} facts each", self.data_seed
        )

    def load(self, dataset: DatasetRef, context: RunContext) -> KnowledgeGraph:
        rng = np.random.default_rng(self.data_seed)
        n, r, per_entity = self.sizes
        offsets = rng.choice(np.arange(1, n), size=r, replace=False)
        heads = np.repeat(np.arange(n), per_entity * r)
        relations = np.tile(np.repeat(np.arange(r), per_entity), n)
        tails = (heads + offsets[relations] + rng.integers(0, 2, heads.size)) % n
        noisy = rng.random(heads.size) < 0.1
        tails[noisy] = rng.integers(0, n, int(noisy.sum()))
        triples = np.unique(np.stack([heads, relations, tails], axis=1), axis=0)
        triples = triples[rng.permutation(len(triples))]
        held_out = max(2, len(triples) // 20)
        splits = {
            "test": triples[:held_out],
            "valid": triples[held_out : 2 * held_out],
            "train": triples[2 * held_out :],
        }
        seen = set(splits["train"][:, 0]) | set(splits["train"][:, 2])
        for split in ("valid", "test"):  # every held-out entity occurs in train
            rows = splits[split]
            keep = np.isin(rows[:, 0], list(seen)) & np.isin(rows[:, 2], list(seen))
            splits[split] = rows[keep]
        graph = KnowledgeGraph(
            name=self.name,
            entities=[f"e{i}" for i in range(n)],
            relations=[f"r{i}" for i in range(r)],
            train=torch.from_numpy(splits["train"]).long(),
            valid=torch.from_numpy(splits["valid"]).long(),
            test=torch.from_numpy(splits["test"]).long(),
        )
        context.diagnostics.note("graph_entities", graph.num_entities)
        return self._head(graph)


class TinyMultiLabel(MultiLabelTask):
    """Generated feature vectors (16 dims) with 8 labels, each label the
    thresholded value of a noisy random linear function of the features."""

    name = "tiny-multilabel"
    dataset = "tiny-multilabel"
    provides_text = False
    description = "Tiny generated multi-label set (200 train / 80 test), for tests."
    defaults = {"epochs": 10, "batch_size": 32}
    FEATURES, LABELS = 16, 8

    def __init__(
        self, *, data_seed: int = 0, n_train: int = 200, n_test: int = 80, **params: Any
    ) -> None:
        super().__init__(**params)
        if n_train < 1 or n_test < 1:
            raise ValueError("n_train and n_test must be >= 1")
        self.data_seed, self.n_train, self.n_test = data_seed, n_train, n_test

    def locate(self, locator: DataLocator) -> DatasetRef:
        return _generated(self.name, "noisy linear labels", self.data_seed)

    def load(self, dataset: DatasetRef, context: RunContext) -> MultiLabelData:
        rng = np.random.default_rng(self.data_seed)
        total = self.n_train + self.n_test
        features = rng.normal(size=(total, self.FEATURES)).astype(np.float32)
        weights = rng.normal(size=(self.FEATURES, self.LABELS))
        noise = rng.normal(scale=0.5, size=(total, self.LABELS))
        # about a quarter of the labels on per example
        labels = (features @ weights / 4 + noise > 0.7).astype(np.uint8)
        labels[np.arange(total), rng.integers(0, self.LABELS, total)] = 1
        data = MultiLabelData(
            name=self.name,
            labels=tuple(f"label{i}" for i in range(self.LABELS)),
            train_labels=labels[: self.n_train],
            test_labels=labels[self.n_train :],
            train_features=features[: self.n_train],
            test_features=features[self.n_train :],
        )
        context.diagnostics.note("num_labels", data.num_labels)
        return data


#: one per family, by family name
TINY_TASKS: dict[str, type[Task]] = {
    "retrieval": TinyRetrieval,
    "sts": TinySTS,
    "kge": TinyKGE,
    "multilabel": TinyMultiLabel,
}


@hookimpl
def harness_register_tasks() -> list[type[Task]]:
    return list(TINY_TASKS.values())
