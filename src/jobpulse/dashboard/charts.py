"""The overview's charts: SVG drawn on the server by pygal (no script, nothing fetched), each
next to a table of the same numbers so that no figure is only a picture or a colour.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

from jobpulse.dashboard import numbers
from jobpulse.domain import STOP_REASON_STATUS
from jobpulse.stats.windows import Histogram, Point
from jobpulse.usage.rules import TOKEN_KINDS
from jobpulse.usage.schemas import UsagePointPublic

# pygal adds a finder for its map plugins to sys.meta_path, one without find_spec (the old
# protocol): every failed import anywhere in the process then warns, and Python 3.12 has no
# use for it. jobpulse draws no maps: take it out again.
sys.meta_path[:] = [finder for finder in sys.meta_path if hasattr(finder, "find_spec")]

#: Each status's colour (the same hues as the badges), always beside its name.
STATUS_COLOURS = {
    "created": "#8c959f",
    "pending": "#6e7781",
    "running": "#0969da",
    "completed": "#1a7f37",
    "failed": "#cf222e",
    "cancelled": "#bf8700",
    "expired": "#8250df",
}
#: Each stop reason in the colour of the status it implies.
REASON_COLOURS = {
    reason.value: STATUS_COLOURS[status.value] for reason, status in STOP_REASON_STATUS.items()
}
#: Each token kind's colour in the usage charts, beside its name in the legend and caption.
TOKEN_COLOURS = {
    "input": "#0969da",
    "output": "#1a7f37",
    "cache read": "#8250df",
    "cache write": "#bf8700",
}
#: The colour of the cost series.
COST_COLOUR = "#1b7c83"


def _style(colours: tuple[str, ...]) -> Style:
    """Text and lines in the page's colours (CSS variables of dashboard.css): the charts
    follow the light or dark theme; series in `colours`, in order.
    """
    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="var(--fg)",
        foreground_strong="var(--fg)",
        foreground_subtle="var(--line)",
        colors=colours,
        font_family="system-ui, sans-serif",
        label_font_size=13,
        major_label_font_size=13,
        value_font_size=13,
        legend_font_size=14,
        title_font_size=16,
    )


_STYLE = _style((STATUS_COLOURS["running"], STATUS_COLOURS["completed"], STATUS_COLOURS["failed"]))
_COMMON: dict[str, Any] = {
    "style": _STYLE,
    "js": [],  # pygal's tooltips script lives on a CDN: none
    "disable_xml_declaration": True,
    "height": 260,
    "width": 640,
    "explicit_size": False,
    "legend_at_bottom": True,
    "show_y_guides": True,
    "print_values": False,
    "truncate_label": -1,  # whole labels, never "heartbeat_l…"
    "truncate_legend": -1,
    "print_values_position": "top",  # above the bar, in the text colour of the theme
}


def counts_axis(highest: int, ticks: int = 5) -> list[int]:
    """Whole-number ticks from 0 to at least `highest` (a count has no fractions), about
    `ticks` of them, a step of 1, 2 or 5 times a power of ten (5,000, not 4,862).
    """
    least = max(1, -(-highest // ticks))
    power = 10 ** (len(str(least)) - 1)
    step = next(power * factor for factor in (1, 2, 5, 10) if power * factor >= least)
    return list(range(0, max(highest, 1) + step, step))


def _svg(chart: pygal.graph.graph.Graph) -> Markup:
    return Markup(chart.render(is_unicode=True))


def bars(title: str, values: dict[str, int], colours: dict[str, str] | None = None) -> Markup:
    """A bar per label, in the label's colour if `colours` has one, its count printed on it."""
    chart = pygal.Bar(
        title=title,
        show_legend=False,
        y_labels=counts_axis(max(values.values(), default=0)),
        **_COMMON | {"print_values": True},
    )
    chart.x_labels = list(values)
    chart.add(title, [_bar(number, (colours or {}).get(label)) for label, number in values.items()])
    return _svg(chart)


def reasons(title: str, values: dict[str, int], colours: dict[str, str]) -> Markup:
    """A horizontal bar per label (room for long names such as
    context_window_overflow_in_system_prompt), coloured by `colours`.
    """
    chart = pygal.HorizontalBar(
        title=title,
        show_legend=False,
        y_labels=counts_axis(max(values.values(), default=0)),
        **_COMMON | {"print_values": True, "height": 120 + 36 * len(values)},
    )
    chart.x_labels = list(values)
    chart.add(title, [_bar(number, colours.get(label)) for label, number in values.items()])
    return _svg(chart)


def _bar(number: int, colour: str | None) -> dict[str, Any]:
    return {"value": number, "color": colour} if colour else {"value": number}


def throughput(series: list[Point], label_format: str) -> Markup:
    """Created, completed and failed per bucket."""
    highest = max((max(p.created, p.completed, p.failed) for p in series), default=0)
    chart = pygal.Line(
        title="Throughput",
        x_label_rotation=30,
        show_minor_x_labels=False,
        y_labels=counts_axis(highest),
        **_COMMON,
    )
    chart.x_labels = [point.start.strftime(label_format) for point in series]
    chart.x_labels_major_every = max(1, len(series) // 8)
    chart.add("created", [point.created for point in series])
    chart.add("completed", [point.completed for point in series])
    chart.add("failed", [point.failed for point in series])
    return _svg(chart)


def _timeline(title: str, points: Sequence[UsagePointPublic], label_format: str) -> dict[str, Any]:
    """The options of a chart over the window's buckets."""
    return {
        "title": title,
        "x_label_rotation": 30,
        "show_minor_x_labels": False,
        "x_labels": [point.start.strftime(label_format) for point in points],
        "x_labels_major_every": max(1, len(points) // 8),
    }


def tokens(points: Sequence[UsagePointPublic], label_format: str) -> Markup:
    """Tokens of the LLM calls per bucket, stacked by kind (input, output, cache read and
    write), each kind in its colour.
    """
    kinds = dict(zip(TOKEN_COLOURS, TOKEN_KINDS, strict=True))
    highest = max((sum(getattr(p, kind) for kind in TOKEN_KINDS) for p in points), default=0)
    chart = pygal.StackedBar(
        y_labels=counts_axis(highest),
        value_formatter=numbers.count,
        **_COMMON
        | _timeline("Tokens", points, label_format)
        | {"style": _style(tuple(TOKEN_COLOURS.values()))},
    )
    for name, kind in kinds.items():
        chart.add(name, [getattr(point, kind) for point in points])
    return _svg(chart)


def cost(points: Sequence[UsagePointPublic], label_format: str) -> Markup:
    """The known cost of the LLM calls per bucket, in dollars (calls of unknown cost add
    nothing: the caption counts them).
    """
    chart = pygal.Bar(
        show_legend=False,
        value_formatter=numbers.usd,
        **_COMMON
        | _timeline("Cost (USD)", points, label_format)
        | {"style": _style((COST_COLOUR,))},
    )
    chart.add("cost", [point.cost_usd for point in points])
    return _svg(chart)


def distribution(title: str, histogram: Histogram) -> Markup:
    """How many observations fell in each bucket (not cumulative)."""
    counts = []
    below = 0
    for cumulative in histogram.cumulative:
        counts.append(cumulative - below)
        below = cumulative
    chart = pygal.Bar(
        title=title,
        show_legend=False,
        x_label_rotation=45,
        y_labels=counts_axis(max(counts, default=0)),
        **_COMMON,
    )
    chart.x_labels = [f"≤{_seconds(bound)}" for bound in histogram.bounds]
    chart.add(title, counts)
    return _svg(chart)


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:g}ms"
    return f"{value:g}s"
