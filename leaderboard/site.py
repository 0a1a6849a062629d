"""Default ``harness_render``: the static leaderboard site.

Pages (Jinja2 templates under ``leaderboard/templates``), all rendered from
:func:`~negbench_leaderboard.json_render.board_to_dict`, the same data as
``leaderboard.json``:

* ``index.html``: one row per method, Borda rank, normalised score per
  family, false-negative rate, cost; quality-vs-cost and FN-vs-quality plots;
* ``family/F.html``: the family's tasks and a method x task table, hardness
  per sampler;
* ``task/T.html``: mean ± std, 95% CI, rank interval, tie group, p-value,
  diagnostics; plots;
* ``method/M.html``: a method over every task, per-seed values linking to
* ``run/ID.html``: config, seed, environment, dataset hash, metrics,
  diagnostics, timings and the command that reproduces the run.

The site is self-contained (one CSS and one JS file, inline SVG plots, no
CDN), uses relative links only, and so works from ``file://`` and any static
host.  Jinja2's autoescaping is on for every page: plugin names and every
other stored string render as text.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from harness.plugin import hookimpl
from harness.types import Leaderboard, RunResult

from .json_render import board_data
from .parallel import fork_map
from .plots import Point, Range, ranges, scatter

__all__ = ["build_site", "harness_render"]

STATIC = Path(__file__).parent / "static"
HARDNESS_AXIS = "negative score - positive score"
_SAFE_NAME = re.compile(r"[a-z0-9_-]+")
PAGE_FOLDERS = ("family", "task", "method", "run")
#: the relative path to the site's root from a page ``depth`` folders down;
#: Markup: constant, and escaping it on every link of every page costs
_ROOTS = (Markup(""), Markup("../"))
#: render pages in forked workers from this many pages on (one per run)
PARALLEL_FROM = 2000
#: metrics shown next to the main metric on a task page
EXTRA_METRICS = 3


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("negbench_leaderboard", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        # templates do not change during a build: no stat() per page rendered
        auto_reload=False,
    )
    # filters, not macros: a macro call costs ~10x more, and a build renders
    # one page per run
    env.filters["number"] = _number
    env.filters["seconds"] = _seconds
    env.filters["data_v"] = _data_v
    return env


# The three filters below return Markup: their output is digits, signs and
# separators only, and skipping the escaper for every number cell of 10,000
# run pages saves about a second of a big build.


def _seconds(value: float | None) -> Markup:
    if value is None:
        return Markup("—")
    return Markup(f"{value:.2f}" if value < 10 else f"{value:.1f}")


def _data_v(value: Any) -> Markup:
    """The value a sortable table sorts the cell by (none: sorted last)."""
    if value is None:
        return Markup("")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Markup(f' data-v="{value!r}"')  # digits, '.', '-', 'e', inf, nan
    return Markup(' data-v="{}"').format(value)


def _number(value: float | None, digits: int = 4) -> Markup:
    """Fixed decimals for scores; counts (whole numbers >= 1000) as integers."""
    if value is None:
        return Markup("—")
    if float(value).is_integer() and abs(value) >= 1000:
        return Markup(f"{value:,.0f}")
    return Markup(f"{value:.{digits}f}")


def _hardness(label: str, diagnostics: dict[str, Any], href: str = "") -> Range:
    def get(q: str) -> float:
        return _num(diagnostics.get(f"hardness_gap_{q}"))

    return Range(
        label=label,
        q10=get("q10"),
        q50=get("q50"),
        q90=get("q90"),
        mean=get("mean"),
        href=href,
    )


def _overall_score(summary: dict[str, Any]) -> float:
    scores = [s for s in summary["family_scores"].values() if s is not None]
    return statistics.fmean(scores) if scores else float("nan")


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


class _Site:
    """Renders every page of one build into ``out``."""

    def __init__(self, data: dict[str, Any], out: Path) -> None:
        self.data, self.out = data, out
        self.env = _environment()
        self.rows_by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.rows_by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.row_of_run: dict[str, dict[str, Any]] = {}
        for row in data["rows"]:
            self.rows_by_task[row["task"]].append(row)
            self.rows_by_method[row["method_slug"]].append(row)
            for run_id in row["run_ids"]:
                self.row_of_run[run_id] = row
        for family in data["families"]:  # it names a file: no path tricks
            if not _SAFE_NAME.fullmatch(family):
                raise ValueError(f"family {family!r} cannot name a page")
        self.common = {
            "families": data["families"],
            "generated_at": data["generated_at"],
            "schema_version": data["schema_version"],
        }
        self.templates = {
            name: self.env.get_template(f"{name}.html")
            for name in ("index", *PAGE_FOLDERS)
        }
        # the header's family links, the same on every page of a depth: built
        # once instead of once per page (10,000 run pages)
        nav = self.env.get_template("nav.html")
        self.navs = [Markup(nav.render(root=root, **self.common)) for root in _ROOTS]

    def page(self, template: str, path: str, **context: Any) -> None:
        """Render ``template`` (``index`` or a page folder's name) to ``path``."""
        depth = path.count("/")
        html = self.templates[template].render(
            root=_ROOTS[depth], nav=self.navs[depth], **self.common, **context
        )
        (self.out / path).write_text(html, encoding="utf-8")

    def build(self) -> None:
        shutil.copytree(STATIC, self.out / "static", dirs_exist_ok=True)
        for folder in PAGE_FOLDERS:  # once, not once per page
            (self.out / folder).mkdir(exist_ok=True)
        self.index()
        for family in self.data["families"]:
            self.family(family)
        pages = [("task", name) for name in self.data["tasks"]]
        pages += [("method", i) for i in range(len(self.data["overall"]))]
        pages += [("run", run_id) for run_id in self.data["runs"]]
        # one page per run: a big store renders thousands
        fork_map(self.render, pages, min_items=PARALLEL_FROM)

    def render(self, page: tuple[str, Any]) -> None:
        kind, key = page
        if kind == "task":
            self.task(key, self.data["tasks"][key])
        elif kind == "method":
            self.method(self.data["overall"][key])
        else:
            self.run(self.data["runs"][key])

    def index(self) -> None:
        data = self.data
        points = [
            (s, _overall_score(s), f"method/{s['method_slug']}.html")
            for s in data["overall"]
        ]
        family_tasks: dict[str, int] = defaultdict(int)
        for task in data["tasks"].values():
            family_tasks[task["family"]] += 1
        self.page(
            "index",
            "index.html",
            overall=data["overall"],
            tasks=data["tasks"],
            n_runs=len(data["runs"]),
            family_tasks=family_tasks,
            quality_cost=scatter(
                [
                    Point(_num(s["train_seconds"]), y, s["method"], href)
                    for s, y, href in points
                ],
                x_label="mean training seconds per task",
                y_label="mean normalised score",
                title="quality vs cost",
                log_x=True,
                pareto=True,
            ),
            fn_quality=scatter(
                [
                    Point(_num(s["fn_rate"]), y, s["method"], href)
                    for s, y, href in points
                ],
                x_label="false-negative rate of sampled negatives",
                y_label="mean normalised score",
                title="false-negative rate vs quality",
            ),
        )

    def family(self, family: str) -> None:
        tasks = [
            {**task, "name": name, "rows": self.rows_by_task[name]}
            for name, task in self.data["tasks"].items()
            if task["family"] == family
        ]
        methods = []
        hardness: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for summary in self.data["overall"]:
            score = summary["family_scores"].get(family)
            if score is None:
                continue
            cells = {
                r["task"]: r
                for r in self.rows_by_method[summary["method_slug"]]
                if r["family"] == family
            }
            methods.append(
                {
                    "name": summary["method"],
                    "slug": summary["method_slug"],
                    "score": score,
                    "cells": cells,
                }
            )
            for row in cells.values():
                hardness[row["sampler"]].append(row["diagnostics"])
        methods.sort(key=lambda m: -m["score"])
        self.page(
            "family",
            f"family/{family}.html",
            family=family,
            family_tasks=tasks,
            methods=methods,
            hardness=ranges(
                [
                    _hardness(sampler, _mean_diagnostics(diagnostics))
                    for sampler, diagnostics in sorted(hardness.items())
                ],
                x_label=HARDNESS_AXIS,
                title=f"hardness per sampler ({family})",
            ),
        )

    def task(self, name: str, task: dict[str, Any]) -> None:
        rows = self.rows_by_task[name]
        metric_names = sorted(
            {m for r in rows for m in r["metrics"]} - {task["main_metric"]}
        )
        points = [
            (r, f"../method/{r['method_slug']}.html")
            for r in rows
            if r["mean"] is not None
        ]
        self.page(
            "task",
            f"task/{task['slug']}.html",
            task={**task, "name": name},
            rows=rows,
            extra_metrics=metric_names[:EXTRA_METRICS],
            tests=sorted({r["test"] for r in rows if r["test"]}),
            quality_cost=scatter(
                [
                    Point(_num(r["train_seconds"]), _num(r["mean"]), r["method"], h)
                    for r, h in points
                ],
                x_label="training seconds",
                y_label=task["main_metric"],
                title=f"{name}: quality vs cost",
                log_x=True,
                pareto=task["higher_is_better"],
            ),
            fn_quality=scatter(
                [
                    Point(_num(r["fn_rate"]), _num(r["mean"]), r["method"], h)
                    for r, h in points
                ],
                x_label="false-negative rate of sampled negatives",
                y_label=task["main_metric"],
                title=f"{name}: false-negative rate vs quality",
            ),
            hardness=ranges(
                [_hardness(r["method"], r["diagnostics"], h) for r, h in points],
                x_label=HARDNESS_AXIS,
                title=f"{name}: hardness per method",
            ),
        )

    def method(self, summary: dict[str, Any]) -> None:
        rows = sorted(self.rows_by_method[summary["method_slug"]], key=_task_order)
        self.page(
            "method",
            f"method/{summary['method_slug']}.html",
            method=summary,
            rows=rows,
            tasks=self.data["tasks"],
            runs=self.data["runs"],
        )

    def run(self, run: dict[str, Any]) -> None:
        row = self.row_of_run.get(run["run_id"])  # None: a failed run
        params = run.get("params") or {}
        self.page(
            "run",
            f"run/{run['run_id']}.html",
            run=run,
            row=row,
            task_slug=self.data["tasks"][row["task"]]["slug"] if row else None,
            params=json.dumps(params, sort_keys=True) if params else "(defaults)",
            hardness=ranges(
                [_hardness(run["sampler"], run.get("diagnostics") or {})],
                x_label=HARDNESS_AXIS,
                title="hardness of the sampled negatives",
            ),
        )


def _task_order(row: dict[str, Any]) -> tuple[str, str]:
    return (row["family"], row["task"])


def _mean_diagnostics(items: list[dict[str, Any]]) -> dict[str, float]:
    keys = {k for d in items for k in d if k.startswith("hardness_gap_")}
    out = {}
    for key in keys:
        values = [d[key] for d in items if d.get(key) is not None]
        if values:
            out[key] = statistics.fmean(values)
    return out


def build_site(data: dict[str, Any], out: Path) -> None:
    """Render every page of ``data`` (:func:`board_to_dict`) into ``out``."""
    _Site(data, out).build()


@hookimpl
def harness_render(
    board: Leaderboard, outdir: Path, results: Sequence[RunResult] = ()
) -> None:
    """Write the static site (``index.html`` and its pages) into ``outdir``."""
    build_site(board_data(board, results), Path(outdir))
