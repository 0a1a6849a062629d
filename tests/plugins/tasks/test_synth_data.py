"""The SynthIR-Pool generator: determinism, the oracle labels, BM25, speed."""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter

import numpy as np
import pytest

from negbench_plugins.tasks.synth_data import (
    BM25Index,
    SynthConfig,
    SynthData,
    generate,
)

SMALL = SynthConfig(n_docs=600, topics=12, subtopics=10, n_train=200, n_test=50)


@pytest.fixture(scope="module")
def small() -> SynthData:
    return generate(SMALL)


def tokens(text: str) -> list[int]:
    assert all(t.startswith("w") for t in text.split())
    return [int(t[1:]) for t in text.split()]


def splits(data: SynthData):
    return (data.train, data.test)


def test_same_seed_same_data_different_seed_different_data(small):
    again = generate(SMALL)
    assert again.doc_texts == small.doc_texts
    for one, two in zip(splits(small), splits(again), strict=True):
        assert one.texts == two.texts
        assert one.full == two.full and one.visible == two.visible
        assert np.array_equal(one.source, two.source)
    other = generate(dataclasses.replace(SMALL, data_seed=1))
    assert other.doc_texts != small.doc_texts
    assert other.train.texts != small.train.texts
    assert not np.array_equal(other.doc_subtopic, small.doc_subtopic)


def test_full_relevance_is_exactly_the_source_subtopic(small):
    n_sub = SMALL.topics * SMALL.subtopics
    sizes = np.bincount(small.doc_subtopic, minlength=n_sub)
    assert sizes.min() == sizes.max() == SMALL.n_docs // n_sub  # balanced
    assert np.array_equal(small.doc_topic, small.doc_subtopic // SMALL.subtopics)
    for split in splits(small):
        for src, full in zip(split.source.tolist(), split.full, strict=True):
            expected = set(
                np.flatnonzero(small.doc_subtopic == small.doc_subtopic[src])
            )
            assert full == expected


def test_visible_labels_are_the_bm25_pool_plus_the_source(small):
    index = BM25Index(
        [np.array(tokens(t)) for t in small.doc_texts],
        SMALL.vocab,
        k1=SMALL.bm25_k1,
        b=SMALL.bm25_b,
    )
    for split in splits(small):
        top = index.top([np.array(tokens(t)) for t in split.texts], SMALL.pool_depth)
        for row, src in enumerate(split.source.tolist()):
            visible, hidden, full = (
                split.visible[row],
                split.hidden[row],
                split.full[row],
            )
            assert src in visible
            assert visible <= full and hidden == full - visible
            assert visible == (full & set(top[row].tolist())) | {src}


def test_queries_have_disjoint_distinct_sources_and_borrow_from_them(small):
    train, test = small.train.source.tolist(), small.test.source.tolist()
    assert len(set(train)) == SMALL.n_train and len(set(test)) == SMALL.n_test
    assert not set(train) & set(test)
    for split in splits(small):
        for text, src in zip(split.texts, split.source.tolist(), strict=True):
            query = tokens(text)
            assert len(query) == SMALL.query_doc_tokens + SMALL.query_subtopic_tokens
            assert set(query[: SMALL.query_doc_tokens]) <= set(
                tokens(small.doc_texts[src])
            )
    assert all(len(tokens(t)) == SMALL.doc_length for t in small.doc_texts)


def test_pool_depth_sets_the_hidden_share_monotonically():
    shares = []
    for depth in (1, 3, 10, 30, 100, SMALL.n_docs):
        stats = generate(dataclasses.replace(SMALL, pool_depth=depth)).stats()
        shares.append(stats["train_hidden_share"])
    assert shares == sorted(shares, reverse=True)
    assert shares[0] > shares[-2] and shares[-1] == 0.0  # a full pool hides nothing


def test_default_data_is_in_the_documented_regime():
    start = time.perf_counter()
    data = generate(SynthConfig())
    assert time.perf_counter() - start < 2.0
    stats = data.stats()
    assert stats["train_relevant_per_query"] == 10.0
    assert 0.3 <= stats["train_hidden_share"] <= 0.6
    assert 0.3 <= stats["test_hidden_share"] <= 0.6
    assert 1.0 <= stats["train_visible_per_query"] < 10.0


def brute_force_bm25(
    docs: list[list[int]], query: list[int], k1: float, b: float
) -> list[float]:
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    scores = []
    for doc in docs:
        tf = Counter(doc)
        total = 0.0
        for term in query:
            df = sum(1 for d in docs if term in d)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            f = tf[term]
            if f == 0:
                continue  # (k1 = 0 would make the term 0 / 0)
            total += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(total)
    return scores


@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (1.2, 0.75), (0.0, 0.0)])
def test_bm25_matches_a_brute_force_reference(k1, b):
    rng = np.random.default_rng(3)
    docs = [rng.integers(0, 12, size=rng.integers(1, 9)).tolist() for _ in range(15)]
    queries = [rng.integers(0, 14, size=4).tolist() for _ in range(6)] + [[3, 3, 7]]
    index = BM25Index([np.array(d) for d in docs], 14, k1=k1, b=b)
    ours = index.scores([np.array(q) for q in queries])
    for row, query in enumerate(queries):
        assert ours[row] == pytest.approx(brute_force_bm25(docs, query, k1, b))
    top = index.top([np.array(q) for q in queries], 5)
    for row in range(len(queries)):
        expected = sorted(range(len(docs)), key=lambda d: (-ours[row, d], d))[:5]
        assert top[row].tolist() == expected


def test_fingerprint_covers_every_parameter():
    base = SynthConfig()
    assert base.fingerprint() == SynthConfig().fingerprint()
    changed = {
        "data_seed": 1,
        "pool_depth": 20,
        "n_docs": 3001,
        "topic_share": 0.25,
        "bm25_k1": 1.2,
    }
    prints = {
        dataclasses.replace(base, **{k: v}).fingerprint() for k, v in changed.items()
    }
    assert len(prints) == len(changed) and base.fingerprint() not in prints


@pytest.mark.parametrize(
    "bad",
    [
        {"n_docs": 100, "n_train": 90, "n_test": 20},
        {"facet_words": 13},
        {"topic_share": 0.7, "subtopic_share": 0.4},
        {"vocab": 1000},
        {"pool_depth": 0},
    ],
)
def test_invalid_configs_are_refused(bad):
    with pytest.raises(ValueError):
        SynthConfig(**bad)
