"""Semantic textual similarity: STS-B, SICK-R and STS12-16.

Evaluation (every task): embed sentence1 and sentence2 of each test pair
(side ``"query"``), score the pair by the cosine of the two embeddings and
report the Spearman (main) and Pearson correlations of the raw cosines with
the gold scores, as MTEB's STS evaluator and SentEval do ("all" setting: one
correlation over the whole test set).  Per pair the cosine and the gold score
are kept for paired significance tests.

Training follows the shared contrastive protocol
(:mod:`negbench_plugins.tasks.contrastive`) with ``shared_texts``: anchors and
candidates are the same unique training sentences.

* **supervised** (``stsb``, ``sick-r``, and the training half of
  ``sts12``..``sts16``): every training pair with gold >= ``positive_threshold``
  is a positive, in both directions, labelled with its gold score (CoSENT
  reads the labels); a sentence's known positives are itself and those
  partners, so the sampler never gets them as negatives; pairs listed twice
  in the file count twice;
* **unsupervised** (``stsb-unsup``, SimCSE; Gao et al., EMNLP 2021): each
  unique sentence is paired with itself and the model's dropout makes the
  second view; no gold score is used for training.

False-negative oracle (``hidden``): a *lower bound*.  Supervised, it is a
sentence's partners with ``3.0 <= gold < positive_threshold`` — close
paraphrases that are not labelled positive; unsupervised, it is the partners
with gold >= ``positive_threshold``.  Only pairs the annotators scored are
known, so most true paraphrases in the pool are never counted
(``hidden_exact`` is False).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from harness import Evaluation, Model, Task, hookimpl
from harness.context import RunContext
from harness.data import DataLocator, DatasetSource
from harness.errors import DataError
from harness.types import DatasetRef

from .contrastive import ContrastiveProtocol, PairData, embed_all, text_encoder
from .sts_data import (
    SICK,
    STS_YEARS_SOURCE,
    STSB,
    STSPairs,
    read_sick,
    read_sts_year,
    read_stsb,
)

__all__ = [
    "HIDDEN_FLOOR",
    "STS12",
    "STS13",
    "STS14",
    "STS15",
    "STS16",
    "SICKRelatedness",
    "STSBenchmark",
    "STSBenchmarkUnsup",
    "STSData",
    "STSTask",
    "STSYearTask",
    "correlations",
    "sts_pair_data",
]

#: lowest gold score of a "close paraphrase not labelled positive" (the oracle)
HIDDEN_FLOOR = 3.0


@dataclass(slots=True)
class STSData:
    """The training pairs (as the protocol wants them) and the test pairs."""

    training: PairData
    test: STSPairs


def sts_pair_data(
    pairs: STSPairs, threshold: float, *, unsupervised: bool = False
) -> PairData:
    """The contrastive protocol's view of STS training pairs (module docstring).

    :param pairs: the training split.
    :param threshold: gold score from which a pair is a positive.
    :param unsupervised: SimCSE: pair every unique sentence with itself.
    :raises DataError: when no pair reaches ``threshold`` (supervised).
    """
    index: dict[str, int] = {}  # unique sentences in order of first appearance
    for first, second in zip(pairs.sentence1, pairs.sentence2, strict=True):
        index.setdefault(first, len(index))
        index.setdefault(second, len(index))
    texts = list(index)
    n = len(texts)
    positives: list[set[int]] = [{i} for i in range(n)]
    close: list[set[int]] = [set() for _ in range(n)]
    edges: list[tuple[int, int]] = []
    labels: list[float] = []
    for first, second, gold in zip(
        pairs.sentence1, pairs.sentence2, pairs.scores, strict=True
    ):
        a, b = index[first], index[second]
        if gold >= threshold:
            positives[a].add(b)
            positives[b].add(a)
            for edge in [(a, b), (b, a)] if a != b else [(a, b)]:
                edges.append(edge)
                labels.append(gold)
        elif gold >= HIDDEN_FLOOR:
            close[a].add(b)
            close[b].add(a)
    if unsupervised:
        return PairData(
            anchor_texts=texts,
            candidate_texts=texts,
            pairs=torch.arange(n).repeat(2, 1).T.contiguous(),
            positives=[{i} for i in range(n)],
            hidden=[p - {i} for i, p in enumerate(positives)],
            hidden_exact=False,
            anchor_side="query",
            candidate_side="query",
            shared_texts=True,
        )
    if not edges:
        raise DataError(
            f"no training pair has a gold score >= {threshold:g} "
            "(lower positive_threshold)"
        )
    return PairData(
        anchor_texts=texts,
        candidate_texts=texts,
        pairs=torch.tensor(edges, dtype=torch.long),
        positives=positives,
        hidden=[c - p for c, p in zip(close, positives, strict=True)],
        hidden_exact=False,
        pair_labels=torch.tensor(labels, dtype=torch.float32),
        anchor_side="query",
        candidate_side="query",
        shared_texts=True,
    )


def correlations(cosines: Sequence[float], gold: Sequence[float]) -> dict[str, float]:
    """Spearman and Pearson correlation of predicted cosines with gold scores."""
    from scipy.stats import pearsonr, spearmanr

    predicted = np.asarray(cosines, dtype=np.float64)
    target = np.asarray(gold, dtype=np.float64)
    if len(predicted) < 2 or np.ptp(predicted) == 0 or np.ptp(target) == 0:
        raise ValueError(
            "the correlation is undefined: fewer than two pairs, or every "
            "predicted cosine (or gold score) is the same"
        )
    return {
        "spearman": float(spearmanr(predicted, target).statistic),
        "pearson": float(pearsonr(predicted, target).statistic),
    }


class STSTask(Task):
    """Base class of the STS tasks (subclass and implement :meth:`read`).

    :param epochs: passes over the training pairs.
    :param batch_size: training pairs per step.
    :param num_negatives: negatives the sampler picks per anchor sentence.
    :param depth: candidates per anchor in the sampler's pool.
    :param refresh: when pools are re-mined: ``"epoch"`` (default),
        ``"static"``, ``"step"`` or every N steps (samplers may override).
    :param queue_size: memory-queue length for queue samplers.
    :param positive_threshold: gold score from which a training pair is a
        positive (STS-B and SICK scores are in [0, 5] and [1, 5]).

    :cvar source: the dataset located (and fingerprinted) for the test pairs.
    :cvar train_source: the dataset whose training pairs are read, when it is
        another one (the STS12-16 tasks train on STS-B).
    :cvar unsupervised: SimCSE-style training (each sentence with itself).
    """

    family = "sts"
    main_metric = "spearman"
    source: ClassVar[DatasetSource]
    train_source: ClassVar[DatasetSource | None] = None
    unsupervised: ClassVar[bool] = False

    def __init__(
        self,
        *,
        epochs: int = 3,
        batch_size: int = 32,
        num_negatives: int = 7,
        depth: int = 100,
        refresh: str | int = "epoch",
        queue_size: int = 1024,
        positive_threshold: float = 4.0,
    ) -> None:
        if not math.isfinite(positive_threshold):
            raise ValueError("positive_threshold must be a finite number")
        self.protocol = ContrastiveProtocol(
            epochs=epochs,
            batch_size=batch_size,
            num_negatives=num_negatives,
            depth=depth,
            refresh=refresh,
            queue_size=queue_size,
        )
        self.positive_threshold = float(positive_threshold)

    # -- data --------------------------------------------------------------------------

    def locate(self, locator: DataLocator) -> DatasetRef:
        test = locator.locate(self.source)
        if self.train_source is None:
            return test
        # Two datasets: evaluated on this one, trained on the other.
        return DatasetRef.combine(test, train=locator.locate(self.train_source))

    def folders(self, dataset: DatasetRef) -> tuple[Path, Path]:
        """(training folder, test folder) of a located dataset."""
        if self.train_source is None:
            return Path(dataset.path), Path(dataset.path)
        return Path(dataset.parts["train"]), Path(dataset.path)

    @abstractmethod
    def read(self, train_folder: Path, test_folder: Path) -> tuple[STSPairs, STSPairs]:
        """(training pairs, test pairs) read from the located folders."""

    def load(self, dataset: DatasetRef, context: RunContext) -> STSData:
        train, test = self.read(*self.folders(dataset))
        return STSData(
            training=sts_pair_data(
                train, self.positive_threshold, unsupervised=self.unsupervised
            ),
            test=test,
        )

    # -- protocol ----------------------------------------------------------------------

    def fit(self, data: STSData, model: Model, context: RunContext) -> None:
        self.protocol.fit(data.training, model, context)

    def evaluate(self, data: STSData, model: Model, context: RunContext) -> Evaluation:
        encoder = text_encoder(model)
        test = data.test
        index: dict[str, int] = {}
        for text in (*test.sentence1, *test.sentence2):
            index.setdefault(text, len(index))
        with context.phase("embed"):
            features = encoder.featurize(list(index), side="query", context=context)
        embeddings = F.normalize(
            embed_all(encoder, features, "query", context.device), dim=-1
        ).cpu()
        left = embeddings[torch.tensor([index[t] for t in test.sentence1])]
        right = embeddings[torch.tensor([index[t] for t in test.sentence2])]
        cosines = (left * right).sum(-1).tolist()
        return Evaluation(
            metrics=correlations(cosines, test.scores),
            per_item={
                "cosine": dict(zip(test.ids, cosines, strict=True)),
                "gold": dict(zip(test.ids, test.scores, strict=True)),
            },
        )


# -- registered tasks ------------------------------------------------------------------


class STSBenchmark(STSTask):
    """STS Benchmark, supervised (Cer et al., SemEval 2017)."""

    name = "stsb"
    description = (
        "STS Benchmark: train on its 5,749 train pairs (gold >= threshold are "
        "positives), evaluate on the 1,379 test pairs."
    )
    source = STSB

    def read(self, train_folder: Path, test_folder: Path) -> tuple[STSPairs, STSPairs]:
        return read_stsb(train_folder / "train.tsv"), read_stsb(
            test_folder / "test.tsv"
        )


class STSBenchmarkUnsup(STSBenchmark):
    """STS Benchmark, unsupervised SimCSE training on its train sentences."""

    name = "stsb-unsup"
    description = (
        "STS Benchmark, unsupervised (SimCSE): each unique train sentence is "
        "paired with itself, dropout makes the second view; evaluated on test."
    )
    unsupervised = True


class SICKRelatedness(STSTask):
    """SICK relatedness, supervised (Marelli et al., LREC 2014).

    Evaluated on SICK's test split, as SentEval does; MTEB's SICK-R scores all
    9,927 pairs instead, so its numbers differ (all-MiniLM-L6-v2: 0.7715 here,
    0.7758 there).
    """

    name = "sick-r"
    description = (
        "SICK-R: train on the 4,500 SICK train pairs (relatedness 1-5), "
        "evaluate on the 4,927 test pairs."
    )
    source = SICK

    def read(self, train_folder: Path, test_folder: Path) -> tuple[STSPairs, STSPairs]:
        return read_sick(train_folder / "SICK_train.txt"), read_sick(
            test_folder / "SICK_test_annotated.txt"
        )


class STSYearTask(STSTask):
    """A SemEval STS year: evaluation only, training borrowed from STS-B."""

    source = STS_YEARS_SOURCE
    train_source = STSB
    year: ClassVar[str] = ""

    def read(self, train_folder: Path, test_folder: Path) -> tuple[STSPairs, STSPairs]:
        return read_stsb(train_folder / "train.tsv"), read_sts_year(
            test_folder / "all.tsv.gz", self.year
        )


def _year_description(year: str, pairs: str) -> str:
    return (
        f"{year}: {pairs} scored pairs, evaluation only; a trainable model first "
        "trains on STS-B train (supervised protocol), then is evaluated here."
    )


class STS12(STSYearTask):
    """SemEval STS 2012 (Agirre et al.), evaluation only."""

    name = "sts12"
    year = "STS12"
    description = _year_description("STS12", "3,108")


class STS13(STSYearTask):
    """SemEval STS 2013 (Agirre et al.), evaluation only."""

    name = "sts13"
    year = "STS13"
    description = _year_description("STS13", "1,500")


class STS14(STSYearTask):
    """SemEval STS 2014 (Agirre et al.), evaluation only."""

    name = "sts14"
    year = "STS14"
    description = _year_description("STS14", "3,750")


class STS15(STSYearTask):
    """SemEval STS 2015 (Agirre et al.), evaluation only."""

    name = "sts15"
    year = "STS15"
    description = _year_description("STS15", "3,000")


class STS16(STSYearTask):
    """SemEval STS 2016 (Agirre et al.), evaluation only."""

    name = "sts16"
    year = "STS16"
    description = _year_description("STS16", "1,186")


@hookimpl
def harness_register_tasks() -> list[type[Task]]:
    return [
        STSBenchmark,
        STSBenchmarkUnsup,
        SICKRelatedness,
        STS12,
        STS13,
        STS14,
        STS15,
        STS16,
    ]
