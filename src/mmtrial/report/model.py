"""What the analysis hands to the renderer: sections made of tables, figures and text.

Every analysis step builds :class:`Section` objects from typed results; the renderer
(``report/render.py``) only lays them out. Numbers are formatted before they get here
(``tables/format.py``), so a table is a frame of display strings plus its footnotes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class Table:
    """A display table.

    ``data`` holds display strings; its index is ignored, its columns are the headers.
    ``cell_subjects`` maps (row position, column name) to the USUBJIDs behind that count, so the
    renderer can link the cell to the listing (traceability, issue 7).
    ``stub`` names the column that labels rows (rendered as row headers); ``groups`` optionally
    gives a row-group label per row.
    """

    id: str
    title: str
    data: pd.DataFrame
    footnotes: list[str] = field(default_factory=list)
    population: str = ""
    source: str = ""
    stub: str | None = None
    groups: list[str] | None = None
    cell_subjects: dict[tuple[int, str], list[str]] = field(default_factory=dict)


@dataclass
class Figure:
    """A figure as an SVG string (preferred) or PNG bytes, with alt text for accessibility."""

    id: str
    title: str
    alt: str
    svg: str | None = None
    png: bytes | None = None
    footnotes: list[str] = field(default_factory=list)


class DeferredFigure(Figure):
    """A :class:`Figure` whose SVG is drawn when it is first read (issue 15).

    ``draw`` makes the SVG (the matplotlib figure and its export) on the first read of
    :attr:`svg`, once. A display that a later step replaces is then never drawn: a randomised
    study's pooled spider, swimmer and laboratory plots, which ``steps/by_arm.py`` replaces with
    one per arm. The same SVG as an eager figure (figures are drawn from their own data, with the
    same fixed SVG settings, whenever they are drawn). Pickling or copying draws it first, so a
    pickled analysis holds the SVG, not the function.
    """

    def __init__(self, *, draw: Callable[[], str], **kwargs: Any):
        self._draw: Callable[[], str] | None = draw
        super().__init__(**kwargs)

    @property  # type: ignore[override]
    def svg(self) -> str | None:
        if self._draw is not None:
            draw, self._draw = self._draw, None
            self._svg = draw()
        return self._svg

    @svg.setter
    def svg(self, value: str | None) -> None:
        if value is not None:  # an SVG given (or set later) replaces the pending drawing
            self._draw = None
        self._svg = value

    def __getstate__(self) -> dict[str, Any]:
        self.svg  # noqa: B018 - draw before pickling or copying: the drawing function is not kept
        return {**self.__dict__, "_draw": None}


@dataclass
class Text:
    """A paragraph (plain text; the renderer escapes it)."""

    text: str


@dataclass
class SectionLink:
    """A paragraph that links to another section of the report.

    ``text`` holds ``{link}`` where the link goes; the link reads ``label`` and points at the
    section whose :attr:`Section.id` is ``section_id`` (the renderer knows its HTML id). If no
    such section is in the report the label is shown without a link.
    """

    text: str
    section_id: str
    label: str


@dataclass
class Listing(Table):
    """A per-subject listing; rows get anchors ``subj-<USUBJID>`` when ``anchor_column`` is set."""

    anchor_column: str | None = None


Block = Table | Figure | Text | SectionLink


@dataclass
class Section:
    """A report section. ``order`` places it (see ``report/render.py`` SECTION_ORDER)."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    order: int = 50
