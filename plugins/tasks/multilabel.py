"""Multi-label classification tasks: seven MULAN sets and two text sets.

``yeast``, ``emotions``, ``scene``, ``medical``, ``enron``, ``bibtex``,
``delicious`` (MULAN's canonical splits; feature vectors standardised with
the train split's mean and deviation) and ``goemotions`` (28 labels),
``reuters`` (ModApte, 90 categories), whose texts are encoded once by the
frozen all-MiniLM-L6-v2 (cached) for ``linear``/``mlp``, or by the run's own
text encoder (``minilm-adapter``, with a linear label head).

Each dataset comes in three protocols (see :mod:`.multilabel_protocol`):

* ``NAME``: all training labels (standard);
* ``NAME-partial``: a share ``hidden`` (default 0.5) of each training
  example's positive labels hidden and assumed negative;
* ``NAME-single``: one observed positive per training example (the
  single-positive setting of the partial-label papers).

Test labels are always complete.  Main metric: mAP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from harness import Evaluation, LabelModel, Model, Task, TextEncoder, hookimpl
from harness.context import RunContext
from harness.data import DataLocator, DatasetSource
from harness.errors import DataError
from harness.types import DatasetRef

from .multilabel_data import MULAN_SETS, SOURCES, MultiLabelData, read_dataset
from .multilabel_protocol import (
    MultiLabelProtocol,
    as_label_model,
    label_metrics,
    predict,
)

__all__ = ["MultiLabelTask"]


class MultiLabelTask(Task):
    """Base class of the multi-label tasks (subclass and set ``dataset``).

    :param epochs: passes over the training examples.
    :param batch_size: examples per step.
    :param num_negatives: negative labels per example asked of the sampler
        (``all`` and ``partial-fc`` decide their own); None = a quarter of
        the labels.
    :param hidden: share of positive training labels hidden (partial tasks).
    :param single_positive: keep one observed positive per example.
    :param max_train: use only the first N training examples (quick runs).
    :param max_test: use only the first N test examples.
    """

    family = "multilabel"
    main_metric = "map"
    dataset: ClassVar[str]
    source: ClassVar[DatasetSource]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        num_negatives: int | None = None,
        hidden: float | None = None,
        single_positive: bool | None = None,
        max_train: int | None = None,
        max_test: int | None = None,
    ) -> None:
        given = {
            "epochs": epochs,
            "batch_size": batch_size,
            "num_negatives": num_negatives,
            "hidden": hidden,
            "single_positive": single_positive,
        }
        settings = {
            "epochs": 30,
            "batch_size": 64,
            **self.defaults,
            **{k: v for k, v in given.items() if v is not None},
        }
        self.protocol = MultiLabelProtocol(**settings)
        self.max_train, self.max_test = max_train, max_test
        self._classifier: LabelModel | None = None
        self._features: dict[str, torch.Tensor] = {}

    def locate(self, locator: DataLocator) -> DatasetRef:
        return locator.locate(self.source)

    def load(self, dataset: DatasetRef, context: RunContext) -> MultiLabelData:
        data = read_dataset(self.dataset, Path(dataset.path))
        if self.max_train is not None or self.max_test is not None:
            data = data.head(self.max_train, self.max_test)
            # the reader found a label in the whole test split, not in its head;
            # without one every ranking metric is NaN, after a whole training run
            if not data.test_labels.any():
                raise DataError(
                    f"{dataset.path}: none of the first {self.max_test} test "
                    "examples (max_test) has a label; the metrics are undefined"
                )
        context.diagnostics.note("num_labels", data.num_labels)
        context.diagnostics.note(
            "train_label_cardinality", float(data.train_labels.sum(axis=1).mean())
        )
        return data

    # -- features ----------------------------------------------------------------

    def _prepare(self, data: MultiLabelData, model: Model, context: RunContext) -> None:
        """Features for both splits and the classifier (once per run)."""
        if self._classifier is not None:
            return
        classifier = as_label_model(model)
        if data.is_text:
            assert data.train_texts is not None and data.test_texts is not None
            encoder = model if isinstance(model, TextEncoder) else _frozen_minilm()
            encoder.setup(context)
            with context.phase("embed"):
                train = encoder.featurize(
                    data.train_texts, side="query", context=context
                )
                test = encoder.featurize(data.test_texts, side="query", context=context)
            if not isinstance(model, TextEncoder):
                train, test = _standardise(train, test)
        else:
            assert data.train_features is not None and data.test_features is not None
            train, test = _standardise(
                torch.from_numpy(data.train_features),
                torch.from_numpy(data.test_features),
            )
        if not classifier.built:
            classifier.build(train.shape[1], data.num_labels)
        classifier.to(context.device)
        self._classifier = classifier
        self._features = {"train": train, "test": test}

    def fit(self, data: MultiLabelData, model: Model, context: RunContext) -> None:
        self._prepare(data, model, context)
        assert self._classifier is not None
        self.protocol.fit(
            self._classifier,
            self._features["train"],
            torch.from_numpy(data.train_labels),
            context,
        )

    def evaluate(
        self, data: MultiLabelData, model: Model, context: RunContext
    ) -> Evaluation:
        self._prepare(data, model, context)
        assert self._classifier is not None
        scores = predict(self._classifier, self._features["test"], context.device)
        context.diagnostics.note(
            "labels_with_test_positive", int((data.test_labels.sum(axis=0) > 0).sum())
        )
        return label_metrics(data.test_labels, scores, data.labels)


def _frozen_minilm() -> TextEncoder:
    """all-MiniLM-L6-v2's cached sentence embeddings, for feature models."""
    from ..models.minilm import MiniLM

    return MiniLM()


def _standardise(
    train: torch.Tensor, test: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """z-scores with the train split's statistics (constant columns stay 0)."""
    train, test = train.float(), test.float()
    mean = train.mean(dim=0)
    std = train.std(dim=0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std


# -- the catalogue ------------------------------------------------------------------

#: protocol defaults per dataset, sized for a 2-core CPU (seconds each for the
#: small MULAN sets; the text sets pay a one-off MiniLM encoding, then cache)
_DATASETS: dict[str, tuple[str, dict[str, Any]]] = {
    "yeast": ("MULAN yeast (Elisseeff & Weston 2001): gene functions, 14 labels.", {}),
    "emotions": (
        "MULAN emotions (Trohidis et al. 2008): music, 6 emotion labels.",
        {"epochs": 60},
    ),
    "scene": ("MULAN scene (Boutell et al. 2004): images, 6 labels.", {}),
    "medical": (
        "MULAN medical (Pestian et al. 2007): clinical free text, 45 ICD-9 codes.",
        {"epochs": 60},
    ),
    "enron": ("MULAN enron (Klimt & Yang 2004): e-mails, 53 labels.", {}),
    "bibtex": (
        "MULAN bibtex (Katakis et al. 2008): BibTeX entries, 159 tags.",
        {"epochs": 20, "batch_size": 128},
    ),
    "delicious": (
        "MULAN delicious (Tsoumakas et al. 2008): web pages, 983 tags.",
        {"epochs": 10, "batch_size": 256},
    ),
    "goemotions": (
        "GoEmotions (Demszky et al., ACL 2020): Reddit comments, 28 emotions.",
        {"epochs": 5, "batch_size": 256},
    ),
    "reuters": (
        "Reuters-21578 ModApte (Apté et al. 1994): news, 90 topic categories.",
        {"epochs": 20, "batch_size": 128},
    ),
}

_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "": ("", {}),
    "-partial": (" Half of each training example's positives hidden.", {"hidden": 0.5}),
    "-single": (
        " One observed positive per training example.",
        {"single_positive": True},
    ),
}


def _task(dataset: str, suffix: str) -> type[MultiLabelTask]:
    description, defaults = _DATASETS[dataset]
    extra, protocol = _VARIANTS[suffix]
    name = dataset + suffix
    return type(
        "".join(part.capitalize() for part in name.replace("-", " ").split()),
        (MultiLabelTask,),
        {
            "name": name,
            "dataset": dataset,
            "source": SOURCES[dataset],
            "description": description + extra,
            "defaults": {**defaults, **protocol},
            "provides_text": dataset not in MULAN_SETS,
            "__doc__": description + extra,
        },
    )


TASKS = [_task(dataset, suffix) for dataset in _DATASETS for suffix in _VARIANTS]


@hookimpl
def harness_register_tasks() -> list[type[Task]]:
    return list(TASKS)
