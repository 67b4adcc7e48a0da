"""The regimen model and the dose ladders (mmtrial.protocol.regimen / model).

Expected values are hand-worked from the data contract v2 ("Protocol: the regimen"): the planned
weekly dose is the dose x dosing days x 7 / cycle length (4 mg on days 1-14 of 21 = 18.67 mg/week).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mmtrial.protocol import Protocol, bundled, bundled_names
from mmtrial.protocol.regimen import OPEN_END, Regimen, RegimenDrug


def _regimen(**kw) -> Regimen:
    return Regimen.model_validate(kw)


def test_planned_weekly_dose_21_day_cycle_days_1_to_14():
    # hand-worked: 4 mg x 14 days = 56 mg per 21-day cycle; 56 x 7 / 21 = 18.666... mg/week
    r = _regimen(cycle_length_days=21, study_drug="LEN",
                 drugs=[{"name": "LEN", "dose": 4, "cycle_days": list(range(1, 15))}])
    assert r.planned_weekly_dose("LEN") == pytest.approx(56 * 7 / 21)
    assert round(r.planned_weekly_dose("LEN"), 2) == 18.67


def test_days_of_week_expands_over_the_cycle():
    # days 1 and 3 of every week: a 28-day cycle has weeks starting on days 1, 8, 15, 22
    d = RegimenDrug.model_validate({"name": "SELINEXOR", "dose_mg": 80, "days_of_week": [1, 3]})
    assert d.dose == 80  # dose_mg is accepted for dose (first-release protocols)
    assert d.days_in_cycle(28) == (1, 3, 8, 10, 15, 17, 22, 24)
    assert d.days_in_cycle(21) == (1, 3, 8, 10, 15, 17)
    assert d.days_in_cycle(10) == (1, 3, 8, 10)
    # STORM: 80 mg x 8 days x 7 / 28 = 160 mg/week
    r = _regimen(cycle_length_days=28, study_drug="SELINEXOR", drugs=[d.model_dump()])
    assert r.planned_weekly_dose("selinexor") == pytest.approx(160.0)


def test_phases_change_cycle_length_and_days():
    # BOSTON-like Vd: cycles 1-8 of 21 days (days 1, 4, 8, 11), then 35-day cycles (days 1, 8, 15, 22)
    r = _regimen(study_drug="BORTEZOMIB", phases=[
        {"cycles": [1, 8], "cycle_length_days": 21,
         "drugs": [{"name": "BORTEZOMIB", "dose": 1.3, "unit": "mg/m2", "cycle_days": [1, 4, 8, 11]}]},
        {"cycles": [9, OPEN_END], "cycle_length_days": 35,
         "drugs": [{"name": "BORTEZOMIB", "dose": 1.3, "unit": "mg/m2", "cycle_days": [1, 8, 15, 22]}]},
    ])
    assert r.cycle_length_days == 21
    s = r.schedule(10)
    assert len(s) == 8 * 4 + 2 * 4
    c9 = s[s["CYCLE"] == 9]
    # cycle 9 starts after 8 x 21 = 168 days: day 169; its day 22 is study day 169 + 21 = 190
    assert c9["CYCLEST"].unique().tolist() == [169]
    assert c9["STUDYDY"].tolist() == [169, 176, 183, 190]
    assert s.loc[s["CYCLE"] == 10, "CYCLEST"].iloc[0] == 169 + 35
    assert (s["UNIT"] == "mg/m2").all()
    # 1.3 x 4 x 7 / 21 = 1.7333 mg/m2 per week; 1.3 x 4 x 7 / 35 = 1.04
    assert r.planned_weekly_dose("BORTEZOMIB", 1) == pytest.approx(1.3 * 4 * 7 / 21)
    assert r.planned_weekly_dose("BORTEZOMIB", 9) == pytest.approx(1.04)


def test_step_up_replaces_or_adds_a_dose():
    # carfilzomib-like: 27 mg/m2 on days 1, 2, 8, 9, 15, 16 with 20 mg/m2 on cycle 1 days 1-2
    r = _regimen(cycle_length_days=28, study_drug="CFZ", drugs=[{
        "name": "CFZ", "dose": 27, "unit": "mg/m2", "route": "INTRAVENOUS", "cycle_days": [1, 2, 8, 9, 15, 16],
        "step_up": [{"cycle": 1, "day": 1, "dose": 20}, {"cycle": 1, "day": 2, "dose": 20}]}])
    s = r.schedule(2)
    c1 = s[s["CYCLE"] == 1].set_index("CYCLEDY")
    assert c1.loc[1, "DOSE"] == 20 and c1.loc[1, "STEPUP"] == "Y"
    assert c1.loc[8, "DOSE"] == 27 and c1.loc[8, "STEPUP"] == ""
    assert s.loc[s["CYCLE"] == 2, "DOSE"].eq(27).all()
    # the target dose's intensity: 27 x 6 x 7 / 28 = 40.5 mg/m2 per week
    assert r.planned_weekly_dose("CFZ") == pytest.approx(40.5)
    # a step-up on a day without a planned dose adds an administration (bispecific priming doses)
    r2 = _regimen(cycle_length_days=28, study_drug="BSAB", drugs=[{
        "name": "BSAB", "dose": 76, "route": "SUBCUTANEOUS", "cycle_days": [1, 8, 15, 22],
        "step_up": [{"cycle": 1, "day": 4, "dose": 32}]}])
    s2 = r2.schedule(1)
    assert s2["CYCLEDY"].tolist() == [1, 4, 8, 15, 22]
    assert s2.set_index("CYCLEDY").loc[4, "DOSE"] == 32


@pytest.mark.parametrize("bad,msg", [
    ({"cycle_length_days": 21, "study_drug": "A", "drugs": [{"name": "A", "dose": 1, "cycle_days": [1, 22]}]},
     "beyond the 21-day cycle"),
    ({"cycle_length_days": 21, "study_drug": "B", "drugs": [{"name": "A", "dose": 1, "cycle_days": [1]}]},
     "not one of the drugs"),
    ({"cycle_length_days": 21, "study_drug": "A", "drugs": [{"name": "A", "dose": 1}]},
     "exactly one of cycle_days or days_of_week"),
    ({"study_drug": "A", "phases": [
        {"cycles": [1, 2], "cycle_length_days": 21, "drugs": [{"name": "A", "dose": 1, "cycle_days": [1]}]},
        {"cycles": [4, 9], "cycle_length_days": 21, "drugs": [{"name": "A", "dose": 1, "cycle_days": [1]}]}]},
     "contiguous"),
    ({"cycle_length_days": 21, "study_drug": "A", "drugs": [{"name": "A", "dose": 0, "cycle_days": [1]}]},
     "greater than 0"),
])
def test_impossible_regimens_are_refused(bad, msg):
    with pytest.raises(ValidationError, match=msg):
        _regimen(**bad)


def test_storm_ladder_keeps_the_first_release_api():
    # XPOVIO label Table 1 (domain.md 1.10, C): 160 -> 100 -> 80 -> 60 mg/week
    p = Protocol.load()
    lad = p.dose_ladder
    assert [lv.level for lv in lad.levels] == [0, -1, -2, -3]
    assert [lv.weekly_mg for lv in lad.levels] == [160, 100, 80, 60]
    assert [lv.dose_mg for lv in lad.levels] == [80, 100, 80, 60]
    assert lad.levels[1].days == (1, 8, 15, 22) and lad.levels[1].days_of_week == (1,)
    assert lad.source.startswith("XPOVIO")
    assert p.ladder_for("SELINEXOR") == list(lad.levels)


def test_ladder_per_drug_with_inherited_days():
    # POMALYST Table 1: 4 -> 3 -> 2 -> 1 mg on days 1-21 of 28: weekly dose x 21 x 7 / 28 = x 5.25
    p = Protocol.load("stratus")
    steps = p.ladder_for("pomalidomide")
    assert [s.dose for s in steps] == [4, 3, 2, 1]
    assert [s.weekly_dose for s in steps] == pytest.approx([21.0, 15.75, 10.5, 5.25])
    assert steps[0].days == tuple(range(1, 22)) and steps[0].label == "4 mg days 1-21 of 28"
    # a drug without a ladder: its planned dose only (dexamethasone 40 mg x 4 x 7 / 28 = 40)
    dex = p.ladder_for("DEXAMETHASONE")
    assert [(s.level, s.weekly_dose) for s in dex] == [(0, 40.0)]
    with pytest.raises(KeyError):
        p.ladder_for("BORTEZOMIB")


def test_ladder_follows_the_phase_of_the_cycle():
    # SIRIUS: 16 mg/kg weekly (cycles 1-2), every 2 weeks (3-6), every 4 weeks (7+): 16, 8, 4 mg/kg/week
    p = Protocol.load("sirius")
    assert [p.ladder_for("DARATUMUMAB", c)[0].weekly_dose for c in (1, 3, 7, 40)] == [16.0, 8.0, 4.0, 4.0]
    assert p.ladder_for("DARATUMUMAB", 3)[0].unit == "mg/kg"


def _with(text: str, tmp_path) -> Protocol:
    f = tmp_path / "p.toml"
    f.write_text(text)
    return Protocol.load(f)


BASE = """
[study]
id = "T"
title = "t"
[regimen]
cycle_length_days = 28
study_drug = "POM"
drugs = [ { name = "POM", dose = 4, cycle_days = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21] } ]
"""


@pytest.mark.parametrize("ladder,msg", [
    ('[dose_ladder.POM]\nlevels = [ { level = 0, dose = 3 } ]\n', "level 0 dose 3 is not the regimen's dose"),
    ('[dose_ladder.LEN]\nlevels = [ { level = 0, dose = 4 } ]\n', "'LEN' is not a drug of the regimen"),
    ('[dose_ladder.POM]\nlevels = [ { level = 0, dose = 4 }, { level = -1, dose = 5 } ]\n', "lower weekly dose"),
    ('[dose_ladder.POM]\nlevels = [ { level = 0, dose = 4 }, { level = 1, dose = 3 } ]\n', "strictly descending"),
    ('[dose_ladder.POM]\nlevels = [ { level = 0, dose = 4, weekly_mg = 28 } ]\n', "weekly_mg = 28 but 4 x 21 days"),
])
def test_impossible_ladders_are_refused(tmp_path, ladder, msg):
    from mmtrial.errors import ProtocolError

    with pytest.raises(ProtocolError, match=msg):
        _with(BASE + ladder, tmp_path)


def test_bundled_protocols_by_name():
    assert {"storm", "stratus", "sirius"} <= set(bundled_names())
    assert Protocol.load("stratus").regimen == Protocol.load(bundled("stratus")).regimen
    with pytest.raises(KeyError, match="bundled"):
        bundled("nope")


def test_bundled_step_up_protocol_stops_after_its_last_cycle():
    # PX-171-003-A1 (Siegel 2012, C): 20 mg/m2 in cycle 1, then 27 mg/m2; days 1, 2, 8, 9, 15, 16 of
    # 28; at most 12 cycles -> 12 x 6 = 72 planned administrations, the first 6 at 20 mg/m2
    p = Protocol.load("px171003")
    s = p.regimen.schedule(20)
    assert s["CYCLE"].max() == 12 and len(s) == 72
    assert s.loc[s["STEPUP"] == "Y", "DOSE"].tolist() == [20.0] * 6
    assert (s.loc[s["CYCLE"] == 1, "STEPUP"] == "Y").all() and s.loc[s["CYCLE"] > 1, "DOSE"].eq(27).all()
    assert p.regimen.planned_weekly_dose("CARFILZOMIB", 2) == pytest.approx(27 * 6 * 7 / 28)
    assert "Cycles" in p.regimen_table().columns
