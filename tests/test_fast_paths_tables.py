"""The issue-15 fast paths of the by-arm tables (fifth pass) give what the code they replaced gave.

Each new path is checked against the former code, kept here verbatim as the oracle:
``tables.byarm.merge_arm_tables`` (rows matched through a dict instead of pandas merges),
``tables.byarm.study_arms`` (one factorisation instead of three group-bys),
``tables.csr_more.compute_lab_by_visit`` (quartiles of all groups at once instead of three Python
calls per group; the quantile rule itself is numpy's ``averaged_inverted_cdf``, SAS QNTLDEF=5),
and ``tables.byarm.ArmSplit`` (each frame's arm rows selected once). The whole-output identity
(results.json, report.html, every RTF table of a two-arm study) was checked with a seeded
BOSTON study (docs/design.md, "fifth pass: CSR displays and by-arm tables").
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.report.model import Table
from mmtrial.tables import csr_more as cm
from mmtrial.tables.byarm import (
    ARM_VARIABLES,
    Arm,
    ArmSplit,
    by_arm,
    merge_arm_tables,
    rebuild_by_arm,
    study_arms,
    subset_to_subjects,
)
from support.sweeps import examples

# --- the former code, verbatim (commit 94ef075) ---------------------------------------------------

_N_IN_HEADER = re.compile(r"\s*\(N\s*=\s*\d+\)\s*$")
_COUNT_CELL = re.compile(r"^\d+(\s*\(.*\))?$")
_N_VALUE = re.compile(r"\(N\s*=\s*(\d+)\)\s*$")


def _old_flag(df, var):
    if var not in df.columns:
        return pd.Series(True, index=df.index)
    return df[var].astype("string").eq("Y").fillna(False)


def _old_study_arms(adsl, kind):
    var, num, flag = ARM_VARIABLES[kind]
    if var not in adsl.columns:
        return []
    lab = adsl[var].astype("string").replace("", pd.NA)
    d = pd.DataFrame({"USUBJID": adsl["USUBJID"].astype(str), "ARM": lab, "POP": _old_flag(adsl, flag)})
    d["ORD"] = pd.to_numeric(adsl[num], errors="coerce") if num in adsl.columns else float("nan")
    d = d.dropna(subset=["ARM"])
    order = d.groupby("ARM", sort=True)["ORD"].min().sort_values(kind="stable", na_position="last")
    subj = d.groupby("ARM")["USUBJID"].agg(frozenset)
    n = d.loc[d["POP"]].groupby("ARM").size()
    return [Arm(str(a), subj[a], int(n[a])) for a in order.index if int(n.get(a, 0)) > 0]


def _old_value_columns(t):
    stub = t.stub if t.stub in t.data.columns else t.data.columns[0]
    return [str(c) for c in t.data.columns if c != stub]


def _old_arm_column_names(label, n, cols):
    if len(cols) == 1:
        own = _N_VALUE.search(cols[0])
        return {cols[0]: f"{label} (N={own.group(1) if own else n})"}
    return {c: f"{label} (N={n}): {_N_IN_HEADER.sub('', c) if c.startswith(('All ', 'Safety ')) else c}"
            for c in cols}


def _old_keyed(t):
    df = t.data.reset_index(drop=True).copy()
    df.columns = [str(c) for c in df.columns]
    stub = t.stub if t.stub in df.columns else df.columns[0]
    grp = pd.Series(t.groups if t.groups is not None and len(t.groups) == len(df) else [""] * len(df),
                    dtype="string").fillna("")
    key = grp + "\x1f" + df[stub].astype("string").fillna("")
    df["_KEY"] = key.to_numpy()
    df["_OCC"] = df.groupby("_KEY").cumcount().to_numpy()
    df["_POS"] = range(len(df))
    return df


def _old_merge_arm_tables(total, arm_tables, *, total_n, value_columns=None, footnote=""):
    base = _old_keyed(total)
    stub = total.stub if total.stub in total.data.columns else str(total.data.columns[0])
    tot_cols = _old_value_columns(total)
    if value_columns is not None:
        tot_cols = tot_cols[:value_columns]
    out = base[[stub]].copy()
    cells = {}
    counts = {c: base[c].astype("string").fillna("").str.strip().str.match(_COUNT_CELL.pattern) for c in tot_cols}
    for arm, t in arm_tables:
        if t is None:
            continue
        k = _old_keyed(t)
        cols = _old_value_columns(t)
        if value_columns is not None:
            cols = cols[:value_columns]
        names = _old_arm_column_names(arm.label, arm.n, cols)
        m = base[["_KEY", "_OCC", "_POS"]].merge(k[["_KEY", "_OCC", "_POS", *cols]], on=["_KEY", "_OCC"],
                                                 how="left", suffixes=("", "_ARM"))
        for j, c in enumerate(cols):
            tc = c if c in counts else (tot_cols[j] if j < len(tot_cols) else None)
            filler = counts[tc].to_numpy() if tc in counts else pd.Series(False, index=m.index).to_numpy()
            vals = m[c].astype("object")
            missing = vals.isna().to_numpy()
            vals = vals.where(~missing, pd.Series(["0" if f else "" for f in filler], index=m.index, dtype=object))
            out[names[c]] = vals.to_numpy()
        arm_pos = m["_POS_ARM"]
        back = {int(p): i for i, p in arm_pos.dropna().items()}
        for (r, c), subs in t.cell_subjects.items():
            if str(c) in names and r in back:
                cells[(back[r], names[str(c)])] = subs
    if total_n is not None:
        names = _old_arm_column_names("Total", total_n, tot_cols)
        for c in tot_cols:
            out[names[c]] = base[c].to_numpy()
        for (r, c), subs in total.cell_subjects.items():
            if str(c) in names:
                cells[(r, names[str(c)])] = subs
    notes = list(total.footnotes)
    if footnote:
        notes.append(footnote)
    return Table(id=total.id, title=total.title, data=out.reset_index(drop=True), footnotes=notes,
                 population=total.population, source=total.source, stub=stub,
                 groups=list(total.groups) if total.groups is not None else None, cell_subjects=cells)


def _old_compute_lab_by_visit(adlb, adsl, tests=cm.LAB_TIME_TESTS, min_n=5):
    saf = set(cm.safety_population(adsl)["USUBJID"])
    adlb = adlb[[c for c in adlb.columns if c in cm._LAB_BY_VISIT_VARIABLES]]
    d = adlb.loc[adlb["PARAMCD"].isin(list(tests)) & adlb["USUBJID"].isin(saf) & adlb["AVAL"].notna()
                 & adlb["AVISITN"].notna()]
    on = d["ABLFL"].astype(object).eq("Y") | d["ONTRTFL"].astype(object).eq("Y")
    d = d.loc[on.to_numpy(dtype=bool)]
    d = d.assign(_DIST=(d["ADY"] - d["AVISITN"]).abs().where(d["AVISITN"] > 0, 0))
    d = d.sort_values(["PARAMCD", "USUBJID", "AVISITN", "_DIST", "ADT"]).drop_duplicates(
        ["PARAMCD", "USUBJID", "AVISITN"])

    def q(x, p):
        return float(np.quantile(x.to_numpy(dtype=float), p, method=cm.QUANTILE_METHOD))

    g = d.groupby(["PARAMCD", "AVISITN", "AVISIT"], sort=True)["AVAL"]
    out = g.agg(n="size", median=lambda x: q(x, 0.5), q1=lambda x: q(x, 0.25), q3=lambda x: q(x, 0.75)).reset_index()
    unit = d.groupby("PARAMCD")["AVALU"].first() if "AVALU" in d else pd.Series(dtype=object)
    out["AVALU"] = out["PARAMCD"].map(unit)
    return out.loc[out["n"] >= min_n].reset_index(drop=True)


def _old_lab_columns(st_frame, names):
    """The cell texts of table_lab_by_visit (visit rows) and table_lab_by_visit_long (test/visit
    rows) before the fifth pass (verbatim loops)."""
    from mmtrial.tables.format import fmt_num

    tests = [t for t in cm.LAB_TIME_TESTS if t in set(st_frame["PARAMCD"])]
    visits = st_frame[["AVISITN", "AVISIT"]].drop_duplicates().sort_values("AVISITN")
    wide = {}
    for t in tests:
        s = st_frame.loc[st_frame["PARAMCD"] == t].set_index("AVISITN")
        dg = {"PLAT": 0, "SODIUM": 0}.get(t, 1 if t != "CREAT" else 2)
        wide[t] = [(f"{int(s.at[v, 'n'])}; {fmt_num(s.at[v, 'median'], dg)} ({fmt_num(s.at[v, 'q1'], dg)}, "
                    f"{fmt_num(s.at[v, 'q3'], dg)})") if v in s.index else "" for v in visits["AVISITN"]]
    long = []
    for t in tests:
        s = st_frame.loc[st_frame["PARAMCD"] == t].sort_values("AVISITN")
        dg = {"PLAT": 0, "SODIUM": 0, "CREAT": 2}.get(t, 1)
        cells = (s["n"].astype(int).astype(str) + "; " + s["median"].map(lambda v, d=dg: fmt_num(v, d)) + " ("
                 + s["q1"].map(lambda v, d=dg: fmt_num(v, d)) + ", " + s["q3"].map(lambda v, d=dg: fmt_num(v, d)) + ")")
        long += cells.tolist()
    return wide, long


# --- merge_arm_tables -----------------------------------------------------------------------------

LABELS = st.sampled_from(["a", "b", "  c", "", None])
CELLS = st.sampled_from(["3 (30.0)", "12", " 4 (x) ", "x", "", None, "0"])


def _frame(rows: list[tuple], int_column: bool) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["Row", "n (%)", "Grade >=3"])
    if int_column:
        df["k"] = np.arange(len(df), dtype=np.int64)
    return df


@st.composite
def _tables(draw):
    rows = draw(st.lists(st.tuples(LABELS, CELLS, CELLS), max_size=8))
    grouped = draw(st.booleans())
    int_column = draw(st.booleans())
    groups = draw(st.lists(st.sampled_from(["S1", "S2", ""]), min_size=len(rows), max_size=len(rows)))
    total = Table(id="T", title="t", stub="Row", data=_frame(rows, int_column), footnotes=["f"],
                  groups=groups if grouped else None,
                  cell_subjects={(i, "n (%)"): [f"P{i}"] for i in range(len(rows))})
    arms = []
    for label in ("A", "B"):
        keep = draw(st.lists(st.sampled_from(range(len(rows))), max_size=len(rows), unique=True)) if rows else []
        sub = [rows[i] for i in keep]
        t = Table(id="T", title="t", stub="Row", data=_frame(sub, int_column),
                  groups=[groups[i] for i in keep] if grouped else None,
                  cell_subjects={(j, "Grade >=3"): [f"{label}{i}"] for j, i in enumerate(keep)})
        arms.append((Arm(label, frozenset(), draw(st.integers(0, 9))), t if draw(st.booleans()) or keep else None))
    return total, arms


@settings(max_examples=examples(8, 200), deadline=None)
@given(case=_tables(), total_n=st.sampled_from([None, 10]), value_columns=st.sampled_from([None, 1]))
def test_merge_arm_tables_equals_the_pandas_merge(case, total_n, value_columns):
    """8 random tables by default (200 under --sweeps): unmatched rows, repeated labels, row
    groups, an integer column (float after pandas' merge), missing cells and an absent arm."""
    total, arms = case
    got = merge_arm_tables(total, arms, total_n=total_n, value_columns=value_columns, footnote="x")
    want = _old_merge_arm_tables(total, arms, total_n=total_n, value_columns=value_columns, footnote="x")
    pd.testing.assert_frame_equal(got.data, want.data, check_exact=True)
    assert got.cell_subjects == want.cell_subjects
    assert (got.groups, got.stub, got.footnotes) == (want.groups, want.stub, want.footnotes)


# --- study_arms -----------------------------------------------------------------------------------

@settings(max_examples=examples(10, 200), deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["X", "Y", "Z", "", None]), st.sampled_from([1, 2, 3, None]),
                               st.sampled_from(["Y", "N", None])), max_size=12),
       with_order=st.booleans())
def test_study_arms_equals_the_group_bys(rows, with_order):
    adsl = pd.DataFrame({"USUBJID": [f"S{i}" for i in range(len(rows))],
                         "TRT01A": pd.array([r[0] for r in rows], dtype="str"),
                         "TRT01AN": pd.array([r[1] for r in rows], dtype="Float64"),
                         "SAFFL": pd.array([r[2] for r in rows], dtype="str")})
    if not with_order:
        adsl = adsl.drop(columns="TRT01AN")
    assert study_arms(adsl, "safety") == _old_study_arms(adsl, "safety")
    assert study_arms(adsl, "efficacy") == _old_study_arms(adsl, "efficacy") == []  # no TRT01P


# --- laboratory values over time ------------------------------------------------------------------

@settings(max_examples=examples(25, 400), deadline=None)
@given(groups=st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, 1.0, 2.0]),
                                min_size=1, max_size=9), min_size=1, max_size=6),
       p=st.sampled_from([0.25, 0.5, 0.75]))
def test_group_quantiles_equal_numpy_averaged_inverted_cdf(groups, p):
    """SAS QNTLDEF=5 = numpy ``averaged_inverted_cdf`` (R type 2), bit for bit, for every group size."""
    counts = np.array([len(g) for g in groups])
    values = np.concatenate([np.sort(g) for g in groups])
    got = cm.group_quantiles(values, np.cumsum(counts) - counts, counts, p)
    want = np.array([np.quantile(np.array(g), p, method="averaged_inverted_cdf") for g in groups])
    assert got.tobytes() == want.tobytes()


def _adlb(draw_rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame({
        "USUBJID": [f"S{r[0]}" for r in draw_rows],
        "PARAMCD": pd.array([r[1] for r in draw_rows], dtype="str"),
        "AVAL": [r[2] for r in draw_rows],
        "AVALU": pd.array(["U"] * len(draw_rows), dtype="str"),
        "AVISITN": [r[3] for r in draw_rows],
        "AVISIT": pd.array([None if r[3] is None else f"Day {r[3]}" for r in draw_rows], dtype="str"),
        "ABLFL": pd.array(["Y" if r[3] == 0 else None for r in draw_rows], dtype="str"),
        "ONTRTFL": pd.array(["Y" if r[4] else None for r in draw_rows], dtype="str"),
        "ADY": [float(r[5]) for r in draw_rows],
        "ADT": pd.to_datetime("2020-01-01") + pd.to_timedelta([r[5] for r in draw_rows], unit="D"),
    })


@settings(max_examples=examples(8, 200), deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["PLAT", "HGB", "CREAT", "ALT"]),
                               st.sampled_from([1.0, 2.5, 3.0, 10.0, None]),
                               st.sampled_from([0.0, 8.0, 15.0, None]), st.booleans(), st.integers(-3, 20)),
                     max_size=60),
       min_n=st.sampled_from([1, 2, 5]))
def test_lab_by_visit_equals_the_per_group_quantiles(rows, min_n):
    adlb = _adlb(rows)
    adsl = pd.DataFrame({"USUBJID": [f"S{i}" for i in range(7)], "SAFFL": ["Y"] * 6 + ["N"]})
    got = cm.compute_lab_by_visit(adlb, adsl, min_n=min_n)
    want = _old_compute_lab_by_visit(adlb, adsl, min_n=min_n)
    if want.empty:  # no visit: the former per-group lambdas left the empty quantile columns as objects
        assert got.empty and list(got.columns) == list(want.columns)
        return
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    wide, _ = _old_lab_columns(got, {})
    t = cm.table_lab_by_visit(got, {})
    assert [t.data[c].tolist() for c in t.data.columns[1:]] == list(wide.values())
    long_min5 = _old_lab_columns(_old_compute_lab_by_visit(adlb, adsl), {})[1]  # the long table: min_n = 5
    assert cm.table_lab_by_visit_long(adlb, adsl, {}).data.iloc[:, 1].tolist() == long_min5


# --- ArmSplit -------------------------------------------------------------------------------------

@by_arm("safety")
def _mutating_builder(adae: pd.DataFrame, adsl: pd.DataFrame) -> Table:
    """A builder that writes into its input frame (the split must not hand the change on)."""
    adae["X"] = 1
    return Table(id="M", title="m", stub="Row", data=pd.DataFrame({"Row": ["events"], "n": [str(len(adae))]}))


def test_arm_split_selects_each_frame_once_and_hands_out_copies():
    adsl = pd.DataFrame({"USUBJID": ["1", "2", "3"], "TRT01A": ["A", "B", "B"], "TRT01AN": [1, 2, 2],
                         "SAFFL": ["Y", "Y", "Y"], "TRT01P": ["A", "B", "B"]})
    adae = pd.DataFrame({"USUBJID": ["1", "2", "2", "3"], "AETERM": ["a", "b", "c", "d"]})
    split = ArmSplit(adsl)
    arm_b = split.arms("safety")[1]
    first, again = split.subset(adae, arm_b.subjects), split.subset(adae, arm_b.subjects)
    pd.testing.assert_frame_equal(first, subset_to_subjects(adae, arm_b.subjects))
    first["X"] = 1  # a shallow copy: the next builder sees the rows as selected
    assert "X" not in again.columns and "X" not in split.subset(adae, arm_b.subjects).columns
    t = _mutating_builder(adae.copy(), adsl)
    with_split = rebuild_by_arm(t, adsl, split)
    pd.testing.assert_frame_equal(with_split.data, rebuild_by_arm(t, adsl).data)
    assert with_split.data.iloc[0].tolist() == ["events", "1", "3", "4"]  # A: 1 event, B: 3, Total 4
