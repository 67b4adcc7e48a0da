"""Checks rewritten for issue 15 (seventh pass: read + check) against their former versions.

Oracle: ``derive_dates``, ``check_exdose`` and ``convert_lab_units`` as they were at commit
8f7c1b5, frozen below (only renamed); the rewritten functions must give the same frames
(values, dtypes) and the same issues on generated inputs: partial, invalid, out-of-range and
missing dates; drugs and units in mixed case, missing, outside the regimen; lab tests in known,
alternative and unknown units and specimens (examples: a smaller default, more under ``--sweeps``).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.protocol.model import Protocol
from mmtrial.sdtm._columns import (
    TextCodes,
    distinct_rows,
    register_codes,
    shared_codes,
    small_codes,
)
from mmtrial.sdtm.check import (
    DateImputation,
    InputIssue,
    _issues_for_rows,
    check_exdose,
    compute_max_planned_mg,
    derive_dates,
    load_plausibility,
)
from mmtrial.sdtm.dates import compute_iso_dates, date_column_names, is_end_date
from mmtrial.sdtm.units import UnitTable, convert_lab_units, normalise_unit, pa_array
from support.sweeps import examples

Protocol_ = Protocol  # the protocol type of the frozen check_exdose's annotation


# --- frozen: commit 8f7c1b5 ------------------------------------------------------------------
def derive_dates_8f7c1b5(dom: str, df: pd.DataFrame, imputation: DateImputation,
                 window: tuple[_dt.date, _dt.date] | None = None) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Add ``--DT``/``--DTF`` for every ``--DTC`` (DATE_INVALID and DATE_OUT_OF_RANGE errors,
    DATE_IMPUTED warnings). Dates are parsed as calendar days and never overflow: a date outside
    the plausible ``window`` is an error, and one beyond pandas' nanosecond range is NaT."""
    issues: list[InputIssue] = []
    out = df
    cfg = load_plausibility()["dates"]
    exempt = set(cfg.get("exempt", []))
    for c in [c for c in df.columns if c.endswith("DTC")]:
        dt, flag = date_column_names(c)
        rule = imputation.end if is_end_date(c) else imputation.start
        checked = window is not None and c not in exempt
        parsed = compute_iso_dates(df[c], rule, window if checked else None, days=False)
        out[dt] = parsed.dates
        out[flag] = parsed.flags
        issues += _issues_for_rows(df, parsed.invalid, domain=dom, variable=c, rule="DATE_INVALID",
                                   problem="not an ISO 8601 date (YYYY-MM-DD, YYYY-MM or YYYY)")
        outside = np.zeros(len(df), dtype=bool)
        if checked and parsed.outside is not None:
            outside = parsed.outside.to_numpy()
            issues += _issues_for_rows(df, outside, domain=dom, variable=c, rule=cfg["rule"],
                                       severity=cfg["severity"],
                                       problem=f"outside the plausible dates {window[0]} to {window[1]}",
                                       hint="A typing error in the year? (ReadOptions date_min/date_max "
                                            "widen the window.)")
        if parsed.out_of_range is not None:
            issues += _issues_for_rows(df, parsed.out_of_range.to_numpy() & ~outside, domain=dom, variable=c,
                                       rule=cfg["rule"], severity=cfg["severity"],
                                       problem="outside the dates mmtrial can represent (1678-2261)")
        imputed = (parsed.flags != "").to_numpy() if parsed.imputed is None else parsed.imputed.to_numpy()
        if imputed.any():
            n = int(imputed.sum())
            issues.append(InputIssue(domain=dom, variable=c, severity="warning", rule="DATE_IMPUTED",
                                     problem=f"{n} partial date(s) imputed ('{rule}' of the period); "
                                             f"flagged in {flag}"))
    return out, issues


def check_exdose_8f7c1b5(ex: pd.DataFrame, protocol: Protocol_ | None) -> list[InputIssue]:
    """EXDOSE_RANGE: negative, or above max_factor x the regimen's largest planned dose in mg
    (a drug outside the regimen: above max_any_mg). EXDOSE = 0 (placebo, withheld) is kept."""
    if not {"EXDOSE", "EXTRT"} <= set(ex.columns):
        return []
    cfg = load_plausibility()["exdose"]
    dose = ex["EXDOSE"].to_numpy(dtype=float)
    planned = compute_max_planned_mg(protocol)
    drug = ex["EXTRT"].astype("str").str.upper()
    limit = drug.map({k: v * float(cfg["max_factor"]) for k, v in planned.items()}).astype(float)
    limit = limit.fillna(float(cfg["max_any_mg"])).to_numpy()
    mg = (ex["EXDOSU"].astype("str").str.upper() == "MG").to_numpy() if "EXDOSU" in ex else np.ones(len(ex), bool)
    with np.errstate(invalid="ignore"):
        neg = dose < 0
        high = mg & (dose > limit)
    issues = _issues_for_rows(ex, neg, domain="ex", variable="EXDOSE", rule=cfg["rule"], severity=cfg["severity"],
                              problem="a dose cannot be negative")
    if high.any():
        lim = pd.Series(limit, index=ex.index)
        for lv in np.unique(limit[high]):
            sel = high & (lim.to_numpy() == lv)
            names = ", ".join(sorted(set(drug[sel])))
            src = (f"{cfg['max_factor']:g} x the protocol's largest planned dose in mg"
                   if any(n in planned for n in drug[sel]) else "the limit for a drug not in the regimen")
            issues += _issues_for_rows(ex, sel, domain="ex", variable="EXDOSE", rule=cfg["rule"],
                                       severity=cfg["severity"],
                                       problem=f"above {lv:g} mg per administration for {names} ({src})",
                                       hint="A unit or typing error? EXDOSE is the dose given, in EXDOSU.")
    return issues


def convert_lab_units_8f7c1b5(lb: pd.DataFrame, table: UnitTable | None = None) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Convert LBSTRESN (and LBSTNRLO/LBSTNRHI) of known tests to the default unit.

    Keeps the values as given in ``LBSTRESN_RAW`` / ``LBSTRESU_RAW``. Rows of a known test whose
    unit is unknown are reported (error) and left unconverted; nothing is dropped.
    Matching on LBSPEC is used when the test is known for the record's specimen; a test known
    for one specimen only (e.g. PLAT/BLOOD) matches whatever LBSPEC says.
    """
    table = table or UnitTable.load()
    out = lb.copy(deep=False)  # copy-on-write: new columns only, not a second copy of lb (issue 15)
    out["LBSTRESN_RAW"] = out["LBSTRESN"]
    out["LBSTRESU_RAW"] = out["LBSTRESU"]
    t = table.frame
    # every rule below is a function of the row's (LBTESTCD, LBSPEC, LBSTRESU): it runs on the
    # distinct combinations (a few hundred) and goes back to the rows by their combination's
    # number, with no text work per lab row (issue 15)
    first, combo = distinct_rows([out["LBTESTCD"], out["LBSPEC"], out["LBSTRESU"]])
    u = out.iloc[first][["LBTESTCD", "LBSPEC", "LBSTRESU"]].reset_index(drop=True)
    spec_count = t.drop_duplicates(["LBTESTCD", "LBSPEC"]).groupby("LBTESTCD").size()
    single = spec_count[spec_count == 1].index
    spec_key = u["LBSPEC"].where(~u["LBTESTCD"].isin(single))
    single_spec = t.drop_duplicates("LBTESTCD").set_index("LBTESTCD")["LBSPEC"]
    spec_key = spec_key.fillna(u["LBTESTCD"].map(single_spec))
    key_u = pd.DataFrame({"LBTESTCD": u["LBTESTCD"], "LBSPEC": spec_key, "UNIT_KEY": normalise_unit(u["LBSTRESU"])})
    merged_u = key_u.merge(t[["LBTESTCD", "LBSPEC", "UNIT_KEY", "UNIT_DEFAULT", "FACTOR"]],
                           on=["LBTESTCD", "LBSPEC", "UNIT_KEY"], how="left")
    known_u = np.asarray(pd.MultiIndex.from_frame(key_u[["LBTESTCD", "LBSPEC"]].astype(object)).isin(
        pd.MultiIndex.from_frame(t[["LBTESTCD", "LBSPEC"]].drop_duplicates().astype(object))))
    factor_u = merged_u["FACTOR"].to_numpy(dtype=float)
    conv_u = known_u & ~np.isnan(factor_u)
    known_test = known_u[combo]
    has_value = out["LBSTRESN"].notna().to_numpy()
    factor = factor_u[combo]
    bad = known_test & has_value & np.isnan(factor)
    scaled = conv_u & (factor_u != 1.0)  # a factor of 1 leaves the value as it is (issue 15)
    f = np.where(scaled[combo], factor, 1.0) if scaled.any() else None
    for col in ("LBSTRESN", "LBSTNRLO", "LBSTNRHI"):
        if col in out:
            out[col] = out[col].astype(float) * f if f is not None else out[col].astype(float)
    if conv_u.any():
        unit_u = u["LBSTRESU"].astype(object).where(~conv_u, merged_u["UNIT_DEFAULT"].astype(object))
        given = u["LBSTRESU"].astype(object)
        same = (unit_u == given) | (unit_u.isna() & given.isna())
        if not bool(same.all()):  # a unit renamed to its default: the column is rebuilt
            distinct = pd.array(unit_u.to_numpy(), dtype=out["LBSTRESU"].dtype)
            out["LBSTRESU"] = pd.Series(distinct.take(combo), index=out.index, name="LBSTRESU")
            unit_codes, unit_values = pd.factorize(distinct)  # the new column's codes, for the checks after
            codes = small_codes(np.asarray(unit_codes, dtype=np.int64)[combo], len(unit_values))
            register_codes(out["LBSTRESU"], TextCodes(pa_array(unit_values), codes))
    key = key_u.iloc[combo[bad]] if bad.any() else key_u.iloc[:0]
    issues: list[InputIssue] = []
    if bad.any():
        sub = out.loc[bad]
        defaults = key
        expected = t.groupby(["LBTESTCD", "LBSPEC"])["UNIT"].agg(lambda s: ", ".join(s))
        for r, (_, row) in zip(defaults.itertuples(index=False), sub.iterrows(), strict=True):
            exp = expected.get((r.LBTESTCD, r.LBSPEC), "")
            issues.append(InputIssue(
                domain="lb", variable="LBSTRESU", row=int(row["ROWNUM"]), usubjid=row["USUBJID"],
                value=None if pd.isna(row["LBSTRESU"]) else str(row["LBSTRESU"]),
                problem=f"unit unknown for {row['LBTESTCD']} {row.get('LBSPEC', '')}; expected one of: {exp}",
                hint="Fix LBSTRESU or add the unit with its factor to data/units.toml.",
                rule="UNIT_UNKNOWN"))
    return out, issues


# --- the rewritten functions against them ----------------------------------------------------
DATE_TEXTS = ["2019-03-14", "2019-03", "2019", "2019-02-30", "2019-13-01", "2999-01-01", "1066-10-14",
              "1890-02-04", "2262-04-12", " 2019-05-01 ", "2019-04-01T10:00", "UNK", "", None]


def _issues(found: list[InputIssue]) -> list[tuple]:
    return [(i.domain, i.variable, i.rule, i.severity, i.row, i.usubjid, i.value, i.problem) for i in found]


@settings(max_examples=examples(30, full=150), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(DATE_TEXTS), st.sampled_from(DATE_TEXTS)), min_size=0, max_size=30),
       st.sampled_from(["first", "mid", "last", "none"]), st.booleans())
def test_derive_dates_matches_8f7c1b5(rows, rule, windowed):
    df = pd.DataFrame({"ROWNUM": np.arange(1, len(rows) + 1), "USUBJID": [f"S-{i % 3}" for i in range(len(rows))],
                       "AESTDTC": [r[0] for r in rows], "AEENDTC": [r[1] for r in rows]})
    df = df.astype({"USUBJID": "str", "AESTDTC": "str", "AEENDTC": "str"})
    imputation = DateImputation(start=rule, end=rule)
    window = (_dt.date(1900, 1, 1), _dt.date(2030, 12, 31)) if windowed else None
    with shared_codes():
        got, got_issues = derive_dates("ae", df.copy(deep=False), imputation, window)
    with shared_codes():
        want, want_issues = derive_dates_8f7c1b5("ae", df.copy(deep=False), imputation, window)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert _issues(got_issues) == _issues(want_issues)


STORM = Protocol.load(None)
DRUGS = ["SELINEXOR", "selinexor", "Dexamethasone", "BORTEZOMIB", "ASPIRIN", "", None]
UNITS = ["mg", "MG", "Mg", "g", "mg/m2", None]


@settings(max_examples=examples(30, full=150), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(DRUGS), st.sampled_from(UNITS),
                          st.sampled_from([-1.0, 0.0, 20.0, 80.0, 100.0, 500.0, 5000.0, 20000.0, np.nan])),
                min_size=0, max_size=25), st.booleans())
def test_check_exdose_matches_8f7c1b5(rows, with_protocol):
    ex = pd.DataFrame({"ROWNUM": np.arange(1, len(rows) + 1), "USUBJID": ["S-1"] * len(rows),
                       "EXTRT": [r[0] for r in rows], "EXDOSU": [r[1] for r in rows],
                       "EXDOSE": [r[2] for r in rows]}).astype({"USUBJID": "str", "EXTRT": "str", "EXDOSU": "str"})
    protocol = STORM if with_protocol else None
    with shared_codes():
        got = check_exdose(ex, protocol)
    assert _issues(got) == _issues(check_exdose_8f7c1b5(ex, protocol))


def _lab_choices() -> tuple[list[tuple], list[str], list[str], list[str]]:
    t = UnitTable.load().frame
    known = [tuple(r) for r in t[["LBTESTCD", "LBSPEC", "UNIT"]].itertuples(index=False)]
    return (known, [*sorted(set(t["LBTESTCD"])), "IFE", "NEWTEST"], [*sorted(set(t["LBSPEC"])), None],
            [*sorted(set(t["UNIT"])), "furlong", None])


KNOWN, TESTS, SPECS, LAB_UNITS = _lab_choices()
LAB_ROW = st.one_of(st.sampled_from(KNOWN),  # a test in one of its units (default or alternative)
                    st.tuples(st.sampled_from(TESTS), st.sampled_from(SPECS), st.sampled_from(LAB_UNITS)))


@settings(max_examples=examples(12, full=60), deadline=None)
@given(st.lists(st.tuples(LAB_ROW, st.sampled_from([1.0, 2.5, 100.0, np.nan])), min_size=1, max_size=30))
def test_convert_lab_units_matches_8f7c1b5(rows):
    lb = pd.DataFrame({"ROWNUM": np.arange(1, len(rows) + 1), "USUBJID": ["S-1"] * len(rows),
                       "LBTESTCD": [r[0][0] for r in rows], "LBSPEC": [r[0][1] for r in rows],
                       "LBSTRESU": [r[0][2] for r in rows], "LBSTRESN": [r[1] for r in rows],
                       "LBSTNRLO": [r[1] / 2 for r in rows], "LBSTNRHI": [r[1] * 2 for r in rows]})
    lb = lb.astype({c: "str" for c in ("USUBJID", "LBTESTCD", "LBSPEC", "LBSTRESU")})
    with shared_codes():
        got, got_issues = convert_lab_units(lb)
    with shared_codes():
        want, want_issues = convert_lab_units_8f7c1b5(lb)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert _issues(got_issues) == _issues(want_issues)


@settings(max_examples=examples(12, full=60), deadline=None)
@given(st.lists(st.tuples(LAB_ROW, st.sampled_from([-1.0, 0.001, 1.0, 2.5, 100.0, 1e6, np.nan])),
                min_size=1, max_size=30))
def test_lab_ranges_on_the_units_combinations_match_8f7c1b5(rows):
    """After unit conversion, LAB_RANGE is tested on the combinations of the unit as given
    (shared with unit conversion); the issues are those of the former combinations of the
    converted unit (8f7c1b5: ``distinct_rows([LBTESTCD, LBSTRESU, LBSPEC])``)."""
    import mmtrial.sdtm.check as check

    lb = pd.DataFrame({"ROWNUM": np.arange(1, len(rows) + 1), "USUBJID": ["S-1"] * len(rows),
                       "LBTESTCD": [r[0][0] for r in rows], "LBSPEC": [r[0][1] for r in rows],
                       "LBSTRESU": [r[0][2] for r in rows], "LBSTRESN": [r[1] for r in rows]})
    lb = lb.astype({c: "str" for c in ("USUBJID", "LBTESTCD", "LBSPEC", "LBSTRESU")})
    with shared_codes():
        converted, _ = convert_lab_units(lb)
        got = check.check_lab_ranges(converted)
    former = check._lab_combinations
    check._lab_combinations = lambda lb, spec: distinct_rows([lb["LBTESTCD"], lb["LBSTRESU"], spec])
    try:
        with shared_codes():
            want = check.check_lab_ranges(converted)
    finally:
        check._lab_combinations = former
    assert _issues(got) == _issues(want)


def test_distinct_rows_are_shared_for_the_same_columns_in_any_order():
    """Within shared_codes, distinct_rows of the same Arrow columns (any order) is computed
    once; a replaced column is a new column (the oracle: the result computed afresh)."""
    df = pd.DataFrame({c: pd.array(list(v), dtype="str") for c, v in (("a", "xxyyx"), ("b", "pqpqp"))})
    with shared_codes():
        first, combo = distinct_rows([df["a"], df["b"]])
        again = distinct_rows([df["b"], df["a"]])
        assert again[0] is first and again[1] is combo
        df["b"] = pd.array(list("ppppp"), dtype="str")
        new_first, new_combo = distinct_rows([df["a"], df["b"]])
    assert first.tolist() == [0, 1, 2, 3] and combo.tolist() == [0, 1, 2, 3, 0]
    assert new_first.tolist() == [0, 2] and new_combo.tolist() == [0, 0, 1, 1, 0]
