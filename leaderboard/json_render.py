"""Default ``harness_render``: ``leaderboard.json``, the machine-readable board.

:func:`board_to_dict` is also what the static site renders from, so every
number a page shows is in the JSON, under the same name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.plugin import hookimpl
from harness.types import NONE, BoardRow, Leaderboard, MethodSummary, RunResult

__all__ = [
    "JSON_SCHEMA_VERSION",
    "board_data",
    "board_to_dict",
    "harness_render",
    "reproduce_command",
    "slug",
]

#: version of the leaderboard.json layout; bump on incompatible changes
#: 2: tie groups, intervals, per-seed scores, method summaries, runs
JSON_SCHEMA_VERSION = 2


def _clean(value: Any) -> Any:
    """``value`` with NaN/inf replaced by None (JSON has no such numbers).

    Exact-type checks first: the board of 10,000 runs has ~600,000 values,
    nearly all plain str/int/float, and ``type() is`` is several times
    cheaper than ``isinstance`` against a union.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {k: _clean(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_clean(v) for v in value]
    if isinstance(value, float):  # numpy float64 and other subclasses
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def slug(name: str) -> str:
    """A file name for ``name``: readable, unique (hash suffix), no markup."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "x"
    return f"{readable}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def reproduce_command(result: RunResult) -> str:
    """The one ``harness bench`` command that re-runs this result's seed.

    ``--seeds N`` runs seeds 0..N-1; seeds already in the store are skipped.
    """
    spec = result.spec
    words = ["harness", "bench", "--task", spec.task, "--model", spec.model]
    for kind in ("loss", "sampler"):
        name = getattr(spec, kind)
        if name != NONE:
            words += [f"--{kind}", name]
    words += ["--seeds", str(spec.seed + 1)]
    kinds = {name: kind for kind, name in reversed(spec.components.items())}
    for name, values in sorted(spec.params.items()):
        for key, value in sorted(values.items()):
            words.append(f"--param={kinds.get(name, 'task')}.{name}.{key}={value}")
    return shlex.join(words)


def _row(row: BoardRow) -> dict[str, Any]:
    return {
        "task": row.task,
        "family": row.family,
        "method": row.method,
        "method_slug": slug(row.method),
        "model": row.model,
        "loss": row.loss,
        "sampler": row.sampler,
        "params": row.params,
        "rank": row.rank,
        "rank_low": row.rank_low,
        "rank_high": row.rank_high,
        "group": row.group,
        "p_next": row.p_next,
        "test": row.test,
        "main_metric": row.main_metric,
        "mean": row.mean,
        "std": row.std,
        "ci_low": row.ci_low,
        "ci_high": row.ci_high,
        "seed_scores": list(row.seed_scores),
        "n_seeds": row.n_seeds,
        "failed": row.failed,
        "fn_rate": row.fn_rate,
        "fn_rate_exact": "fn_rate" in row.diagnostics,
        "metrics": dict(row.metrics),
        "diagnostics": dict(row.diagnostics),
        "train_seconds": row.train_seconds,
        "run_ids": list(row.run_ids),
    }


def _summary(summary: MethodSummary) -> dict[str, Any]:
    return {
        "rank": summary.rank,
        "method": summary.method,
        "method_slug": slug(summary.method),
        "model": summary.model,
        "loss": summary.loss,
        "sampler": summary.sampler,
        "params": summary.params,
        "borda": summary.borda,
        "group": summary.group,
        "p_next": summary.p_next,
        "tasks": summary.tasks,
        "family_scores": dict(summary.family_scores),
        "fn_rate": summary.fn_rate,
        "train_seconds": summary.train_seconds,
    }


def _run(result: RunResult) -> dict[str, Any]:
    record = result.to_dict(per_item=False)
    record["command"] = reproduce_command(result)
    return record


def board_to_dict(
    board: Leaderboard, results: Sequence[RunResult] = ()
) -> dict[str, Any]:
    """Everything the leaderboard shows, JSON-ready (NaN/inf become null)."""
    families = sorted({info.family for info in board.tasks.values()})
    cleaned: dict[str, Any] = _clean(
        {
            "schema_version": JSON_SCHEMA_VERSION,
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "families": families,
            "tasks": {
                name: {
                    "slug": slug(name),
                    "family": info.family,
                    "main_metric": info.main_metric,
                    "higher_is_better": info.higher_is_better,
                    "description": info.description,
                }
                for name, info in sorted(board.tasks.items())
            },
            "rows": [_row(r) for r in board.rows],
            "overall": [_summary(s) for s in board.overall],
            "runs": {r.run_id: _run(r) for r in results},
        }
    )
    return cleaned


_last: list[tuple[Leaderboard, Sequence[RunResult], dict[str, Any]]] = []


def board_data(board: Leaderboard, results: Sequence[RunResult]) -> dict[str, Any]:
    """:func:`board_to_dict`, computed once per build: the JSON writer and
    the site both render the same board, and the dict of 10,000 runs takes
    most of a second."""
    if _last and _last[0][0] is board and _last[0][1] is results:
        return _last[0][2]
    data = board_to_dict(board, results)
    _last[:] = [(board, results, data)]
    return data


def write_json(data: dict[str, Any], target: Path) -> None:
    """Write atomically: a reader never sees half a file."""
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True))
    tmp.replace(target)


@hookimpl
def harness_render(
    board: Leaderboard, outdir: Path, results: Sequence[RunResult] = ()
) -> None:
    """Write ``leaderboard.json`` into ``outdir``."""
    write_json(board_data(board, results), Path(outdir) / "leaderboard.json")
