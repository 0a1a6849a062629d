"""Weighted draws of column positions, for samplers (built-in and third-party).

Draws use the Gumbel-top-k trick (Vieira 2014; Kool et al., ICML 2019): the
top k of ``log w + Gumbel noise`` is an exact sample of k columns without
replacement, proportional to w.  Working in log space means a weight of
exp(-900) is still a valid (if unlikely) draw rather than an underflowed 0.
"""

from __future__ import annotations

import torch

__all__ = [
    "cap_negatives",
    "first_occurrence",
    "log_weighted_draw",
    "uniform_draw",
    "uniform_negatives",
    "weighted_draw",
]


def _gumbel(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator, dtype=torch.float64)
    return -torch.log(-torch.log(uniform.clamp(1e-300, 1.0 - 1e-16)))


def log_weighted_draw(
    log_weights: torch.Tensor, k: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw ``k`` positions per row with probability ∝ exp(log_weights).

    Without replacement while a row has at least ``k`` drawable columns (the
    usual case); a row with fewer draws with replacement among them, so a
    forbidden column (log weight -inf) is never returned.

    :param log_weights: shape: (B, C); -inf = never draw.
    :returns: shape: (B, K) long.
    """
    log_weights = log_weights.to(torch.float64)
    log_weights = log_weights.masked_fill(torch.isnan(log_weights), float("-inf"))
    allowed = log_weights > float("-inf")
    counts = allowed.sum(dim=1)
    if bool((counts == 0).any()):
        raise ValueError("an anchor has no candidate that may be drawn as a negative")
    out = torch.empty(log_weights.shape[0], k, dtype=torch.long)
    full = counts >= k
    if bool(full.any()):
        keys = log_weights[full] + _gumbel(log_weights[full].shape, generator)
        out[full] = torch.topk(keys, k, dim=1).indices
    if bool((~full).any()):
        rows = log_weights[~full]
        noise = _gumbel(torch.Size((rows.shape[0], k, rows.shape[1])), generator)
        out[~full] = (rows[:, None, :] + noise).argmax(dim=2)
    return out


def weighted_draw(
    weights: torch.Tensor, k: int, generator: torch.Generator
) -> torch.Tensor:
    """:func:`log_weighted_draw` for non-negative weights (0 = never draw)."""
    weights = weights.to(torch.float64)
    return log_weighted_draw(
        torch.where(weights > 0, weights.log(), float("-inf")), k, generator
    )


def uniform_draw(
    allowed: torch.Tensor, k: int, generator: torch.Generator
) -> torch.Tensor:
    """:func:`weighted_draw` with equal weights on the ``allowed`` columns.

    The same distribution (k allowed columns uniformly without replacement,
    with replacement in a row with fewer), drawn as the top k of uniform
    float32 keys: about 3x cheaper than Gumbel keys in float64, which matters
    for uniform corruption in KGE, drawn every step.

    :param allowed: shape: (B, C) bool.
    :returns: shape: (B, K) long.
    """
    return uniform_negatives(~allowed, k, generator)


def uniform_negatives(
    known_positive: torch.Tensor,
    k: int,
    generator: torch.Generator,
    *,
    fewest_allowed: int | None = None,
) -> torch.Tensor:
    """:func:`uniform_draw` over the columns that are *not* known positives.

    Takes :attr:`CandidateBatch.known_positive` as it is, and checks for a
    short row (fewer than k drawable columns) after the draw instead of
    before, which saves a training step three tensor operations: a short
    row shows up as a forbidden column (key -1) among the top k, and only
    then is the draw redone with :func:`weighted_draw`.

    :param known_positive: shape: (B, C) bool, True = never draw.
    :param fewest_allowed: :attr:`CandidateBatch.fewest_allowed`: when it is
        at least k, no row is short and the check is skipped (two tensor
        operations fewer per step).
    :returns: shape: (B, K) long.
    """
    keys = torch.rand(known_positive.shape, generator=generator)
    top = torch.topk(keys.masked_fill_(known_positive, -1.0), k, dim=1, sorted=False)
    if fewest_allowed is not None and fewest_allowed >= k:
        return top.indices
    # a min is several times cheaper than (values < 0).any() on the CPU
    if top.values.numel() and float(top.values.min()) < 0:
        return weighted_draw((~known_positive).float(), k, generator)
    return top.indices


def cap_negatives(requested: int, known_positive: torch.Tensor) -> int:
    """K for a batch: ``requested`` capped at the most allowed columns of a row.

    A sampler asking for :data:`~harness.components.ALL_CANDIDATES` gets
    every candidate that may be a negative (rows with fewer repeat some).

    :param known_positive: shape: (B, C) bool.
    """
    allowed = known_positive.shape[1] - known_positive.sum(dim=1)
    most = int(allowed.max()) if len(allowed) else 0
    return min(requested, most)


def first_occurrence(positions: torch.Tensor) -> torch.Tensor:
    """True where a row's value appears for the first time. shape: (B, K).

    A sampler may repeat a column when a row has fewer candidates than K; the
    repeat is the same negative, so it is trained and counted once.
    """
    b, k = positions.shape
    if positions.numel() == 0:
        return torch.ones(b, k, dtype=torch.bool, device=positions.device)
    slots = torch.arange(k, device=positions.device).expand(b, k)
    # the first slot at which each (row, value) occurs, without sorting
    first = torch.full(
        (b, int(positions.max()) + 1), k, dtype=torch.long, device=positions.device
    ).scatter_reduce_(1, positions, slots, reduce="amin")
    return first.gather(1, positions) == slots
