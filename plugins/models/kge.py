"""Four classic knowledge-graph embedding models, with 1-N scoring.

Each scores a (head, relation) query against any set of tails; head
prediction uses the inverse relation ``r + R``.  The score functions are
PyKEEN's (which the tests check by copying weights across):

* ``transe``: ``-||h + r - t||_p``, p = 1 (Bordes et al., NeurIPS 2013);
* ``distmult``: ``<h, r, t>`` (Yang et al., ICLR 2015);
* ``complex``: ``Re(<h, r, conj(t)>)`` (Trouillon et al., ICML 2016);
* ``rotate``: ``-||h * r - t||_2`` with ``|r_i| = 1`` (Sun et al., ICLR 2019).

Complex vectors are stored as ``(..., dim, 2)`` real pairs, PyKEEN's layout.
Entity and relation tables are ``nn.Embedding`` weights with dense gradients,
looked up through :class:`_Lookup`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from harness import KGEModel, hookimpl

__all__ = ["ComplEx", "DistMult", "RotatE", "TransE"]


class _Lookup(torch.autograd.Function):
    """``table[ids]`` whose backward is one ``index_add_``.

    ``nn.Embedding``'s CPU backward is about 4x slower than ``index_add_`` for
    a negative-sampling batch (thousands of ids over a few hundred rows), and
    at dimension 64 the lookups' backward was a fifth of a training step.
    Same gradient, same order of additions (deterministic on the CPU).
    """

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.rows = table.shape[0]
        return table.index_select(0, ids.reshape(-1)).view(*ids.shape, -1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (ids,) = ctx.saved_tensors
        width = grad.shape[-1]
        table_grad = grad.new_zeros(ctx.rows, width)
        table_grad.index_add_(0, ids.reshape(-1), grad.reshape(-1, width))
        return table_grad, None


class _NegativeL1(torch.autograd.Function):
    """``-||h + r - t||_1`` over broadcast shapes, with a hand-written backward.

    Autograd's version keeps four (B, K, D) intermediates and runs seven
    passes over them; this one keeps the difference and runs four, which
    halves TransE's scoring time on the CPU.  Same values and gradients.
    """

    @staticmethod
    def forward(
        ctx: Any, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        difference = (h + r) - t
        ctx.save_for_backward(difference)
        ctx.shapes = h.shape, r.shape, t.shape
        return difference.abs().sum(dim=-1).neg_()

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        (difference,) = ctx.saved_tensors
        h_shape, r_shape, t_shape = ctx.shapes
        toward_t = torch.sign(difference).mul_(grad[..., None])  # d score / d t
        toward_h = toward_t.sum_to_size(h_shape).neg()  # d score / d h = -that
        toward_r = (
            toward_h if r_shape == h_shape else toward_t.sum_to_size(r_shape).neg()
        )
        return toward_h, toward_r, toward_t.sum_to_size(t_shape)


def _lookup(table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    return _Lookup.apply(table.weight, ids)  # type: ignore[no-any-return]


class _Embedding(KGEModel):
    """Entity and relation tables plus the 1-N plumbing the four models share.

    :param dim: embedding dimension (complex models: number of complex
        coordinates).
    :param lr: Adam learning rate.
    """

    default_lr: ClassVar[float] = 1e-2
    #: real numbers per coordinate: 1, or 2 for complex models
    width: ClassVar[int] = 1

    def __init__(self, *, dim: int = 64, lr: float | None = None) -> None:
        super().__init__(lr=lr)
        if dim < 1:
            raise ValueError("dim must be >= 1")
        self.dim = dim
        self.entity: nn.Embedding | None = None
        self.relation: nn.Embedding | None = None

    @property
    def built(self) -> bool:
        return self.entity is not None

    def build(self, num_entities: int, num_relations: int) -> None:
        # dense gradients: SparseAdam's coalescing of the many repeated rows of
        # a negative-sampling batch costs more than a dense Adam step on tables
        # of this size (measured on nations ... wn18rr)
        width = self.dim * self.width
        self.entity = nn.Embedding(num_entities, width)
        self.relation = nn.Embedding(num_relations, width)
        self.initialise(self.entity.weight, self.relation.weight)

    def initialise(self, entity: torch.Tensor, relation: torch.Tensor) -> None:
        with torch.no_grad():
            nn.init.xavier_uniform_(entity)
            nn.init.xavier_uniform_(relation)

    def tables(self) -> tuple[nn.Embedding, nn.Embedding]:
        if self.entity is None or self.relation is None:
            raise RuntimeError(f"{self.name}: build() was not called")
        return self.entity, self.relation

    def score_pairs(
        self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor
    ) -> torch.Tensor:
        entity, relation = self.tables()
        return self.interaction(
            _lookup(entity, heads)[:, None],
            _lookup(relation, relations)[:, None],
            _lookup(entity, tails),
        )

    def score_shared(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor | None = None,
    ) -> torch.Tensor:
        entity, relation = self.tables()
        candidates = entity.weight if tails is None else _lookup(entity, tails)
        return self.all_tails(
            _lookup(entity, heads), _lookup(relation, relations), candidates
        )

    def interaction(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """Broadcast score. shapes: (B, 1, D), (B, 1, D), (B, K, D) -> (B, K)."""
        raise NotImplementedError

    def all_tails(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """Scores of M shared tails. shapes: (B, D), (B, D), (M, D) -> (B, M)."""
        raise NotImplementedError


def _complex(x: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())


class TransE(_Embedding):
    """Translation: ``-||h + r - t||_p`` (Bordes et al., NeurIPS 2013).

    Entity vectors are renormalised to unit L2 norm before every use, as in
    the paper and PyKEEN's default ``constrainer``.
    """

    name = "transe"

    def __init__(self, *, dim: int = 64, p: int = 1, lr: float | None = None) -> None:
        super().__init__(dim=dim, lr=lr)
        if p not in (1, 2):
            raise ValueError("p must be 1 or 2")
        self.p = p

    def interaction(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        if self.p == 1:  # ~9x faster than vector_norm(ord=1) on the CPU
            return _NegativeL1.apply(h, r, t)  # type: ignore[no-any-return]
        distance: torch.Tensor = torch.linalg.vector_norm(h + r - t, ord=2, dim=-1)
        return -distance

    def all_tails(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        return -torch.cdist(h + r, t, p=float(self.p))

    def after_step(self) -> None:
        """Project entity vectors back onto the unit sphere."""
        entity, _ = self.tables()
        with torch.no_grad():
            entity.weight.div_(entity.weight.norm(dim=-1, keepdim=True).clamp(1e-12))


class DistMult(_Embedding):
    """Diagonal bilinear: ``<h, r, t>`` (Yang et al., ICLR 2015)."""

    name = "distmult"

    def interaction(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        return (h * r * t).sum(-1)

    def all_tails(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        return (h * r) @ t.T


class ComplEx(_Embedding):
    """``Re(<h, r, conj(t)>)`` over complex vectors (Trouillon et al., ICML 2016)."""

    name = "complex"
    width = 2

    def interaction(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        return (_complex(h) * _complex(r) * _complex(t).conj()).real.sum(-1)

    def all_tails(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        hr = _complex(h) * _complex(r)
        tc = _complex(t)
        return hr.real @ tc.real.T + hr.imag @ tc.imag.T


class RotatE(_Embedding):
    """Rotation in the complex plane: ``-||h * r - t||_2`` (Sun et al., ICLR 2019).

    Relations are unit-modulus complex numbers ``r = exp(i * phase)``; they
    are stored as (cos, sin) pairs and renormalised on use, as PyKEEN's
    ``complex_normalize`` constrainer does.
    """

    name = "rotate"
    width = 2

    def initialise(self, entity: torch.Tensor, relation: torch.Tensor) -> None:
        with torch.no_grad():
            nn.init.xavier_uniform_(entity)
            phase = torch.rand(relation.shape[0], self.dim) * 2 * math.pi
            relation.copy_(
                torch.stack([phase.cos(), phase.sin()], dim=-1).reshape_as(relation)
            )

    @staticmethod
    def _unit(r: torch.Tensor) -> torch.Tensor:
        z = _complex(r)
        return z / z.abs().clamp(min=1e-12)

    def interaction(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        diff = _complex(h) * self._unit(r) - _complex(t)
        distance: torch.Tensor = torch.linalg.vector_norm(diff, ord=2, dim=-1)
        return -distance

    def all_tails(
        self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        hr = torch.view_as_real(_complex(h) * self._unit(r)).flatten(-2)
        return -torch.cdist(hr, t, p=2.0)


@hookimpl
def harness_register_models() -> list[type[KGEModel]]:
    return [TransE, DistMult, ComplEx, RotatE]
