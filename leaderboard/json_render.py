"""Default ``harness_render``: ``leaderboard.json``, the machine-readable board."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from harness.plugin import hookimpl
from harness.types import Leaderboard

__all__ = ["board_to_dict", "harness_render"]

#: version of the leaderboard.json layout; bump on incompatible changes
JSON_SCHEMA_VERSION = 1


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def board_to_dict(board: Leaderboard) -> dict[str, Any]:
    cleaned: dict[str, Any] = _clean(
        {
            "schema_version": JSON_SCHEMA_VERSION,
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "tasks": {
                name: {
                    "family": info.family,
                    "main_metric": info.main_metric,
                    "higher_is_better": info.higher_is_better,
                    "description": info.description,
                }
                for name, info in board.tasks.items()
            },
            "rows": [
                {
                    "task": r.task,
                    "family": r.family,
                    "model": r.model,
                    "loss": r.loss,
                    "sampler": r.sampler,
                    "rank": r.rank,
                    "main_metric": r.main_metric,
                    "mean": r.mean,
                    "std": r.std,
                    "n_seeds": r.n_seeds,
                    "failed": r.failed,
                    "metrics": dict(r.metrics),
                    "diagnostics": dict(r.diagnostics),
                    "train_seconds": r.train_seconds,
                    "run_ids": list(r.run_ids),
                }
                for r in board.rows
            ],
            "overall": [
                {"method": m, "borda": points, "tasks": n}
                for m, points, n in board.overall
            ],
        }
    )
    return cleaned


@hookimpl
def harness_render(board: Leaderboard, outdir: Path) -> None:
    """Write ``leaderboard.json`` into ``outdir``."""
    target = Path(outdir) / "leaderboard.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(board_to_dict(board), indent=1, sort_keys=True))
    tmp.replace(target)
