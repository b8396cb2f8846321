"""Small inline-SVG bar charts for the report: no scripts, no external resources.

Every chart is an ``<svg role="img">`` with a ``<title>``, axis labels, one
``<rect class="bar">`` per data bar (with a tooltip) and its value printed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "ALT_COLOR",
    "BAR_COLOR",
    "CHAR_W",
    "MARK_COLOR",
    "Bar",
    "bar_chart",
    "column_chart",
    "compact",
]

#: Fill of ordinary bars (distinctive, so a screenshot test can find it).
BAR_COLOR = "#3b6fd8"
#: Fill of the second series (per-format drop reasons).
ALT_COLOR = "#e07b39"
#: Colour of marker lines (the quality threshold).
MARK_COLOR = "#c62828"


@dataclass(frozen=True)
class Bar:
    """One bar: its label (row label or tooltip), its value and its fill."""

    label: str
    value: int
    color: str = BAR_COLOR


def compact(n: float) -> str:
    """``1234`` -> ``"1.2k"``, ``65536`` -> ``"66k"``, ``0.25`` -> ``"0.25"``."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            text = f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}".removesuffix(".0")
            return text + suffix
    return f"{n:g}"


def _ticks(vmax: int) -> list[int]:
    """About four round axis ticks from 0 up to at least ``vmax``."""
    if vmax <= 0:
        return [0, 1]
    raw = vmax / 4
    mag = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = mag
    for m in (1, 2, 5, 10):
        step = m * mag
        if step >= raw:
            break
    top = -(-vmax // step) * step
    return list(range(0, top + 1, step))


def _num(x: float) -> str:
    return f"{x:.1f}".removesuffix(".0")


def _text(x: float, y: float, body: str, cls: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" class="{cls}" text-anchor="{anchor}"{extra}>'
        f"{escape(body)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, cls: str) -> str:
    return f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" class="{cls}"/>'


def _rect(x: float, y: float, w: float, h: float, bar: Bar, tip: str) -> str:
    return (
        f'<rect class="bar" x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
        f'fill="{bar.color}"><title>{escape(tip)}</title></rect>'
    )


def _open(chart_id: str, title: str, width: int, height: int) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg id="{cid}" class="chart" role="img" aria-labelledby="{cid}-title" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{cid}-title">{escape(title)}</title>',
    ]


def _axis_labels(x_label: str, y_label: str, cx: float, cy: float, bottom: float) -> list[str]:
    return [
        _text(cx, bottom, x_label, "axis-label", "middle"),
        _text(
            0,
            0,
            y_label,
            "axis-label",
            "middle",
            f' transform="translate(12 {_num(cy)}) rotate(-90)"',
        ),
    ]


def column_chart(
    chart_id: str,
    title: str,
    bars: Sequence[Bar],
    edges: Sequence[str],
    *,
    x_label: str,
    y_label: str,
    width: int = 380,
    height: int = 240,
    marker: tuple[float, str] | None = None,
) -> str:
    """A histogram: equal-width vertical bars, ``edges`` labelling the bucket boundaries.

    ``marker`` is ``(position in bar units, label)`` for a vertical line (0 = left edge).
    """
    left, right, top, bottom = 50, 24, 30 if marker is None else 46, 44
    pw, ph = width - left - right, height - top - bottom
    out = _open(chart_id, title, width, height)
    out += _axis_labels(x_label, y_label, left + pw / 2, top + ph / 2, height - 6)
    if not bars:
        out.append(_text(left + pw / 2, top + ph / 2, "no data", "empty", "middle"))
        return "".join([*out, "</svg>"])
    ticks = _ticks(max(b.value for b in bars))
    vmax, base, bw = ticks[-1], top + ph, pw / len(bars)
    for t in ticks:
        y = base - ph * t / vmax
        out.append(_line(left, y, left + pw, y, "gridline"))
        out.append(_text(left - 6, y + 4, compact(t), "tick", "end"))
    for i, bar in enumerate(bars):
        h = ph * bar.value / vmax
        x = left + i * bw
        out.append(_rect(x + 1, base - h, max(bw - 2, 1), h, bar, f"{bar.label}: {bar.value:,}"))
        if bar.value and bw >= 14:
            out.append(_text(x + bw / 2, base - h - 3, compact(bar.value), "value", "middle"))
    stride = max(1, math.ceil(len(edges) * 30 / pw))
    for j in range(0, len(edges), stride):
        out.append(_text(left + j * bw, base + 17, edges[j], "tick", "middle"))
    out.append(_line(left, base, left + pw, base, "axis"))
    out.append(_line(left, top, left, base, "axis"))
    if marker is not None:
        pos, label = marker
        mx = left + min(max(pos, 0.0), len(bars)) * bw
        out.append(_line(mx, top - 24, mx, base, "marker"))
        far_right = mx > left + pw * 0.7
        anchor, lx = ("end", mx - 5) if far_right else ("start", mx + 5)
        out.append(_text(lx, top - 26, label, "marker-label", anchor))
    return "".join([*out, "</svg>"])


#: Average width of a character of an 11px label, with a margin (the report's test
#: measures every label in Chromium against its box).
CHAR_W = 6.6


def _elide(label: str, most: int) -> str:
    """``label`` in at most ``most`` characters: the middle elided, so a path keeps its
    file name (the bar's tooltip has the whole label)."""
    if len(label) <= most:
        return label
    head = (most - 1) // 3
    return label[:head] + "…" + label[len(label) - (most - 1 - head) :]


def bar_chart(
    chart_id: str,
    title: str,
    bars: Sequence[Bar],
    *,
    x_label: str,
    y_label: str,
    width: int = 540,
    legend: Sequence[tuple[str, str]] = (),
) -> str:
    """Horizontal bars, one row per ``Bar`` (label on the left, value at the end); the
    ``y_label`` heads the column of labels (a rotated title would not fit a short chart)."""
    row = 22
    most = int(width * 0.45 / CHAR_W)  # the longest label shown whole
    longest = max((len(b.label) for b in bars), default=8)
    heading = len(y_label) * CHAR_W
    label_w = math.ceil(max(60.0, CHAR_W * min(longest, most), heading - 22))
    left, right, top, bottom = 30 + label_w, 60, 32, 44
    pw, ph = width - left - right, row * max(len(bars), 2)
    height = top + ph + bottom
    out = _open(chart_id, title, width, height)
    out.append(_text(left + pw / 2, height - 6, x_label, "axis-label", "middle"))
    out.append(_text(left - 8, 20, y_label, "axis-label", "end"))
    lx = float(left)
    for color, name in legend:
        out.append(
            f'<rect class="key" x="{_num(lx)}" y="10" width="12" height="12" fill="{color}"/>'
        )
        out.append(_text(lx + 17, 20, name, "tick"))
        lx += 34 + CHAR_W * len(name)
    if not bars:
        out.append(_text(left + pw / 2, top + ph / 2, "none", "empty", "middle"))
        return "".join([*out, "</svg>"])
    ticks = _ticks(max(b.value for b in bars))
    vmax, base = ticks[-1], top + ph
    for t in ticks:
        x = left + pw * t / vmax
        out.append(_line(x, top, x, base, "gridline"))
        out.append(_text(x, base + 15, compact(t), "tick", "middle"))
    for i, bar in enumerate(bars):
        y, w = top + i * row, pw * bar.value / vmax
        label = _elide(bar.label, most)
        out.append(_text(left - 8, y + row / 2 + 4, label, "row-label", "end"))
        out.append(_rect(left, y + 4, w, row - 8, bar, f"{bar.label}: {bar.value:,}"))
        out.append(_text(left + w + 5, y + row / 2 + 4, f"{bar.value:,}", "value"))
    out.append(_line(left, base, left + pw, base, "axis"))
    out.append(_line(left, top, left, base, "axis"))
    return "".join([*out, "</svg>"])
