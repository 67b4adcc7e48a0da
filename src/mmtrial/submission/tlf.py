"""Report tables as RTF (``OUT/tlf/<table-id>.rtf``) through rtflite, the pharmaverse RTF writer.

Each file holds one table: a page header naming the study, the population and the data
cut-off (and "synthetic data" for simulated studies) with "Page x of y", the table number and
title, the column headers, the rows, the footnotes and the source datasets. Tables with more
than :data:`PORTRAIT_MAX_COLUMNS` columns, or with long rows, are set landscape.
"""

from __future__ import annotations

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


def is_wide(data: pd.DataFrame) -> bool:
    """Landscape when the table has many columns or its widest row is long."""
    if data.shape[1] > PORTRAIT_MAX_COLUMNS:
        return True
    if data.empty:
        return False
    widths = data.astype(str).map(len).sum(axis=1).max()
    heads = sum(len(str(c)) for c in data.columns)
    return max(int(widths), heads) > PORTRAIT_MAX_CHARS


def header_lines(h: TlfHeader, population: str, number: str | None = None) -> list[str]:
    cut = h.cutoff.isoformat() if h.cutoff else "none (all data)"
    first = f"Study {h.study}" + (" (synthetic data)" if h.synthetic else "")
    return [f"{first} | Population: {population or 'see title'} | Data cut-off: {cut}", PAGE_OF]


def table_rtf(table, h: TlfHeader, number: str | None = None) -> bytes:
    """The RTF document of one report table (:class:`mmtrial.report.model.Table`)."""
    import polars as pl
    import rtflite as rtf

    data = table.data.copy()
    data.columns = [str(c) for c in data.columns]
    if table.groups is not None and len(table.groups) == len(data) and any(table.groups):
        data.insert(0, "Group", list(table.groups))
    text = data.astype(object).where(data.notna(), "").astype(str)
    if text.empty:
        text = pd.DataFrame({c: ["(no rows)" if i == 0 else ""] for i, c in enumerate(text.columns)})
    frame = pl.DataFrame({f"c{i}": text.iloc[:, i].tolist() for i in range(text.shape[1])})
    ncol = text.shape[1]
    widths = [max(3, min(30, int(text.iloc[:, i].map(len).max()), len(text.columns[i]) + 2)) for i in range(ncol)]
    justify = ["l"] + ["c"] * (ncol - 1)
    titles = [t for t in (number, table.title) if t]
    foot = [*table.footnotes]
    if h.synthetic:
        foot.append("Synthetic data: simulated study, not a real trial.")
    doc = rtf.RTFDocument(
        df=frame,
        rtf_page=rtf.RTFPage(orientation="landscape" if is_wide(data) else "portrait"),
        rtf_page_header=rtf.RTFPageHeader(text=header_lines(h, table.population, number), text_convert=[False]),
        rtf_title=rtf.RTFTitle(text=titles, text_convert=[False]),
        rtf_column_header=rtf.RTFColumnHeader(text=list(text.columns), col_rel_width=widths,
                                              text_convert=[False]),
        rtf_body=rtf.RTFBody(col_rel_width=widths, text_justification=[justify], text_convert=[[False]]),
        rtf_footnote=rtf.RTFFootnote(text=foot, text_convert=[False]) if foot else None,
        rtf_source=rtf.RTFSource(text=[f"Source: {table.source}"], text_convert=[False]) if table.source else None,
    )
    return doc.rtf_encode().encode("utf-8")


def write_table_rtf(table, folder: Path, h: TlfHeader, number: str | None = None) -> Path:
    path = folder / f"{safe_file_id(table.id)}.rtf"
    atomic_write_bytes(path, table_rtf(table, h, number))
    return path
