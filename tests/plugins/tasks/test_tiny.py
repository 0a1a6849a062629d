"""The tiny in-memory tasks: generated deterministically from their seed,
well-formed for their family, and learnable (a trained run beats chance)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.testing import make_context, run_in_process
from harness.types import DatasetRef
from negbench_plugins.tasks.tiny import TinyKGE, TinyMultiLabel, TinySTS

REF = DatasetRef(name="tiny", path="generated", sha256="0")


def test_same_seed_same_data_and_fingerprint_other_seed_other_data():
    context = make_context()
    first, again = TinyKGE().load(REF, context), TinyKGE().load(REF, context)
    assert torch.equal(first.train, again.train)
    other = TinyKGE(data_seed=1).load(REF, context)
    assert not torch.equal(first.train, other.train)
    assert TinyKGE().locate(None).sha256 == TinyKGE().locate(None).sha256  # type: ignore[arg-type]
    assert TinyKGE().locate(None).sha256 != TinyKGE(data_seed=1).locate(None).sha256  # type: ignore[arg-type]


def test_kge_graph_holds_out_only_entities_seen_in_training():
    graph = TinyKGE().load(REF, make_context())
    seen = set(graph.train[:, 0].tolist()) | set(graph.train[:, 2].tolist())
    for split in (graph.valid, graph.test):
        assert len(split) > 0
        assert set(split[:, 0].tolist()) | set(split[:, 2].tolist()) <= seen
    assert graph.num_entities == 60 and graph.num_relations == 4


def test_sts_gold_is_the_kept_share_and_has_positives():
    data = TinySTS().load(REF, make_context())
    for first, second, gold in zip(
        data.test.sentence1, data.test.sentence2, data.test.scores, strict=True
    ):
        kept = sum(a == b for a, b in zip(first.split(), second.split(), strict=True))
        assert gold == pytest.approx(5.0 * kept / TinySTS.LENGTH)
    assert len(data.training.pairs) > 0  # pairs at or above the 4.0 threshold


def test_multilabel_every_example_has_a_label():
    data = TinyMultiLabel().load(REF, make_context())
    assert data.train_features is not None
    assert data.train_features.shape == (200, TinyMultiLabel.FEATURES)
    assert (data.train_labels.sum(axis=1) >= 1).all()
    assert 0.1 < data.train_labels.mean() < 0.6


@pytest.mark.parametrize(
    ("task", "metric", "floor"),
    [
        # chance: about 0.08 MRR over 60 entities, ~0.1 nDCG@10, 0 Spearman,
        # and the label priors' MAP (about 0.4)
        ("tiny-kge", "mrr", 0.25),
        ("tiny-retrieval", "ndcg@10", 0.25),
        ("tiny-sts", "spearman", 0.8),
        ("tiny-multilabel", "map", 0.6),
    ],
)
def test_a_trained_run_beats_chance(task, metric, floor):
    result = run_in_process(task=task)
    assert result.ok, result.error
    assert result.metrics[metric] > floor


def test_label_priors_alone_stay_below_the_trained_floor():
    data = TinyMultiLabel().load(REF, make_context())
    from sklearn.metrics import average_precision_score

    priors = np.tile(data.train_labels.mean(axis=0), (len(data.test_labels), 1))
    per_example = [
        average_precision_score(y, s)
        for y, s in zip(data.test_labels, priors, strict=True)
        if y.any()
    ]
    assert float(np.mean(per_example)) < 0.6
