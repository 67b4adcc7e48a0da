"""Appendix: each published result of the reference trial next to the value computed here.

The protocol's ``[published]`` section carries the paper's numbers (storm.toml: STORM, Chari et al.
NEJM 2019, values from ../shared/reference/domain.md). Which ``results.json`` entry each one is
compared with is data (:data:`PUBLISHED_ITEMS`). A published key without a mapping, or a mapping
whose results entry the analysis did not produce, is shown as such, never dropped. When the study
is synthetic the computed column and the caption say "synthetic data".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from mmtrial.report.model import Section, Table, Text
from mmtrial.tables.format import NE, fmt_ci, fmt_num, fmt_p

if TYPE_CHECKING:  # pragma: no cover
    from mmtrial.context import Analysis

#: Section order of the published-vs-computed appendix.
PUBLISHED_ORDER = 95

#: Days per month and per week (data contract: months are days / 30.4375).
DAYS_PER_UNIT: dict[str, float] = {"days": 1.0, "weeks": 7.0, "months": 30.4375, "years": 365.25}

ItemKind = Literal["count", "pct", "ci_pct", "median", "median_ci", "prop_text", "pct_of", "ratio", "ratio_ci", "p"]


#: A step of a results path: a key, or a record selector (first list element whose fields match).
PathStep = str | tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PublishedItem:
    """How one ``[published]`` key is compared with ``results.json``.

    ``path`` walks ``a.results``: a string step is a key; a tuple of ``(field, value)`` pairs
    selects the first record of a list whose fields match (e.g. the penta-refractory row of
    ``subgroups.rows``). Kinds: ``count`` (an integer); ``pct`` (a proportion shown as a
    percent); ``ci_pct`` (a proportion CI shown in percent); ``median`` / ``median_ci`` (a time,
    converted from the unit at ``unit_path``, else the ``unit`` stored beside the value, else
    this item's ``unit``, to this item's ``unit``); ``prop_text`` (a proportion record
    ``{x, n, ci}`` shown as ``x/n (p%, 95% CI lo-hi)``); ``pct_of`` (a count at ``path`` as a
    percent of the count at ``denominator``); ``ratio`` / ``ratio_ci`` (a hazard or odds ratio and
    its CI, two decimals); ``p`` (a p-value as CSR tables print it). ``note`` says where the computed quantity differs
    from the published definition.
    """

    key: str
    label: str
    path: tuple[PathStep, ...]
    kind: ItemKind
    unit: str = ""
    denominator: tuple[PathStep, ...] = ()
    unit_path: tuple[PathStep, ...] = ()
    note: str = ""


def _ae(term: str) -> tuple[str, ...]:
    return ("safety", "by_preferred_term", term, "grade_3_plus")


_PENTA = ("subgroups", "rows", (("subgroup", "Penta-refractory"), ("category", "Yes")))
_SAFETY_N = ("safety", "n")
_G3_NOTE = "computed: grade >= 3 (published: grade 3/4)"

#: The STORM keys of storm.toml ``[published]`` and the results.json entries they compare with.
PUBLISHED_ITEMS: tuple[PublishedItem, ...] = (
    PublishedItem("mitt_n", "mITT (efficacy) population, n", ("populations", "efficacy"), "count"),
    PublishedItem("safety_n", "Safety population, n", ("populations", "safety"), "count"),
    PublishedItem("sCR", "Stringent complete response, n", ("response", "counts", "sCR"), "count"),
    PublishedItem("CR", "Complete response, n", ("response", "counts", "CR"), "count"),
    PublishedItem("VGPR", "Very good partial response, n", ("response", "counts", "VGPR"), "count"),
    PublishedItem("PR", "Partial response, n", ("response", "counts", "PR"), "count"),
    PublishedItem("MR", "Minimal response, n", ("response", "counts", "MR"), "count"),
    PublishedItem(
        "orr_pct", "Overall response rate (>=PR), %", ("response", "orr", "estimate"), "pct"
    ),
    PublishedItem("orr_ci", "ORR 95% CI, %", ("response", "orr", "ci"), "ci_pct"),
    PublishedItem(
        "cbr_pct", "Clinical benefit rate (>=MR), %", ("response", "cbr", "estimate"), "pct"
    ),
    PublishedItem(
        "median_ttr_weeks",
        "Median time to response, weeks",
        ("time_to_event", "TTR", "median"),
        "median",
        "weeks",
    ),
    PublishedItem(
        "median_dor_months",
        "Median duration of response, months",
        ("time_to_event", "DOR", "median"),
        "median",
        "months",
    ),
    PublishedItem(
        "dor_ci", "Median DOR 95% CI, months", ("time_to_event", "DOR", "ci"), "median_ci", "months"
    ),
    PublishedItem(
        "median_pfs_months",
        "Median progression-free survival, months",
        ("time_to_event", "PFS", "median"),
        "median",
        "months",
    ),
    PublishedItem(
        "median_os_months",
        "Median overall survival, months",
        ("time_to_event", "OS", "median"),
        "median",
        "months",
    ),
    PublishedItem(
        "median_os_mr_or_better_months",
        "Median OS of responders, months",
        ("os_by_response", "naive", "groups", "responder", "median"),
        "median",
        "months",
        unit_path=("os_by_response", "unit"),
        note="computed: responders as flagged by os_by_response (RSPFL, >=PR), naive comparison; "
        "published: 15.6 months for >=PR and for >=MR",
    ),
    PublishedItem("penta_refractory_n", "Penta-refractory subgroup, n", (*_PENTA, "n"), "count"),
    PublishedItem("penta_orr", "ORR in the penta-refractory subgroup", _PENTA, "prop_text"),
    PublishedItem(
        "g34_thrombocytopenia_pct",
        "Grade 3/4 thrombocytopenia, %",
        _ae("THROMBOCYTOPENIA"),
        "pct_of",
        denominator=_SAFETY_N,
        note=_G3_NOTE,
    ),
    PublishedItem(
        "g34_anemia_pct",
        "Grade 3/4 anaemia, %",
        _ae("ANAEMIA"),
        "pct_of",
        denominator=_SAFETY_N,
        note=_G3_NOTE,
    ),
    PublishedItem(
        "g34_hyponatremia_pct",
        "Grade 3/4 hyponatraemia, %",
        _ae("HYPONATRAEMIA"),
        "pct_of",
        denominator=_SAFETY_N,
        note=_G3_NOTE,
    ),
    PublishedItem(
        "g34_neutropenia_pct",
        "Grade 3/4 neutropenia, %",
        _ae("NEUTROPENIA"),
        "pct_of",
        denominator=_SAFETY_N,
        note=_G3_NOTE,
    ),
    PublishedItem(
        "median_treatment_weeks",
        "Median duration of treatment, weeks",
        ("safety", "exposure", "duration_weeks", "median"),
        "median",
        "weeks",
    ),
)


def _arm(arm: str, endpoint: str, field: str) -> tuple[str, ...]:
    return ("comparison", endpoint, field, arm)


_CMP_NOTE = "computed: results.json comparison (ITT, by randomised arm)"

#: Two-arm keys (boston.toml ``[published]``; results.json ``comparison``, data contract v2).
#: The arm codes are BOSTON's (SVD experimental, VD control).
_TWO_ARM_BY_ARM = tuple(
    item
    for arm, low in (("SVD", "svd"), ("VD", "vd"))
    for item in (
        PublishedItem(f"itt_n_{low}", f"ITT population {arm}, n", _arm(arm, "ORR", "n"), "count"),
        PublishedItem(f"median_pfs_months_{low}", f"Median PFS {arm}, months", _arm(arm, "PFS", "median"),
                      "median", "months", unit_path=("comparison", "unit"), note=_CMP_NOTE),
        PublishedItem(f"orr_pct_{low}", f"Overall response rate {arm} (>=PR), %", _arm(arm, "ORR", "x"),
                      "pct_of", denominator=_arm(arm, "ORR", "n"), note=_CMP_NOTE),
    )
)
PUBLISHED_ITEMS = (
    *PUBLISHED_ITEMS,
    *_TWO_ARM_BY_ARM,
    PublishedItem("pfs_hr", "PFS hazard ratio (experimental / control)", ("comparison", "PFS", "hr"), "ratio",
                  note="computed: stratified Cox (ties per the method profile)"),
    PublishedItem("pfs_hr_ci", "PFS hazard ratio 95% CI", ("comparison", "PFS", "hr_ci"), "ratio_ci"),
    PublishedItem("pfs_p", "PFS stratified log-rank p", ("comparison", "PFS", "p_logrank"), "p",
                  note="computed: sidedness per the protocol's [randomisation] sided"),
    PublishedItem("orr_p", "ORR Cochran-Mantel-Haenszel p", ("comparison", "ORR", "p"), "p"),
)

_MISSING = object()


def lookup(results: Mapping[str, Any], path: Sequence[PathStep]) -> Any:
    """The value at ``path`` in nested mappings and lists of records; a sentinel when absent."""
    node: Any = results
    for p in path:
        if isinstance(p, tuple):
            if not isinstance(node, list):
                return _MISSING
            node = next(
                (r for r in node if isinstance(r, Mapping) and all(r.get(k) == v for k, v in p)),
                _MISSING,
            )
            if node is _MISSING:
                return _MISSING
            continue
        if not isinstance(node, Mapping) or p not in node:
            return _MISSING
        node = node[p]
    return node


def path_text(path: Sequence[PathStep]) -> str:
    """A results path as text: ``subgroups.rows[subgroup=Penta-refractory, category=Yes].n``."""
    out = ""
    for p in path:
        if isinstance(p, tuple):
            out += "[" + ", ".join(f"{k}={v}" for k, v in p) + "]"
        else:
            out += ("." if out else "") + p
    return out


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def convert_time(value: float | None, from_unit: str, to_unit: str) -> float | None:
    """Convert a duration between days, weeks, months (30.4375 days) and years (365.25 days)."""
    if value is None:
        return None
    if not from_unit or not to_unit or from_unit == to_unit:
        return value
    if from_unit not in DAYS_PER_UNIT or to_unit not in DAYS_PER_UNIT:
        raise ValueError(
            f"convert_time: unit must be one of {sorted(DAYS_PER_UNIT)}; got {from_unit!r} -> {to_unit!r}"
        )
    return value * DAYS_PER_UNIT[from_unit] / DAYS_PER_UNIT[to_unit]


def format_computed(item: PublishedItem, results: Mapping[str, Any]) -> str:
    """The computed value of ``item`` as display text (half-up, one decimal; ``NE``; "not computed")."""
    value = lookup(results, item.path)
    key = path_text(item.path)
    if value is _MISSING:
        return "not computed"
    if item.kind == "count":
        v = _num(value)
        return NE if v is None else f"{v:g}"
    if item.kind == "pct":
        v = _num(value)
        return fmt_num(None if v is None else 100.0 * v, 1)
    if item.kind == "ci_pct":
        lo, hi = (None, None) if value is None else value
        return fmt_ci((_num(lo), _num(hi)), 1, scale=100.0)
    if item.kind in ("median", "median_ci"):
        unit = lookup(results, item.unit_path or (*item.path[:-1], "unit"))
        from_unit = unit if isinstance(unit, str) else item.unit
        if item.kind == "median":
            return fmt_num(convert_time(_num(value), from_unit, item.unit), 1)
        lo, hi = (None, None) if value is None else value
        return fmt_ci(
            (
                convert_time(_num(lo), from_unit, item.unit),
                convert_time(_num(hi), from_unit, item.unit),
            ),
            1,
        )
    if item.kind == "prop_text":
        if not isinstance(value, Mapping) or "x" not in value or "n" not in value:
            return f"not computed ({key} lacks x and n)"
        x, n = int(value["x"]), int(value["n"])
        pct = fmt_num(100.0 * x / n, 1) if n else NE
        ci = value.get("ci") or (None, None)
        lo = fmt_num(None if ci[0] is None else 100.0 * ci[0], 1)
        hi = fmt_num(None if ci[1] is None else 100.0 * ci[1], 1)
        level = value.get("level", 0.95)
        return f"{x}/{n} ({pct}%, {fmt_num(100.0 * float(level), 0)}% CI {lo}-{hi})"
    if item.kind == "ratio":
        return fmt_num(_num(value), 2)
    if item.kind == "ratio_ci":
        lo, hi = (None, None) if value is None else value
        return fmt_ci((_num(lo), _num(hi)), 2)
    if item.kind == "p":
        return fmt_p(_num(value))
    if item.kind == "pct_of":
        den = lookup(results, item.denominator)
        v, d = _num(value), _num(den) if den is not _MISSING else None
        if v is None or not d:
            return NE
        return fmt_num(100.0 * v / d, 1)
    raise ValueError(f"PublishedItem.kind must be one of {ItemKind}; got {item.kind!r}")


def format_published(value: Any) -> str:
    """A published value as written in the protocol (lists as an interval ``(lo, hi)``)."""
    if isinstance(value, list | tuple):
        return "(" + ", ".join(format_published(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def build_published_table(a: Analysis) -> Table | None:
    """Published vs computed, one row per ``[published]`` key; ``None`` when there are none."""
    published = a.protocol.published or {}
    if not published:
        return None
    items = {it.key: it for it in PUBLISHED_ITEMS}
    synthetic = bool(a.study is not None and a.study.synthetic)
    comp_col = "Computed (synthetic data)" if synthetic else "Computed"
    rows = []
    for key, pub in published.items():
        item = items.get(key)
        if item is None:
            rows.append((key, format_published(pub), "not compared", "no mapping for this key"))
            continue
        rows.append((item.label, format_published(pub), format_computed(item, a.results), item.note or ""))
    data = pd.DataFrame(rows, columns=["Quantity", "Published", comp_col, "Note"])
    ref = a.protocol.study.reference or a.protocol.study.id
    notes = [
        f"Published: {ref}, as recorded in the protocol file's [published] section.",
        "Computed: this analysis (results.json); percentages to one decimal with half-up rounding; "
        "times converted with 30.4375 days per month and 7 days per week; NE = not estimable.",
    ]
    if synthetic:
        notes.insert(
            0,
            "Synthetic data: the computed values come from simulated patients, not from the trial.",
        )
    title = f"Published {a.protocol.study.id} results beside the values computed here"
    if synthetic:
        title += " (synthetic data)"
    return Table(
        id="published-vs-computed",
        title=title,
        data=data,
        footnotes=notes,
        population="as in each published figure (mITT for efficacy, safety population for AEs)",
        source="protocol [published]; results.json",
        stub="Quantity",
    )


def build_published_section(a: Analysis) -> Section | None:
    """The appendix section (order :data:`PUBLISHED_ORDER`); ``None`` without published values."""
    table = build_published_table(a)
    if table is None:
        return None
    blocks: list = []
    if a.study is not None and a.study.synthetic:
        blocks.append(
            Text(
                "SYNTHETIC DATA: the computed column comes from a simulated study; agreement with the "
                "publication shows the simulator's calibration, not a replication of the trial."
            )
        )
    blocks.append(table)
    return Section(
        id="published",
        title="Appendix: published versus computed results",
        blocks=blocks,
        order=PUBLISHED_ORDER,
    )
