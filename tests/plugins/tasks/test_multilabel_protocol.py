"""The multi-label protocol: scikit-learn's metrics, partial labels, exact FN rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    hamming_loss,
    label_ranking_average_precision_score,
)

from harness.testing import make_context
from negbench_plugins.losses.asl import BCE
from negbench_plugins.models.label_models import LinearLabels
from negbench_plugins.samplers.labels import AllLabels, PartialFC
from negbench_plugins.samplers.topk_hard import TopKHard
from negbench_plugins.tasks.multilabel_protocol import (
    MultiLabelProtocol,
    label_metrics,
    per_example_lrap,
)


def predictions(seed=0, n=60, labels=7):
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, labels)) < 0.3).astype(np.uint8)
    truth[0] = 1  # an example with every label, one with none
    truth[1] = 0
    truth[:, 3] = 0  # a label without test positives
    # rounded scores make ties, which the rank-based metrics must handle alike
    scores = np.round(rng.normal(size=(n, labels)) + truth, 1)
    return truth, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn(seed):
    truth, scores = predictions(seed)
    names = tuple(f"l{i}" for i in range(truth.shape[1]))
    evaluation = label_metrics(truth, scores, names)
    m = evaluation.metrics
    scored = truth.sum(axis=0) > 0
    predicted = (scores >= 0).astype(int)
    assert m["map"] == pytest.approx(
        average_precision_score(truth[:, scored], scores[:, scored], average="macro"),
        abs=1e-12,
    )
    assert m["micro_f1"] == pytest.approx(
        f1_score(truth, predicted, average="micro", zero_division=0), abs=1e-12
    )
    assert m["macro_f1"] == pytest.approx(
        f1_score(truth, predicted, average="macro", zero_division=0), abs=1e-12
    )
    assert m["lrap"] == pytest.approx(
        label_ranking_average_precision_score(truth, scores), abs=1e-12
    )
    assert m["hamming_loss"] == pytest.approx(hamming_loss(truth, predicted), abs=1e-12)
    # per-item values average to the reported metrics (paired tests use them)
    assert "l3" not in evaluation.per_item["map"]
    assert np.mean(list(evaluation.per_item["map"].values())) == pytest.approx(m["map"])
    assert np.mean(list(evaluation.per_item["lrap"].values())) == pytest.approx(
        m["lrap"], abs=1e-12
    )


def test_per_example_lrap_in_chunks_equals_scikit_learn():
    truth, scores = predictions(5, n=300, labels=40)
    assert per_example_lrap(truth, scores).mean() == pytest.approx(
        label_ranking_average_precision_score(truth, scores), abs=1e-12
    )


def labels_matrix(n=200, num_labels=12, seed=0, density=0.3):
    gen = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, num_labels, generator=gen) < density).to(torch.uint8)
    y[:, 0] = 1  # every example has a positive
    return y


def test_hiding_keeps_a_positive_and_is_seeded():
    y = labels_matrix()
    protocol = MultiLabelProtocol(epochs=1, batch_size=8, hidden=0.5)
    view = protocol.observe(y, seed=3)
    positive = y.bool()
    assert torch.equal(view.observed | view.hidden, positive)
    assert not bool((view.observed & view.hidden).any())
    assert bool(view.observed.any(dim=1).all())
    share = float(view.hidden.sum() / positive.sum())
    assert 0.35 < share < 0.5  # 0.5 of the positives, minus the kept ones
    assert torch.equal(protocol.observe(y, seed=3).hidden, view.hidden)
    assert not torch.equal(protocol.observe(y, seed=4).hidden, view.hidden)
    single = MultiLabelProtocol(epochs=1, batch_size=8, single_positive=True)
    assert bool((single.observe(y, seed=3).observed.sum(dim=1) == 1).all())
    full = MultiLabelProtocol(epochs=1, batch_size=8).observe(y, seed=3)
    assert torch.equal(full.observed, positive) and not full.partial


class SpyBCE(BCE):
    """BCE that remembers the label views it was given."""

    def __init__(self):
        super().__init__()
        self.views = []

    def forward_batch(self, batch):
        self.views.append(batch.labels)
        return super().forward_batch(batch)


def train(sampler, protocol, y, seed=0):
    loss = SpyBCE()
    context = make_context(sampler=sampler, loss=loss, seed=seed)
    model = LinearLabels()
    model.build(5, y.shape[1])
    features = torch.randn(len(y), 5, generator=torch.Generator().manual_seed(1))
    protocol.fit(model, features, y, context)
    return loss.views, context.diagnostics.summary()


def test_all_sampler_puts_every_label_in_the_loss():
    y = labels_matrix()
    views, diagnostics = train(
        AllLabels(), MultiLabelProtocol(epochs=2, batch_size=16), y
    )
    assert len(views) == 2 * 13
    for view in views:
        assert bool(view.mask.all()) and not bool(view.assumed.any())
    assert [v.epoch for v in views[:13]] == [0] * 13 and views[-1].epoch == 1
    # full labels: no sampled negative can be a false negative
    assert diagnostics["fn_rate"] == 0.0
    assert diagnostics["negatives_sampled"] == 2 * float((y == 0).sum())


def test_partial_labels_make_the_false_negative_rate_exact():
    y = labels_matrix()
    protocol = MultiLabelProtocol(epochs=1, batch_size=16, hidden=0.5)
    views, diagnostics = train(AllLabels(), protocol, y, seed=2)
    view = protocol.observe(y, seed=2)
    # one epoch of `all` samples every assumed negative exactly once, so the
    # sampled FN rate is the hidden share of the assumed negatives
    expected = int(view.hidden.sum()) / int((~view.observed).sum())
    assert diagnostics["fn_rate"] == pytest.approx(expected, abs=1e-12)
    assert diagnostics["assumed_negative_fn_share"] == pytest.approx(expected)
    assert all(torch.equal(v.assumed, v.targets == 0) for v in views)


def test_topk_hard_picks_the_highest_logits_and_partial_fc_fewer_columns():
    y = labels_matrix(num_labels=40)
    protocol = MultiLabelProtocol(epochs=1, batch_size=20, num_negatives=5)
    views, diagnostics = train(TopKHard(), protocol, y)
    for view in views:
        negatives = view.mask & (view.targets == 0)
        assert bool((negatives.sum(dim=1) == 5).all())
        # the chosen negatives are the highest-scored non-positive labels
        logits = view.logits.detach().masked_fill(view.targets.bool(), -1e9)
        top = logits.topk(5, dim=1).indices
        assert bool(negatives.gather(1, top).all())
    assert diagnostics["neg_rank_mean"] < 10
    sparse = labels_matrix(num_labels=100, density=0.01)
    views, _ = train(PartialFC(rate=0.1), protocol, sparse)
    # about 20 batch positives + uniform others up to 10 labels of 100
    assert float(views[0].mask.float().mean()) < 0.5


def test_bad_settings():
    with pytest.raises(ValueError):
        MultiLabelProtocol(epochs=0, batch_size=4)
    with pytest.raises(ValueError):
        MultiLabelProtocol(epochs=1, batch_size=4, hidden=1.0)
