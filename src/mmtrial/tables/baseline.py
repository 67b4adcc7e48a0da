"""Baseline characteristics table (NEJM Table 1 style; tlg-catalog mmtrial-BL01).

Columns: all patients of the population and a subgroup (default the penta-refractory subgroup,
the FDA label population of STORM). Rows: demographics, disease history, prior therapy,
exposure and refractoriness to each key drug and class, triple-class/penta status, prior
transplant, high-risk cytogenetics and baseline laboratory values. Every count cell carries the
USUBJIDs behind it (``Table.cell_subjects``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmtrial.report.model import Table
from mmtrial.tables.byarm import by_arm
from mmtrial.tables.format import fmt_median_range, fmt_n_pct


@dataclass(frozen=True)
class BaselineLab:
    """A baseline laboratory row: LBTESTCD (and LBSPEC when needed) and its label with unit."""

    testcd: str
    label: str
    spec: str | None = None
    digits: int = 1


DEFAULT_LABS: tuple[BaselineLab, ...] = (
    BaselineLab("HGB", "Hemoglobin, g/dL"),
    BaselineLab("PLAT", "Platelets, 10^9/L", digits=0),
    BaselineLab("NEUT", "Absolute neutrophil count, 10^9/L"),
    BaselineLab("CREAT", "Creatinine, mg/dL", digits=2),
    BaselineLab("SODIUM", "Sodium, mmol/L", digits=0),
    BaselineLab("MPROTEIN", "Serum M-protein, g/dL", spec="SERUM"),
)


def derive_baseline_lab_values(
    lb: pd.DataFrame | None,
    adsl: pd.DataFrame,
    labs: Sequence[BaselineLab] = DEFAULT_LABS,
) -> pd.DataFrame:
    """Baseline value per subject and lab: the last non-missing LBSTRESN on or before TRTSDT.

    Rule: the conventional ADaM baseline (last value before first dose; the same definition as
    derive/baseline.py). Columns ``BL_<TESTCD>`` (float), one row per adsl subject. Of records on
    the same latest day, the later lb row is taken.

    The lab records are read as arrays at the rows of the wanted tests only; test codes and
    specimens are compared on their distinct values (no text column copied per lab record:
    100,000 subjects, issue 15).
    """
    out = pd.DataFrame({"USUBJID": adsl["USUBJID"].astype("string").to_numpy()})
    if lb is None or len(lb) == 0 or "LBSTRESN" not in lb:
        for lab in labs:
            out[f"BL_{lab.testcd}"] = np.nan
        return out
    tcode, tuni = pd.factorize(lb["LBTESTCD"])
    tuni = pd.Series(tuni, dtype="string").str.upper()
    wanted_t = tuni.isin([lab.testcd for lab in labs]).fillna(False).to_numpy()
    rows = np.flatnonzero(np.append(wanted_t, False)[tcode])  # (a missing code, -1, takes the False)
    del wanted_t
    tcode = tcode[rows]
    # first dose per row through the distinct subjects (a map of millions of Arrow strings makes a
    # Python object per row, issue 15); a missing subject gets no first dose
    scode, subjects = pd.factorize(lb["USUBJID"].take(rows))
    ref = pd.Series(pd.to_datetime(adsl["TRTSDT"]).to_numpy(), index=adsl["USUBJID"].astype("string"))
    ref = ref[~ref.index.duplicated()]
    per_subject = pd.Series(pd.array(subjects, dtype="string")).map(ref)
    ref_ns = _datetimes_ns(pd.Series(per_subject.array.take(scode, allow_fill=True)))
    val = pd.to_numeric(lb["LBSTRESN"].take(rows), errors="coerce").to_numpy(dtype=float)
    day = _datetimes_ns(pd.to_datetime(lb["LBDT"].take(rows)))
    nat = np.iinfo(np.int64).min
    keep = ~np.isnan(val) & (day != nat) & (ref_ns != nat) & (day <= ref_ns)
    if any(lab.spec is not None for lab in labs):
        if "LBSPEC" in lb:
            pcode, puni = pd.factorize(lb["LBSPEC"].take(rows))
            puni = pd.Series(puni, dtype="string").str.upper()
        else:
            pcode, puni = np.full(len(rows), -1, dtype=np.int64), pd.Series(dtype="string")
    for lab in labs:
        sel = keep & np.append(tuni.eq(lab.testcd).fillna(False).to_numpy(), False)[tcode]
        if lab.spec is not None:
            sel &= np.append(puni.eq(lab.spec).fillna(False).to_numpy(), False)[pcode]
        r = np.flatnonzero(sel)
        # per subject the latest day, then the later lb row (the stable sort of the first release)
        o = r[np.lexsort((r, day[r], scode[r]))]
        last = o[np.r_[scode[o][1:] != scode[o][:-1], True]] if len(o) else o
        b = pd.Series(val[last], index=pd.Index(pd.array(subjects, dtype="string").take(scode[last])))
        out[f"BL_{lab.testcd}"] = out["USUBJID"].map(b).astype(float)
    return out


def _datetimes_ns(s: pd.Series) -> np.ndarray:
    """int64 nanoseconds of a datetime Series (NaT: the int64 minimum)."""
    return s.to_numpy().astype("datetime64[ns]").view(np.int64)


@dataclass(frozen=True)
class _Col:
    name: str
    mask: np.ndarray  # rows of the frame in this column


@by_arm("efficacy", value_columns=1)
def build_baseline_table(
    adsl: pd.DataFrame,
    lab_values: pd.DataFrame | None = None,
    *,
    population_flag: str = "SAFFL",
    population_label: str = "Safety population",
    subgroup_flag: str | None = "PENTAFL",
    subgroup_label: str = "Penta-refractory",
    drug_rows: Sequence[tuple[str, str]] = (
        ("BTZ", "Bortezomib"), ("CFZ", "Carfilzomib"), ("LEN", "Lenalidomide"),
        ("POM", "Pomalidomide"), ("DAR", "Daratumumab"),
    ),
    class_rows: Sequence[tuple[str, str]] = (
        ("ALK", "Alkylating agent"), ("GC", "Glucocorticoid"),
    ),
    labs: Sequence[BaselineLab] = DEFAULT_LABS,
    cytogenetic_rows: Sequence[tuple[str, str]] = (
        ("DEL17P", "del(17p)"), ("T414", "t(4;14)"), ("T1416", "t(14;16)"), ("GAIN1Q", "gain(1q)"),
    ),
    footnotes: Sequence[str] = (),
    table_id: str = "baseline-characteristics",
) -> Table:
    """The NEJM Table 1-style baseline table (a display Table with traceable counts).

    Parameters
    ----------
    adsl
        ADSL with the prior-therapy variables (docs/prior-therapy.md). Missing variables give
        no row (never a made-up one); the footnote names them.
    lab_values
        :func:`derive_baseline_lab_values` output (optional).
    population_flag
        Rows with this flag ``Y`` form the population (SAFFL by default; EFFFL for mITT).
    subgroup_flag
        A second column for the subgroup (``None``: no second column).
    """
    a = adsl.loc[adsl[population_flag].eq("Y").fillna(False)].reset_index(drop=True) if population_flag in adsl else adsl.reset_index(drop=True)
    if lab_values is not None and len(lab_values):
        lv = lab_values.assign(USUBJID=lab_values["USUBJID"].astype("string"))
        a = a.assign(USUBJID=a["USUBJID"].astype("string")).merge(lv, on="USUBJID", how="left")
    ids = a["USUBJID"].astype("string").to_numpy()
    cols = [_Col(f"All patients (N={len(a)})", np.ones(len(a), dtype=bool))]
    if subgroup_flag and subgroup_flag in a:
        m = a[subgroup_flag].eq("Y").fillna(False).to_numpy()
        cols.append(_Col(f"{subgroup_label} (N={int(m.sum())})", m))
    rows: list[dict[str, str]] = []
    groups: list[str] = []
    cells: dict[tuple[int, str], list[str]] = {}
    absent: list[str] = []

    def add_count(group: str, label: str, flag: np.ndarray) -> None:
        r = {"Characteristic": label}
        for c in cols:
            sel = flag & c.mask
            r[c.name] = fmt_n_pct(int(sel.sum()), int(c.mask.sum()))
            cells[(len(rows), c.name)] = ids[sel].tolist()
        rows.append(r)
        groups.append(group)

    def add_median(group: str, label: str, values: pd.Series, digits: int) -> None:
        v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        r = {"Characteristic": label}
        for c in cols:
            r[c.name] = fmt_median_range(v[c.mask], digits)
        rows.append(r)
        groups.append(group)

    def yes(var: str) -> np.ndarray | None:
        if var not in a:
            absent.append(var)
            return None
        return a[var].astype("string").eq("Y").fillna(False).to_numpy()

    g = "Demographics"
    if "AGE" in a:
        add_median(g, "Age, years: median (range)", a["AGE"], 0)
        add_count(g, "Age >= 65 years", (pd.to_numeric(a["AGE"], errors="coerce") >= 65).fillna(False).to_numpy())
    if "SEX" in a:
        sex = a["SEX"].astype("string").str.upper()
        for code, lbl in (("M", "Male sex"), ("F", "Female sex")):
            add_count(g, lbl, sex.eq(code).fillna(False).to_numpy())
    g = "Disease history"
    if "DIAGYRS" in a:
        add_median(g, "Time since diagnosis, years: median (range)", a["DIAGYRS"], 1)
    if "MMTYPE" in a:
        mt = a["MMTYPE"].astype("string")
        for lvl in ("IgG", "IgA", "IgD", "IgM", "Light chain", "Non-secretory", "Other"):
            f = mt.eq(lvl).fillna(False).to_numpy()
            if f.any():
                add_count(g, f"Myeloma type: {lvl}", f)
        miss = mt.isna().to_numpy()
        if miss.any():
            add_count(g, "Myeloma type: not recorded", miss)
    g = "Prior therapy"
    if "NLINES" in a:
        add_median(g, "Prior lines of therapy: median (range)", a["NLINES"], 0)
    if "NREGIMEN" in a:
        add_median(g, "Prior regimens: median (range)", a["NREGIMEN"], 0)
    f = yes("PRSCTFL")
    if f is not None:
        add_count(g, "Prior stem-cell transplant", f)
    if "NSCT" in a:
        add_count(g, ">= 2 prior transplants", (pd.to_numeric(a["NSCT"]) >= 2).fillna(False).to_numpy())
    g = "Exposure and refractoriness"
    for code, lbl in (*drug_rows, *class_rows):
        fe, fr = yes(f"{code}EXPFL"), yes(f"{code}REFFL")
        if fe is not None:
            add_count(g, f"{lbl}: exposed", fe)
        if fr is not None:
            add_count(g, f"{lbl}: refractory", fr)
    for var, lbl in (("TCEFL", "Triple-class exposed"), ("TCRFL", "Triple-class refractory"),
                     ("QUADFL", "Quad-refractory"), ("PENTAFL", "Penta-refractory"),
                     ("LSTREFFL", "Refractory to last line of therapy")):
        f = yes(var)
        if f is not None:
            add_count(g, lbl, f)
    g = "Cytogenetics"
    f = yes("HRCYTOFL")
    if f is not None:
        add_count(g, "High-risk cytogenetics", f)
        for code, lbl in cytogenetic_rows:
            if f"{code}FL" in a and a[f"{code}FL"].notna().any():
                add_count(g, f"  {lbl}", a[f"{code}FL"].astype("string").eq("Y").fillna(False).to_numpy())
        add_count(g, "Cytogenetics not available", a["HRCYTOFL"].isna().to_numpy())
    g = "Baseline laboratory values"
    for lab in labs:
        var = f"BL_{lab.testcd}"
        if var in a and a[var].notna().any():
            add_median(g, f"{lab.label}: median (range)", a[var], lab.digits)

    data = pd.DataFrame(rows, columns=["Characteristic", *[c.name for c in cols]])
    notes = [
        f"Population: {population_label} ({population_flag} = Y)."
        + (f" Subgroup: {subgroup_label} ({subgroup_flag} = Y)." if len(cols) > 1 else ""),
        "Counts are n (%) of the column's N; continuous values are median (range).",
        *footnotes,
    ]
    if absent:
        notes.append("Not derived, so not shown: " + ", ".join(dict.fromkeys(absent)) + ".")
    return Table(id=table_id, title="Baseline characteristics, myeloma history and prior therapy",
                 data=data, footnotes=notes, population=population_label, source="ADSL (prior_therapy step), LB",
                 stub="Characteristic", groups=groups, cell_subjects=cells)
