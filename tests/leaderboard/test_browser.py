"""The built site in a real browser (headless Chromium driven by Playwright).

Uses the system Chromium (Debian's ``chromium`` package; ``HARNESS_CHROMIUM``
names another binary), never a downloaded one.  Skipped, with the reason,
where Playwright or Chromium is missing; ``.ci/run`` installs both.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.testing import make_run_results
from negbench_leaderboard.json_render import board_to_dict
from negbench_leaderboard.ranking import rank_results
from negbench_leaderboard.site import build_site

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

XSS = "<script>alert(1)</script>"


def _chromium() -> str | None:
    named = os.environ.get("HARNESS_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        pytest.skip(
            "no Chromium found (apt-get install chromium, or set HARNESS_CHROMIUM)"
        )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    results = make_run_results(
        methods=(
            ("bow", "infonce", "random"),
            ("bow", "infonce", "topk-hard"),
            ("bow", "margin", XSS),
            ("bow", "margin", "simans"),
        ),
        seeds=3,
    )
    data = board_to_dict(rank_results(results, {}), results)
    out = tmp_path_factory.mktemp("site")
    build_site(data, out)
    return out, data


class _Page:
    """A page that records console errors, uncaught exceptions and dialogs."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"error: {e}"))
        self.page.on(
            "dialog",
            lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()),
        )

    def open(self, path: Path) -> None:
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")


def test_pages_load_without_console_errors(browser, site):
    out, data = site
    run_id = next(iter(data["runs"]))
    task = next(iter(data["tasks"].values()))
    for path in (
        out / "index.html",
        out / "family" / "retrieval.html",
        out / "task" / f"{task['slug']}.html",
        out / "method" / f"{data['overall'][0]['method_slug']}.html",
        out / "run" / f"{run_id}.html",
    ):
        view = _Page(browser)
        view.open(path)
        assert view.page.locator("h1").count() == 1, path
        assert view.problems == [], (path, view.problems)
        view.page.close()


def test_ranks_shown_equal_leaderboard_json(browser, site):
    out, data = site
    view = _Page(browser)
    for name, task in data["tasks"].items():
        view.open(out / "task" / f"{task['slug']}.html")
        shown = view.page.eval_on_selector_all(
            "#task-rows tbody tr",
            "rows => rows.map(r => [r.cells[0].textContent.trim(),"
            " r.cells[2].textContent.trim()])",
        )
        expected = [
            [str(r["rank"]), r["method"]] for r in data["rows"] if r["task"] == name
        ]
        assert shown == expected, name
    view.open(out / "index.html")
    shown = view.page.eval_on_selector_all(
        "#overall tbody tr", "rows => rows.map(r => r.cells[2].textContent.trim())"
    )
    assert shown == [s["method"] for s in data["overall"]]


def test_clicking_a_header_sorts_the_rows(browser, site):
    out, data = site
    task = data["tasks"]["scifact"]
    view = _Page(browser)
    view.open(out / "task" / f"{task['slug']}.html")
    cells = "rows => rows.map(r => r.cells[2].textContent.trim())"
    before = view.page.eval_on_selector_all("#task-rows tbody tr", cells)
    view.page.click("#task-rows thead th:nth-child(3)")  # method, ascending
    ascending = view.page.eval_on_selector_all("#task-rows tbody tr", cells)
    assert ascending == sorted(before, key=str.lower) and ascending != before
    view.page.click("#task-rows thead th:nth-child(3)")  # and descending
    descending = view.page.eval_on_selector_all("#task-rows tbody tr", cells)
    assert descending == ascending[::-1]
    # a numeric column sorts by value, not by text
    view.page.click("#task-rows thead th:nth-child(4)")
    means = view.page.eval_on_selector_all(
        "#task-rows tbody tr", "rows => rows.map(r => Number(r.cells[3].dataset.v))"
    )
    assert means == sorted(means)
    assert view.problems == []


def test_filter_box_hides_rows_that_do_not_match(browser, site):
    out, _ = site
    view = _Page(browser)
    view.open(out / "index.html")
    view.page.fill("input[data-filter=overall]", "simans")
    visible = view.page.eval_on_selector_all(
        "#overall tbody tr:not([hidden])",
        "rows => rows.map(r => r.cells[2].textContent)",
    )
    assert visible and all("simans" in text for text in visible)


def test_the_script_payload_in_a_plugin_name_is_inert_text(browser, site):
    out, data = site
    view = _Page(browser)
    method = next(s for s in data["overall"] if XSS in s["method"])
    for path in (out / "index.html", out / "method" / f"{method['method_slug']}.html"):
        view.open(path)
        assert XSS in view.page.inner_text("body")  # shown, as text
        # no script element other than the site's own table.js
        sources = view.page.eval_on_selector_all("script", "s => s.map(x => x.src)")
        assert all(src.endswith("static/table.js") for src in sources), sources
    assert view.problems == []  # no alert() dialog fired
