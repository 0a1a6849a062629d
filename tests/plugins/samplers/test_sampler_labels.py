"""all and partial-fc: the negative-label samplers of the multi-label family."""

from __future__ import annotations

import math

import torch

from harness import ALL_CANDIDATES, CandidateBatch
from harness.sampling import cap_negatives
from harness.testing import SamplerContract, make_context
from negbench_plugins.samplers.labels import AllLabels, PartialFC


class TestAllContract(SamplerContract):
    sampler_cls = AllLabels


class TestPartialFCContract(SamplerContract):
    sampler_cls = PartialFC


def label_batch(num_labels=40, batch_size=8, seed=0, positives=3):
    """Every row's candidates are all labels, in a random order per row."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.stack(
        [torch.randperm(num_labels, generator=gen) for _ in range(batch_size)]
    )
    truth = torch.zeros(batch_size, num_labels, dtype=torch.bool)
    for row in range(batch_size):
        truth[row, torch.randperm(num_labels, generator=gen)[:positives]] = True
    return CandidateBatch(
        anchor_ids=torch.arange(batch_size),
        candidate_ids=ids,
        scores=torch.randn(batch_size, num_labels, generator=gen),
        positive_scores=torch.zeros(batch_size),
        known_positive=truth.gather(1, ids),
    ), truth


def chosen_sets(batch, positions):
    labels = batch.candidate_ids.gather(1, positions)
    return [set(row.tolist()) for row in labels]


def test_all_returns_every_negative_label():
    batch, truth = label_batch()
    sampler = AllLabels()
    assert sampler.num_negatives(5) == ALL_CANDIDATES
    k = cap_negatives(sampler.num_negatives(5), batch.known_positive)
    assert k == 37
    out = make_context(sampler=sampler).sample_negatives(batch, k).positions
    for row, labels in enumerate(chosen_sets(batch, out)):
        assert labels == set((~truth[row]).nonzero()[:, 0].tolist())


def test_all_pads_rows_with_fewer_negatives():
    batch, _ = label_batch(num_labels=10, positives=2)
    known = batch.known_positive.clone()
    known[0] |= batch.candidate_ids[0] < 6  # row 0: at most 4 negatives
    batch = CandidateBatch(
        anchor_ids=batch.anchor_ids,
        candidate_ids=batch.candidate_ids,
        scores=batch.scores,
        positive_scores=batch.positive_scores,
        known_positive=known,
    )
    k = cap_negatives(ALL_CANDIDATES, known)
    out = AllLabels().sample(batch, k, torch.Generator())
    assert out.shape == (8, k)
    assert not bool(known.gather(1, out).any())
    row0 = set(batch.candidate_ids[0].gather(0, out[0]).tolist())
    assert row0 == set(batch.candidate_ids[0][~known[0]].tolist())


def test_partial_fc_shares_one_label_set_across_the_batch():
    batch, truth = label_batch(num_labels=100, positives=2)
    sampler = PartialFC(rate=0.2)
    k = cap_negatives(sampler.num_negatives(5), batch.known_positive)
    out = sampler.sample(batch, k, torch.Generator().manual_seed(1))
    sets = chosen_sets(batch, out)
    batch_positives = set(truth.any(dim=0).nonzero()[:, 0].tolist())
    shared = set().union(*sets) | batch_positives
    # S = the batch's positives plus uniform others, ceil(r x L) in all
    assert len(shared) == math.ceil(0.2 * 100)
    assert batch_positives <= shared
    for row, labels in enumerate(sets):
        own = set(truth[row].nonzero()[:, 0].tolist())
        assert labels == shared - own  # the other examples' positives included


def test_partial_fc_keeps_all_batch_positives_beyond_the_rate():
    batch, truth = label_batch(num_labels=50, positives=5, batch_size=16)
    out = PartialFC(rate=0.02).sample(
        batch, cap_negatives(ALL_CANDIDATES, batch.known_positive), torch.Generator()
    )
    batch_positives = set(truth.any(dim=0).nonzero()[:, 0].tolist())
    assert set().union(*chosen_sets(batch, out)) == batch_positives


def test_partial_fc_at_rate_one_is_all():
    batch, _ = label_batch()
    k = cap_negatives(ALL_CANDIDATES, batch.known_positive)
    a = chosen_sets(batch, AllLabels().sample(batch, k, torch.Generator()))
    b = chosen_sets(batch, PartialFC(rate=1.0).sample(batch, k, torch.Generator()))
    assert a == b
