"""Charts as inline SVG, drawn on the server: no script, no library, nothing loaded from elsewhere.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that
say in words what it shows (a screen reader reads those), a ``<title>`` per
bar with its numbers (a mouse shows them), and the page puts the same numbers
in a table beside it, so nothing is only in the picture. Colours are SVG
presentation attributes, not ``style``: the console's Content-Security-Policy
allows no inline style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .templating import Markup, escape

__all__ = ["Series", "stacked_bars", "COLOURS"]

COLOURS = {"completed": "#1f8a4c", "partial": "#b86e00", "failed": "#c0392b", "in progress": "#2f5bd3", "spend": "#6a4fc3"}
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 180, 44, 22, 8


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def _nice_ceiling(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _number(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:,.2f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def stacked_bars(
    *, element_id: str, title: str, description: str, labels: Sequence[str], series: Sequence[Series],
    unit: str = "", tick_every: int = 1,
) -> Markup:
    """Bars (one per label) stacked from ``series``; ``tick_every`` labels every n-th bar on the axis."""
    totals = [float(sum(s.values[i] for s in series)) for i in range(len(labels))]
    top = _nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(labels))
    bar_w = max(1.0, slot * 0.8)
    parts = [
        f'<svg class="chart" id="{escape(element_id)}" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'aria-labelledby="{escape(element_id)}-title {escape(element_id)}-desc">',
        f'<title id="{escape(element_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(element_id)}-desc">{escape(description)}</desc>',
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 4}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde2ea" stroke-width="1"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#6b7687">'
            f"{escape(_number(top * fraction, unit))}</text>"
        )
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar_w) / 2
        base = float(TOP + plot_h)
        numbers = ", ".join(f"{s.name} {_number(s.values[i], unit)}" for s in series if s.values[i])
        parts.append(f'<g class="bar" data-label="{escape(label)}" data-total="{totals[i]:g}">')
        parts.append(f"<title>{escape(label)}: {escape(numbers or 'none')}</title>")
        for s in series:
            value = s.values[i]
            if not value:
                continue
            height = plot_h * value / top
            base -= height
            colour = COLOURS.get(s.name, "#8a94a6")
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{height:.1f}" fill="{colour}" '
                f'data-series="{escape(s.name)}" data-value="{value:g}"/>'
            )
        parts.append("</g>")
        if i % tick_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="10" fill="#6b7687">'
                f"{escape(label)}</text>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
        f'fill="{COLOURS.get(s.name, "#8a94a6")}"/></svg> {escape(s.name)}</span>'
        for s in series
    )
    return Markup(f'<figure class="chart">{"".join(parts)}<figcaption class="legend">{legend}</figcaption></figure>')
