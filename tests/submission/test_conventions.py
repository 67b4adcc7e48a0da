"""ADaM IG conventions (derive/conventions.py): values worked by hand from the ADaMIG v1.3
definitions (AGEGR1 groups, ANRIND against ANRLO/ANRHI, BNRIND = baseline ANRIND, TRT01P/TRT01A)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.derive.conventions import (
    derive_var_agegr1,
    derive_var_anrind,
    derive_var_bnrind,
    derive_var_toxgrn,
    derive_vars_avisit,
    derive_vars_param,
    derive_vars_trt01,
)
from support.sweeps import examples


def test_agegr1_boundaries():
    age = pd.Series([64.0, 65.0, 74.0, 75.0, np.nan, 18.0])
    text, n = derive_var_agegr1(age, (65, 75))
    assert text.tolist()[:4] == ["<65", "65-74", "65-74", ">=75"]
    assert pd.isna(text.iloc[4]) and text.iloc[5] == "<65"
    assert n.tolist()[:4] == [1, 2, 2, 3] and pd.isna(n.iloc[4])


def test_anrind_and_bnrind():
    df = pd.DataFrame({
        "USUBJID": ["A", "A", "A", "B", "B"], "PARAMCD": ["PLAT"] * 5,
        "AVAL": [140.0, 150.0, 401.0, np.nan, 200.0], "ANRLO": [150.0] * 5, "ANRHI": [400.0] * 5,
        "ABLFL": ["Y", None, None, None, "Y"],
    })
    df["ANRIND"] = derive_var_anrind(df["AVAL"], df["ANRLO"], df["ANRHI"])
    # 140 < 150 LOW; 150 is not below the lower limit -> NORMAL; 401 > 400 HIGH; missing value -> missing
    assert df["ANRIND"].tolist()[:3] == ["LOW", "NORMAL", "HIGH"] and pd.isna(df["ANRIND"].iloc[3])
    assert derive_var_bnrind(df).tolist() == ["LOW", "LOW", "LOW", "NORMAL", "NORMAL"]


def test_avisit_windows():
    ady = pd.Series([-3.0, 1.0, 8.0, 11.0, 12.0, 29.0, 57.0])
    ablfl = pd.Series(["Y", None, None, None, None, None, None])
    label, n = derive_vars_avisit(ady, ablfl, interval=7, cycle_length=28)
    # day 11 -> nearest nominal day 8 (|11-8| = 3 < 4); day 12 -> day 15; day 29 = cycle 2 day 1
    assert label.tolist() == ["BASELINE", "CYCLE 1 DAY 1", "CYCLE 1 DAY 8", "CYCLE 1 DAY 8", "CYCLE 1 DAY 15",
                              "CYCLE 2 DAY 1", "CYCLE 3 DAY 1"]
    assert n.tolist() == [0, 1, 8, 8, 15, 29, 57]



@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-30, 400)), max_size=40), st.sampled_from([None, 21, 28]))
def test_avisit_labels_by_record_and_shared(days, cycle_length):
    """AVISIT equals the label worked out record by record (nearest nominal day 1 + 7k; CYCLE c
    DAY d from the cycle length), and records of one visit share one text object (issue 15:
    one object per visit, not per record)."""
    ady = pd.Series([np.nan if d is None else float(d) for d in days], dtype=float)
    ablfl = pd.Series([None] * len(days), dtype=object)
    label, n = derive_vars_avisit(ady, ablfl, interval=7, cycle_length=cycle_length)
    for d, lab, num in zip(days, label, n, strict=True):
        if d is None:
            assert pd.isna(lab) and pd.isna(num)
        elif d < 1:
            assert lab == "SCREENING" and num == -1
        else:
            nominal = int(np.round((d - 1) / 7)) * 7 + 1
            want = (f"CYCLE {(nominal - 1) // cycle_length + 1} DAY {(nominal - 1) % cycle_length + 1}"
                    if cycle_length else f"DAY {nominal}")
            assert lab == want and num == nominal
    texts = [v for v in label if isinstance(v, str)]
    assert len({id(v) for v in texts}) == len(set(texts))

def test_param_names_and_order():
    param, n = derive_vars_param(pd.Series(["PLAT", "HGB", "PLAT", "XYZ"]), pd.Series(["10^9/L", "g/dL", "10^9/L", None]))
    assert param.tolist() == ["Platelets (10^9/L)", "Hemoglobin (g/dL)", "Platelets (10^9/L)", "XYZ"]
    assert n.tolist() == [1, 2, 1, 3]


_CODES = st.sampled_from(["PLAT", "HGB", "XYZ", None])
_UNITS = st.sampled_from(["10^9/L", "g/L", "", " ", None])


@settings(max_examples=examples(15, full=60), deadline=None)
@given(st.lists(st.tuples(_CODES, _UNITS), max_size=40), st.sampled_from(["str", object]))
def test_param_record_by_record(rows, dtype):
    """PARAM and PARAMN equal the rule worked out record by record (issue 15: the rule now runs
    once per distinct code and unit; 15 examples by default, 60 under --sweeps): the test's name (contract's default names, else the code),
    then " (unit)" when the unit is not blank; PARAMN = rank of the code's first appearance."""
    code = pd.Series([c for c, _ in rows], dtype=dtype)
    unit = pd.Series([u for _, u in rows], dtype=dtype)
    param, n = derive_vars_param(code, unit)
    names = {"PLAT": "Platelets", "HGB": "Hemoglobin"}
    order: dict[str, int] = {}
    for (c, u), got, num in zip(rows, param, n, strict=True):
        if c is None:
            assert pd.isna(got) and pd.isna(num)
            continue
        order.setdefault(c, len(order) + 1)
        name = names.get(c, c)
        assert got == (f"{name} ({u})" if u is not None and u.strip() else name)
        assert num == order[c]


@settings(max_examples=examples(15, full=60), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", None]), st.sampled_from(["PLAT", "HGB"]),
                          st.booleans(), st.sampled_from(["LOW", "NORMAL", "HIGH", None])), max_size=30))
def test_bnrind_record_by_record(rows):
    """BNRIND = the ANRIND of the first baseline record of the same subject and test (a missing
    subject matches a missing subject, as the merge it replaces did); missing without one
    (15 examples by default, 60 under --sweeps)."""
    df = pd.DataFrame({"USUBJID": pd.Series([r[0] for r in rows], dtype="str"),
                       "PARAMCD": pd.Series([r[1] for r in rows], dtype="str"),
                       "ABLFL": pd.Categorical(["Y" if r[2] else "" for r in rows], ["", "Y"]),
                       "ANRIND": pd.Series([r[3] for r in rows], dtype=object)})
    first: dict[tuple, object] = {}
    for s, p, b, ind in rows:
        if b:
            first.setdefault((s, p), ind)
    got = derive_var_bnrind(df)
    for (s, p, _, _), g in zip(rows, got, strict=True):
        want = first.get((s, p))
        assert (pd.isna(g) and want is None) or g == want


def test_trt01_from_dm_arms_and_safety_flag():
    adsl = pd.DataFrame({"USUBJID": ["1", "2", "3"], "SAFFL": ["Y", "Y", "N"]})
    dm = pd.DataFrame({"USUBJID": ["1", "2", "3"], "ARM": ["SVD", "VD", "VD"], "ACTARM": ["SVD", "SVD", "VD"]})
    t = derive_vars_trt01(adsl, dm, "REGIMEN")
    assert t["TRT01P"].tolist() == ["SVD", "VD", "VD"]
    assert t["TRT01A"].tolist()[:2] == ["SVD", "SVD"] and pd.isna(t["TRT01A"].iloc[2])
    t2 = derive_vars_trt01(adsl, None, "SELINEXOR + DEXAMETHASONE")
    assert t2["TRT01P"].tolist() == ["SELINEXOR + DEXAMETHASONE"] * 3


def test_existing_treatment_variables_are_kept():
    from mmtrial.derive.conventions import derive_vars_adam_conventions

    adsl = pd.DataFrame({"USUBJID": ["1"], "SAFFL": ["Y"], "AGE": [70.0], "TRT01P": ["SVD"], "TRT01A": ["VD"]})
    out = derive_vars_adam_conventions({"adsl": adsl}, None, "REGIMEN")["adsl"]
    assert out[["TRT01P", "TRT01A", "AGEGR1"]].iloc[0].tolist() == ["SVD", "VD", "65-74"]
    assert "AGEGR1" not in adsl  # the input is not modified


@settings(max_examples=examples(30, 300), deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, None, float("nan")]), max_size=12),
       kind=st.sampled_from(["Float64", "float64", "object"]))
def test_toxgrn_equals_the_former_conversion(values, kind):
    """ATOXGRN/BTOXGRN: the same values and dtype as the former ``pd.to_numeric(...).astype("Float64")``
    (the oracle) for ADLB's nullable grades, numpy floats and objects; a Float64 grade with no NaN
    value (missing only as NA, as derive_adlb makes them) is shared, not copied (issue 15)."""
    if kind == "Float64":
        data = np.array([np.nan if v is None else v for v in values], dtype=float)
        mask = np.array([v is None for v in values], dtype=bool)
        grade = pd.Series(pd.arrays.FloatingArray(data, mask), name="ATOXGR")
    else:
        grade = pd.Series(values, dtype=kind, name="ATOXGR")
    got = derive_var_toxgrn(grade)
    pd.testing.assert_series_equal(got, pd.to_numeric(grade, errors="coerce").astype("Float64"))
    if kind == "Float64" and not any(v is not None and np.isnan(v) for v in values) and values:
        assert np.shares_memory(got.array._data, grade.array._data)
