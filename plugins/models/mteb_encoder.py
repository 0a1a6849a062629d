"""Present a harness :class:`~harness.TextEncoder` to MTEB as an encoder.

MTEB (Muennighoff et al., EACL 2023) evaluates anything that implements its
``EncoderProtocol``: ``encode`` over a DataLoader of text batches, returning
one embedding per text, plus ``similarity``, ``similarity_pairwise`` and
``mteb_model_meta``.  :class:`MtebEncoder` implements it on top of the two
calls every harness text model has, ``featurize`` then ``embed`` (eval mode,
no gradients), so a model trained by any negbench task can be scored on any
MTEB retrieval or STS task.  Queries and documents are told apart by MTEB's
``prompt_type``; scores use the harness model's own ``similarity`` and
``score``, so MTEB ranks exactly as the harness does.

This module is a helper, not a plugin (it registers nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness import Model, RunContext, TextEncoder

from ..tasks.contrastive import embed_all, text_encoder

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["MtebEncoder"]

SIDES = ("query", "document")


def _tensor(array: Any) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.float()
    return torch.as_tensor(np.asarray(array, dtype=np.float32))


class MtebEncoder:
    """MTEB's encoder protocol over a harness text model.

    :param model: the harness model (a :class:`~harness.TextEncoder`).
    :param context: the run's context (device, feature cache, progress).
    :param side: the side used when MTEB gives no ``prompt_type`` (symmetric
        tasks such as STS): ``"query"`` (default) or ``"document"``.
    """

    def __init__(
        self, model: Model, context: RunContext, *, side: str = "query"
    ) -> None:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        self.model: TextEncoder = text_encoder(model)
        self.context = context
        self.side = side
        self._meta: Any = None

    @property
    def mteb_model_meta(self) -> Any:
        """An ``mteb.ModelMeta`` naming the model ``negbench/<name>``."""
        if self._meta is None:
            from mteb.models.model_meta import ModelMeta

            self._meta = ModelMeta.create_empty(
                overwrites={
                    "name": f"negbench/{self.model.name}",
                    "revision": f"v{self.model.version}",
                    "framework": ["PyTorch"],
                    "modalities": ["text"],
                }
            )
        return self._meta

    def _side(self, prompt_type: Any) -> str:
        value = getattr(prompt_type, "value", prompt_type)
        return value if value in SIDES else self.side

    def encode(
        self,
        inputs: Iterable[dict[str, Any]],
        *,
        task_metadata: Any = None,
        hf_split: str = "",
        hf_subset: str = "",
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embeddings of every text in MTEB's batches. shape: (N, D) float32."""
        texts: list[str] = []
        for batch in inputs:
            if "text" not in batch:
                raise ValueError(
                    f"MtebEncoder encodes text only; got a batch with {sorted(batch)}"
                )
            texts.extend(str(t) for t in batch["text"])
        side = self._side(prompt_type)
        name = getattr(task_metadata, "name", "mteb")
        self.context.progress(f"{name}: {len(texts)} {side}s")
        model, was_training = self.model, self.model.training
        model.eval()
        try:
            with torch.no_grad():
                features = model.featurize(texts, side=side, context=self.context)
                embeddings = embed_all(model, features, side, self.context.device)
        finally:
            model.train(was_training)
        return embeddings.cpu().numpy().astype(np.float32, copy=False)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        """All-pairs scores with the model's own similarity. shape: (N, M)."""
        device = self.context.device
        with torch.no_grad():
            scores = self.model.similarity(
                _tensor(embeddings1).to(device), _tensor(embeddings2).to(device)
            )
        return scores.float().cpu()

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> torch.Tensor:
        """Score of each row with the same row of the other side. shape: (N,)."""
        device = self.context.device
        with torch.no_grad():
            scores = self.model.score(
                _tensor(embeddings1).to(device),
                _tensor(embeddings2).to(device).unsqueeze(1),
            )
        return scores[:, 0].float().cpu()
