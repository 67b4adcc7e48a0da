"""The PDF: page size, page numbers, synthetic label on every page, no clipped tables.

Layout is checked on WeasyPrint's own box tree (the document it writes), so the test needs no PDF
reader. Skipped with the reason when WeasyPrint or the system Pango cannot be loaded.
"""

from __future__ import annotations

import pytest
from report_testkit import make_analysis

from mmtrial.report.pdf import PdfUnavailableError, load_weasyprint, render_pdf, render_pdf_document
from mmtrial.report.render import render_html, write_report

try:
    load_weasyprint()
    _REASON = ""
except PdfUnavailableError as exc:  # pragma: no cover - depends on the machine
    _REASON = str(exc)

pytestmark = pytest.mark.skipif(bool(_REASON), reason=f"WeasyPrint unavailable: {_REASON}")

# CSS px per mm (96 px per inch): A4 210 x 297 mm, Letter 8.5 x 11 in
PX_PER_MM = 96 / 25.4
A4 = (210 * PX_PER_MM, 297 * PX_PER_MM)
LETTER = (8.5 * 96, 11 * 96)


def _walk(box):
    yield box
    for c in getattr(box, "children", None) or []:
        yield from _walk(c)


def _margin_texts(page):
    from weasyprint.formatting_structure import boxes

    out = []
    for m in _walk(page._page_box):
        if isinstance(m, boxes.MarginBox):
            out.append("".join(t.text for t in _walk(m) if isinstance(t, boxes.TextBox)))
    return out


@pytest.fixture(scope="module")
def doc_a4():
    return render_pdf_document(render_html(make_analysis(), run_date="2026-01-01T00:00:00Z"))


def test_a4_portrait_pages_and_a_landscape_page_for_the_wide_listing(doc_a4):
    sizes = [(round(p.width, 1), round(p.height, 1)) for p in doc_a4.pages]
    portrait = (round(A4[0], 1), round(A4[1], 1))
    assert sizes[0] == portrait
    assert set(sizes) == {portrait, portrait[::-1]}  # the listing (> 8 columns) prints landscape


def test_every_page_is_numbered_and_labelled_synthetic(doc_a4):
    n = len(doc_a4.pages)
    for i, page in enumerate(doc_a4.pages, start=1):
        texts = _margin_texts(page)
        assert f"Page {i} of {n}" in texts
        assert any(t.startswith("SYNTHETIC DATA") for t in texts)


def test_real_study_pages_carry_no_synthetic_label():
    doc = render_pdf_document(render_html(make_analysis(synthetic=False), run_date="x"))
    assert not any("SYNTHETIC" in t for p in doc.pages for t in _margin_texts(p))


def _overflowing_boxes(doc) -> list:
    bad = []
    for page in doc.pages:
        pb = page._page_box
        left = pb.margin_left
        right = page.width - pb.margin_right
        main = pb.children[0]  # the page's content (margin boxes come after it)
        for box in _walk(main):
            if box.width is None or getattr(box, "position_x", None) is None:
                continue
            x0 = box.position_x
            x1 = x0 + box.margin_width()
            if x0 < left - 1 or x1 > right + 1:
                bad.append((type(box).__name__, x0, x1, left, right))
    return bad


def test_no_box_extends_past_the_page_content_area(doc_a4):
    # "no clipped tables": every laid-out box (tables, cells, text) stays inside the page margins
    assert _overflowing_boxes(doc_a4) == []


def test_long_unbreakable_cell_wraps_instead_of_overflowing():
    import pandas as pd

    from mmtrial.report.model import Table

    a = make_analysis()
    long_cell = pd.DataFrame({"Term": ["X" * 300], "n": ["1"]})
    a.sections[0].blocks.append(Table(id="long", title="Long", data=long_cell))
    html = render_html(a, run_date="x")
    assert _overflowing_boxes(render_pdf_document(html)) == []
    # the check has power: with wrapping switched off the same table overflows the page
    nowrap = "<style>table.tlg-table td{white-space:nowrap!important;overflow-wrap:normal!important;word-break:normal!important}</style>"
    assert _overflowing_boxes(render_pdf_document(html.replace("</head>", nowrap + "</head>")))


def test_table_header_rows_repeat_on_each_page_of_a_long_table():
    from weasyprint.formatting_structure import boxes

    a = make_analysis()
    adsl = a.adam["adsl"]
    # 144 subjects: the listing spans several landscape pages
    import pandas as pd

    big = pd.concat(
        [adsl.assign(USUBJID=adsl["USUBJID"] + f"-{k:02d}") for k in range(12)], ignore_index=True
    )
    a.adam["adsl"] = big
    doc = render_pdf_document(render_html(a, run_date="x"))
    pages_with_listing = []
    for page in doc.pages:
        headers = [
            b
            for b in _walk(page._page_box)
            if isinstance(b, boxes.TableRowGroupBox) and b.is_header
        ]
        texts = ["".join(t.text for t in _walk(h) if isinstance(t, boxes.TextBox)) for h in headers]
        if any("USUBJID" in t and "Dose levels" in t for t in texts):
            pages_with_listing.append(page)
    assert len(pages_with_listing) >= 2


def test_letter_size():
    html = render_html(make_analysis(), run_date="x")
    doc = render_pdf_document(html, page_size="Letter")
    assert (round(doc.pages[0].width, 1), round(doc.pages[0].height, 1)) == LETTER
    with pytest.raises(ValueError, match="A3"):
        render_pdf(html, "unused.pdf", page_size="A3")


def test_write_report_with_pdf_writes_both_files_atomically(tmp_path):
    write_report(make_analysis(), tmp_path, pdf=True, run_date="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report.html",
        "report.pdf",
    ]  # no temp files
    assert (tmp_path / "report.pdf").read_bytes()[:5] == b"%PDF-"
