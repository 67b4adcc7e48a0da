"""The WeasyPrint form of a figure (issue 15, seventh pass): each label as PDF text in matplotlib's
own font, or as one path.

``pdf.svg_for_weasyprint`` rewrites matplotlib's text (one ``<use>`` of a glyph outline per
character). Oracles: for the one-path form, matplotlib's own affine algebra
(``matplotlib.transforms.Affine2D``): every glyph outline of the original SVG placed by composing
the ``<use>``'s and the definition's transforms, compared with the rewritten path's points; for
the text form, the label matplotlib wrote (its XML comment before each text group), the glyph
index FreeType gives for each character in matplotlib's font file (``FT2Font``) and each glyph's
offset. The picture is checked by rasterising the PDFs WeasyPrint writes with poppler (skipped
without them).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.transforms import Affine2D

from mmtrial.figures.svg import figure_to_svg
from mmtrial.report.pdf import (
    figure_font_family,
    figure_font_path,
    figure_fonts_css,
    svg_for_weasyprint,
    svg_text_as_one_path,
)

NS = "{http://www.w3.org/2000/svg}"
HREF = "{http://www.w3.org/1999/xlink}href"
NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _figure_svg() -> str:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [0.2, 0.9, 0.4], "o-", label="Arm A ≥ 2 lines")
    ax.set_xlabel("Months since start (AVAL)")
    ax.set_ylabel("Proportion, rotated")
    ax.set_title(r"PFS $x^2$ and $\frac{1}{2}$", color="#9b0000")
    ax.text(1, 0.5, "AV kerned", rotation=30, color="#084a91")
    ax.legend()
    return figure_to_svg(fig, "test figure")


def _affine(transform: str | None) -> Affine2D:
    """SVG transform list as an Affine2D: operations apply right to left (SVG 1.1 section 7.6)."""
    t = Affine2D()
    for name, args in reversed(re.findall(r"(\w+)\(([^)]*)\)", transform or "")):
        v = [float(x) for x in NUM.findall(args)]
        if name == "translate":
            t = t.translate(v[0], v[1] if len(v) > 1 else 0)
        elif name == "scale":
            t = t.scale(v[0], v[1] if len(v) > 1 else v[0])
        elif name == "rotate":
            t = t.rotate_deg(v[0])
        else:
            raise AssertionError(f"transform {name} not in matplotlib's text SVG")
    return t


def _points(d: str) -> np.ndarray:
    return np.array([float(x) for x in NUM.findall(d)]).reshape(-1, 2)


def _expected_groups(svg: str) -> list[np.ndarray]:
    """Per text group of plain glyph ``<use>``s: every glyph point in the group's coordinates."""
    root = ET.fromstring(svg)
    defs = {p.get("id"): p for p in root.iter(f"{NS}path") if p.get("id")}
    out = []
    for g in root.iter(f"{NS}g"):
        uses = [k for k in g if k.tag == f"{NS}use"]
        if not uses or any(k.tag not in (f"{NS}use", f"{NS}defs") for k in g):
            continue
        if any(set(u.attrib) - {HREF, "transform"} for u in uses):
            continue
        pts = []
        for u in uses:
            p = defs[u.get(HREF)[1:]]
            t = _affine(p.get("transform")) + _affine(u.get("transform"))  # definition, then use
            if p.get("d"):
                pts.append(t.transform(_points(p.get("d"))))
        out.append((g.get("transform"), np.vstack(pts)))
    return out


@pytest.fixture(scope="module")
def svg() -> str:
    return _figure_svg()


def test_each_label_becomes_one_path_with_the_same_outline_points(svg):
    expected = _expected_groups(svg)
    assert len(expected) >= 8  # title, axis labels, tick labels, legend, rotated text
    root = ET.fromstring(svg_text_as_one_path(svg))
    got = [(g.get("transform"), list(g)) for g in root.iter(f"{NS}g")
           if g.get("transform") and len(g) == 1 and g[0].tag == f"{NS}path" and not g[0].get("id")]
    got = [(t, _points(kids[0].get("d"))) for t, kids in got]
    assert [t for t, _ in got] == [t for t, _ in expected]  # group transforms kept, in order
    for (_, a), (_, b) in zip(got, expected, strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 0.006  # 2 decimals of the group unit (0.1 pt or less)


def test_only_glyph_uses_change(svg):
    out = svg_text_as_one_path(svg)
    before, after = ET.fromstring(svg), ET.fromstring(out)
    # mathtext with a fraction bar (a <path> next to the <use>s) stays as matplotlib wrote it
    left = [u.get(HREF) for u in after.iter(f"{NS}use")]
    assert all(ref[1:] in {p.get("id") for p in after.iter(f"{NS}path")} for ref in left)
    assert left, "the fraction's group keeps its <use>s and their definitions"
    # colours of text groups, title and alt text unchanged
    fills = lambda r: sorted(g.get("style") for g in r.iter(f"{NS}g") if g.get("style"))  # noqa: E731
    assert fills(before) == fills(after)
    assert before.find(f"{NS}title").text == after.find(f"{NS}title").text
    assert {k: v for k, v in before.attrib.items()} == {k: v for k, v in after.attrib.items()}
    # every non-text element (lines, markers, patches) is still there
    tags = lambda r: sorted(e.tag for e in r.iter() if e.tag in (f"{NS}clipPath", f"{NS}rect"))  # noqa: E731
    assert tags(before) == tags(after)


def test_a_glyph_defined_in_a_flattened_group_stays_defined_for_other_uses():
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'viewBox="0 0 100 100"><g transform="translate(10 50) scale(0.1 -0.1)"><defs>'
        '<path id="G-1" d="M 0 0 L 640 0 L 640 640 z" transform="scale(0.015625)"/></defs>'
        '<use xlink:href="#G-1"/><use xlink:href="#G-1" transform="translate(20 0)"/></g>'
        '<g><use xlink:href="#G-1" x="5" y="5" style="fill: red"/></g></svg>'
    )
    root = ET.fromstring(svg_text_as_one_path(svg))
    paths = {p.get("id"): p for p in root.iter(f"{NS}path")}
    assert "G-1" in paths  # the styled <use> (not flattened) still finds its outline
    merged = [p for p in root.iter(f"{NS}path") if not p.get("id")]
    assert len(merged) == 1
    np.testing.assert_allclose(_points(merged[0].get("d")),
                               [[0, 0], [10, 0], [10, 10], [20, 0], [30, 0], [30, 10]])


def test_something_else_is_left_as_it_is():
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
           '<defs><path id="a" d="m 0 0 l 1 1 z"/><path id="b" d="M 0 0 L 1 1" style="fill: red"/></defs>'
           '<g><use xlink:href="#a"/></g><g><use xlink:href="#b"/></g>'
           '<g><use xlink:href="#a" transform="skewX(10)"/></g></svg>')
    before = ET.tostring(ET.fromstring(svg), encoding="unicode")
    assert svg_text_as_one_path(svg) == before  # relative commands, styled def, skew: unchanged


_LABEL = re.compile(r"<!-- (.*?) -->\s*<g transform=\"([^\"]*)\"[^>]*>((?:\s*<defs>.*?</defs>)?(?:\s*<use [^>]*/>)+)\s*</g>", re.S)


def test_plain_labels_become_text_in_matplotlibs_font_with_its_glyphs_and_positions(svg):
    from matplotlib.ft2font import FT2Font

    out, fonts = svg_for_weasyprint(svg)
    assert fonts == {"DejaVuSans"}
    root = ET.fromstring(out)
    texts = {(t.text, t.get("x")): t for t in root.iter(f"{NS}text")}
    font = FT2Font(str(figure_font_path("DejaVuSans")))
    checked = 0
    for label, transform, body in _LABEL.findall(svg):
        label = label.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        if "$" in label:
            continue  # mathtext: glyphs placed off the baseline, stays a path
        s = float(re.search(r"scale\(([0-9.]+) -", transform).group(1))
        uses = re.findall(r'<use xlink:href="#DejaVuSans-([0-9a-f]+)"(?: transform="translate\(([-0-9.e]+) 0\)")?', body)
        xs = " ".join(f"{float(dx or 0) * s:.3f}" for _, dx in uses)
        assert (label, xs) in texts, label  # the string matplotlib drew, each glyph at its offset
        t = texts[(label, xs)]
        assert t.get("font-family") == figure_font_family("DejaVuSans")
        assert float(t.get("font-size")) == pytest.approx(100 * s)  # TextToPath.FONT_SCALE = 100
        assert [font.get_char_index(ord(c)) for c in label] == [int(g, 16) for g, _ in uses]
        checked += 1
    assert checked >= 8


def test_fonts_css_loads_matplotlibs_own_file():
    css = figure_fonts_css({"DejaVuSans"})
    assert figure_font_path("DejaVuSans").as_uri() in css
    assert figure_font_path("DejaVuSans").parent == Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    assert figure_font_path("DejaVuSans").exists()


def _raster(wp, tmp_path, name, svg, fonts=()) -> np.ndarray:
    from PIL import Image

    data = base64.b64encode(svg.encode()).decode()
    html = (f'<html><head><style>{figure_fonts_css(fonts)}</style></head><body style="margin:0">'
            f'<img style="width:180mm" src="data:image/svg+xml;base64,{data}"></body></html>')
    wp.HTML(string=html).write_pdf(tmp_path / f"{name}.pdf")
    subprocess.run(["pdftocairo", "-r", "200", "-singlefile", "-png", tmp_path / f"{name}.pdf", tmp_path / name],
                   check=True)
    return np.asarray(Image.open(tmp_path / f"{name}.png").convert("L"), dtype=float)


@pytest.fixture(scope="module")
def weasyprint():
    from mmtrial.report.pdf import PdfUnavailableError, load_weasyprint

    if shutil.which("pdftocairo") is None:
        pytest.skip("poppler-utils (pdftocairo) not installed")
    try:
        return load_weasyprint()
    except PdfUnavailableError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(str(exc))


def _moved(svg: str, dx: float, dy: float) -> str:
    """Every rewritten label moved by (dx, dy) figure points."""
    return re.sub(r'(<g[^>]*transform=")([^"]*)(">\s*<(?:text|path d=))',
                  lambda m: f"{m.group(1)}translate({dx} {dy}) {m.group(2)}{m.group(3)}", svg)


@pytest.mark.slow
def test_weasyprint_draws_the_same_picture(svg, weasyprint, tmp_path):
    # measured (pdftocairo, 200 dpi, summed grey-level difference / 255): one path 32, PDF text
    # 3,279 (text and outlines are anti-aliased differently), every label moved by 0.1 pt
    # 4,412-5,614, by 0.05 pt 3,373-3,713
    before = _raster(weasyprint, tmp_path, "before", svg)
    assert (before < 128).sum() > 10_000  # there is a drawn figure
    path = np.abs(_raster(weasyprint, tmp_path, "path", svg_text_as_one_path(svg)) - before).sum() / 255
    assert path < 100  # the same outlines: anti-aliasing at a few glyph joins
    out, fonts = svg_for_weasyprint(svg)
    text = np.abs(_raster(weasyprint, tmp_path, "text", out, fonts) - before).sum() / 255
    for dx, dy in ((0.1, 0), (0, -0.1)):  # the two nearest of the four directions (measured)
        moved = np.abs(_raster(weasyprint, tmp_path, "moved", _moved(out, dx, dy), fonts) - before).sum() / 255
        assert text < moved, (dx, dy)  # the text sits where matplotlib's outlines were


def test_a_glyph_no_character_maps_to_is_drawn_as_its_outline():
    # glyph 0x1869f is past DejaVu Sans' last glyph: no character of the cmap gives it
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
           '<g transform="translate(1 2) scale(0.1 -0.1)"><defs>'
           '<path id="DejaVuSans-33" d="M 0 0 L 64 0 L 64 64 z" transform="scale(0.015625)"/>'
           '<path id="DejaVuSans-1869f" d="M 0 0 L 64 64 z" transform="scale(0.015625)"/></defs>'
           '<use xlink:href="#DejaVuSans-33"/><use xlink:href="#DejaVuSans-1869f" transform="translate(50 0)"/></g></svg>')
    out, fonts = svg_for_weasyprint(svg)
    assert fonts == frozenset() and "<text" not in out
    np.testing.assert_allclose(_points(ET.fromstring(out).find(f"{NS}g/{NS}path").get("d")),
                               [[0, 0], [1, 0], [1, 1], [50, 0], [51, 1]])
    out, fonts = svg_for_weasyprint(svg.replace("1869f", "34"))  # "P", "Q": both characters
    assert fonts == {"DejaVuSans"} and ">PQ</text>" in out


def test_markers_become_paths_at_their_positions_with_the_uses_and_their_own_style(svg):
    before = ET.fromstring(svg)
    defs = {p.get("id"): p for p in before.iter(f"{NS}path") if p.get("id")}
    groups_before = list(before.iter(f"{NS}g"))
    groups_after = list(ET.fromstring(svg_for_weasyprint(svg, unwrap_groups=False)[0]).iter(f"{NS}g"))
    assert len(groups_before) == len(groups_after)  # the rewrite keeps every group
    marks = [(j, i, u) for j, g in enumerate(groups_before) for i, u in enumerate(g)
             if u.tag == f"{NS}use" and u.get("x") is not None]
    assert len(marks) >= 10  # tick marks and the line's circle markers
    for j, i, u in marks:
        p, d = groups_after[j][i], defs[u.get(HREF)[1:]]  # in the <use>'s place
        assert p.tag == f"{NS}path"
        shift = Affine2D().translate(float(u.get("x")), float(u.get("y")))
        np.testing.assert_allclose(_points(p.get("d")), shift.transform(_points(d.get("d"))), atol=6e-5)
        assert p.get("style") == "; ".join(s for s in (u.get("style"), d.get("style")) if s)


def test_plain_groups_are_unwrapped_and_the_others_kept():
    """A ``<g>`` whose only attribute is an unreferenced id draws nothing of its own (SVG 1.1
    sections 5.2, 6.7): it is replaced by its children, in order; a group with a transform, a
    style, a clip, no id at all but a class, or an id referred to by href/url()/<style> stays."""
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
           '<style>#styled-by-id { fill: red }</style>'
           '<g id="figure_1"><g id="patch_1"><path d="M 0 0 L 1 1"/></g>'
           '<g id="axes_1"><g><path d="M 1 1 L 2 2"/><path d="M 2 2 L 3 3"/></g>'
           '<g id="moved" transform="translate(1 2)"><path d="M 3 3 L 4 4"/></g>'
           '<g id="painted" style="fill: blue"><path d="M 4 4 L 5 5"/></g>'
           '<g id="clipped" clip-path="url(#c1)"><path d="M 5 5 L 6 6"/></g>'
           '<g id="used"><path d="M 6 6 L 7 7"/></g><use xlink:href="#used" x="3"/>'
           '<g id="styled-by-id"><path d="M 7 7 L 8 8"/></g>'
           '<g class="c"><path d="M 8 8 L 9 9"/></g></g></g>'
           '<defs><clipPath id="c1"><rect width="9" height="9"/></clipPath></defs></svg>')
    root = ET.fromstring(svg_for_weasyprint(svg)[0])
    kept = [g.get("id") or g.get("class") for g in root.iter(f"{NS}g")]
    assert kept == ["moved", "painted", "clipped", "used", "styled-by-id", "c"]
    order = [p.get("d").split()[1] for p in root.iter(f"{NS}path")]
    assert order == [str(i) for i in range(9)]  # every path, in document order
    assert [e.tag for e in root][:4] == [f"{NS}style", f"{NS}path", f"{NS}path", f"{NS}path"]
    assert len(list(ET.fromstring(svg_for_weasyprint(svg, unwrap_groups=False)[0]).iter(f"{NS}g"))) == 10
