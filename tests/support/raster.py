"""Rasterising a small matplotlib drawing for pixel comparisons in tests."""

from __future__ import annotations

import io

import numpy as np

from mmtrial.figures.svg import new_figure


def render_png(draw) -> np.ndarray:
    """The pixels (Agg, PNG round trip) of a 4 x 3 inch, 50 dpi figure after ``draw(ax)``."""
    import matplotlib.image as mpimg

    fig = new_figure((4, 3), dpi=50)
    ax = fig.subplots()
    draw(ax)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return mpimg.imread(buf)
