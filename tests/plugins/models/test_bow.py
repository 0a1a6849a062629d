"""The hashed bag-of-words encoder: features, padding, dropout views, training."""

from __future__ import annotations

import zlib

import pytest
import torch
import torch.nn.functional as F

from harness import TextEncoder
from harness.optim import make_optimizer
from harness.testing import make_context
from negbench_plugins.models import bow
from negbench_plugins.models.bow import BagOfWords, hash_token, tokenize

TEXTS = ["Hard negatives help!", "until they are FALSE negatives", "négatif, 42"]


@pytest.fixture
def context():
    return make_context()


def test_registered_with_the_documented_defaults():
    assert bow.harness_register_models() == [BagOfWords]
    model = BagOfWords()
    assert isinstance(model, TextEncoder)
    assert model.name == "bow" and model.trainable
    assert model.families == frozenset({"retrieval", "sts"})
    assert model.lr == 1e-2 and BagOfWords(lr=0.5).lr == 0.5
    assert (model.dim, model.buckets, model.max_tokens) == (128, 2**16, 128)
    assert model.dropout == 0.1


def test_tokens_are_lower_case_alphanumeric_runs():
    assert tokenize("Hello, WORLD! it's 2024_x") == [
        "hello",
        "world",
        "it",
        "s",
        "2024",
        "x",
    ]
    assert tokenize("négatif") == ["négatif"]


def test_hashing_is_stable_across_processes():
    # CRC-32, not Python's salted hash(): fixed values, every run, every process
    assert hash_token("hello", 2**16) == 42630
    assert hash_token("négatif", 2**16) == 18404
    assert hash_token("hello", 1000) == zlib.crc32(b"hello") % 1000


def test_featurize_is_deterministic(context):
    first = BagOfWords().featurize(TEXTS, side="query", context=context)
    second = BagOfWords(dim=8).featurize(TEXTS, side="document", context=context)
    assert first.dtype == torch.long
    assert torch.equal(first, second)  # depends on the text only
    same = BagOfWords().featurize(
        ["hard NEGATIVES, help"], side="query", context=context
    )
    assert torch.equal(same[0], first[0])


def test_padding_and_truncation(context):
    model = BagOfWords(buckets=100, max_tokens=5)
    features = model.featurize(
        ["one two", "a b c d e f g", "", "!!!"], side="query", context=context
    )
    assert features.shape == (4, 5)
    pad = model.pad_id
    assert pad == 100
    assert bool((features[0, 2:] == pad).all()) and bool((features[0, :2] < 100).all())
    assert bool((features[1] < 100).all())  # truncated to max_tokens, no padding
    assert bool((features[2:] == pad).all())  # no tokens at all


def test_embeddings_are_normalised(context):
    for projection in (False, True):
        model = BagOfWords(dim=16, projection=projection)
        features = model.featurize(TEXTS, side="query", context=context)
        for mode in (model.train, model.eval):
            mode()
            out = model.embed(features, side="query")
            assert out.shape == (3, 16)
            assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    # a text without tokens embeds to zero instead of NaN
    empty = model.embed(model.featurize([""], side="query", context=context), side="q")
    assert torch.equal(empty, torch.zeros(1, 16))


def test_projection_starts_at_the_identity(context):
    torch.manual_seed(0)
    plain = BagOfWords(dim=16)
    torch.manual_seed(0)
    projected = BagOfWords(dim=16, projection=True)
    features = plain.featurize(TEXTS, side="query", context=context)
    plain.eval(), projected.eval()
    assert torch.allclose(
        plain.embed(features, side="query"),
        projected.embed(features, side="query"),
        atol=1e-6,
    )


def test_dropout_gives_two_views_in_train_mode_only(context):
    torch.manual_seed(0)
    model = BagOfWords(dropout=0.3)
    features = model.featurize(
        [" ".join(f"w{i}" for i in range(20))] * 4, side="query", context=context
    )
    model.train()
    first, second = (
        model.embed(features, side="query"),
        model.embed(features, side="query"),
    )
    assert not torch.allclose(first, second)
    model.eval()
    assert torch.equal(
        model.embed(features, side="query"), model.embed(features, side="query")
    )


def test_dropout_never_drops_every_token(context):
    torch.manual_seed(0)
    model = BagOfWords(dropout=0.99)
    features = model.featurize(
        ["one", "one two", "a b c"] * 20, side="query", context=context
    )
    model.train()
    dropped = model._drop_tokens(features)
    real = dropped != model.pad_id
    assert bool(real.any(dim=1).all())
    assert bool((real <= (features != model.pad_id)).all())  # only real tokens kept
    out = model.embed(features, side="query")
    assert torch.allclose(out.norm(dim=-1), torch.ones(len(features)), atol=1e-5)


def test_learns_a_toy_contrastive_objective(context):
    """In-batch InfoNCE on pairs that share one rare word: accuracy must rise."""
    torch.manual_seed(0)
    n = 32
    anchors = [f"topic{i} common words shared everywhere" for i in range(n)]
    positives = [f"about topic{i} and other common filler" for i in range(n)]
    model = BagOfWords(dim=32, buckets=1024, dropout=0.0)
    a = model.featurize(anchors, side="query", context=context)
    p = model.featurize(positives, side="document", context=context)
    optimizer = make_optimizer([model], lr=model.lr)  # SparseAdam for the table

    def loss_and_accuracy() -> tuple[torch.Tensor, float]:
        scores = model.embed(a, side="query") @ model.embed(p, side="document").T
        target = torch.arange(n)
        accuracy = float((scores.argmax(1) == target).float().mean())
        return F.cross_entropy(scores / 0.05, target), accuracy

    model.train()
    before, accuracy_before = loss_and_accuracy()
    for _ in range(30):
        loss, _ = loss_and_accuracy()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, accuracy_after = loss_and_accuracy()
    assert after.item() < before.item() - 0.5
    assert accuracy_after > accuracy_before
    assert accuracy_after >= 0.9
