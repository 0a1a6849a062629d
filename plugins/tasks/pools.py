"""Candidate pools for the contrastive protocol: mining, uniform draws, queues.

A pool is what a sampler chooses negatives from: per anchor, candidate ids,
the current model's scores and (when affordable) each candidate's rank among
all candidates.  ``mined`` pools come from an exact faiss inner-product
search (Johnson et al., "Billion-scale similarity search with GPUs", 2019),
``uniform`` pools are random draws, and the queue is MoCo's memory of recent
positives (He et al., CVPR 2020).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from harness import Model, TextEncoder

__all__ = [
    "MAX_RANKED_CELLS",
    "MAX_TABLE_CELLS",
    "NO_MEMBER",
    "Pool",
    "Queue",
    "embed_all",
    "faiss_search",
    "member_rows",
    "member_table",
    "membership",
    "mine",
    "text_encoder",
]

#: rank diagnostics need a full score matrix; skip them beyond this many cells
MAX_RANKED_CELLS = 30_000_000


@dataclass(slots=True)
class Pool:
    """Candidates offered to the sampler, one row per anchor."""

    ids: torch.Tensor  #: shape: (A, C)
    scores: torch.Tensor  #: shape: (A, C)
    ranks: torch.Tensor | None  #: shape: (A, C) 1-based rank among all candidates


def text_encoder(model: Model) -> TextEncoder:
    if not isinstance(model, TextEncoder):
        raise TypeError(
            f"text tasks need a harness.TextEncoder model, got {type(model).__name__}"
        )
    return model


def faiss_search(
    queries: torch.Tensor, docs: torch.Tensor, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` with faiss: (scores, ids), each (Q, k)."""
    import faiss

    doc_matrix = np.ascontiguousarray(docs.detach().cpu().numpy(), dtype=np.float32)
    query_matrix = np.ascontiguousarray(
        queries.detach().cpu().numpy(), dtype=np.float32
    )
    # IndexFlatIP.search's kernel, without copying the documents into an index
    scores, ids = faiss.knn(
        query_matrix,
        doc_matrix,
        min(k, doc_matrix.shape[0]),
        metric=faiss.METRIC_INNER_PRODUCT,
    )
    return scores, ids


@torch.no_grad()
def embed_all(
    model: TextEncoder,
    features: torch.Tensor,
    side: str,
    device: torch.device,
    batch: int = 1024,
) -> torch.Tensor:
    """Embeddings of all ``features`` without gradients. shape: (N, D)."""
    chunks = [
        model.embed(features[i : i + batch].to(device), side=side)
        for i in range(0, features.shape[0], batch)
    ]
    return torch.cat(chunks).float()


#: pads a row of a :func:`member_table`: never a candidate id, and sorts last
NO_MEMBER = torch.iinfo(torch.long).max

#: up to this many members per row, one broadcast comparison is the cheapest
#: look-up; wider tables are searched (a binary search per candidate)
_BROADCAST_WIDTH = 16


def member_table(sets: Sequence[Collection[int]]) -> torch.Tensor:
    """Each set as a row of ascending ids, padded with :data:`NO_MEMBER`.

    Built once per dataset (its anchors' positives), so a step looks its
    anchors' rows up instead of building tensors from Python sets.
    shape: (N, largest set) long.
    """
    width = max((len(members) for members in sets), default=0)
    return torch.tensor(
        [sorted(members) + [NO_MEMBER] * (width - len(members)) for members in sets],
        dtype=torch.long,
    ).reshape(len(sets), width)


#: a member table of more cells is not built: one anchor with very many
#: positives would make every row that wide (128 MiB at this size)
MAX_TABLE_CELLS = 1 << 24


def member_rows(
    sets: Sequence[Collection[int]],
) -> Callable[[torch.Tensor], torch.Tensor | list[Collection[int]]]:
    """A look-up of the anchors' rows of ``sets`` for :func:`membership`:
    rows of a :func:`member_table` made now, or (a table too large) the
    anchors' sets themselves."""
    width = max((len(members) for members in sets), default=0)
    if len(sets) * width <= MAX_TABLE_CELLS:
        table = member_table(sets)
        return lambda anchors: table[anchors]
    return lambda anchors: [sets[a] for a in anchors.tolist()]


def membership(
    candidate_ids: torch.Tensor, members: torch.Tensor | Sequence[Collection[int]]
) -> torch.Tensor:
    """shape: (B, C) bool, True where ``candidate_ids[b, c]`` is a member of
    row b: ``members`` is a (B, M) :func:`member_table` (rows looked up by
    the caller) or B sets.

    The whole batch at once: a tensor operation per row cost more than
    mining the pool (SciFact: 10 of 18 ms).
    """
    ids = candidate_ids.cpu()
    table = members if isinstance(members, torch.Tensor) else member_table(members)
    width = table.shape[1]
    if not width or not ids.numel():
        return torch.zeros(ids.shape, dtype=torch.bool)
    if width <= _BROADCAST_WIDTH:
        return (ids.unsqueeze(-1) == table.unsqueeze(1)).any(dim=-1)
    # contiguous: the protocol passes shared in-batch ids expanded over rows
    ids = ids.contiguous()
    at = torch.searchsorted(table.contiguous(), ids).clamp_(max=width - 1)
    return table.gather(1, at) == ids


def mine(
    kind: str,
    anchor_emb: torch.Tensor,
    candidate_emb: torch.Tensor,
    depth: int,
    generator: torch.Generator,
) -> Pool:
    """Build a ``mined`` or ``uniform`` pool for every anchor (on the CPU)."""
    n_candidates = candidate_emb.shape[0]
    depth = min(depth, n_candidates)
    if kind != "uniform":
        found, nearest = faiss_search(anchor_emb, candidate_emb, depth)
        scores = torch.from_numpy(found)
        # The pool is the exact top-``depth``, best first: nothing outside it
        # scores higher than a member, so a member's rank among all candidates
        # is its rank inside the pool -- no full score matrix, no sort.
        return Pool(
            ids=torch.from_numpy(nearest).long(),
            scores=scores,
            ranks=_ranks_among(scores, scores),
        )
    ids = torch.randint(n_candidates, (anchor_emb.shape[0], depth), generator=generator)
    gathered = candidate_emb[ids.to(candidate_emb.device)]
    scores = torch.einsum("ad,acd->ac", anchor_emb, gathered)
    ranks = None
    if anchor_emb.shape[0] * n_candidates <= MAX_RANKED_CELLS:
        full = torch.sort(anchor_emb @ candidate_emb.T, dim=1, descending=True).values
        ranks = _ranks_among(full, scores).cpu()
    return Pool(ids=ids, scores=scores.cpu(), ranks=ranks)


def _ranks_among(descending: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """1 + how many of each row's ``descending`` scores beat ``scores``
    (beyond the float noise between faiss's and torch's kernels)."""
    return (
        torch.searchsorted(
            -descending.contiguous(), -(scores + 1e-6).contiguous(), side="left"
        )
        + 1
    )


class Queue:
    """FIFO memory of candidate ids and the embeddings they had when stored."""

    def __init__(self, size: int) -> None:
        self.ids: deque[int] = deque(maxlen=size)
        self.embeddings: deque[torch.Tensor] = deque(maxlen=size)

    def push(self, ids: torch.Tensor, embeddings: torch.Tensor) -> None:
        for i, e in zip(ids.tolist(), embeddings.detach().cpu(), strict=True):
            self.ids.append(int(i))
            self.embeddings.append(e)

    def __len__(self) -> int:
        return len(self.ids)

    def pool(self, anchor_emb: torch.Tensor) -> Pool:
        ids = torch.tensor(list(self.ids)).expand(anchor_emb.shape[0], -1)
        keys = torch.stack(list(self.embeddings))
        return Pool(ids=ids, scores=(anchor_emb.cpu() @ keys.T), ranks=None)
