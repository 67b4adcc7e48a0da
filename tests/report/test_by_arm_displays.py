"""By-arm displays built from small frames (issue 13; steps/by_arm_displays.py).

Every expected value is hand-worked from the frame shown in the test (disposition: ICH E3 10.1 /
TLG catalog DST01 counting; quartiles: SAS QNTLDEF=5, worked by hand) or published (ORR
difference: Newcombe, Stat Med 1998;17:873, example (a), Miettinen-Nurminen interval
0.0528 to 0.3382).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.steps.by_arm_displays import (
    POOLED_REASONS,
    compute_orr_subgroups_by_arm,
    disposition_by_arm,
    pooled_reason,
)


def _disposition_adsl() -> pd.DataFrame:
    """S1-S3 randomised to A (S3 never treated, S2 received B), S4-S5 to B, S6 a screen failure."""
    return pd.DataFrame({
        "USUBJID": ["S1", "S2", "S3", "S4", "S5", "S6"],
        "TRT01P": ["A", "A", "A", "B", "B", None],
        "TRT01PN": [1, 1, 1, 2, 2, None],
        "TRT01A": ["A", "B", None, "B", "B", None],
        "TRT01AN": [1, 2, None, 2, 2, None],
        "ITTFL": ["Y", "Y", "Y", "Y", "Y", "N"],
        "SAFFL": ["Y", "Y", "N", "Y", "Y", "N"],
        "EOTSTT": ["ONGOING", "DISCONTINUED", None, "DISCONTINUED", "DISCONTINUED", None],
        "DCTREAS": [None, "ADVERSE EVENT", None, "PROGRESSIVE DISEASE", "ADVERSE EVENT", None],
        "EOSSTT": ["ONGOING", "ONGOING", "ONGOING", "DISCONTINUED", "COMPLETED", None],
        "DTHFL": [None, None, None, "Y", None, None],
    })


def test_disposition_counts_every_randomised_patient_in_the_randomised_arm():
    t = disposition_by_arm(_disposition_adsl(), footnotes=[])
    assert list(t.data.columns) == ["Category", "A (N=3)", "B (N=2)", "Total (N=5)"]
    got = {r["Category"]: (r["A (N=3)"], r["B (N=2)"], r["Total (N=5)"]) for _, r in t.data.iterrows()}
    # hand-worked from the frame above (percent of the column's ITT N)
    assert got["Randomised"] == ("3 (100.0)", "2 (100.0)", "5 (100.0)")
    assert got["Received study treatment"] == ("2 (66.7)", "2 (100.0)", "4 (80.0)")
    assert got["Randomised, not treated"] == ("1 (33.3)", "0 (0.0)", "1 (20.0)")
    assert got["Received another arm's treatment"] == ("1 (33.3)", "0 (0.0)", "1 (20.0)")
    assert got["On treatment"] == ("1 (33.3)", "0 (0.0)", "1 (20.0)")
    assert got["Discontinued treatment"] == ("1 (33.3)", "2 (100.0)", "3 (60.0)")
    assert got["  Adverse event"] == ("1 (33.3)", "1 (50.0)", "2 (40.0)")
    assert got["  Progressive disease"] == ("0", "1 (50.0)", "1 (20.0)")  # a row arm A lacks reads 0
    assert got["Off treatment or never treated, in follow-up (alive)"] == ("2 (66.7)", "0 (0.0)", "2 (40.0)")
    assert got["Discontinued study"] == ("0 (0.0)", "1 (50.0)", "1 (20.0)")
    assert got["Died"] == ("0 (0.0)", "1 (50.0)", "1 (20.0)")
    assert t.population == "Intent-to-treat population"
    assert any("ICH E3 section 10.1" in f for f in t.footnotes)
    # the never-treated patient is linked from her cell
    i = t.data.index[t.data["Category"] == "Randomised, not treated"][0]
    assert t.cell_subjects[(i, "A (N=3)")] == ["S3"]


def test_disposition_needs_ittfl():
    assert disposition_by_arm(_disposition_adsl().drop(columns="ITTFL"), footnotes=[]) is None


def _lab_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"S{i}" for i in range(10)]
    adsl = pd.DataFrame({"USUBJID": ids, "SAFFL": "Y", "TRT01A": ["A"] * 5 + ["B"] * 5,
                         "TRT01AN": [1] * 5 + [2] * 5, "TRT01P": ["A"] * 5 + ["B"] * 5, "TRT01PN": [1] * 5 + [2] * 5})
    base = [100, 110, 120, 130, 140, 200, 210, 220, 230, 240]
    day8 = [10, 20, 30, 40, None, 50, 60, 70, 80, 90]  # arm A: 4 values at day 8 (< 5: blank)
    rows = []
    for i, s in enumerate(ids):
        rows.append({"USUBJID": s, "PARAMCD": "PLAT", "AVAL": base[i], "AVALU": "10^9/L", "AVISITN": 1,
                     "AVISIT": "BASELINE", "ADY": 1, "ABLFL": "Y", "ONTRTFL": "N", "ADT": pd.Timestamp("2020-01-01")})
        if day8[i] is not None:
            rows.append({"USUBJID": s, "PARAMCD": "PLAT", "AVAL": day8[i], "AVALU": "10^9/L", "AVISITN": 8,
                         "AVISIT": "CYCLE 1 DAY 8", "ADY": 8, "ABLFL": None, "ONTRTFL": "Y",
                         "ADT": pd.Timestamp("2020-01-08")})
    return pd.DataFrame(rows), adsl


def test_labs_over_time_by_arm_medians_and_quartiles_hand_worked():
    """SAS QNTLDEF=5: np = j + g; g > 0 -> x(j+1), g = 0 -> (x(j) + x(j+1)) / 2. Arm A baseline
    100..140: median 120, Q1 x(2) = 110, Q3 x(4) = 130; all 10 baseline values: median (140 + 200) / 2
    = 170, Q1 x(3) = 120, Q3 x(8) = 220; day 8 over 9 values 10..90: median x(5) = 50, Q1 x(3) = 30,
    Q3 x(7) = 70; arm B day 8 50..90: 70 (60, 80)."""
    from mmtrial.steps.by_arm_displays import labs_over_time_by_arm

    adlb, adsl = _lab_frames()
    t, fig = labs_over_time_by_arm(adlb, adsl)
    assert list(t.data.columns) == ["Test / visit: n; median (Q1, Q3)", "A (N=5)", "B (N=5)", "Total (N=10)"]
    rows = t.data.set_index(t.stub)
    assert rows.loc["BASELINE"].tolist() == ["5; 120 (110, 130)", "5; 220 (210, 230)", "10; 170 (120, 220)"]
    assert rows.loc["CYCLE 1 DAY 8"].tolist() == ["", "5; 70 (60, 80)", "9; 50 (30, 70)"]
    assert set(t.groups) == {"Platelets (10^9/L)"}
    assert fig is not None and fig.id == "labs-over-time" and "A (N=5)" in fig.alt and "B (N=5)" in fig.alt


def test_orr_difference_by_subgroup_newcombe_example():
    """All patients: 56/70 vs 48/80 -> difference 0.2, MN 95% CI (0.0528, 0.3382) (Newcombe 1998,
    example (a)); subgroup SEX levels: counts by pandas on the same frame."""
    x1, n1, x0, n0 = 56, 70, 48, 80
    arm = np.r_[np.ones(n1, bool), np.zeros(n0, bool)]
    resp = np.r_[np.arange(n1) < x1, np.arange(n0) < x0]
    rng = np.random.default_rng(1)
    sex = rng.choice(["F", "M"], size=n1 + n0)
    adsl = pd.DataFrame({"USUBJID": [f"S{i}" for i in range(n1 + n0)], "ITTFL": "Y",
                         "ARMCD": np.where(arm, "EXP", "CTL"), "RSPFL": np.where(resp, "Y", "N"), "SEX": sex})
    rows = compute_orr_subgroups_by_arm(adsl, "EXP", [])
    allp = rows[0]
    assert (allp["subgroup"], allp["x"], allp["n"]) == ("All patients", [56, 48], [70, 80])
    assert allp["difference"] == pytest.approx(0.2, abs=1e-9)
    assert allp["difference_ci"] == pytest.approx([0.05283, 0.338173], abs=1e-5)
    for r in (r for r in rows if r["subgroup"] == "Sex"):
        m = sex == r["level"]
        assert r["x"] == [int((m & arm & resp).sum()), int((m & ~arm & resp).sum())]
        assert r["n"] == [int((m & arm).sum()), int((m & ~arm).sum())]


def test_pooled_reasons_match_by_id_family():
    assert pooled_reason("biomarker-roc") == POOLED_REASONS["biomarker"]
    assert pooled_reason("EX-RULES") == POOLED_REASONS["EX-RULES"]
    assert pooled_reason("EX-RULES-L") == POOLED_REASONS["EX-RULES"]
    assert pooled_reason("AET02") is None
    assert pooled_reason("biomarkers") is None  # a prefix must end at a dash
