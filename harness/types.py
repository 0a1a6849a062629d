"""Core value types shared by the host, the plugins and the result store.

This is the only module that defines them.  Values are frozen keyword-only
dataclasses; tensors carry their shapes in the docstrings (PyKEEN style:
``shape: (B, C)`` with B anchors in a batch and C candidates per anchor).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    # annotations only: the stored types (results, boards) load without torch
    import torch

__all__ = [
    "FAMILIES",
    "KINDS",
    "NAME_PATTERN",
    "NONE",
    "SCHEMA_VERSION",
    "BoardRow",
    "CandidateBatch",
    "DatasetRef",
    "Evaluation",
    "Family",
    "LabelScores",
    "Leaderboard",
    "MethodSummary",
    "Negatives",
    "Run",
    "RunResult",
    "RunSpec",
    "ScoredBatch",
    "TaskInfo",
    "canonical_json",
    "method_label",
    "params_label",
]

#: the four task families negbench knows
Family = Literal["retrieval", "sts", "kge", "multilabel"]
FAMILIES: tuple[str, ...] = ("retrieval", "sts", "kge", "multilabel")

#: the loss/sampler of a run whose model does not train (zero-shot reference rows)
NONE = "none"

#: component kinds, in matrix order
KINDS: tuple[str, ...] = ("task", "model", "loss", "sampler")
#: what a component's ``name`` may look like
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

#: version of the stored result schema (``RunResult.to_dict``)
SCHEMA_VERSION = 1

Params = Mapping[str, Mapping[str, Any]]


def canonical_json(value: Any) -> str:
    """Serialise ``value`` deterministically (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    """One cell of the run matrix, as the user asked for it.

    :param params: keyword arguments per component name, e.g.
        ``{"simans": {"a": 0.5}, "scifact": {"epochs": 2}}``; only the entries
        for this run's components are kept.
    """

    task: str
    model: str
    loss: str = NONE
    sampler: str = NONE
    seed: int = 0
    params: Params = field(default_factory=dict)

    @property
    def components(self) -> dict[str, str]:
        """Component kind -> name for this run."""
        return {
            "task": self.task,
            "model": self.model,
            "loss": self.loss,
            "sampler": self.sampler,
        }

    @property
    def label(self) -> str:
        """Human-readable id, like a pytest node id."""
        return f"{self.task}::{self.model}::{self.loss}::{self.sampler}::{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "model": self.model,
            "loss": self.loss,
            "sampler": self.sampler,
            "seed": self.seed,
            "params": {k: dict(v) for k, v in sorted(self.params.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        return cls(
            task=data["task"],
            model=data["model"],
            loss=data.get("loss", NONE),
            sampler=data.get("sampler", NONE),
            seed=int(data.get("seed", 0)),
            params={k: dict(v) for k, v in data.get("params", {}).items()},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetRef:
    """Where a task's data was found and a fingerprint of what was read.

    :param sha256: sha256 over the relative names and bytes of every file the
        task reads, so a result records exactly which data produced it.
    """

    name: str
    path: str
    sha256: str
    origin: str = "data-dir"  #: "data-dir", "cache", "download" or "path"
    #: further folders by role, for tasks that read two datasets (``"train"``)
    parts: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def combine(main: DatasetRef, **parts: DatasetRef) -> DatasetRef:
        """One reference for a main dataset plus others by role.

        The fingerprint covers every part, so changing either dataset gives
        the runs new ids.
        """
        digest = hashlib.sha256(main.sha256.encode())
        for role, part in sorted(parts.items()):
            digest.update(f"\0{role}\0{part.sha256}".encode())
        return DatasetRef(
            name="+".join([main.name, *(p.name for _, p in sorted(parts.items()))]),
            path=main.path,
            sha256=digest.hexdigest(),
            origin="+".join(sorted({main.origin, *(p.origin for p in parts.values())})),
            parts={role: part.path for role, part in parts.items()},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskInfo:
    """What the leaderboard needs to know about a task."""

    name: str
    family: str
    main_metric: str
    higher_is_better: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """A planned run: the spec plus everything that fixes its identity.

    ``run_id`` is a hash of the canonical config, the dataset fingerprint and
    the versions of the four components, so the same run asked twice gets the
    same id (resume) and any change to data or code gets a new one.
    """

    spec: RunSpec
    family: str
    dataset: DatasetRef
    versions: Mapping[str, str]
    main_metric: str
    run_id: str = ""

    def __post_init__(self) -> None:
        if not self.run_id:
            object.__setattr__(self, "run_id", self.compute_id())

    def compute_id(self) -> str:
        payload = {
            "config": self.spec.to_dict(),
            "dataset_sha256": self.dataset.sha256,
            "versions": dict(sorted(self.versions.items())),
        }
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateBatch:
    """What a sampler sees for a batch of B anchors with C candidates each.

    :param anchor_ids: shape: (B,) ids of the anchors (queries, entities, items).
    :param candidate_ids: shape: (B, C) global ids of each anchor's candidates.
        For a ``mined`` pool the columns are in descending score order (column 0
        is the current model's top hit); for a ``uniform`` pool they are a
        uniform draw in no particular order.
    :param scores: shape: (B, C) current model score of each candidate
        (detached; higher = more similar to the anchor).
    :param positive_scores: shape: (B,) the same model's score of the positive
        the anchor is being trained with.
    :param known_positive: shape: (B, C) True where the candidate is a *known*
        positive of the anchor; a sampler must never return such a column.
    :param positive_ids: shape: (B,) global id of each anchor's positive.
    :param anchor_embeddings: shape: (B, D) this step's anchor embeddings
        (detached), given only to samplers that set ``needs_embeddings``.
    :param candidate_embeddings: shape: (B, C, D) the candidates' embeddings
        from the last pool refresh (the ones ``scores`` were computed with).
    :param positive_embeddings: shape: (B, D) this step's positive embeddings.
    :param neighbour: shape: (B, C) bool, True where the candidate is a
        structural neighbour of the anchor (KGE: inside the query entity's
        2-hop neighbourhood in the training graph), a proxy for false
        negatives; given only to samplers that set ``needs_structure``.
    :param fewest_allowed: the fewest candidates any row may draw (C minus
        the row's known positives), when the protocol counted them; None when
        it did not.  A promise of the protocol: a sampler that needs K
        drawable columns per row skips looking for short rows when this is at
        least K (:func:`harness.sampling.uniform_negatives`).  A sampler led
        by a broken promise to a known positive fails the run under the
        task's name, not its own.
    """

    anchor_ids: torch.Tensor
    candidate_ids: torch.Tensor
    scores: torch.Tensor
    positive_scores: torch.Tensor
    known_positive: torch.Tensor
    positive_ids: torch.Tensor | None = None
    anchor_embeddings: torch.Tensor | None = None
    candidate_embeddings: torch.Tensor | None = None
    positive_embeddings: torch.Tensor | None = None
    neighbour: torch.Tensor | None = None
    fewest_allowed: int | None = None

    @property
    def size(self) -> int:
        return int(self.candidate_ids.shape[0])

    @property
    def num_candidates(self) -> int:
        return int(self.candidate_ids.shape[1])


@dataclass(frozen=True, slots=True, kw_only=True)
class Negatives:
    """A sampler's full answer; returning just ``positions`` is the common case.

    :param positions: shape: (B, K) long positions into the candidates.
    :param suspected: shape: (B, K) bool, True for chosen columns the sampler
        believes are false negatives (ClusterNS's in-cluster detection); losses
        that handle false negatives (``bml``) read it, the harness measures how
        often the suspicion is right when an oracle exists.
    :param vectors: shape: (B, E, D) synthetic negatives scored against the
        anchors (ClusterNS centroids); gradients reach the anchors only.
    """

    positions: torch.Tensor
    suspected: torch.Tensor | None = None
    vectors: torch.Tensor | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelScores:
    """The multi-label view of a batch: every label column of each example.

    Multi-label losses (BCE, focal, ASL, Dice, the partial-label ones) score
    each example against *all* of its label columns at once: its observed
    positives and the negatives the sampler chose.  Columns a row does not
    use are switched off by ``mask`` (a sampler that drew a subset of the
    negative labels, Partial FC).

    :param logits: shape: (B, L) one logit per label, with gradients.
    :param targets: shape: (B, L) float in [0, 1]: 1 for observed positives,
        0 for negatives (soft values allowed, for Dice).
    :param mask: shape: (B, L) bool, True where the column counts.
    :param assumed: shape: (B, L) bool, True where a target of 0 is an
        *assumption*: the label was not observed (partial-label setting) and
        may be a hidden positive.  All False with full labels.
    :param epoch: 0-based epoch of the step (schedules such as large-loss
        rejection's clean rate).
    """

    logits: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    assumed: torch.Tensor
    epoch: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoredBatch:
    """What a loss sees for a batch of B anchors and K negative columns.

    Scores carry gradients.  Columns are the sampled negatives, then (when
    in-batch negatives are on) the other anchors' positives and negatives,
    then any synthetic negatives; ``mask`` switches off columns that must not
    count (the anchor's own positive, known positives, duplicates).

    :param positive: shape: (B,) score of each anchor with its positive.
    :param negative: shape: (B, K) scores of the negative columns.
    :param mask: shape: (B, K) bool, True where the column is a valid negative.
    :param suspected: shape: (B, K) bool or None, suspected false negatives.
    :param anchor_embeddings: shape: (B, D) with gradients (W-MSE, CET).
    :param positive_embeddings: shape: (B, D) with gradients.
    :param negative_embeddings: shape: (B, K, D) or None (synthetic columns may
        have none).
    :param positive_labels: shape: (B,) graded gold similarity of each
        (anchor, positive) pair when the task has one (STS), else None.
    :param labels: the multi-label view (every label column of each example),
        filled by the multi-label family and read by its losses; there
        ``positive`` is each example's lowest observed-positive logit (0 when
        it has none) and ``negative`` the sampled negative labels' logits.
    """

    positive: torch.Tensor
    negative: torch.Tensor
    mask: torch.Tensor
    suspected: torch.Tensor | None = None
    anchor_embeddings: torch.Tensor | None = None
    positive_embeddings: torch.Tensor | None = None
    negative_embeddings: torch.Tensor | None = None
    positive_labels: torch.Tensor | None = None
    labels: LabelScores | None = None

    @property
    def size(self) -> int:
        return int(self.positive.shape[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """What a task's evaluation returns.

    :param metrics: metric name -> value averaged over evaluation items; must
        contain the task's main metric.
    :param per_item: metric name -> item id -> value, kept for paired
        significance tests across runs (queries, sentence pairs, triples...).
    """

    metrics: Mapping[str, float]
    per_item: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class RunResult:
    """The outcome of one run, as stored and as printed by ``harness results``."""

    run_id: str
    spec: RunSpec
    family: str
    status: Literal["ok", "failed"]
    main_metric: str
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    per_item: dict[str, dict[str, float]] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    dataset_sha256: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def main_score(self) -> float | None:
        return self.metrics.get(self.main_metric) if self.ok else None

    def to_dict(self, *, per_item: bool = True) -> dict[str, Any]:
        """JSON-ready dict; the keys are the ``harness results --json`` schema."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "task": self.spec.task,
            "family": self.family,
            "model": self.spec.model,
            "loss": self.spec.loss,
            "sampler": self.spec.sampler,
            "seed": self.spec.seed,
            "params": self.spec.to_dict()["params"],
            "status": self.status,
            "error": self.error,
            "metrics": dict(self.metrics),
            "main_metric": self.main_metric,
            "main_score": self.main_score,
            "diagnostics": dict(self.diagnostics),
            "timings": dict(self.timings),
            "environment": dict(self.environment),
            "dataset_sha256": self.dataset_sha256,
            "versions": dict(self.versions),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
        if per_item:
            out["per_item"] = {k: dict(v) for k, v in self.per_item.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        version = int(data.get("schema_version", SCHEMA_VERSION))
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"result schema version {version} is newer than this harness "
                f"understands ({SCHEMA_VERSION}); upgrade negbench"
            )
        return cls(
            run_id=data["run_id"],
            spec=RunSpec.from_dict(data),
            family=data["family"],
            status=data["status"],
            main_metric=data["main_metric"],
            error=data.get("error"),
            metrics={k: float(v) for k, v in data.get("metrics", {}).items()},
            per_item={
                k: {i: float(x) for i, x in v.items()}
                for k, v in data.get("per_item", {}).items()
            },
            diagnostics={k: float(v) for k, v in data.get("diagnostics", {}).items()},
            timings={k: float(v) for k, v in data.get("timings", {}).items()},
            environment=dict(data.get("environment", {})),
            dataset_sha256=data.get("dataset_sha256", ""),
            versions=dict(data.get("versions", {})),
            started_at=data.get("started_at", ""),
            finished_at=data.get("finished_at", ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardRow:
    """One method on one task, aggregated over seeds.

    The uncertainty fields come from the ranking plugin's paired tests and
    bootstraps over the task's test items (or over seeds without them):
    ``ci_low``/``ci_high`` bound the mean score, ``rank_low``/``rank_high``
    the rank; methods whose difference from the next-ranked one is not
    significant (Holm-corrected ``p_next`` >= alpha) share a ``group``.
    """

    task: str
    family: str
    model: str
    loss: str
    sampler: str
    main_metric: str
    mean: float
    std: float
    n_seeds: int
    rank: int
    #: the run's non-default component parameters, canonical JSON ("" = none)
    params: str = ""
    seed_scores: tuple[float, ...] = ()
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    rank_low: int = 0
    rank_high: int = 0
    group: int = 0
    p_next: float | None = None
    test: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    diagnostics: Mapping[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    run_ids: tuple[str, ...] = ()
    failed: int = 0

    @property
    def method(self) -> str:
        return method_label(self.model, self.loss, self.sampler, self.params)

    @property
    def fn_rate(self) -> float | None:
        """The exact false-negative rate if the task knows it, else the
        lower bound (an incomplete graph or corpus), else None."""
        for key in ("fn_rate", "fn_rate_lower_bound"):
            if key in self.diagnostics:
                return self.diagnostics[key]
        return None


def params_label(params: Mapping[str, Mapping[str, Any]]) -> str:
    """A run's component parameters as canonical JSON ("" = all defaults)."""
    given = {name: dict(values) for name, values in params.items() if values}
    return canonical_json(given) if given else ""


def method_label(model: str, loss: str, sampler: str, params: str = "") -> str:
    """How a method (model · loss · sampler, plus any parameters) is named."""
    label = f"{model} · {loss} · {sampler}"
    return f"{label} {params}" if params else label


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodSummary:
    """One method over every task it ran: the overview's row.

    :param borda: Borda points (per task, the number of methods ranked below).
    :param family_scores: family -> mean over its tasks of the min-max
        normalised score (1 = best on a task).
    """

    method: str
    model: str
    loss: str
    sampler: str
    params: str
    borda: float
    rank: int
    tasks: int
    family_scores: Mapping[str, float] = field(default_factory=dict)
    fn_rate: float | None = None
    train_seconds: float = 0.0
    #: overall tie group: adjacent methods not significantly different over
    #: their shared tasks share one; and the Holm-adjusted p vs the next
    group: int = 0
    p_next: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Leaderboard:
    """A ranked board: per-task rows plus an overall Borda ranking of methods.

    :param overall: one summary per method, best Borda count first.
    """

    tasks: Mapping[str, TaskInfo]
    rows: tuple[BoardRow, ...]
    overall: tuple[MethodSummary, ...] = ()
    schema_version: int = 1
