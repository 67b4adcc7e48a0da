"""Plausibility rules as data (data/plausibility.toml) and the simulator's own output against them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mmtrial.protocol.model import Protocol
from mmtrial.protocol.regimen import Regimen
from mmtrial.sdtm import ReadOptions, load_study
from mmtrial.sdtm.check import compute_max_planned_mg, load_plausibility
from mmtrial.sdtm.dates import compute_iso_dates


def test_every_rule_has_a_rationale_in_the_data_file():
    cfg = load_plausibility()
    for r in cfg["lab_range"]:
        assert r["why"] and r["min"] < r["max"]
    for r in cfg["after_death"]:
        assert r["severity"] in ("error", "warning")
    assert cfg["age"]["error_min"] <= cfg["age"]["warning_min"] < cfg["age"]["warning_max"] <= cfg["age"]["error_max"]


@pytest.mark.parametrize(("value", "year"), [("2999-01-01", 2999), ("1066-10-14", 1066), ("9999-12-31", 9999),
                                             ("0001-01-01", 1)])
def test_dates_outside_the_nanosecond_range_are_flagged_never_wrapped(value, year):
    r = compute_iso_dates(pd.Series([value]))
    assert pd.isna(r.dates.iloc[0]) and bool(r.out_of_range.iloc[0]) and not bool(r.invalid.iloc[0])
    assert r.days.iloc[0].year == year  # datetime64[s] holds the calendar date as given


def test_dates_inside_the_range_keep_nanosecond_dtype():
    r = compute_iso_dates(pd.Series(["1678-01-01", "2261-12-31", "2019-03"]))
    assert str(r.dates.dtype) == "datetime64[ns]" and not r.out_of_range.any()
    assert [d.date() for d in r.dates] == [dt.date(1678, 1, 1), dt.date(2261, 12, 31), dt.date(2019, 3, 1)]


def test_date_window_defaults_to_1900_and_one_year_ahead():
    lo, hi = ReadOptions().date_window()
    assert lo == dt.date(1900, 1, 1)
    assert 365 <= (hi - dt.date.today()).days <= 366


def _regimen(unit: str, dose: float, step_up: list | None = None) -> Protocol:
    base = Protocol.load(None)
    reg = Regimen(cycle_length_days=28, study_drug="DRUGX",
                  drugs=[{"name": "DRUGX", "dose": dose, "unit": unit, "cycle_days": [1, 8, 15],
                          "step_up": step_up or []}])
    return base.model_copy(update={"regimen": reg})


@pytest.mark.parametrize(("unit", "dose", "expected_mg"), [
    ("mg", 80.0, 80.0),            # as planned
    ("mg/m2", 1.3, 1.3 * 3.0),     # bortezomib 1.3 mg/m2 at the 3.0 m2 ceiling
    ("mg/kg", 16.0, 16.0 * 250.0),  # daratumumab 16 mg/kg at the 250 kg ceiling
])
def test_largest_planned_dose_in_mg_by_unit(unit, dose, expected_mg):
    assert compute_max_planned_mg(_regimen(unit, dose)) == {"DRUGX": pytest.approx(expected_mg)}


def test_step_up_doses_count_towards_the_largest_planned_dose():
    proto = _regimen("mg", 0.3, step_up=[{"cycle": 1, "day": 1, "dose": 0.06}, {"cycle": 1, "day": 4, "dose": 0.9}])
    assert compute_max_planned_mg(proto) == {"DRUGX": pytest.approx(0.9)}


def test_mg_per_m2_drug_dosed_in_mg_is_compared_in_mg(tmp_path):
    from mmtrial.sdtm.write import write_study_folder
    from support.sdtm_study import valid_raw_domains

    raw = valid_raw_domains()
    raw["ex"]["EXTRT"] = "DRUGX"
    raw["ex"]["EXDOSE"] = [2.4, 39.0, 40.0]  # limit 10 x 1.3 mg/m2 x 3.0 m2 = 39 mg
    _, issues = load_study(write_study_folder(tmp_path / "s", raw), protocol=_regimen("mg/m2", 1.3))
    assert [(i.rule, i.row) for i in issues if i.rule == "EXDOSE_RANGE"] == [("EXDOSE_RANGE", 3)]


def test_simulated_study_passes_every_error_check(tmp_path):
    # issue 11: the simulator produced haemoglobin down to -39.7 g/dL; labs now have a soft floor
    from mmtrial.simulate import simulate_study, write_study

    sim = simulate_study(n=150, seed=11)
    write_study(sim, tmp_path / "s", fmt="csv")
    study, issues = load_study(tmp_path / "s", protocol=Protocol.load(None))
    errors = [i.message() for i in issues if i.severity == "error"]
    assert study is not None and not errors, errors[:5]
    lb = study["lb"]
    hgb = lb.loc[lb["LBTESTCD"] == "HGB", "LBSTRESN"]
    na = lb.loc[lb["LBTESTCD"] == "SODIUM", "LBSTRESN"]
    assert hgb.min() >= 4.5 and na.min() >= 110
    # warnings left are the ex/ds records the treatment model dates after death (see docs)
    assert {i.rule for i in issues if i.severity == "warning"} <= {"AFTER_DEATH", "DATE_IMPUTED"}
    assert np.isfinite(lb["LBSTRESN"].dropna()).all()
