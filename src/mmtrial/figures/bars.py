"""Bars as one matplotlib collection instead of one ``Rectangle`` artist per bar (issue 15).

matplotlib creates, lays out and writes one artist (one SVG group) per bar drawn by ``Axes.bar``
or ``Axes.barh``; for a waterfall or swimmer plot of a hundred patients or more that is most of
the figure's CPU. :func:`add_rectangles` draws the same rectangles (same corners, same colours,
no edges) as one ``PolyCollection``, so the rendered figure is the same (tests compare the
rasterised pixels with ``bar``'s and ``barh``'s: tests/report/test_waterfall_bars.py,
tests/report/test_swimmer_bars.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def add_rectangles(ax, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray, *, colors,
                   sticky_x: Sequence[float] = (), sticky_y: Sequence[float] = ()) -> None:
    """Filled rectangles with corners (x0, y0) and (x1, y1), without edges, as one collection.

    ``sticky_x``/``sticky_y``: the axis values that autoscaling must not pad past, as
    ``bar``/``barh`` declare them (their base line: 0 for ``bar``, each bar's left end for
    ``barh``). The axes are autoscaled to the rectangles afterwards.
    """
    from matplotlib.collections import PolyCollection

    verts = np.stack([np.column_stack([x0, y0]), np.column_stack([x0, y1]),
                      np.column_stack([x1, y1]), np.column_stack([x1, y0])], axis=1)
    bars = PolyCollection(verts, facecolors=colors, edgecolors="none", linewidths=0)
    bars.sticky_edges.x.extend(sticky_x)
    bars.sticky_edges.y.extend(sticky_y)
    ax.add_collection(bars, autolim=True)
    ax.autoscale_view()
