"""Honest per-task ranks: confidence intervals, rank intervals and tie groups.

A leaderboard that orders methods by mean score alone overstates what the
evidence supports.  :func:`compare` adds, per method of one task, a 95%
confidence interval of its score, a 95% interval of its rank, and a *tie
group*: methods whose difference from the next-ranked method is not
significant after Holm's correction share a group.

The evidence used depends on what the task's methods report:

* **item means** (``item_scores``; retrieval per-query nDCG/MRR, KGE per-query
  reciprocal rank, multi-label per-label AP): adjacent methods are compared by
  a paired Student t test over the items (seed-averaged), exactly the test
  ranx's ``compare(stat_test="student")`` runs (Bassani, "ranx: A
  Blazing-Fast Python Library for Ranking Evaluation and Comparison", ECIR
  2022).  Intervals come from a paired bootstrap over items.
* **correlations** (``pair_data``; STS Spearman between cosine predictions and
  gold scores): a paired bootstrap over items, both methods' statistic being
  recomputed on the same resample (Efron & Tibshirani, "An Introduction to the
  Bootstrap", 1993; Koehn, "Statistical Significance Tests for Machine
  Translation Evaluation", EMNLP 2004, for the paired bootstrap in NLP
  evaluation).
* **seeds only**: Welch's t test over seed scores, a Student-t interval over
  seeds, and a per-method bootstrap of seeds for rank intervals.

Adjacent comparisons (rank 1 vs 2, 2 vs 3, ...) are Holm-corrected (Holm,
"A simple sequentially rejective multiple test procedure", Scandinavian
Journal of Statistics 6(2), 1979).

Everything is vectorised over bootstrap replicates, items and methods: one
task's replicates are an ``(N, n_boot)`` matrix of item *counts* (how often
each item is drawn), so a replicate's mean is a matrix product and a
replicate's Spearman correlation a count-weighted one.  100 methods x 300
items x 1000 replicates take ~10 ms per task; the correlation path costs
~10 ms per method and seed for 1379 pairs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = [
    "MethodSample",
    "MethodStats",
    "compare",
    "holm",
    "normalised_scores",
    "resampled_spearman",
    "wilcoxon_p",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Kind = Literal["items", "pairs", "seeds"]

# The confidence level of CIs and rank intervals (fixed, independent of the
# test's alpha, so that every leaderboard shows comparable intervals).
_CI_LEVEL = 0.95
_LOW_Q = 100 * (1 - _CI_LEVEL) / 2
_HIGH_Q = 100 - _LOW_Q


@dataclass(frozen=True)
class MethodSample:
    """One method's evidence on one task.

    ``seed_scores`` (S,) is the main metric per seed.  ``item_scores`` (S, N)
    holds per-item values of a main metric that is a mean over items;
    ``pair_data`` = (predictions (S, N), gold (N,)) serves correlation
    metrics.  Item order must agree across the methods of a task.
    """

    method: str
    seed_scores: np.ndarray
    item_scores: np.ndarray | None = None
    pair_data: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class MethodStats:
    """What the leaderboard shows for one method on one task."""

    method: str
    mean: float
    std: float
    ci_low: float
    ci_high: float
    rank: int
    rank_low: int
    rank_high: int
    group: int
    p_next: float | None
    test: str


# --------------------------------------------------------------------------
# Holm and normalised scores
# --------------------------------------------------------------------------


def holm(p_values: ArrayLike) -> FloatArray:
    """Holm-adjusted p-values (Holm 1979), returned in input order.

    Holm, "A simple sequentially rejective multiple test procedure" (1979):
    with the m p-values sorted ascending, p_(i) (0-based i) is scaled by
    (m - i); a cumulative maximum keeps the adjusted values monotone (a
    hypothesis is rejected only if all smaller ones are), and values are
    capped at 1.  Rejecting where the adjusted p < alpha controls the
    family-wise error rate at alpha.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m - np.arange(m))
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def normalised_scores(
    means: dict[str, float], higher_is_better: bool
) -> dict[str, float]:
    """Min-max normalise one task's means to [0, 1], 1 = best.

    Used to average across tasks of a family whose metrics live on different
    scales.  If all means are equal every method gets 1.0 (all are best).
    """
    if not means:
        return {}
    values = np.array(list(means.values()), dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high == low:
        return dict.fromkeys(means, 1.0)
    span = high - low
    if higher_is_better:
        return {k: (v - low) / span for k, v in means.items()}
    return {k: (high - v) / span for k, v in means.items()}


# --------------------------------------------------------------------------
# Bootstrap machinery
# --------------------------------------------------------------------------


def _bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator) -> FloatArray:
    """(n, n_boot) multiplicities of each item in each resample of n items.

    Counts instead of index lists make a replicate's mean one column of a
    matrix product and its Spearman a weighted sum, with no loop over
    replicates.  Items are rows so that reordering items (by value, for
    ranks) copies whole contiguous rows.
    """
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx * n_boot + np.arange(n_boot)[:, None]).ravel()
    counts = np.zeros(n * n_boot)
    np.add.at(counts, flat, 1.0)
    return counts.reshape(n, n_boot)


def prepare() -> None:
    """Do the one-off work (the BLAS library scan) before forking workers,
    so each forked worker inherits it instead of repeating it."""
    _blas_controller()


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's controller (found once: scanning libraries is slow)."""
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
    except ImportError:  # it comes with scikit-learn; without it, no limit
        return None
    return ThreadpoolController()


def _bootstrap_means(items: FloatArray, counts: FloatArray) -> FloatArray:
    """(B, M) replicate means of the (M, N) item scores: one matrix product.

    The product is small (~1 ms single-threaded for 100 methods x 300 items x
    1000 replicates); OpenBLAS's threads cost more than they save at that
    size and several times more on a busy machine, so BLAS runs on one
    thread for the duration of the product.
    """
    controller = _blas_controller()
    limit = (
        controller.limit(limits=1, user_api="blas")
        if controller is not None
        else contextlib.nullcontext()
    )
    with limit:
        product = items @ counts
    means: FloatArray = product.T / counts.shape[0]
    return means


def _sorted_ranks(
    values: FloatArray, counts: FloatArray
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Items ordered by value, their average ranks per resample, tie sizes.

    An item with value v ranks (number drawn below v) + (number drawn equal
    to v, plus 1) / 2 in a resample -- ``scipy.stats.rankdata`` with average
    ties on the materialised resample, for every copy of the item.  Sorting
    once and cumulating counts gives that for all replicates at once instead
    of sorting every replicate.  Undrawn items get a rank too; their weight
    is 0 wherever ranks are used.

    Returns (order, ranks (N, B) in that order, sum over tie blocks of
    t**3 - t per resample), the last being what Spearman's tie correction
    needs.
    """
    n = values.size
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    is_start = np.ones(n, dtype=bool)
    is_start[1:] = sorted_values[1:] != sorted_values[:-1]
    ties = not is_start.all()  # continuous scores (predictions) have none
    blocks = counts[order]  # a copy, so the in-place work below is safe
    if ties:
        blocks = np.add.reduceat(blocks, np.flatnonzero(is_start), axis=0)
    tie_term = np.einsum("kb,kb,kb->b", blocks, blocks, blocks) - n
    ranks = blocks.copy()
    _cumsum_rows(ranks)
    blocks -= 1.0
    blocks *= 0.5
    ranks -= blocks  # rank = cumulative count - (block count - 1) / 2
    if ties:
        ranks = ranks[np.cumsum(is_start) - 1]
    return order, ranks, tie_term


def _cumsum_rows(matrix: FloatArray) -> None:
    """``np.cumsum(matrix, axis=0, out=matrix)``, bit for bit, ~3.5x faster.

    numpy accumulates along axis 0 of a C-ordered matrix one strided column
    at a time; adding whole rows keeps every addition vectorised (the same
    additions in the same order, so the same floats).
    """
    for row in range(1, matrix.shape[0]):
        np.add(matrix[row], matrix[row - 1], out=matrix[row])


@dataclass(frozen=True)
class _GoldRanks:
    """Gold's per-resample ranks, weighted by counts, in item order."""

    weighted: FloatArray  # (N, B) counts * ranks
    spread: FloatArray  # (B,) sum of counts * (rank - mean rank) ** 2

    @classmethod
    def of(cls, gold: FloatArray, counts: FloatArray) -> _GoldRanks:
        order, sorted_ranks, tie_term = _sorted_ranks(gold, counts)
        ranks = np.empty_like(sorted_ranks)
        ranks[order] = sorted_ranks
        return cls(counts * ranks, _rank_spread(gold.size, tie_term))


def _rank_spread(n: int, tie_term: FloatArray) -> FloatArray:
    """Sum of squared deviations of n average ranks from their mean.

    (n**3 - n) / 12 without ties, less sum(t**3 - t) / 12 over tie blocks of
    size t (the classical tie correction of Spearman's rho).
    """
    return (n**3 - n - tie_term) / 12.0


def _spearman(pred: FloatArray, counts: FloatArray, gold: _GoldRanks) -> FloatArray:
    """(B,) Spearman of pred and gold on each resample (columns of counts).

    Pearson's r of average ranks, weighted by counts (an item drawn k times
    is k copies).  Ranks of n drawn elements average (n + 1) / 2, and every
    term is a multiple of 1/4, so the sums are exact in float64 and the
    one-pass formulas lose nothing.  A constant resample has no measurable
    association: 0 (scipy would say nan).
    """
    order, ranks, tie_term = _sorted_ranks(pred, counts)
    n = counts.shape[0]  # every resample draws n items
    cross = np.einsum("nb,nb->b", ranks, gold.weighted[order])
    cov = cross - n * ((n + 1) / 2.0) ** 2
    var = _rank_spread(n, tie_term) * gold.spread
    out: FloatArray = np.zeros_like(cov)
    np.divide(cov, np.sqrt(var), out=out, where=var > 0)
    return out


def resampled_spearman(x: ArrayLike, y: ArrayLike, counts: ArrayLike) -> FloatArray:
    """Spearman correlation of x and y on each resample given by ``counts``.

    ``counts`` (B, N) says how often each of the N items is drawn in each of B
    resamples; entry b equals ``scipy.stats.spearmanr(x[idx], y[idx])`` for
    an index list idx with row b's multiplicities (ties get average ranks, and
    Spearman's rho with ties is Pearson's r on average ranks).
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    w = np.ascontiguousarray(np.atleast_2d(np.asarray(counts, np.float64)).T)
    return _spearman(xa, w, _GoldRanks.of(ya, w))


def _competition_ranks(keys: FloatArray) -> IntArray:
    """Row-wise competition ranks (1 = smallest key; ties share the best rank).

    Vectorised over rows: sort each row, give every element of a run of equal
    keys the run's first position, and scatter back.
    """
    rows, cols = keys.shape
    order = np.argsort(keys, axis=1)  # ties are resolved below, not by order
    sorted_keys = np.take_along_axis(keys, order, axis=1)
    new_run = np.ones((rows, cols), dtype=bool)
    new_run[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    first = np.where(new_run, np.arange(cols), 0)
    run_start = np.maximum.accumulate(first, axis=1)
    ranks = np.empty((rows, cols), dtype=np.int64)
    np.put_along_axis(ranks, order, run_start + 1, axis=1)
    return ranks


# --------------------------------------------------------------------------
# Tests between adjacent methods
# --------------------------------------------------------------------------


def _degenerate_p(diff_mean: FloatArray) -> FloatArray:
    """p for a difference with no spread: 1 if it is zero, else 0.

    scipy returns nan (t = 0/0 or d/0) for constant differences.  A constant
    non-zero difference on every item (or seed) is the strongest evidence
    there is, so it is significant; a zero one is a tie.
    """
    return np.where(diff_mean == 0.0, 1.0, 0.0)


def _student_p(t: FloatArray, df: FloatArray) -> FloatArray:
    """Two-sided p of Student t statistics: 2 * P(T_df <= -|t|).

    The formula ``scipy.stats.t`` evaluates, through the same
    ``scipy.special.stdtr``; importing ``scipy.stats`` itself would add
    ~0.35 s to every build.  A nan t (0/0) stays nan for the caller.
    """
    p: FloatArray = np.minimum(2.0 * special.stdtr(df, -np.abs(t)), 1.0)
    return p


def _paired_t(control: FloatArray, treatment: FloatArray) -> FloatArray:
    """Two-sided paired t p-values for each column of (N, K) arrays.

    This is ranx ``compare``'s Student test: its ``paired_student_t_test``
    returns ``(p_value, p_value <= max_p)`` from ``scipy.stats.ttest_rel(...,
    alternative="two-sided")``; computing the same statistic here saves
    importing ranx and numba (~1 s) in every build (tests prove they agree).
    """
    n, k = control.shape
    diff = control - treatment
    if n < 2 or k == 0:  # no degrees of freedom, or nothing to compare
        return np.ones(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff.mean(axis=0) / (diff.std(axis=0, ddof=1) / np.sqrt(n))
    p = _student_p(t, np.full(k, n - 1.0))
    flat = (np.ptp(diff, axis=0) == 0.0) | np.isnan(p)
    p[flat] = _degenerate_p(diff.mean(axis=0))[flat]
    return p


def _bootstrap_p(point_diff: FloatArray, boot_diff: FloatArray) -> FloatArray:
    """Two-sided paired-bootstrap p for each column of (B, K) differences.

    The share of replicates whose difference does not have the observed sign
    (a zero counts as flipped, conservatively), +1-smoothed so p > 0 with
    finitely many replicates, doubled for two sides and capped at 1.  With B
    replicates the smallest possible p is 2 / (B + 1).
    """
    n_boot = boot_diff.shape[0]
    flips = (np.sign(point_diff) * boot_diff <= 0.0).sum(axis=0)
    p = np.minimum(1.0, 2.0 * (1.0 + flips) / (1.0 + n_boot))
    return np.where(point_diff == 0.0, 1.0, p)


def _welch(a: Sequence[FloatArray], b: Sequence[FloatArray]) -> FloatArray:
    """Welch t p-values for pairs (a[k], b[k]) of seed-score vectors.

    Pairs with the same seed counts are tested in one vectorised call.
    Fewer than 2 seeds on a side: p = 1.
    """
    k = len(a)
    p = np.ones(k)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i in range(k):
        if a[i].size >= 2 and b[i].size >= 2:
            by_shape.setdefault((a[i].size, b[i].size), []).append(i)
    for idx in by_shape.values():
        xa = np.stack([a[i] for i in idx], axis=1)
        xb = np.stack([b[i] for i in idx], axis=1)
        group_p = _welch_p(xa, xb)
        flat = (np.ptp(xa, axis=0) == 0.0) & (np.ptp(xb, axis=0) == 0.0)
        flat |= np.isnan(group_p)
        diff = xa.mean(axis=0) - xb.mean(axis=0)
        group_p[flat] = _degenerate_p(diff)[flat]
        p[idx] = group_p
    return p


def _welch_p(a: FloatArray, b: FloatArray) -> FloatArray:
    """Welch's two-sided p for each column of (Na, K) and (Nb, K) arrays.

    ``scipy.stats.ttest_ind(a, b, equal_var=False)``: t over the unpooled
    standard error, Welch-Satterthwaite degrees of freedom (Welch, "The
    generalization of Student's problem when several different population
    variances are involved", Biometrika 34, 1947).
    """
    na, nb = a.shape[0], b.shape[0]
    va, vb = a.var(axis=0, ddof=1) / na, b.var(axis=0, ddof=1) / nb
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (a.mean(axis=0) - b.mean(axis=0)) / np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return _student_p(t, df)


# --------------------------------------------------------------------------
# Wilcoxon signed-rank (overall tie groups)
# --------------------------------------------------------------------------


@functools.cache
def _signed_rank_pmf(n: int) -> FloatArray:
    """P(W+ = w) for w = 0 .. n(n+1)/2 under H0, n untied non-zero ranks.

    Each rank joins W+ with probability 1/2 independently, so the counts of
    subsets per sum follow the product of (1 + x**r) for r = 1..n.  Counts
    stay below 2**n <= 2**50 here, exact in float64.
    """
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    top = 0
    for r in range(1, n + 1):
        counts[r : top + r + 1] += counts[: top + 1].copy()
        top += r
    pmf: FloatArray = counts / 2.0**n
    return pmf


def _average_ranks(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Average ranks (1-based) of values, and the sizes of the tie blocks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    sizes = np.diff(np.r_[starts, values.size])
    block_rank = starts + (sizes + 1) / 2.0  # mean of positions start+1..start+size
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(block_rank, sizes)
    return ranks, sizes.astype(np.float64)


def wilcoxon_p(differences: ArrayLike) -> float:
    """Two-sided p of the Wilcoxon signed-rank test of paired differences.

    Wilcoxon, "Individual comparisons by ranking methods", Biometrics
    Bulletin 1(6), 1945.  Equal to ``scipy.stats.wilcoxon(d).pvalue`` with
    its defaults (zero_method="wilcox": zeros are dropped; method="auto";
    no continuity correction), whose rules it follows:

    * no ties among |d| and no zeros, n <= 50: the exact null distribution,
      p = 2 * min(P(W+ >= w), P(W+ <= w)), capped at 1;
    * ties or zeros and n <= 13 (n counting zeros): the exact permutation
      distribution over all sign flips, as ``scipy.stats.permutation_test``
      enumerates it (with its relative tolerance of 100 eps for ties);
    * otherwise the normal approximation with the tie-corrected variance.

    A test (``tests/leaderboard/test_significance.py``) checks equality
    against scipy on random inputs with ties and zeros.
    """
    d = np.asarray(differences, dtype=np.float64).ravel()
    n_all = d.size
    nonzero = d[d != 0.0]
    count = nonzero.size
    if count == 0:
        return float("nan")  # scipy: nothing to rank
    ranks, tie_sizes = _average_ranks(np.abs(nonzero))
    w_plus = float(ranks[nonzero > 0].sum())
    has_ties = bool((tie_sizes > 1).any())
    if not has_ties and count == n_all and n_all <= 50:
        pmf = _signed_rank_pmf(count)
        mean = count * (count + 1) / 4.0
        low, high = int(np.ceil(w_plus)), int(np.floor(w_plus))
        cdf = pmf[: low + 1].sum() if low <= mean else 1 - pmf[low + 1 :].sum()
        sf = pmf[high:].sum() if high <= mean else 1 - pmf[:high].sum()
        return float(np.clip(2.0 * min(sf, cdf), 0.0, 1.0))
    if n_all <= 13:
        # every assignment of signs to the ranks, as a (2**count, count) mask
        signs = (np.arange(2**count)[:, None] >> np.arange(count)) & 1
        null = signs @ ranks
        gamma = abs(np.finfo(np.float64).eps * 100 * w_plus)
        less = np.count_nonzero(null <= w_plus + gamma) / null.size
        greater = np.count_nonzero(null >= w_plus - gamma) / null.size
        return float(min(1.0, 2.0 * min(less, greater)))
    mean = count * (count + 1) / 4.0
    ties = (tie_sizes**3 - tie_sizes).sum() / 2
    z = (w_plus - mean) / np.sqrt((count * (count + 1) * (2 * count + 1) - ties) / 24)
    return float(special.erfc(abs(z) / np.sqrt(2.0)))


# --------------------------------------------------------------------------
# Per-task evidence
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evidence:
    """A task's statistic per method on the full data and per replicate."""

    point: FloatArray  # (M,)
    boot: FloatArray  # (B, M)
    p_adjacent: FloatArray  # (M - 1,) raw p of order[i] vs order[i + 1]
    tests: list[str]  # (M - 1,) the test behind each p
    name: str  # the task's test, shown for the last-ranked method


def _task_kind(samples: Sequence[MethodSample]) -> tuple[Kind, str]:
    """Which evidence the whole task can use, and why it fell back if it did.

    Paired tests need every method's items, aligned; one method without them
    (or with another N) would make the task's comparisons inconsistent, so the
    whole task falls back to seeds.
    """
    if all(s.pair_data is not None for s in samples):
        sizes = {np.asarray(s.pair_data[1]).size for s in samples if s.pair_data}
        if len(sizes) == 1:
            return "pairs", ""
        return "seeds", " (pair counts differ)"
    if all(s.item_scores is not None for s in samples):
        sizes = {np.asarray(s.item_scores).shape[-1] for s in samples}
        if len(sizes) == 1:
            return "items", ""
        return "seeds", " (item counts differ)"
    if any(s.item_scores is not None or s.pair_data is not None for s in samples):
        return "seeds", " (item data missing for some methods)"
    return "seeds", ""


def _item_evidence(
    samples: Sequence[MethodSample],
    order: IntArray,
    n_boot: int,
    rng: np.random.Generator,
    unit: str,
) -> _Evidence:
    # the per-method statistic is the mean over items of the seed-averaged
    # item scores, so one matrix product gives every replicate of every method
    items = np.stack(
        [np.asarray(s.item_scores, dtype=np.float64).mean(axis=0) for s in samples]
    )
    n = items.shape[1]
    boot = _bootstrap_means(items, _bootstrap_counts(n, n_boot, rng))
    p = _paired_t(items[order[:-1]].T, items[order[1:]].T)
    test = f"paired t (ranx compare's test) over {n} {unit}"
    return _Evidence(items.mean(axis=1), boot, p, [test] * p.size, test)


def _pair_evidence(
    samples: Sequence[MethodSample],
    order: IntArray,
    n_boot: int,
    rng: np.random.Generator,
    unit: str,
) -> _Evidence:
    pairs = [
        (np.atleast_2d(np.asarray(pred, np.float64)), np.asarray(gold, np.float64))
        for pred, gold in (s.pair_data for s in samples if s.pair_data)
    ]
    n = pairs[0][1].size
    # column 0 is the full data (all counts 1), columns 1.. the resamples, so
    # the point estimate and the replicates share one code path
    counts = np.hstack([np.ones((n, 1)), _bootstrap_counts(n, n_boot, rng)])
    golds: list[tuple[FloatArray, _GoldRanks]] = []  # gold is usually shared

    def gold_ranks(gold: FloatArray) -> _GoldRanks:
        for known, ranks in golds:
            if np.array_equal(known, gold):
                return ranks
        golds.append((gold, _GoldRanks.of(gold, counts)))
        return golds[-1][1]

    stat = np.empty((counts.shape[1], len(pairs)))
    for m, (pred, gold) in enumerate(pairs):
        ranks = gold_ranks(gold)
        stat[:, m] = np.mean([_spearman(p, counts, ranks) for p in pred], axis=0)
    point, boot = stat[0], stat[1:]
    a, b = order[:-1], order[1:]
    p = _bootstrap_p(point[a] - point[b], boot[:, a] - boot[:, b])
    test = f"paired bootstrap over {n} {unit}"
    return _Evidence(point, boot, p, [test] * p.size, test)


def _seed_evidence(
    samples: Sequence[MethodSample],
    order: IntArray,
    n_boot: int,
    rng: np.random.Generator,
    reason: str,
) -> _Evidence:
    seeds = [np.asarray(s.seed_scores, dtype=np.float64) for s in samples]
    sizes = np.array([x.size for x in seeds])
    # resample each method's seeds independently (methods share no seeds'
    # pairing), all methods at once: pad to the largest S, draw indices below
    # each method's own S, and average the first S draws
    width = int(sizes.max())
    padded = np.zeros((len(seeds), width))
    for m, x in enumerate(seeds):
        padded[m, : x.size] = x
    # a scalar bound (the usual case: every method ran the same seeds) draws
    # ~4x faster than a broadcast one
    high = width if (sizes == width).all() else sizes[None, :, None]
    idx = rng.integers(0, high, size=(n_boot, len(seeds), width))
    idx += width * np.arange(len(seeds))[None, :, None]  # rows of ``padded``
    picked = padded.ravel()[idx]
    picked *= np.arange(width) < sizes[:, None]  # drop draws past S
    boot = picked.sum(axis=2) / sizes
    a, b = order[:-1], order[1:]
    p = _welch([seeds[i] for i in a], [seeds[i] for i in b])
    base = f"Welch t over seeds{reason}"
    tests = [
        base
        if sizes[i] >= 2 and sizes[j] >= 2
        else f"{base}: untestable, fewer than 2 seeds (p = 1)"
        for i, j in zip(a, b, strict=True)
    ]
    means = np.array([x.mean() for x in seeds])
    return _Evidence(means, boot, p, tests, base)


# --------------------------------------------------------------------------
# Intervals, ranks and groups
# --------------------------------------------------------------------------


def _t_intervals(means: FloatArray, stds: FloatArray, sizes: IntArray) -> FloatArray:
    """(M, 2) Student-t intervals of the mean over seeds; a point for one seed.

    One vectorised quantile call (``scipy.stats.t.ppf``'s ``stdtrit``) for
    all methods: per-method calls would dominate a 100-method task.
    """
    df = np.maximum(sizes - 1, 1).astype(np.float64)
    quantile = special.stdtrit(df, 0.5 + _CI_LEVEL / 2)
    half = np.where(sizes > 1, quantile * stds / np.sqrt(sizes), 0.0)
    return np.column_stack([means - half, means + half])


def _percentile_intervals(boot: FloatArray, means: FloatArray) -> FloatArray:
    """(M, 2) bootstrap percentile intervals, widened to contain the mean.

    A percentile interval of a mean practically always contains it; for a
    resampled Spearman (biased by the ties duplicates create) it may not, and
    widening is the conservative fix.
    """
    q = np.percentile(boot, [_LOW_Q, _HIGH_Q], axis=0)
    return np.column_stack([np.minimum(q[0], means), np.maximum(q[1], means)])


def _rank_intervals(
    boot: FloatArray, ranks: IntArray, sign: float
) -> tuple[IntArray, IntArray]:
    """Percentile intervals of each method's rank across replicates.

    Widened to contain the reported rank: a skewed bootstrap can leave the
    point rank just outside, and an interval excluding the shown rank only
    confuses; widening is the conservative direction.
    """
    boot_ranks = _competition_ranks(sign * boot)
    low = np.percentile(boot_ranks, _LOW_Q, axis=0, method="lower")
    high = np.percentile(boot_ranks, _HIGH_Q, axis=0, method="higher")
    return (
        np.minimum(low.astype(np.int64), ranks),
        np.maximum(high.astype(np.int64), ranks),
    )


def _groups(
    order: IntArray, means: FloatArray, adjusted: FloatArray, alpha: float
) -> IntArray:
    """Tie groups by walking the rank order (adjacency rule).

    A new group starts at the (i+1)-th method only if its difference from the
    i-th is significant after Holm; equal means always share a group.  Groups
    therefore chain: A ~ B and B ~ C put A, B, C in one group even if A vs C
    would be significant -- a group reads "not separable from its neighbour",
    not "all pairwise tied".
    """
    groups = np.empty(order.size, dtype=np.int64)
    current = 1
    groups[order[0]] = current
    for k in range(1, order.size):
        prev, this = order[k - 1], order[k]
        if adjusted[k - 1] < alpha and means[prev] != means[this]:
            current += 1
        groups[this] = current
    return groups


def _validate(samples: Sequence[MethodSample], n_boot: int) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    for s in samples:
        seeds = np.asarray(s.seed_scores)
        if seeds.ndim != 1 or seeds.size == 0:
            raise ValueError(f"{s.method}: seed_scores must be a non-empty (S,) array")
        if s.item_scores is not None and np.ndim(s.item_scores) != 2:
            raise ValueError(f"{s.method}: item_scores must be (S, N)")
        if s.pair_data is not None:
            pred, gold = (np.asarray(x) for x in s.pair_data)
            if gold.ndim != 1 or pred.shape[-1] != gold.size:
                raise ValueError(f"{s.method}: pair_data must be ((S, N), (N,))")


def compare(
    samples: Sequence[MethodSample],
    *,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    unit: str | None = None,
) -> list[MethodStats]:
    """Means, CIs, ranks, rank intervals and Holm tie groups for one task.

    Returned in input order.  ``rank`` is the competition rank by mean seed
    score (ties share the best rank; equal means are ordered by name).
    Adjacent methods in that order are tested -- paired t over items (as ranx
    ``compare``, Bassani ECIR 2022), paired bootstrap over items for
    correlations (Efron & Tibshirani 1993; Koehn 2004) or Welch t over seeds
    -- and the p-values Holm-corrected (Holm 1979) over the task's M - 1
    comparisons.  ``p_next`` is the adjusted p against the next-ranked method.

    Item bootstraps apply the same resample to all methods, so rank intervals
    reflect the shared difficulty of the items; replicate statistics are
    shifted by (mean seed score - full-data statistic) so that intervals are
    anchored at the reported mean even if the caller's seed scores and item
    scores differ slightly (e.g. float32 vs float64 aggregation).

    Without item data a method's replicates resample its own seeds; a
    one-seed method's replicates are constant, so its rank interval reflects
    only the other methods' spread (and its comparisons are untestable, p = 1).

    Note: a bootstrap p is at least 2 / (n_boot + 1), and Holm multiplies the
    smallest p by M - 1, so correlation tasks need n_boot > 40 * (M - 1) for
    any adjacent difference to be significant at alpha = 0.05.

    ``unit`` names the items in ``test`` ("queries", "labels"); default
    "items", or "pairs" for correlation data.
    """
    _validate(samples, n_boot)
    if not samples:
        return []
    rng = np.random.default_rng(seed)
    sign = -1.0 if higher_is_better else 1.0
    seeds = [np.asarray(s.seed_scores, dtype=np.float64) for s in samples]
    means = np.array([x.mean() for x in seeds])
    stds = np.array([x.std(ddof=1) if x.size > 1 else 0.0 for x in seeds])
    order = np.array(
        sorted(
            range(len(samples)), key=lambda i: (sign * means[i], samples[i].method, i)
        ),
        dtype=np.int64,
    )
    ranks = _competition_ranks((sign * means)[None, :])[0]

    kind, reason = _task_kind(samples)
    if kind == "items":
        ev = _item_evidence(samples, order, n_boot, rng, unit or "items")
    elif kind == "pairs":
        ev = _pair_evidence(samples, order, n_boot, rng, unit or "pairs")
    else:
        ev = _seed_evidence(samples, order, n_boot, rng, reason)
    shifted = ev.boot + (means - ev.point)

    if kind == "seeds":
        sizes = np.array([x.size for x in seeds], dtype=np.int64)
        ci = _t_intervals(means, stds, sizes)
    else:
        ci = _percentile_intervals(shifted, means)

    if len(samples) == 1:
        rank_low = rank_high = np.ones(1, dtype=np.int64)
    else:
        rank_low, rank_high = _rank_intervals(shifted, ranks, sign)

    adjusted = holm(ev.p_adjacent)
    groups = _groups(order, means, adjusted, alpha)
    p_next: list[float | None] = [None] * len(samples)
    # the last-ranked method has no comparison; it shows the task's test
    tests = [ev.name] * len(samples)
    for k, i in enumerate(order[:-1]):
        p_next[i] = float(adjusted[k])
        tests[i] = ev.tests[k]

    return [
        MethodStats(
            method=s.method,
            mean=float(means[i]),
            std=float(stds[i]),
            ci_low=float(ci[i, 0]),
            ci_high=float(ci[i, 1]),
            rank=int(ranks[i]),
            rank_low=int(rank_low[i]),
            rank_high=int(rank_high[i]),
            group=int(groups[i]),
            p_next=p_next[i],
            test=tests[i],
        )
        for i, s in enumerate(samples)
    ]
