"""significance: scipy/ranx equivalences, Holm, tie groups, intervals, fallbacks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from negbench_leaderboard.significance import (
    MethodSample,
    MethodStats,
    _t_intervals,
    _welch_p,
    compare,
    holm,
    normalised_scores,
    resampled_spearman,
    wilcoxon_p,
)

N_ITEMS = 300


def items_sample(
    name: str, per_item: np.ndarray, *, seeds: int = 3, noise: float = 0.0, rng=None
) -> MethodSample:
    """A method whose seeds are per_item plus optional per-seed noise."""
    rng = rng or np.random.default_rng(0)
    scores = per_item[None, :] + noise * rng.standard_normal((seeds, per_item.size))
    return MethodSample(name, scores.mean(axis=1), item_scores=scores)


def by_method(results: list[MethodStats]) -> dict[str, MethodStats]:
    return {r.method: r for r in results}


# --------------------------------------------------------------------------
# Holm
# --------------------------------------------------------------------------


def test_holm_textbook_example() -> None:
    # m = 4; sorted 0.005, 0.01, 0.03, 0.04 scaled by 4, 3, 2, 1:
    # 0.02, 0.03, 0.06, 0.04 -> cumulative max 0.02, 0.03, 0.06, 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def statsmodels_holm(p: np.ndarray) -> np.ndarray:
    """statsmodels.stats.multitest.multipletests(method="holm"), written out."""
    sortind = np.argsort(p)
    pvals = p[sortind]
    ntests = len(pvals)
    corrected = np.maximum.accumulate((ntests - np.arange(ntests)) * pvals)
    corrected[corrected > 1] = 1
    out = np.empty_like(corrected)
    out[sortind] = corrected
    return out


@pytest.mark.parametrize("m", [1, 2, 7, 50])
def test_holm_matches_statsmodels_formula(m: int) -> None:
    rng = np.random.default_rng(m)
    p = rng.random(m) ** 3  # skewed towards small values, as real p's are
    if m > 2:
        p[1] = p[0]  # ties must not matter
    np.testing.assert_allclose(holm(p), statsmodels_holm(p))


def test_holm_caps_at_one_and_handles_empty() -> None:
    assert holm([0.5, 0.6, 0.9]).max() == 1.0
    assert holm([]).size == 0


# --------------------------------------------------------------------------
# Paired t over items (ranx)
# --------------------------------------------------------------------------


def test_ranx_paired_t_is_two_sided_ttest_rel() -> None:
    from ranx.statistical_tests import paired_student_t_test

    rng = np.random.default_rng(1)
    a, b = rng.random(50), rng.random(50)
    # ranx returns (p, p <= max_p), not a statistic: p is ttest_rel's two-sided
    p, significant = paired_student_t_test(a, b, 0.01)
    assert p == stats.ttest_rel(a, b).pvalue
    one_sided = min(
        stats.ttest_rel(a, b, alternative=side).pvalue for side in ("less", "greater")
    )
    assert p == pytest.approx(2 * one_sided)
    assert significant == (p <= 0.01)


def test_paired_t_p_equals_scipy_ttest_rel() -> None:
    rng = np.random.default_rng(2)
    base = rng.random(N_ITEMS)
    a = items_sample("a", base + 0.01, noise=0.1, rng=rng)
    b = items_sample("b", base, noise=0.1, rng=rng)
    res = by_method(compare([b, a]))
    assert a.item_scores is not None and b.item_scores is not None
    expected = stats.ttest_rel(
        a.item_scores.mean(axis=0), b.item_scores.mean(axis=0)
    ).pvalue
    first, second = sorted(res.values(), key=lambda r: r.rank)
    # one comparison: Holm leaves it unchanged
    assert first.p_next == pytest.approx(expected, rel=1e-12)
    assert second.p_next is None
    assert first.test == f"paired t (ranx compare's test) over {N_ITEMS} items"


def test_paired_t_degenerate_differences() -> None:
    base = np.arange(20) / 4  # exact in binary: a shift keeps differences equal
    same = compare([items_sample("a", base), items_sample("b", base)])
    assert [r.p_next for r in same] == [1.0, None]  # identical: tie, not nan
    assert {r.group for r in same} == {1}
    shifted = by_method(
        compare([items_sample("a", base + 0.5), items_sample("b", base)])
    )
    # every item better by the same amount: zero variance, maximal evidence
    assert shifted["a"].p_next == 0.0
    assert (shifted["a"].group, shifted["b"].group) == (1, 2)


def test_unit_names_the_items() -> None:
    base = np.linspace(0, 1, 10)
    res = compare([items_sample("a", base)], unit="queries")
    assert "10 queries" in res[0].test


# --------------------------------------------------------------------------
# Tie groups
# --------------------------------------------------------------------------


def test_clearly_different_methods_form_two_groups() -> None:
    rng = np.random.default_rng(3)
    base = rng.random(N_ITEMS)
    res = by_method(
        compare(
            [
                items_sample("weak", base, noise=0.05, rng=rng),
                items_sample("strong", base + 0.2, noise=0.05, rng=rng),
            ]
        )
    )
    assert (res["strong"].rank, res["weak"].rank) == (1, 2)
    assert (res["strong"].group, res["weak"].group) == (1, 2)
    assert res["strong"].p_next is not None and res["strong"].p_next < 0.05


def test_methods_differing_by_noise_share_a_group() -> None:
    rng = np.random.default_rng(4)
    base = rng.random(N_ITEMS)
    res = compare(
        [
            items_sample("a", base, noise=0.1, rng=rng),
            items_sample("b", base, noise=0.1, rng=rng),
        ]
    )
    assert {r.group for r in res} == {1}
    assert {r.rank for r in res} == {1, 2}  # ranks still differ


def test_chain_of_ties_is_one_group_adjacency_rule() -> None:
    # A ~ B and B ~ C (adjacent differences not significant) but A vs C is:
    # groups follow adjacency, so all three share group 1
    rng = np.random.default_rng(5)
    base = rng.random(N_ITEMS)
    noise = 0.1 * rng.standard_normal((3, N_ITEMS))
    noise -= noise.mean(axis=1, keepdims=True)  # mean differences exactly 2 * δ
    delta = 0.012  # adjacent t ~ 1.5, A vs C t ~ 3
    a, b, c = base + delta + noise[0], base + noise[1], base - delta + noise[2]
    assert stats.ttest_rel(a, c).pvalue < 0.01  # the premise
    assert stats.ttest_rel(a, b).pvalue > 0.05
    assert stats.ttest_rel(b, c).pvalue > 0.05
    samples = [
        MethodSample(name, np.array([v.mean()]), item_scores=v[None, :])
        for name, v in (("A", a), ("B", b), ("C", c))
    ]
    res = by_method(compare(samples))
    assert [res[k].rank for k in "ABC"] == [1, 2, 3]
    assert res["A"].p_next is not None and res["A"].p_next >= 0.05
    assert res["B"].p_next is not None and res["B"].p_next >= 0.05
    assert [res[k].group for k in "ABC"] == [1, 1, 1]


def test_equal_means_always_share_a_group() -> None:
    # seed means equal while item scores (inconsistently) differ a lot: the
    # test alone would split them, the rule keeps one group and one rank
    base = np.linspace(0, 1, 50)
    seeds = np.array([0.5, 0.5])
    hi = MethodSample("hi", seeds, item_scores=np.tile(base + 0.3, (2, 1)))
    lo = MethodSample("lo", seeds, item_scores=np.tile(base, (2, 1)))
    res = compare([hi, lo])
    assert [r.rank for r in res] == [1, 1]
    assert [r.group for r in res] == [1, 1]


def test_groups_and_holm_over_several_methods() -> None:
    rng = np.random.default_rng(6)
    base = rng.random(N_ITEMS)
    levels = {"a": 0.3, "b": 0.3, "c": 0.0, "d": 0.0}
    samples = [
        items_sample(k, base + v, noise=0.05, rng=rng) for k, v in levels.items()
    ]
    res = by_method(compare(samples))
    assert {res["a"].group, res["b"].group} == {1}
    assert {res["c"].group, res["d"].group} == {2}
    # three adjacent comparisons, Holm-adjusted
    assert sum(r.p_next is not None for r in res.values()) == 3


def test_competition_ranks_and_lower_is_better() -> None:
    samples = [
        MethodSample("x", np.array([1.0, 1.2])),
        MethodSample("y", np.array([2.0, 2.2])),
        MethodSample("z", np.array([2.0, 2.2])),
    ]
    high = by_method(compare(samples))
    assert [high[k].rank for k in "xyz"] == [3, 1, 1]
    low = by_method(compare(samples, higher_is_better=False))
    assert [low[k].rank for k in "xyz"] == [1, 2, 2]


# --------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------


def test_bootstrap_ci_contains_mean() -> None:
    rng = np.random.default_rng(7)
    base = rng.random(N_ITEMS)
    res = compare(
        [
            items_sample(k, base + 0.05 * i, noise=0.1, rng=rng)
            for i, k in enumerate("abc")
        ]
    )
    for r in res:
        assert r.ci_low < r.mean < r.ci_high
        # the standard error of a mean of 300 uniform items is ~0.017
        assert 0.02 < r.ci_high - r.ci_low < 0.15


def test_one_seed_without_items_collapses_ci() -> None:
    res = compare(
        [MethodSample("a", np.array([0.7])), MethodSample("b", np.array([0.6]))]
    )
    for r in res:
        assert (r.ci_low, r.ci_high, r.std) == (r.mean, r.mean, 0.0)
        assert "untestable" in r.test or r.p_next is None
    assert res[0].p_next == 1.0  # cannot be tested: tied
    assert {r.group for r in res} == {1}


def test_seed_ci_is_student_t() -> None:
    scores = np.array([0.61, 0.64, 0.60, 0.66])
    (r,) = compare([MethodSample("a", scores)])
    low, high = stats.t.interval(
        0.95, scores.size - 1, loc=scores.mean(), scale=stats.sem(scores)
    )
    assert (r.ci_low, r.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert r.std == pytest.approx(scores.std(ddof=1))


def test_rank_intervals_contain_rank_and_clear_winner_is_exact() -> None:
    rng = np.random.default_rng(8)
    base = rng.random(N_ITEMS)
    levels = [0.5, 0.02, 0.01, 0.0, -0.01]
    res = compare(
        [
            items_sample(f"m{i}", base + v, noise=0.1, rng=rng)
            for i, v in enumerate(levels)
        ]
    )
    for r in res:
        assert r.rank_low <= r.rank <= r.rank_high
    winner = res[0]
    assert (winner.rank, winner.rank_low, winner.rank_high) == (1, 1, 1)
    # the close ones are uncertain
    assert any(r.rank_high - r.rank_low >= 1 for r in res[1:])


def test_single_method() -> None:
    (r,) = compare([items_sample("only", np.linspace(0, 1, 30), noise=0.1)])
    assert (r.rank, r.rank_low, r.rank_high, r.group, r.p_next) == (1, 1, 1, 1, None)
    assert r.ci_low <= r.mean <= r.ci_high


def test_seed_rank_intervals_resample_seeds() -> None:
    rng = np.random.default_rng(9)
    samples = [
        MethodSample("a", 0.80 + 0.001 * rng.standard_normal(5)),
        MethodSample("b", 0.50 + 0.05 * rng.standard_normal(5)),
        MethodSample("c", 0.50 + 0.05 * rng.standard_normal(5)),
    ]
    res = by_method(compare(samples))
    assert (res["a"].rank_low, res["a"].rank_high) == (1, 1)
    assert (res["b"].rank_low, res["b"].rank_high) == (2, 3)
    assert res["a"].test == "Welch t over seeds"


def test_deterministic_under_seed() -> None:
    rng = np.random.default_rng(10)
    base = rng.random(N_ITEMS)
    samples = [
        items_sample(k, base + 0.003 * i, noise=0.1, rng=rng)
        for i, k in enumerate("abcd")
    ]
    assert compare(samples, seed=3) == compare(samples, seed=3)
    other = compare(samples, seed=4)
    assert [r.ci_low for r in other] != [r.ci_low for r in compare(samples, seed=3)]
    # tests on items do not depend on the bootstrap
    assert [r.p_next for r in other] == [r.p_next for r in compare(samples, seed=3)]


# --------------------------------------------------------------------------
# Welch over seeds and fallbacks
# --------------------------------------------------------------------------


def test_welch_p_equals_scipy() -> None:
    a, b = np.array([0.70, 0.72, 0.69]), np.array([0.60, 0.66, 0.61, 0.64])
    res = by_method(compare([MethodSample("a", a), MethodSample("b", b)]))
    expected = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert res["a"].p_next == pytest.approx(expected, rel=1e-12)


def test_mixed_item_counts_fall_back_to_seeds() -> None:
    a = items_sample("a", np.linspace(0.5, 1, 40), noise=0.05)
    b = items_sample("b", np.linspace(0, 0.5, 30), noise=0.05)
    res = by_method(compare([a, b]))
    assert res["a"].test.startswith("Welch t over seeds")
    assert "item counts differ" in res["a"].test
    expected = stats.ttest_ind(a.seed_scores, b.seed_scores, equal_var=False).pvalue
    assert res["a"].p_next == pytest.approx(expected)
    # seed CI, not an item bootstrap
    low, _ = stats.t.interval(
        0.95, 2, loc=a.seed_scores.mean(), scale=stats.sem(a.seed_scores)
    )
    assert res["a"].ci_low == pytest.approx(low)


def test_some_methods_without_items_fall_back_to_seeds() -> None:
    a = items_sample("a", np.linspace(0.5, 1, 40), noise=0.05)
    b = dataclasses.replace(items_sample("b", np.linspace(0, 1, 40)), item_scores=None)
    res = compare([a, b])
    assert all("item data missing" in r.test for r in res)


# --------------------------------------------------------------------------
# Correlations: vectorised Spearman and the paired bootstrap
# --------------------------------------------------------------------------


def test_resampled_spearman_equals_scipy_with_ties() -> None:
    rng = np.random.default_rng(11)
    n = 40
    gold = np.round(rng.random(n) * 5)  # few distinct values: many ties
    arrays = [
        rng.random(n),
        np.round(rng.random(n) * 3),  # ties in the predictions too
        gold + rng.random(n),
        gold,
    ]
    idx = rng.integers(0, n, size=(25, n))
    counts = np.stack([np.bincount(i, minlength=n) for i in idx])
    for pred in arrays:
        full = resampled_spearman(pred, gold, np.ones(n))
        assert full[0] == pytest.approx(stats.spearmanr(pred, gold).statistic)
        ours = resampled_spearman(pred, gold, counts)
        ref = [stats.spearmanr(pred[i], gold[i]).statistic for i in idx]
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_resampled_spearman_constant_is_zero() -> None:
    assert resampled_spearman(np.ones(5), np.arange(5.0), np.ones(5))[0] == 0.0


def sts_sample(name: str, pred: np.ndarray, gold: np.ndarray) -> MethodSample:
    rho = np.array([stats.spearmanr(p, gold).statistic for p in pred])
    return MethodSample(name, rho, pair_data=(pred, gold))


def test_correlation_path_with_ties() -> None:
    rng = np.random.default_rng(12)
    n = 200
    gold = np.round(rng.random(n) * 5, 1)  # STS-like scores: ties
    good = sts_sample("good", gold + 0.5 * rng.standard_normal((3, n)), gold)
    bad = sts_sample("bad", gold + 3.0 * rng.standard_normal((3, n)), gold)
    tied = sts_sample("tied", np.round(gold + 3.0 * rng.standard_normal((3, n))), gold)
    res = by_method(compare([bad, good, tied]))
    assert res["good"].rank == 1
    assert res["good"].test == f"paired bootstrap over {n} pairs"
    # two comparisons: the smallest reachable p is 2/1001, times 2 for Holm
    assert res["good"].p_next == pytest.approx(2 * 2 / 1001)
    assert res["good"].group == 1 and res["good"].rank_high == 1
    for r in res.values():
        assert r.ci_low <= r.mean <= r.ci_high
        assert r.rank_low <= r.rank <= r.rank_high


def test_correlation_bootstrap_p_counts_sign_flips() -> None:
    # identical predictions: the difference is 0 on every resample -> p = 1
    rng = np.random.default_rng(13)
    gold = np.round(rng.random(60) * 5)
    pred = gold + rng.standard_normal((2, 60))
    res = compare([sts_sample("a", pred, gold), sts_sample("b", pred.copy(), gold)])
    assert res[0].p_next == 1.0 and {r.group for r in res} == {1}


def test_pairs_with_mixed_n_fall_back() -> None:
    rng = np.random.default_rng(14)
    g1, g2 = rng.random(30), rng.random(31)
    res = compare(
        [
            sts_sample("a", g1 + rng.random((2, 30)), g1),
            sts_sample("b", g2 + rng.random((2, 31)), g2),
        ]
    )
    assert all("pair counts differ" in r.test for r in res)


# --------------------------------------------------------------------------
# Normalised scores and validation
# --------------------------------------------------------------------------


def test_normalised_scores() -> None:
    means = {"a": 0.2, "b": 0.5, "c": 0.8}
    assert normalised_scores(means, True) == pytest.approx({"a": 0, "b": 0.5, "c": 1})
    assert normalised_scores(means, False) == pytest.approx({"a": 1, "b": 0.5, "c": 0})
    assert normalised_scores({"a": 3.0, "b": 3.0}, True) == {"a": 1.0, "b": 1.0}
    assert normalised_scores({}, True) == {}


def test_validation() -> None:
    assert compare([]) == []
    with pytest.raises(ValueError, match="n_boot"):
        compare([MethodSample("a", np.array([1.0]))], n_boot=0)
    with pytest.raises(ValueError, match="seed_scores"):
        compare([MethodSample("a", np.array([]))])
    with pytest.raises(ValueError, match="item_scores"):
        compare([MethodSample("a", np.array([1.0]), item_scores=np.ones(3))])


def test_welch_p_equals_scipy_over_many_shapes() -> None:
    rng = np.random.default_rng(7)
    for na, nb in [(2, 2), (3, 5), (5, 3), (10, 10)]:
        a, b = rng.normal(0.5, 0.1, (na, 20)), rng.normal(0.55, 0.2, (nb, 20))
        expected = stats.ttest_ind(a, b, axis=0, equal_var=False).pvalue
        np.testing.assert_allclose(_welch_p(a, b), expected, rtol=1e-12)


def test_t_quantile_equals_scipy_t_ppf() -> None:
    sizes = np.array([1, 2, 3, 5, 30])
    stds = np.full(5, 0.1)
    got = _t_intervals(np.zeros(5), stds, sizes)
    df = np.maximum(sizes - 1, 1)
    half = stats.t.ppf(0.975, df) * stds / np.sqrt(sizes)
    np.testing.assert_allclose(got[:, 1], np.where(sizes > 1, half, 0.0), rtol=1e-12)


# --------------------------------------------------------------------------
# Wilcoxon signed-rank (the overall tie groups)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 9, 13, 14, 30, 50, 51, 80])
@pytest.mark.parametrize("kind", ["continuous", "ties", "zeros", "ties+zeros"])
def test_wilcoxon_p_equals_scipy(n: int, kind: str) -> None:
    """Every branch of scipy's method="auto": exact, sign-flip permutation
    (n <= 13 with ties or zeros) and normal approximation with ties."""
    rng = np.random.default_rng(n * 10 + len(kind))
    # scipy enumerates 2**n sign flips per call in Python: few draws there
    draws = 2 if kind != "continuous" and 9 <= n <= 13 else 20
    for _ in range(draws):
        if kind == "continuous":
            d = rng.normal(0.1, 1.0, n)
        else:  # few distinct magnitudes: ties among |d|, and zeros if asked
            d = rng.integers(-3, 4, n) / 4.0
            if kind == "ties":
                d[d == 0] = 0.25
            elif kind == "zeros":
                d = np.where(d == 0, 0.0, rng.normal(0.1, 1.0, n))
        if not d.any():
            continue
        expected = stats.wilcoxon(d).pvalue
        assert wilcoxon_p(d) == pytest.approx(expected, rel=1e-10, abs=1e-15)
