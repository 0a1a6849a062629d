"""Default ``harness_rank``: seed means, honest uncertainty, Borda overall.

A *method* is a (model, loss, sampler) triple, plus its non-default
parameters when it has any.  Per task:

* methods are ranked by the mean of the main metric over seeds (competition
  ranking: equal means share a rank);
* every row gets a 95% confidence interval, a rank interval and a tie group
  from :func:`negbench_leaderboard.significance.compare`: paired tests over
  the task's test items (queries, test facts, labels, sentence pairs) when
  the runs stored per-item scores, over seeds otherwise, Holm-corrected.

Overall, each task gives a method ``n - rank`` points where n is the number
of methods ranked on that task, and methods are ordered by the sum (MTEB's
Borda count); per family, the mean over its tasks of the min-max normalised
score.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from harness.plugin import hookimpl
from harness.types import (
    BoardRow,
    Leaderboard,
    MethodSummary,
    RunResult,
    TaskInfo,
    canonical_json,
    params_label,
)

from .parallel import fork_map

if TYPE_CHECKING:
    from .significance import MethodSample, MethodStats

__all__ = ["harness_rank", "rank_results"]

#: per-item keys a correlation task (STS) stores instead of its main metric
PAIR_KEYS = ("cosine", "gold")
#: the correlation the pair bootstrap recomputes
PAIR_METRIC = "spearman"
#: what a family's per-item scores are, for the test's description
UNITS = {
    "retrieval": "queries",
    "kge": "link-prediction queries",
    "multilabel": "labels",
    "sts": "sentence pairs",
}

Key = tuple[str, str, str, str, str]  # task, model, loss, sampler, params
#: rank tasks in forked workers from this many tasks on
PARALLEL_FROM = 8


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def rank_results(
    results: Sequence[RunResult], tasks: dict[str, TaskInfo]
) -> Leaderboard:
    groups: dict[Key, list[RunResult]] = defaultdict(list)
    variants: dict[str, set[str]] = defaultdict(set)
    for result in results:
        variants[result.spec.task].add(_task_params(result))
    for result in results:
        spec = result.spec
        key = (
            _task_id(result, variants),
            spec.model,
            spec.loss,
            spec.sampler,
            _method_params(result),
        )
        groups[key].append(result)
    task_infos = dict(tasks)
    by_task: dict[str, list[tuple[Key, list[RunResult], int]]] = defaultdict(list)
    for key, group in groups.items():
        ok = sorted((r for r in group if r.ok), key=lambda r: r.spec.seed)
        if not ok:
            continue
        if key[0] not in by_task:
            task_infos[key[0]] = _task_info(tasks, ok[0], key[0])
        by_task[key[0]].append((key, ok, len(group) - len(ok)))
    from . import significance  # scipy: imported only when a board is ranked

    significance.prepare()
    # The statistics (bootstraps) run in forked workers on plain arrays; the
    # runs' Python objects stay in this process, where touching them costs no
    # copy-on-write page copies.
    tasks_in_order = list(by_task)
    work = [
        (task_infos[t], _samples(task_infos[t], by_task[t])) for t in tasks_in_order
    ]
    all_stats = fork_map(_compare, work, min_items=PARALLEL_FROM)
    rows = [
        row
        for task, stats in zip(tasks_in_order, all_stats, strict=True)
        for row in _rows(task_infos[task], by_task[task], stats)
    ]
    present = {r.task for r in rows}
    return Leaderboard(
        tasks={k: v for k, v in task_infos.items() if k in present},
        rows=tuple(rows),
        overall=_overall(rows, task_infos),
    )


def _task_params(result: RunResult) -> str:
    """The task's own parameters (epochs, batch size, ...): part of the
    protocol every method on the task shares, not of any method."""
    spec = result.spec
    return params_label({spec.task: spec.params.get(spec.task, {})})


def _method_params(result: RunResult) -> str:
    spec = result.spec
    return params_label({k: v for k, v in spec.params.items() if k != spec.task})


def _task_id(result: RunResult, variants: dict[str, set[str]]) -> str:
    """The task's name, qualified by its parameters only where the store holds
    runs of the same task under different protocol parameters."""
    task = result.spec.task
    if len(variants[task]) == 1:
        return task
    return f"{task} {_task_params(result) or '(defaults)'}"


def _task_info(tasks: dict[str, TaskInfo], result: RunResult, name: str) -> TaskInfo:
    """The registry's info on the run's task (inferred from the run if the
    task is not installed here), named and described for its protocol."""
    spec = result.spec
    base = tasks.get(spec.task) or TaskInfo(
        name=spec.task, family=result.family, main_metric=result.main_metric
    )
    protocol = _task_params(result)
    if not protocol:
        return replace(base, name=name)
    return replace(
        base,
        name=name,
        description=f"{base.description} Protocol parameters: {protocol}.".strip(),
    )


def _compare(work: tuple[TaskInfo, list[MethodSample]]) -> list[MethodStats]:
    from .significance import compare

    info, samples = work
    return compare(
        samples, higher_is_better=info.higher_is_better, unit=UNITS.get(info.family)
    )


def _rows(
    info: TaskInfo,
    entries: list[tuple[Key, list[RunResult], int]],
    stats: list[MethodStats],
) -> list[BoardRow]:
    """One task's rows, with ranks, intervals and tie groups."""
    rows = []
    for (key, ok, failed), stat in zip(entries, stats, strict=True):
        _, model, loss, sampler, params = key
        metric_names = sorted({m for r in ok for m in r.metrics})
        diag_names = sorted({d for r in ok for d in r.diagnostics})
        rows.append(
            BoardRow(
                task=info.name,
                family=info.family,
                model=model,
                loss=loss,
                sampler=sampler,
                params=params,
                main_metric=info.main_metric,
                mean=stat.mean,
                std=stat.std,
                n_seeds=len(ok),
                rank=stat.rank,
                seed_scores=tuple(_score(r, info) for r in ok),
                ci_low=stat.ci_low,
                ci_high=stat.ci_high,
                rank_low=stat.rank_low,
                rank_high=stat.rank_high,
                group=stat.group,
                p_next=stat.p_next,
                test=stat.test,
                metrics={
                    m: _mean([r.metrics[m] for r in ok if m in r.metrics])
                    for m in metric_names
                },
                diagnostics={
                    d: _mean([r.diagnostics[d] for r in ok if d in r.diagnostics])
                    for d in diag_names
                },
                train_seconds=_mean([r.timings.get("train", 0.0) for r in ok]),
                run_ids=tuple(r.run_id for r in ok),
                failed=failed,
            )
        )
    rows.sort(key=lambda r: (r.rank, r.method))
    return rows


def _score(result: RunResult, info: TaskInfo) -> float:
    return float(result.metrics.get(info.main_metric, float("nan")))


def _samples(
    info: TaskInfo, entries: list[tuple[Key, list[RunResult], int]]
) -> list[MethodSample]:
    """The per-seed scores and, where every run has them, aligned item scores."""
    runs = [r for _, ok, _ in entries for r in ok]
    items = _common_items(runs, info.main_metric)
    pairs = (
        _common_items(runs, PAIR_KEYS[0])
        if items is None and info.main_metric == PAIR_METRIC
        else None
    )
    from .significance import MethodSample

    samples = []
    for key, ok, _ in entries:
        item_scores = pair_data = None
        if items is not None:
            item_scores = _matrix(ok, info.main_metric, items)
        elif pairs is not None and all(PAIR_KEYS[1] in r.per_item for r in ok):
            gold = ok[0].per_item[PAIR_KEYS[1]]
            pair_data = (
                _matrix(ok, PAIR_KEYS[0], pairs),
                np.array([gold[i] for i in pairs], dtype=np.float64),
            )
        samples.append(
            MethodSample(
                method=canonical_json(list(key)),
                seed_scores=np.array([_score(r, info) for r in ok]),
                item_scores=item_scores,
                pair_data=pair_data,
            )
        )
    if pairs is not None and any(s.pair_data is None for s in samples):
        samples = [replace(s, pair_data=None) for s in samples]
    return samples


def _common_items(runs: list[RunResult], metric: str) -> list[str] | None:
    """The item ids of ``metric`` if every run stored the same ones, else None."""
    first = runs[0].per_item.get(metric)
    if not first:
        return None
    keys = first.keys()
    for run in runs[1:]:
        other = run.per_item.get(metric)
        if other is None or other.keys() != keys:
            return None
    return sorted(keys)


def _matrix(runs: list[RunResult], metric: str, items: list[str]) -> np.ndarray:
    """shape: (seeds, items)."""
    return np.array(
        [[run.per_item[metric][i] for i in items] for run in runs], dtype=np.float64
    )


def _overall(
    rows: list[BoardRow], tasks: dict[str, TaskInfo]
) -> tuple[MethodSummary, ...]:
    borda: dict[str, float] = defaultdict(float)
    covered: dict[str, list[BoardRow]] = defaultdict(list)
    per_task_score: dict[str, dict[str, float]] = defaultdict(dict)
    family_scores: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    by_task: dict[str, list[BoardRow]] = defaultdict(list)
    for row in rows:
        by_task[row.task].append(row)
    from .significance import normalised_scores

    for task, task_rows in by_task.items():
        normalised = normalised_scores(
            {r.method: r.mean for r in task_rows}, tasks[task].higher_is_better
        )
        for row in task_rows:
            borda[row.method] += len(task_rows) - row.rank
            covered[row.method].append(row)
            family_scores[row.method][row.family].append(normalised[row.method])
            per_task_score[row.method][task] = normalised[row.method]
    order = sorted(borda, key=lambda m: (-borda[m], -len(covered[m]), m))
    groups, p_next = _overall_groups(order, per_task_score)
    summaries = []
    for method in order:
        first = covered[method][0]
        fn_rates = [r.fn_rate for r in covered[method] if r.fn_rate is not None]
        summaries.append(
            MethodSummary(
                method=method,
                model=first.model,
                loss=first.loss,
                sampler=first.sampler,
                params=first.params,
                borda=borda[method],
                rank=1 + sum(1 for m in order if borda[m] > borda[method]),
                tasks=len(covered[method]),
                family_scores={
                    family: _mean(values)
                    for family, values in sorted(family_scores[method].items())
                },
                fn_rate=_mean(fn_rates) if fn_rates else None,
                train_seconds=_mean([r.train_seconds for r in covered[method]]),
                group=groups[method],
                p_next=p_next.get(method),
            )
        )
    return tuple(summaries)


def _overall_groups(
    order: list[str], scores: dict[str, dict[str, float]], alpha: float = 0.05
) -> tuple[dict[str, int], dict[str, float]]:
    """Overall tie groups: adjacent methods in Borda order compared by a
    Wilcoxon signed-rank test on their normalised scores over the tasks both
    ran (Demsar, JMLR 2006, recommends it for comparing methods over many
    data sets), Holm-corrected; too few shared tasks to test = tied."""
    from .significance import holm, wilcoxon_p

    raw = []
    for better, worse in itertools.pairwise(order):
        shared = sorted(scores[better].keys() & scores[worse].keys())
        diffs = [scores[better][t] - scores[worse][t] for t in shared]
        if not any(diffs):  # no shared task, or identical everywhere
            raw.append(1.0)
            continue
        raw.append(wilcoxon_p(diffs))
    adjusted = holm(raw)
    groups, p_next, group = {}, {}, 1
    for i, method in enumerate(order):
        if i and adjusted[i - 1] < alpha:
            group += 1
        groups[method] = group
        if i < len(adjusted):
            p_next[method] = float(adjusted[i])
    return groups, p_next


@hookimpl(trylast=True)
def harness_rank(
    results: Sequence[RunResult], tasks: dict[str, TaskInfo]
) -> Leaderboard:
    """Rank by seed-mean per task with CIs and tie groups; Borda overall."""
    return rank_results(results, tasks)
