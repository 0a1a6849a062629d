"""Knowledge-graph link prediction tasks: WN18RR, FB15k-237, CoDEx-S/M,
Nations, UMLS and Kinship.

Each task reads its graph (:mod:`.kg_data`), trains a KGE model with the
run's sampler and loss under :class:`~.kge_protocol.KGEProtocol`, and reports
filtered MRR (main) and Hits@1/3/10 on the test split, both directions,
realistic ties: the numbers PyKEEN's ``RankBasedEvaluator`` gives for the same
scores.  Per test query (``"<index>:tail"`` / ``"<index>:head"``) the
reciprocal rank and the rank are kept for paired significance tests.

Nations and Kinship are easy (ConvE's README: >95% and ~48% of their test
facts have the inverse fact in train); use them as smoke tests and
WN18RR/CoDEx as the benchmark.  Nations, UMLS and Kinship are also read from
an installed ``pykeen`` wheel when no data dir has them.

Protocol defaults per dataset are sized for a 2-core CPU (seconds for the
small graphs, about a minute for WN18RR); change them with ``--param``
(``task.wn18rr.epochs=...``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from harness import Evaluation, Model, Task, hookimpl
from harness.context import RunContext
from harness.data import DataLocator, DatasetSource
from harness.types import DatasetRef

from .kg_data import SOURCES, KnowledgeGraph, read_graph
from .kge_protocol import KGEProtocol, evaluate, kge_model

__all__ = ["KGETask"]


class KGETask(Task):
    """Base class of the link-prediction tasks (subclass and set ``source``).

    :param epochs: passes over the training facts.
    :param batch_size: facts per step.
    :param num_negatives: negatives per query (each fact is two queries).
    :param corruptions: uniformly drawn candidates a mined pool ranks.
    :param max_test: evaluate on the first N test facts only (quick runs);
        the filtered ranking still filters every known fact.
    """

    family = "kge"
    main_metric = "mrr"
    source: ClassVar[DatasetSource]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        num_negatives: int | None = None,
        corruptions: int | None = None,
        max_test: int | None = None,
    ) -> None:
        if max_test is not None and max_test < 1:
            raise ValueError("max_test must be >= 1")
        self.max_test = max_test
        given = {
            "epochs": epochs,
            "batch_size": batch_size,
            "num_negatives": num_negatives,
            "corruptions": corruptions,
        }
        settings = {
            "epochs": 20,
            "batch_size": 256,
            "num_negatives": 32,
            "corruptions": 256,
            **self.defaults,
            **{k: v for k, v in given.items() if v is not None},
        }
        self.protocol = KGEProtocol(**settings)

    def locate(self, locator: DataLocator) -> DatasetRef:
        return locator.locate(self.source)

    def load(self, dataset: DatasetRef, context: RunContext) -> KnowledgeGraph:
        graph = read_graph(self.name, Path(dataset.path))
        context.diagnostics.note("graph_entities", graph.num_entities)
        return self._head(graph)

    def _head(self, graph: KnowledgeGraph) -> KnowledgeGraph:
        """The graph with only the first ``max_test`` test facts."""
        if self.max_test is None or self.max_test >= len(graph.test):
            return graph
        facts = graph.facts
        head = replace(graph, test=graph.test[: self.max_test])
        head.facts = facts  # every known fact, so filtered ranks do not change
        return head

    @staticmethod
    def _build(graph: KnowledgeGraph, model: Model, context: RunContext) -> None:
        kge = kge_model(model)
        if not kge.built:
            kge.build(graph.num_entities, 2 * graph.num_relations)
            kge.to(context.device)

    def fit(self, data: KnowledgeGraph, model: Model, context: RunContext) -> None:
        self._build(data, model, context)
        self.protocol.fit(data, model, context)

    def evaluate(
        self, data: KnowledgeGraph, model: Model, context: RunContext
    ) -> Evaluation:
        self._build(data, model, context)  # an untrained model still ranks
        return evaluate(data, model)


def _task(name: str, description: str, **defaults: Any) -> type[KGETask]:
    return type(
        "".join(part.capitalize() for part in name.replace("-", " ").split()),
        (KGETask,),
        {
            "name": name,
            "source": SOURCES[name],
            "description": description,
            "defaults": defaults,
            "__doc__": description,
        },
    )


TASKS = [
    _task(
        "nations",
        "Nations (Kok & Domingos 2007; ConvE split): 14 countries, 55 relations.",
        epochs=40,
        batch_size=128,
    ),
    _task(
        "umls",
        "UMLS semantic network (McCray 2003; ConvE split): 135 concepts.",
        epochs=40,
    ),
    _task(
        "kinship",
        "Alyawarra kinship (Denham 1973; ConvE split): 104 people, 25 relations.",
        epochs=30,
    ),
    _task(
        "codex-s",
        "CoDEx-S (Safavi & Koutra, EMNLP 2020): Wikidata, 2,034 entities.",
        epochs=20,
    ),
    _task(
        "codex-m",
        "CoDEx-M (Safavi & Koutra, EMNLP 2020): Wikidata, 17,050 entities.",
        epochs=5,
        batch_size=512,
    ),
    _task(
        "wn18rr",
        "WN18RR (Dettmers et al., AAAI 2018): WordNet, 40,943 synsets.",
        epochs=10,
        batch_size=512,
    ),
    _task(
        "fb15k-237",
        "FB15k-237 (Toutanova & Chen 2015): Freebase, 14,541 entities.",
        epochs=3,
        batch_size=1024,
    ),
]


@hookimpl
def harness_register_tasks() -> list[type[Task]]:
    return list(TASKS)
