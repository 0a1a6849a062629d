"""W-MSE: whitening instead of negatives (Ermolov et al., ICML 2021).

The two views of each pair (the anchor and its positive) are projected,
whitened *separately* over the batch (``z = L⁻¹(h - μ)`` with
``L = chol((1 - ε)Σ + εI)``, Σ the unbiased covariance), and pulled
together: per pair ``2 - 2 cos(z_a, z_b)``.  Whitening scatters the batch to
unit covariance, so the trivial solution (every embedding equal), which
plain MSE between views rewards, is out of reach: no negatives needed.

Reference: Ermolov et al., "Whitening for Self-Supervised Representation
Learning", ICML 2021 (code: htdt/self-supervised ``methods/w_mse.py``,
``methods/whitening.py``; METHODS.md §6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from harness import Loss, hookimpl

if TYPE_CHECKING:
    from harness.types import ScoredBatch

__all__ = ["WMSE", "whiten_batch"]

#: shrinkage used when a (sub-)batch is too small or too degenerate to whiten
FALLBACK_EPS = 1e-3


def whiten_batch(h: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Whiten the rows of ``h`` over the batch (Cholesky, as the paper).

    Uses ``eps`` shrinkage; when the batch has no more rows than columns (the
    covariance is singular) or the Cholesky factorisation fails anyway
    (collapsed embeddings), it retries with ``max(eps, FALLBACK_EPS)`` so it
    never raises.  Gradients flow through μ, Σ and the factor.

    :param h: shape: (N, D) with N >= 2.
    :returns: shape: (N, D).
    """
    n, d = h.shape
    centred = h - h.mean(dim=0, keepdim=True)
    cov = centred.T @ centred / (n - 1)
    eye = torch.eye(d, dtype=h.dtype, device=h.device)
    if n <= d:
        eps = max(eps, FALLBACK_EPS)
    factor, info = torch.linalg.cholesky_ex((1 - eps) * cov + eps * eye)
    if bool(info != 0) and eps < FALLBACK_EPS:
        eps = FALLBACK_EPS
        factor, info = torch.linalg.cholesky_ex((1 - eps) * cov + eps * eye)
    if bool(info != 0):  # not even the shrunk matrix: give up on decorrelating
        factor = eye
    solved: torch.Tensor = torch.linalg.solve_triangular(
        factor, centred.T, upper=False
    ).T
    return solved


class WMSE(Loss):
    """Negative-free loss: whitened views of each pair pulled together.

    The embeddings are first projected to ``dim`` dimensions by a fixed
    random orthogonal matrix (seed 0, made at the first call, a buffer, never
    trained), standing in for the paper's small projection head, so that
    whitening is well posed for batches larger than ``dim`` (the encoders'
    embeddings are far wider than a training batch is long).  If a
    (sub-)batch has no more rows than ``dim``, or its covariance is singular
    (collapsed embeddings), whitening uses ε = 1e-3 shrinkage rather than
    failing; a batch of one row whitens to zero.

    :param dim: width after the fixed projection (capped at the embedding
        width); the paper uses 64-128 with batches of 256-512.
    :param eps: ε, the whitening shrinkage (paper default 0).
    :param w_size: rows per whitening sub-batch; 0 whitens the whole batch.
        The batch is shuffled and cut into sub-batches of this size, a short
        remainder joining the last one.
    :param w_iter: how many random partitions to average over (with
        ``w_size``; the whole batch needs one).
    :param norm: ``2 - 2 cos`` (the paper's normalised MSE); False gives plain
        MSE, the mean squared difference over the dimensions.
    :param whiten: False skips whitening (the MSE-only ablation that
        collapses).
    :param seed: seed of the projection and of the sub-batch partitions
        (drawn afresh each training call; in eval mode every call draws the
        same sequence, so evaluation is deterministic).
    :param in_batch: unused (the loss looks at no negatives).
    """

    name = "w-mse"
    families = frozenset({"retrieval", "sts"})
    in_batch_default = False
    needs_negatives = False

    projection: torch.Tensor | None

    def __init__(
        self,
        *,
        dim: int = 16,
        eps: float = 0.0,
        w_size: int = 0,
        w_iter: int = 1,
        norm: bool = True,
        whiten: bool = True,
        seed: int = 0,
        in_batch: bool | None = None,
    ) -> None:
        super().__init__(in_batch=in_batch)
        if dim < 1:
            raise ValueError("dim must be >= 1")
        if not 0 <= eps <= 1:
            raise ValueError("eps must be in [0, 1]")
        if w_size < 0 or w_size == 1:
            raise ValueError("w_size must be 0 (whole batch) or >= 2")
        if w_iter < 1:
            raise ValueError("w_iter must be >= 1")
        self.dim = dim
        self.eps = eps
        self.w_size = w_size
        self.w_iter = w_iter
        self.norm = norm
        self.whiten = whiten
        self.seed = seed
        self.register_buffer("projection", None)
        self._partitions = torch.Generator().manual_seed(seed)

    def _project(self, embeddings: torch.Tensor) -> torch.Tensor:
        width = embeddings.shape[-1]
        if self.projection is None or self.projection.shape[0] != width:
            gen = torch.Generator().manual_seed(self.seed)
            gaussian = torch.randn(width, min(self.dim, width), generator=gen)
            # orthonormal columns; the sign fix makes the draw unique
            q, r = torch.linalg.qr(gaussian.double())
            q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)
            self.projection = q.to(embeddings)
        projection = self.projection.to(embeddings)
        return embeddings @ projection

    def _groups(self, size: int, generator: torch.Generator) -> list[torch.Tensor]:
        """Row indices of each whitening sub-batch."""
        if self.w_size == 0 or size < 2 * self.w_size:
            return [torch.arange(size)]
        order = torch.randperm(size, generator=generator)
        count = size // self.w_size
        groups = list(order[: count * self.w_size].view(count, self.w_size))
        groups[-1] = torch.cat([groups[-1], order[count * self.w_size :]])
        return groups

    def _whiten(self, h: torch.Tensor, groups: list[torch.Tensor]) -> torch.Tensor:
        """Whiten one view within each sub-batch (the same ones for both views)."""
        if len(groups) == 1:
            return whiten_batch(h, self.eps) if h.shape[0] > 1 else h - h
        out = torch.empty_like(h)
        for group in groups:
            rows = group.to(h.device)
            out[rows] = whiten_batch(h[rows], self.eps)
        return out

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        if batch.anchor_embeddings is None or batch.positive_embeddings is None:
            raise ValueError("w-mse needs anchor_embeddings and positive_embeddings")
        h_a = self._project(batch.anchor_embeddings)
        h_b = self._project(batch.positive_embeddings)
        repeats = self.w_iter if self.whiten and self.w_size else 1
        # eval mode redraws the same partitions every call, so it is pure
        generator = (
            self._partitions
            if self.training
            else torch.Generator().manual_seed(self.seed)
        )
        total = torch.zeros(h_a.shape[0], dtype=h_a.dtype, device=h_a.device)
        for _ in range(repeats):
            if self.whiten:
                groups = self._groups(h_a.shape[0], generator)
                z_a, z_b = self._whiten(h_a, groups), self._whiten(h_b, groups)
            else:
                z_a, z_b = h_a, h_b
            if self.norm:
                cos = (F.normalize(z_a, dim=-1) * F.normalize(z_b, dim=-1)).sum(-1)
                total = total + (2 - 2 * cos)
            else:
                total = total + (z_a - z_b).pow(2).mean(dim=-1)
        return total / repeats


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [WMSE]
