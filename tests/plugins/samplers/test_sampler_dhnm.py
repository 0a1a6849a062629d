"""DHNM: contract, the keep/replace rule against a naive loop, and the protocol.

METHODS.md §10: keep each example's hard negatives with their initial score
s0; a negative whose current score s has ``s * 1.15 < s0`` and ``|s| < 0.8``
(or that left the pool) is replaced from a mid-rank window (about 30-100).
"""

from __future__ import annotations

import pytest
import torch
from toy_text import ToyEncoder, toy_data

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_context
from harness.types import CandidateBatch
from negbench_plugins.losses.infonce import InfoNCE
from negbench_plugins.samplers.dhnm import DHNM
from negbench_plugins.tasks import contrastive
from negbench_plugins.tasks.contrastive import ContrastiveProtocol


class TestDHNMContract(SamplerContract):
    sampler_cls = DHNM


class TestDHNMSmallWindowContract(SamplerContract):
    sampler_cls = DHNM
    sampler_kwargs = {"window_min": 2, "window_max": 6}


class TestDHNMStrictContract(SamplerContract):
    sampler_cls = DHNM
    sampler_kwargs = {"ratio": 1.0, "abs_limit": 1.0, "window_min": 0}


def test_class_attributes():
    assert DHNM.pool == "mined"
    assert DHNM().refresh is None  # the protocol's schedule (per epoch)
    assert DHNM(check_every=100).refresh == 100  # the paper re-checks every 100 steps
    assert DHNM.in_batch_negatives is None
    assert DHNM.freeze_candidates is False
    assert {"retrieval", "sts"} <= DHNM.families


class NaiveDHNM:
    """The spec, written as plain loops over python lists."""

    def __init__(self, ratio=1.15, abs_limit=0.8, window_min=30, window_max=100):
        self.ratio, self.abs_limit = ratio, abs_limit
        self.window_min, self.window_max = window_min, window_max
        self.state = {}  # anchor -> [(candidate id, s0)]
        self.remined = 0

    def sample(self, batch, k):
        out = []
        for row in range(batch.size):
            anchor = int(batch.anchor_ids[row])
            ids = batch.candidate_ids[row].tolist()
            s = batch.scores[row].tolist()
            allowed = [c for c in range(len(ids)) if not batch.known_positive[row, c]]
            ranked = sorted(allowed, key=lambda c: -s[c])
            if anchor not in self.state:
                cols = [ranked[i % len(ranked)] for i in range(k)]
                self.state[anchor] = [(ids[c], s[c]) for c in cols]
                out.append(cols)
                continue
            slots = []
            for negative, s0 in self.state[anchor]:
                where = [c for c in ranked if ids[c] == negative]
                if where and not (
                    s[where[0]] * self.ratio < s0 and abs(s[where[0]]) < self.abs_limit
                ):
                    slots.append((where[0], s0))
                else:
                    slots.append(None)
            n = len(ranked)
            low, high = self.window_min, min(self.window_max, n)
            if low >= high:
                low, high = n // 2, n
            preference = ranked[low:high] + ranked[high:] + ranked[:low][::-1]
            used = {negative for negative, _ in self.state[anchor]}
            repeats = 0
            for j in range(k):
                if slots[j] is not None:
                    continue
                self.remined += 1
                fresh = [c for c in preference if ids[c] not in used]
                if fresh:
                    pick = fresh[0]
                    used.add(ids[pick])
                else:
                    pick = preference[repeats % n]
                    repeats += 1
                slots[j] = (pick, s[pick])
            self.state[anchor] = [(ids[c], s0) for c, s0 in slots]
            out.append([c for c, _ in slots])
        return out


def _pools(seed, anchors, corpus=40, width=25, positives=None):
    """A batch whose pools are random subsets of a fixed corpus."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randperm(corpus, generator=gen)[:width] for _ in anchors])
    scores = torch.rand(len(anchors), width, generator=gen) * 2 - 1
    positives = positives or {
        a: {(3 * a) % corpus, (3 * a + 1) % corpus} for a in anchors
    }
    known = torch.stack(
        [
            torch.isin(ids[r], torch.tensor(sorted(positives[a])))
            for r, a in enumerate(anchors)
        ]
    )
    return CandidateBatch(
        anchor_ids=torch.tensor(anchors),
        candidate_ids=ids,
        scores=scores,
        positive_scores=torch.rand(len(anchors), generator=gen),
        known_positive=known,
    )


def _drift(batch, seed, scale):
    """The same pools, rescored: scores move by up to +-scale."""
    gen = torch.Generator().manual_seed(seed)
    noise = (torch.rand(batch.scores.shape, generator=gen) * 2 - 1) * scale
    return CandidateBatch(
        anchor_ids=batch.anchor_ids,
        candidate_ids=batch.candidate_ids,
        scores=(batch.scores + noise).clamp(-1, 1),
        positive_scores=batch.positive_scores,
        known_positive=batch.known_positive,
    )


WINDOWS = [
    {},
    {"window_min": 2, "window_max": 6},
    {"window_min": 5, "window_max": 8},
    {"window_min": 0, "window_max": 3},
    {"window_min": 20, "window_max": 22},
    {"ratio": 1.0, "abs_limit": 1.0},
    {"ratio": 2.0, "abs_limit": 0.5, "window_min": 4, "window_max": 30},
]


@pytest.mark.parametrize("kwargs", WINDOWS, ids=str)
@pytest.mark.parametrize("k", [1, 3, 8])
def test_matches_naive_loop_over_many_calls(kwargs, k):
    sampler, naive = DHNM(**kwargs), NaiveDHNM(**kwargs)
    anchors = [0, 1, 2, 3, 4, 5]
    gen = torch.Generator().manual_seed(0)
    for call in range(8):
        if call % 3 == 2:  # a re-mined pool: some negatives leave it
            batch = _pools(call, anchors)
        else:  # the same pools rescored
            batch = _drift(batch, call, 0.3) if call else _pools(call, anchors)
        rows = torch.randperm(6, generator=gen)[:4]  # a batch of 4 anchors
        sub = CandidateBatch(
            anchor_ids=batch.anchor_ids[rows],
            candidate_ids=batch.candidate_ids[rows],
            scores=batch.scores[rows],
            positive_scores=batch.positive_scores[rows],
            known_positive=batch.known_positive[rows],
        )
        out = sampler.sample(sub, k, torch.Generator().manual_seed(call))
        assert out.tolist() == naive.sample(sub, k), call
        for anchor, stored in naive.state.items():
            ids, initial = sampler.state(anchor)
            assert ids == [i for i, _ in stored]
            assert initial == pytest.approx([s0 for _, s0 in stored])
    assert sampler.diagnostics()["remined_negatives"] == naive.remined
    assert naive.remined > 0


def _fixed(scores, ids=None, known=None, anchor=7):
    scores = torch.tensor([scores])
    width = scores.shape[1]
    return CandidateBatch(
        anchor_ids=torch.tensor([anchor]),
        candidate_ids=torch.tensor([ids if ids is not None else list(range(width))]),
        scores=scores,
        positive_scores=torch.tensor([0.9]),
        known_positive=(
            torch.zeros(1, width, dtype=torch.bool)
            if known is None
            else torch.tensor([known])
        ),
    )


def test_first_call_takes_the_top_k_allowed():
    batch = _fixed([0.9, 0.8, 0.7, 0.6, 0.5], known=[False, True, False, False, False])
    out = DHNM().sample(batch, 2, torch.Generator().manual_seed(0))
    assert out.tolist() == [[0, 2]]


def test_keeps_undecayed_negatives_across_calls():
    sampler = DHNM(window_min=1, window_max=4)
    scores = [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    first = sampler.sample(_fixed(scores), 3, torch.Generator().manual_seed(0))
    assert first.tolist() == [[0, 1, 2]]
    # scores moved a little and the pool was re-ordered: still hard, all kept
    ids = [5, 4, 3, 2, 1, 0, 6, 7]
    moved = [0.25, 0.35, 0.45, 0.5, 0.62, 0.66, 0.1, 0.0]
    second = sampler.sample(_fixed(moved, ids), 3, torch.Generator().manual_seed(0))
    assert [ids[c] for c in second[0].tolist()] == [0, 1, 2]
    assert sampler.state(7) == ([0, 1, 2], pytest.approx([0.7, 0.6, 0.5]))
    assert sampler.diagnostics()["remined_negatives"] == 0


def test_replaces_decayed_negatives_from_the_window():
    sampler = DHNM(window_min=2, window_max=5)
    scores = [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    sampler.sample(_fixed(scores), 3, torch.Generator().manual_seed(0))
    # candidate 1 decays: 0.5 * 1.15 = 0.575 < 0.6 and |0.5| < 0.8; candidate 2
    # rose, so it stays; ranks are now columns 0, 2, 1, 3, 4, ...
    decayed = [0.7, 0.5, 0.65, 0.4, 0.3, 0.2, 0.1, 0.0]
    out = sampler.sample(_fixed(decayed), 3, torch.Generator().manual_seed(0))
    # the window [2, 5) is columns 1, 3, 4; column 1 is the dropped negative,
    # so its slot gets column 3, with s0 = its current score
    assert out.tolist() == [[0, 3, 2]]
    assert sampler.state(7) == ([0, 3, 2], pytest.approx([0.7, 0.4, 0.5]))
    assert sampler.diagnostics() == {
        "remined_negatives": 1.0,
        "remined_anchors": 1.0,
        "tracked_anchors": 1.0,
    }


def test_large_scores_never_decay():
    sampler = DHNM()
    sampler.sample(_fixed([0.95, 0.9, 0.1, 0.0]), 2, torch.Generator().manual_seed(0))
    # 0.81 * 1.15 < 0.95 but |0.81| >= 0.8: still hard enough, kept
    out = sampler.sample(
        _fixed([0.81, 0.9, 0.1, 0.0]), 2, torch.Generator().manual_seed(0)
    )
    assert out.tolist() == [[0, 1]]
    assert sampler.diagnostics()["remined_negatives"] == 0


def test_negative_scores_count_as_decayed():
    # the rule read literally: s * 1.15 < s for any s < 0
    assert DHNM().decayed(-0.2, -0.2)
    assert not DHNM().decayed(0.2, 0.2)
    assert not DHNM().decayed(-0.85, -0.2)  # |s| >= abs_limit


def test_negatives_that_leave_the_pool_are_replaced():
    sampler = DHNM(window_min=1, window_max=3)
    sampler.sample(_fixed([0.7, 0.6, 0.5, 0.4]), 2, torch.Generator().manual_seed(0))
    # candidate 0 is no longer in the pool (ids 1, 2, 3, 9)
    out = sampler.sample(
        _fixed([0.6, 0.5, 0.4, 0.3], ids=[1, 2, 3, 9]),
        2,
        torch.Generator().manual_seed(0),
    )
    # ranks: id 1, 2, 3, 9; window [1, 3) = ids 2, 3; id 2 is new, not taken
    assert out.tolist() == [[1, 0]]
    assert sampler.state(7)[0] == [2, 1]


def test_empty_window_uses_the_lower_half():
    sampler = DHNM()  # window 30-100 on a pool of 8
    scores = [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    sampler.sample(_fixed(scores), 2, torch.Generator().manual_seed(0))
    out = sampler.sample(
        _fixed([0.1, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.0]),
        2,
        torch.Generator().manual_seed(0),
    )
    # candidate 0 decayed; by rank the columns are 1, 2, 3, 4 | 5, 6, 0, 7 and
    # the lower half starts at column 5
    assert out.tolist() == [[5, 1]]


def test_each_anchor_has_its_own_negatives():
    sampler = DHNM()
    a = _fixed([0.9, 0.1, 0.5], anchor=1)
    b = _fixed([0.1, 0.9, 0.5], anchor=2)
    sampler.sample(a, 1, torch.Generator().manual_seed(0))
    sampler.sample(b, 1, torch.Generator().manual_seed(0))
    assert sampler.state(1)[0] == [0]
    assert sampler.state(2)[0] == [1]
    assert sampler.state(3) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ratio": 0.0},
        {"abs_limit": -0.1},
        {"window_min": -1},
        {"window_min": 10, "window_max": 10},
    ],
)
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        DHNM(**kwargs)


def test_row_without_allowed_candidate_raises():
    batch = _fixed([0.1, 0.2], known=[True, True])
    with pytest.raises(ValueError, match="no candidate"):
        DHNM().sample(batch, 1, torch.Generator().manual_seed(0))


# -- through the real protocol ---------------------------------------------------


def test_trains_through_the_protocol(monkeypatch):
    mined = []
    real = contrastive.mine

    def counting(*args, **kwargs):
        mined.append(args[1].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(contrastive, "mine", counting)
    sampler = DHNM(window_min=2, window_max=5, check_every=100)
    context = make_context(sampler=sampler, loss=InfoNCE())
    protocol = ContrastiveProtocol(epochs=2, batch_size=4, num_negatives=2, depth=6)
    protocol.fit(toy_data(), ToyEncoder(), context)
    assert mined == [8]  # refresh every 100 steps: once in a 4-step run
    summary = context.diagnostics.summary()
    assert summary["negatives_sampled"] == 4 * 4 * 2
    assert 0.0 <= summary["fn_rate"] <= 1.0
    diagnostics = sampler.diagnostics()
    assert diagnostics["tracked_anchors"] == 8
    assert diagnostics["remined_anchors"] <= 8


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert host.registries.samplers.get("dhnm").cls is DHNM
