"""linear and mlp: multi-label heads over feature vectors."""

from __future__ import annotations

import pytest
import torch

from negbench_plugins.models.label_models import LinearLabels, MLPLabels


@pytest.mark.parametrize("cls", [LinearLabels, MLPLabels])
def test_one_logit_per_label_after_build(cls):
    model = cls()
    assert not model.built
    with pytest.raises(RuntimeError, match="build"):
        model(torch.zeros(2, 5))
    model.build(5, 3)
    assert model.built
    out = model(torch.randn(4, 5))
    assert out.shape == (4, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mlp_rejects_bad_settings():
    with pytest.raises(ValueError):
        MLPLabels(hidden=0)
    with pytest.raises(ValueError):
        MLPLabels(dropout=1.0)
