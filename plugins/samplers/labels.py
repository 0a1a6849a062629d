"""Negative-label samplers of the multi-label family: ``all`` and ``partial-fc``.

Both follow the common sampler contract: they return, per example, column
positions of negative labels among the candidates (the labels), never an
observed positive.  A row with fewer distinct negatives than K repeats one;
the protocol counts every label once.
"""

from __future__ import annotations

import math

import torch

from harness import ALL_CANDIDATES, CandidateBatch, Sampler, hookimpl

__all__ = ["AllLabels", "PartialFC"]


def _pad_rows(selected: torch.Tensor) -> torch.Tensor:
    """Positions of each row's True columns, padded by repeating its first.

    shape: (B, C) bool with >= 1 True per row -> (B, max row count) long.
    """
    b, c = selected.shape
    counts = selected.sum(dim=1)
    k = int(counts.max())
    # the j-th selected column of a row goes to slot j; the rest to a spare slot
    slot = torch.where(selected, selected.cumsum(dim=1) - 1, k)
    out = torch.zeros(b, k + 1, dtype=torch.long)
    out.scatter_(1, slot, torch.arange(c).expand(b, c))
    out = out[:, :k]
    return torch.where(torch.arange(k) < counts[:, None], out, out[:, :1])


class AllLabels(Sampler):
    """Every negative label of every example: plain binary relevance.

    The standard setting of multi-label losses (BCE, focal, ASL): each
    example's loss covers all its labels, so no negative is left out and none
    is weighted by sampling.
    """

    name = "all"
    families = frozenset({"multilabel"})
    pool = "uniform"

    def num_negatives(self, requested: int) -> int:
        return ALL_CANDIDATES

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        positions = _pad_rows(~batch.known_positive)
        return _fit(positions, num_negatives)


def _fit(positions: torch.Tensor, k: int) -> torch.Tensor:
    """Cut or pad (repeating column 0) a (B, M) answer to exactly (B, k)."""
    if positions.shape[1] >= k:
        return positions[:, :k]
    pad = positions[:, :1].expand(-1, k - positions.shape[1])
    return torch.cat([positions, pad], dim=1)


class PartialFC(Sampler):
    """Partial FC: positives of the batch plus a uniform sample of other labels.

    An et al., "Partial FC: Training 10 Million Identities on a Single
    Machine", ICCVW 2021 (and "Killing Two Birds with One Stone", CVPR 2022).
    Per step, one label set S is shared by the whole batch: every label
    that is positive for some example of the batch, plus labels drawn
    uniformly from the rest until ``|S| = ceil(rate x L)`` (only the batch's
    positives when they already fill it; ``torch.topk`` of random keys with
    the positives' keys forced to 2, as ``partial_fc_v2.py`` does).  Each
    example is trained against S: its negatives are ``S`` minus its own
    positives, so the other examples' positives are its hard-ish negatives.
    Only the sampled labels' weights get a gradient; as in partial_fc_v2 the
    optimiser's state still moves the others (AdamW momentum, weight decay).

    With label spaces of at most ~1,000 labels the compute saving that
    motivates Partial FC (millions of classes) is not what is measured here:
    the question is what the sampled subset of negatives does to quality.

    :param rate: sample rate r (the paper uses 0.1; configs 0.2-0.3).
    """

    name = "partial-fc"
    families = frozenset({"multilabel"})
    pool = "uniform"

    def __init__(self, *, rate: float = 0.1) -> None:
        if not 0.0 < rate <= 1.0:
            raise ValueError("rate must be in (0, 1]")
        self.rate = rate

    def num_negatives(self, requested: int) -> int:
        return ALL_CANDIDATES

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        ids = batch.candidate_ids
        num_labels = int(ids.max()) + 1
        keys = torch.rand(num_labels, generator=generator)
        keys[ids[batch.known_positive].unique()] = 2.0  # batch positives first
        size = max(math.ceil(self.rate * num_labels), int((keys == 2.0).sum()))
        shared = torch.zeros(num_labels, dtype=torch.bool)
        shared[torch.topk(keys, min(size, num_labels)).indices] = True
        selected = shared[ids] & ~batch.known_positive
        # an example positive for every label of S gets one uniform negative
        empty = ~selected.any(dim=1)
        if bool(empty.any()):
            noise = torch.rand(selected.shape, generator=generator)
            noise = noise.masked_fill(batch.known_positive, -1.0)
            fallback = noise.argmax(dim=1)
            rows = empty.nonzero()[:, 0]
            selected[rows, fallback[rows]] = True
        return _fit(_pad_rows(selected), num_negatives)


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [AllLabels, PartialFC]
