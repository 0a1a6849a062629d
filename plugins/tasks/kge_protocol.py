"""Training and evaluation protocol of the knowledge-graph embedding family.

**Training** (negative sampling, PyKEEN's "sLCWA" with inverse triples).
Every training fact (h, r, t) is trained in both directions: the tail query
(h, r) -> t and the head query (t, r + R) -> h.  Per step, a batch of facts
becomes 2B query rows, and each row offers the sampler a candidate pool:

* ``uniform`` pool: ``2K + 32`` uniformly drawn entities (all entities on a
  small graph), in no particular order;
* ``mined`` pool: ``corruptions`` uniformly drawn entities (all of them on a
  graph with at most that many), scored by the current model and sorted best
  first: "top-k over corruption candidates", re-mined every step, as
  self-adversarial and NSCaching-style samplers do.

``known_positive`` marks every training answer of the query (filtered
sampling), or only the fact's own answer for samplers that ask for classic
unfiltered corruption (``Sampler.filtered = False``).  With
``Sampler.sides`` "uniform" or "bernoulli", a fact's K negatives are split
between its two directions by a coin per negative (Bordes et al. 2013; Wang
et al. 2014), instead of K per direction.

The loss sees each row's positive score and its negatives' scores; with
in-batch negatives on, the other rows' answers (the batch's heads and tails,
as in SimKGC/HaSa) are extra columns, known answers masked.

**False negatives.** A sampled negative that is a true fact of the held-out
splits (valid or test) is counted in ``fn_rate_lower_bound`` (the graph is
incomplete, so the true rate is higher); one that is a training fact, which
only unfiltered samplers can draw, in ``known_fn_rate``.

**Evaluation.** Filtered rank-based link prediction over all entities for
tails and heads (through the inverse relation): each test fact's answer is
ranked against every entity that is not another known answer (train, valid
or test) of the query; ties count with the realistic rule (mean of the
optimistic and pessimistic rank).  MRR, Hits@1/3/10 over both sides, as
PyKEEN's ``RankBasedEvaluator`` reports them ("both", "realistic").
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

import torch

from harness import Evaluation, KGEModel, Model
from harness.optim import make_optimizer
from harness.types import CandidateBatch, Negatives, ScoredBatch

from .kg_data import KnowledgeGraph, both_directions, relation_head_probability, two_hop

if TYPE_CHECKING:
    from harness import RunContext, Sampler

__all__ = ["KGEProtocol", "filtered_ranks", "kge_model", "rank_metrics"]

HITS_AT = (1, 3, 10)


def kge_model(model: Model) -> KGEModel:
    if not isinstance(model, KGEModel):
        raise TypeError(
            f"model '{model.name}' is not a KGEModel; KGE tasks need one "
            "(e.g. transe, distmult, complex, rotate)"
        )
    return model


class KGEProtocol:
    """Negative-sampling training of a :class:`KGEModel` on a graph's train split.

    :param epochs: passes over the training facts.
    :param batch_size: facts per step (2x query rows).
    :param num_negatives: K, negatives per query row asked of the sampler.
    :param corruptions: size of the uniformly drawn candidate set a mined pool
        ranks (all entities when the graph has at most this many).
    """

    def __init__(
        self, *, epochs: int, batch_size: int, num_negatives: int, corruptions: int
    ) -> None:
        if min(epochs, batch_size, num_negatives, corruptions) < 1:
            raise ValueError(
                "epochs, batch_size, num_negatives, corruptions must be >= 1"
            )
        self.epochs = epochs
        self.batch_size = batch_size
        self.num_negatives = num_negatives
        self.corruptions = corruptions

    def fit(self, graph: KnowledgeGraph, model: Model, context: RunContext) -> None:
        kge = kge_model(model)
        loss = context.loss
        assert loss is not None, "the matrix pairs trainable models with a loss"
        step = _Step(self, graph, kge, context)
        optimizer = make_optimizer([kge, loss], lr=kge.lr)
        n = len(graph.train)
        steps = (n + self.batch_size - 1) // self.batch_size
        # thousands of millisecond steps: diagnostics on a sample of them
        context.plan_diagnostics(self.epochs * steps, 2 * self.batch_size * step.k)
        kge.train()
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=context.generator)
            for number in range(steps):
                value = step.run(order[number * self.batch_size :][: self.batch_size])
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                kge.after_step()
            context.progress(f"epoch {epoch + 1}/{self.epochs}")


class _Step:
    """One training step: pools, the sampler call, scoring, the loss."""

    def __init__(
        self,
        protocol: KGEProtocol,
        graph: KnowledgeGraph,
        model: KGEModel,
        context: RunContext,
    ) -> None:
        self.graph, self.model, self.context = graph, model, context
        self.device = context.device
        self.facts = graph.facts
        # every training fact's two query rows, made once, as columns: (4,
        # 2N) of query entity, relation', answer and query id, tail queries
        # then head queries.  A step picks its rows instead of building them,
        # and gets each field as a contiguous vector (strided ones make the
        # model's lookups slower)
        rows = both_directions(graph.train, graph.num_relations)
        queries = self.facts.query(rows[:, 0], rows[:, 1])
        self.columns = torch.cat([rows.T, queries[None]]).contiguous()
        self.num_facts = len(graph.train)
        sampler = context.sampler
        self.sampler: Sampler | None = sampler
        assert context.loss is not None
        forced = sampler.in_batch_negatives if sampler is not None else None
        self.in_batch = context.loss.in_batch if forced is None else forced
        e = graph.num_entities
        k = sampler.num_negatives(protocol.num_negatives) if sampler else 0
        if sampler is None or k == 0:
            self.pool_size = 0
        elif sampler.pool == "mined":
            self.pool_size = min(e, max(protocol.corruptions, k))
        else:
            # a uniform draw needs little headroom over K (known answers)
            self.pool_size = min(e, k + 16)
        self.k = min(k, self.pool_size)
        # a mined pool is sorted by score; a uniform one is scored only for
        # samplers that read the scores
        self.score_pool = sampler is not None and (
            sampler.reads_scores or sampler.pool == "mined"
        )
        self.head_probability = (
            relation_head_probability(graph)
            if sampler is not None and sampler.sides == "bernoulli"
            else None
        )
        self.adjacency = (
            two_hop(graph) if sampler is not None and sampler.needs_structure else None
        )
        self._columns = torch.arange(self.k)[None, :]
        self.on_cpu = self.device.type == "cpu"

    # -- pools ------------------------------------------------------------------

    def _on_device(self, tensor: torch.Tensor) -> torch.Tensor:
        # on the CPU, without a no-op .to() per tensor per step
        return tensor if self.on_cpu else tensor.to(self.device)

    def _pool(
        self, heads: torch.Tensor, relations: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Candidate ids and their scores (no gradient); True if ranked fully.

        The scores are NaN when the sampler does not read them (uniform
        corruption): scoring a pool it ignores would cost more than training.
        """
        assert self.sampler is not None
        n, e, generator = len(heads), self.graph.num_entities, self.context.generator
        everything = self.pool_size == e
        mined = self.sampler.pool == "mined"
        # timed by hand: a phase() per step would flood the progress display
        start = time.perf_counter()
        shared = None
        if everything or mined:
            # 1-N scoring of one candidate set shared by the batch's rows:
            # all entities, or a fresh uniform draw of `corruptions` of them
            shared = (
                torch.arange(e)
                if everything
                else torch.randperm(e, generator=generator)[: self.pool_size]
            )
            ids = shared.expand(n, -1)
        else:
            ids = torch.randint(e, (n, self.pool_size), generator=generator)
        if not self.score_pool:
            scores = _unscored(n, self.pool_size)
        else:
            with torch.no_grad():
                scores = (
                    self.model.score_shared(
                        self._on_device(heads),
                        self._on_device(relations),
                        self._on_device(shared),
                    )
                    if shared is not None
                    else self._pairs(heads, relations, ids)
                ).cpu()
        if mined:
            scores, order = scores.sort(dim=1, descending=True)
            ids = ids.gather(1, order)
        timings = self.context.timings
        timings["mine"] = timings.get("mine", 0.0) + time.perf_counter() - start
        return ids.contiguous(), scores, everything and mined

    def _neighbour(self, entities: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Candidates in the query entity's 2-hop neighbourhood. shape: (B, C)."""
        assert self.adjacency is not None
        e = self.graph.num_entities
        onehot = torch.zeros(e, len(entities))
        onehot[entities, torch.arange(len(entities))] = 1.0
        hop1 = self.adjacency @ onehot
        hop2 = (self.adjacency @ hop1).T  # (B, E) path counts
        return hop2.gather(1, ids) > 0

    def _quota(self, relations: torch.Tensor) -> torch.Tensor | None:
        """Columns each row keeps under a side split: a prefix of each row.

        :param relations: shape: (B,) the relation of each fact of the step.
        :returns: shape: (2B, K) bool, or None without a side split.
        """
        assert self.sampler is not None
        if self.sampler.sides == "both" or self.k == 0:
            return None
        b, k = len(relations), self.k
        draws = torch.rand(b, k, generator=self.context.generator)
        if self.head_probability is None:
            coins = draws < 0.5
        else:
            coins = draws < self.head_probability[relations][:, None]
        n_head = coins.sum(dim=1)
        column = self._columns
        tail_rows = column < (k - n_head)[:, None]
        head_rows = column < n_head[:, None]
        return torch.cat([tail_rows, head_rows])

    # -- the step ---------------------------------------------------------------

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """The loss of one step. :param batch: shape: (B,) indices of the
        step's training facts."""
        b = len(batch)
        picked = torch.cat([batch, batch + self.num_facts])
        columns = self.columns.index_select(1, picked)
        heads, relations, answers, queries = columns.unbind()  # views, taken once
        used = self._quota(relations[:b]) if self.sampler is not None else None
        negatives: Negatives | None = None
        if self.sampler is None or self.k == 0:  # in-batch negatives only
            negative_ids = torch.zeros(len(heads), 0, dtype=torch.long)
        else:
            ids, scores, ranked = self._pool(heads, relations)
            known = (
                self.facts.contains(self.facts.train, queries, ids)
                if self.sampler.filtered
                else ids == answers[:, None]  # unfiltered: the fact's own answer
            )
            # a query whose every candidate is an answer has no negative; a
            # row count is 4x cheaper than a bool all(dim=1) on the CPU, and
            # tells the sampler how many columns every row may draw
            answers_per_row = known.sum(dim=1)
            fewest_allowed: int | None = known.shape[1] - int(answers_per_row.max())
            if fewest_allowed == 0:
                active = answers_per_row < known.shape[1]
                fewest_allowed = None  # the rows left were not counted apart
                columns, ids, scores, known = (
                    columns[:, active],
                    ids[active],
                    scores[active],
                    known[active],
                )
                heads, relations, answers, queries = columns.unbind()
                used = None if used is None else used[active]
            if self.score_pool:
                with torch.no_grad():
                    positive_scores = self._pairs(heads, relations, answers[:, None])
                positive_scores = positive_scores[:, 0].cpu()
            else:
                positive_scores = _unscored(len(heads))
            candidates = CandidateBatch(
                anchor_ids=queries,
                candidate_ids=ids,
                scores=scores,
                positive_scores=positive_scores,
                known_positive=known,
                positive_ids=answers,
                neighbour=(
                    self._neighbour(heads, ids) if self.adjacency is not None else None
                ),
                fewest_allowed=fewest_allowed,
            )
            negatives = self.context.sample_negatives(
                candidates,
                self.k,
                # fact look-ups that only the diagnostics need: run by them, on
                # the chosen negatives of measured steps (harness.diagnostics)
                oracle_positive=self._heldout_fact,
                oracle_is_exact=False,
                ranks=(
                    torch.arange(1, ids.shape[1] + 1).expand_as(ids) if ranked else None
                ),
                # a chosen negative is never the fact's own answer, so a
                # training fact among them is another answer of the query
                labelled_positive=None if self.sampler.filtered else self._train_fact,
                used=used,
                # a side split keeps exactly K of each fact's two rows' columns
                used_count=(
                    b * self.k if used is not None and len(heads) == 2 * b else None
                ),
                pool_scored=self.score_pool,
            )
            negative_ids = ids.gather(1, negatives.positions)
        if used is not None and len(used):
            # a side split keeps a prefix of each row's columns (see _quota):
            # scoring stops at the longest prefix, about half of K
            width = int(used.sum(dim=1).max())
            negative_ids, used = negative_ids[:, :width], used[:, :width]
        scored = self._score(
            heads, relations, answers, negative_ids, negatives=negatives, used=used
        )
        if negatives is not None and not self.score_pool and self.context.diagnosing:
            # hardness of exactly the negatives trained, from the loss's scores
            k = negative_ids.shape[1]
            gaps = scored.negative.detach()[:, :k] - scored.positive.detach()[:, None]
            self.context.record_hardness(gaps, used)
        return self.context.compute_loss(scored)

    def _heldout_fact(self, queries: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Is (query, id) a valid or test fact (a false negative)."""
        return self.facts.contains(self.facts.heldout, queries, ids)

    def _train_fact(self, queries: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Is (query, id) a training fact (an unfiltered sampler may draw one)."""
        return self.facts.contains(self.facts.train, queries, ids)

    def _score(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        answers: torch.Tensor,
        negative_ids: torch.Tensor,
        *,
        negatives: Negatives | None,
        used: torch.Tensor | None,
    ) -> ScoredBatch:
        n = len(heads)
        # positive and negatives in one call: head and relation looked up once
        both = self._pairs(
            heads, relations, torch.cat([answers[:, None], negative_ids], 1)
        )
        positive, negative = both[:, 0], both[:, 1:]
        mask = (
            torch.ones(negative_ids.shape, dtype=torch.bool) if used is None else used
        )
        suspected = (
            negatives.suspected[:, : negative_ids.shape[1]]
            if negatives is not None and negatives.suspected is not None
            else None
        )
        if self.in_batch and n > 1:
            in_batch = self.model.score_shared(
                self._on_device(heads),
                self._on_device(relations),
                self._on_device(answers),
            )
            queries = self.facts.query(heads, relations)
            shared = answers.expand(n, -1)
            valid = ~self.facts.contains(self.facts.train, queries, shared)
            valid &= shared != answers[:, None]
            negative = torch.cat([negative, in_batch], dim=1)
            mask = torch.cat([mask, valid], dim=1)
            if suspected is not None:
                suspected = torch.cat(
                    [suspected, torch.zeros(n, n, dtype=torch.bool)], dim=1
                )
        return ScoredBatch(
            positive=positive,
            negative=negative,
            mask=self._on_device(mask),
            suspected=None if suspected is None else self._on_device(suspected),
        )

    def _pairs(
        self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor
    ) -> torch.Tensor:
        return self.model.score_pairs(
            self._on_device(heads), self._on_device(relations), self._on_device(tails)
        )


@functools.cache
def _unscored(*shape: int) -> torch.Tensor:
    """NaN scores, free to make, for a pool the sampler does not score.

    One NaN expanded to ``shape`` (a view, nothing allocated), made once per
    shape: steps reuse it, and nobody writes into an expanded tensor.
    """
    return torch.tensor(float("nan")).expand(*shape)


# -- evaluation -------------------------------------------------------------------


def filtered_ranks(
    graph: KnowledgeGraph,
    model: KGEModel,
    triples: torch.Tensor,
    *,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimistic and pessimistic filtered ranks, tails first then heads.

    shape: (N, 3) -> two (2N,) long tensors; row i < N ranks the tail of
    ``triples[i]``, row N + i its head (through the inverse relation).
    """
    facts = graph.facts
    rows = both_directions(triples, graph.num_relations)
    optimistic, pessimistic = [], []
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            scores = model.score_shared(chunk[:, 0].to(device), chunk[:, 1].to(device))
            scores = scores.float().cpu()
            index = torch.arange(len(chunk))
            true = scores[index, chunk[:, 2]].clone()
            hit_rows, hit_entities = facts.answers(
                facts.all, facts.query(chunk[:, 0], chunk[:, 1])
            )
            scores[hit_rows, hit_entities] = float("-inf")  # other known answers
            scores[index, chunk[:, 2]] = true
            optimistic.append((scores > true[:, None]).sum(dim=1) + 1)
            pessimistic.append((scores >= true[:, None]).sum(dim=1))
    return torch.cat(optimistic), torch.cat(pessimistic)


def rank_metrics(
    optimistic: torch.Tensor, pessimistic: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-query metrics from the realistic rank (mean of the two ranks)."""
    realistic = (optimistic + pessimistic).double() / 2
    out = {"mrr": 1.0 / realistic, "rank": realistic}
    for k in HITS_AT:
        out[f"hits@{k}"] = (realistic <= k).double()
    return out


def evaluate(graph: KnowledgeGraph, model: Model, *, split: str = "test") -> Evaluation:
    """Filtered link-prediction metrics on ``split``, both sides and per side."""
    triples = graph.test if split == "test" else graph.valid
    optimistic, pessimistic = filtered_ranks(graph, kge_model(model), triples)
    per_query = rank_metrics(optimistic, pessimistic)
    n = len(triples)
    metrics: dict[str, float] = {}
    for name, values in per_query.items():
        metrics[name] = float(values.mean())
    metrics["mrr_tail"] = float(per_query["mrr"][:n].mean())
    metrics["mrr_head"] = float(per_query["mrr"][n:].mean())
    items = [f"{i}:tail" for i in range(n)] + [f"{i}:head" for i in range(n)]
    per_item = {
        name: dict(zip(items, per_query[name].tolist(), strict=True))
        for name in ("mrr", "rank")
    }
    return Evaluation(metrics=metrics, per_item=per_item)
