"""CSR numbering of tables, figures and listings (ICH E3, section 14 and appendix 16.2).

ICH E3 places the tables and figures referred to but not included in the text in section 14:
14.1 demographic data, 14.2 efficacy data, 14.3 safety data; patient data listings go to
appendix 16.2, documentation of methods and other study information to appendix 16.1, and the
investigational plan (the methods section's in-text tables) is section 9. :func:`csr_numbers` numbers every block of the report in reading order within
its group: ``Table 14.2.3``, ``Figure 14.2.1``, ``Listing 16.2.4``. The report and the RTF
files use the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Report section id -> ICH E3 group (section 14.x).
SECTION_GROUP: dict[str, str] = {
    "populations": "14.1", "disposition": "14.1", "baseline": "14.1",
    "efficacy-response": "14.2", "efficacy-tte": "14.2", "biomarker": "14.2",
    "exposure": "14.3", "safety": "14.3", "efficacy-time": "14.2", "safety-related-eair": "14.3",
    "safety-labs-time": "14.3",
}
GROUP_TITLE = {"9": "Investigational plan", "14.1": "Demographic data", "14.2": "Efficacy data",
               "14.3": "Safety data", "16.1": "Study information (appendix)"}


def group_of(section: Any) -> str | None:
    """The section-14 group of a report section; by its order when its id is not in the table."""
    if section.id in SECTION_GROUP:
        return SECTION_GROUP[section.id]
    order = getattr(section, "order", None)
    if order is None:
        return None
    if order <= 10:  # the methods section: ICH E3 section 9, investigational plan (in-text tables)
        return "9"
    if order >= 80:  # issues, published values, method settings: appendix 16.1 (study information)
        return "16.1"
    if order < 30:
        return "14.1"
    if 40 <= order < 60 or 70 <= order < 80:
        return "14.2"
    return "14.3"


def csr_numbers(sections: Iterable[Any]) -> dict[int, str]:
    """``{id(block): "Table 14.2.3"}`` for every table, figure and listing, in the order given.

    In-text tables of the methods section are ``Table 9.n``; appendix tables ``Table 16.1.n``.
    """
    from mmtrial.report.model import Figure, Listing, Table

    counters: dict[tuple[str, str], int] = {}
    out: dict[int, str] = {}
    for s in sections:
        group = group_of(s)
        for b in s.blocks:
            if isinstance(b, Listing):
                kind, grp = "Listing", "16.2"
            elif isinstance(b, Table):
                kind, grp = "Table", group
            elif isinstance(b, Figure):
                kind, grp = "Figure", group
            else:
                continue
            if grp is None:
                continue
            key = (kind, grp)
            counters[key] = counters.get(key, 0) + 1
            out[id(b)] = f"{kind} {grp}.{counters[key]}"
    return out
