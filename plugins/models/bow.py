"""``bow``: a hashed bag-of-words encoder trained from scratch.

Every token is hashed into one of ``buckets`` ids (the hashing trick), the ids
index an ``EmbeddingBag`` that averages their vectors, an optional linear layer
mixes the result, and the sentence vector is L2-normalised so scores are
cosines.  Nothing is pretrained, so a sampler or loss that only works on top of
a strong prior (MiniLM) shows it here.  Featurizing is a pure function of the
text (a stable CRC-32 hash, not Python's salted ``hash()``), so features are
identical across processes and sessions and need no disk cache.

In train mode each non-padding token is dropped with probability ``dropout``
(replaced by the padding id; at least one token per text survives), so two
``embed`` calls of the same features give two views of the sentence, as
unsupervised SimCSE needs; in eval mode nothing is dropped.

References: Joulin et al., "Bag of Tricks for Efficient Text Classification"
(fastText), EACL 2017; Weinberger et al., "Feature Hashing for Large Scale
Multitask Learning", ICML 2009; Gao et al., "SimCSE", EMNLP 2021 (dropout
views).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from harness import Model, RunContext, TextEncoder, hookimpl

__all__ = ["BagOfWords", "hash_token", "tokenize"]

_TOKEN = re.compile(r"[^\W_]+")  # runs of letters and digits (any script)


def tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and split it on everything that is not alphanumeric."""
    return _TOKEN.findall(text.lower())


def hash_token(token: str, buckets: int) -> int:
    """Stable bucket id of ``token`` in ``[0, buckets)`` (CRC-32, unsalted)."""
    return zlib.crc32(token.encode("utf-8")) % buckets


class BagOfWords(TextEncoder):
    """Mean of hashed-token embeddings, optionally projected, L2-normalised.

    Symmetric: queries and documents share one encoder.  A text without any
    alphanumeric token embeds to the zero vector.

    The table has sparse gradients, so the protocol trains it with
    SparseAdam (``harness.optim``); a step costs the rows a batch touches.
    The default learning rate is 1e-2, ten times the harness default: the
    embeddings start random and each row only receives gradient when its token
    occurs in the batch (and then divided by the text's length, by the mean),
    so with Adam-style updates a smaller rate leaves most rows near their
    initialisation within a few epochs.  fastText trains its (SGD) embeddings
    at 0.1 for the same reason.

    :param dim: embedding dimension.
    :param buckets: number of hash buckets (ids ``0..buckets-1``; id
        ``buckets`` is padding).
    :param max_tokens: tokens kept per text (longer texts are truncated).
    :param dropout: probability of dropping each token in train mode.
    :param projection: add a trainable ``dim x dim`` linear layer after the
        bag (initialised to the identity).
    """

    name = "bow"
    trainable = True
    default_lr = 1e-2
    version = "1"

    def __init__(
        self,
        *,
        lr: float | None = None,
        dim: int = 128,
        buckets: int = 2**16,
        max_tokens: int = 128,
        dropout: float = 0.1,
        projection: bool = False,
    ) -> None:
        super().__init__(lr=lr)
        if min(dim, buckets, max_tokens) < 1:
            raise ValueError("dim, buckets and max_tokens must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        self.dim = dim
        self.buckets = buckets
        self.max_tokens = max_tokens
        self.dropout = dropout
        self.pad_id = buckets
        # sparse=True: a step updates only the rows the batch uses (SparseAdam,
        # see harness.optim) instead of all buckets x dim weights.
        self.bag = torch.nn.EmbeddingBag(
            buckets + 1, dim, mode="mean", padding_idx=self.pad_id, sparse=True
        )
        self.projection: torch.nn.Linear | None = None
        if projection:
            self.projection = torch.nn.Linear(dim, dim)
            with torch.no_grad():
                self.projection.weight.copy_(torch.eye(dim))
                self.projection.bias.zero_()

    def ids(self, text: str) -> list[int]:
        """Bucket ids of the first ``max_tokens`` tokens of ``text``."""
        return [hash_token(t, self.buckets) for t in tokenize(text)[: self.max_tokens]]

    def featurize(
        self, texts: Sequence[str], *, side: str, context: RunContext
    ) -> torch.Tensor:
        """shape: (N, max_tokens) long bucket ids, right-padded with ``buckets``."""
        out = torch.full((len(texts), self.max_tokens), self.pad_id, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.ids(text)
            if ids:
                out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def _drop_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Replace tokens by padding with probability ``dropout``, keep >= 1."""
        real = ids != self.pad_id
        noise = torch.rand(ids.shape, device=ids.device)
        keep = real & (noise >= self.dropout)
        # a text whose every token was dropped keeps one of them at random
        emptied = real.any(dim=1) & ~keep.any(dim=1)
        if bool(emptied.any()):
            rescue = torch.where(real, noise, torch.full_like(noise, -1.0)).argmax(1)
            keep[emptied, rescue[emptied]] = True
        return torch.where(keep, ids, torch.full_like(ids, self.pad_id))

    def embed(self, features: torch.Tensor, *, side: str) -> torch.Tensor:
        ids = features.long()
        if self.training and self.dropout > 0:
            ids = self._drop_tokens(ids)
        vectors = self.bag(ids)
        if self.projection is not None:
            vectors = self.projection(vectors)
        return F.normalize(vectors, dim=-1)


@hookimpl
def harness_register_models() -> list[type[Model]]:
    return [BagOfWords]
