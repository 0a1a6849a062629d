"""The static site: every page renders, links resolve, strings are escaped,
and the pages show the numbers of leaderboard.json."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from harness.testing import make_run_results
from harness.types import RunSpec
from negbench_leaderboard.json_render import board_to_dict, slug
from negbench_leaderboard.ranking import rank_results
from negbench_leaderboard.site import build_site

XSS = "<script>alert(1)</script>"


def _build(results, out: Path) -> dict:
    data = board_to_dict(rank_results(results, {}), results)
    build_site(data, out)
    (out / "leaderboard.json").write_text(json.dumps(data))
    return data


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    results = make_run_results(
        methods=(
            ("bow", "infonce", "random"),
            ("bow", "infonce", "topk-hard"),
            ("bow", "margin", XSS),  # a hostile plugin name
        )
    )
    out = tmp_path_factory.mktemp("site")
    return out, _build(results, out)


def test_every_page_exists(site):
    out, data = site
    assert (out / "index.html").is_file()
    assert (out / "static" / "table.js").is_file()
    for family in data["families"]:
        assert (out / "family" / f"{family}.html").is_file()
    for task in data["tasks"].values():
        assert (out / "task" / f"{task['slug']}.html").is_file()
    for summary in data["overall"]:
        assert (out / "method" / f"{summary['method_slug']}.html").is_file()
    for run_id in data["runs"]:
        assert (out / "run" / f"{run_id}.html").is_file()
    assert len(data["families"]) == 4 and len(data["runs"]) == 4 * 3 * 2


def test_every_relative_link_resolves_and_nothing_is_fetched_from_the_web(site):
    out, _ = site
    pages = list(out.rglob("*.html"))
    for page in pages:
        html = page.read_text()
        for target in re.findall(r'(?:href|src)="([^"]+)"', html):
            assert not target.startswith(("http:", "https:", "//")), (page, target)
            assert (page.parent / target).resolve().is_file(), (page, target)


def test_plugin_names_render_as_text_never_as_markup(site):
    out, _ = site
    pages = list(out.rglob("*.html"))
    shown = 0
    for page in pages:
        html = page.read_text()
        assert "<script>alert" not in html, page
        shown += html.count("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert shown > 0  # it is on the pages, escaped
    # and no file name carries the payload
    assert not any("<" in p.name for p in out.rglob("*"))


def test_task_page_ranks_equal_the_json(site):
    out, data = site
    for name, task in data["tasks"].items():
        html = (out / "task" / f"{task['slug']}.html").read_text()
        body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        shown = re.findall(
            r'<td class="num" data-v="(\d+)">\d+</td>\s*<td class="num group"', body
        )
        expected = [str(r["rank"]) for r in data["rows"] if r["task"] == name]
        assert shown == expected


def test_overview_lists_methods_in_borda_order_with_family_scores(site):
    out, data = site
    html = (out / "index.html").read_text()
    order = [s["method_slug"] for s in data["overall"]]
    positions = [html.index(f'method/{m}.html"') for m in order]
    assert positions == sorted(positions)
    assert all(
        set(s["family_scores"]) == set(data["families"]) for s in data["overall"]
    )


def test_run_page_has_config_environment_and_the_reproducing_command(site):
    out, data = site
    run = next(iter(data["runs"].values()))
    html = (out / "run" / f"{run['run_id']}.html").read_text()
    assert "harness bench --task" in html
    assert run["dataset_sha256"] in html
    assert "torch" in html and "2.13.0" in html  # environment
    assert "hardness_gap_q50" in html


def test_reproduce_command_carries_seed_and_params():
    from negbench_leaderboard.json_render import reproduce_command

    (result,) = make_run_results(
        tasks={"nations": ("kge", "mrr")},
        methods=(("transe", "nssa", "uniform"),),
        seeds=1,
    )
    spec = RunSpec(
        task="nations",
        model="transe",
        loss="nssa",
        sampler="uniform",
        seed=2,
        params={"nations": {"epochs": 3}, "nssa": {"margin": 6.0}},
    )
    command = reproduce_command(replace(result, spec=spec))
    assert command == (
        "harness bench --task nations --model transe --loss nssa --sampler uniform "
        "--seeds 3 --param=task.nations.epochs=3 --param=loss.nssa.margin=6.0"
    )


def test_slugs_are_safe_and_distinct():
    assert slug(XSS) != slug("script-alert-1-script")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", slug(XSS))


def test_a_family_that_is_not_a_plain_name_is_refused(tmp_path):
    results = [
        replace(r, family="../outside")
        for r in make_run_results(tasks={"t": ("retrieval", "mrr")}, seeds=1)
    ]
    with pytest.raises(ValueError, match="cannot name a page"):
        _build(results, tmp_path / "site")
    assert not (tmp_path / "outside.html").exists()
