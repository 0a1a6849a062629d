"""CoSENT: a batch-level ranking loss over graded pairs (Su, 2022).

All (anchor, candidate) pairs of the batch are pooled: each anchor's positive
with its gold label (``batch.positive_labels``, or 1.0 when the task has
none) and each valid negative column with label 0.  Then::

    L = log( 1 + Σ_{(a, b): y_a > y_b} exp(scale · (s_b - s_a)) )

i.e. every pair labelled more similar must score higher than every pair
labelled less similar.  Conan-embedding trains its STS tasks with it.

References: Su, "CoSENT: a more efficient sentence vector scheme than
Sentence-BERT", 2022 (kexue.fm/archives/8847); Li et al., "Conan-embedding:
General Text Embedding with More and Better Negative Samples", arXiv
2408.15710 (METHODS.md §10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from harness import Loss, hookimpl

if TYPE_CHECKING:
    from harness.types import ScoredBatch

__all__ = ["CoSENT"]


def _logsumexp(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor | None:
    """logsumexp of ``values[keep]``, or None when nothing is kept."""
    if not bool(keep.any()):
        return None
    return torch.logsumexp(values.masked_fill(~keep, float("-inf")).reshape(-1), 0)


class CoSENT(Loss):
    """CoSENT over the positives (graded) and the valid negatives (label 0).

    A batch loss: the value couples every pair of the batch, so
    :meth:`forward_batch` returns that one value for every anchor (shape (B,))
    and the harness's mean over anchors equals it.  Per-anchor entries are
    therefore not per-anchor losses.

    Positive-versus-negative terms factorise,
    ``Σ_a Σ_b e^{scale(s_b - s_a)} = e^{LSE_a(-scale s_a) + LSE_b(scale s_b)}``,
    so the cost is O(B² + B·K), not quadratic in the number of columns.
    Negatives are all labelled 0 and never compared with each other.

    :param scale: λ on the cosines; CoSENT's default 20.
    :param in_batch: also use the other anchors' positives and negatives as
        (label-0) negatives; off, since CoSENT's signal is the order of the
        labelled pairs and sampled negatives already supply label-0 pairs.
    """

    name = "cosent"
    families = frozenset({"retrieval", "sts"})
    in_batch_default = False

    def __init__(self, *, scale: float = 20.0, in_batch: bool | None = None) -> None:
        super().__init__(in_batch=in_batch)
        if scale <= 0:
            raise ValueError("scale must be > 0")
        self.scale = scale

    def forward_batch(self, batch: ScoredBatch) -> torch.Tensor:
        positive, mask = batch.positive, batch.mask
        negative = batch.negative.masked_fill(~mask, 0.0)  # masked may be inf/NaN
        labels = (
            torch.ones_like(positive)
            if batch.positive_labels is None
            else batch.positive_labels.to(positive)
        )
        scaled = self.scale * positive
        terms = [torch.zeros((), dtype=positive.dtype, device=positive.device)]
        # positive a above positive b: exp(scale (s_b - s_a)) for y_a > y_b
        above = labels[:, None] > labels[None, :]
        pairs = _logsumexp(scaled[None, :] - scaled[:, None], above)
        if pairs is not None:
            terms.append(pairs)
        negatives = self.scale * negative
        # positives labelled above 0 against every negative (label 0) ...
        high = _logsumexp(-scaled, labels > 0)
        if high is not None:
            rest = _logsumexp(negatives, mask)
            if rest is not None:
                terms.append(high + rest)
        # ... and negatives against positives labelled below 0
        low = _logsumexp(scaled, labels < 0)
        if low is not None:
            rest = _logsumexp(-negatives, mask)
            if rest is not None:
                terms.append(low + rest)
        loss = torch.logsumexp(torch.stack(terms), 0)
        return loss.expand(batch.size)


@hookimpl
def harness_register_losses() -> list[type[Loss]]:
    return [CoSENT]
