"""SimANS: contract plus empirical draw frequencies against the kernel formula.

METHODS.md §1: p_i ∝ exp(-a * (scale * (s_i - s+) - b)^2) over the allowed
candidates (squared kernel), exp(-a * |scale * (s_i - s+) - b|) for the
Laplace kernel; the released wiki/Doc code flips the sign of b
(``b_sign="code"``), which puts the peak at s+ - b/scale.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.plugin import PluginOptions, make_plugin_host
from harness.testing import SamplerContract, make_candidate_batch
from harness.types import CandidateBatch
from negbench_plugins.samplers.simans import SimANS


class TestSimANSContract(SamplerContract):
    sampler_cls = SimANS


class TestSimANSLaplaceContract(SamplerContract):
    sampler_cls = SimANS
    sampler_kwargs = {"kernel": "laplace", "a": 3.0}


class TestSimANSCodeSignContract(SamplerContract):
    sampler_cls = SimANS
    sampler_kwargs = {"b_sign": "code", "b": 1.0}


class TestSimANSSharpContract(SamplerContract):
    sampler_cls = SimANS
    sampler_kwargs = {"a": 5.0, "b": 1.0, "scale": 10.0}


def _reference_probs(scores, positive, known, *, a, b, scale, kernel, b_sign):
    """Numpy float64 reference of the SimANS distribution over one row."""
    scores = np.asarray(scores, dtype=np.float64)
    offset = b if b_sign == "paper" else -b
    delta = scale * (scores - float(positive)) - offset
    distance = delta**2 if kernel == "squared" else np.abs(delta)
    logits = -a * distance
    logits[np.asarray(known, dtype=bool)] = -np.inf
    logits -= logits.max()
    p = np.exp(logits)
    return p / p.sum()


def _replicate(batch, times):
    def rep(t):
        return t.repeat_interleave(times, dim=0)

    return CandidateBatch(
        anchor_ids=rep(batch.anchor_ids),
        candidate_ids=rep(batch.candidate_ids),
        scores=rep(batch.scores),
        positive_scores=rep(batch.positive_scores),
        known_positive=rep(batch.known_positive),
    )


def _full_kwargs(kwargs):
    out = {"a": 0.5, "b": 0.0, "scale": 20.0, "kernel": "squared", "b_sign": "paper"}
    out.update(kwargs)
    return out


def _empirical(sampler, base, times, seed):
    """Frequencies of single draws, one row per (base row, replica)."""
    batch = _replicate(base, times)
    out = sampler.sample(batch, 1, torch.Generator().manual_seed(seed))
    out = out.squeeze(1).view(base.size, times).numpy()
    return np.stack(
        [np.bincount(r, minlength=base.num_candidates) / times for r in out]
    )


def _narrow_batch(seed, batch_size=4, num_candidates=24):
    """Scores and positives in a band where the kernel is neither flat nor a spike."""
    gen = torch.Generator().manual_seed(seed)
    scores = 0.3 + 0.4 * torch.rand(batch_size, num_candidates, generator=gen)
    scores = scores.sort(dim=1, descending=True).values
    positive = 0.4 + 0.2 * torch.rand(batch_size, generator=gen)
    known = torch.zeros(batch_size, num_candidates, dtype=torch.bool)
    for row in range(batch_size):
        known[row, torch.randperm(num_candidates, generator=gen)[:2]] = True
    return CandidateBatch(
        anchor_ids=torch.arange(batch_size),
        candidate_ids=torch.arange(num_candidates).repeat(batch_size, 1),
        scores=scores,
        positive_scores=positive,
        known_positive=known,
    )


KERNELS = [
    {},
    {"a": 0.05},
    {"b": 1.0},
    {"b": 1.0, "b_sign": "code"},
    {"kernel": "laplace", "a": 3.0},
    {"kernel": "laplace", "a": 0.3, "b": 1.0},
    {"kernel": "laplace", "a": 0.3, "b": 1.0, "b_sign": "code"},
    {"a": 0.5, "scale": 5.0},
]


@pytest.mark.parametrize(
    "kwargs",
    KERNELS,
    ids=lambda k: ",".join(f"{a}={v}" for a, v in k.items()) or "default",
)
def test_draw_frequencies_match_the_kernel(kwargs):
    sampler = SimANS(**kwargs)
    times = 20000
    for base in (_narrow_batch(seed=0), make_candidate_batch(batch_size=3, seed=1)):
        freq = _empirical(sampler, base, times, seed=0)
        for row in range(base.size):
            p = _reference_probs(
                base.scores[row].numpy(),
                base.positive_scores[row].item(),
                base.known_positive[row].numpy(),
                **_full_kwargs(kwargs),
            )
            se = np.sqrt(p * (1 - p) / times)
            bad = np.abs(freq[row] - p) > 5 * se + 2 / times
            assert not bad.any(), (row, np.round(freq[row], 4), np.round(p, 4))


@pytest.mark.parametrize("kwargs", KERNELS[:4] + KERNELS[4:5])
def test_log_weights_match_the_formula(kwargs):
    sampler = SimANS(**kwargs)
    batch = make_candidate_batch(seed=2)
    got = sampler.log_weights(batch).numpy()
    full = _full_kwargs(kwargs)
    offset = full["b"] if full["b_sign"] == "paper" else -full["b"]
    for row in range(batch.size):
        for col in range(batch.num_candidates):
            delta = (
                full["scale"]
                * (float(batch.scores[row, col]) - float(batch.positive_scores[row]))
                - offset
            )
            dist = delta * delta if full["kernel"] == "squared" else abs(delta)
            assert got[row, col] == pytest.approx(-full["a"] * dist, rel=1e-9, abs=1e-9)


def _grid_batch(positive, num_candidates=41):
    scores = torch.linspace(1.0, -1.0, num_candidates, dtype=torch.float64).float()
    return CandidateBatch(
        anchor_ids=torch.arange(1),
        candidate_ids=torch.arange(num_candidates)[None],
        scores=scores[None],
        positive_scores=torch.tensor([positive]),
        known_positive=torch.zeros(1, num_candidates, dtype=torch.bool),
    )


@pytest.mark.parametrize(("b_sign", "direction"), [("code", -1.0), ("paper", +1.0)])
@pytest.mark.parametrize("kernel", ["squared", "laplace"])
def test_b_sign_moves_the_peak(b_sign, direction, kernel):
    b, scale = 1.0, 10.0  # peak offset b/scale = 0.1 = two grid steps of 0.05
    positive = 0.2
    base = _grid_batch(positive)
    sampler = SimANS(a=1.0, b=b, scale=scale, kernel=kernel, b_sign=b_sign)
    freq = _empirical(sampler, base, 20000, seed=5)[0]
    scores = base.scores[0].numpy().astype(np.float64)
    target = positive + direction * b / scale
    expected = int(np.argmin(np.abs(scores - target)))
    assert abs(scores[expected] - target) < 1e-6
    assert int(np.argmax(freq)) == expected
    # and not where the other sign (or no offset) would put it
    assert expected != int(np.argmin(np.abs(scores - positive)))
    assert expected != int(
        np.argmin(np.abs(scores - (positive - direction * b / scale)))
    )


def test_known_positives_are_never_drawn_even_at_the_peak():
    base = make_candidate_batch(
        batch_size=6, num_candidates=20, positives_per_row=1, seed=8
    )
    # make the known positive the most probable column of each row
    peak = (base.scores - base.positive_scores[:, None]).abs().argmin(dim=1)
    known = torch.zeros_like(base.known_positive)
    known[torch.arange(base.size), peak] = True
    known[:, 0] = True
    base = CandidateBatch(
        anchor_ids=base.anchor_ids,
        candidate_ids=base.candidate_ids,
        scores=base.scores,
        positive_scores=base.positive_scores,
        known_positive=known,
    )
    batch = _replicate(base, 2000)
    for kwargs in ({}, {"kernel": "laplace", "a": 3.0}, {"b": 1.0, "b_sign": "code"}):
        out = SimANS(**kwargs).sample(batch, 5, torch.Generator().manual_seed(1))
        assert not bool(batch.known_positive.gather(1, out).any())


@pytest.mark.parametrize(
    "kwargs", [{}, {"kernel": "laplace", "a": 3.0}, {"b": 1.0, "b_sign": "code"}]
)
def test_no_duplicates_when_enough_allowed(kwargs):
    sampler = SimANS(**kwargs)
    k = 5
    for seed in range(10):
        batch = make_candidate_batch(
            batch_size=32, num_candidates=30, positives_per_row=1 + seed, seed=seed
        )
        out = sampler.sample(batch, k, torch.Generator().manual_seed(seed))
        for row in out.tolist():
            assert len(set(row)) == k


def test_no_duplicates_when_far_candidates_underflow():
    scores = torch.full((1, 30), -1.0)
    scores[0, 0] = 1.0
    batch = CandidateBatch(
        anchor_ids=torch.arange(1),
        candidate_ids=torch.arange(30)[None],
        scores=scores,
        positive_scores=torch.tensor([1.0]),
        known_positive=torch.zeros(1, 30, dtype=torch.bool),
    )
    out = SimANS().sample(batch, 5, torch.Generator().manual_seed(0))
    assert len(set(out[0].tolist())) == 5


def test_far_positive_does_not_underflow():
    # positive far above every candidate: raw weights would all underflow,
    # the row-max shift keeps the distribution well defined
    batch = make_candidate_batch(batch_size=4, seed=3)
    far = CandidateBatch(
        anchor_ids=batch.anchor_ids,
        candidate_ids=batch.candidate_ids,
        scores=batch.scores,
        positive_scores=torch.full((4,), 50.0),
        known_positive=batch.known_positive,
    )
    out = SimANS().sample(far, 1, torch.Generator().manual_seed(0)).squeeze(1)
    masked = far.scores.masked_fill(far.known_positive, float("-inf"))
    assert torch.equal(out, masked.argmax(dim=1))


def test_row_without_allowed_candidate_raises():
    batch = make_candidate_batch(batch_size=3, num_candidates=6, seed=0)
    known = batch.known_positive.clone()
    known[1] = True
    batch = CandidateBatch(
        anchor_ids=batch.anchor_ids,
        candidate_ids=batch.candidate_ids,
        scores=batch.scores,
        positive_scores=batch.positive_scores,
        known_positive=known,
    )
    with pytest.raises(ValueError):
        SimANS().sample(batch, 2, torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "kwargs",
    [{"a": 0.0}, {"a": -1.0}, {"scale": 0.0}, {"kernel": "gauss"}, {"b_sign": "neg"}],
)
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        SimANS(**kwargs)


def test_registered():
    host = make_plugin_host(PluginOptions(autoload=False))
    assert "simans" in host.registries.samplers
    assert host.registries.samplers.get("simans").cls is SimANS
    assert SimANS.pool == "mined"
