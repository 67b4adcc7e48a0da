"""Report tables as RTF 1.9.1 (``OUT/tlf/<table-id>.rtf``), written directly.

Each file holds one table: a page header naming the study, the population and the data
cut-off (and "synthetic data" for simulated studies) with "Page x of y", the table number and
title, the column headers, the rows, the footnotes and the source datasets. Tables with more
than :data:`PORTRAIT_MAX_COLUMNS` columns, or with long rows, are set landscape.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from mmtrial._io import atomic_write_bytes

PORTRAIT_MAX_COLUMNS = 5
PORTRAIT_MAX_CHARS = 90  # the widest row (characters over all cells) that fits a portrait page
PAGE_OF = "Page \\chpgn of {\\field{\\*\\fldinst NUMPAGES }}"


@dataclass(frozen=True)
class TlfHeader:
    """What every page header names."""

    study: str
    cutoff: date | None
    synthetic: bool = False


def safe_file_id(table_id: str) -> str:
    """A file name from a table id (letters, digits, ``.``, ``-`` and ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", table_id).strip("_") or "table"


def is_wide(data: pd.DataFrame, texts: tuple[list[str], list[list[str]]] | None = None) -> bool:
    """Landscape when the table has many columns or its widest row is long.

    Widths are those of the texts the RTF writes (:func:`_cell_texts`: a missing value is blank,
    not "nan"); ``texts``: those texts when the caller has them already."""
    if data.shape[1] > PORTRAIT_MAX_COLUMNS:
        return True
    if data.empty:
        return False
    names, rows = texts if texts is not None else _cell_texts(data)
    widths = max(sum(map(len, r)) for r in rows)
    return max(widths, sum(map(len, names))) > PORTRAIT_MAX_CHARS


def header_lines(h: TlfHeader, population: str, number: str | None = None) -> list[str]:
    cut = h.cutoff.isoformat() if h.cutoff else "none (all data)"
    first = f"Study {h.study}" + (" (synthetic data)" if h.synthetic else "")
    return [f"{first} | Population: {population or 'see title'} | Data cut-off: {cut}", PAGE_OF]


#: Page geometry in twips (1/1440 inch): paper, margins and the table's total width. Letter paper;
#: the table spans 6.25 in (portrait) or 8.5 in (landscape), as rtflite's defaults did.
_PAGE = {
    False: ("\\paperw12240\\paperh15840\n\\margl1800\\margr1440\\margt2520\\margb1800"
            "\\headery2520\\footery1449", 9000),
    True: ("\\paperw15840\\paperh12240\\landscape\n\\margl1440\\margr1440\\margt2880\\margb1800"
           "\\headery1800\\footery1800", 12240),
}
_RTF_SPECIAL = re.compile(r"[\\{}\n\t]|[^\x00-\x7f]")


def _escape_char(m: re.Match) -> str:
    ch = m.group(0)
    if ch in "\\{}":
        return "\\" + ch
    if ch == "\n":
        return "\\line "
    if ch == "\t":
        return "\\tab "
    # RTF 1.9.1 section "Unicode RTF": \uN with N a signed 16-bit UTF-16 code unit, then one
    # fallback character (\uc1) for readers without Unicode
    units = ch.encode("utf-16-le")
    return "".join(f"\\uc1\\u{int.from_bytes(units[i:i + 2], 'little', signed=True)}*"
                   for i in range(0, len(units), 2))


def rtf_escape(text: str) -> str:
    """Plain text as RTF: ``\\``, ``{`` and ``}`` escaped, line breaks as ``\\line``, every
    non-ASCII character as ``\\uc1\\uN*`` (RTF 1.9.1)."""
    return text if text.isascii() and not _RTF_SPECIAL.search(text) else _RTF_SPECIAL.sub(_escape_char, text)


def _paragraph(lines: list[str], *, align: str, size: int, space: int) -> str:
    """One paragraph (``\\line`` between lines); ``lines`` are RTF already."""
    body = "\\line".join(f"\\fs{size}{{\\f0 {t}}}" for t in lines)
    return f"{{\\pard\\sb{space}\\sa{space}\\q{align}{body}\\par}}"


def _row(cells: list[str], edges: list[int], align: list[str], *, top: str, bottom: str,
         header: bool = False) -> str:
    """One table row: outer left and right borders, ``top``/``bottom`` border styles (``brdrs``,
    ``brdrdb`` or ``""`` for none); a header row repeats on every page (``\\trhdr``)."""
    n = len(cells)
    defs = []
    for i, x in enumerate(edges):
        b = "\\clbrdrl\\brdrs\\brdrw15"
        b += f"\\clbrdrt\\{top}\\brdrw15" if top else ""
        b += "\\clbrdrr\\brdrs\\brdrw15" if i == n - 1 else ""
        b += f"\\clbrdrb\\{bottom}\\brdrw15" if bottom else ""
        defs.append(f"{b}\\clvertal{'b' if header else 't'}\\cellx{x}")
    text = [f"\\pard\\intbl\\sb15\\sa15\\q{a}\\fs18{{\\f0 {c}}}\\cell" for c, a in zip(cells, align, strict=True)]
    start = "\\trowd\\trgaph108\\trleft0\\trqc" + ("\\trhdr" if header else "")
    return "\n".join([start, *defs, *text, "\\row"])


def _cell_texts(data: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Column names and every cell as text: ``str(value)``, blank when missing; a table without
    rows has one row reading "(no rows)". Lists, not a frame of text (a few pandas calls per
    table instead of a few per column, issue 15)."""
    if data.empty:
        text = data.astype(object).where(data.notna(), "").astype(str)
        text = pd.DataFrame({c: ["(no rows)" if i == 0 else ""] for i, c in enumerate(text.columns)})
        return [str(c) for c in text.columns], text.to_numpy().tolist()
    values = data.to_numpy(dtype=object)
    missing = pd.isna(values).tolist()
    rows = [["" if m else str(v) for v, m in zip(r, mr, strict=True)]
            for r, mr in zip(values.tolist(), missing, strict=True)]
    return [str(c) for c in data.columns], rows


def table_rtf(table, h: TlfHeader, number: str | None = None) -> bytes:
    """The RTF 1.9.1 document of one report table (:class:`mmtrial.report.model.Table`).

    Written directly (string building over the table's cells, no per-cell layout model): the
    column header row is marked ``\\trhdr``, so word processors repeat it on every page they
    break the table over; "Page x of y" are the ``\\chpgn`` and ``NUMPAGES`` fields.
    """
    data = table.data.copy()
    data.columns = [str(c) for c in data.columns]
    if table.groups is not None and len(table.groups) == len(data) and any(table.groups):
        data.insert(0, "Group", list(table.groups))
    names, rows = _cell_texts(data)
    ncol = len(names)
    widths = [max(3, min(30, max(len(r[i]) for r in rows), len(names[i]) + 2)) for i in range(ncol)]
    page, total = _PAGE[is_wide(data, (names, rows))]
    cum = list(itertools.accumulate(widths))
    edges = [int(total * c / cum[-1]) for c in cum]
    justify = ["l"] + ["c"] * (ncol - 1)
    titles = [rtf_escape(t) for t in (number, table.title) if t]
    foot = [*table.footnotes]
    if h.synthetic:
        foot.append("Synthetic data: simulated study, not a real trial.")
    head = header_lines(h, table.population, number)
    parts = [
        "{\\rtf1\\ansi\\deff0\\deflang1033",
        "{\\fonttbl{\\f0\\froman\\fcharset0\\fprq2 Times New Roman;}}",
        "{\\header" + _paragraph([rtf_escape(head[0]), *head[1:]], align="r", size=24, space=15) + "}",
        page,
        _paragraph(titles, align="c", size=24, space=180) if titles else "",
        _row([rtf_escape(c) for c in names], edges, ["c"] * ncol, top="brdrdb", bottom="brdrs", header=True),
    ]
    for k, r in enumerate(rows):
        parts.append(_row([rtf_escape(v) for v in r], edges, justify, top="",
                          bottom="brdrs" if k == len(rows) - 1 else ""))
    if foot:
        parts.append(_row(["\\line ".join(rtf_escape(f) for f in foot)], [total], ["l"], top="brdrs",
                          bottom="brdrdb"))
    if table.source:
        parts.append(_paragraph([rtf_escape(f"Source: {table.source}")], align="c", size=18, space=15))
    parts.append("}")
    return "\n".join(p for p in parts if p).encode("ascii")


def write_table_rtf(table, folder: Path, h: TlfHeader, number: str | None = None) -> Path:
    path = folder / f"{safe_file_id(table.id)}.rtf"
    atomic_write_bytes(path, table_rtf(table, h, number))
    return path
