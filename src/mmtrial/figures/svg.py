"""Deterministic SVG export of matplotlib figures for the report (issue 7).

The report must be byte-identical when the same analysis is re-run (apart from its date line).
Matplotlib's SVG backend writes a ``<dc:date>`` element and derives element ids from a hash that
is salted randomly per process unless ``rcParams["svg.hashsalt"]`` is set; text is kept as glyph
paths (``svg.fonttype = "path"``) so the file needs no font and looks the same everywhere.

Every figure builder should end with::

    from mmtrial.figures.svg import figure_to_svg
    Figure(id="km-pfs", title=..., alt=alt, svg=figure_to_svg(fig, alt))
"""

from __future__ import annotations

import io
import re
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure as MplFigure

#: Fixed salt for matplotlib's SVG element ids (any constant string makes ids reproducible).
SVG_HASHSALT = "mmtrial"

_SVG_OPEN = re.compile(r"<svg\b([^>]*)>", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_SIZE = re.compile(r'\s(?:width|height|viewBox)="[^"]*"')


def new_figure(figsize: tuple[float, float], dpi: float | None = None) -> MplFigure:
    """A matplotlib figure that is not registered with pyplot (no global state, issue 15).

    ``matplotlib.figure.Figure`` with an Agg canvas attached (layout is measured with the Agg
    renderer, as under pyplot's Agg backend); nothing to close, garbage-collected like any
    object, safe in threads and in a long-lived Python session.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _draw_svg(fig: MplFigure, pad: float) -> tuple[str, tuple[float, float, float, float]]:
    """The figure drawn once by matplotlib's SVG renderer, and its tight crop box in points.

    Returns the SVG text of the whole figure and ``(x, y, width, height)`` of the box that
    ``savefig(bbox_inches="tight", pad_inches=pad)`` would keep, in SVG user units (points,
    origin top left). The box is the figure's tight bounding box measured with the renderer that
    drew it, so text extents come from the same layout (matplotlib caches them per renderer)
    instead of a second layout pass. Matplotlib's ``FigureCanvasSVG.print_svg`` is the model:
    the figure is drawn at 72 dpi through a ``MixedModeRenderer`` (raster parts at the figure's
    own dpi).
    """
    from matplotlib.backends.backend_mixed import MixedModeRenderer
    from matplotlib.backends.backend_svg import RendererSVG

    buf = io.StringIO()
    dpi = fig.dpi
    try:
        fig.dpi = 72
        width, height = fig.get_size_inches()
        renderer = MixedModeRenderer(fig, width, height, dpi,
                                     RendererSVG(width * 72, height * 72, buf, image_dpi=dpi,
                                                 metadata={"Date": None}))
        fig.draw(renderer)
        box = fig.get_tightbbox(renderer).padded(pad)
        renderer.finalize()
    finally:
        fig.dpi = dpi
    x0, x1 = box.x0 * 72, box.x1 * 72
    top, bottom = (height - box.y1) * 72, (height - box.y0) * 72  # SVG's y axis points down
    return buf.getvalue(), (x0, top, x1 - x0, bottom - top)


def figure_to_svg(fig: MplFigure, alt: str, *, close: bool = True) -> str:
    """Render a matplotlib figure to a reproducible, self-contained SVG string.

    Parameters
    ----------
    fig
        The matplotlib figure.
    alt
        Alternative text (what the figure shows, for screen readers and when images are off);
        written as the SVG's ``<title>`` and ``aria-label`` with ``role="img"``.
    close
        Close a pyplot-managed figure afterwards (figures from :func:`new_figure` need no
        closing).

    Returns
    -------
    str
        The SVG document without the XML prolog: the same figure gives the same bytes in any
        process (fixed ``svg.hashsalt``, no ``Date`` metadata, text as paths).

    Rule
    ----
    Matplotlib documentation, ``rcParams["svg.hashsalt"]`` ("if not None, use this string as hash
    salt instead of uuid4") and ``metadata={"Date": None}`` (omit the date). The figure is
    cropped to its drawn content plus ``rcParams["savefig.pad_inches"]`` (what
    ``bbox_inches="tight"`` crops to) so no axis label is cut off; the crop is the SVG
    ``viewBox`` of a single draw (:func:`_draw_svg`), where ``savefig(bbox_inches="tight")``
    lays the figure out twice (issue 15: half the CPU of every figure).
    """
    import matplotlib as mpl

    if not alt or not alt.strip():
        raise ValueError("figure_to_svg: alt text is required (accessibility); got an empty string")
    with mpl.rc_context({"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path"}):
        svg, crop = _draw_svg(fig, pad=float(mpl.rcParams["savefig.pad_inches"]))
    if close and fig.canvas.manager is not None:  # a pyplot figure: release it from pyplot
        import matplotlib.pyplot as plt

        plt.close(fig)
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    # the RDF metadata block only names matplotlib and namespace URLs: drop it (no URLs at all)
    svg = _METADATA.sub("", svg, count=1)
    label = escape(alt.strip(), quote=True)
    x0, y0, w, h = crop

    def _open(m: re.Match[str]) -> str:
        attrs = _SIZE.sub("", m.group(1))
        return (f'<svg{attrs} width="{w:.6g}pt" height="{h:.6g}pt" viewBox="{x0:.6g} {y0:.6g} {w:.6g} {h:.6g}"'
                f' role="img" aria-label="{label}"><title>{label}</title>')

    return _SVG_OPEN.sub(_open, svg, count=1)
