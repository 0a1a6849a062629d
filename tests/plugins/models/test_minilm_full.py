"""Fully fine-tuned MiniLM: eval-mode parity with ``minilm``, training, caching."""

from __future__ import annotations

import pytest
import torch

from harness.testing import make_context
from negbench_plugins.models import minilm_full
from negbench_plugins.models.minilm import MiniLM
from negbench_plugins.models.minilm_full import MiniLMFull

TEXTS = [
    "hard negatives help",
    "until they are false negatives",
    "a third sentence, noticeably longer than the other two are",
    "short",
]


@pytest.fixture
def context(cache_dir):
    ctx = make_context()
    ctx.cache_dir = cache_dir
    return ctx


@pytest.fixture(scope="module")
def loaded() -> MiniLMFull:
    model = MiniLMFull(batch_size=2)
    model.transformer_model()
    return model


def test_registered_with_the_documented_defaults():
    assert minilm_full.harness_register_models() == [MiniLMFull]
    model = MiniLMFull()
    assert model.name == "minilm-full" and model.trainable
    assert model.lr == 2e-5 and model.max_length == 256
    assert model.families == frozenset({"retrieval", "sts"})


def test_features_are_token_ids_and_masks(loaded, context):
    features = loaded.featurize(TEXTS, side="query", context=context)
    assert features.dtype == torch.long
    assert features.ndim == 3 and features.shape[:2] == (4, 2)
    lengths = features[:, 1].sum(dim=1)
    assert int(lengths.max()) == features.shape[2]  # padded to the longest text
    assert int(lengths[3]) == 3  # [CLS] short [SEP]
    assert bool((features[3, 0, 3:] == 0).all())  # padded with the pad id


def test_max_length_truncates(context):
    model = MiniLMFull(max_length=8)
    features = model.featurize([" ".join(["word"] * 50)], side="query", context=context)
    assert features.shape == (1, 2, 8)


def test_eval_mode_matches_the_frozen_model(loaded, context):
    reference = MiniLM().featurize(TEXTS, side="document", context=context)
    features = loaded.featurize(TEXTS, side="document", context=context)
    loaded.eval()
    with torch.no_grad():  # the chunked, length-sorted path (batch_size=2)
        chunked = loaded.embed(features, side="document")
    whole = loaded.embed(features, side="query").detach()  # one pass, with autograd
    assert chunked.shape == (4, 384)
    assert torch.allclose(chunked, reference, atol=1e-5)
    assert torch.allclose(whole, reference, atol=1e-5)
    assert torch.allclose(chunked.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_dropout_gives_two_views_in_train_mode(loaded, context):
    features = loaded.featurize(TEXTS, side="query", context=context)
    loaded.train()
    assert loaded.encoder.training  # the transformer follows the model's mode
    with torch.no_grad():
        first = loaded.embed(features[:2], side="query")
        second = loaded.embed(features[:2], side="query")
    assert not torch.allclose(first, second)
    loaded.eval()
    assert not loaded.encoder.training


def test_one_training_step_updates_the_transformer(context):
    model = MiniLMFull(lr=1e-4)
    assert list(model.parameters()) == []  # weights load lazily, in setup()
    model.setup(context)
    features = model.featurize(TEXTS, side="query", context=context)
    names = {name for name, _ in model.named_parameters()}
    assert any(name.startswith("encoder.") for name in names)
    assert sum(p.numel() for p in model.parameters()) > 20_000_000
    # a weight inside the transformer (module paths vary across ST versions)
    weight = next(
        p
        for name, p in model.named_parameters()
        if name.endswith("layer.0.attention.self.query.weight")
    )
    before = weight.detach().clone()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=model.lr)  # cheap on CPU
    anchors = model.embed(features[:2], side="query")
    positives = model.embed(features[2:], side="document")
    scores = anchors @ positives.T / 0.05
    loss = torch.nn.functional.cross_entropy(scores, torch.arange(2))
    optimizer.zero_grad()
    loss.backward()
    assert weight.grad is not None and float(weight.grad.abs().sum()) > 0
    optimizer.step()
    assert not torch.equal(weight.detach(), before)


def test_features_are_cached_by_content(context, monkeypatch):
    texts = ["cached token ids", "are read back without the model"]
    first = MiniLMFull().featurize(texts, side="query", context=context)

    def refuse(device):
        raise AssertionError("a cache hit must not load the transformer")

    monkeypatch.setattr(minilm_full, "load_sentence_transformer", refuse)
    again = MiniLMFull().featurize(texts, side="document", context=context)
    assert torch.equal(first, again)
    with pytest.raises(AssertionError, match="cache hit"):  # another length: a miss
        MiniLMFull(max_length=64).featurize(texts, side="query", context=context)
