"""ADaM IG conventions added to the finished datasets (run once, after every other derivation).

The analysis steps derive what the statistics need; reviewers of a submission also expect the
variables the ADaM Implementation Guide names for every study (CDISC ADaMIG v1.3, section 3):

* ADSL ``TRT01P`` / ``TRT01A`` (planned / actual treatment for period 01) and ``AGEGR1`` /
  ``AGEGR1N`` (age group; the groups are an option, default < 65, 65-74, >= 75 years as in
  most oncology CSRs);
* BDS datasets (ADLB, ADTTE, ADRS) ``PARAM`` / ``PARAMN``;
* ADLB ``AVISIT`` / ``AVISITN`` (analysis visit from a day window), ``ANRIND`` / ``BNRIND``
  (reference-range indicator of the value and of the baseline value) and ``ATOXGRN`` /
  ``BTOXGRN``, the numeric grades. In the submission files ``ATOXGR`` / ``BTOXGR`` are
  character (ADaMIG: "Analysis Toxicity Grade", Char); the Parquet keeps the numeric grade in
  ``ATOXGR`` as data contract v1 fixes it, and ``ATOXGRN`` carries it under the IG's name.

Each function is pure and vectorised; :func:`derive_vars_adam_conventions` applies them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from mmtrial.derive._groups import equality_keys

#: Names for the contract's default lab tests (data contract, "Default laboratory test codes").
LAB_TEST_NAMES: Mapping[str, str] = {
    "MPROTEIN": "M-protein", "KAPPAFLC": "Free kappa light chain", "LAMBDFLC": "Free lambda light chain",
    "BMPC": "Bone-marrow plasma cells", "PLAT": "Platelets", "NEUT": "Neutrophils",
    "HGB": "Hemoglobin", "WBC": "Leukocytes", "LYM": "Lymphocytes", "SODIUM": "Sodium",
    "CREAT": "Creatinine", "CACORR": "Corrected calcium",
}


@dataclass(frozen=True)
class ConventionOptions:
    """Options of the ADaM conventions.

    ``age_groups``: upper bounds (exclusive) of the age groups; ``(65, 75)`` gives
    ``<65``, ``65-74``, ``>=75``. ``visit_interval_days``: the nominal spacing of analysis
    visits (the protocol's ``[visits] lab_interval_days``); ``cycle_length_days``: the
    regimen's cycle, to label visits ``CYCLE c DAY d`` (``None``: ``DAY n``).
    """

    age_groups: tuple[int, ...] = (65, 75)
    visit_interval_days: int = 7
    cycle_length_days: int | None = 28


def derive_var_agegr1(age: pd.Series, bounds: Sequence[int] = (65, 75)) -> tuple[pd.Series, pd.Series]:
    """AGEGR1 (text) and AGEGR1N (1, 2, ...) from AGE; missing AGE gives missing groups."""
    edges = [-np.inf, *bounds, np.inf]
    labels = [f"<{bounds[0]}"] + [f"{lo}-{hi - 1}" for lo, hi in pairwise(bounds)]
    labels.append(f">={bounds[-1]}")
    codes = pd.cut(pd.to_numeric(age, errors="coerce"), edges, right=False, labels=False)
    n = pd.Series(codes, index=age.index).astype("Float64") + 1
    text = pd.Series(np.array(labels, dtype=object)[codes.fillna(0).astype(int)], index=age.index)
    return text.where(n.notna(), None).astype(object), n.astype("Int64")


def derive_vars_trt01(adsl: pd.DataFrame, dm: pd.DataFrame | None, regimen_label: str) -> pd.DataFrame:
    """TRT01P from dm ARM (else the protocol's regimen) and TRT01A from dm ACTARM (else TRT01P).

    Subjects without any dose (SAFFL = N) have no actual treatment (TRT01A missing), as the
    ADaMIG describes for subjects not treated.
    """
    out = pd.DataFrame(index=adsl.index)
    planned = pd.Series(regimen_label, index=adsl.index, dtype=object)
    actual = planned.copy()
    if dm is not None and "USUBJID" in dm:
        first = dm.drop_duplicates("USUBJID").set_index("USUBJID")
        for var, target in (("ARM", planned), ("ACTARM", actual)):
            if var in first:
                v = adsl["USUBJID"].astype(str).map(first[var].astype(object))
                target.loc[v.notna() & (v.astype(str).str.strip() != "")] = v
        if "ARM" in first and "ACTARM" not in first:
            actual = planned.copy()
    if "SAFFL" in adsl:
        actual = actual.where(adsl["SAFFL"].eq("Y"), None)
    out["TRT01P"] = planned.astype(object)
    out["TRT01A"] = actual.astype(object)
    return out


def derive_vars_param(paramcd: pd.Series, unit: pd.Series | None = None,
                      names: Mapping[str, str] | None = None) -> tuple[pd.Series, pd.Series]:
    """PARAM ("Platelets (10^9/L)") and PARAMN (1, 2, ... in order of first appearance of the code).

    PARAM is a function of the record's (PARAMCD, unit) pair, so the rule runs once per distinct
    pair and each record takes its pair's text (not one Python call and one new string per
    record: 2.7 M lab records at 20,000 subjects; issue 15). PARAMN is the code's rank of first
    appearance, which is :func:`pandas.factorize`'s code order.
    """
    names = {**LAB_TEST_NAMES, **(names or {})}
    # codes in order of first appearance (missing -> -1), factorised as stored (no text object per record)
    pcode = np.asarray(pd.factorize(paramcd)[0], dtype=np.int64)
    if unit is None:
        pair, first = _first_rows(pcode)
    else:
        pair, first = _first_rows(pcode, np.asarray(pd.factorize(unit)[0], dtype=np.int64))
    # the record-level rule, applied to one record of each distinct pair
    cd = paramcd.iloc[first].astype(object).reset_index(drop=True)
    base = cd.map(lambda c: names.get(c, c) if isinstance(c, str) else None)
    if unit is not None:
        u = unit.iloc[first].astype(object).reset_index(drop=True)
        has = u.notna() & (u.astype(str).str.strip() != "")
        base = base.where(~has, base.astype(str) + " (" + u.astype(str) + ")")
    param = pd.Series(base.array.take(pair), index=paramcd.index)  # the rule's dtype (text or object)
    paramn = pd.arrays.IntegerArray(np.where(pcode >= 0, pcode + 1, 0), pcode < 0)
    return param, pd.Series(paramn, index=paramcd.index)


def _first_rows(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct tuples of integer codes: each row's tuple number and the first row of each
    tuple (tuples numbered in order of first appearance)."""
    pair = np.asarray(pd.factorize(equality_keys(list(codes)))[0], dtype=np.int64)
    if pair.size == 0:
        return pair, pair
    # tuple k first appears after tuple k - 1 does: its first row is where the running maximum grows
    new = np.ones(pair.size, dtype=bool)
    new[1:] = pair[1:] > np.maximum.accumulate(pair)[:-1]
    return pair, np.flatnonzero(new)


def derive_vars_avisit(ady: pd.Series, ablfl: pd.Series, interval: int,
                       cycle_length: int | None) -> tuple[pd.Series, pd.Series]:
    """AVISIT/AVISITN from the analysis day: the nearest nominal day 1 + k * interval.

    AVISITN is that nominal study day; AVISIT reads ``CYCLE c DAY d`` (or ``DAY n`` without a
    single cycle length). The baseline record (ABLFL = Y) is ``BASELINE`` with AVISITN 0; a
    record before day 1 that is not the baseline is ``SCREENING`` (AVISITN -1).
    """
    day = pd.to_numeric(ady, errors="coerce")
    nominal = (np.round((day - 1) / interval) * interval + 1).where(day >= 1)
    # one label per distinct nominal day, shared by its records: one text object per visit, not
    # per record (2.7 M lab records: about 170 MB less; issue 15); missing stays NaN, as before
    codes, days = pd.factorize(nominal)
    days = pd.Series(days, dtype=float)
    if cycle_length:
        cyc = ((days - 1) // cycle_length + 1).astype("Int64").astype(str)
        dd = ((days - 1) % cycle_length + 1).astype("Int64").astype(str)
        names = "CYCLE " + cyc + " DAY " + dd
    else:
        names = "DAY " + days.astype("Int64").astype(str)
    text = np.append(names.to_numpy(dtype=object), np.nan)[codes]  # code -1 (no nominal day) -> NaN
    n = nominal.astype("Float64")
    pre = day.notna() & (day < 1)
    text[pre.to_numpy(dtype=bool)] = "SCREENING"
    n = n.mask(pre, -1)
    base = ablfl.astype(object).eq("Y").reindex(nominal.index, fill_value=False)
    text[base.to_numpy(dtype=bool)] = "BASELINE"
    n = n.mask(base, 0)
    return pd.Series(text, index=nominal.index, dtype=object), n


def derive_var_anrind(aval: pd.Series, lo: pd.Series, hi: pd.Series) -> pd.Series:
    """ANRIND: LOW (< ANRLO), HIGH (> ANRHI), NORMAL otherwise; missing when AVAL or both limits are."""
    v = pd.to_numeric(aval, errors="coerce")
    lo = pd.to_numeric(lo, errors="coerce")
    hi = pd.to_numeric(hi, errors="coerce")
    out = pd.Series("NORMAL", index=aval.index, dtype=object)
    out[v < lo] = "LOW"
    out[v > hi] = "HIGH"
    return out.where(v.notna() & (lo.notna() | hi.notna()), None)


def derive_var_bnrind(df: pd.DataFrame, keys: Sequence[str] = ("USUBJID", "PARAMCD")) -> pd.Series:
    """BNRIND: the ANRIND of the baseline record (ABLFL = Y) of the subject and parameter (the
    first such record when there are several); missing when the key has no baseline record.

    The keys are factorised to integer codes (missing matches missing, as in a pandas merge) and
    looked up, without a merge of every record's key columns (issue 15).
    """
    n = len(df)
    # one code space per key column over all records (missing -> -1: missing matches missing)
    key = equality_keys([np.asarray(pd.factorize(df[k])[0], dtype=np.int64) for k in keys]) if n else np.zeros(0, dtype=np.int64)
    is_base = np.asarray(df["ABLFL"].astype(object).eq("Y"), dtype=bool)
    anrind = df["ANRIND"].to_numpy(dtype=object)
    out = np.full(n, np.nan, dtype=object)
    rows = np.flatnonzero(is_base)
    if rows.size:
        uniq, first = np.unique(key[rows], return_index=True)  # first baseline record per key
        j = np.minimum(np.searchsorted(uniq, key), uniq.size - 1)
        hit = uniq[j] == key
        out[hit] = anrind[rows[first[j[hit]]]]
    return pd.Series(out, index=df.index, dtype=object)


def _adlb_conventions(adlb: pd.DataFrame, opts: ConventionOptions, names: Mapping[str, str]) -> pd.DataFrame:
    out = adlb.copy(deep=False)  # copy-on-write: the new variables only; the records are shared (issue 15)
    out["PARAM"], out["PARAMN"] = derive_vars_param(out["PARAMCD"], out.get("AVALU"), names)
    if "ADY" in out and "ABLFL" in out:
        out["AVISIT"], out["AVISITN"] = derive_vars_avisit(out["ADY"], out["ABLFL"], opts.visit_interval_days,
                                                           opts.cycle_length_days)
    if {"AVAL", "ANRLO", "ANRHI"} <= set(out):
        out["ANRIND"] = derive_var_anrind(out["AVAL"], out["ANRLO"], out["ANRHI"])
        if "ABLFL" in out:
            out["BNRIND"] = derive_var_bnrind(out)
    for var in ("ATOXGR", "BTOXGR"):
        if var in out:
            out[f"{var}N"] = derive_var_toxgrn(out[var])
    return out


def derive_var_toxgrn(grade: pd.Series) -> pd.Series:
    """ATOXGRN/BTOXGRN: the grade as a nullable float (``Float64``, missing NA). A grade already
    held so (ADLB's, missing as NA only) is the value itself: shared, not copied (issue 15: two
    columns of 13 M lab records at 100,000 subjects, 240 MB)."""
    arr = grade.array
    if isinstance(arr, pd.arrays.FloatingArray) and arr.dtype == "Float64" and not np.isnan(arr._data[~arr._mask]).any():
        return grade.copy(deep=False)
    return pd.to_numeric(grade, errors="coerce").astype("Float64")


def derive_vars_adam_conventions(adam: Mapping[str, pd.DataFrame], dm: pd.DataFrame | None,
                                 regimen_label: str, opts: ConventionOptions = ConventionOptions(),
                                 lab_names: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """The datasets with the ADaM IG variables above added (inputs are not modified).

    ADSL TRT01P/TRT01A, AGEGR1 and BDS PARAMN that a dataset already carries are kept."""
    out = dict(adam)
    if "adsl" in out:
        adsl = out["adsl"].copy(deep=False)
        trt = derive_vars_trt01(adsl, dm, regimen_label)
        for var in ("TRT01P", "TRT01A"):  # a step that derived them already (two-arm trials) wins
            if var not in adsl:
                adsl[var] = trt[var]
        if "AGE" in adsl and "AGEGR1" not in adsl:
            adsl["AGEGR1"], adsl["AGEGR1N"] = derive_var_agegr1(adsl["AGE"], opts.age_groups)
        out["adsl"] = adsl
    if "adlb" in out and "PARAMCD" in out["adlb"]:
        out["adlb"] = _adlb_conventions(out["adlb"], opts, lab_names or {})
    if "adae" in out and "ATOXGR" in out["adae"]:
        adae = out["adae"].copy(deep=False)
        adae["ATOXGRN"] = pd.to_numeric(adae["ATOXGR"], errors="coerce").astype("Float64")
        out["adae"] = adae
    for name in ("adtte", "adrs"):
        if name in out and "PARAMCD" in out[name]:
            if "PARAMN" in out[name]:
                continue
            df = out[name].copy(deep=False)
            order = {c: i + 1 for i, c in enumerate(pd.unique(df["PARAMCD"].astype(object).dropna()))}
            df["PARAMN"] = df["PARAMCD"].astype(object).map(order).astype("Int64")
            out[name] = df
    return out
