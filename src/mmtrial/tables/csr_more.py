"""CSR displays added for submission (issue 14): related AEs by grade, exposure-adjusted incidence
rates, laboratory values over time.

Layouts follow ../shared/reference/tlg-catalog.md: AET09 (AEs related to study drug, SOC/PT)
with the AET04 grade columns; STF Table 16 (incidence rate per 100 patient-years, FDA Standard
Safety Tables and Figures IG section 2.2.4); LBT01 / STF Figures 16-20 (laboratory values by
visit, median and interquartile range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmtrial.report.model import Table
from mmtrial.stats import _dist
from mmtrial.tables.byarm import by_arm
from mmtrial.tables.format import fmt_num
from mmtrial.tables.safety import (
    SOC_TOTAL_LABEL,
    TableBuilder,
    safety_population,
    teae,
)

GRADE_COLUMNS = ("Any grade", "Grade 1-2", "Grade 3", "Grade 4", "Grade 5")
DAYS_PER_YEAR = 365.25
#: Laboratory tests over time (the protocol's myeloma safety labs; data contract test codes).
LAB_TIME_TESTS: tuple[str, ...] = ("PLAT", "NEUT", "HGB", "SODIUM", "CREAT")
#: Quantile definition for medians and quartiles: SAS PROC UNIVARIATE default QNTLDEF=5
#: (R type 2; numpy "averaged_inverted_cdf").
QUANTILE_METHOD = "averaged_inverted_cdf"


def _grade_counts(d: pd.DataFrame, b: TableBuilder, n: int) -> dict:
    """Subjects by their worst grade in ``d`` (one row per subject after the worst-grade pick)."""
    return _grade_cells(d["USUBJID"].to_numpy(dtype=object), d["_G"].to_numpy(dtype=float), b, n)


def _grade_cells(uid: np.ndarray, grade: np.ndarray, b: TableBuilder, n: int) -> dict:
    """:func:`_grade_counts` on arrays: each subject at their worst grade among the rows given."""
    codes, u = pd.factorize(uid)
    g = np.full(len(u), -np.inf)
    np.maximum.at(g, codes, grade)  # the worst grade per subject (grades have no NaN: 0 = missing)
    u = np.asarray(u, dtype=object)
    return {
        "Any grade": b.count(u, n),
        "Grade 1-2": b.count(u[(g >= 1) & (g <= 2)], n),
        "Grade 3": b.count(u[g == 3], n),
        "Grade 4": b.count(u[g == 4], n),
        "Grade 5": b.count(u[g == 5], n),
    }


@by_arm("safety")
def table_related_ae_by_grade(adae: pd.DataFrame, adsl: pd.DataFrame, *, footnotes: Sequence[str] = ()) -> Table:
    """AET09 with AET04 grade columns: treatment-related TEAEs by SOC and PT, at each patient's
    worst grade of the related events of that SOC or PT (AERELFL = Y)."""
    saf = safety_population(adsl)
    n = len(saf)
    te = teae(adae, adsl, [c for c in ("USUBJID", "AEBODSYS", "AEDECOD", "ATOXGR", "AERELFL") if c in adae])
    rel = te.loc[te["AERELFL"].astype(object).eq("Y").to_numpy(dtype=bool)] if "AERELFL" in te else te.iloc[:0]
    rel = rel.assign(AEBODSYS=rel["AEBODSYS"].fillna("UNCODED SOC"),
                     _G=pd.to_numeric(rel["ATOXGR"], errors="coerce").fillna(0).to_numpy())
    b = TableBuilder("System organ class / Preferred term", list(GRADE_COLUMNS))
    b.add("Any treatment-related event", _grade_counts(rel, b, n))
    if not rel.empty:
        # one group-by per level instead of one filter of the frame per SOC and PT (issue 15)
        uid, grade = rel["USUBJID"].to_numpy(dtype=object), rel["_G"].to_numpy(dtype=float)
        soc_rows = rel.groupby("AEBODSYS", sort=False, observed=True).indices
        pt_rows = rel.groupby(["AEBODSYS", "AEDECOD"], sort=False, observed=True).indices
        pairs = rel[["USUBJID", "AEBODSYS", "AEDECOD"]].drop_duplicates()
        soc_n = pairs[["USUBJID", "AEBODSYS"]].drop_duplicates().groupby("AEBODSYS").size()
        pt_n = {soc: d.groupby("AEDECOD").size() for soc, d in pairs.groupby("AEBODSYS", sort=False)}
        for soc in sorted(soc_n.index, key=lambda s: (-soc_n[s], s)):
            ix = soc_rows[soc]
            b.add(SOC_TOTAL_LABEL, _grade_cells(uid[ix], grade[ix], b, n), group=str(soc))
            pn = pt_n[soc]
            for pt in sorted(pn.index, key=lambda p: (-pn[p], p)):
                ix = pt_rows[(soc, pt)]
                b.add(f"  {pt}", _grade_cells(uid[ix], grade[ix], b, n), group=str(soc))
    notes = [f"Treatment-related: AEREL in the related categories (AERELFL = Y); percentages of the safety "
             f"population (N = {n}).",
             "Each patient is counted once per row, at the worst CTCAE grade of the related events of that "
             "system organ class or preferred term.", *footnotes]
    return b.table("AET09", "Treatment-related treatment-emergent adverse events by system organ class, "
                   "preferred term and highest CTCAE grade", footnotes=notes,
                   population=f"Safety population (N = {n})",
                   source="ADAE (TRTEMFL, AERELFL, AEBODSYS, AEDECOD, ATOXGR)", with_groups=True)


@dataclass(frozen=True)
class IncidenceRate:
    """Exposure-adjusted incidence rate of one preferred term."""

    term: str
    n: int
    patient_years: float
    rate: float  # per 100 patient-years
    ci: tuple[float, float]


def exposure_window_end(adsl: pd.DataFrame, window_days: int) -> pd.Series:
    """End of the time at risk per subject: TRTEDT + window, but not after death or last alive."""
    end = adsl["TRTEDT"] + pd.to_timedelta(window_days, unit="D")
    for cap in ("DTHDT", "LSTALVDT"):
        if cap in adsl:
            end = end.where(adsl[cap].isna() | (adsl[cap] >= end), adsl[cap])
    return end


def compute_eair(adae: pd.DataFrame, adsl: pd.DataFrame, *, window_days: int = 30,
                 level: float = 0.95) -> list[IncidenceRate]:
    """Exposure-adjusted incidence rate per PT: subjects with the PT per 100 patient-years at risk.

    Time at risk of a subject for a PT: from TRTSDT to the onset of the first treatment-emergent
    event of the PT, or to the end of the treatment-emergent window (TRTEDT + ``window_days``,
    capped at death or last known alive) without it; in days + 1, / 365.25 (FDA STF IG section
    2.2.4, Table 16: "incidence rate per 100 patient-years"; the time-to-first-event exposure of
    the exposure-adjusted incidence rate, EAIR). CI: exact Poisson (Garwood 1936) for the count,
    divided by the patient-years.
    """
    saf = safety_population(adsl).copy()
    saf = saf.loc[saf["TRTSDT"].notna()]
    saf["_END"] = exposure_window_end(saf, window_days)
    full = ((saf["_END"] - saf["TRTSDT"]).dt.days + 1).clip(lower=0).astype(float)
    total_days = float(full.sum())
    te = teae(adae, adsl)
    te = te.loc[te["USUBJID"].isin(saf["USUBJID"]) & te["ASTDT"].notna()]
    first = te.groupby(["AEDECOD", "USUBJID"], sort=True)["ASTDT"].min().rename("FIRST").reset_index()
    first = first.merge(saf[["USUBJID", "TRTSDT", "_END"]], on="USUBJID")
    first["AT_RISK"] = ((first["FIRST"].clip(upper=first["_END"]) - first["TRTSDT"]).dt.days + 1).clip(lower=1)
    first["FULL"] = ((first["_END"] - first["TRTSDT"]).dt.days + 1).clip(lower=0)
    per_pt = first.groupby("AEDECOD").agg(n=("USUBJID", "nunique"), at_risk=("AT_RISK", "sum"), full=("FULL", "sum"))
    alpha = 1 - level
    out = []
    for pt, r in per_pt.iterrows():
        days = total_days - float(r["full"]) + float(r["at_risk"])
        py = days / DAYS_PER_YEAR
        k = int(r["n"])
        lo = _dist.chi2_ppf(alpha / 2, 2 * k) / 2 if k > 0 else 0.0
        hi = _dist.chi2_ppf(1 - alpha / 2, 2 * k + 2) / 2
        out.append(IncidenceRate(str(pt), k, py, 100 * k / py if py > 0 else float("nan"),
                                 (100 * lo / py, 100 * hi / py) if py > 0 else (float("nan"), float("nan"))))
    return sorted(out, key=lambda r: (-r.n, r.term))


@by_arm("safety", arm_kwargs={"min_subjects": 0})  # rows: PTs in >= min_subjects over all arms
def table_eair(adae: pd.DataFrame, adsl: pd.DataFrame, *, window_days: int = 30, min_subjects: int = 5,
               footnotes: Sequence[str] = ()) -> Table:
    """STF Table 16: subjects and incidence rate per 100 patient-years, PTs in >= ``min_subjects``."""
    rates = [r for r in compute_eair(adae, adsl, window_days=window_days) if r.n >= min_subjects]
    n = len(safety_population(adsl))
    rows = [{"Preferred term": r.term, "Patients with event, n": str(r.n),
             "Patient-years at risk": fmt_num(r.patient_years, 1),
             "Rate per 100 patient-years (95% CI)": f"{fmt_num(r.rate, 1)} ({fmt_num(r.ci[0], 1)}, "
                                                      f"{fmt_num(r.ci[1], 1)})"} for r in rates]
    data = pd.DataFrame(rows, columns=["Preferred term", "Patients with event, n", "Patient-years at risk",
                                       "Rate per 100 patient-years (95% CI)"])
    notes = [
        "Exposure: for each patient and preferred term, the days from the first dose (TRTSDT) to the onset of "
        f"the first treatment-emergent event of that term, or to {window_days} days after the last dose "
        "(TRTEDT), death or last known alive, whichever is first, for patients without it; "
        "patient-years = days / 365.25.",
        "Rate = patients with the event / patient-years at risk x 100; 95% CI exact Poisson (Garwood).",
        f"Preferred terms reported in at least {min_subjects} patients of the safety population (N = {n}).",
        *footnotes,
    ]
    return Table(id="AE-EAIR", title="Exposure-adjusted incidence rates of treatment-emergent adverse events "
                 "by preferred term", data=data, footnotes=notes, population=f"Safety population (N = {n})",
                 source="ADAE (TRTEMFL, AEDECOD, ASTDT), ADSL (TRTSDT, TRTEDT, DTHDT, LSTALVDT)",
                 stub="Preferred term")


def group_quantiles(values: np.ndarray, starts: np.ndarray, counts: np.ndarray, p: float) -> np.ndarray:
    """The ``p`` quantile of each group of ``values`` by SAS QNTLDEF=5, bit for bit
    ``numpy.quantile(group, p, method="averaged_inverted_cdf")`` (R type 2).

    ``values`` holds the groups one after another, each sorted ascending, group i at
    ``starts[i]`` with ``counts[i]`` (> 0) values. numpy's rule, applied to all groups at once:
    virtual index v = n p - 1; below 0 the first value, at or above n - 1 the last; else the
    values at floor(v) and floor(v) + 1 averaged when v is whole (gamma 0.5), the upper one
    otherwise, through numpy's interpolation ``b - (b - a) (1 - gamma)``.
    """
    n = counts.astype(float)
    v = n * p - 1
    prev = np.floor(v)
    nxt = prev + 1
    above, below = v >= n - 1, v < 0
    prev[above] = nxt[above] = -1
    prev[below] = nxt[below] = 0
    gamma = np.where(v - prev == 0, 0.5, 1.0)
    last = counts - 1
    a = values[starts + np.where(prev < 0, last, prev).astype(np.intp)]
    b = values[starts + np.where(nxt < 0, last, nxt).astype(np.intp)]
    return b - (b - a) * (1 - gamma)


#: The ADLB variables :func:`compute_lab_by_visit` reads.
_LAB_BY_VISIT_VARIABLES = frozenset({"USUBJID", "PARAMCD", "AVAL", "AVALU", "AVISITN", "AVISIT", "ABLFL", "ONTRTFL",
                                     "ADY", "ADT"})


def compute_lab_by_visit(adlb: pd.DataFrame, adsl: pd.DataFrame, tests: Sequence[str] = LAB_TIME_TESTS,
                         min_n: int = 5) -> pd.DataFrame:
    """n, median, Q1, Q3 of AVAL per test and analysis visit (safety population; baseline and
    on-treatment records), visits with at least ``min_n`` values; quantiles by SAS QNTLDEF=5."""
    saf = set(safety_population(adsl)["USUBJID"])
    adlb = adlb[[c for c in adlb.columns if c in _LAB_BY_VISIT_VARIABLES]]  # rows below copy only these (issue 15)
    rows = np.flatnonzero((adlb["PARAMCD"].isin(list(tests)) & adlb["USUBJID"].isin(saf) & adlb["AVAL"].notna()
                           & adlb["AVISITN"].notna()).to_numpy(dtype=bool))
    on = adlb["ABLFL"].take(rows).astype(object).eq("Y") | adlb["ONTRTFL"].take(rows).astype(object).eq("Y")
    d = adlb.take(rows[on.to_numpy(dtype=bool)])  # the selected records, copied once (issue 15)
    # one value per subject and visit: the record closest to the nominal day (the first on ties)
    d = d.assign(_DIST=(d["ADY"] - d["AVISITN"]).abs().where(d["AVISITN"] > 0, 0))
    # sorted on the key variables alone, then the kept records taken in that order: what sorting
    # and de-duplicating every variable gives, with one copy of the kept records (issue 15)
    keys = ["PARAMCD", "USUBJID", "AVISITN", "_DIST", "ADT"]
    by = d[keys].set_axis(pd.RangeIndex(len(d))).sort_values(keys)
    first = ~by.duplicated(["PARAMCD", "USUBJID", "AVISITN"]).to_numpy(dtype=bool)
    d = d.take(by.index.to_numpy()[first])
    del by

    g = d.groupby(["PARAMCD", "AVISITN", "AVISIT"], sort=True)
    sizes = g.size()
    gid = g.ngroup().to_numpy(dtype=float, na_value=-1.0)  # rows of a dropped (missing) key: -1
    keep = gid >= 0
    aval = d["AVAL"].to_numpy(dtype=float)[keep]
    values = aval[np.lexsort((aval, gid[keep]))]  # each group's values in ascending order
    counts = sizes.to_numpy()
    starts = np.cumsum(counts) - counts
    out = sizes.rename("n").reset_index()
    for name, p in (("median", 0.5), ("q1", 0.25), ("q3", 0.75)):
        out[name] = group_quantiles(values, starts, counts, p)
    unit = d.groupby("PARAMCD")["AVALU"].first() if "AVALU" in d else pd.Series(dtype=object)
    out["AVALU"] = out["PARAMCD"].map(unit)
    return out.loc[out["n"] >= min_n].reset_index(drop=True)


def _lab_cells(s: pd.DataFrame, digits: int) -> list[str]:
    """"n; median (Q1, Q3)" of each row of a :func:`compute_lab_by_visit` frame."""
    return [f"{n}; {fmt_num(m, digits)} ({fmt_num(lo, digits)}, {fmt_num(hi, digits)})"
            for n, m, lo, hi in zip(s["n"].astype(int).tolist(), s["median"].tolist(), s["q1"].tolist(),
                                    s["q3"].tolist(), strict=True)]


def table_lab_by_visit(stats_frame: pd.DataFrame, names: dict[str, str], *, footnotes: Sequence[str] = (),
                       n_safety: int | None = None) -> Table:
    """LBT01 (median and IQR form): rows = analysis visits, one column per test."""
    tests = [t for t in LAB_TIME_TESTS if t in set(stats_frame["PARAMCD"])]
    visits = stats_frame[["AVISITN", "AVISIT"]].drop_duplicates().sort_values("AVISITN")
    digits = {"PLAT": 0, "SODIUM": 0}
    cols = []
    data = {"Visit": visits["AVISIT"].tolist()}
    for t in tests:
        s = stats_frame.loc[stats_frame["PARAMCD"] == t]
        unit = s["AVALU"].iloc[0] if len(s) else ""
        col = f"{names.get(t, t)} ({unit}): n; median (Q1, Q3)"
        cols.append(col)
        dg = digits.get(t, 1 if t != "CREAT" else 2)
        cell = dict(zip(s["AVISITN"].tolist(), _lab_cells(s, dg), strict=True))  # one row per visit of the test
        data[col] = [cell.get(v, "") for v in visits["AVISITN"].tolist()]
    pop = "Safety population" + (f" (N = {n_safety})" if n_safety is not None else "")
    notes = [
        "n = patients with a value at the visit (baseline: the baseline record; later visits: on-treatment "
        "records); percentages are not shown, so each visit's n is its own denominator.",
        "Analysis visits: each value is assigned to the nearest nominal visit day (AVISIT); one value per "
        "patient and visit (the closest to the nominal day). Visits with fewer than 5 values are omitted.",
        "Median and quartiles: SAS PROC UNIVARIATE default definition (QNTLDEF=5).",
        *footnotes,
    ]
    return Table(id="LBT01-TIME", title="Laboratory values over time: median and interquartile range by visit",
                 data=pd.DataFrame(data), footnotes=notes, population=pop,
                 source="ADLB (PARAMCD, AVISIT, AVISITN, AVAL, ABLFL, ONTRTFL)", stub="Visit")


@by_arm("safety")
def table_lab_by_visit_long(adlb: pd.DataFrame, adsl: pd.DataFrame, names: dict[str, str], *,
                            footnotes: Sequence[str] = ()) -> Table:
    """LBT01 (median and IQR form), one row per test and visit, one value column: the layout that
    takes one column per arm (tables/byarm.py), used for randomised studies.

    Rule
    ----
    The same statistics as :func:`table_lab_by_visit` (:func:`compute_lab_by_visit`: safety
    population, baseline and on-treatment records, one value per subject and visit, SAS
    QNTLDEF=5 quartiles, visits with at least 5 values), transposed: rows grouped by test
    (TLG catalog LBT01 rows are visits within a parameter), so that a column is a population.
    In a by-arm rebuild each arm keeps the visits with at least 5 of its own values; a visit
    shown for all arms but with fewer than 5 values in one arm is blank in that arm.
    """
    st = compute_lab_by_visit(adlb, adsl)
    n = int((adsl["SAFFL"] == "Y").sum()) if "SAFFL" in adsl.columns else len(adsl)
    col = f"Safety population (N={n})"
    stub = "Test / visit: n; median (Q1, Q3)"
    tests = [t for t in LAB_TIME_TESTS if t in set(st["PARAMCD"])]
    digits = {"PLAT": 0, "SODIUM": 0, "CREAT": 2}
    rows, groups = [], []
    for t in tests:  # five tests at most
        s = st.loc[st["PARAMCD"] == t].sort_values("AVISITN")
        unit = s["AVALU"].iloc[0] if len(s) else ""
        dg = digits.get(t, 1)
        cells = _lab_cells(s, dg)
        rows += [{stub: v, col: c} for v, c in zip(s["AVISIT"].astype(str), cells, strict=True)]
        groups += [f"{names.get(t, t)} ({unit})"] * len(s)
    notes = [
        "n = patients with a value at the visit (baseline: the baseline record; later visits: on-treatment "
        "records); each visit's n is its own denominator.",
        "Analysis visits: each value is assigned to the nearest nominal visit day (AVISIT); one value per "
        "patient and visit (the closest to the nominal day). Visits with fewer than 5 values are omitted "
        "(in a column: fewer than 5 values of that column's patients leave the cell blank).",
        "Median and quartiles: SAS PROC UNIVARIATE default definition (QNTLDEF=5).",
        *footnotes,
    ]
    return Table(id="LBT01-TIME", title="Laboratory values over time: median and interquartile range by visit",
                 data=pd.DataFrame(rows, columns=[stub, col]), footnotes=notes, population="Safety population",
                 source="ADLB (PARAMCD, AVISIT, AVISITN, AVAL, ABLFL, ONTRTFL)", stub=stub, groups=groups)
