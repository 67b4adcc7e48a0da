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

from mmtrial._keys import equality_keys
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


def _sort_ranks(values: pd.Series) -> np.ndarray:
    """Each value's rank among the distinct values (equal values equal ranks, missing after
    every value): the codes :meth:`pandas.DataFrame.sort_values` sorts a key of several
    variables by (an ordered categorical per variable, missing last)."""
    codes, uniques = pd.factorize(values, sort=True)
    codes = np.asarray(codes, dtype=np.int64)
    codes[codes < 0] = len(uniques)
    return codes


def _closest_per_visit(adlb: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The record of each subject and analysis visit among ``rows`` (ADLB row positions of one
    test) that :func:`compute_lab_by_visit` keeps: the closest to the nominal day (AVISITN),
    then the earliest (ADT), then the first; returned in (subject, visit) order."""
    def take(name: str) -> pd.Series:
        return adlb[name].take(rows).reset_index(drop=True)

    visit_n = take("AVISITN")
    dist = (take("ADY") - visit_n).abs().where(visit_n > 0, 0)  # distance to the nominal day
    subject, visit = _sort_ranks(take("USUBJID")), _sort_ranks(visit_n)
    order = np.lexsort((_sort_ranks(take("ADT")), _sort_ranks(dist), visit, subject))
    del dist, visit_n
    repeat = np.ones(order.size, dtype=bool)  # the same subject and visit as the record before
    for key in (subject, visit):
        k = key[order]
        repeat[1:] &= k[1:] == k[:-1]
    repeat[:1] = False
    return rows[order[~repeat]]


def compute_lab_by_visit(adlb: pd.DataFrame, adsl: pd.DataFrame, tests: Sequence[str] = LAB_TIME_TESTS,
                         min_n: int = 5) -> pd.DataFrame:
    """n, median, Q1, Q3 of AVAL per test and analysis visit (safety population; baseline and
    on-treatment records), visits with at least ``min_n`` values; quantiles by SAS QNTLDEF=5.

    One value per subject, test and visit (:func:`_closest_per_visit`). Each test's records are
    read as arrays and sort ranks (:func:`_sort_ranks`) and sorted once, stably: the records that
    ``sort_values`` and ``drop_duplicates`` of every selected record gave, one test at a time and
    without a frame of the selected records (issue 15: +2 GB at 100,000 subjects, 13 M lab
    records). Groups (test, AVISITN, AVISIT) are ordered as grouping ADLB by them orders them."""
    saf = set(safety_population(adsl)["USUBJID"])
    selected = (adlb["USUBJID"].isin(saf) & adlb["AVAL"].notna() & adlb["AVISITN"].notna()
                & (adlb["ABLFL"].astype(object).eq("Y") | adlb["ONTRTFL"].astype(object).eq("Y"))).to_numpy(dtype=bool)
    aval = adlb["AVAL"].to_numpy(dtype=float)
    has_unit = adlb["AVALU"].notna().to_numpy(dtype=bool) if "AVALU" in adlb else None
    none = np.zeros(0, dtype=np.int64)
    parts: dict[str, list[np.ndarray]] = {"rep": [none], "n": [none], "median": [none + 0.0], "q1": [none + 0.0],
                                          "q3": [none + 0.0]}
    unit_rows = [none]
    for test in dict.fromkeys(tests):
        kept = _closest_per_visit(adlb, np.flatnonzero(selected & (adlb["PARAMCD"] == test).to_numpy(dtype=bool)))
        # groups (AVISITN, AVISIT) of the test; a record with a missing visit name is in none
        name_code = np.asarray(pd.factorize(adlb["AVISIT"].take(kept))[0], dtype=np.int64)
        visit = np.asarray(pd.factorize(adlb["AVISITN"].take(kept))[0], dtype=np.int64)
        members = kept[name_code >= 0]
        _, first_of, gid = np.unique(equality_keys([visit[name_code >= 0], name_code[name_code >= 0]]),
                                     return_index=True, return_inverse=True)
        del name_code, visit
        counts = np.bincount(gid, minlength=first_of.size)
        v = aval[members]
        values = v[np.lexsort((v, gid))]  # each group's values in ascending order
        starts = np.cumsum(counts) - counts
        parts["rep"].append(members[first_of])  # a record of each group, for its key values
        parts["n"].append(counts.astype(np.int64))
        for name, q in (("median", 0.5), ("q1", 0.25), ("q3", 0.75)):
            parts[name].append(group_quantiles(values, starts, counts, q))
        if has_unit is not None:
            unit_rows.append(kept[has_unit[kept]][:1])  # the test's first unit (``groupby(...).first()``)
        del kept, members, gid, v, values
    # the groups' keys as grouping ADLB's records by them gives (values, types, sort order)
    keys = adlb[["PARAMCD", "AVISITN", "AVISIT"]].take(np.concatenate(parts.pop("rep"))).reset_index(drop=True)
    by = keys.groupby(["PARAMCD", "AVISITN", "AVISIT"], sort=True)
    in_order = np.argsort(by.ngroup().to_numpy(), kind="stable")
    out = by.size().rename("n").reset_index()
    for name, chunks in parts.items():
        out[name] = np.concatenate(chunks)[in_order]
    if has_unit is not None:
        first_unit = np.concatenate(unit_rows)
        unit = pd.Series(adlb["AVALU"].take(first_unit).array, index=adlb["PARAMCD"].take(first_unit).to_numpy())
    else:
        unit = pd.Series(dtype=object)
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
