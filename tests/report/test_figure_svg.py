"""figure_to_svg: reproducible bytes, alt text inside the SVG, nothing external."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from mmtrial.figures.svg import figure_to_svg

CODE = """
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt, sys
from mmtrial.figures.svg import figure_to_svg
fig, ax = plt.subplots(figsize=(4, 3))
ax.step([0, 1, 2, 3], [1.0, 0.8, 0.5, 0.2], where="post")
ax.plot([1.5], [0.8], "+")
ax.set_title("PFS <all>")
sys.stdout.write(figure_to_svg(fig, "Kaplan-Meier curve of PFS & censoring marks"))
"""


def _svg(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, check=True, env=env
    ).stdout.decode()


def test_same_figure_gives_the_same_bytes_in_different_processes():
    # matplotlib salts SVG ids with uuid4 unless rcParams["svg.hashsalt"] is set (matplotlib docs)
    a, b = _svg("1"), _svg("2")
    assert a == b
    assert "<dc:date>" not in a


def test_alt_text_is_the_svg_title_and_aria_label():
    svg = _svg("0")
    assert svg.startswith("<svg")
    head = svg[: svg.index(">") + 1]
    assert 'role="img"' in head
    assert 'aria-label="Kaplan-Meier curve of PFS &amp; censoring marks"' in head
    assert "<title>Kaplan-Meier curve of PFS &amp; censoring marks</title>" in svg


def test_no_metadata_urls_and_no_external_references():
    svg = _svg("0")
    assert "<metadata>" not in svg
    assert not re.search(r"(?:href|src)=\"(?!#|data:)", svg)
    urls = set(re.findall(r"https?://[^\"\s)]+", svg))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # namespaces only


def test_alt_text_is_required():
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="alt text is required"):
        figure_to_svg(fig, "  ")
    plt.close(fig)


def test_crop_is_the_size_savefig_tight_gives():
    # figure_to_svg draws once and crops with the viewBox; the oracle is matplotlib's own
    # savefig(bbox_inches="tight") of the same figure: same width and height in points
    from mmtrial.figures.svg import new_figure

    def make():
        fig = new_figure((5, 3))
        ax = fig.subplots()
        ax.plot([0, 10], [0, 1])
        ax.set_ylabel("a long y label that sticks out")
        fig.text(0.0, -0.05, "footnote below the axes")
        return fig

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "x", "svg.fonttype": "path"}):
        make().savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    ref = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', buf.getvalue())
    got = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt" viewBox="(-?[\d.]+) (-?[\d.]+) ', figure_to_svg(make(), "x"))
    assert float(got[1]) == pytest.approx(float(ref[1]), abs=1e-3)
    assert float(got[2]) == pytest.approx(float(ref[2]), abs=1e-3)
    assert float(got[4]) + float(got[2]) > 3 * 72  # the crop reaches below the figure (the footnote)


def _busy_figure():
    """Every kind of text a report figure has: tick labels, axis labels, a title, a legend, a
    two-line box, rotated text, math text, figure text and a non-ASCII label."""
    from mmtrial.figures.svg import new_figure

    fig = new_figure((6, 4))
    ax = fig.add_axes((0.2, 0.2, 0.7, 0.7))
    ax.step([0, 3, 6, 9, 12], [1.0, 0.8, 0.6, 0.5, 0.4], where="post", label="Arm A (n=61)")
    ax.plot([0, 12], [0.2, 0.7], label="Arm B (n=62)")
    ax.set_xticks([0, 3, 6, 9, 12])
    ax.set_xlabel("Months")
    ax.set_ylabel("Progression-free survival probability")
    ax.set_title("PFS: median 3.7 (2.9, 4.7)", fontsize=10)
    ax.legend(loc="lower left", fontsize=8.5, frameon=False)
    ax.text(0.98, 0.97, "HR 0.72 (0.51, 1.02)\nlog-rank p = 0.061", transform=ax.transAxes, ha="right",
            va="top", fontsize=8.5, bbox={"boxstyle": "square,pad=0.3", "fc": "white", "ec": "#888888"})
    ax.text(6, 0.3, "rotated", rotation=30, fontsize=7)
    ax.text(1, 0.1, r"$\alpha = 0.05$", fontsize=8)
    fig.text(0.01, 0.05, "Number at risk \u2265 1 \u00b5g/L", fontsize=8.5, weight="bold")
    for k, x in enumerate((0.3, 0.5, 0.7)):
        fig.text(x, 0.02, str(100 - 10 * k), fontsize=8, ha="center")
    return fig


def test_caching_renderer_writes_the_bytes_of_matplotlibs_own(monkeypatch):
    # oracle: the same figure drawn by matplotlib's plain RendererSVG, its own Text layout and
    # Figure.get_tightbbox (what _draw_svg did before the text caches, the per-draw layout memo
    # and the pinned ticks, issue 15)
    import contextlib

    import matplotlib.figure
    from matplotlib.backends.backend_svg import RendererSVG
    from matplotlib.text import Text

    import mmtrial.figures.svg as svgm

    for cache in ("_METRICS", "_GLYPHS", "_HEIGHTS"):
        monkeypatch.setattr(svgm, cache, {})
    original = Text._get_layout
    cold = figure_to_svg(_busy_figure(), "busy figure")  # caches empty
    warm = figure_to_svg(_busy_figure(), "busy figure")  # every string served from the caches
    assert svgm._METRICS and svgm._GLYPHS and svgm._HEIGHTS
    assert Text._get_layout is original  # matplotlib's own method again after each draw
    monkeypatch.setattr(svgm, "_svg_renderer_class", lambda: RendererSVG)
    monkeypatch.setattr(svgm, "_tightbbox_as_drawn", matplotlib.figure.Figure.get_tightbbox)
    monkeypatch.setattr(svgm, "_text_layouts_memoised", contextlib.nullcontext)
    plain = figure_to_svg(_busy_figure(), "busy figure")
    assert cold == plain
    assert warm == plain


def test_cached_glyphs_are_what_texttopath_returns():
    # TextToPath.get_glyphs_with_font (matplotlib) is the oracle, for each way the SVG renderer
    # and TextToPath.get_text_path call it: no glyph map, a partial one, new glyphs only or not
    import numpy as np
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    from mmtrial.figures.svg import _svg_renderer_class

    cached = _svg_renderer_class()(100, 100, io.StringIO())._text2path
    plain = TextToPath()
    font = plain._get_font(FontProperties(size=8))
    seen = plain.get_glyphs_with_font(font, "ab")[1]
    for text in ("0.25", "Months", "aab baa", ""):
        for glyph_map in (None, seen):
            for new_only in (False, True):
                got = [cached.get_glyphs_with_font(font, text, None if glyph_map is None else dict(glyph_map),
                                                   new_only) for _ in range(2)]  # miss, then hit
                want = plain.get_glyphs_with_font(font, text, None if glyph_map is None else dict(glyph_map),
                                                  new_only)
                for g in got:
                    assert g[0] == want[0] and g[2] == want[2]
                    assert list(g[1]) == list(want[1])  # same glyphs, same order
                    for key, (verts, codes) in want[1].items():
                        np.testing.assert_array_equal(g[1][key][0], verts)
                        np.testing.assert_array_equal(g[1][key][1], codes)


@pytest.mark.parametrize("change", [
    lambda t: t.set_text("a much longer label"), lambda t: t.set_fontsize(14), lambda t: t.set_rotation(45),
    lambda t: t.set_horizontalalignment("right"), lambda t: t.set_verticalalignment("top"),
    lambda t: t.set_linespacing(2.0), lambda t: t.set_fontweight("bold"), lambda t: t.set_fontfamily("serif"),
    lambda t: t.set_multialignment("right"), lambda t: t.set_rotation_mode("anchor"),
])
def test_layout_memo_follows_every_change_of_a_text(change):
    # oracle: matplotlib's own Text._get_layout after the change; a text that changes within one
    # draw (tick labels are re-labelled while the figure is drawn) must not get its old layout
    import matplotlib.figure
    from matplotlib.text import Text

    from mmtrial.figures.svg import _svg_renderer_class, _text_layouts_memoised

    fig = matplotlib.figure.Figure(figsize=(4, 3), dpi=72)
    text = fig.text(0.5, 0.5, "label 1\nsecond line", fontsize=8, rotation=30)
    renderer = _svg_renderer_class()(288, 216, io.StringIO())
    original = Text._get_layout
    def layout(get):  # the box, and each line with its size and offset
        bbox, lines, _ = get(text, renderer)
        return bbox.bounds, lines

    with _text_layouts_memoised():
        renderer.text_layouts = {}
        before = layout(Text._get_layout)
        change(text)
        after = layout(Text._get_layout)
        assert len(renderer.text_layouts) == 2
    assert after == layout(original)
    assert after != before


def test_uncropped_draw_is_savefigs_svg_document():
    # oracle: matplotlib's fig.savefig(format="svg", metadata={"Date": None}) of the same figure
    # (the dose-level swimmer plot writes its SVG this way, issue 15)
    from mmtrial.figures.svg import _draw_svg

    with matplotlib.rc_context({"svg.hashsalt": "mmtrial-swimmer"}):
        ref = io.StringIO()
        _busy_figure().savefig(ref, format="svg", metadata={"Date": None})
        got, crop = _draw_svg(_busy_figure(), None)
    assert crop is None
    assert got == ref.getvalue()
