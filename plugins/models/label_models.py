"""Multi-label classifiers over feature vectors: ``linear`` and ``mlp``.

The multi-label family's MULAN tasks hand these models their feature vectors
(standardised with the train split's statistics); the text tasks hand them
frozen all-MiniLM-L6-v2 sentence embeddings, so ``linear`` there is a linear
probe.  One sigmoid logit per label, as in binary relevance with a shared
representation (Zhang & Zhou, "A Review on Multi-Label Learning Algorithms",
TKDE 2014), the setting the ASL, focal and partial-label losses are defined
in.
"""

from __future__ import annotations

import torch

from harness import LabelModel, Model, hookimpl

__all__ = ["LinearLabels", "MLPLabels"]


class _LabelHead(LabelModel):
    """Shared plumbing: parameters are created by :meth:`build`."""

    default_lr = 1e-3

    def __init__(self, *, lr: float | None = None) -> None:
        super().__init__(lr=lr)
        self.network: torch.nn.Module | None = None

    @property
    def built(self) -> bool:
        return self.network is not None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.network is None:
            raise RuntimeError(f"{self.name}: build() was not called")
        out: torch.Tensor = self.network(features)
        return out


class LinearLabels(_LabelHead):
    """One linear logit per label: ``W x + b`` (binary relevance)."""

    name = "linear"

    def build(self, num_features: int, num_labels: int) -> None:
        self.network = torch.nn.Linear(num_features, num_labels)


class MLPLabels(_LabelHead):
    """A one-hidden-layer perceptron with a shared hidden representation.

    ``W2 dropout(relu(W1 x + b1)) + b2``; the hidden layer is shared by all
    labels, which is what lets label correlations help (BP-MLL, Zhang & Zhou,
    TKDE 2006, with modern activations and dropout).

    :param hidden: width of the hidden layer.
    :param dropout: dropout on the hidden layer while training.
    """

    name = "mlp"

    def __init__(
        self, *, lr: float | None = None, hidden: int = 256, dropout: float = 0.2
    ) -> None:
        super().__init__(lr=lr)
        if hidden < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError("need hidden >= 1 and dropout in [0, 1)")
        self.hidden = hidden
        self.dropout = dropout

    def build(self, num_features: int, num_labels: int) -> None:
        self.network = torch.nn.Sequential(
            torch.nn.Linear(num_features, self.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, num_labels),
        )


@hookimpl
def harness_register_models() -> list[type[Model]]:
    return [LinearLabels, MLPLabels]
