"""The four component contracts: Task, Model, Loss and Sampler.

A plugin contributes *classes* (through the registration hooks in
:mod:`harness.hookspecs`).  Each class carries its metadata as class
attributes and takes its hyper-parameters as keyword-only constructor
arguments, which suites and ``--param`` fill in (PyKEEN's ``*_kwargs`` idea).

Every component declares the task families it supports; the run matrix drops
incompatible combinations with a note instead of crashing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

from .types import KINDS

if TYPE_CHECKING:
    from .context import RunContext
    from .data import DataLocator
    from .types import (
        CandidateBatch,
        DatasetRef,
        Evaluation,
        Negatives,
        ScoredBatch,
        TaskInfo,
    )

__all__ = [
    "ALL_CANDIDATES",
    "KINDS",
    "Component",
    "KGEModel",
    "LabelModel",
    "Loss",
    "Model",
    "Sampler",
    "Task",
    "TextEncoder",
    "base_class",
]


#: what :meth:`Sampler.num_negatives` returns to ask for every candidate that
#: may be a negative (the multi-label ``all`` sampler); protocols cap K at the
#: largest number of such candidates a row of the batch has
ALL_CANDIDATES = 2**31 - 1


class Component:
    """Metadata every component class carries.

    :cvar name: registry key, lower-case (``"topk-hard"``); unique per kind.
    :cvar families: task families the component works with.
    :cvar version: bump when a change alters results, so stored runs made with
        the old behaviour get a different ``run_id`` and are re-run.
    :cvar family_defaults: constructor defaults per task family, used where
        the user gave no value (a temperature suited to cosine scores is not
        suited to the unbounded scores of a KGE model).
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    families: ClassVar[frozenset[str]] = frozenset()
    version: ClassVar[str] = "1"
    family_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}


class Sampler(Component, ABC):
    """Choose negatives for a batch of anchors from their candidates.

    Subclasses implement :meth:`sample`.  The harness checks every output:
    shape (B, K), integer positions inside [0, C), and never a column marked in
    ``batch.known_positive``; a violation fails the run and names the plugin.

    The class attributes below are the sampler's requests to the task's
    training protocol; the protocol honours them for every task family.

    :cvar pool: which candidates the task offers: ``"mined"`` (the current
        model's top ``depth`` candidates, in descending score order),
        ``"uniform"`` (a uniform random draw from all candidates) or
        ``"queue"`` (a FIFO memory of recently seen positives with the
        embeddings they had then, MoCo-style; all anchors share it).
    :cvar refresh: when the pool is re-mined, overriding the protocol's own
        setting: ``"static"`` (once, with the model as it is before training,
        STAR), ``"epoch"``, ``"step"`` (every step, ADORE) or an int N (every N
        steps).  None keeps the protocol's setting.
    :cvar in_batch_negatives: force in-batch negatives on or off; None lets the
        loss decide (its ``in_batch`` parameter).
    :cvar freeze_candidates: score candidates (positives and negatives) with a
        frozen index built before training, so only the anchor side learns
        (ADORE).
    :cvar needs_embeddings: ask for the detached embeddings in the batch
        (clustering, memory queues); off by default to save memory.
    :cvar filtered: True (the default) = every labelled positive of the
        anchor is marked ``known_positive`` and is never offered as a
        negative.  False asks for classic *unfiltered* corruption: only the
        positive being trained is off-limits, so other facts known from the
        training data can be drawn, and are counted as false negatives
        (honoured by protocols whose positives are facts: KGE).
    :cvar sides: for facts trained in two directions (KGE: tail prediction
        and head prediction through the inverse relation), how a fact's K
        negatives are split between them: ``"both"`` = K for each direction;
        ``"uniform"`` = each negative corrupts the head or the tail with
        probability 1/2 (Bordes et al. 2013); ``"bernoulli"`` = the head with
        probability tph / (tph + hpt) of the fact's relation (Wang et al.
        2014).  The protocol keeps the first n columns of each direction's
        answer, so a split-side sampler must return its columns in no
        particular order (a uniform draw).
    :cvar needs_structure: ask for ``CandidateBatch.neighbour`` (KGE: the
        anchor entity's 2-hop neighbourhood in the training graph).
    :cvar reads_scores: False declares that the answer never depends on
        ``scores`` or ``positive_scores`` (uniform corruption), so a protocol
        may skip scoring a uniform pool: the batch then carries NaN scores and
        the harness records hardness from the scores the loss trains with.
        The contract kit checks the declaration.
    """

    kind = "sampler"
    pool: ClassVar[Literal["mined", "uniform", "queue"]] = "mined"
    #: may also be set per instance (e.g. from a constructor parameter)
    refresh: str | int | None = None
    in_batch_negatives: ClassVar[bool | None] = None
    freeze_candidates: ClassVar[bool] = False
    needs_embeddings: ClassVar[bool] = False
    filtered: ClassVar[bool] = True
    sides: ClassVar[Literal["both", "uniform", "bernoulli"]] = "both"
    needs_structure: ClassVar[bool] = False
    reads_scores: ClassVar[bool] = True

    def num_negatives(self, requested: int) -> int:
        """How many negatives per anchor to return when the task asks for
        ``requested`` (the protocol's ``num_negatives``); e.g. 0 for in-batch
        only, a fixed list length for listwise training, or
        :data:`ALL_CANDIDATES` for every allowed candidate."""
        return requested

    def diagnostics(self) -> dict[str, float]:
        """Sampler-specific numbers for the run's diagnostics (optional).

        Called once after training, e.g. how often negatives were re-mined;
        keys are prefixed with the sampler's name in the stored result.
        """
        return {}

    def suspect(
        self, anchor_embeddings: torch.Tensor, column_embeddings: torch.Tensor
    ) -> torch.Tensor | None:
        """Flag in-batch columns believed to be false negatives (optional).

        :param anchor_embeddings: shape: (B, D) detached, current anchors.
        :param column_embeddings: shape: (B, M, D) detached in-batch columns,
            laid out as the other anchors' positives (B columns, the anchor's
            own included and masked) followed by every anchor's sampled
            negatives (B x K columns, anchor by anchor).
        :returns: shape: (B, M) bool, or None for no opinion (the default).
        """
        return None

    @abstractmethod
    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor | Negatives:
        """Return negative *column positions* into ``batch.candidate_ids``.

        :param batch: the anchors, their candidates and scores.
        :param num_negatives: K, as returned by :meth:`num_negatives`.
        :param generator: seeded RNG; use it for every random draw so a run is
            reproducible.
        :returns: shape: (B, K) long tensor of positions in [0, C), or a
            :class:`Negatives` that also flags suspected false negatives or adds
            synthetic negative vectors.
        """


class Loss(Component, torch.nn.Module):
    """Map positive and negative scores to one loss value per anchor.

    Subclasses implement :meth:`forward`; the harness reduces the per-anchor
    losses (mean) and checks they are finite.

    Most losses need only scores and implement :meth:`forward`.  A loss that
    needs more of the batch (embeddings for whitening, gold labels, suspected
    false negatives) overrides :meth:`forward_batch` instead.  A loss may own
    trainable parameters: those that exist when training starts are optimised
    with the model; a loss that builds its own model lazily (CET) steps it
    itself.

    :cvar in_batch_default: whether, by default, the other anchors' positives
        and negatives in the batch are appended as extra negatives (the loss's
        ``in_batch`` keyword overrides it).
    :cvar needs_negatives: False for negative-free losses (W-MSE); the matrix
        then pairs them with no sampler.
    :cvar needs_negative_embeddings: ask for ``ScoredBatch.negative_embeddings``
        (one embedding per negative column; costs memory, so off by default).
    """

    kind = "loss"
    in_batch_default: ClassVar[bool] = False
    needs_negatives: ClassVar[bool] = True
    needs_negative_embeddings: ClassVar[bool] = False

    def __init__(self, *, in_batch: bool | None = None) -> None:
        torch.nn.Module.__init__(self)
        self.in_batch = self.in_batch_default if in_batch is None else in_batch

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        """Per-anchor losses for a whole :class:`ScoredBatch`. shape: (B,).

        The default calls :meth:`forward` with the scores and the mask,
        directly rather than through ``nn.Module.__call__`` (a loss takes no
        module hooks; this runs in every training step).
        """
        return self.forward(batch.positive, batch.negative, batch.mask)

    def forward(
        self, positive: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Per-anchor losses.

        :param positive: shape: (B,) score of each anchor's positive.
        :param negative: shape: (B, K) scores of its negatives.
        :param mask: shape: (B, K) bool, True where the negative is valid
            (False entries must not influence the result).
        :returns: shape: (B,) unreduced losses.
        """
        raise NotImplementedError(f"{type(self).__name__} implements forward_batch")


class Model(Component, torch.nn.Module):
    """A trainable (or frozen) scorer of anchors against candidates.

    :cvar trainable: False for zero-shot reference models; their runs take no
        loss or sampler (recorded as ``none``).
    :cvar default_lr: learning rate used unless the ``lr`` parameter is given.
    :cvar needs_text: the model reads raw text; the matrix skips it on tasks
        whose items are feature vectors (``Task.provides_text`` False).
    """

    kind = "model"
    trainable: ClassVar[bool] = True
    default_lr: ClassVar[float] = 1e-3
    needs_text: ClassVar[bool] = False

    def __init__(self, *, lr: float | None = None) -> None:
        torch.nn.Module.__init__(self)
        self.lr = self.default_lr if lr is None else lr

    def setup(self, context: RunContext) -> None:
        """Load heavy resources (weights) lazily; called once per run."""


class TextEncoder(Model):
    """A bi-encoder over text, used by the retrieval and STS families.

    Encoding is split in two so frozen work is cached and only the trainable
    part runs per step: :meth:`featurize` turns texts into a feature tensor
    (frozen, cacheable, no gradient), :meth:`embed` turns features into
    embeddings (differentiable).
    """

    families = frozenset({"retrieval", "sts"})
    needs_text = True

    @abstractmethod
    def featurize(
        self, texts: Sequence[str], *, side: str, context: RunContext
    ) -> torch.Tensor:
        """Frozen features of ``texts``. shape: (N, F).

        :param side: ``"query"`` or ``"document"`` (asymmetric encoders).
        """

    @abstractmethod
    def embed(self, features: torch.Tensor, *, side: str) -> torch.Tensor:
        """Embeddings of featurized texts. shape: (N, D)."""

    def similarity(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """All-pairs scores. shapes: (N, D), (M, D) -> (N, M)."""
        return left @ right.T

    def score(self, anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Per-anchor candidate scores. shapes: (B, D), (B, K, D) -> (B, K)."""
        return torch.einsum("bd,bkd->bk", anchors, candidates)


class KGEModel(Model):
    """A knowledge-graph embedding model that scores (head, relation) queries.

    Head prediction goes through inverse relations (Lacroix et al., ICML
    2018; PyKEEN's ``create_inverse_triples``): relation ``r + R`` is the
    inverse of relation ``r``, so every query asks for a tail.  Scores are
    higher for more plausible triples.
    """

    families = frozenset({"kge"})

    @property
    @abstractmethod
    def built(self) -> bool:
        """Whether :meth:`build` has created the parameters."""

    @abstractmethod
    def build(self, num_entities: int, num_relations: int) -> None:
        """Create the parameters for a graph (``num_relations`` includes the
        inverse relations); called once, before training or evaluation."""

    @abstractmethod
    def score_pairs(
        self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor
    ) -> torch.Tensor:
        """Scores of given tails. shapes: (B,), (B,), (B, K) -> (B, K)."""

    @abstractmethod
    def score_shared(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores of one set of tails for every query (1-N scoring).

        shapes: (B,), (B,), (M,) -> (B, M); ``tails`` None = every entity.
        """

    def after_step(self) -> None:
        """Apply constraints after an optimiser step (TransE's unit-norm
        entities); the default does nothing."""


class LabelModel(Model):
    """A multi-label classifier over feature vectors: one logit per label.

    The multi-label family's tasks hand it a feature matrix (MULAN's feature
    vectors, or frozen sentence embeddings of a text set); a text encoder
    (:class:`TextEncoder`) is turned into one by the protocol, which puts a
    linear label head on its embeddings.
    """

    families = frozenset({"multilabel"})

    @property
    @abstractmethod
    def built(self) -> bool:
        """Whether :meth:`build` has created the parameters."""

    @abstractmethod
    def build(self, num_features: int, num_labels: int) -> None:
        """Create the parameters for a dataset; called once, before training."""

    @abstractmethod
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits. shape: (N, F) -> (N, L)."""


class Task(Component, ABC):
    """A dataset plus its training protocol and evaluation.

    The constructor takes the protocol's hyper-parameters (epochs, batch size,
    number of negatives...) so every method on a task trains under the same
    protocol.  A task whose name is used as ``NAME:ARGUMENT`` on the command
    line (``beir:/path/to/folder``) receives ``argument`` in its constructor.

    :cvar family: the task family.
    :cvar main_metric: key of the headline metric in :class:`Evaluation`.
    :cvar accepts_argument: whether ``NAME:ARGUMENT`` is allowed.
    :cvar provides_text: whether the task's items are texts (models that
        ``needs_text`` are skipped otherwise).
    """

    kind = "task"
    family: ClassVar[str] = ""
    main_metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    description: ClassVar[str] = ""
    accepts_argument: ClassVar[bool] = False
    provides_text: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family:
            cls.families = frozenset({cls.family})

    @classmethod
    def info(cls, name: str | None = None) -> TaskInfo:
        """Family, main metric and description of the task called ``name``.

        Tasks taking an argument (``mteb:STS12``) may override this to answer
        per argument; the matrix and the leaderboard use it, not the class
        attributes.
        """
        from .types import TaskInfo

        return TaskInfo(
            name=name or cls.name,
            family=cls.family,
            main_metric=cls.main_metric,
            higher_is_better=cls.higher_is_better,
            description=cls.description,
        )

    @abstractmethod
    def locate(self, locator: DataLocator) -> DatasetRef:
        """Find the data (data dir, cache, download) and fingerprint it.

        Called in the main process before any run starts, so an unavailable
        dataset skips its runs with one line instead of failing them.
        :raises DatasetUnavailable: when the data cannot be found or fetched.
        """

    @abstractmethod
    def load(self, dataset: DatasetRef, context: RunContext) -> Any:
        """Read the data located by :meth:`locate` (raise DataError on bad input)."""

    @abstractmethod
    def fit(self, data: Any, model: Model, context: RunContext) -> None:
        """Train ``model`` under this task's protocol.

        Use ``context.sample_negatives`` and ``context.compute_loss`` so the
        run's sampler and loss are called with their contracts enforced.
        Only called for trainable models.
        """

    @abstractmethod
    def evaluate(self, data: Any, model: Model, context: RunContext) -> Evaluation:
        """Score ``model`` on the test split; include the main metric."""


def base_class(kind: str) -> type[Component]:
    """The base class every registered component of ``kind`` must subclass."""
    return {"task": Task, "model": Model, "loss": Loss, "sampler": Sampler}[kind]
