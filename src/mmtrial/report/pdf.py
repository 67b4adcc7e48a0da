"""The report as PDF, via WeasyPrint (BSD; PyPI ``weasyprint``, system Pango from Debian).

WeasyPrint lays out the same HTML with the report's print stylesheet: A4 or Letter pages, page
numbers ("Page n of N") and, for a synthetic study, "SYNTHETIC DATA" in every page's top margin;
table header rows repeat on each page, rows are not split, cells wrap, and tables wider than
``WIDE_TABLE_COLUMNS`` columns go on landscape pages, so no table is clipped.
"""

from __future__ import annotations

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


def _with_page_size(html: str, page_size: str) -> str:
    style = f"<style>{page_size_css(page_size)}</style>"
    i = html.find("</head>")
    return html[:i] + style + html[i:] if i >= 0 else style + html


def render_pdf_document(html: str, *, page_size: PageSize = "A4"):
    """Lay out the report; returns WeasyPrint's ``Document`` (pages and boxes, for checks)."""
    wp = load_weasyprint()
    return wp.HTML(string=compact_trace_index(_with_page_size(html, page_size))).render()


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
    doc = render_pdf_document(html, page_size=page_size)
    atomic_write_bytes(Path(path), doc.write_pdf())
