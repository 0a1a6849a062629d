"""SimANS: sample *ambiguous* negatives, scored about as high as the positive.

Zhou et al., "SimANS: Simple Ambiguous Negatives Sampling for Dense Text
Retrieval", EMNLP 2022 (microsoft/SimXNS).  Over the mined candidates,

    p_i  ∝  exp( -a * (scale * (s_i - s+) - b)^2 )        (kernel="squared")
    p_i  ∝  exp( -a * |scale * (s_i - s+) - b| )          (kernel="laplace")

and m negatives are drawn without replacement.  This avoids both the top of
the ranking (likely false negatives) and the easy tail (no signal).

The paper's a and b live on the scale of raw inner products (logits); our
scores are cosines, so ``scale`` (default 20 = 1/t for t = 0.05, the InfoNCE
temperature) maps them onto that scale first, as METHODS.md suggests.

Quirks of the official code, exposed as options: the wiki/Doc scripts compute
``exp(-(s_i - s+ + b)^2 * a)``, i.e. the sign of b is flipped
(``b_sign="code"``); the MS MARCO passage script uses the Laplace kernel with
a = 3 and b = 0 (``kernel="laplace", a=3``).
"""

from __future__ import annotations

from typing import Literal

import torch

from harness import CandidateBatch, Sampler, hookimpl
from harness.sampling import log_weighted_draw

__all__ = ["SimANS"]


class SimANS(Sampler):
    """Ambiguous negatives around the positive's score.

    :param a: kernel sharpness (paper default 0.5 for NQ/TQ/MS-Doc).
    :param b: offset of the peak from the positive's score (paper: 0 or 1).
    :param scale: multiplies score differences before the kernel (1/t).
    :param kernel: ``"squared"`` (paper) or ``"laplace"`` (MS MARCO passage code).
    :param b_sign: ``"paper"`` uses (Δ - b); ``"code"`` uses (Δ + b) as in the
        released wiki/Doc scripts.
    """

    name = "simans"
    families = frozenset({"retrieval", "sts", "kge", "multilabel"})
    pool = "mined"

    def __init__(
        self,
        *,
        a: float = 0.5,
        b: float = 0.0,
        scale: float = 20.0,
        kernel: Literal["squared", "laplace"] = "squared",
        b_sign: Literal["paper", "code"] = "paper",
    ) -> None:
        if a <= 0 or scale <= 0:
            raise ValueError("a and scale must be > 0")
        if kernel not in ("squared", "laplace") or b_sign not in ("paper", "code"):
            raise ValueError("kernel is 'squared'|'laplace'; b_sign is 'paper'|'code'")
        self.a, self.b, self.scale = a, b, scale
        self.kernel, self.b_sign = kernel, b_sign

    def log_weights(self, batch: CandidateBatch) -> torch.Tensor:
        """Unnormalised log-probabilities. shape: (B, C)."""
        offset = self.b if self.b_sign == "paper" else -self.b
        # float64: far candidates must not underflow to weight 0.
        gap = batch.scores.double() - batch.positive_scores.double()[:, None]
        delta = self.scale * gap - offset
        distance = delta.square() if self.kernel == "squared" else delta.abs()
        return -self.a * distance

    def sample(
        self, batch: CandidateBatch, num_negatives: int, generator: torch.Generator
    ) -> torch.Tensor:
        logits = self.log_weights(batch).masked_fill(
            batch.known_positive, float("-inf")
        )
        # Drawn in log space: far candidates keep a tiny weight, never exactly 0.
        return log_weighted_draw(logits, num_negatives, generator)


@hookimpl
def harness_register_samplers() -> list[type[Sampler]]:
    return [SimANS]
