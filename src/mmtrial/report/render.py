"""Lay out an analysis as one self-contained HTML report (and, optionally, a PDF).

The analysis steps hand over :class:`~mmtrial.report.model.Section` objects whose tables already
hold display strings (``tables/format.py``); this module only lays them out:

* a run header (mmtrial version, input checksum, protocol, method profile, options, date line) and
  a "SYNTHETIC DATA" banner on screen and on every printed page when the study is synthetic;
* a table of contents, then the sections ordered by ``Section.order`` (:data:`SECTION_ORDER`),
  with the renderer's own sections: methods summary (10), data issues found at input (90),
  published versus computed (95), every method setting in force (97), subjects behind linked
  counts (98) and the listings (99);
* tables as real ``<table>`` markup: ``<caption>`` = title, ``<th scope="col">`` headers,
  ``<th scope="row">`` row labels, ``<th scope="rowgroup">`` groups, footnotes below with
  population, methods and source. Tables are written here rather than with great-tables: the
  measured reasons are in docs/report.md ("Why not great-tables");
* traceability: every count with ``Table.cell_subjects`` links to the subjects behind it
  (one subject: the listing row ``#subj-<USUBJID>``; several: an index entry listing them, each
  linking to its row) and carries a tooltip naming them, so a number is checked in two clicks;
* figures as ``<img>`` with an SVG (or PNG) data URI and alt text.

Nothing is fetched: no external URL, script or font (a Content-Security-Policy forbids them), so
the file opens offline. The same analysis gives the same bytes apart from the date line.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pandas as pd
from markupsafe import Markup

from mmtrial._io import atomic_writer
from mmtrial.report.listings import SUBJECT_LISTING_ID, build_listings_section
from mmtrial.report.methods import (
    build_methods_section,
    build_settings_appendix_section,
    flatten_settings,
)
from mmtrial.report.model import Figure, Listing, Section, SectionLink, Table, Text
from mmtrial.report.numbering import csr_numbers
from mmtrial.report.published import build_published_section

if TYPE_CHECKING:  # pragma: no cover
    from mmtrial.context import Analysis

#: Where each section goes (``Section.order``); steps set their own order, these are the defaults.
SECTION_ORDER: dict[str, int] = {
    "methods": 10,
    "disposition": 15,
    "baseline": 20,
    "exposure": 30,
    "efficacy-response": 40,
    "efficacy-tte": 45,
    "safety": 60,
    "biomarker": 70,
    "input-issues": 90,
    "published": 95,
    "methods-settings": 97,
    "traceability": 98,
    "listings": 99,
}

#: What ``--pdf`` prints (``--pdf-content``, issue 15): ``body`` (default) the report body --
#: sections, tables, figures, footnotes, the input issues and the published-versus-computed
#: appendix; ``full`` also the sections of :data:`FULL_ONLY_SECTIONS`. report.html always has all.
PDF_CONTENTS: tuple[str, ...] = ("body", "full")
#: Sections printed only with ``pdf_content="full"``: the per-subject listings (and every
#: ``Listing`` a step puts in a body section) and the appendix of every method setting in force,
#: about 60% of the demo's printed table cells (docs/design.md "sixth pass: PDF").
FULL_ONLY_SECTIONS: tuple[str, ...] = ("listings", "methods-settings")

#: Tables with more columns than this print on a landscape page.
WIDE_TABLE_COLUMNS = 8
#: Tables with more columns than this (a by-arm table of many statistics: arms x statistics + Total)
#: print in a smaller font and may break a word anywhere, so that every column fits the landscape page.
XWIDE_TABLE_COLUMNS = 14
#: At most this many USUBJIDs are named in a count's tooltip (the index entry names all).
TOOLTIP_MAX_SUBJECTS = 40
#: At most this many input issues are shown (all are in issues.csv).
MAX_ISSUE_ROWS = 1000

#: A text column with a cell longer than this gets class ``long`` (a minimum width on screen).
LONG_TEXT = 30
#: Deepest indent level of a row label (see :func:`indent_level`).
MAX_INDENT = 4

#: A word longer than this gets break opportunities (``<wbr>``), so print layout can wrap it.
LONG_WORD = 20

_ID_BAD = re.compile(r"[^A-Za-z0-9_.:-]+")
_LONG_WORD = re.compile(rf"\S{{{LONG_WORD + 1},}}")
_SOFT_BREAK = re.compile(r"(?<=[._/,;:=+])")
#: A column whose every non-empty cell matches this is numeric-like (centred); otherwise left-aligned.
NUMERIC_CELL = r"^(?:[-+\d\s.,:;()%<>=/\u2264\u2265\u2013\u2014xX]|NE|NA|NR)*$"
_FRAGMENT_SAFE = "-_.:~!$&'()*+,;=@/?"


def mmtrial_version() -> str:
    """The installed mmtrial version (package metadata)."""
    try:
        return version("mmtrial")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


def subject_anchor(usubjid: str) -> str:
    """The listing-row anchor id for a subject: ``subj-<USUBJID>`` (whitespace as ``_``)."""
    return "subj-" + re.sub(r"\s", "_", str(usubjid))


def _href(anchor_id: str) -> str:
    return "#" + quote(anchor_id, safe=_FRAGMENT_SAFE)


def _slug(text: str) -> str:
    s = _ID_BAD.sub("-", str(text)).strip("-")
    return s or "x"


class _Ids:
    """Unique HTML ids, deterministic: a repeated id gets ``-2``, ``-3`` ..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, wanted: str) -> str:
        base = _slug(wanted)
        cand, i = base, 1
        while cand in self.used:
            i += 1
            cand = f"{base}-{i}"
        self.used.add(cand)
        return cand


@dataclass
class _Raw:
    """Renderer-made HTML inside a section (the traceability index)."""

    html: str


@dataclass
class _TraceEntry:
    anchor: str
    table_anchor: str
    table_label: str
    row_label: str
    column: str
    value: str
    subjects: list[str]


@dataclass
class _Ctx:
    ids: _Ids
    subject_anchors: set[str]
    anchor_owner: int | None  # id() of the listing whose rows own subj- anchors
    trace: list[_TraceEntry] = field(default_factory=list)
    n_tables: int = 0
    n_figures: int = 0
    numbers: dict[int, str] = field(default_factory=dict)  # id(block) -> "Table 14.2.1" (report/numbering.py)
    trace_section: str | None = None  # body print form: every traced count links to this section


def _text(v: Any) -> str:
    if v is None:
        return ""
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    return str(v)


def _cell_texts(df: pd.DataFrame) -> list[list[str]]:
    """Each column's cells as text (:func:`_text` of every cell: missing values as ""), one
    vectorised missing-value test per column instead of one ``pd.isna`` call per cell."""
    out = []
    for ci in range(df.shape[1]):
        col = df.iloc[:, ci].to_numpy(dtype=object)
        missing = pd.isna(col)
        out.append(["" if m else str(v) for v, m in zip(col.tolist(), missing.tolist(), strict=True)])
    return out


def _split_long_word(word: str) -> list[str]:
    parts = []
    for piece in _SOFT_BREAK.split(word):
        parts.extend(piece[i : i + LONG_WORD] for i in range(0, len(piece), LONG_WORD))
    return [p for p in parts if p]


def cell_html(text: str) -> str:
    """Escape a cell's text; words longer than :data:`LONG_WORD` get ``<wbr>`` break points.

    Break points go after ``. _ / , ; : = +`` and at least every ``LONG_WORD`` characters, so a
    column's narrowest width stays small and printed tables wrap instead of overflowing the page;
    the text itself (and its copy) is unchanged.
    """
    if len(text) <= LONG_WORD:
        return escape(text)
    out, last = [], 0
    for m in _LONG_WORD.finditer(text):
        out.append(escape(text[last : m.start()]))
        out.append("<wbr>".join(escape(p) for p in _split_long_word(m.group(0))))
        last = m.end()
    out.append(escape(text[last:]))
    return "".join(out)


def indent_level(text: str) -> int:
    """The indent level of a row label: two leading spaces per level, at most :data:`MAX_INDENT`.

    Table builders mark sub-rows with leading spaces (``"  Grade >=3"``); HTML collapses them, so
    the renderer keeps the text and adds a class ``indent-<level>`` that indents the cell.
    """
    lead = len(text) - len(text.lstrip(" "))
    return min(lead // 2, MAX_INDENT)


def _paragraphs(text: str) -> str:
    parts = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(f"<p>{escape(p)}</p>" for p in parts)


def _notes(table: Table) -> list[str]:
    notes = list(table.footnotes)
    if table.population:
        line = f"Population: {table.population}."
        # a table whose own footnotes already state this population (the same text, or a longer
        # statement containing it) gets no second, repeated "Population:" line
        said = [n for n in notes if n.startswith("Population:")]
        if not any(line == n or table.population in n for n in said):
            notes.append(line)
    if table.source:
        notes.append(f"Source: {table.source}.")
    return notes


def _render_table(t: Table, ctx: _Ctx, tid: str) -> str:
    ctx.n_tables += 1
    number = ctx.numbers.get(id(t), f"Table {ctx.n_tables}.")
    df = t.data
    cols = [str(c) for c in df.columns]
    ncol = len(cols)
    is_listing = isinstance(t, Listing)
    wide = ncol > WIDE_TABLE_COLUMNS
    stub_idx = cols.index(t.stub) if t.stub is not None and t.stub in cols else None
    classes = "tlg-table" + (" listing" if is_listing else "")
    notes = _notes(t)
    notes_id = f"{tid}-notes"
    xwide = " xwide" if ncol > XWIDE_TABLE_COLUMNS else ""
    out = [f'<div class="tlg{" wide" if wide else ""}{xwide}" id="{tid}">', '<div class="tlg-scroll">']
    described = f' aria-describedby="{notes_id}"' if notes else ""
    out.append(f'<table class="{classes}"{described}>')
    pop = f'<span class="tlg-pop">Population: {escape(t.population)}</span>' if t.population else ""
    out.append(f'<caption><span class="tlg-num">{number}</span> {escape(t.title)}{pop}</caption>')
    out.append(
        "<thead><tr>" + "".join(f'<th scope="col">{escape(c)}</th>' for c in cols) + "</tr></thead>"
    )

    anchors_col = None
    if is_listing and t.anchor_column is not None and t.anchor_column in df.columns:
        anchors_col = [_text(v) for v in df[t.anchor_column].tolist()]
    owner = id(t) == ctx.anchor_owner
    seen_subj: set[str] = set()

    texts = _cell_texts(df)  # texts[column][row]
    links: dict[tuple[int, int], tuple[str, str]] = {}
    for (r, c), subjects in sorted(
        t.cell_subjects.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))
    ):
        if str(c) not in cols or not 0 <= r < len(df):
            raise ValueError(
                f"table {t.id!r}: cell_subjects key (row {r}, column {c!r}) is not a cell of the "
                f"table ({len(df)} rows; columns {cols})"
            )
        subs = list(dict.fromkeys(str(s) for s in subjects))
        if not subs:
            continue
        ci = cols.index(str(c))
        entry_id = f"trace-{tid}-r{r}-c{ci}"
        value = texts[ci][r]
        row_label = texts[stub_idx][r] if stub_idx is not None else f"row {r + 1}"
        ctx.trace.append(
            _TraceEntry(entry_id, tid, f"{number[:-1]}: {t.title}", row_label, str(c), value, subs)
        )
        only = subject_anchor(subs[0])
        if ctx.trace_section is not None:
            target = ctx.trace_section
        else:
            target = only if len(subs) == 1 and only in ctx.subject_anchors else entry_id
        shown = ", ".join(subs[:TOOLTIP_MAX_SUBJECTS])
        more = (
            f" and {len(subs) - TOOLTIP_MAX_SUBJECTS} more"
            if len(subs) > TOOLTIP_MAX_SUBJECTS
            else ""
        )
        noun = "subject" if len(subs) == 1 else "subjects"
        links[(r, ci)] = (target, f"{len(subs)} {noun}: {shown}{more}")

    groups = t.groups if t.groups is not None and len(t.groups) == len(df) else None
    text_cols = set()
    long_cols = set()  # text columns with long cells: a minimum width, so they wrap in lines
    numeric = re.compile(NUMERIC_CELL)
    for ci, col in enumerate(texts):
        cells = [v.strip() for v in col]
        if not all(numeric.match(v) for v in cells):
            text_cols.add(ci)
            if cells and max(map(len, cells)) > LONG_TEXT:
                long_cols.add(ci)
    current_group: object = object()
    body_open = False
    for r in range(len(df)):
        if groups is not None and groups[r] != current_group:
            current_group = groups[r]
            if body_open:
                out.append("</tbody>")
            out.append("<tbody>")
            body_open = True
            if _text(current_group):
                out.append(
                    f'<tr class="group"><th scope="rowgroup" colspan="{ncol}">{escape(_text(current_group))}</th></tr>'
                )
        elif not body_open:
            out.append("<tbody>")
            body_open = True
        row_id = ""
        if anchors_col is not None and anchors_col[r]:
            subj = anchors_col[r]
            if subj not in seen_subj:
                seen_subj.add(subj)
                aid = subject_anchor(subj) if owner else f"{tid}-{subject_anchor(subj)}"
                row_id = f' id="{escape(aid)}"'
        cells = []
        for ci in range(ncol):
            raw = texts[ci][r]
            txt = cell_html(raw)
            link = links.get((r, ci))
            if link is not None and txt:
                target, tip = link
                txt = f'<a class="trace" href="{escape(_href(target))}" title="{escape(tip)}">{txt}</a>'
            level = indent_level(raw) if ci == stub_idx or ci in text_cols else 0
            if ci == stub_idx:
                cls = f' class="indent-{level}"' if level else ""
                cells.append(f'<th scope="row"{cls}>{txt}</th>')
            elif ci in text_cols:
                cls = "txt" + (" long" if ci in long_cols else "") + (f" indent-{level}" if level else "")
                cells.append(f'<td class="{cls}">{txt}</td>')
            else:
                cells.append(f"<td>{txt}</td>")
        out.append(f"<tr{row_id}>" + "".join(cells) + "</tr>")
    if not body_open:
        out.append(f'<tbody><tr><td colspan="{max(ncol, 1)}">No rows.</td></tr>')
    out.append("</tbody></table></div>")
    if notes:
        out.append(
            f'<div class="notes" id="{notes_id}">'
            + "".join(f"<p>{escape(n)}</p>" for n in notes)
            + "</div>"
        )
    out.append("</div>")
    return "\n".join(out)


def _render_figure(f: Figure, ctx: _Ctx, fid: str) -> str:
    ctx.n_figures += 1
    if f.svg is not None:
        data = base64.b64encode(f.svg.encode("utf-8")).decode("ascii")
        src = f"data:image/svg+xml;base64,{data}"
    elif f.png is not None:
        src = "data:image/png;base64," + base64.b64encode(f.png).decode("ascii")
    else:
        raise ValueError(f"figure {f.id!r} has neither svg nor png")
    if not f.alt or not f.alt.strip():
        raise ValueError(f"figure {f.id!r}: alt text is required (accessibility)")
    notes = "".join(f"<p>{escape(n)}</p>" for n in f.footnotes)
    return (
        f'<figure class="tlg-figure" id="{fid}">\n'
        f'<figcaption><span class="tlg-num">{ctx.numbers.get(id(f), f"Figure {ctx.n_figures}.")}</span> '
        f'{escape(f.title)}</figcaption>\n'
        f'<img src="{src}" alt="{escape(f.alt.strip())}">\n'
        + (f'<div class="notes">{notes}</div>\n' if notes else "")
        + "</figure>"
    )


def _section_link_html(b: SectionLink, sid_of: dict[str, str], elsewhere: str = "") -> str:
    """A paragraph with a link to the section ``b.section_id`` (plain label if it is absent;
    then ``elsewhere`` says where it is, e.g. " (in report.html)" in the body PDF)."""
    target = sid_of.get(b.section_id)
    label = escape(b.label) + ("" if target else escape(elsewhere))
    link = f'<a href="{escape(_href(target))}">{label}</a>' if target else label
    before, _, after = b.text.partition("{link}")
    return f'<p class="section-link">{escape(before)}{link}{escape(after)}</p>'


def _trace_index_pieces(ctx: _Ctx) -> Iterator[str]:
    """The traceability index (every traced count's subjects, each linked to its listing row) in
    pieces, made as they are read: the report streams the index, one piece per traced count,
    instead of holding it whole (issue 15: about 180 MB at 20,000 subjects, which the template
    then copied twice)."""
    out = ['<div class="trace-index">']
    out.append(
        "<p>Each entry lists the subjects behind one count of a table; each subject links to its "
        "row in the subject listing.</p>"
    )
    yield "\n".join(out)
    item_html: dict[str, str] = {}  # one <li> per subject, built once
    for e in ctx.trace:
        items = []
        for s in e.subjects:
            li = item_html.get(s)
            if li is None:
                a = subject_anchor(s)
                if a in ctx.subject_anchors:
                    li = f'<li><a href="{escape(_href(a))}">{escape(s)}</a></li>'
                else:
                    li = f"<li>{escape(s)}</li>"
                item_html[s] = li
            items.append(li)
        yield (
            "\n"
            f'<div class="trace-entry" id="{e.anchor}">'
            f"<h3>{escape(e.table_label)} &rsaquo; {escape(e.row_label)} &rsaquo; {escape(e.column)}: "
            f"{escape(e.value)} ({len(e.subjects)} {'subject' if len(e.subjects) == 1 else 'subjects'})</h3>"
            f"<ul>{''.join(items)}</ul>"
            f'<p><a href="{escape(_href(e.table_anchor))}">Back to the table</a></p></div>'
        )
    yield "\n</div>"


def build_issues_section(a: Analysis) -> Section:
    """Data issues found at input (warnings that did not stop the analysis), order 90."""
    issues = list(a.issues)
    blocks: list = []
    if not issues:
        blocks.append(Text("No problems were found in the input."))
        return Section(
            id="input-issues", title="Data issues found at input", blocks=blocks, order=90
        )
    sev = pd.Series([i.severity for i in issues]).value_counts()
    summary = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(sev.items()))
    blocks.append(
        Text(
            f"{len(issues)} issue(s) were found when the input was read and checked ({summary}). "
            "Each names the domain, the data row (1-based, header excluded), the subject, the "
            "variable and the value; nothing was dropped without being listed here."
        )
    )
    shown = issues[:MAX_ISSUE_ROWS]
    data = pd.DataFrame(
        {
            "Severity": [i.severity for i in shown],
            "Domain": [i.domain for i in shown],
            "Row": ["" if i.row is None else str(i.row) for i in shown],
            "USUBJID": [i.usubjid or "" for i in shown],
            "Variable": [i.variable for i in shown],
            "Value": ["" if i.value is None else str(i.value) for i in shown],
            "Problem": [i.problem for i in shown],
            "Hint": [i.hint for i in shown],
            "Rule": [i.rule for i in shown],
        }
    )
    if not data["Rule"].astype(bool).any():
        data = data.drop(columns="Rule")
    notes = []
    if len(issues) > MAX_ISSUE_ROWS:
        notes.append(
            f"The first {MAX_ISSUE_ROWS} of {len(issues)} issues are shown; all are in issues.csv."
        )
    blocks.append(
        Table(
            id="input-issues-table",
            title="Input issues",
            data=data,
            footnotes=notes,
            source="the study folder as read by mmtrial (issues.csv)",
        )
    )
    return Section(id="input-issues", title="Data issues found at input", blocks=blocks, order=90)


def report_sections(a: Analysis) -> list[Section]:
    """The analysis's sections plus the renderer's own, in report order (stable for equal orders)."""
    own = [build_methods_section(a), build_issues_section(a)]
    pub = build_published_section(a)
    if pub is not None:
        own.append(pub)
    own.append(build_settings_appendix_section(a))
    own.append(build_listings_section(a))
    allsec = [*a.sections, *own]
    return [s for _, s in sorted(enumerate(allsec), key=lambda p: (p[1].order, p[0]))]


@functools.lru_cache(maxsize=1)
def _env():
    """The Jinja environment, made once per process: it keeps the compiled report template, so
    the print form (``--pdf``) and later reports do not compile it again (issue 15: about 0.05 s)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("mmtrial.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def _css_string(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9 ._()-]", "", text)


def _options_text(a: Analysis) -> str:
    pairs = flatten_settings(a.options)
    return "; ".join(f"{k} = {v}" for k, v in pairs) if pairs else "defaults"


def _cutoff_text(a: Analysis) -> str:
    """The data cut-off for the header (docs/submission.md)."""
    from mmtrial.submission import data_cutoff

    cut = data_cutoff(a) if a.study is not None else None
    return cut.isoformat() if cut else "none (all data used)"


def _listings_to_appendix(sections: list[Section]) -> list[Section]:
    """Print form: listings inside body sections move to the listings appendix (issue 14/15).

    Each moved listing leaves a one-line pointer where it was; the appendix keeps the order in
    which the listings appeared. The analysis's own sections are not modified (copies).
    """
    appendix = next((s for s in sections if s.id == "listings"), None)
    moved: list = []
    out: list[Section] = []
    for s in sections:
        if s is appendix or not any(isinstance(b, Listing) for b in s.blocks):
            out.append(s)
            continue
        blocks: list = []
        for b in s.blocks:
            if isinstance(b, Listing):
                moved.append(b)
                blocks.append(SectionLink(text=f"{b.title}: see {{link}}.", section_id="listings",
                                          label="Appendix: listings"))
            else:
                blocks.append(b)
        out.append(dataclasses.replace(s, blocks=blocks))
    if not moved:
        return sections
    if appendix is None:
        appendix = Section(id="listings", title="Listings", blocks=[], order=SECTION_ORDER["listings"])
        out.append(appendix)
    new_app = dataclasses.replace(appendix, blocks=[*moved, *appendix.blocks])
    return [new_app if s is appendix else s for s in out]


def _body_sections(sections: list[Section]) -> tuple[list[Section], list[str]]:
    """Body print form (``pdf_content="body"``): the sections without :data:`FULL_ONLY_SECTIONS`,
    and every listing a body section holds replaced by a one-line pointer to report.html.

    Returns the sections and the titles of what was left out (for the front-matter note). The
    analysis's own sections are not modified (copies).
    """
    left_out = [s.title for s in sections if s.id in FULL_ONLY_SECTIONS]
    out: list[Section] = []
    for s in sections:
        if s.id in FULL_ONLY_SECTIONS:
            continue
        if any(isinstance(b, Listing) for b in s.blocks):
            s = dataclasses.replace(s, blocks=[
                Text(f"{b.title}: listed in report.html (printed with --pdf-content full).")
                if isinstance(b, Listing) else b for b in s.blocks])
        out.append(s)
    return out, left_out


def pdf_content_note(pdf_content: str) -> str:
    """The sentence that says what report.pdf holds (run header and footer of both forms; the
    front matter of the PDF adds where the rest is)."""
    if pdf_content == "full":
        return "report.pdf: the full report, listings and method-settings appendix included (--pdf-content full)"
    return "report.pdf: the report body, without the subject listings and the method-settings appendix (--pdf-content body)"


def _front_matter_note(pdf_content: str, left_out: list[str]) -> str:
    """Print form: where the parts that this PDF does not print are (the PDF's front matter)."""
    if pdf_content == "full":
        return "This PDF is the full report (--pdf-content full): the same sections as report.html."
    if not left_out:
        return "This PDF is the report body (--pdf-content body): here, every section of report.html."
    parts = ", ".join(f"\u201c{t}\u201d" for t in left_out)
    return ("This PDF is the report body (--pdf-content body, the default): every section with its "
            f"tables, figures and footnotes, and the input issues. Not printed: {parts}. They are in "
            "report.html in this folder (the same sections), and the data behind the listings are "
            "the ADaM datasets in adam/ (ADSL: one row per subject). Print them too with mmtrial "
            "analyze --pdf --pdf-content full.")


def _render_trace_targets(ctx: _Ctx) -> str:
    """Print form of the traceability index: link targets only, the subject ids in the HTML.

    The screen report lists the subjects behind every linked count (hundreds of pages once
    printed). In the PDF a linked count still leads to this section, where one line says how
    many counts are traced and that report.html names their subjects; every entry keeps its
    anchor (an empty target) so no link is broken.
    """
    n = len(ctx.trace)
    if ctx.trace_section is not None:  # body form: the counts link to this section itself
        return (
            '<div class="trace-index trace-index-print">'
            f"<p>{n} counts in the tables above are traced to their subjects, and each links here. "
            "The subject ids behind each count are listed in the HTML report (report.html, this "
            "section), where every count links to its list and every subject to its row in the "
            "subject listing.</p></div>"
        )
    targets = "".join(f'<a id="{e.anchor}" class="trace-target"></a>' for e in ctx.trace)
    return (
        '<div class="trace-index trace-index-print">'
        f"<p>{n} counts in the tables above are traced to their subjects. The subject ids behind "
        "each count are listed in the HTML report (report.html, this section), where every count "
        "links to its list and every subject to its row in the subject listing. In this PDF a "
        "count of one subject links to that subject's listing row.</p>"
        f"<p>{targets}</p></div>"
    )


def render_html(a: Analysis, *, run_date: str | None = None, for_pdf: bool = False,
                pdf_content: str | None = None) -> str:
    """The whole report as one self-contained HTML document (:func:`render_html_chunks` joined)."""
    return "".join(render_html_chunks(a, run_date=run_date, for_pdf=for_pdf, pdf_content=pdf_content))


def render_html_chunks(a: Analysis, *, run_date: str | None = None, for_pdf: bool = False,
                       pdf_content: str | None = None) -> Iterator[str]:
    """The whole report as one self-contained HTML document, in the template's pieces (Jinja's
    ``generate``; joined they are the text ``render`` gives), so :func:`write_report` streams the
    file instead of holding the document and its UTF-8 bytes at once (issue 15: about 180 MB
    each at 20,000 subjects, most of it the traceability index).

    Parameters
    ----------
    a
        The finished analysis (sections, results, ADaM datasets, methods, input issues).
    run_date
        The text of the date line; default: now, UTC, ISO 8601 to the second. It is the only
        part of the document that changes when the same analysis is re-run.
    for_pdf
        The print form (for :func:`mmtrial.report.pdf.render_pdf`): listings in an appendix
        and the traceability index reduced to its link targets (:func:`_render_trace_targets`).
    pdf_content
        What the PDF prints (:data:`PDF_CONTENTS`; issue 15). Print form: ``"body"`` (the default
        when ``for_pdf``) leaves out :data:`FULL_ONLY_SECTIONS` and listings in body sections,
        says where they are in the front matter, and links every traced count to the
        traceability section; ``"full"`` prints everything. Screen form: ``None`` (no PDF
        written, the default) or the content of the PDF written with it, named in the run
        header and footer.
    """
    if pdf_content is not None and pdf_content not in PDF_CONTENTS:
        raise ValueError(f"pdf_content must be one of {PDF_CONTENTS}; got {pdf_content!r}")
    if for_pdf and pdf_content is None:
        pdf_content = "body"
    sections = report_sections(a)
    left_out: list[str] = []
    if for_pdf and pdf_content == "body":
        sections, left_out = _body_sections(sections)
    elif for_pdf:
        sections = _listings_to_appendix(sections)
    ids = _Ids()
    # pre-pass: which listing owns the subj- anchors, and which subjects have one
    owner: Listing | None = None
    listings = [b for s in sections for b in s.blocks if isinstance(b, Listing) and b.anchor_column]
    for b in listings:
        if b.id == SUBJECT_LISTING_ID:
            owner = b
            break
    if owner is None and listings:
        owner = listings[0]
    subject_anchors: set[str] = set()
    if owner is not None and owner.anchor_column in owner.data.columns:
        subject_anchors = {
            subject_anchor(_text(v)) for v in owner.data[owner.anchor_column] if _text(v)
        }
        ids.used |= subject_anchors
    ctx = _Ctx(ids=ids, subject_anchors=subject_anchors, anchor_owner=id(owner) if owner else None)
    ctx.numbers = csr_numbers(sections)  # ICH E3 numbering (report/numbering.py)
    has_trace = any(isinstance(b, Table) and b.cell_subjects for s in sections for b in s.blocks)
    if has_trace:
        trace_sec = Section(
            id="traceability",
            title="Appendix: subjects behind linked counts",
            blocks=[],
            order=SECTION_ORDER["traceability"],
        )
        sections = [
            s
            for _, s in sorted(enumerate([*sections, trace_sec]), key=lambda p: (p[1].order, p[0]))
        ]

    rendered = []
    toc = []
    trace_slot: dict | None = None
    # section ids first, so a block can link to a later section (SectionLink)
    sids = [ids.take(f"sec-{s.id}") for s in sections]
    sid_of: dict[str, str] = {}
    for s, sid in zip(sections, sids, strict=True):
        sid_of.setdefault(s.id, sid)
    body_form = for_pdf and pdf_content == "body"
    if body_form and has_trace:
        ctx.trace_section = sid_of["traceability"]
    elsewhere = " (in report.html)" if body_form else ""
    for n, (s, sid) in enumerate(zip(sections, sids, strict=True), start=1):
        items = []
        parts = []
        for b in s.blocks:
            if isinstance(b, Table):
                bid = ids.take(f"tbl-{b.id}")
                parts.append(_render_table(b, ctx, bid))
                items.append({"id": bid, "label": f"Table {ctx.n_tables}.", "title": b.title})
            elif isinstance(b, Figure):
                bid = ids.take(f"fig-{b.id}")
                parts.append(_render_figure(b, ctx, bid))
                items.append({"id": bid, "label": f"Figure {ctx.n_figures}.", "title": b.title})
            elif isinstance(b, Text):
                parts.append(_paragraphs(b.text))
            elif isinstance(b, SectionLink):
                parts.append(_section_link_html(b, sid_of, elsewhere))
            elif isinstance(b, _Raw):
                parts.append(b.html)
            else:
                raise TypeError(f"section {s.id!r}: unknown block type {type(b).__name__}")
        entry = {"id": sid, "number": n, "title": s.title, "body_parts": (Markup("\n".join(parts)),)}
        if has_trace and s.id == "traceability" and trace_slot is None:
            trace_slot = entry
        rendered.append(entry)
        toc.append({"id": sid, "number": n, "title": s.title, "entries": items})
    if trace_slot is not None:
        # the index as pieces the template reads one at a time (issue 15; the same text)
        trace_slot["body_parts"] = ((Markup(_render_trace_targets(ctx)),) if for_pdf
                                    else (Markup(piece) for piece in _trace_index_pieces(ctx)))

    p = a.protocol
    synthetic = bool(a.study is not None and a.study.synthetic)
    if run_date is None:
        run_date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    protocol_profile = (
        p.methods.get("profile", "default") if isinstance(p.methods, dict) else "default"
    )
    run_profile = a.options.get("profile") if isinstance(a.options, dict) else None
    if run_profile and str(run_profile) != str(protocol_profile):
        # the run option wins (steps read a.options["profile"] first); say so in the header
        profile = f"{run_profile} (run option; protocol: {protocol_profile})"
    else:
        profile = protocol_profile
    return (
        _env()
        .get_template("report.html.j2")
        .generate(
            version=mmtrial_version(),
            study_id=p.study.id,
            css_study_id=_css_string(p.study.id),
            study_title=p.study.title,
            input_path=str(a.study.path)
            if a.study is not None and a.study.path is not None
            else "(not given)",
            checksum=(
                a.study.checksum if a.study is not None and a.study.checksum else "(not computed)"
            ),
            protocol=f"{p.study.id} ({p.source_path or 'bundled'})",
            profile=str(profile),
            options=_options_text(a),
            synthetic=synthetic,
            cutoff=_cutoff_text(a),
            run_date=run_date,
            pdf_note=pdf_content_note(pdf_content) if pdf_content else "",
            front_note=_front_matter_note(pdf_content, left_out) if for_pdf else "",
            toc=toc,
            sections=rendered,
        )
    )


#: Characters of the report encoded and written at a time (:func:`write_report`).
_WRITE_CHARS = 1 << 20


def write_report(
    a: Analysis,
    out_dir: Path | str,
    *,
    pdf: bool = False,
    run_date: str | None = None,
    page_size: str = "A4",
    pdf_engine: str = "weasyprint",
    pdf_content: str = "body",
) -> Path:
    """Write ``report.html`` (and ``report.pdf`` when ``pdf``, by ``pdf_engine``: ``weasyprint``
    or ``chromium``; ``pdf_content``: ``body`` or ``full``, :data:`PDF_CONTENTS`) into
    ``out_dir``, atomically.

    Each file is written to a temporary file in ``out_dir`` and moved into place with
    ``os.replace``, so a reader never sees a half-written report. Returns the HTML path.
    """
    out = Path(out_dir)
    if pdf and pdf_content not in PDF_CONTENTS:
        raise ValueError(f"pdf_content must be one of {PDF_CONTENTS}; got {pdf_content!r}")
    if run_date is None:  # one date line for the HTML and the PDF
        run_date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    html_path = out / "report.html"
    with atomic_writer(html_path) as fh:  # streamed, a slice of text at a time (issue 15)
        for chunk in render_html_chunks(a, run_date=run_date, pdf_content=pdf_content if pdf else None):
            for i in range(0, len(chunk), _WRITE_CHARS):
                fh.write(chunk[i:i + _WRITE_CHARS].encode("utf-8"))
    if pdf:
        from mmtrial.report.pdf import render_pdf, render_pdf_chromium

        render = render_pdf_chromium if pdf_engine == "chromium" else render_pdf
        render(render_html(a, run_date=run_date, for_pdf=True, pdf_content=pdf_content), out / "report.pdf",
               page_size=page_size)
    return html_path
