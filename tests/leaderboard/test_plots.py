"""Hand-written SVG plots: the Pareto front, escaping, empty data."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from negbench_leaderboard.plots import Point, Range, pareto_front, ranges, scatter


def test_pareto_front_keeps_points_nothing_beats_on_cost_and_quality():
    points = [
        Point(1.0, 0.5, "cheap"),
        Point(2.0, 0.4, "dominated"),
        Point(3.0, 0.7, "best"),
        Point(3.5, 0.7, "slower tie"),
        Point(0.5, 0.1, "cheapest"),
    ]
    assert [p.label for p in pareto_front(points)] == ["cheapest", "cheap", "best"]


def test_svg_is_well_formed_and_escapes_labels():
    svg = scatter(
        [Point(1, 2, "<script>x</script>", href="a&b.html"), Point(10, 3, "b")],
        x_label="x <",
        y_label="y",
        title="t",
        log_x=True,
        pareto=True,
    )
    root = ET.fromstring(str(svg))  # parses: every label was escaped
    assert root.tag.endswith("svg")
    assert "<script>" not in str(svg)
    assert "&lt;script&gt;" in str(svg)


def test_ranges_skip_missing_values_and_handle_no_data():
    nan = math.nan
    svg = ranges(
        [Range("a", -1, 0, 1, 0.1), Range("b", nan, nan, nan)],
        x_label="gap",
        title="t",
    )
    ET.fromstring(str(svg))
    assert str(svg).count('class="median"') == 1
    assert "no data" in str(ranges([Range("b", nan, nan, nan)], x_label="", title=""))
    assert "no data" in str(scatter([], x_label="", y_label="", title=""))
