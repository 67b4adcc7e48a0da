"""Exposure for any regimen (mmtrial.derive.exposure): hand-worked cases, one per kind of schedule.

Each expected value is computed by hand in the comment above its assertion, from the regimen
(data contract v2, "Protocol: the regimen": PLNWKDOS is the planned dose per week averaged over
the cycle, 4 mg on days 1-14 of 21 = 18.67 mg/week; planned rest is not an interruption) and the
ex convention of docs/data-contract.md (a row is a run EXSTDTC..EXENDTC with EXDOSFRQ QD / BIW /
QW, or one dose day with ONCE). BSA: Mosteller RD, N Engl J Med 1987;317:1098,
sqrt(cm x kg / 3600); DuBois & DuBois, Arch Intern Med 1916;17:863, 0.007184 cm^0.725 kg^0.425.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmtrial.derive.exposure import ExposureOptions, derive_adex, derive_exposure_intervals
from mmtrial.protocol.model import DoseLadder, Protocol
from mmtrial.protocol.regimen import Regimen

D0 = pd.Timestamp("2024-01-01")

POM = Regimen(cycle_length_days=21, study_drug="POMALIDOMIDE", drugs=[
    {"name": "POMALIDOMIDE", "dose": 4, "cycle_days": list(range(1, 15))}])
# ladder 4 -> 3 -> 2 mg on days 1-14 of 21 (weekly = dose x 14 x 7 / 21), through Protocol.ladder_for
POM_PROTOCOL = Protocol(study={"id": "T", "title": "test"}, regimen=POM, dose_ladder={
    "POMALIDOMIDE": {"source": "test", "levels": [{"level": 0, "dose": 4}, {"level": -1, "dose": 3},
                                                  {"level": -2, "dose": 2}]}})
POM_LADDER = POM_PROTOCOL.dose_ladder
BOSTON_VD = Regimen(study_drug="BORTEZOMIB", phases=[
    {"cycles": [1, 8], "cycle_length_days": 21, "drugs": [
        {"name": "BORTEZOMIB", "dose": 1.3, "unit": "mg/m2", "route": "SUBCUTANEOUS", "cycle_days": [1, 4, 8, 11]}]},
    {"cycles": [9, 999], "cycle_length_days": 35, "drugs": [
        {"name": "BORTEZOMIB", "dose": 1.3, "unit": "mg/m2", "route": "SUBCUTANEOUS",
         "cycle_days": [1, 8, 15, 22]}]},
])
NO_LADDER = DoseLadder(drug="NONE", source="none", levels=())


def _d(day: int) -> pd.Timestamp:
    """Study day -> date (day 1 = 2024-01-01)."""
    return D0 + pd.Timedelta(days=day - 1)


def ex_runs(rows, drug="POMALIDOMIDE", excycle=None) -> pd.DataFrame:
    """rows: (dose mg, EXDOSFRQ, first study day, last study day, EXADJ)."""
    df = pd.DataFrame({
        "USUBJID": "S1", "EXTRT": drug, "EXDOSE": [float(r[0]) for r in rows], "EXDOSU": "mg",
        "EXDOSFRQ": [r[1] for r in rows], "EXSTDT": [_d(r[2]) for r in rows],
        "EXENDT": [_d(r[3]) for r in rows], "EXADJ": [r[4] if len(r) > 4 else None for r in rows],
    })
    if excycle is not None:
        df["EXCYCLE"] = excycle
    df["ROWNUM"] = np.arange(1, len(df) + 1)
    return df


def ex_days(days, doses, drug="POMALIDOMIDE") -> pd.DataFrame:
    """One ONCE row per dose day (EXENDTC empty, as a dose-day record usually is)."""
    df = pd.DataFrame({"USUBJID": "S1", "EXTRT": drug, "EXDOSE": np.broadcast_to(doses, len(days)).astype(float),
                       "EXDOSU": "mg", "EXDOSFRQ": "ONCE", "EXSTDT": [_d(x) for x in days],
                       "EXENDT": pd.NaT})
    df["ROWNUM"] = np.arange(1, len(df) + 1)
    return df


def vs_rows(rows) -> pd.DataFrame:
    """rows: (study day, VSTESTCD, value, unit)."""
    return pd.DataFrame({"USUBJID": "S1", "VSTESTCD": [r[1] for r in rows], "VSSTRESN": [r[2] for r in rows],
                         "VSSTRESU": [r[3] for r in rows], "VSDT": [_d(r[0]) for r in rows],
                         "ROWNUM": np.arange(1, len(rows) + 1)})


DEFAULT = ExposureOptions()


def run(ex, regimen=POM, ladder=POM_LADDER, vs=None, options=DEFAULT, ladder_for=None):
    lv = derive_exposure_intervals(ex, ladder=ladder, regimen=regimen, options=options, vs=vs, ladder_for=ladder_for)
    adex = derive_adex(lv, pd.DataFrame({"USUBJID": ["S1"]}), regimen=regimen, ladder=ladder, options=options)
    return lv, adex


ADEX_COMPARE = ["USUBJID", "EXTRT", "TRTSDT", "TRTEDT", "TRTDURD", "NDOSES", "CUMDOSE", "CYCLES", "PLNWKDOS",
                "ACTWKDOS", "RDI", "NREDUC", "NESCAL", "NINTERR", "INTRDAYS", "NDELAY", "DELAYD", "NMISSCYC",
                "CUMDOSEU", "PLNWKDU", "ACTWKDU", "DOSEUNIT"]


def test_days_1_14_q21d_full_adherence_run_form_and_day_form():
    # 3 cycles of 4 mg on days 1-14, cycles starting on days 1, 22, 43 (QD run per cycle)
    runs = ex_runs([(4, "QD", 1, 14), (4, "QD", 22, 35), (4, "QD", 43, 56)])
    lv, a = run(runs)
    r = a.iloc[0]
    # planned: 4 mg x 14 days x 7 / 21 days = 18.667 mg/week (data contract v2)
    assert r["PLNWKDOS"] == pytest.approx(4 * 14 * 7 / 21)
    # 42 doses, 168 mg; duration day 1 .. end of cycle 3 (day 63: the day-56 dose covers the planned
    # rest up to the day before cycle 4 day 1) = 63 days = 9 weeks; 168 / 9 = 18.667 -> RDI 1
    assert (r["NDOSES"], r["CUMDOSE"], r["TRTDURD"], r["CYCLES"]) == (42, 168, 63, 3)
    assert r["ACTWKDOS"] == pytest.approx(168 / 9)
    assert r["RDI"] == pytest.approx(1.0)
    # the planned rest (days 15-21 of each cycle) is no interruption, and no cycle started late
    assert (r["NINTERR"], r["INTRDAYS"], r["NDELAY"], r["NREDUC"]) == (0, 0, 0, 0)
    # one run (same dose, no interruption) at ladder level 0
    assert len(lv) == 1 and lv["DOSELVL"].tolist() == [0]
    # the same administrations as one ONCE row per dose day give the same ADEX
    days = [c * 21 + d for c in range(3) for d in range(1, 15)]
    _, b = run(ex_days(days, 4.0))
    pd.testing.assert_frame_equal(a[ADEX_COMPARE], b[ADEX_COMPARE])


def test_boston_vd_bortezomib_days_1_4_8_11_q21d_then_weekly_q35d():
    # Mosteller BSA for 170 cm, 70 kg = sqrt(170 x 70 / 3600) = 1.818119; 1.3 mg/m2 -> 2.363555 mg
    bsa = math.sqrt(170 * 70 / 3600)
    mg = 1.3 * bsa
    # cycles 1-8 of 21 days (starts 1, 22, ..., 148), cycles 9-10 of 35 days (starts 169, 204)
    days = [c * 21 + d for c in range(8) for d in (1, 4, 8, 11)]
    days += [169 + c * 35 + d - 1 for c in range(2) for d in (1, 8, 15, 22)]
    vs = vs_rows([(1, "HEIGHT", 170, "cm"), (1, "WEIGHT", 70, "kg")])
    lv, a = run(ex_days(days, mg, "BORTEZOMIB"), BOSTON_VD, NO_LADDER, vs)
    r = a.iloc[0]
    # duration: 8 x 21 + 2 x 35 = 238 days = 34 weeks (last dose on day 22 of cycle 10 covers to its end)
    assert (r["CYCLES"], r["NDOSES"], r["TRTDURD"]) == (10, 40, 238)
    # planned: 1.3 mg/m2 x 40 doses / 34 weeks = 1.529 mg/m2/week = 1.529 x 1.818119 mg/week
    assert r["PLNWKDU"] == pytest.approx(1.3 * 40 / 34)
    assert r["PLNWKDOS"] == pytest.approx(1.3 * 40 / 34 * bsa)
    assert r["DOSEUNIT"] == "mg/m2"
    assert r["RDI"] == pytest.approx(1.0)
    assert (r["NINTERR"], r["NDELAY"], r["NREDUC"], r["NESCAL"]) == (0, 0, 0, 0)
    # cycle 1-8 planned weekly = 1.3 x 4 x 7 / 21 = 1.733 mg/m2; cycle 9+ = 1.3 x 4 x 7 / 35 = 1.04:
    # a change of phase is no reduction (the dose relative to the plan in force stays 1)
    assert BOSTON_VD.planned_weekly_dose("BORTEZOMIB", 1) == pytest.approx(1.3 * 4 * 7 / 21)
    assert BOSTON_VD.planned_weekly_dose("BORTEZOMIB", 9) == pytest.approx(1.04)
    assert set(lv["CHGTYPE"]) <= {"START", "SAME"}


def test_mg_per_m2_with_a_weight_change_mid_study():
    # bortezomib 1.3 mg/m2 days 1, 4, 8, 11 of 21, 2 cycles; 170 cm; 70 kg on day 1, 60 kg on day 20
    reg = BOSTON_VD
    bsa1 = math.sqrt(170 * 70 / 3600)  # 1.818119
    bsa2 = math.sqrt(170 * 60 / 3600)  # 1.683251, in force from day 20 -> all of cycle 2 (days 22-32)
    vs = vs_rows([(1, "HEIGHT", 170, "cm"), (1, "WEIGHT", 70, "kg"), (20, "WEIGHT", 60, "kg")])
    days = [1, 4, 8, 11, 22, 25, 29, 32]
    # the site kept the cycle-1 dose (2.363555 mg) in cycle 2
    _, a = run(ex_days(days, 1.3 * bsa1, "BORTEZOMIB"), reg, NO_LADDER, vs)
    r = a.iloc[0]
    # planned mg = 4 x 1.3 x 1.818119 + 4 x 1.3 x 1.683251 = 18.20712 mg over 42 days = 6 weeks
    planned = 4 * 1.3 * bsa1 + 4 * 1.3 * bsa2
    assert r["PLNWKDOS"] == pytest.approx(planned / 6)
    # actual = 8 x 2.363555 = 18.90844 mg over 6 weeks; RDI = 18.90844 / 18.20712 = 1.0385
    assert r["RDI"] == pytest.approx(8 * 1.3 * bsa1 / planned)
    assert r["RDI"] == pytest.approx(1.0385, abs=1e-4)
    # in mg/m2: cycle 1 4 x 1.3; cycle 2 4 x 2.363555 / 1.683251 = 4 x 1.404160 -> 10.81664 / 6 weeks
    assert r["ACTWKDU"] == pytest.approx((4 * 1.3 + 4 * 1.3 * bsa1 / bsa2) / 6)
    # the 8% above plan in cycle 2 is within the 10% tolerance: no escalation
    assert (r["NESCAL"], r["NREDUC"]) == (0, 0)
    # recomputed at the new BSA -> RDI exactly 1
    doses = np.r_[np.full(4, 1.3 * bsa1), np.full(4, 1.3 * bsa2)]
    _, b = run(ex_days(days, doses, "BORTEZOMIB"), reg, NO_LADDER, vs)
    assert b["RDI"].iloc[0] == pytest.approx(1.0)
    # DuBois: 0.007184 x 170^0.725 x 70^0.425 = 1.8097 m2 on day 1 (one cycle)
    dub = Regimen(**{**reg.model_dump(), "bsa_formula": "dubois"})
    _, c = run(ex_days(days[:4], 1.3 * bsa1, "BORTEZOMIB"), dub, NO_LADDER, vs)
    assert c["PLNWKDOS"].iloc[0] == pytest.approx(1.3 * 0.007184 * 170**0.725 * 70**0.425 * 4 * 7 / 21)


def test_delayed_cycle_is_a_delay_not_an_interruption():
    # cycle 1 days 1-14; cycle 2 due on day 22, started on day 25 (3 days late), days 25-38
    _, a = run(ex_runs([(4, "QD", 1, 14), (4, "QD", 25, 38)]))
    r = a.iloc[0]
    assert (r["CYCLES"], r["NDELAY"], r["DELAYD"], r["NINTERR"]) == (2, 1, 3, 0)
    # duration day 1 .. end of cycle 2 (25 + 21 - 1 = day 45) = 45 days; 112 mg
    # RDI = (112 / (45 / 7)) / 18.667 = 42 / 45 = 0.9333
    assert r["TRTDURD"] == 45
    assert r["RDI"] == pytest.approx(42 / 45)
    # the option delay_is_interruption counts the 3 days as an interruption too
    _, b = run(ex_runs([(4, "QD", 1, 14), (4, "QD", 25, 38)]),
               options=ExposureOptions(delay_is_interruption=True))
    assert (b["NINTERR"].iloc[0], b["INTRDAYS"].iloc[0], b["NDELAY"].iloc[0]) == (1, 3, 1)


def test_missed_cycle_from_excycle_and_the_same_doses_without_cycle_numbers():
    # EXCYCLE 1 (days 1-14) and 3 (days 43-56): cycle 2 (planned days 22-42) was missed
    ex = ex_runs([(4, "QD", 1, 14), (4, "QD", 43, 56)], excycle=[1, 3])
    lv, a = run(ex)
    r = a.iloc[0]
    cyc = lv.attrs["exposure"]["cycles"]
    assert cyc["MISSFL"].tolist() == ["", "Y", ""]
    # cycle 3 planned start = 1 + 21 + 21 = day 43: on time
    assert (r["CYCLES"], r["NMISSCYC"], r["NDELAY"]) == (2, 1, 0)
    # the missed cycle's dosing days are an interruption: uncovered days 22-42 = 21 days
    assert (r["NINTERR"], r["INTRDAYS"]) == (1, 21)
    # planned over cycles 1-3 = 3 x 56 mg / 9 weeks = 18.667; actual 112 mg / 9 weeks -> RDI 2/3
    assert r["PLNWKDOS"] == pytest.approx(18.6667, abs=1e-4)
    assert r["RDI"] == pytest.approx(112 / 168)
    # without cycle numbers the second start is inferred as cycle 2, 21 days late
    _, b = run(ex.drop(columns="EXCYCLE"))
    assert (b["CYCLES"].iloc[0], b["NDELAY"].iloc[0], b["DELAYD"].iloc[0], b["NINTERR"].iloc[0]) == (2, 1, 21, 0)
    # VISIT "CYCLE n DAY 1" names cycles too
    _, c = run(ex.drop(columns="EXCYCLE").assign(VISIT=["CYCLE 1 DAY 1", "CYCLE 3 DAY 1"]))
    assert c["NMISSCYC"].iloc[0] == 1


def test_mid_cycle_interruption_with_its_reason_run_form_equals_day_form():
    # days 1-7, held days 8-10 (zero-dose row, adverse event), days 11-14; one cycle
    ex = ex_runs([(4, "QD", 1, 7), (0, "QD", 8, 10, "ADVERSE EVENT"), (4, "QD", 11, 14)])
    lv, a = run(ex)
    r = a.iloc[0]
    # the day-7 dose covers day 7 (next planned dose day 8): days 8-10 uncovered = 3 days
    assert (r["NINTERR"], r["INTRDAYS"], r["INTRREAS"]) == (1, 3, "ADVERSE EVENT")
    # 11 doses = 44 mg over the 21-day cycle (3 weeks) -> 14.667 / 18.667 = 44 / 56 = 0.7857
    assert r["RDI"] == pytest.approx(44 / 56)
    assert lv["CHGTYPE"].tolist() == ["START", "SAME"] and lv["GAPDAYS"].tolist() == [0, 3]
    _, b = run(ex_days([1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14], 4.0))
    cols = [c for c in ADEX_COMPARE if c != "INTRREAS"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_missed_last_dose_of_a_window_is_an_interruption_of_its_dose_period():
    # days 1-13 and cycle 2 on day 22: the missed day-14 dose would have covered days 14-21 (8 days)
    _, a = run(ex_runs([(4, "QD", 1, 13), (4, "QD", 22, 35)]))
    assert (a["NINTERR"].iloc[0], a["INTRDAYS"].iloc[0], a["NDELAY"].iloc[0]) == (1, 8, 0)


def test_reduction_along_the_ladder():
    # cycle 1: 4 mg days 1-14; cycle 2: 3 mg days 22-35 (ladder level -1, reason adverse event)
    lv, a = run(ex_runs([(4, "QD", 1, 14), (3, "QD", 22, 35, "ADVERSE EVENT")]))
    assert lv["DOSELVL"].tolist() == [0, -1]
    assert lv["CHGTYPE"].tolist() == ["START", "REDUCTION"]
    r = a.iloc[0]
    # first reduction 21 days after the first dose; RDI = (56 + 42) / 6 weeks / 18.667 = 0.875
    assert (r["NREDUC"], r["TTFRED"], r["REDREAS"], r["NINTERR"]) == (1, 21, "ADVERSE EVENT", 0)
    assert r["RDI"] == pytest.approx(98 / 112)
    assert (r["STARTLVL"], r["MINLVL"]) == (0, -1)
    # the same through the per-drug API Protocol.ladder_for(drug, cycle)
    lv2, _ = run(ex_runs([(4, "QD", 1, 14), (3, "QD", 22, 35, "ADVERSE EVENT")]), ladder_for=POM_PROTOCOL.ladder_for)
    assert lv2["DOSELVL"].tolist() == [0, -1] and lv2["DOSELVLC"].tolist()[1] == "3 mg days 1-14 of 21"


def test_body_size_ladder_levels_match_in_the_drug_unit():
    # bortezomib 1.3 -> 1.0 -> 0.7 mg/m2 (a protocol ladder in mg/m2); BSA 1.818119 (170 cm, 70 kg):
    # 1.3 x 1.818119 = 2.36 mg and 1.0 x 1.818119 = 1.82 mg as recorded (rounded to 0.01 mg)
    reg = Regimen(cycle_length_days=21, study_drug="BORTEZOMIB", drugs=[
        {"name": "BORTEZOMIB", "dose": 1.3, "unit": "mg/m2", "cycle_days": [1, 4, 8, 11]}])
    prot = Protocol(study={"id": "T", "title": "test"}, regimen=reg, dose_ladder={
        "BORTEZOMIB": {"levels": [{"level": 0, "dose": 1.3}, {"level": -1, "dose": 1.0}, {"level": -2, "dose": 0.7}]}})
    vs = vs_rows([(1, "HEIGHT", 170, "cm"), (1, "WEIGHT", 70, "kg")])
    ex = ex_days([1, 4, 8, 11, 22, 25, 29, 32], np.r_[np.full(4, 2.36), np.full(4, 1.82)], "BORTEZOMIB")
    lv, a = run(ex, reg, prot.dose_ladder, vs, ladder_for=prot.ladder_for)
    assert lv["DOSELVL"].tolist() == [0, -1]
    assert lv["CHGTYPE"].tolist() == ["START", "REDUCTION"]
    assert a["NREDUC"].iloc[0] == 1


def test_step_up_doses_are_planned_not_escalations():
    # 1.5 mg/kg on days 1, 8, 15, 22 of 28, cycle 1 stepping up: 0.06 mg/kg day 1 (replaces), 0.3 mg/kg day 4
    reg = Regimen(cycle_length_days=28, study_drug="BISPEC", drugs=[
        {"name": "BISPEC", "dose": 1.5, "unit": "mg/kg", "route": "SUBCUTANEOUS", "cycle_days": [1, 8, 15, 22],
         "step_up": [{"cycle": 1, "day": 1, "dose": 0.06}, {"cycle": 1, "day": 4, "dose": 0.3}]}])
    vs = vs_rows([(1, "HEIGHT", 175, "cm"), (1, "WEIGHT", 80, "kg")])
    days = [1, 4, 8, 15, 22, 29, 36, 43, 50]
    doses = np.array([0.06, 0.3, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5]) * 80
    lv, a = run(ex_days(days, doses, "BISPEC"), reg, NO_LADDER, vs)
    r = a.iloc[0]
    # planned = (0.06 + 0.3 + 3 x 1.5 + 4 x 1.5) x 80 kg = 868.8 mg over 8 weeks = 108.6 mg/week
    assert r["PLNWKDOS"] == pytest.approx(868.8 / 8)
    assert r["RDI"] == pytest.approx(1.0)
    assert (r["NESCAL"], r["NREDUC"], r["NINTERR"]) == (0, 0, 0)
    assert lv["CHGTYPE"].tolist() == ["START", "SAME", "SAME"]
    # a real reduction to 1.0 mg/kg in cycle 2 is one (1.0 / 1.5 = 0.67 of the plan)
    doses2 = doses.copy()
    doses2[5:] = 80.0
    _, b = run(ex_days(days, doses2, "BISPEC"), reg, NO_LADDER, vs)
    assert (b["NREDUC"].iloc[0], b["NESCAL"].iloc[0]) == (1, 0)


def test_drug_first_planned_on_day_8_and_a_drug_absent_from_a_phase():
    # dexamethasone 40 mg on day 8 of 21-day cycles with pomalidomide days 1-14: dex's dose intensity
    # runs from its first cycle's start, so full adherence is RDI 1 (40 x 7 / 21 = 13.33 mg/week)
    reg = Regimen(cycle_length_days=21, study_drug="POMALIDOMIDE", drugs=[
        {"name": "POMALIDOMIDE", "dose": 4, "cycle_days": list(range(1, 15))},
        {"name": "DEXAMETHASONE", "dose": 40, "cycle_days": [8]}])
    ex = pd.concat([ex_runs([(4, "QD", 1, 14), (4, "QD", 22, 35)]),
                    ex_days([8, 29], 40.0, "DEXAMETHASONE")], ignore_index=True)
    ex["ROWNUM"] = np.arange(1, len(ex) + 1)
    _, a = run(ex, reg)
    dex = a.loc[a["EXTRT"] == "DEXAMETHASONE"].iloc[0]
    assert dex["PLNWKDOS"] == pytest.approx(40 * 7 / 21)
    assert dex["RDI"] == pytest.approx(1.0) and dex["NINTERR"] == 0
    # TRTDURD stays first dose (day 8) to end of cycle 2 (day 42) = 35 days; DIDURD = 42
    assert (dex["TRTDURD"], dex["DIDURD"]) == (35, 42)


def test_stopping_mid_cycle_full_adherence_is_rdi_one_and_whole_cycle_option():
    # 4 mg days 1-14 of 21: cycle 1 complete, cycle 2 (day 22) stopped after its day-7 dose (day 28).
    # The day-28 dose covers day 28 only (next planned dose day 29): treatment days 1-28 = 4 weeks.
    # planned_last_cycle = "treated_days" (default, docs/exposure.md): cycle 1 = 14 doses over 21
    # days, cycle 2 = the 7 doses of its days 1-7 over 7 days -> planned 21 x 4 = 84 mg / 4 weeks
    # = 21 mg/week; actual 84 mg / 4 weeks = 21 -> RDI 1 (full adherence, wherever it stops)
    ex = ex_runs([(4, "QD", 1, 14), (4, "QD", 22, 28)])
    _, a = run(ex)
    r = a.iloc[0]
    assert (r["TRTDURD"], r["CUMDOSE"], r["NINTERR"]) == (28, 84, 0)
    assert r["PLNWKDOS"] == pytest.approx(84 / 4)
    assert r["RDI"] == pytest.approx(1.0)
    # "whole_cycle" (the first release): planned 2 x 56 mg / 6 weeks = 18.667 mg/week, RDI = 21 /
    # 18.667 = 1.125 although every planned dose was taken
    _, b = run(ex, options=ExposureOptions(planned_last_cycle="whole_cycle"))
    assert b["PLNWKDOS"].iloc[0] == pytest.approx(4 * 14 * 7 / 21)
    assert b["RDI"].iloc[0] == pytest.approx(21 / (4 * 14 * 7 / 21))
    # stopping after the last dose of a cycle: the day-14 dose covers the planned rest, the whole
    # cycle counts under both options (3 full cycles: 18.667, RDI 1)
    full = ex_runs([(4, "QD", 1, 14), (4, "QD", 22, 35)])
    _, c = run(full)
    _, d = run(full, options=ExposureOptions(planned_last_cycle="whole_cycle"))
    assert c["PLNWKDOS"].iloc[0] == pytest.approx(d["PLNWKDOS"].iloc[0]) == pytest.approx(4 * 14 * 7 / 21)
    assert c["RDI"].iloc[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="planned_last_cycle"):
        ExposureOptions(planned_last_cycle="half")  # type: ignore[arg-type]


def test_stopping_in_a_step_up_cycle_mg_per_m2():
    # carfilzomib 20 mg/m2 on days 1 and 2 of cycle 1 (step-up), 56 mg/m2 on days 8, 9, 15, 16 of 28;
    # the subject stops after day 2 (the day-2 dose covers days 2-7). BSA 170 cm / 70 kg (Mosteller)
    # = 1.818119 m2. Treated days 1-7: planned 2 x 20 mg/m2 = 40 mg/m2 in 1 week; given 2 x 36.36 mg
    # (20 x 1.818119 rounded to 0.01) -> RDI = 72.72 / (40 x 1.818119) = 0.99999
    reg = Regimen(cycle_length_days=28, study_drug="CARFILZOMIB", drugs=[
        {"name": "CARFILZOMIB", "dose": 56, "unit": "mg/m2", "cycle_days": [1, 2, 8, 9, 15, 16],
         "step_up": [{"cycle": 1, "day": 1, "dose": 20}, {"cycle": 1, "day": 2, "dose": 20}]}])
    bsa = math.sqrt(170 * 70 / 3600)
    vs = vs_rows([(1, "HEIGHT", 170, "cm"), (1, "WEIGHT", 70, "kg")])
    _, a = run(ex_days([1, 2], 36.36, "CARFILZOMIB"), reg, NO_LADDER, vs)
    r = a.iloc[0]
    assert (r["TRTDURD"], r["DIDURD"]) == (7, 7)
    assert r["PLNWKDU"] == pytest.approx(40.0)
    assert r["PLNWKDOS"] == pytest.approx(40 * bsa)
    assert r["RDI"] == pytest.approx(72.72 / (40 * bsa))
    # the cycle's average instead (whole_cycle): (40 + 4 x 56) mg/m2 / 4 weeks = 66 mg/m2/week,
    # RDI = 40 / 66 = 0.606 (the value the KD demo showed before this rule)
    _, b = run(ex_days([1, 2], 36.36, "CARFILZOMIB"), reg, NO_LADDER, vs,
               options=ExposureOptions(planned_last_cycle="whole_cycle"))
    assert b["PLNWKDU"].iloc[0] == pytest.approx(66.0)
    assert b["RDI"].iloc[0] == pytest.approx(72.72 / bsa / 66.0)


def test_excycle_cycle_whose_first_dose_is_planned_on_day_8():
    # pomalidomide days 1-14 and dexamethasone day 8 of 21-day cycles, cycles given by EXCYCLE;
    # pomalidomide stopped after cycle 1, dexamethasone continued in cycle 2 (day 29 = its day 8).
    # Cycle 2 starts 8 - 1 = 7 days before its first administration: day 22 = planned (1 + 21),
    # so no delay; read as starting on day 29 it would be a 7-day delay (docs/exposure.md, cycles)
    reg = Regimen(cycle_length_days=21, study_drug="POMALIDOMIDE", drugs=[
        {"name": "POMALIDOMIDE", "dose": 4, "cycle_days": list(range(1, 15))},
        {"name": "DEXAMETHASONE", "dose": 40, "cycle_days": [8]}])
    ex = pd.concat([ex_runs([(4, "QD", 1, 14)], excycle=[1]),
                    ex_days([8, 29], 40.0, "DEXAMETHASONE").assign(EXCYCLE=[1, 2])], ignore_index=True)
    ex["ROWNUM"] = np.arange(1, len(ex) + 1)
    lv, a = run(ex, reg)
    cyc = lv.attrs["exposure"]["cycles"]
    assert cyc["CYCSTDT"].tolist() == [_d(1), _d(22)] and cyc["DELAYD"].tolist() == [0, 0]
    dex = a.loc[a["EXTRT"] == "DEXAMETHASONE"].iloc[0]
    # dex: 2 x 40 mg over cycles 1-2 (42 days, the day-29 dose covers to the cycle's end) -> RDI 1
    assert (dex["NDELAY"], dex["NINTERR"]) == (0, 0)
    assert dex["RDI"] == pytest.approx(1.0)
