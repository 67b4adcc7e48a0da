"""Unit conversion to the contract's default units (data/units.toml)."""

from __future__ import annotations

import pandas as pd
import pytest

from mmtrial.sdtm.units import convert_lab_units


def _lb(testcd, spec, value, unit, lo=None, hi=None):
    return pd.DataFrame({"ROWNUM": [1], "USUBJID": ["S-1"], "LBTESTCD": [testcd], "LBSPEC": [spec],
                         "LBSTRESN": [value], "LBSTRESU": [unit], "LBSTNRLO": [lo], "LBSTNRHI": [hi]})


@pytest.mark.parametrize(("testcd", "spec", "value", "unit", "expected", "default"), [
    ("MPROTEIN", "SERUM", 25.0, "g/L", 2.5, "g/dL"),          # 1 g/dL = 10 g/L
    ("MPROTEIN", "URINE", 0.45, "g/24h", 450.0, "mg/24h"),    # 1 g = 1000 mg
    ("KAPPAFLC", "SERUM", 1500.0, "mg/L", 150.0, "mg/dL"),    # 1 mg/dL = 10 mg/L
    ("LAMBDFLC", "SERUM", 12.0, "mg/L", 1.2, "mg/dL"),
    ("HGB", "BLOOD", 80.0, "g/L", 8.0, "g/dL"),               # CTCAE v5.0: <80 g/L = <8.0 g/dL
    ("HGB", "BLOOD", 6.2, "mmol/L", 9.99068, "g/dL"),         # 1 mmol/L (Hb monomer) = 1.6114 g/dL
    ("PLAT", "BLOOD", 75000.0, "/mm3", 75.0, "10^9/L"),       # CTCAE: 75,000/mm3 = 75.0 x10^9/L
    ("PLAT", "BLOOD", 74.9, "10^3/uL", 74.9, "10^9/L"),
    ("NEUT", "BLOOD", 1.5, "10*9/L", 1.5, "10^9/L"),          # spelling variant
    ("CREAT", "SERUM", 88.42, "umol/L", 1.0, "mg/dL"),        # 88.42 umol/L per mg/dL
    ("SODIUM", "SERUM", 130.0, "mEq/L", 130.0, "mmol/L"),
    ("PLAT", None, 100.0, "10^9/L", 100.0, "10^9/L"),         # specimen missing: test known for one specimen
])
def test_alternative_units_convert_to_default(testcd, spec, value, unit, expected, default):
    out, issues = convert_lab_units(_lb(testcd, spec, value, unit))
    assert issues == []
    assert out.loc[0, "LBSTRESN"] == pytest.approx(expected, rel=1e-5)
    assert out.loc[0, "LBSTRESU"] == default
    assert out.loc[0, "LBSTRESN_RAW"] == value and out.loc[0, "LBSTRESU_RAW"] == unit


def test_normal_range_converted_with_the_value():
    out, _ = convert_lab_units(_lb("HGB", "BLOOD", 95.0, "g/L", lo=120.0, hi=160.0))
    assert (out.loc[0, "LBSTNRLO"], out.loc[0, "LBSTNRHI"]) == pytest.approx((12.0, 16.0))


def test_unknown_unit_of_known_test_is_an_error_and_the_row_is_kept():
    out, issues = convert_lab_units(_lb("MPROTEIN", "SERUM", 2.0, "mg/mL"))
    assert len(out) == 1 and out.loc[0, "LBSTRESN"] == 2.0
    (i,) = issues
    assert (i.rule, i.row, i.usubjid, i.value) == ("UNIT_UNKNOWN", 1, "S-1", "mg/mL")


def test_tests_outside_the_table_are_kept_as_given():
    out, issues = convert_lab_units(_lb("IRF3", "PLASMA", 5.3, "NPX"))
    assert issues == [] and out.loc[0, "LBSTRESN"] == 5.3 and out.loc[0, "LBSTRESU"] == "NPX"
