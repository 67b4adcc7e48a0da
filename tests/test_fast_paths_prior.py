"""Lean paths of the prior-therapy step (issue 15) against the code they replaced.

Each ``_old_*`` function is the first release's pandas version, kept here as the oracle: the new
code must give the same frame (values, dtypes, order) on random input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.derive.drugs import DrugDictionary
from mmtrial.derive.eligibility import EligibilityRule, derive_eligibility
from mmtrial.derive.refractory import compute_term
from mmtrial.tables.baseline import DEFAULT_LABS, derive_baseline_lab_values
from support.sweeps import examples


def _old_baseline_lab_values(lb, adsl, labs=DEFAULT_LABS):
    out = pd.DataFrame({"USUBJID": adsl["USUBJID"].astype("string").to_numpy()})
    if lb is None or len(lb) == 0 or "LBSTRESN" not in lb:
        for lab in labs:
            out[f"BL_{lab.testcd}"] = np.nan
        return out
    testcd = lb["LBTESTCD"].astype("string").str.upper()
    wanted = testcd.isin([lab.testcd for lab in labs]).fillna(False).to_numpy()
    x = lb.loc[wanted, ["USUBJID", "LBTESTCD", "LBSTRESN", "LBDT", *(["LBSPEC"] if "LBSPEC" in lb else [])]]
    x["USUBJID"] = x["USUBJID"].astype("string")
    x["LBTESTCD"] = testcd[wanted]
    x["SPEC"] = x["LBSPEC"].astype("string").str.upper() if "LBSPEC" in x else pd.NA
    x["VAL"] = pd.to_numeric(x["LBSTRESN"], errors="coerce")
    ref = pd.Series(pd.to_datetime(adsl["TRTSDT"]).to_numpy(), index=adsl["USUBJID"].astype("string"))
    ref = ref[~ref.index.duplicated()]
    codes, subjects = pd.factorize(x["USUBJID"])
    per_subject = pd.Series(subjects).map(ref)
    x["REF"] = pd.Series(per_subject.array.take(codes, allow_fill=True), index=x.index)
    x = x.loc[x["VAL"].notna() & (pd.to_datetime(x["LBDT"]) <= x["REF"]).fillna(False)]
    for lab in labs:
        sel = x["LBTESTCD"].eq(lab.testcd)
        if lab.spec is not None:
            sel &= x["SPEC"].eq(lab.spec).fillna(False)
        b = x.loc[sel].sort_values(["USUBJID", "LBDT"], kind="stable").drop_duplicates("USUBJID", keep="last")
        out[f"BL_{lab.testcd}"] = out["USUBJID"].map(b.set_index("USUBJID")["VAL"]).astype(float)
    return out


DICT = DrugDictionary.load()

_TESTS = ["HGB", "hgb", "PLAT", "NEUT", "CREAT", "SODIUM", "MPROTEIN", "ALB", None]
_SPECS = ["SERUM", "serum", "URINE", None]
_SUBJ = ["S1", "S2", "S3", "S4", None]


@st.composite
def _labs(draw):
    n = draw(st.integers(0, 40))
    rows = draw(st.lists(st.tuples(st.sampled_from(_SUBJ), st.sampled_from(_TESTS), st.sampled_from(_SPECS),
                                   st.one_of(st.none(), st.floats(0, 50, allow_nan=False)),
                                   st.one_of(st.none(), st.integers(0, 12))), min_size=n, max_size=n))
    lb = pd.DataFrame({
        "USUBJID": pd.Series([r[0] for r in rows], dtype="str"),
        "LBTESTCD": pd.Series([r[1] for r in rows], dtype="str"),
        "LBSPEC": pd.Series([r[2] for r in rows], dtype="str"),
        "LBSTRESN": pd.Series([np.nan if r[3] is None else r[3] for r in rows], dtype=float),
        "LBDT": pd.to_datetime(pd.Series([None if r[4] is None else f"2019-01-{r[4] + 1:02d}" for r in rows],
                                         dtype=object)),
    })
    if draw(st.booleans()):
        lb = lb.drop(columns="LBSPEC")
    adsl = pd.DataFrame({"USUBJID": ["S1", "S2", "S3", "S5"],
                         "TRTSDT": pd.to_datetime(["2019-01-08", None, "2019-01-13", "2019-01-01"])})
    return lb, adsl


@settings(max_examples=examples(6, 300), deadline=None)
@given(_labs())
def test_baseline_lab_values_equal_the_pandas_version(case):
    lb, adsl = case
    pd.testing.assert_frame_equal(derive_baseline_lab_values(lb, adsl), _old_baseline_lab_values(lb, adsl))


def test_baseline_lab_value_is_the_last_before_first_dose():
    # hand-worked: HGB on days 1, 5 (two records, the later row wins), 9; first dose day 8 -> 11.0;
    # the value after first dose (day 9) and the urine M-protein are not baseline
    lb = pd.DataFrame({
        "USUBJID": ["S1"] * 5, "LBTESTCD": ["HGB", "HGB", "HGB", "HGB", "MPROTEIN"],
        "LBSPEC": ["BLOOD", "BLOOD", "BLOOD", "BLOOD", "URINE"], "LBSTRESN": [10.0, 10.5, 11.0, 12.0, 3.0],
        "LBDT": pd.to_datetime(["2019-01-01", "2019-01-05", "2019-01-05", "2019-01-09", "2019-01-02"]),
    })
    adsl = pd.DataFrame({"USUBJID": ["S1"], "TRTSDT": pd.to_datetime(["2019-01-08"])})
    got = derive_baseline_lab_values(lb, adsl).iloc[0]
    assert got["BL_HGB"] == 11.0
    assert np.isnan(got["BL_MPROTEIN"])


def _old_eligibility(subjects, status, *, dictionary, rule):
    out = subjects[["USUBJID"]].copy()
    for prefix, crits, flag in (("ELIG", rule.criteria, "ELIGFL"), ("LABEL", rule.label_population, "LABELFL")):
        allok = pd.Series(True, index=subjects.index)
        for c in crits:
            ok = pd.Series(True, index=subjects.index)
            for t in c.terms:
                ok &= compute_term(t, status, subjects, dictionary)
            out[f"{prefix}_{c.id}"] = np.where(ok, "Y", "N")
            allok &= ok
        out[flag] = np.where(allok, "Y", "N")
    return out


_DRUGS = ["bortezomib", "carfilzomib", "lenalidomide", "pomalidomide", "daratumumab", "melphalan",
          "dexamethasone", "unknownib", None]


@st.composite
def _status(draw):
    integer = draw(st.booleans())
    ids = [1, 2, 3, 4] if integer else ["S1", "S2", "S3", "S4"]
    rows = draw(st.lists(st.tuples(st.sampled_from([*ids, ids[0] if integer else None]), st.sampled_from(_DRUGS),
                                   st.sampled_from("YN"), st.sampled_from("YN")), max_size=30))
    status = pd.DataFrame(rows, columns=["USUBJID", "DRUG", "EXPFL", "REFFL"])
    if not integer:
        status["USUBJID"] = status["USUBJID"].astype("str")
    subj = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=5))  # duplicates allowed
    subjects = pd.DataFrame({"USUBJID": subj, "NLINES": draw(st.integers(0, 6)), "LSTREFFL": draw(st.sampled_from("YN")),
                             "MEASFL": draw(st.sampled_from("YN"))})
    return subjects, status


@settings(max_examples=examples(3, 300), deadline=None)  # the term-by-term oracle costs about 0.3 s an example
@given(_status())
def test_eligibility_equals_the_term_by_term_version(case):
    # STORM's criteria and label population (every term kind: drugs, classes, unions, counts,
    # last line, lines, flag) on random status tables, text or integer subject ids
    subjects, status = case
    rule = EligibilityRule()
    pd.testing.assert_frame_equal(derive_eligibility(subjects, status, dictionary=DICT, rule=rule),
                                  _old_eligibility(subjects, status, dictionary=DICT, rule=rule))
