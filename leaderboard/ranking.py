"""Default ``harness_rank``: seed means per method, per-task ranks, Borda overall.

A *method* is a (model, loss, sampler) triple.  Per task, methods are ranked
by the mean of the main metric over seeds (competition ranking: equal means
share a rank).  Overall, each task gives a method ``n - rank`` points where n
is the number of methods ranked on that task, and methods are ordered by the
sum (MTEB's Borda count).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence

from harness.plugin import hookimpl
from harness.types import BoardRow, Leaderboard, RunResult, TaskInfo

__all__ = ["harness_rank", "rank_results"]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def rank_results(
    results: Sequence[RunResult], tasks: dict[str, TaskInfo]
) -> Leaderboard:
    groups: dict[tuple[str, str, str, str], list[RunResult]] = defaultdict(list)
    for result in results:
        spec = result.spec
        groups[(spec.task, spec.model, spec.loss, spec.sampler)].append(result)
    task_infos = dict(tasks)
    rows: list[BoardRow] = []
    for (task, model, loss, sampler), group in groups.items():
        ok = [r for r in group if r.ok]
        if not ok:
            continue
        info = task_infos.setdefault(
            task,
            TaskInfo(name=task, family=ok[0].family, main_metric=ok[0].main_metric),
        )
        scores = [r.metrics[info.main_metric] for r in ok]
        metric_names = sorted({m for r in ok for m in r.metrics})
        diag_names = sorted({d for r in ok for d in r.diagnostics})
        rows.append(
            BoardRow(
                task=task,
                family=info.family,
                model=model,
                loss=loss,
                sampler=sampler,
                main_metric=info.main_metric,
                mean=_mean(scores),
                std=statistics.stdev(scores) if len(scores) > 1 else 0.0,
                n_seeds=len(ok),
                rank=0,
                metrics={
                    m: _mean([r.metrics[m] for r in ok if m in r.metrics])
                    for m in metric_names
                },
                diagnostics={
                    d: _mean([r.diagnostics[d] for r in ok if d in r.diagnostics])
                    for d in diag_names
                },
                train_seconds=_mean([r.timings.get("train", 0.0) for r in ok]),
                run_ids=tuple(sorted(r.run_id for r in ok)),
                failed=len(group) - len(ok),
            )
        )
    ranked: list[BoardRow] = []
    borda: dict[str, float] = defaultdict(float)
    covered: dict[str, int] = defaultdict(int)
    for task, info in task_infos.items():
        task_rows = [r for r in rows if r.task == task]
        sign = -1.0 if info.higher_is_better else 1.0
        task_rows.sort(key=lambda r: (sign * r.mean, r.method))
        for row in task_rows:
            rank = 1 + sum(
                1 for other in task_rows if sign * other.mean < sign * row.mean
            )
            ranked.append(_with_rank(row, rank))
            borda[row.method] += len(task_rows) - rank
            covered[row.method] += 1
    overall = tuple(
        sorted(
            ((m, borda[m], covered[m]) for m in borda),
            key=lambda t: (-t[1], -t[2], t[0]),
        )
    )
    present = {r.task for r in ranked}
    return Leaderboard(
        tasks={k: v for k, v in task_infos.items() if k in present},
        rows=tuple(ranked),
        overall=overall,
    )


def _with_rank(row: BoardRow, rank: int) -> BoardRow:
    from dataclasses import replace

    return replace(row, rank=rank)


@hookimpl(trylast=True)
def harness_rank(
    results: Sequence[RunResult], tasks: dict[str, TaskInfo]
) -> Leaderboard:
    """Rank by seed-mean of the main metric per task; Borda count overall."""
    return rank_results(results, tasks)
