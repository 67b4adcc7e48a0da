"""The report as PDF, via WeasyPrint (BSD; PyPI ``weasyprint``, system Pango from Debian).

WeasyPrint lays out the same HTML with the report's print stylesheet: A4 or Letter pages, page
numbers ("Page n of N") and, for a synthetic study, "SYNTHETIC DATA" in every page's top margin;
table header rows repeat on each page, rows are not split, cells wrap, and tables wider than
``WIDE_TABLE_COLUMNS`` columns go on landscape pages, so no table is clipped. Figures reach
WeasyPrint in a cheaper form (:func:`svg_for_weasyprint`: labels as PDF text in matplotlib's own
font, marks as paths) and the garbage collector runs rarely meanwhile (:data:`PDF_GC_THRESHOLD`;
issue 15, docs/design.md "seventh pass").
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
from pathlib import Path
from typing import Literal

from mmtrial._io import atomic_write_bytes

PageSize = Literal["A4", "Letter"]
PAGE_SIZES: tuple[str, ...] = ("A4", "Letter")


class PdfUnavailableError(RuntimeError):
    """WeasyPrint or the system libraries it needs (Pango) cannot be loaded."""


def load_weasyprint():
    """Import WeasyPrint, turning a missing package or Pango into one clear error."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: libpango not found by cffi
        raise PdfUnavailableError(
            "PDF output needs WeasyPrint and the system Pango library: "
            "pip install 'mmtrial[pdf]' and apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
            f"fonts-dejavu-core ({type(exc).__name__}: {exc})"
        ) from exc
    return weasyprint


def page_size_css(page_size: str) -> str:
    """The ``@page`` rules that set the paper size (portrait and the landscape ``wide`` pages)."""
    if page_size not in PAGE_SIZES:
        raise ValueError(f"render_pdf: page_size must be one of {PAGE_SIZES}; got {page_size!r}")
    return f"@page {{ size: {page_size}; }} @page wide {{ size: {page_size} landscape; }}"


_TRACE_LIST = re.compile(r'(<div class="trace-entry" id="[^"]*">.*?)<ul>(.*?)</ul>')
_TRACE_ITEM = re.compile(r"<li>(?:<a [^>]*>)?(.*?)(?:</a>)?</li>")


def compact_trace_index(html: str) -> str:
    """Print form of the traceability index: each entry's subjects as one line of text.

    On screen each subject is a link (``<li><a>``); WeasyPrint styles and lays out every element,
    and tens of thousands of them (large AE tables) cost minutes. In the PDF the count still
    links to its entry, and the entry names the subjects as plain text (the listing is sorted by
    USUBJID). Measured in docs/report.md.
    """

    def _one(m: re.Match[str]) -> str:
        names = _TRACE_ITEM.findall(m.group(2))
        return f'{m.group(1)}<p class="trace-subjects">{", ".join(names)}</p>'

    return _TRACE_LIST.sub(_one, html)


# --- figures for WeasyPrint: labels as PDF text or one path, marks as paths (issue 15, seventh pass) --

_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_PATH_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TRANSFORM = re.compile(r"\s*(translate|scale|rotate|matrix)\s*\(([^)]*)\)\s*")
_ABSOLUTE = {"M": 2, "L": 2, "Q": 4, "C": 6, "Z": 0, "z": 0}
_SVG_DATA_URI = re.compile(r'(src="data:image/svg\+xml;base64,)([A-Za-z0-9+/=]+)(")')


Affine = tuple[float, float, float, float, float, float]
_IDENTITY: Affine = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _compose(m: Affine, n: Affine) -> Affine:
    """``m`` then ``n`` applied inside it: the matrix product m x n of SVG's (a b c d e f)."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (a * a2 + c * b2, b * a2 + d * b2, a * c2 + c * d2, b * c2 + d * d2,
            a * e2 + c * f2 + e, b * e2 + d * f2 + f)


def _affine(transform: str | None) -> Affine | None:
    """The matrix (a, b, c, d, e, f) of an SVG ``transform`` list (SVG 1.1 section 7.6), or None
    if it has an operation this module does not read (``skewX``, ``rotate`` about a point)."""
    import math

    m = _IDENTITY
    text = (transform or "").strip()
    pos = 0
    for op in _TRANSFORM.finditer(text):
        if op.start() != pos:
            return None
        pos = op.end()
        v = [float(x) for x in op.group(2).replace(",", " ").split()]
        name = op.group(1)
        if name == "translate" and len(v) in (1, 2):
            t = (1.0, 0.0, 0.0, 1.0, v[0], v[1] if len(v) == 2 else 0.0)
        elif name == "scale" and len(v) in (1, 2):
            t = (v[0], 0.0, 0.0, v[1] if len(v) == 2 else v[0], 0.0, 0.0)
        elif name == "rotate" and len(v) == 1:
            c, s = math.cos(math.radians(v[0])), math.sin(math.radians(v[0]))
            t = (c, s, -s, c, 0.0, 0.0)
        elif name == "matrix" and len(v) == 6:
            t = tuple(v)
        else:
            return None
        m = _compose(m, t)
    return m if pos == len(text) else None


def _apply(m: Affine, xy):
    """Points (n x 2 array) through the matrix ``m``."""
    import numpy as np

    a, b, c, d, e, f = m
    if (a, b, c, d) == (1.0, 0.0, 0.0, 1.0):
        return np.add(xy, (e, f))
    return np.add(xy @ ((a, b), (c, d)), (e, f))


def _outline(d: str, number: str = "%.2f"):
    """A path's ``d`` as (printf template, n x 2 coordinates), if it has only absolute M/L/Q/C/Z
    commands with all their numbers (what matplotlib writes for glyphs; empty for a space); else
    None."""
    import numpy as np

    parts: list[str] = []
    nums: list[float] = []
    need = 0
    for tok in _PATH_TOKEN.findall(d):
        if tok.isalpha():
            if need or tok not in _ABSOLUTE:
                return None
            need = _ABSOLUTE[tok]
            parts.append(tok)
        else:
            if not need:
                return None
            nums.append(float(tok))
            parts.append(number)
            need -= 1
    if need or len(nums) % 2:
        return None
    return " ".join(parts), np.array(nums, dtype=float).reshape(-1, 2)


#: matplotlib's own fonts (``mpl-data/fonts/ttf``) a figure label may be printed with as PDF text,
#: by PostScript name, the prefix of matplotlib's glyph ids (``DejaVuSans-33``: glyph 0x33).
FIGURE_FONT_FILES: dict[str, str] = {
    "DejaVuSans": "DejaVuSans.ttf", "DejaVuSans-Bold": "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique": "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique": "DejaVuSans-BoldOblique.ttf",
}
_GROUP_SCALE = re.compile(r"^(.*?)\s*scale\(\s*([0-9.eE+-]+)[\s,]+([0-9.eE+-]+)\s*\)\s*$")
#: characters a lone glyph must not be printed as: shaping drops or decorates them (marks get a
#: dotted circle, format characters no glyph)
_NOT_ALONE = frozenset({"Mn", "Me", "Mc", "Cf", "Cc", "Zl", "Zp", "Co", "Cs"})


def figure_font_family(ps_name: str) -> str:
    """The CSS family under which the PDF loads matplotlib's font ``ps_name`` (``@font-face``)."""
    return f"mmtrial figure {ps_name}"


def figure_font_path(ps_name: str) -> Path:
    """matplotlib's own file of the font ``ps_name`` (:data:`FIGURE_FONT_FILES`)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FIGURE_FONT_FILES[ps_name]


@functools.cache
def _glyph_chars(ps_name: str) -> dict[int, str]:
    """Glyph index -> the character the font's cmap maps to it (the lowest code point that can be
    shaped alone), from matplotlib's file of the font; empty if the file cannot be read."""
    import unicodedata

    from matplotlib.ft2font import FT2Font

    try:
        cmap = FT2Font(str(figure_font_path(ps_name))).get_charmap()
    except (OSError, RuntimeError, KeyError):
        return {}
    out: dict[int, str] = {}
    for code in sorted(cmap):
        ch = chr(code)
        if cmap[code] not in out and unicodedata.category(ch) not in _NOT_ALONE:
            out[cmap[code]] = ch
    return out


def _label_as_text(g, uses, refs) -> tuple[str, str, str, list[float], float] | None:
    """A text group as (font, new group transform, characters, x of each, font size), if it is
    one font of :data:`FIGURE_FONT_FILES` scaled by ``scale(s -s)`` last, each glyph shifted
    along the baseline only and mapped to a character; else None."""
    m = _GROUP_SCALE.match(g.get("transform") or "")
    if m is None or float(m.group(2)) <= 0 or float(m.group(3)) != -float(m.group(2)):
        return None
    size = float(m.group(2))
    font = refs[0].rpartition("-")[0]
    if font not in FIGURE_FONT_FILES or any(r.rpartition("-")[0] != font for r in refs):
        return None
    chars, xs = [], []
    table = _glyph_chars(font)
    for u, r in zip(uses, refs, strict=True):
        t = _affine(u.get("transform"))
        gid = r.rpartition("-")[2]
        ch = table.get(int(gid, 16)) if re.fullmatch(r"[0-9a-f]+", gid) else None
        if t is None or t[:4] != (1.0, 0.0, 0.0, 1.0) or t[5] != 0.0 or ch is None:
            return None
        chars.append(ch)
        xs.append(t[4] * size)
    return font, m.group(1), "".join(chars), xs, size


def svg_for_weasyprint(svg: str, *, as_text: bool = True, unwrap_groups: bool = True) -> tuple[str, frozenset[str]]:
    """The same figure drawn cheaply by WeasyPrint: each text label as PDF text in matplotlib's own
    font, or as one ``<path>`` (issue 15, seventh pass). Returns the SVG and the fonts (PostScript
    names) the ``<text>`` elements need: the page must load them with :func:`figure_fonts_css`.

    Matplotlib writes text as glyph outlines (``svg.fonttype = "path"``, so the figure needs no
    font): each glyph once in ``<defs>``, each character a ``<use>`` of it with its own
    ``transform``. WeasyPrint copies, cascades and draws every ``<use>`` as a node and parses the
    glyph's path again each time (the demo's 11 figures: 2,611 characters, about 1 s of the PDF's
    CPU). A group made only of ``<use>`` references (no ``x``, ``y``, ``style``) to unstyled
    defined paths is rewritten:

    * ``as_text`` and every glyph of one font of :data:`FIGURE_FONT_FILES`, each placed along the
      baseline (plain labels, not mathtext): a ``<text>`` in that font (loaded from matplotlib's
      own file, so the same outlines), at the group's size (``scale(s -s)``: ``100 s``, matplotlib's
      ``TextToPath.FONT_SCALE``), each character at its glyph's own x (``x`` list: matplotlib's
      kerning kept), the group's transform otherwise and its fill kept. The glyph is the one the
      font's cmap gives for the character; a glyph no character maps to (a ligature) leaves the
      group to the next rule;
    * else, if every glyph path has absolute commands only: one ``<path>`` in the group's own
      coordinates, the same outlines placed by the ``<use>`` and definition transforms (SVG 1.1
      sections 5.6 and 7.6), rounded to 0.01 of the group's unit (matplotlib's text groups are
      scaled by 0.1 or less: 0.001 pt). Glyphs overlap only where their fills add up (same
      winding, nonzero rule: the union is filled either way).

    Anything else is left as it is; glyph definitions still referenced by an unchanged ``<use>``
    are kept.
    """
    import xml.etree.ElementTree as ET

    ET.register_namespace("", _SVG_NS)
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ET.fromstring(svg)
    g_tag, use_tag, defs_tag, path_tag, text_tag = (
        f"{{{_SVG_NS}}}{t}" for t in ("g", "use", "defs", "path", "text"))
    shapes: dict[str, ET.Element] = {}
    for defs in root.iter(defs_tag):
        for p in defs:
            if p.tag == path_tag and p.get("id") and set(p.attrib) <= {"id", "d", "transform"}:
                shapes[p.get("id")] = p
    outlines: dict[str, tuple | None] = {}

    def outline(ref: str):
        if ref not in outlines:
            p = shapes[ref]
            o = _outline(p.get("d") or "")
            m = _affine(p.get("transform"))
            outlines[ref] = None if o is None or m is None else (o[0], _apply(m, o[1]))
        return outlines[ref]

    flattened: set[str] = set()
    fonts: set[str] = set()
    for g in root.iter(g_tag):
        kids = list(g)
        uses = [k for k in kids if k.tag == use_tag]
        if not uses or any(k.tag not in (use_tag, defs_tag) for k in kids):
            continue
        refs = [u.get(_XLINK_HREF, "")[1:] for u in uses]
        if any(set(u.attrib) - {_XLINK_HREF, "transform"} or r not in shapes for u, r in zip(uses, refs, strict=True)):
            continue
        label = _label_as_text(g, uses, refs) if as_text else None
        if label is not None:
            font, transform, chars, xs, size = label
            for k in kids:
                g.remove(k)
            if transform:
                g.set("transform", transform)
            else:
                del g.attrib["transform"]
            ET.SubElement(g, text_tag, {
                "{http://www.w3.org/XML/1998/namespace}space": "preserve",
                "x": " ".join(f"{x:.3f}" for x in xs), "y": "0",
                "font-family": figure_font_family(font), "font-size": f"{100 * size:.4f}",
            }).text = chars
            flattened.update(refs)
            fonts.add(font)
            continue
        pieces = []
        for u, r in zip(uses, refs, strict=True):
            o, m = outline(r), _affine(u.get("transform"))
            if o is None or m is None:
                break
            if len(o[1]):
                pieces.append(o[0] % tuple(_apply(m, o[1]).ravel().tolist()))
        else:
            for k in kids:
                g.remove(k)
            if pieces:
                ET.SubElement(g, path_tag, {"d": " ".join(pieces)})
            flattened.update(refs)
    if as_text:
        _markers_as_paths(root, use_tag, path_tag)
    if unwrap_groups:
        _unwrap_plain_groups(root, g_tag)
    kept = {u.get(_XLINK_HREF, "")[1:] for u in root.iter(use_tag)}
    orphans = [shapes[r] for r in sorted(kept & flattened)]
    if orphans:  # defined in a group rewritten above, still used elsewhere
        ET.SubElement(root, defs_tag).extend(orphans)
    return ET.tostring(root, encoding="unicode"), frozenset(fonts)


_ID_REF = re.compile(r"#([^\s\"')#,;{}]+)")


def _unwrap_plain_groups(root, g_tag: str) -> None:
    """Each ``<g>`` whose only attribute is an ``id`` nothing refers to, replaced by its children.

    Matplotlib wraps every artist in such a group. A group without transform, style, clip, mask,
    filter or opacity draws nothing of its own (SVG 1.1 sections 5.2 and 6.7: its children
    inherit only from the group's ancestors), but WeasyPrint draws each group as a node (a state
    saved and restored, a cascade): the demo's 11 figures hold about 1,600 of them (issue 15,
    seventh pass: the body PDF about 0.2 s less, every page pixel-identical at 100 dpi). An id
    used by ``href``, ``url(#...)`` or a ``<style>`` rule keeps its group."""
    referred: set[str] = set()
    for e in root.iter():
        for v in e.attrib.values():
            referred.update(_ID_REF.findall(v))
        if e.text and e.tag.endswith("}style"):
            referred.update(_ID_REF.findall(e.text))

    def unwrap(parent) -> None:
        i = 0
        while i < len(parent):
            child = parent[i]
            if child.tag == g_tag and set(child.attrib) <= {"id"} and child.get("id") not in referred:
                parent[i:i + 1] = list(child)
                continue
            unwrap(child)
            i += 1

    unwrap(root)


#: Style properties a marker's ``<use>`` may set for it to become a plain ``<path>``: inherited
#: paint properties the SVG's own ``<style>`` rules (matplotlib: ``stroke-linejoin``,
#: ``stroke-linecap``) do not set, so moving them from the ``<use>`` onto the path changes nothing.
_USE_STYLE = frozenset({"fill", "stroke", "stroke-width", "fill-opacity", "stroke-opacity"})
_PATH_STYLE = _USE_STYLE | {"stroke-linecap", "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset",
                            "stroke-miterlimit", "fill-rule"}


def _style_names(style: str) -> set[str]:
    return {d.split(":", 1)[0].strip() for d in style.split(";") if d.strip()}


def _markers_as_paths(root, use_tag: str, path_tag: str) -> None:
    """Each marker ``<use>`` (matplotlib's tick marks and scatter symbols: ``x``, ``y`` and a paint
    ``style``) of a defined ``<path>`` with absolute commands, replaced in place by that path
    moved to (x, y): the ``<use>``'s style first, the path's own after it (its own declarations
    win over what it inherits from the ``<use>``; SVG 1.1 section 5.6). WeasyPrint then draws one
    node instead of copying and cascading the referenced tree per mark."""
    defs: dict[str, tuple] = {}
    for p in root.iter(path_tag):
        pid = p.get("id")
        if pid and set(p.attrib) <= {"id", "d", "style", "transform"} and _style_names(p.get("style", "")) <= _PATH_STYLE:
            o, m = _outline(p.get("d") or "", "%.4f"), _affine(p.get("transform"))
            if o is not None and m is not None and len(o[1]):
                defs[pid] = (o[0], _apply(m, o[1]), p.get("style", ""))
    if not defs:
        return
    for parent in [e for e in root.iter() if any(c.tag == use_tag for c in e)]:
        for i, u in enumerate(list(parent)):
            if u.tag != use_tag or not set(u.attrib) <= {_XLINK_HREF, "x", "y", "style"}:
                continue
            target = defs.get(u.get(_XLINK_HREF, "")[1:])
            if target is None or not _style_names(u.get("style", "")) <= _USE_STYLE:
                continue
            try:
                x, y = float(u.get("x", 0)), float(u.get("y", 0))
            except ValueError:
                continue
            template, xy, own = target
            style = "; ".join(s.strip().rstrip(";") for s in (u.get("style", ""), own) if s.strip())
            attrs = {"d": template % tuple(_apply((1.0, 0.0, 0.0, 1.0, x, y), xy).ravel().tolist())}
            if style:
                attrs["style"] = style
            new = parent.makeelement(path_tag, attrs)
            new.tail = u.tail
            parent.remove(u)
            parent.insert(i, new)


def svg_text_as_one_path(svg: str) -> str:
    """:func:`svg_for_weasyprint` without PDF text and with every group kept: each label's glyphs
    as one ``<path>``."""
    return svg_for_weasyprint(svg, as_text=False, unwrap_groups=False)[0]


def figure_fonts_css(fonts) -> str:
    """``@font-face`` rules loading matplotlib's own files of ``fonts`` (PostScript names)."""
    return "".join(f'@font-face {{ font-family: "{figure_font_family(f)}"; src: url("{figure_font_path(f).as_uri()}"); }}'
                   for f in sorted(fonts))


def _figures_for_weasyprint(html: str) -> str:
    """The print form with :func:`svg_for_weasyprint` applied to every SVG data-URI image and the
    ``@font-face`` rules of the fonts their text needs."""
    import base64

    fonts: set[str] = set()

    def _one(m: re.Match[str]) -> str:
        svg, used = svg_for_weasyprint(base64.b64decode(m.group(2)).decode("utf-8"))
        fonts.update(used)
        return m.group(1) + base64.b64encode(svg.encode("utf-8")).decode("ascii") + m.group(3)

    html = _SVG_DATA_URI.sub(_one, html)
    if not fonts:
        return html
    style = f"<style>{figure_fonts_css(fonts)}</style>"
    i = html.find("</head>")
    return html[:i] + style + html[i:] if i >= 0 else style + html


def _with_page_size(html: str, page_size: str) -> str:
    style = f"<style>{page_size_css(page_size)}</style>"
    i = html.find("</head>")
    return html[:i] + style + html[i:] if i >= 0 else style + html


#: The garbage collector's thresholds while WeasyPrint lays out and writes (issue 15, seventh
#: pass). WeasyPrint makes millions of short-lived objects (boxes, styles, Pango wrappers); with
#: Python's default (700, 10, 10) a young-generation pass runs every 700 net allocations and
#: the demo's body PDF spends about 1 s of its 6 s in them (measured: the same PDF with the
#: collector off 5.5-5.9 s instead of 6.5-6.9 s). A pass every 20,000 allocations, and an
#: old-generation pass almost never, gives the same saving; cycles are still collected (peak RSS
#: of the demo's ``analyze --pdf`` 425 MiB either way; docs/design.md "seventh pass").
PDF_GC_THRESHOLD: tuple[int, int, int] = (20_000, 50, 1_000)


@contextlib.contextmanager
def _rarer_collections():
    """Run the body with :data:`PDF_GC_THRESHOLD`, restoring the caller's thresholds after."""
    old = gc.get_threshold()
    gc.set_threshold(*PDF_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def render_pdf_document(html: str, *, page_size: PageSize = "A4"):
    """Lay out the report; returns WeasyPrint's ``Document`` (pages and boxes, for checks)."""
    wp = load_weasyprint()
    html = _figures_for_weasyprint(compact_trace_index(_with_page_size(html, page_size)))
    with _rarer_collections():
        return wp.HTML(string=html).render()


def render_pdf(html: str, path: Path | str, *, page_size: PageSize = "A4") -> None:
    """Write the report HTML as a PDF at ``path`` (atomically: temp file then ``os.replace``).

    Parameters
    ----------
    html
        The document from :func:`mmtrial.report.render.render_html`.
    path
        Where the PDF goes.
    page_size
        ``"A4"`` (default) or ``"Letter"``; wide tables use the same paper in landscape.
    """
    with _rarer_collections():
        doc = render_pdf_document(html, page_size=page_size)
        data = doc.write_pdf()
        del doc  # its boxes freed by reference counting before the collector's thresholds return
    atomic_write_bytes(Path(path), data)


# --- a second renderer: headless Chromium (issue 15) ----------------------------------------------

PDF_ENGINES: tuple[str, ...] = ("weasyprint", "chromium")
#: Executables tried in this order. The headless shell first (Debian package
#: ``chromium-headless-shell``; Chrome for Testing's ``chrome-headless-shell``): the same Blink
#: layout and print code without the browser, so a print starts in a third of the CPU (one-page
#: print 0.5 s against 1.8 s; the demo's body PDF 3.3 s against 6.0 s, tagged and with bookmarks,
#: the same pages; docs/design.md "sixth pass: PDF").
CHROMIUM_NAMES: tuple[str, ...] = ("chromium-headless-shell", "chrome-headless-shell", "chromium",
                                   "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_TIMEOUT_S = 600


def find_chromium() -> str:
    """The path of the first of :data:`CHROMIUM_NAMES` on PATH (a headless shell before a full
    browser); :class:`PdfUnavailableError` if none."""
    import shutil

    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise PdfUnavailableError(f"--pdf-engine chromium: none of {', '.join(CHROMIUM_NAMES)} is on PATH "
                              "(apt-get install chromium-headless-shell, or chromium)")


#: Chromium switches of the print run besides ``--headless`` and the files (issue 15, measured in
#: docs/design.md "fourth pass": no service a local print does not need; 0.2-0.4 s of CPU less
#: on a one-page print in one series, no measurable change on the demo): no GPU process (``--in-process-gpu``), no
#: extensions, sync, component updates, crash reporter or background networking, one renderer
#: process. ``--generate-pdf-document-outline``: PDF bookmarks from the report's headings (as
#: WeasyPrint makes), for navigation in a 50-page print. The PDF stays tagged (Chromium's
#: default; ``--disable-pdf-tagging`` would save about 1 s and 2.6 MB on the demo but drop the
#: structure that screen readers use).
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--disable-gpu", "--in-process-gpu", "--disable-software-rasterizer", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--disable-default-apps", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--disable-breakpad",
    "--disable-dev-shm-usage", "--mute-audio", "--renderer-process-limit=1",
    "--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider",
    "--no-pdf-header-footer", "--generate-pdf-document-outline",
)


def chromium_command(exe: str, html_file: Path, pdf_file: Path, profile_dir: Path,
                     *, flags: tuple[str, ...] = CHROMIUM_FLAGS) -> list[str]:
    """The headless print command: no browser header/footer (the print stylesheet has its own),
    a throw-away profile, :data:`CHROMIUM_FLAGS`, no sandbox only when running as root
    (Chromium refuses otherwise)."""
    import os

    cmd = [exe, "--headless", *flags, f"--user-data-dir={profile_dir}", f"--print-to-pdf={pdf_file}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--no-sandbox")
    return [*cmd, html_file.resolve().as_uri()]


def _chromium_env() -> dict[str, str]:
    """Chromium's environment: a short TMPDIR (its IPC sockets live there, and a Unix socket path
    is limited to 107 bytes: with a long TMPDIR Chromium aborts), else as given."""
    import os
    import tempfile

    env = dict(os.environ)
    if len(tempfile.gettempdir()) > 40 and os.access("/tmp", os.W_OK):
        env["TMPDIR"] = "/tmp"
    return env


def render_pdf_chromium(html: str, path: Path | str, *, page_size: PageSize = "A4") -> None:
    """Write the report HTML as a PDF with headless Chromium (``--print-to-pdf``).

    Same print form and stylesheet as :func:`render_pdf`; Chromium applies the ``@page`` rules,
    its page breaks may differ (docs/report.md). Chromium runs in its own process group, which is
    ended after it returns, so none of its helper processes outlives the call.
    """
    import os
    import signal
    import subprocess
    import tempfile

    exe = find_chromium()
    with tempfile.TemporaryDirectory(prefix="mmtrial-pdf-") as tmp_s:
        tmp = Path(tmp_s)
        src, out = tmp / "report.html", tmp / "report.pdf"
        src.write_text(compact_trace_index(_with_page_size(html, page_size)), "utf-8")
        proc = subprocess.Popen(chromium_command(exe, src, out, tmp / "profile"), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                env=_chromium_env())
        try:
            _, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        finally:
            # helpers (zygote, GPU, utility) Chromium has not reaped: end the group it leads
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            tail = (err or b"").decode("utf-8", "replace").strip().splitlines()[-3:]
            raise RuntimeError(f"chromium --print-to-pdf failed (exit {proc.returncode}): {' | '.join(tail)}")
        atomic_write_bytes(Path(path), out.read_bytes())
