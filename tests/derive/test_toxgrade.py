"""CTCAE v5.0 laboratory grading (mmtrial.derive.toxgrade).

Expected values: CTCAE v5.0 Excel, sheet "CTCAE v5.0 Clean Copy", as verified in
../shared/reference/domain.md section 3 (tag C). Ranges read "<upper - lower": value < upper and
>= lower. Each case probes both sides of a threshold (admiral's test-derive_var_atoxgr.R style).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmtrial.derive.toxgrade import (
    AdlbOptions,
    GradingCriteria,
    GradingPolicy,
    compute_toxgrade,
    derive_adlb,
    derive_var_atoxgr,
)
from mmtrial.sdtm.issues import StudyInputError
from mmtrial.sdtm.units import UnitTable, normalise_unit

CRIT = GradingCriteria.load()
T = CRIT.by_paramcd()


def grade(paramcd, values, *, lln=np.nan, uln=np.nan, base=np.nan, unit=None, policy=None):
    v = np.asarray(values, dtype=float)
    n = v.size
    return compute_toxgrade(v, term=T[paramcd], lln=np.full(n, lln), uln=np.full(n, uln),
                            base=np.full(n, base), unit=unit, policy=policy or GradingPolicy()).tolist()


def test_criteria_file_is_ctcae_v5_with_seven_terms_and_verbatim_text():
    # CTCAE v5.0 sheet: Platelet count decreased grade 4 "<25,000/mm3; <25.0 x 10e9 /L"
    assert CRIT.version == "5.0"
    assert set(T) == {"PLAT", "NEUT", "HGB", "WBC", "LYM", "SODIUM", "CREAT"}
    g4 = next(g for g in T["PLAT"].grades if g.grade == 4)
    assert g4.text == "<25,000/mm3; <25.0 x 10e9 /L"
    assert T["HGB"].meddra_code == "10002272"
    anemia4 = next(g for g in T["HGB"].grades if g.grade == 4)
    assert anemia4.gradable_from_lab is False


# CTCAE v5.0 Platelet count decreased: G1 <LLN-75.0; G2 <75.0-50.0; G3 <50.0-25.0; G4 <25.0 x10^9/L
@pytest.mark.parametrize("value,expected", [
    (150.0, 0), (149.9, 1), (75.0, 1), (74.9, 2), (50.0, 2), (49.9, 3), (25.0, 3), (24.9, 4), (0.0, 4),
])
def test_atoxgr_platelets_boundaries(value, expected):
    assert grade("PLAT", [value], lln=150.0) == [expected]


# CTCAE v5.0 Neutrophil count decreased: G1 <LLN-1.5; G2 <1.5-1.0; G3 <1.0-0.5; G4 <0.5 x10^9/L
@pytest.mark.parametrize("value,expected", [
    (2.0, 0), (1.99, 1), (1.5, 1), (1.49, 2), (1.0, 2), (0.99, 3), (0.5, 3), (0.49, 4),
])
def test_atoxgr_neutrophils_boundaries(value, expected):
    assert grade("NEUT", [value], lln=2.0) == [expected]


# CTCAE v5.0 Anemia: G1 <LLN-10.0; G2 <10.0-8.0; G3 <8.0 g/dL; G4 life-threatening (clinical only)
@pytest.mark.parametrize("value,expected", [
    (12.0, 0), (11.9, 1), (10.0, 1), (9.9, 2), (8.0, 2), (7.9, 3), (3.0, 3),
])
def test_atoxgr_anemia_g_dl_boundaries_and_no_lab_grade_4(value, expected):
    assert grade("HGB", [value], lln=12.0) == [expected]


# Same thresholds printed by CTCAE in g/L (<100, <80) and mmol/L (<6.2, <4.9)
@pytest.mark.parametrize("unit,lln,value,expected", [
    ("g/L", 120.0, 100.0, 1), ("g/L", 120.0, 99.0, 2), ("g/L", 120.0, 80.0, 2), ("g/L", 120.0, 79.0, 3),
    ("mmol/L", 7.4, 6.2, 1), ("mmol/L", 7.4, 6.1, 2), ("mmol/L", 7.4, 4.9, 2), ("mmol/L", 7.4, 4.8, 3),
])
def test_atoxgr_anemia_alternative_units(unit, lln, value, expected):
    assert grade("HGB", [value], lln=lln, unit=unit) == [expected]


# CTCAE v5.0 White blood cell decreased: G1 <LLN-3.0; G2 <3.0-2.0; G3 <2.0-1.0; G4 <1.0
@pytest.mark.parametrize("value,expected", [(3.0, 1), (2.9, 2), (2.0, 2), (1.9, 3), (1.0, 3), (0.9, 4)])
def test_atoxgr_wbc_boundaries(value, expected):
    assert grade("WBC", [value], lln=4.0) == [expected]


# CTCAE v5.0 Lymphocyte count decreased: G1 <LLN-0.8; G2 <0.8-0.5; G3 <0.5-0.2; G4 <0.2
@pytest.mark.parametrize("value,expected", [(0.8, 1), (0.79, 2), (0.5, 2), (0.49, 3), (0.2, 3), (0.19, 4)])
def test_atoxgr_lymphocytes_boundaries(value, expected):
    assert grade("LYM", [value], lln=1.0) == [expected]


# CTCAE v5.0 Hyponatremia: G1 <LLN-130; G2 125-129 asymptomatic; G3 125-129 symptomatic or
# 120-124; G4 <120 mmol/L. Default policy: symptom status unknown -> 125-129 is grade 2.
@pytest.mark.parametrize("value,expected", [
    (135.0, 0), (134.9, 1), (130.0, 1), (129.9, 2), (125.0, 2), (124.9, 3), (120.0, 3), (119.9, 4),
])
def test_atoxgr_hyponatremia_boundaries_asymptomatic_policy(value, expected):
    assert grade("SODIUM", [value], lln=135.0) == [expected]


def test_atoxgr_hyponatremia_125_129_is_grade_3_when_symptomatic_assumed():
    # CTCAE v5.0 grade 3 arm "125-129 mmol/L symptomatic"
    pol = GradingPolicy(assume=frozenset({"symptomatic"}))
    assert grade("SODIUM", [130.0, 129.9, 125.0, 124.9], lln=135.0, policy=pol) == [1, 3, 3, 3]


# CTCAE v5.0 Creatinine increased: G1 >ULN-1.5xULN; G2 >1.5-3.0xULN; G3 >3.0-6.0xULN; G4 >6.0xULN
@pytest.mark.parametrize("value,expected", [
    (1.2, 0), (1.21, 1), (1.8, 1), (1.81, 2), (3.6, 2), (3.61, 3), (7.2, 3), (7.21, 4),
])
def test_atoxgr_creatinine_uln_arm_boundaries(value, expected):
    assert grade("CREAT", [value], uln=1.2) == [expected]


# CTCAE v5.0 Creatinine increased G2 ">1.5 - 3.0 x baseline", G3 ">3.0 x baseline"
def test_atoxgr_creatinine_baseline_arm_policies():
    # baseline 0.6, ULN 1.2: 1.0 is > 1.5 x baseline but within the normal range
    assert grade("CREAT", [1.0], uln=1.2, base=0.6, policy=GradingPolicy(creatinine_baseline_arm="any")) == [2]
    assert grade("CREAT", [1.0], uln=1.2, base=0.6) == [0]  # default above_uln
    # baseline 0.8: 2.41 > 3.0 x 0.8 = 2.4 (grade 3 by baseline) while 2.41 = 2.0 x ULN (grade 2)
    assert grade("CREAT", [2.41, 2.40], uln=1.2, base=0.8) == [3, 2]
    assert grade("CREAT", [2.41], uln=1.2, base=0.8, policy=GradingPolicy(creatinine_baseline_arm="off")) == [2]
    # 1.21 > ULN and > 1.5 x 0.8 = 1.2 -> grade 2 by the baseline arm
    assert grade("CREAT", [1.21], uln=1.2, base=0.8) == [2]
    # no baseline: graded by the ULN arms only
    assert grade("CREAT", [1.21], uln=1.2) == [1]


def test_atoxgr_missing_lln_leaves_grade_missing_unless_an_absolute_bound_decides():
    # grade 1 needs the LLN; 60 x10^9/L is grade 2 whatever the LLN
    assert np.isnan(grade("PLAT", [100.0])[0])
    assert grade("PLAT", [60.0]) == [2]
    assert np.isnan(grade("PLAT", [np.nan], lln=150.0)[0])


def test_atoxgr_platelets_per_mm3_alternative_unit():
    # CTCAE prints platelets as /mm3 too: <75,000 grade 2
    assert grade("PLAT", [75000.0, 74999.0], lln=150000.0, unit="/mm3") == [1, 2]


def test_ctcae_alternative_unit_thresholds_agree_with_default_unit_after_conversion():
    # The reader converts with data/units.toml; CTCAE rounds its printed alternative-unit bounds
    # (Hgb 6.2 and 4.9 mmol/L = 9.99 and 7.90 g/dL), so agreement is within 1.5%.
    units = UnitTable.load().frame
    checked = 0
    for t in CRIT.terms:
        for g in t.grades:
            for arm in g.any_of:
                for alt_unit, alt_value in arm.alt_values:
                    key = normalise_unit(pd.Series([alt_unit])).iloc[0]
                    row = units.loc[(units["LBTESTCD"] == t.paramcd) & (units["UNIT_KEY"] == key)]
                    assert len(row) >= 1, (t.paramcd, alt_unit)
                    converted = alt_value * float(row["FACTOR"].iloc[0])
                    assert converted == pytest.approx(arm.value, rel=0.015), (t.term, g.grade, alt_unit)
                    checked += 1
    assert checked >= 20


def test_grades_in_g_per_l_equal_grades_after_conversion_to_g_dl():
    # 1 g/L = 0.1 g/dL (units.toml): same grade either way, including at the bounds
    gl = np.array([130.0, 120.0, 100.0, 99.0, 80.0, 79.0, 60.0])
    assert grade("HGB", gl, lln=120.0, unit="g/L") == grade("HGB", gl * 0.1, lln=12.0)


@given(st.lists(st.floats(0, 500, allow_nan=False), min_size=2, max_size=30))
def test_low_direction_grade_never_increases_with_value(values):
    v = np.sort(np.asarray(values))
    g = grade("PLAT", v, lln=150.0)
    assert all(a >= b for a, b in itertools.pairwise(g))


def _adlb_input(rows):
    df = pd.DataFrame(rows, columns=["USUBJID", "LBTESTCD", "LBDT", "LBSTRESN", "LBSTRESU", "LBSTNRLO", "LBSTNRHI"])
    df["LBDT"] = pd.to_datetime(df["LBDT"])
    df["ROWNUM"] = np.arange(1, len(df) + 1)
    return df


ADSL = pd.DataFrame({"USUBJID": ["A", "B"], "TRTSDT": pd.to_datetime(["2020-01-10", "2020-01-10"]),
                     "TRTEDT": pd.to_datetime(["2020-03-01", "2020-03-01"])})


def test_adlb_baseline_is_last_value_on_or_before_first_dose_and_graded_against_normal_range():
    lb = _adlb_input([
        ("A", "CREAT", "2020-01-01", 1.0, "mg/dL", 0.6, 1.2),
        ("A", "CREAT", "2020-01-10", 2.0, "mg/dL", 0.6, 1.2),  # baseline (day of first dose)
        ("A", "CREAT", "2020-02-01", 2.0, "mg/dL", 0.6, 1.2),
        ("A", "CREAT", "2020-02-08", 6.1, "mg/dL", 0.6, 1.2),
    ])
    out = derive_adlb(lb, ADSL)
    assert out["ABLFL"].tolist() == ["", "Y", "", ""]
    assert out["BASE"].tolist() == [2.0] * 4
    # baseline 2.0 = 1.67 x ULN -> grade 2 against the normal range (not 0 against itself)
    assert out.loc[out["ABLFL"] == "Y", "ATOXGR"].tolist() == [2]
    assert out["BTOXGR"].tolist() == [2, 2, 2, 2]
    # 6.1 = 3.05 x baseline -> grade 3; 2.0 post-baseline = 1.67 x ULN -> grade 2
    assert out["ATOXGR"].tolist()[2:] == [2, 3]
    assert out["WGRHIFL"].tolist() == ["", "", "", "Y"]


def test_adlb_worst_flag_earliest_of_equal_grades_and_only_within_window():
    lb = _adlb_input([
        ("B", "PLAT", "2020-01-09", 200.0, "10^9/L", 150, 400),
        ("B", "PLAT", "2020-01-20", 40.0, "10^9/L", 150, 400),
        ("B", "PLAT", "2020-01-27", 30.0, "10^9/L", 150, 400),   # same grade 3, later
        ("B", "PLAT", "2020-04-15", 10.0, "10^9/L", 150, 400),   # > TRTEDT + 30: not on treatment
    ])
    out = derive_adlb(lb, ADSL, options=AdlbOptions(on_treatment_window_days=30))
    assert out["ATOXGR"].tolist() == [0, 3, 3, 4]
    assert out["WGRLOFL"].tolist() == ["", "Y", "", ""]
    assert out["ONTRTFL"].tolist() == ["", "Y", "Y", ""]


def test_adlb_unit_ctcae_does_not_print_is_an_error_naming_row_and_subject():
    lb = _adlb_input([("A", "HGB", "2020-02-01", 9.0, "mg/mL", 12, 16)])
    with pytest.raises(StudyInputError) as e:
        derive_adlb(lb, ADSL)
    msg = str(e.value)
    assert "row 1" in msg and "USUBJID A" in msg and "mg/mL" in msg


def test_atoxgr_not_graded_tests_keep_missing_grade():
    lb = pd.DataFrame({"USUBJID": ["A"], "PARAMCD": ["MPROTEIN"], "AVAL": [2.0], "AVALU": ["g/dL"],
                       "ANRLO": [np.nan], "ANRHI": [np.nan], "BASE": [np.nan], "ROWNUM": [1]})
    out = derive_var_atoxgr(lb)
    assert out["ATOXGR"].isna().all() and out["ATOXDSCL"].isna().all()


def _lexsort_last(key, order, tie, mask):
    expected = np.zeros(len(key), dtype=bool)
    idx = np.flatnonzero(mask)
    if idx.size:
        s = idx[np.lexsort((tie[idx], order[idx], key[idx]))]
        expected[s[np.r_[key[s][1:] != key[s][:-1], True]]] = True
    return expected.tolist()


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([-1.0, 0.0, 2.0, 3.5]),
                          st.integers(-10**12, 10**12), st.booleans()), min_size=1, max_size=30))
def test_last_per_group_packed_sort_picks_the_rows_of_lexsort(rows):
    # reference: numpy.lexsort over the three keys (the sort _last_per_group used before the
    # keys were packed into one int64). Integer-valued keys with small ranges take the packed
    # sort; a non-integer order (3.5) or ranges beyond 63 bits take lexsort itself.
    from mmtrial.derive._groups import pack_keys
    from mmtrial.derive.toxgrade import _last_per_group

    key, order, tie, mask = (np.array(c) for c in zip(*rows, strict=True))
    small = tie % 1000
    assert pack_keys([key, np.floor(order), small]) is not None
    assert _last_per_group(key, np.floor(order), small, mask).tolist() == _lexsort_last(key, np.floor(order), small, mask)
    assert _last_per_group(key, order, tie, mask).tolist() == _lexsort_last(key, order, tie, mask)
