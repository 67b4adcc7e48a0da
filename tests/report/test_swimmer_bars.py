"""The swimmer plot's bars as one collection draw what ``Axes.barh`` draws (issue 15)."""

from __future__ import annotations

import numpy as np

from mmtrial.figures.swimmer import _add_bars
from support.raster import render_png


def test_bars_collection_renders_like_barh():
    # oracle: matplotlib's own barh (one Rectangle per bar) with the same geometry and colours,
    # rasterised by Agg; the collection must give the same pixels and the same axis limits
    lane = np.array([0.0, 0.0, 1.0, 2.0, 3.0])
    start = np.array([0.0, 3.0, 0.0, 1.5, 0.0]) / 7
    end = np.array([3.0, 8.0, 20.0, 9.0, 4.0]) / 7
    colors = ["#08306b", "#4292c6", "#999999", "#08306b", "#c6dbef"]
    limits = {}

    def with_barh(ax):
        ax.barh(lane, end - start, left=start, height=0.7, color=colors, edgecolor="none")
        limits["barh"] = (ax.get_xlim(), ax.get_ylim())

    def with_collection(ax):
        _add_bars(ax, lane, start, end - start, height=0.7, colors=colors)
        limits["collection"] = (ax.get_xlim(), ax.get_ylim())

    a, b = render_png(with_barh), render_png(with_collection)
    assert limits["barh"] == limits["collection"]
    assert np.abs(a - b).max() < 1e-6
