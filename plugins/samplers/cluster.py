"""ClusterNS: cluster centroids as hard negatives, in-cluster columns as suspects.

Deng et al., "Clustering-Aware Negative Sampling for Unsupervised Sentence
Representation", Findings of ACL 2023 (djz233/ClusterNS, ``simcse/models.py``:
``kmeans_cluster``).  A k-means module runs alongside contrastive training:

1. **start trigger**: clustering starts once the mean cosine between the
   batch's anchors and its in-batch columns falls to ``start_cosine`` (0.4)
   or below.  In unsupervised SimCSE this waits until the embedding space has
   spread out.  For supervised retrieval the mean may never get that low;
   a value >= 1 starts on the first step;
2. **initialisation** on the starting batch: a greedy farthest chain (a random
   anchor, then repeatedly the anchor least similar to the last one chosen)
   gives k = ``clusters`` (128) centroids, or one per anchor when the batch has
   fewer anchors than that (the released code asserts instead); a batch of a
   single anchor never starts it;
3. **every later step**: each anchor goes to its nearest centroid (cosine) and
   the centroids that received anchors move with momentum over the *sum* of
   their anchors, ``c <- lr * sum(z) + (1 - lr) * c`` (lr = ``kmeans_lr``,
   1e-3; the sum, not the mean, is what the code does, and it works because
   everything downstream is a cosine);
4. **hard negative** of each anchor: its 2nd-nearest centroid, detached; every
   anchor sees all the batch's centroid negatives as extra columns;
5. **false negatives**: an in-batch column assigned to the anchor's cluster is
   a suspected false negative (the ``bml`` loss keeps those in a band below
   the positive instead of pushing them away).

The protocol calls :meth:`suspect` every step with the current anchor
embeddings and the in-batch columns, so the trigger, the initialisation and
the update happen there; :meth:`sample` runs earlier in the step and returns
the centroid negatives from the centroids as of the previous step, using the
batch's ``anchor_embeddings`` (those of the last pool refresh) to pick each
anchor's 2nd-nearest centroid.  ClusterNS adds no mined negatives
(``num_negatives`` is 0).  As in the code, the starting step only initialises:
centroid negatives and suspicions begin on the next step.

Centroids are returned unit-normalised: the protocol scores synthetic vectors
with the model's dot product, which for unit anchors is then the cosine the
paper uses.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from harness import CandidateBatch, Sampler, hookimpl
from harness.types import Negatives

__all__ = ["ClusterNS"]


class ClusterNS(Sampler):
    """Momentum k-means over anchors; centroids as negatives, clusters as suspects.

    :param clusters: k, the number of centroids (paper: 128); fewer when the
        starting batch has fewer anchors.
    :param start_cosine: start clustering when the batch's mean cosine falls
        to this or below (paper: 0.4); >= 1 starts at once.
    :param kmeans_lr: momentum of the centroid update (paper: 1e-3).
    :param trigger: which cosines the start trigger averages: ``"batch"``
        (every anchor against every in-batch column, as the released code's
        ``cos_sim.mean()``) or ``"paired"`` (each anchor with its own positive,
        the first B in-batch columns in the protocol's layout).
    """

    name = "cluster"
    families = frozenset({"retrieval", "sts"})
    pool = "mined"
    in_batch_negatives = True
    needs_embeddings = True

    def __init__(
        self,
        *,
        clusters: int = 128,
        start_cosine: float = 0.4,
        kmeans_lr: float = 1e-3,
        trigger: Literal["batch", "paired"] = "batch",
    ) -> None:
        if clusters < 2:
            raise ValueError("clusters must be >= 2 (the 2nd-nearest is the negative)")
        if not 0 < kmeans_lr <= 1:
            raise ValueError("kmeans_lr must be in (0, 1]")
        if trigger not in ("batch", "paired"):
            raise ValueError("trigger must be 'batch' or 'paired'")
        self.clusters = clusters
        self.start_cosine = start_cosine
        self.kmeans_lr = kmeans_lr
        self.trigger = trigger
        #: shape: (k, D) the centroids, None until the trigger fires
        self.centroids: torch.Tensor | None = None
        self.started_at: int | None = None
        self.last_cosine: float | None = None
        self._steps = 0
        self._flagged = 0.0
        self._checked = 0.0
        self._generator: torch.Generator | None = None

    @property
    def started(self) -> bool:
        return self.centroids is not None

    # -- the clustering module ------------------------------------------------------

    def assign(self, points: torch.Tensor) -> torch.Tensor:
        """Index of the nearest centroid (cosine) of each point. shape: (N,)."""
        assert self.centroids is not None
        return self._cosine(points).argmax(dim=1)

    def _cosine(self, points: torch.Tensor) -> torch.Tensor:
        assert self.centroids is not None
        return (
            F.normalize(points.float(), dim=-1) @ F.normalize(self.centroids, dim=-1).T
        )

    def trigger_cosine(self, anchors: torch.Tensor, columns: torch.Tensor) -> float:
        """The mean cosine the start trigger compares with ``start_cosine``."""
        cos = torch.einsum(
            "bd,bmd->bm",
            F.normalize(anchors.float(), dim=-1),
            F.normalize(columns.float(), dim=-1),
        ).clamp(-1.0, 1.0)  # so that start_cosine >= 1 always starts
        if self.trigger == "paired":
            b = anchors.shape[0]
            if cos.shape[1] < b:
                raise ValueError("'paired' needs the B positives as the first columns")
            return float(cos[:, :b].diagonal().mean())
        return float(cos.mean())

    def _initialise(self, anchors: torch.Tensor) -> None:
        """Greedy farthest chain over the anchors (ClusterNS step 3)."""
        points = anchors.detach().float()
        n = points.shape[0]
        k = min(self.clusters, n)
        generator = self._generator
        if generator is None:  # suspect() before any sample(): a fixed start
            generator = torch.Generator().manual_seed(0)
        last = int(torch.randint(n, (1,), generator=generator))
        cos = F.normalize(points, dim=-1) @ F.normalize(points, dim=-1).T
        chosen = [last]
        for _ in range(1, k):
            cos[:, last] = float("inf")  # never pick a chosen point again
            last = int(cos[last].argmin())
            chosen.append(last)
        self.centroids = points[chosen].clone()

    def _update(self, anchors: torch.Tensor) -> None:
        """Momentum step over the *sum* of each centroid's anchors (step 5)."""
        assert self.centroids is not None
        points = anchors.detach().float()
        index = self.assign(points)
        sums = torch.zeros_like(self.centroids).index_add_(0, index, points)
        hit = torch.bincount(index, minlength=self.centroids.shape[0]) > 0
        moved = self.kmeans_lr * sums + (1.0 - self.kmeans_lr) * self.centroids
        self.centroids = torch.where(hit[:, None], moved, self.centroids)

    # -- the sampler contract ---------------------------------------------------------

    def num_negatives(self, requested: int) -> int:
        return 0

    def suspect(
        self, anchor_embeddings: torch.Tensor, column_embeddings: torch.Tensor
    ) -> torch.Tensor | None:
        step = self._steps
        self._steps += 1
        if self.centroids is None:
            self.last_cosine = self.trigger_cosine(anchor_embeddings, column_embeddings)
            # a 2nd-nearest centroid needs at least two of them
            if self.last_cosine <= self.start_cosine and len(anchor_embeddings) > 1:
                self._initialise(anchor_embeddings)
                self.started_at = step
            return None
        self._update(anchor_embeddings)
        b, m, d = column_embeddings.shape
        mine = self.assign(anchor_embeddings)
        theirs = self.assign(column_embeddings.reshape(b * m, d)).view(b, m)
        flagged = theirs == mine[:, None]
        self._flagged += float(flagged.sum())
        self._checked += float(flagged.numel())
        return flagged

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor | Negatives:
        # kept for the random first point of the initialisation in suspect()
        self._generator = generator
        empty = torch.zeros(batch.size, 0, dtype=torch.long)
        if self.centroids is None:
            return empty
        if batch.anchor_embeddings is None:
            raise ValueError("cluster needs batch.anchor_embeddings (needs_embeddings)")
        second = self._cosine(batch.anchor_embeddings).topk(2, dim=1).indices[:, 1]
        hard = F.normalize(self.centroids[second], dim=-1).detach()
        vectors = hard.unsqueeze(0).expand(batch.size, -1, -1).clone()
        return Negatives(positions=empty, vectors=vectors)

    def diagnostics(self) -> dict[str, float]:
        out = {
            "started": float(self.started),
            "clusters": float(0 if self.centroids is None else len(self.centroids)),
        }
        if self.started_at is not None:
            out["start_step"] = float(self.started_at)
        if self._checked:
            out["suspected_fraction"] = self._flagged / self._checked
        return out


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [ClusterNS]
