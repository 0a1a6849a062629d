"""Training and evaluation protocol of the multi-label family.

**Training.** Each example is an anchor and the labels are its candidates.
Per step, the model gives every example one logit per label; the sampler
sees the labels (all of them: the label spaces here have at most 983) with
their current logits and picks which *negative* labels enter the loss:

* ``mined`` pool: labels sorted by the current logit, best first (top-k
  hard negatives over label scores);
* ``uniform`` pool: the labels in a random order per example.

``known_positive`` marks the example's observed positive labels, which are
always in the loss; the loss sees a :class:`~harness.types.LabelScores` with
every label column, ``mask`` switching on the observed positives and the
sampled negatives.  The "positive score" a sampler compares negatives with is
the decision threshold (logit 0): a negative's hardness is its own logit, so
one above 0 is a false positive of the current model.

**Partial labels.** With ``hidden > 0`` (or ``single_positive``), a share of
each training example's positive labels is hidden before training (at least
one positive stays observed; single-positive keeps exactly one), the same
labels for every method run with the same seed.  Unobserved labels are
*assumed* negative (``LabelScores.assumed``), so a sampled negative that is a
hidden positive is a false negative, counted exactly (``fn_rate``).  The
share of hidden positives among all assumed negatives is noted as
``assumed_negative_fn_share``: the false-negative rate of the "assume
negative" rule itself, before any sampler.

**Evaluation.** On the test split, against all its labels: mAP (macro
average precision over the labels that have a test positive; main), micro-
and macro-F1 at probability 0.5, label-ranking average precision (LRAP) and
Hamming loss, each computed by scikit-learn.  Per label the AP and per
example the LRAP are kept for paired significance tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from harness import Evaluation, LabelModel, Model, TextEncoder
from harness.context import RunContext
from harness.optim import make_optimizer
from harness.sampling import cap_negatives, first_occurrence
from harness.types import CandidateBatch, LabelScores, ScoredBatch

__all__ = [
    "MultiLabelProtocol",
    "TextLabelClassifier",
    "label_metrics",
    "per_example_lrap",
]

#: seed offset of the label-hiding draw, so it is independent of the sampler's
_HIDE_SEED = 7919


class TextLabelClassifier(LabelModel):
    """A text encoder with a linear label head on its embeddings.

    Lets any :class:`TextEncoder` (``minilm-adapter``) train on a
    multi-label text set: ``logits = W embed(features) + b``; the encoder's
    trainable parts and the head learn together.
    """

    name = "text-label-classifier"

    def __init__(self, encoder: TextEncoder) -> None:
        super().__init__(lr=encoder.lr)
        self.encoder = encoder
        self.head: torch.nn.Linear | None = None

    @property
    def built(self) -> bool:
        return self.head is not None

    def build(self, num_features: int, num_labels: int) -> None:
        with torch.no_grad():
            probe = self.encoder.embed(torch.zeros(1, num_features), side="query")
        self.head = torch.nn.Linear(probe.shape[1], num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        assert self.head is not None, "build() first"
        out: torch.Tensor = self.head(self.encoder.embed(features, side="query"))
        return out


def as_label_model(model: Model) -> LabelModel:
    """The model as a :class:`LabelModel` (text encoders get a label head)."""
    if isinstance(model, LabelModel):
        return model
    if isinstance(model, TextEncoder):
        return TextLabelClassifier(model)
    raise TypeError(
        f"model '{model.name}' is neither a LabelModel nor a TextEncoder; "
        "multi-label tasks need one (e.g. mlp, linear, minilm-adapter)"
    )


@dataclass(frozen=True, slots=True)
class ObservedLabels:
    """Which training labels the learner sees.

    :param observed: shape: (N, L) bool, observed positive labels.
    :param hidden: shape: (N, L) bool, positives hidden from the learner.
    """

    observed: torch.Tensor
    hidden: torch.Tensor
    #: whether any positive is hidden (unobserved labels are then assumed)
    partial: bool


class MultiLabelProtocol:
    """Mini-batch training of a :class:`LabelModel` with sampled negative labels.

    :param epochs: passes over the training examples.
    :param batch_size: examples per step.
    :param num_negatives: K, negative labels per example asked of the sampler;
        None = a quarter of the labels (at least 1).
    :param hidden: share of each example's positive training labels hidden
        (partial-label setting); 0 = full labels.
    :param single_positive: keep exactly one observed positive per example
        (the single-positive setting of Cole et al., CVPR 2021).
    """

    def __init__(
        self,
        *,
        epochs: int,
        batch_size: int,
        num_negatives: int | None = None,
        hidden: float = 0.0,
        single_positive: bool = False,
    ) -> None:
        if min(epochs, batch_size) < 1 or (
            num_negatives is not None and num_negatives < 1
        ):
            raise ValueError("epochs, batch_size and num_negatives must be >= 1")
        if not 0.0 <= hidden < 1.0:
            raise ValueError("hidden must be in [0, 1)")
        self.epochs = epochs
        self.batch_size = batch_size
        self.num_negatives = num_negatives
        self.hidden = hidden
        self.single_positive = single_positive

    # -- partial labels ------------------------------------------------------------

    def observe(self, labels: torch.Tensor, seed: int) -> ObservedLabels:
        """Hide positives as configured; every example keeps >= 1 positive."""
        positive = labels.bool()
        if self.hidden == 0.0 and not self.single_positive:
            return ObservedLabels(positive, torch.zeros_like(positive), partial=False)
        generator = torch.Generator().manual_seed(seed + _HIDE_SEED)
        noise = torch.rand(positive.shape, generator=generator)
        # the positive with the highest noise stays observed in every example
        keeper = torch.zeros_like(positive)
        keeper.scatter_(
            1, noise.masked_fill(~positive, -1.0).argmax(1, keepdim=True), True
        )
        keeper &= positive
        if self.single_positive:
            observed = keeper
        else:
            observed = positive & ((noise >= self.hidden) | keeper)
        hidden = positive & ~observed
        return ObservedLabels(observed, hidden, partial=bool(hidden.any()))

    # -- training --------------------------------------------------------------------

    def fit(
        self,
        model: LabelModel,
        features: torch.Tensor,
        labels: torch.Tensor,
        context: RunContext,
    ) -> None:
        loss = context.loss
        assert loss is not None, "the matrix pairs trainable models with a loss"
        view = self.observe(labels, context.seed)
        note = context.diagnostics.note
        note("train_examples", len(labels))
        if view.partial:
            hidden = int(view.hidden.sum())
            note("hidden_positive_share", hidden / int(labels.sum()))
            note("assumed_negative_fn_share", hidden / int((~view.observed).sum()))
        step = _Step(self, model, view, context)
        optimizer = make_optimizer([model, loss], lr=model.lr)
        n = len(features)
        steps = (n + self.batch_size - 1) // self.batch_size
        model.train()
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=context.generator)
            for number in range(steps):
                index = order[number * self.batch_size :][: self.batch_size]
                value = step.run(features[index], index, epoch)
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
            context.progress(f"epoch {epoch + 1}/{self.epochs}")


class _Step:
    """One training step: logits, the sampler's negative labels, the loss."""

    def __init__(
        self,
        protocol: MultiLabelProtocol,
        model: LabelModel,
        view: ObservedLabels,
        context: RunContext,
    ) -> None:
        self.model, self.view, self.context = model, view, context
        self.device = context.device
        self.sampler = context.sampler
        num_labels = view.observed.shape[1]
        self.requested = protocol.num_negatives or max(1, -(-num_labels // 4))

    def run(
        self, features: torch.Tensor, index: torch.Tensor, epoch: int
    ) -> torch.Tensor:
        logits = self.model(features.to(self.device))
        observed = self.view.observed[index]
        hidden = self.view.hidden[index]
        b = len(observed)
        used = observed.clone()  # observed positives always count
        negative_labels = torch.zeros(b, 0, dtype=torch.long)
        if self.sampler is not None:
            negative_labels = self._sample(logits.detach().cpu(), observed, hidden)
            rows = torch.arange(b)[:, None].expand_as(negative_labels)
            used[rows, negative_labels] = True
        mask = used.to(self.device)
        lowest_positive = logits.masked_fill(~observed.to(self.device), float("inf"))
        positive = lowest_positive.min(dim=1).values
        positive = torch.where(
            torch.isinf(positive), torch.zeros_like(positive), positive
        )
        return self.context.compute_loss(
            ScoredBatch(
                positive=positive,
                negative=logits.gather(1, negative_labels.to(self.device)),
                mask=first_occurrence(negative_labels).to(self.device),
                labels=LabelScores(
                    logits=logits,
                    targets=observed.to(self.device, logits.dtype),
                    mask=mask,
                    assumed=(~observed).to(self.device)
                    if self.view.partial
                    else torch.zeros_like(mask),
                    epoch=epoch,
                ),
            )
        )

    def _sample(
        self, scores: torch.Tensor, observed: torch.Tensor, hidden: torch.Tensor
    ) -> torch.Tensor:
        """Negative label ids per example. shape: (B, K); repeats allowed."""
        assert self.sampler is not None
        b, num_labels = observed.shape
        generator = self.context.generator
        mined = self.sampler.pool == "mined"
        # timed by hand: a phase() per step would flood the progress display
        start_time = time.perf_counter()
        if mined:
            ids = scores.argsort(dim=1, descending=True, stable=True)
        else:  # one random order shared by the batch's rows: cheaper, as uniform
            ids = torch.randperm(num_labels, generator=generator).expand(b, -1)
        self.context.timings["mine"] = (
            self.context.timings.get("mine", 0.0) + time.perf_counter() - start_time
        )
        known = observed.gather(1, ids)
        allowed = num_labels - observed.sum(dim=1)
        active = allowed > 0  # an example positive for every label has no negative
        out = torch.zeros(b, 0, dtype=torch.long)
        if not bool(active.any()):
            return out
        rows = active.nonzero()[:, 0]
        # ALL_CANDIDATES (the `all` sampler) becomes every negative label
        k = cap_negatives(self.sampler.num_negatives(self.requested), known[rows])
        if k < 1:
            return out
        batch = CandidateBatch(
            anchor_ids=rows,
            candidate_ids=ids[rows],
            scores=scores.gather(1, ids)[rows],
            positive_scores=torch.zeros(len(rows)),
            known_positive=known[rows],
        )
        negatives = self.context.sample_negatives(
            batch,
            k,
            oracle_positive=hidden.gather(1, ids)[rows],
            oracle_is_exact=True,
            ranks=torch.arange(1, num_labels + 1).expand(len(rows), -1)
            if mined
            else None,
            repeats_train_once=True,  # the label mask takes a label once
        )
        chosen = batch.candidate_ids.gather(1, negatives.positions)
        if len(rows) == b:
            return chosen
        # inactive rows repeat one of their positives; the mask drops repeats,
        # and observed positives are in the loss anyway
        out = observed.float().argmax(dim=1, keepdim=True).expand(b, k).clone()
        out[rows] = chosen
        return out


# -- evaluation -------------------------------------------------------------------


def predict(
    model: LabelModel, features: torch.Tensor, device: torch.device
) -> np.ndarray:
    """Logits for every example. shape: (N, F) -> (N, L) float64."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(features), 1024):
            chunk = features[start : start + 1024].to(device)
            out.append(model(chunk).double().cpu())
    return torch.cat(out).numpy()


def per_example_lrap(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Label-ranking average precision of each example. shape: (N,).

    scikit-learn's ``label_ranking_average_precision_score`` is the mean of
    these: for each relevant label j, the share of relevant labels among
    those scored >= s_j (ties count against), averaged over the relevant
    labels; an example with no or only relevant labels scores 1.
    """
    truth = truth.astype(bool)
    n, num_labels = truth.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked_scores = np.take_along_axis(scores, order, axis=1)
    ranked_truth = np.take_along_axis(truth, order, axis=1)
    # every label of a tie group gets the group's last position as its rank
    group_end = np.ones((n, num_labels), dtype=bool)
    group_end[:, :-1] = ranked_scores[:, :-1] != ranked_scores[:, 1:]
    positions = np.where(group_end, np.arange(num_labels), num_labels)
    last = np.minimum.accumulate(positions[:, ::-1], axis=1)[:, ::-1]
    rank = last + 1
    relevant_rank = np.take_along_axis(np.cumsum(ranked_truth, axis=1), last, axis=1)
    count = truth.sum(axis=1)
    ratio = np.where(ranked_truth, relevant_rank / rank, 0.0).sum(axis=1)
    defined = (count > 0) & (count < num_labels)
    out = np.ones(n)
    out[defined] = ratio[defined] / count[defined]
    return out


def label_metrics(
    truth: np.ndarray, scores: np.ndarray, label_names: tuple[str, ...]
) -> Evaluation:
    """The family's metrics from test labels and logits, via scikit-learn.

    :param truth: shape: (N, L) 0/1.
    :param scores: shape: (N, L) logits (any monotone score ranks the same;
        the F1 and Hamming threshold is probability 0.5, i.e. logit 0).
    """
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        hamming_loss,
        label_ranking_average_precision_score,
    )

    truth = truth.astype(np.int64)
    predicted = (scores >= 0.0).astype(np.int64)
    # AP is undefined for a label without test positives (scikit-learn warns
    # and scores it 0, which would reward nothing); such labels are skipped,
    # and per_item["map"] says which labels were scored
    scored = truth.sum(axis=0) > 0
    # one call per label: scikit-learn's own per-label loop over a 2-D input
    # slices strided columns, ~50x slower on delicious' 983 labels
    ap = np.array(
        [
            average_precision_score(truth[:, label], scores[:, label])
            for label in np.flatnonzero(scored)
        ]
    )
    lrap = per_example_lrap(truth, scores)
    metrics = {
        "map": float(ap.mean()),
        "micro_f1": float(f1_score(truth, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "lrap": float(label_ranking_average_precision_score(truth, scores)),
        "hamming_loss": float(hamming_loss(truth, predicted)),
    }
    names = [name for name, keep in zip(label_names, scored, strict=True) if keep]
    per_item = {
        "map": dict(zip(names, ap.tolist(), strict=True)),
        "lrap": {str(i): float(v) for i, v in enumerate(lrap)},
    }
    return Evaluation(metrics=metrics, per_item=per_item)
