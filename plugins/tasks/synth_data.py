"""SynthIR-Pool: a generated retrieval corpus with complete, known relevance.

The data behind the ``synth-fn`` task (METHODS.md §17, "SynthIR" and
"SynthIR-Pool"), in pure numpy.  Real benchmarks label only what their
assessors saw: MS MARCO judged passages retrieved by a lexical system, so a
relevant passage outside that pool is silently unlabelled.  Samplers that
take the top of the current model's ranking as negatives (top-k hard) then
train on those *hidden positives* — the effect SimANS (§1) and CET's
pooling-bias correction (§2) claim to fix.  Here the full relevance is known,
so the share of sampled negatives that are hidden positives is exact.

Generation (everything from one ``numpy.random.default_rng(data_seed)``)
-------------------------------------------------------------------------

* **Latent structure.**  ``topics`` x ``subtopics`` subtopics; the documents
  are spread over them evenly (sizes differ by at most one) in a random
  order.  A query's *full* relevance is every document of its source
  document's subtopic: with the defaults, 3,000 / (30 x 10) = 10 relevant
  documents per query.
* **Words.**  ``vocab`` word ids, written ``w0``, ``w1``...; id order is
  frequency order.  Background words follow a Zipf law (exponent ``zipf``)
  over the whole vocabulary.  Each topic owns ``topic_words`` content words
  and each subtopic ``subtopic_words``, drawn without replacement from the
  ids beyond the ``stopwords`` most frequent ones, so content words are
  distinct across topics and subtopics (background noise may still hit them).
* **Documents.**  ``doc_length`` tokens; each is a background word with
  probability 1 - ``topic_share`` - ``subtopic_share``, a uniform word of the
  document's topic with probability ``topic_share``, or a word of its
  subtopic with probability ``subtopic_share``.  Each document uses only a
  random *facet* of ``facet_words`` of its subtopic's words: two documents of
  the same subtopic share a subtopic word only by chance.  This is the
  vocabulary mismatch that makes lexical matching informative but imperfect,
  and that a trained encoder can overcome (it learns that a subtopic's words
  go together, from the training pairs).
* **Queries.**  ``n_train`` + ``n_test`` distinct source documents (train and
  test never share one).  A query is ``query_doc_tokens`` tokens drawn from its
  source document (without replacement) plus ``query_subtopic_tokens`` words
  drawn uniformly from the source's *whole* subtopic vocabulary, so a query is
  answerable beyond its source document — partly by words its source lacks.
* **Weak lexical retriever.**  Okapi BM25 (Robertson et al.) with the
  Anserini/Pyserini defaults k1 = 0.9, b = 0.4 and the Lucene idf
  log(1 + (N - df + 0.5) / (df + 0.5)); a query term occurring twice counts
  twice (as in ``rank_bm25``).
* **Pooled labels.**  For every query (train and test) the *visible*
  positives are the relevant documents among BM25's top ``pool_depth``, plus
  always the source document (MS MARCO's seed passage; every query keeps a
  label).  *Hidden* positives are the rest of the full relevance.  The
  pool depth sets the hidden share: deeper pools label more.

Defaults and why
----------------

Sized so that generation takes a fraction of a second and a bag-of-words
encoder trains in seconds to a minute on CPU: 3,000 documents of 40 tokens,
1,000 train and 200 test queries of 4 tokens (2 from the source, 2 subtopic
words), 30 topics x 10 subtopics, so 10 relevant documents per query and
3.3 training queries per subtopic (fewer left a from-scratch encoder unable
to learn which subtopic words go together: with 5 relevant per query it
stayed far below BM25, and its top ranks held almost no hidden positives).

* 65 % background words (most of them a few frequent ones), 20 % topic and
  15 % subtopic words, facets of 3 of a subtopic's 12 words: a document
  shares no subtopic word with the query's two subtopic words about half the
  time ((9/12)^2), so lexical matching is informative but far from complete.
  BM25 reaches full-label nDCG@10 0.58 on the test queries (0.93 on the
  pooled labels, which it defined) and Recall@100 0.54.
* ``pool_depth`` 10 leaves 52 % of the relevant documents hidden
  (data_seed 0; :meth:`SynthData.stats` reports it per run), inside the
  30-60 % asked of a realistic pooled collection.  The share falls with the
  depth but levels off (84 % at depth 1, 60 % at 5, 50 % at 20, 46 % at 100):
  a relevant document that shares no word with the query is at no particular
  BM25 rank, so a deeper pool finds few more of them.
* Topic words are shared by a topic's 10 subtopics, so the hardest negatives
  are same-topic documents: a model's top ranks mix hidden positives (which
  a trained encoder moves up) with true same-topic negatives.

Changing any parameter changes the data and its fingerprint
(:meth:`SynthConfig.fingerprint`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

__all__ = [
    "GENERATOR_VERSION",
    "BM25Index",
    "SynthConfig",
    "SynthData",
    "generate",
]

#: bump whenever the generator's output for a given config changes
GENERATOR_VERSION = "1"


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthConfig:
    """Every parameter of the generator (see the module docstring)."""

    data_seed: int = 0
    n_docs: int = 3000
    topics: int = 30
    subtopics: int = 10
    vocab: int = 20_000
    stopwords: int = 100
    zipf: float = 1.1
    topic_words: int = 30
    subtopic_words: int = 12
    facet_words: int = 3
    doc_length: int = 40
    topic_share: float = 0.2
    subtopic_share: float = 0.15
    n_train: int = 1000
    n_test: int = 200
    query_doc_tokens: int = 2
    query_subtopic_tokens: int = 2
    pool_depth: int = 10
    bm25_k1: float = 0.9
    bm25_b: float = 0.4

    def __post_init__(self) -> None:
        positive = (
            "n_docs",
            "topics",
            "subtopics",
            "vocab",
            "topic_words",
            "subtopic_words",
            "facet_words",
            "doc_length",
            "n_test",
            "query_doc_tokens",
            "pool_depth",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.n_train < 1:
            raise ValueError("n_train must be >= 1")
        if self.stopwords < 0 or self.query_subtopic_tokens < 0:
            raise ValueError("stopwords and query_subtopic_tokens must be >= 0")
        if self.facet_words > self.subtopic_words:
            raise ValueError("facet_words must be <= subtopic_words")
        if self.query_doc_tokens > self.doc_length:
            raise ValueError("query_doc_tokens must be <= doc_length")
        if not (0 <= self.topic_share and 0 <= self.subtopic_share) or (
            self.topic_share + self.subtopic_share > 1
        ):
            raise ValueError("topic_share, subtopic_share >= 0 with sum <= 1")
        if self.n_train + self.n_test > self.n_docs:
            raise ValueError("n_train + n_test source documents exceed n_docs")
        content = self.topics * (
            self.topic_words + self.subtopics * self.subtopic_words
        )
        if content > self.vocab - self.stopwords:
            raise ValueError(
                f"{content} content words do not fit in vocab - stopwords "
                f"= {self.vocab - self.stopwords}"
            )
        if self.zipf <= 0 or self.bm25_k1 < 0 or not 0 <= self.bm25_b <= 1:
            raise ValueError("need zipf > 0, bm25_k1 >= 0 and 0 <= bm25_b <= 1")

    def fingerprint(self) -> str:
        """sha256 of the generator version and every parameter."""
        payload = {"generator": GENERATOR_VERSION, **dataclasses.asdict(self)}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class BM25Index:
    """Okapi BM25 over integer token ids, in numpy (postings sorted by term).

    score(q, d) = sum over query tokens t of
    idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl)),
    idf(t) = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5)).
    """

    def __init__(
        self, docs: list[np.ndarray], vocab: int, *, k1: float = 0.9, b: float = 0.4
    ) -> None:
        self.n_docs = len(docs)
        lengths = np.array([len(d) for d in docs], dtype=np.float64)
        doc_of = np.repeat(np.arange(self.n_docs, dtype=np.int64), lengths.astype(int))
        terms = (
            np.concatenate(docs).astype(np.int64)
            if docs
            else np.zeros(0, dtype=np.int64)
        )
        # one posting per distinct (term, doc), sorted by term then doc
        keys, tf = np.unique(terms * self.n_docs + doc_of, return_counts=True)
        post_term, post_doc = keys // self.n_docs, keys % self.n_docs
        df = np.bincount(post_term, minlength=vocab).astype(np.float64)
        self.idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5))
        avgdl = lengths.mean() if self.n_docs else 1.0
        norm = k1 * (1.0 - b + b * lengths[post_doc] / avgdl)
        self.weights = self.idf[post_term] * tf * (k1 + 1.0) / (tf + norm)
        self.docs = post_doc
        self.offsets = np.searchsorted(post_term, np.arange(vocab + 1))

    def scores(self, queries: list[np.ndarray]) -> np.ndarray:
        """BM25 score of every document for every query. shape: (Q, N)."""
        out = np.zeros((len(queries), self.n_docs), dtype=np.float64)
        for row, query in enumerate(queries):
            for term in query.tolist():
                start, stop = self.offsets[term], self.offsets[term + 1]
                out[row, self.docs[start:stop]] += self.weights[start:stop]
        return out

    def top(self, queries: list[np.ndarray], k: int) -> np.ndarray:
        """Ids of the top ``k`` documents per query, best first, ties broken by
        the lower id. shape: (Q, min(k, N))."""
        scores = self.scores(queries)
        k = min(k, self.n_docs)
        out = np.empty((len(queries), k), dtype=np.int64)
        if k == 0:
            return out
        # the k-th best score per row; everything at least as good is a candidate
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
        for row in range(len(queries)):
            (ids,) = np.nonzero(scores[row] >= kth[row])
            ids = ids[np.argsort(-scores[row, ids], kind="stable")]
            out[row] = ids[:k]
        return out


@dataclass(slots=True, kw_only=True)
class Split:
    """Queries of one split with their full, visible and hidden relevance."""

    texts: list[str]
    source: np.ndarray  #: shape: (Q,) source document of each query
    full: list[set[int]]
    visible: list[set[int]]
    hidden: list[set[int]]


@dataclass(slots=True, kw_only=True)
class SynthData:
    """A generated corpus, its queries and their labels."""

    config: SynthConfig
    doc_texts: list[str]
    doc_topic: np.ndarray  #: shape: (N,)
    doc_subtopic: np.ndarray  #: shape: (N,) global subtopic id
    train: Split
    test: Split

    def stats(self) -> dict[str, float]:
        """Label statistics: relevant / visible per query and the hidden share
        (hidden positives / all relevant (query, document) pairs) per split."""
        out: dict[str, float] = {}
        for name, split in (("train", self.train), ("test", self.test)):
            full = sum(len(s) for s in split.full)
            hidden = sum(len(s) for s in split.hidden)
            out[f"{name}_relevant_per_query"] = full / len(split.full)
            out[f"{name}_visible_per_query"] = (full - hidden) / len(split.full)
            out[f"{name}_hidden_share"] = hidden / full
            out[f"{name}_queries_with_hidden"] = float(
                np.mean([bool(s) for s in split.hidden])
            )
        return out


def _tokens(ids: np.ndarray) -> str:
    return " ".join(f"w{i}" for i in ids.tolist())


def _split(
    texts: list[str],
    source: np.ndarray,
    members: list[np.ndarray],
    doc_subtopic: np.ndarray,
    top: np.ndarray,
) -> Split:
    full, visible, hidden = [], [], []
    for row, src in enumerate(source.tolist()):
        relevant = {int(d) for d in members[int(doc_subtopic[src])]}
        shown = (relevant & {int(d) for d in top[row]}) | {src}
        full.append(relevant)
        visible.append(shown)
        hidden.append(relevant - shown)
    return Split(texts=texts, source=source, full=full, visible=visible, hidden=hidden)


def generate(config: SynthConfig) -> SynthData:
    """Generate the corpus, queries and labels of ``config`` (deterministic)."""
    c = config
    rng = np.random.default_rng(c.data_seed)
    n_sub = c.topics * c.subtopics
    # latent structure: balanced subtopics in random order
    doc_subtopic = rng.permutation(np.arange(c.n_docs) % n_sub)
    doc_topic = doc_subtopic // c.subtopics
    # words: Zipf background over all ids; disjoint content words past stopwords
    ranks = np.arange(1, c.vocab + 1, dtype=np.float64)
    background = ranks**-c.zipf
    background /= background.sum()
    content = c.stopwords + rng.permutation(c.vocab - c.stopwords)
    n_topic_words = c.topics * c.topic_words
    topic_table = content[:n_topic_words].reshape(c.topics, c.topic_words)
    subtopic_table = content[
        n_topic_words : n_topic_words + n_sub * c.subtopic_words
    ].reshape(n_sub, c.subtopic_words)
    # documents
    shape = (c.n_docs, c.doc_length)
    kind = rng.choice(
        3,
        size=shape,
        p=[1.0 - c.topic_share - c.subtopic_share, c.topic_share, c.subtopic_share],
    )
    facets = np.argsort(rng.random((c.n_docs, c.subtopic_words)), axis=1)
    facets = facets[:, : c.facet_words]
    facet_pick = np.take_along_axis(
        facets, rng.integers(c.facet_words, size=shape), axis=1
    )
    words = np.where(
        kind == 0,
        rng.choice(c.vocab, size=shape, p=background),
        np.where(
            kind == 1,
            topic_table[doc_topic[:, None], rng.integers(c.topic_words, size=shape)],
            subtopic_table[doc_subtopic[:, None], facet_pick],
        ),
    )
    doc_tokens = list(words)
    doc_texts = [_tokens(row) for row in doc_tokens]
    # queries: distinct source documents, train and test disjoint
    sources = rng.permutation(c.n_docs)[: c.n_train + c.n_test]
    positions = np.argsort(rng.random((len(sources), c.doc_length)), axis=1)[
        :, : c.query_doc_tokens
    ]
    from_doc = np.take_along_axis(words[sources], positions, axis=1)
    from_subtopic = subtopic_table[
        doc_subtopic[sources][:, None],
        rng.integers(c.subtopic_words, size=(len(sources), c.query_subtopic_tokens)),
    ]
    query_tokens = list(np.concatenate([from_doc, from_subtopic], axis=1))
    query_texts = [_tokens(row) for row in query_tokens]
    # pooled labels from BM25's top pool_depth
    index = BM25Index(doc_tokens, c.vocab, k1=c.bm25_k1, b=c.bm25_b)
    top = index.top(query_tokens, c.pool_depth)
    order = np.argsort(doc_subtopic, kind="stable")
    bounds = np.searchsorted(doc_subtopic[order], np.arange(n_sub + 1))
    members = [order[bounds[s] : bounds[s + 1]] for s in range(n_sub)]
    n = c.n_train
    train = _split(query_texts[:n], sources[:n], members, doc_subtopic, top[:n])
    test = _split(query_texts[n:], sources[n:], members, doc_subtopic, top[n:])
    return SynthData(
        config=c,
        doc_texts=doc_texts,
        doc_topic=doc_topic,
        doc_subtopic=doc_subtopic,
        train=train,
        test=test,
    )
