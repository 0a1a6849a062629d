"""Static SVG plots for the leaderboard pages, written by hand.

Inline SVG needs no JavaScript library, works from ``file://``, scales, and
costs microseconds per plot, so a build with thousands of run pages stays
fast (matplotlib would take ~50 ms a figure).  Every label is escaped: a
plugin name is user input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Point", "Range", "pareto_front", "ranges", "scatter"]

_W, _H = 560, 340
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 16, 48


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    label: str
    href: str = ""


@dataclass(frozen=True, slots=True)
class Range:
    """A distribution summarised by its 10/50/90% quantiles and mean."""

    label: str
    q10: float
    q50: float
    q90: float
    mean: float | None = None
    href: str = ""


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] ("nice numbers")."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _fmt(value: float) -> str:
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.1e}"
    return f"{value:.4g}"


class _Axis:
    """Maps data values to pixels, linearly or on a log10 scale."""

    def __init__(
        self, values: list[float], lo_px: float, hi_px: float, log: bool
    ) -> None:
        self.log = log and all(v > 0 for v in values)
        data = [math.log10(v) for v in values] if self.log else values
        low, high = min(data), max(data)
        pad = (high - low) * 0.06 or (abs(high) * 0.1 or 1.0)
        self.low, self.high = low - pad, high + pad
        self.lo_px, self.hi_px = lo_px, hi_px

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        share = (v - self.low) / (self.high - self.low)
        return self.lo_px + share * (self.hi_px - self.lo_px)

    def ticks(self) -> list[float]:
        if self.log:
            return [
                10.0**e for e in range(math.ceil(self.low), math.floor(self.high) + 1)
            ] or [10**self.low]
        return _ticks(self.low, self.high)


def _frame(x_label: str, y_label: str, body: list[str], title: str) -> Markup:
    label_x = (_LEFT + _W - _RIGHT) / 2
    label_y = (_TOP + _H - _BOTTOM) / 2
    head = (
        f'<svg class="plot" viewBox="0 0 {_W} {_H}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<rect x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - _RIGHT}" '
        f'height="{_H - _TOP - _BOTTOM}" class="frame"/>'
    )
    tail = (
        f'<text x="{label_x}" y="{_H - 8}" class="axis-label" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="14" y="{label_y}" class="axis-label" text-anchor="middle" '
        f'transform="rotate(-90 14 {label_y})">{escape(y_label)}</text></svg>'
    )
    return Markup(head + "".join(body) + tail)


def _x_grid(x: _Axis, left: float, height: float) -> list[str]:
    """Vertical grid lines with their tick labels under the plot area."""
    out = []
    for tick in x.ticks():
        px = x(tick)
        if left <= px <= _W - _RIGHT:
            out.append(
                f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{_TOP}" '
                f'y2="{height - _BOTTOM}" class="grid"/>'
                f'<text x="{px:.1f}" y="{height - _BOTTOM + 16}" '
                f'text-anchor="middle" class="tick">{_fmt(tick)}</text>'
            )
    return out


def _grid(x: _Axis, y: _Axis) -> list[str]:
    out = _x_grid(x, _LEFT, _H)
    for tick in y.ticks():
        py = y(tick)
        if _TOP <= py <= _H - _BOTTOM:
            out.append(
                f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{py:.1f}" '
                f'y2="{py:.1f}" class="grid"/>'
                f'<text x="{_LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" '
                f'class="tick">{_fmt(tick)}</text>'
            )
    return out


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Points no other point beats on both axes (lower x, higher y), by x."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.x, -p.y)):
        if not front or point.y > front[-1].y:
            front.append(point)
    return front


def _linked(href: str, inner: str) -> str:
    return f'<a href="{escape(href)}">{inner}</a>' if href else inner


def scatter(
    points: Sequence[Point],
    *,
    x_label: str,
    y_label: str,
    title: str,
    log_x: bool = False,
    pareto: bool = False,
) -> Markup:
    """A scatter plot; ``pareto`` draws the front of low x and high y."""
    shown = [p for p in points if _finite(p.x, p.y)]
    if not shown:
        return Markup('<p class="empty">no data to plot</p>')
    x = _Axis([p.x for p in shown], _LEFT, _W - _RIGHT, log_x)
    y = _Axis([p.y for p in shown], _H - _BOTTOM, _TOP, False)
    body = _grid(x, y)
    if x.log:
        x_label += " (log scale)"
    front = pareto_front(shown) if pareto else []
    if len(front) > 1:
        path = " ".join(f"{x(p.x):.1f},{y(p.y):.1f}" for p in front)
        body.append(f'<polyline points="{path}" class="front"/>')
    on_front = {id(p) for p in front}
    for point in shown:
        css = "dot front-dot" if id(point) in on_front else "dot"
        tip = f"{point.label}: {_fmt(point.x)}, {_fmt(point.y)}"
        body.append(
            _linked(
                point.href,
                f'<circle cx="{x(point.x):.1f}" cy="{y(point.y):.1f}" r="4.5" '
                f'class="{css}"><title>{escape(tip)}</title></circle>',
            )
        )
    return _frame(x_label, y_label, body, title)


def ranges(items: Sequence[Range], *, x_label: str, title: str) -> Markup:
    """One horizontal q10-q90 bar per item, with the median and the mean."""
    shown = [r for r in items if _finite(r.q10, r.q50, r.q90)]
    if not shown:
        return Markup('<p class="empty">no data to plot</p>')
    row_h = 22
    height = _TOP + _BOTTOM + row_h * len(shown)
    values = [v for r in shown for v in (r.q10, r.q90)]
    left = 200  # room for the labels
    x = _Axis(values, left, _W - _RIGHT, False)
    body = _x_grid(x, left, height)
    for i, item in enumerate(shown):
        cy = _TOP + row_h * i + row_h / 2
        tip = (
            f"{item.label}: q10 {_fmt(item.q10)}, median {_fmt(item.q50)}, "
            f"q90 {_fmt(item.q90)}"
            + (
                f", mean {_fmt(item.mean)}"
                if item.mean is not None and _finite(item.mean)
                else ""
            )
        )
        parts = [
            f"<g><title>{escape(tip)}</title>",
            f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" '
            f'class="tick">{escape(item.label[:34])}</text>',
            f'<line x1="{x(item.q10):.1f}" x2="{x(item.q90):.1f}" y1="{cy:.1f}" '
            f'y2="{cy:.1f}" class="range"/>',
            f'<line x1="{x(item.q50):.1f}" x2="{x(item.q50):.1f}" '
            f'y1="{cy - 7:.1f}" y2="{cy + 7:.1f}" class="median"/>',
        ]
        if item.mean is not None and _finite(item.mean):
            parts.append(
                f'<circle cx="{x(item.mean):.1f}" cy="{cy:.1f}" r="3" class="mean"/>'
            )
        parts.append("</g>")
        body.append(_linked(item.href, "".join(parts)))
    label_x = (left + _W - _RIGHT) / 2
    svg = (
        f'<svg class="plot" viewBox="0 0 {_W} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body)
        + f'<text x="{label_x}" y="{height - 8}" class="axis-label" '
        f'text-anchor="middle">{escape(x_label)}</text></svg>'
    )
    return Markup(svg)
