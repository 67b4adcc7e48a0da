"""RTF tables (submission/tlf.py): the files are opened and their text compared with the tables.

The reader below is independent of rtflite: it takes the RTF control words as the RTF 1.9.1
specification defines them (``\\cell`` ends a table cell, ``\\uN*`` a Unicode character,
``\\line`` a line break inside a paragraph, ``{\\header ...}`` the page header).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrial.report.model import Listing, Table
from mmtrial.submission.tlf import TlfHeader, is_wide, safe_file_id, write_table_rtf

_CELL = re.compile(r"\{\\f\d+ ((?:[^{}\\]|\\.)*)\}\\cell\b", re.S)


def _plain(rtf_text: str) -> str:
    s = re.sub(r"\\uc1\\u(-?\d+)\*", lambda m: chr(int(m.group(1)) % 65536), rtf_text)
    return s.replace("\\line ", "\n").replace("\\{", "{").replace("\\}", "}").replace("\\\\", "\\")


def rtf_cells(path: Path) -> list[str]:
    return [_plain(c) for c in _CELL.findall(path.read_text("utf-8"))]


def rtf_header(path: Path) -> str:
    text = path.read_text("utf-8")
    start = text.index("{\\header")
    return _plain(text[start:text.index("\\par}}", start)])


def _table() -> Table:
    data = pd.DataFrame({"Preferred term": ["Nausea", "Thrombocytopenia"], "Any grade": ["89 (72.4%)", "91 (74.0%)"],
                         "Grade \u22653": ["12 (9.8%)", "72 (58.5%)"]})
    return Table(id="AET02", title="Adverse events by preferred term", data=data,
                 footnotes=["Percentages of N = 123 (safety population)."], population="Safety (N = 123)",
                 source="ADAE")


def test_rtf_holds_header_title_cells_and_footnotes(tmp_path: Path):
    path = write_table_rtf(_table(), tmp_path, TlfHeader("STORM", date(2018, 4, 24), synthetic=True), "14.3.1.2")
    assert path.name == "AET02.rtf"
    header = rtf_header(path)
    assert "Study STORM (synthetic data)" in header and "Population: Safety (N = 123)" in header
    assert "Data cut-off: 2018-04-24" in header and "\\chpgn" in header and "NUMPAGES" in header
    text = _plain(path.read_text("utf-8"))
    assert "14.3.1.2" in text and "Adverse events by preferred term" in text
    cells = rtf_cells(path)
    assert cells[:3] == ["Preferred term", "Any grade", "Grade \u22653"]
    assert cells[3:9] == ["Nausea", "89 (72.4%)", "12 (9.8%)", "Thrombocytopenia", "91 (74.0%)", "72 (58.5%)"]
    assert "Percentages of N = 123 (safety population)." in cells[9]
    assert "Source: ADAE" in text and "\\paperw12240" in text  # 3 narrow columns: portrait (8.5 in)


def test_wide_tables_are_landscape(tmp_path: Path):
    wide = Table(id="w", title="t", data=pd.DataFrame({f"c{i}": ["1"] for i in range(8)}))
    assert is_wide(wide.data) and not is_wide(_table().data)
    path = write_table_rtf(wide, tmp_path, TlfHeader("S", None))
    text = path.read_text("utf-8")
    assert "\\landscape" in text and "Data cut-off: none (all data)" in rtf_header(path)


def test_missing_cells_count_as_blank_for_the_page_orientation(tmp_path: Path):
    """A missing value is written blank (``_cell_texts``), so it adds no width: 3 columns of 29
    characters (87 <= PORTRAIT_MAX_CHARS = 90) stay portrait when a fourth column is all missing
    (it was measured as "nan", 90 + 3 > 90: landscape)."""
    data = pd.DataFrame({"a": ["x" * 29], "b": ["y" * 29], "c": ["z" * 29], "d": [np.nan]})
    assert not is_wide(data)
    text = write_table_rtf(Table(id="m", title="t", data=data), tmp_path, TlfHeader("S", None)).read_text("utf-8")
    assert "\\landscape" not in text
    data["d"] = "abcd"  # a written 4-character value does count: 91 > 90
    assert is_wide(data)


def test_demo_rtf_numbers_match_report_tables(demo):
    """Each report table of the demo has an RTF whose cells are the table's, row by row."""
    a = demo.output.analysis
    tables = [b for s in a.sections for b in s.blocks if isinstance(b, Table) and not isinstance(b, Listing)]
    assert len(tables) >= 20
    for t in tables:
        path = demo.out_dir / "tlf" / f"{safe_file_id(t.id)}.rtf"
        cells = rtf_cells(path)
        data = t.data.astype(object).where(t.data.notna(), "").astype(str)
        if t.groups is not None and len(t.groups) == len(data) and any(t.groups):
            data.insert(0, "Group", list(t.groups))
        ncol = data.shape[1]
        header = cells[:ncol]
        assert header == [str(c) for c in data.columns], t.id
        body, i = [], ncol
        while i < len(cells) and len(body) < data.size:  # long tables repeat the header on each page
            if cells[i:i + ncol] == header:
                i += ncol
                continue
            body.append(cells[i])
            i += 1
        want = [v for row in data.itertuples(index=False) for v in row]
        if data.size:
            assert body == want, t.id
        assert f"Population: {t.population or 'see title'}" in rtf_header(path), t.id


def test_rtf_structure_is_well_formed(tmp_path: Path):
    """RTF 1.9.1: groups balance; each row (``\\trowd`` ... ``\\row``) defines one ``\\cellx`` per
    ``\\cell``; only the column header row is a repeated header row (``\\trhdr``)."""
    t = _table()
    t.data.loc[1, "Any grade"] = "a {brace} \\ back\nslash"
    path = write_table_rtf(t, tmp_path, TlfHeader("S{1}", None))
    text = path.read_text("ascii")  # every non-ASCII character is escaped
    depth = 0
    for m in re.finditer(r"\\\\|\\[{}]|[{}]", text):
        depth += {"{": 1, "}": -1}.get(m.group(0), 0)
        assert depth >= 0
    assert depth == 0
    rows = re.findall(r"\\trowd(.*?)\\row\b", text, re.S)
    assert len(rows) == 1 + 2 + 1  # header, 2 body rows, footnotes
    for r in rows:
        assert r.count("\\cellx") == len(re.findall(r"\\cell\b", r))
    assert [("\\trhdr" in r) for r in rows] == [True, False, False, False]
    assert rtf_cells(path)[7] == "a {brace} \\ back\nslash"
    assert "Study S{1}" in rtf_header(path)


def test_rtf_escape_unicode_outside_the_bmp():
    """RTF 1.9.1 "Unicode RTF": \\uN takes a signed 16-bit value; a character beyond U+FFFF is two
    UTF-16 surrogates (U+1F600 = D83D DE00 = -10179, -8704)."""
    from mmtrial.submission.tlf import rtf_escape

    assert rtf_escape("\u2265 3") == "\\uc1\\u8805* 3"
    assert rtf_escape("\U0001F600") == "\\uc1\\u-10179*\\uc1\\u-8704*"
    assert rtf_escape("plain") == "plain"
