"""The overview's charts: SVG drawn on the server by pygal (no script, nothing fetched), each
next to a table of the same numbers so that no figure is only a picture or a colour.
"""

from __future__ import annotations

import sys
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

from jobpulse.stats.windows import Histogram, Point

# pygal adds a finder for its map plugins to sys.meta_path, one without find_spec (the old
# protocol): every failed import anywhere in the process then warns, and Python 3.12 has no
# use for it. jobpulse draws no maps: take it out again.
sys.meta_path[:] = [finder for finder in sys.meta_path if hasattr(finder, "find_spec")]

_STYLE = Style(
    background="transparent",
    plot_background="#ffffff",
    foreground="#1f2328",
    foreground_strong="#1f2328",
    foreground_subtle="#57606a",
    colors=("#0969da", "#1a7f37", "#cf222e", "#8250df", "#9a6700"),
    font_family="system-ui, sans-serif",
)
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
}


def _svg(chart: pygal.graph.graph.Graph) -> Markup:
    return Markup(chart.render(is_unicode=True))


def bars(title: str, values: dict[str, int]) -> Markup:
    """A bar per label."""
    chart = pygal.Bar(title=title, show_legend=False, **_COMMON)
    chart.x_labels = list(values)
    chart.add(title, list(values.values()))
    return _svg(chart)


def throughput(series: list[Point], label_format: str) -> Markup:
    """Created, completed and failed per bucket."""
    chart = pygal.Line(
        title="Throughput", x_label_rotation=30, show_minor_x_labels=False, **_COMMON
    )
    chart.x_labels = [point.start.strftime(label_format) for point in series]
    chart.x_labels_major_every = max(1, len(series) // 8)
    chart.add("created", [point.created for point in series])
    chart.add("completed", [point.completed for point in series])
    chart.add("failed", [point.failed for point in series])
    return _svg(chart)


def distribution(title: str, histogram: Histogram) -> Markup:
    """How many observations fell in each bucket (not cumulative)."""
    counts = []
    below = 0
    for cumulative in histogram.cumulative:
        counts.append(cumulative - below)
        below = cumulative
    chart = pygal.Bar(title=title, show_legend=False, x_label_rotation=45, **_COMMON)
    chart.x_labels = [f"≤{_seconds(bound)}" for bound in histogram.bounds]
    chart.add(title, counts)
    return _svg(chart)


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:g}ms"
    return f"{value:g}s"
