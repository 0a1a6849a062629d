"""Classic KGE corruption samplers: ``uniform``, ``bernoulli`` and ``filtered``.

A negative of a fact (h, r, t) replaces its head or its tail with a uniformly
drawn entity.  The three differ in two choices the protocol honours for
them (:class:`harness.Sampler` ``sides`` and ``filtered``):

* ``uniform`` (Bordes et al., "Translating Embeddings for Modeling
  Multi-relational Data", NeurIPS 2013): head or tail with probability 1/2
  per negative, unfiltered: a corruption that happens to be another true
  training fact is kept (and counted in ``known_fn_rate``);
* ``bernoulli`` (Wang et al., "Knowledge Graph Embedding by Translating on
  Hyperplanes", AAAI 2014; OpenKE ``Base.cpp``): the head with probability
  tph / (tph + hpt) of the fact's relation, so the side with fewer true
  answers is corrupted more often and fewer corruptions are true facts;
* ``filtered``: ``uniform``'s side split, but never a known training fact
  (PyKEEN's ``filtered=True`` negative samplers).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from harness import CandidateBatch, Sampler, hookimpl
from harness.sampling import uniform_negatives

__all__ = ["Bernoulli", "Filtered", "Uniform"]


class Uniform(Sampler):
    """Uniform corruption of the head or the tail, unfiltered (TransE's "unif")."""

    name = "uniform"
    families = frozenset({"kge"})
    pool = "uniform"
    filtered = False
    sides: ClassVar[Literal["both", "uniform", "bernoulli"]] = "uniform"
    reads_scores = False

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        # the pool is already a uniform draw; any K allowed columns of it are too
        return uniform_negatives(
            batch.known_positive,
            num_negatives,
            generator,
            fewest_allowed=batch.fewest_allowed,
        )


class Bernoulli(Uniform):
    """Corrupt the head with probability tph / (tph + hpt) (TransH's "bern")."""

    name = "bernoulli"
    sides = "bernoulli"


class Filtered(Uniform):
    """Uniform corruption that never produces a known training fact."""

    name = "filtered"
    filtered = True


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [Uniform, Bernoulli, Filtered]
