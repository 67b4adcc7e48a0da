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

import contextlib
import functools
import io
import re
import threading
from collections import OrderedDict
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure as MplFigure

#: Fixed salt for matplotlib's SVG element ids (any constant string makes ids reproducible).
SVG_HASHSALT = "mmtrial"

_SVG_OPEN = re.compile(r"<svg\b([^>]*)>", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_SIZE = re.compile(r'\s(?:width|height|viewBox)="[^"]*"')

#: Most entries each process-wide text cache (:func:`_svg_renderer_class`) holds; when full it is
#: emptied and refilled (a report needs a few hundred distinct strings).
TEXT_CACHE_MAX = 20_000
_METRICS: dict = {}
_GLYPHS: dict = {}
_HEIGHTS: dict = {}


def _remember(cache: dict, key, value):
    if len(cache) >= TEXT_CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


@functools.cache
def _svg_renderer_class():
    """matplotlib's SVG renderer with text metrics and glyph outlines cached across figures.

    Every label of every figure is shaped by FreeType/libraqm twice per draw (once for its size
    when matplotlib lays the text out, once for its glyphs when it writes them as paths; 0.2-0.5
    ms per string and call, measured, issue 15), and its font's line metrics are read from the
    font tables each time the text is laid out. These are pure functions of the string, the font
    (file and size) and the dpi, so they are kept in three process-wide dictionaries: a tick
    label such as "0.2" is shaped once per process, not twice per figure. The SVG written is
    byte-identical (the cached values are the values; tested).

    Rule
    ----
    ``RendererBase.get_text_width_height_descent`` (matplotlib): width, height and descent of
    ``font.set_text(s)`` at the text's size and the renderer's dpi; ``TextToPath.
    get_glyphs_with_font``: glyph ids, positions and outlines of ``s`` at ``TextToPath.FONT_SCALE``
    (``_draw_text_as_path`` sets the font to that size before calling it). Math text and TeX are
    not cached (they take other code paths).
    """
    from matplotlib.backends.backend_svg import RendererSVG
    from matplotlib.textpath import TextToPath

    class _CachingTextToPath(TextToPath):
        def get_glyphs_with_font(self, font, s, glyph_map=None, return_new_glyphs_only=False, **kw):
            # kw: matplotlib >= 3.11's features and language (None when the text sets none)
            try:
                key = (font, s, *sorted(kw.items()))
                hit = _GLYPHS.get(key)
            except TypeError:  # an unhashable option: no caching
                return super().get_glyphs_with_font(font, s, glyph_map, return_new_glyphs_only, **kw)
            if hit is None:
                info, paths, rects = super().get_glyphs_with_font(font, s, **kw)
                for verts, codes in paths.values():  # shared by every later hit: read-only
                    verts.setflags(write=False)
                    codes.setflags(write=False)
                hit = _remember(_GLYPHS, key, (tuple(info), dict(paths), tuple(rects)))
            info, paths, rects = hit
            # what TextToPath.get_glyphs_with_font returns: the glyphs not yet in glyph_map (or
            # glyph_map itself, completed), in order of first appearance
            if glyph_map is None:
                glyph_map = OrderedDict()
            new = OrderedDict() if return_new_glyphs_only else glyph_map
            for glyph_repr, *_ in info:
                if glyph_repr not in glyph_map and glyph_repr not in new:
                    new[glyph_repr] = paths[glyph_repr]
            return list(info), new, list(rects)

    class _CachingRendererSVG(RendererSVG):
        #: the figure's dpi while it is drawn (``_draw_svg`` sets 72)
        layout_dpi = 72

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._text2path = _CachingTextToPath()

        def get_text_width_height_descent(self, s, prop, ismath):
            if ismath:
                return super().get_text_width_height_descent(s, prop, ismath)
            font = self._text2path._get_font(prop)
            key = (font, s, prop.get_size_in_points(), self.points_to_pixels(72))
            hit = _METRICS.get(key)
            if hit is None:
                hit = _remember(_METRICS, key, super().get_text_width_height_descent(s, prop, ismath))
            return hit

        def _get_font_height_metrics(self, prop):
            # matplotlib >= 3.10 asks the renderer first (Text._get_layout); the same values
            # from the same font tables, computed once per font, size and dpi
            from matplotlib.font_manager import fontManager, get_font

            font = get_font(fontManager._find_fonts_by_props(prop))
            key = (font, prop.get_size_in_points(), self.layout_dpi)
            hit = _HEIGHTS.get(key)
            if hit is None:
                hit = (None, None, None)
                for name, gap, asc, desc in (("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
                                             ("hhea", "lineGap", "ascent", "descent")):
                    table = font.get_sfnt_table(name)
                    if table is None:
                        continue
                    scale = 1 / font.get_sfnt_table("head")["unitsPerEm"] * key[1] * key[2] / 72
                    hit = (table[asc] * scale, -table[desc] * scale, table[gap] * scale)
                    break
                _remember(_HEIGHTS, key, hit)
            return hit

    return _CachingRendererSVG


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


def _text_layout_key(text) -> tuple | None:
    """Everything ``Text._get_layout`` reads from a text (matplotlib 3.11), or None when the
    layout depends on more (wrapped text: on the figure's size and the text's position)."""
    if text.get_wrap():
        return None
    p = text.get_fontproperties()
    return (id(text), text.get_text(), tuple(p.get_family()), p.get_style(), p.get_variant(), p.get_weight(),
            p.get_stretch(), p.get_size(), p.get_file(), p.get_math_fontfamily(), text.get_rotation(),
            text.get_rotation_mode(), text.get_horizontalalignment(), text.get_verticalalignment(),
            getattr(text, "_multialignment", None), getattr(text, "_linespacing", None), text.get_usetex(),
            text.get_parse_math(), getattr(text, "_fontfeatures", None), getattr(text, "_language", None))


_LAYOUT_LOCK = threading.Lock()
_layout_users = 0
_layout_original = None


@contextlib.contextmanager
def _text_layouts_memoised():
    """While active, ``Text._get_layout`` results are kept per text and per draw for renderers that
    carry a ``text_layouts`` dictionary (the caching SVG renderer of :func:`_draw_svg`); every other
    renderer (Agg, other threads' figures) gets matplotlib's own method unchanged (issue 15).

    matplotlib lays each text out again whenever its extent is asked for: when it is drawn, when
    the axis labels are placed beside the tick labels, and for the tight crop box, about 2.5
    times per text. The layout is a pure function of the text's string, font, rotation,
    alignment and line spacing (the key, :func:`_text_layout_key`) and of the renderer and dpi,
    which are fixed for one draw; the memo lives on the renderer, so it ends with the draw.
    """
    global _layout_users, _layout_original
    from matplotlib.text import Text

    with _LAYOUT_LOCK:
        if _layout_users == 0:
            original = _layout_original = Text._get_layout

            def _get_layout(self, renderer, *args, **kwargs):
                memo = getattr(renderer, "text_layouts", None)
                key = _text_layout_key(self) if memo is not None and not args and not kwargs else None
                if key is None:
                    return original(self, renderer, *args, **kwargs)
                hit = memo.get(key)
                if hit is None:
                    hit = memo[key] = original(self, renderer)
                bbox, info, rest = hit
                return bbox.frozen(), list(info), rest

            Text._get_layout = _get_layout
        _layout_users += 1
    try:
        yield
    finally:
        with _LAYOUT_LOCK:
            _layout_users -= 1
            if _layout_users == 0:
                Text._get_layout = _layout_original


def _tightbbox_as_drawn(fig: MplFigure, renderer):
    """``fig.get_tightbbox(renderer)`` right after ``fig.draw(renderer)``, without recomputing
    the ticks of every axis several times (issue 15).

    matplotlib's tight box asks each axis for its ticks again (tick locator, formatter and the
    text of every tick label), once per axis, once per spine and once per sibling axis when it
    places the axis labels: about a third of the box's CPU. Nothing changes between the draw and
    this box, so each axis's ticks are computed once more and that list is returned to every
    later request while the box is measured; the box is the same (tested: byte-identical SVG).
    """
    pinned = []
    try:
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                update = getattr(axis, "_update_ticks", None)  # a private matplotlib method
                if update is None:
                    continue
                ticks = update()
                axis._update_ticks = lambda ticks=ticks: ticks
                pinned.append(axis)
        return fig.get_tightbbox(renderer)
    finally:
        for axis in pinned:
            del axis._update_ticks


def _draw_svg(fig: MplFigure, pad: float | None) -> tuple[str, tuple[float, float, float, float] | None]:
    """The figure drawn once by matplotlib's SVG renderer, and its tight crop box in points.

    Returns the SVG text of the whole figure and ``(x, y, width, height)`` of the box that
    ``savefig(bbox_inches="tight", pad_inches=pad)`` would keep, in SVG user units (points,
    origin top left). The box is the figure's tight bounding box measured with the renderer that
    drew it, so text extents come from the same layout (matplotlib caches them per renderer)
    instead of a second layout pass. Matplotlib's ``FigureCanvasSVG.print_svg`` is the model:
    the figure is drawn at 72 dpi through a ``MixedModeRenderer`` (raster parts at the figure's
    own dpi). ``pad=None``: no crop box (None), the document ``savefig(format="svg")`` writes.
    """
    from matplotlib.backends.backend_mixed import MixedModeRenderer

    buf = io.StringIO()
    dpi = fig.dpi
    try:
        fig.dpi = 72
        width, height = fig.get_size_inches()
        svg_renderer = _svg_renderer_class()(width * 72, height * 72, buf, image_dpi=dpi,
                                             metadata={"Date": None})
        svg_renderer.layout_dpi = fig.dpi
        renderer = MixedModeRenderer(fig, width, height, dpi, svg_renderer)
        svg_renderer.text_layouts = {}  # this draw's text layouts (_text_layouts_memoised)
        with _text_layouts_memoised():
            fig.draw(renderer)
            box = None if pad is None else _tightbbox_as_drawn(fig, renderer).padded(pad)
        renderer.finalize()
    finally:
        fig.dpi = dpi
    if box is None:
        return buf.getvalue(), None
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
