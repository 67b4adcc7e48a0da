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
    salt instead of uuid4") and ``savefig(metadata={"Date": None})`` (omit the date); the
    figure is cropped to its drawn content (``bbox_inches="tight"``) so no axis label is cut off.
    """
    import matplotlib as mpl

    if not alt or not alt.strip():
        raise ValueError("figure_to_svg: alt text is required (accessibility); got an empty string")
    buf = io.StringIO()
    with mpl.rc_context({"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    if close and fig.canvas.manager is not None:  # a pyplot figure: release it from pyplot
        import matplotlib.pyplot as plt

        plt.close(fig)
    svg = buf.getvalue()
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    # the RDF metadata block only names matplotlib and namespace URLs: drop it (no URLs at all)
    svg = _METADATA.sub("", svg, count=1)
    label = escape(alt.strip(), quote=True)

    def _open(m: re.Match[str]) -> str:
        attrs = m.group(1)
        return f'<svg{attrs} role="img" aria-label="{label}"><title>{label}</title>'

    return _SVG_OPEN.sub(_open, svg, count=1)
