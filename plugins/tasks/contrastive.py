"""The contrastive training protocol shared by the text families.

Retrieval (query -> document), STS (sentence -> sentence) and the synthetic
oracle task all train the same way, so they share this one implementation and
every sampler and loss meets the same protocol everywhere:

1. the model featurizes anchors and candidates once (frozen work is cached);
2. the candidate *pool* is (re)built when due: every epoch by default, or as
   the sampler requests (``static`` = once with the initial model, ``step``,
   every N steps).  Pools are ``mined`` (faiss top-``depth`` by the current
   model), ``uniform`` (a random draw), or ``queue`` (a MoCo-style memory of
   recent positives, with the embeddings they had when they were stored);
3. per batch the sampler picks negatives from each anchor's pool; the harness
   checks them and records their hardness and, where an oracle exists, how
   many are false negatives;
4. the loss sees the positive, the sampled negatives and, when in-batch
   negatives are on, every other anchor's positive and sampled negatives
   (sentence-transformers' MultipleNegativesRankingLoss layout), with known
   positives masked out, plus any synthetic negatives (ClusterNS centroids).

With ``freeze_candidates`` (ADORE) the candidates are scored with an index
built before training and only the anchor side learns.  With ``shared_texts``
(STS) anchors and candidates are the same sentences; an unsupervised task
pairs each sentence with itself, and the model's dropout makes the two views
(SimCSE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from harness import Model, Sampler, TextEncoder
from harness.optim import make_optimizer
from harness.types import CandidateBatch, Negatives, ScoredBatch

from .pools import (
    Pool,
    Queue,
    embed_all,
    faiss_search,
    member_rows,
    membership,
    mine,
    text_encoder,
)

if TYPE_CHECKING:
    from harness import Loss, RunContext

__all__ = [
    "ContrastiveProtocol",
    "PairData",
    "Pool",
    "embed_all",
    "faiss_search",
    "membership",
    "text_encoder",
]


@dataclass(slots=True)
class PairData:
    """Training data of the contrastive protocol.

    :param anchor_texts: the training anchors (queries, sentences).
    :param candidate_texts: everything a negative can be (corpus, sentences).
    :param pairs: shape: (P, 2) (anchor index, candidate index) positives.
    :param positives: per anchor, the candidates known to be positive; they
        are never offered as negatives (with ``shared_texts`` the anchor's own
        sentence belongs here).
    :param hidden: per anchor, positives the sampler is *not* told about; only
        used to measure false negatives.
    :param hidden_exact: True when ``hidden`` is complete (synthetic tasks), so
        the false-negative rate is exact rather than a lower bound.
    :param pair_labels: shape: (P,) graded gold similarity of each pair (STS).
    :param shared_texts: anchors and candidates are the same texts (index i
        is the same sentence on both sides), so they are featurized once.
    """

    anchor_texts: list[str]
    candidate_texts: list[str]
    pairs: torch.Tensor
    positives: list[set[int]]
    hidden: list[set[int]] = field(default_factory=list)
    hidden_exact: bool = False
    pair_labels: torch.Tensor | None = None
    anchor_side: str = "query"
    candidate_side: str = "document"
    shared_texts: bool = False


@dataclass(slots=True)
class _Fresh:
    """This step's anchor and positive embeddings, detached, on the CPU."""

    anchors: torch.Tensor
    positives: torch.Tensor

    @property
    def positive_scores(self) -> torch.Tensor:
        return (self.anchors * self.positives).sum(-1)


@dataclass(slots=True)
class _Index:
    """Embeddings of the last refresh, and the pools built from them."""

    anchors: torch.Tensor  #: shape: (A, D) or the batch's anchors for "step"
    candidates: torch.Tensor  #: shape: (N, D)
    pool: Pool | None


class ContrastiveProtocol:
    """Train a :class:`TextEncoder` on :class:`PairData` with the run's components.

    :param epochs: passes over the pairs.
    :param batch_size: pairs per step.
    :param num_negatives: negatives per anchor asked of the sampler.
    :param depth: candidates per anchor in a mined or uniform pool.
    :param refresh: ``"epoch"``, ``"static"``, ``"step"`` or N (steps);
        a sampler's own ``refresh`` overrides it.
    :param queue_size: length of the memory queue for ``pool = "queue"``.
    """

    def __init__(
        self,
        *,
        epochs: int,
        batch_size: int,
        num_negatives: int,
        depth: int,
        refresh: str | int = "epoch",
        queue_size: int = 1024,
    ) -> None:
        if min(epochs, batch_size, depth, queue_size) < 1 or num_negatives < 0:
            raise ValueError("epochs, batch_size, depth, queue_size must be >= 1")
        if not (refresh in ("epoch", "static", "step") or _positive_int(refresh)):
            raise ValueError("refresh must be 'epoch', 'static', 'step' or steps > 0")
        self.epochs = epochs
        self.batch_size = batch_size
        self.num_negatives = num_negatives
        self.depth = depth
        self.refresh = refresh
        self.queue_size = queue_size

    # -- the loop -------------------------------------------------------------------

    def fit(self, data: PairData, model: Model, context: RunContext) -> None:
        encoder = text_encoder(model)
        loss, sampler = context.loss, context.sampler
        assert loss is not None, "the matrix pairs trainable models with a loss"
        with context.phase("embed"):
            anchor_features = encoder.featurize(
                data.anchor_texts, side=data.anchor_side, context=context
            )
            candidate_features = (
                anchor_features
                if data.shared_texts
                else encoder.featurize(
                    data.candidate_texts, side=data.candidate_side, context=context
                )
            )
        encoder.train()  # dropout on: SimCSE's second view depends on it
        loss.train()
        # the loss may own parameters too (those that exist now)
        optimizer = make_optimizer([encoder, loss], lr=encoder.lr)
        step = _Step(
            self,
            data,
            encoder,
            loss=loss,
            sampler=sampler,
            context=context,
            features=(anchor_features, candidate_features),
        )
        pairs = data.pairs
        steps_per_epoch = (len(pairs) + self.batch_size - 1) // self.batch_size
        for epoch in range(self.epochs):
            order = torch.randperm(len(pairs), generator=context.generator)
            for number in range(steps_per_epoch):
                index = order[number * self.batch_size : (number + 1) * self.batch_size]
                value = step.run(index, epoch_start=number == 0)
                if optimizer and value.requires_grad:
                    optimizer.zero_grad()
                    value.backward()
                    optimizer.step()
                context.progress(
                    f"epoch {epoch + 1}/{self.epochs} "
                    f"step {number + 1}/{steps_per_epoch}"
                )


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class _Step:
    """One training step; owns the refresh schedule, the pool and the queue."""

    def __init__(
        self,
        protocol: ContrastiveProtocol,
        data: PairData,
        model: TextEncoder,
        *,
        loss: Loss,
        sampler: Sampler | None,
        context: RunContext,
        features: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        self.protocol = protocol
        self.data = data
        self.model = model
        self.loss = loss
        self.sampler = sampler
        self.context = context
        self.features = features
        self.refresh: str | int = (
            sampler.refresh
            if sampler is not None and sampler.refresh
            else protocol.refresh
        )
        self.k = sampler.num_negatives(protocol.num_negatives) if sampler else 0
        if sampler is not None:  # never more negatives than the pool holds
            room = protocol.queue_size if sampler.pool == "queue" else protocol.depth
            self.k = min(self.k, room, len(data.candidate_texts))
        forced = sampler.in_batch_negatives if sampler is not None else None
        self.in_batch = loss.in_batch if forced is None else forced
        self.frozen = bool(sampler is not None and sampler.freeze_candidates)
        self.uses_pool = sampler is not None and self.k > 0
        self.index: _Index | None = None
        self.frozen_candidates: torch.Tensor | None = None
        self.queue: Queue | None = None
        self.count = 0
        self.ranks: torch.Tensor | None = None
        # each anchor's known and hidden positives as rows of id tables, made
        # once: a step looks its anchors' rows up
        self.positives_of = member_rows(data.positives)
        self.hidden_of = member_rows(data.hidden) if data.hidden else None
        # Only ask for in-batch suspicions when the sampler implements them.
        self.suspects = (
            sampler is not None and type(sampler).suspect is not Sampler.suspect
        )

    # -- pools ------------------------------------------------------------------

    def _due(self, epoch_start: bool) -> bool:
        if self.index is None:
            return True
        if self.refresh == "static":
            return False
        if self.refresh == "epoch":
            return epoch_start
        if self.refresh == "step":
            return True
        return self.count % int(self.refresh) == 0

    def _refresh(self, anchors: torch.Tensor) -> None:
        """Re-embed and rebuild pools (for the batch's anchors only on "step")."""
        context, data, model = self.context, self.data, self.model
        anchor_features, candidate_features = self.features
        device = context.device
        model.eval()
        with context.phase("mine"):
            if self.frozen:
                if self.frozen_candidates is None:
                    self.frozen_candidates = embed_all(
                        model, candidate_features, data.candidate_side, device
                    )
                candidate_emb = self.frozen_candidates
            else:
                candidate_emb = embed_all(
                    model, candidate_features, data.candidate_side, device
                )
            rows: torch.Tensor | slice = (
                anchors if self.refresh == "step" else slice(None)
            )
            anchor_emb = embed_all(
                model, anchor_features[rows], data.anchor_side, device
            )
            assert self.sampler is not None
            pool = None
            if self.sampler.pool == "queue":
                if self.queue is None:
                    self.queue = self._initial_queue(candidate_emb)
            else:
                pool = mine(
                    self.sampler.pool,
                    anchor_emb,
                    candidate_emb,
                    self.protocol.depth,
                    context.generator,
                )
            self.index = _Index(anchors=anchor_emb, candidates=candidate_emb, pool=pool)
        model.train()

    def _initial_queue(self, candidate_emb: torch.Tensor) -> Queue:
        # MoCo starts from random keys; random real candidates are the analogue.
        queue = Queue(self.protocol.queue_size)
        size = min(self.protocol.queue_size, candidate_emb.shape[0])
        ids = torch.randperm(candidate_emb.shape[0], generator=self.context.generator)
        queue.push(ids[:size], candidate_emb[ids[:size].to(candidate_emb.device)])
        return queue

    def _candidates(
        self, anchors: torch.Tensor, positives: torch.Tensor, fresh: _Fresh
    ) -> CandidateBatch:
        """The batch's pools; embeddings (if asked for) are this step's, detached."""
        assert self.sampler is not None
        b = len(anchors)
        wants = self.sampler.needs_embeddings
        if not self.uses_pool:  # the sampler picks no candidates (in-batch, ClusterNS)
            empty = torch.zeros(b, 0, dtype=torch.long)
            self.ranks = None
            return CandidateBatch(
                anchor_ids=anchors,
                candidate_ids=empty,
                scores=torch.zeros(b, 0),
                positive_scores=fresh.positive_scores,
                known_positive=torch.zeros(b, 0, dtype=torch.bool),
                positive_ids=positives,
                anchor_embeddings=fresh.anchors if wants else None,
                candidate_embeddings=torch.zeros(b, 0, fresh.anchors.shape[-1])
                if wants
                else None,
                positive_embeddings=fresh.positives if wants else None,
            )
        index = self.index
        assert index is not None
        rows = torch.arange(b) if self.refresh == "step" else anchors
        anchor_emb = index.anchors[rows.to(index.anchors.device)]
        if self.queue is not None:
            pool = self.queue.pool(anchor_emb)
            ids, scores, ranks = pool.ids, pool.scores, None
        else:
            assert index.pool is not None
            ids, scores = index.pool.ids[rows], index.pool.scores[rows]
            ranks = None if index.pool.ranks is None else index.pool.ranks[rows]
        self.ranks = ranks
        # The positive is scored with the same (refresh-time) embeddings as the pool.
        positive_emb = index.candidates[positives.to(index.candidates.device)]
        return CandidateBatch(
            anchor_ids=anchors,
            candidate_ids=ids,
            scores=scores,
            positive_scores=(anchor_emb * positive_emb).sum(-1).cpu(),
            known_positive=membership(ids, self.positives_of(anchors)),
            positive_ids=positives,
            anchor_embeddings=fresh.anchors if wants else None,
            candidate_embeddings=(
                index.candidates[ids.to(index.candidates.device)].cpu()
                if wants
                else None
            ),
            positive_embeddings=fresh.positives if wants else None,
        )

    # -- the step ---------------------------------------------------------------

    def run(self, index: torch.Tensor, *, epoch_start: bool) -> torch.Tensor:
        data, context, model = self.data, self.context, self.model
        anchors, positives = data.pairs[index, 0], data.pairs[index, 1]
        if self.uses_pool and self._due(epoch_start):
            self._refresh(anchors)
        # The step's own embeddings (with gradients); samplers see them detached.
        anchor_emb = model.embed(
            self.features[0][anchors].to(context.device), side=data.anchor_side
        )
        positive_emb = self._embed_candidates(positives)
        negatives = Negatives(positions=torch.zeros(len(anchors), 0, dtype=torch.long))
        negative_ids = negatives.positions
        if self.sampler is not None:
            fresh = _Fresh(
                anchors=anchor_emb.detach().cpu(),
                positives=positive_emb.detach().cpu(),
            )
            batch = self._candidates(anchors, positives, fresh)
            oracle = (
                membership(batch.candidate_ids, self.hidden_of(anchors))
                if self.hidden_of is not None
                else None
            )
            negatives = context.sample_negatives(
                batch,
                self.k,
                oracle_positive=oracle,
                oracle_is_exact=data.hidden_exact,
                ranks=self.ranks,
            )
            negative_ids = batch.candidate_ids.gather(1, negatives.positions)
        scored = self._score(
            index, anchors, positives, anchor_emb, positive_emb, negative_ids, negatives
        )
        value = context.compute_loss(scored)
        if self.queue is not None:
            self.queue.push(positives, positive_emb)
        self.count += 1
        return value

    def _embed_candidates(self, ids: torch.Tensor, dim: int = 0) -> torch.Tensor:
        device = self.context.device
        if ids.numel() == 0:  # samplers that pick none (in-batch, ClusterNS)
            return torch.zeros(0, dim, device=device)
        if self.frozen_candidates is not None:
            return self.frozen_candidates[ids.to(self.frozen_candidates.device)]
        features = self.features[1][ids.cpu()].to(device)
        return self.model.embed(features, side=self.data.candidate_side)

    def _score(  # noqa: PLR0917 - one step's pieces, named at the call site
        self,
        index: torch.Tensor,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        anchor_emb: torch.Tensor,
        positive_emb: torch.Tensor,
        negative_ids: torch.Tensor,
        negatives: Negatives,
    ) -> ScoredBatch:
        model, data, device = self.model, self.data, self.context.device
        b, k = negative_ids.shape
        dim = anchor_emb.shape[-1]
        flat = self._embed_candidates(negative_ids.reshape(-1), dim)
        negative_emb = flat.reshape(b, k, dim)
        columns_emb = [negative_emb]
        columns_score = [model.score(anchor_emb, negative_emb)]
        masks = [torch.ones(b, k, dtype=torch.bool)]
        suspected = [
            negatives.suspected.cpu()
            if negatives.suspected is not None
            else torch.zeros(b, k, dtype=torch.bool)
        ]
        if self.in_batch and b > 1:
            shared_ids = torch.cat([positives, negative_ids.reshape(-1)])
            shared_emb = torch.cat([positive_emb, negative_emb.reshape(b * k, dim)])
            columns_score.append(model.similarity(anchor_emb, shared_emb))
            columns_emb.append(shared_emb.unsqueeze(0).expand(b, -1, -1))
            masks.append(self._in_batch_mask(anchors, shared_ids, k))
            suspected.append(self._suspect_in_batch(anchor_emb, shared_emb))
            positive_score = (anchor_emb * positive_emb).sum(-1)
            self._record_in_batch(
                anchors,
                shared_ids,
                masks[-1],
                columns_score[-1] - positive_score[:, None],
            )
        if negatives.vectors is not None:
            vectors = negatives.vectors.to(device=device, dtype=anchor_emb.dtype)
            columns_score.append(model.score(anchor_emb, vectors))
            columns_emb.append(vectors)
            masks.append(torch.ones(b, vectors.shape[1], dtype=torch.bool))
            suspected.append(torch.zeros(b, vectors.shape[1], dtype=torch.bool))
        labels = (
            None if data.pair_labels is None else data.pair_labels[index].to(device)
        )
        return ScoredBatch(
            positive=(anchor_emb * positive_emb).sum(-1),
            negative=torch.cat(columns_score, dim=1),
            mask=torch.cat(masks, dim=1).to(device),
            suspected=torch.cat(suspected, dim=1).to(device),
            anchor_embeddings=anchor_emb,
            positive_embeddings=positive_emb,
            # (B, K, D) per column costs memory; only built for losses that ask.
            negative_embeddings=(
                torch.cat(columns_emb, dim=1)
                if self.loss.needs_negative_embeddings
                else None
            ),
            positive_labels=labels,
        )

    def _suspect_in_batch(
        self, anchor_emb: torch.Tensor, shared_emb: torch.Tensor
    ) -> torch.Tensor:
        b, m = anchor_emb.shape[0], shared_emb.shape[0]
        flagged = None
        if self.suspects:
            assert self.sampler is not None
            with self.context.guard("sampler"):
                flagged = self.sampler.suspect(
                    anchor_emb.detach().cpu(),
                    shared_emb.detach().cpu().unsqueeze(0).expand(b, -1, -1),
                )
        if flagged is None:
            return torch.zeros(b, m, dtype=torch.bool)
        if not isinstance(flagged, torch.Tensor) or tuple(flagged.shape) != (b, m):
            raise self.context.violation(
                "sampler", f"suspect() must return a bool tensor of shape {(b, m)}"
            )
        return flagged.bool().cpu()

    def _in_batch_mask(
        self, anchors: torch.Tensor, shared_ids: torch.Tensor, k: int
    ) -> torch.Tensor:
        """Valid in-batch columns: not a known positive, not the anchor's own block."""
        b = anchors.shape[0]
        mask = ~membership(shared_ids.expand(b, -1), self.positives_of(anchors))
        rows = torch.arange(b)
        mask[rows, rows] = False  # the anchor's own positive is the positive column
        for row in range(b):  # the anchor's own sampled negatives are already columns
            mask[row, b + row * k : b + (row + 1) * k] = False
        return mask

    def _record_in_batch(
        self,
        anchors: torch.Tensor,
        shared_ids: torch.Tensor,
        mask: torch.Tensor,
        gaps: torch.Tensor,
    ) -> None:
        """False negatives and hardness among in-batch columns.

        When the sampler picks nothing itself (``in-batch``), these columns are
        its negatives and count as such; otherwise they are reported apart.
        """
        b = anchors.shape[0]
        hidden = None
        if self.hidden_of is not None:
            hidden = membership(shared_ids.expand(b, -1), self.hidden_of(anchors))
        self.context.diagnostics.observe_in_batch(
            gaps=gaps.detach().cpu()[mask],
            hidden=None if hidden is None else hidden[mask],
            exact=self.data.hidden_exact,
            as_sampled=self.k == 0,
        )
