"""The waterfall's bars as one collection draw what ``Axes.bar`` draws (issue 15)."""

from __future__ import annotations

import numpy as np

from mmtrial.figures.waterfall import add_column_bars
from support.raster import render_png


def test_column_bars_collection_renders_like_bar():
    # oracle: matplotlib's own bar (one Rectangle per bar) with the same geometry and colours,
    # rasterised by Agg; the collection must give the same pixels and the same axis limits
    x = np.arange(6, dtype=float)
    y = np.array([140.0, 60.0, 0.0, -12.5, -55.0, -100.0])
    colors = ["#cb181d", "#cb181d", "#bdbdbd", "#bdbdbd", "#6baed6", "#08306b"]
    limits = {}

    def with_bar(ax):
        ax.bar(x, y, width=0.85, color=colors, edgecolor="none")
        limits["bar"] = (ax.get_xlim(), ax.get_ylim())

    def with_collection(ax):
        add_column_bars(ax, x - 0.85 / 2, 0.85, y, colors=colors)
        limits["collection"] = (ax.get_xlim(), ax.get_ylim())

    a, b = render_png(with_bar), render_png(with_collection)
    assert limits["bar"] == limits["collection"]
    assert np.abs(a - b).max() < 1e-6


def test_column_bars_with_edge_alignment_and_run_widths():
    # the aggregated waterfall: bars from each run's left edge, run widths differ
    left = np.array([0.0, 3.0, 7.0]) - 0.5
    width = np.array([3.0, 4.0, 3.0])
    h = np.array([50.0, -20.0, -90.0])
    colors = ["#cb181d", "#bdbdbd", "#08306b"]
    a = render_png(lambda ax: ax.bar(left, h, width=width, align="edge", color=colors, edgecolor="none"))
    b = render_png(lambda ax: add_column_bars(ax, left, width, h, colors=colors))
    assert np.abs(a - b).max() < 1e-6
