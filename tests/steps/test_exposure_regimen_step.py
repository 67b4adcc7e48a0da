"""The exposure part of the exposure_safety step on a non-STORM regimen, through the study reader.

Regimen (hand-made, OPTIMISMM-like shape): pomalidomide 4 mg on days 1-14 and bortezomib
1.3 mg/m2 on days 1, 4, 8, 11 of 21-day cycles. Expected values are hand-worked in the comments
(planned weekly dose averaged over the cycle, data contract v2: 4 x 14 x 7 / 21 = 18.67 mg/week;
BSA Mosteller, N Engl J Med 1987;317:1098).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mmtrial.context import Analysis
from mmtrial.protocol.model import Protocol
from mmtrial.report.model import Table
from mmtrial.steps import exposure_safety

PROTOCOL = """
[study]
id = "PVD-TEST"
title = "Pomalidomide and bortezomib, 21-day cycles (test)"

[regimen]
cycle_length_days = 21
study_drug = "POMALIDOMIDE"
drugs = [
  { name = "POMALIDOMIDE", dose = 4, unit = "mg", route = "ORAL", cycle_days = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] },
  { name = "BORTEZOMIB", dose = 1.3, unit = "mg/m2", route = "SUBCUTANEOUS", cycle_days = [1, 4, 8, 11] },
]

[dose_ladder.POMALIDOMIDE]
source = "test ladder"
levels = [ { level = 0, dose = 4 }, { level = -1, dose = 3 }, { level = -2, dose = 2 } ]
"""

BSA1 = math.sqrt(170 * 70 / 3600)  # 1.818119 m2 (S-001)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    support = pytest.importorskip("support.sdtm_study")
    from mmtrial.sdtm.check import read_study
    from mmtrial.sdtm.write import write_study_folder
    from mmtrial.steps import adsl as adsl_step

    tmp = tmp_path_factory.mktemp("pvd")
    raw = support.valid_raw_domains()
    bz = f"{1.3 * BSA1:.6f}"
    raw["ex"] = pd.DataFrame({
        "USUBJID": ["S-001"] * 10 + ["S-002"] * 2,
        "EXTRT": ["POMALIDOMIDE"] * 2 + ["BORTEZOMIB"] * 8 + ["POMALIDOMIDE"] * 2,
        "EXDOSE": ["4", "4", *[bz] * 8, "4", "3"], "EXDOSU": "mg",
        # S-001: two full cycles (pomalidomide as QD runs, bortezomib as dose days)
        # S-002: cycle 1, then cycle 2 one week late (due 2019-02-25) at 3 mg (ladder level -1)
        "EXDOSFRQ": ["QD", "QD", *["ONCE"] * 8, "QD", "QD"],
        "EXSTDTC": ["2019-01-07", "2019-01-28", "2019-01-07", "2019-01-10", "2019-01-14", "2019-01-17",
                    "2019-01-28", "2019-01-31", "2019-02-04", "2019-02-07", "2019-02-04", "2019-03-04"],
        "EXENDTC": ["2019-01-20", "2019-02-10", *[None] * 8, "2019-02-17", "2019-03-17"],
        "EXADJ": [None] * 11 + ["ADVERSE EVENT"],
    })
    raw["vs"] = pd.DataFrame({
        "USUBJID": ["S-001", "S-001", "S-002", "S-002"], "VSTESTCD": ["HEIGHT", "WEIGHT", "HEIGHT", "WEIGHT"],
        "VSSTRESN": ["170", "70", "160", "60"], "VSSTRESU": ["cm", "kg", "cm", "kg"],
        "VSDTC": ["2019-01-03", "2019-01-03", "2019-02-01", "2019-02-01"],
    })
    path = tmp / "pvd.toml"
    path.write_text(PROTOCOL, encoding="utf-8")
    folder = write_study_folder(tmp / "s", raw)
    a = Analysis(study=read_study(folder), protocol=Protocol.load(path))
    adsl_step.run(a)
    exposure_safety.run(a)
    return a


def test_vs_is_read_and_body_size_doses_are_planned_from_it(done):
    assert "vs" in done.study.domains
    adex = done.adam["adex"].set_index(["USUBJID", "EXTRT"])
    bz = adex.loc[("S-001", "BORTEZOMIB")]
    # planned: 1.3 mg/m2 x 4 doses x 7 / 21 = 1.7333 mg/m2/week = 1.7333 x 1.818119 mg/week
    assert bz["PLNWKDU"] == pytest.approx(1.3 * 4 * 7 / 21)
    assert bz["PLNWKDOS"] == pytest.approx(1.3 * 4 * 7 / 21 * BSA1)
    # the recorded mg dose is 1.3 x BSA rounded to 6 decimals: RDI 1 to 5 decimals
    assert bz["RDI"] == pytest.approx(1.0, abs=1e-5)


def test_days_1_14_of_21_planned_18_67_full_adherence_no_interruption(done):
    adex = done.adam["adex"].set_index(["USUBJID", "EXTRT"])
    pom = adex.loc[("S-001", "POMALIDOMIDE")]
    assert pom["PLNWKDOS"] == pytest.approx(4 * 14 * 7 / 21)
    assert pom["RDI"] == pytest.approx(1.0)
    assert (pom["CYCLES"], pom["NINTERR"], pom["NDELAY"]) == (2, 0, 0)
    s2 = adex.loc[("S-002", "POMALIDOMIDE")]
    # cycle 2 due 2019-02-25 (2019-02-04 + 21), started 2019-03-04: 7 days late; 4 -> 3 mg
    assert (s2["NDELAY"], s2["DELAYD"], s2["NINTERR"], s2["NREDUC"]) == (1, 7, 0, 1)
    cyc = done.adam["adexcyc"]
    assert cyc.loc[cyc["USUBJID"] == "S-002", "DELAYD"].tolist() == [0, 7]


def test_table_shows_units_and_footnotes_state_the_rules(done):
    t = next(b for s in done.sections for b in s.blocks if isinstance(b, Table) and b.id == "mmtrial-EX02")
    rows = {r[0]: list(r[1:]) for r in t.data.itertuples(index=False)}
    assert list(t.data.columns[1:]) == ["Pomalidomide", "Bortezomib"]
    assert rows["Planned weekly dose, mg"][0] == "18.67"
    assert rows["Planned weekly dose, mg/m2"] == ["", "1.73"]
    assert rows["At least one delayed cycle start"][0] == "1 (50.0)"
    notes = " ".join(t.footnotes)
    assert "planned rest of a cycle is not an interruption" in notes
    assert "a new cycle starts at the first dose on or after the planned cycle length" in notes
    assert "Mosteller" in notes
    ex = done.results["safety"]["exposure"]
    assert ex["planned_weekly_dose_mg"] == pytest.approx(18.6667, abs=1e-4)
    # bortezomib (S-001 only): 1.3 x 4 x 7 / 21 = 1.7333 mg/m2 per week
    bz = ex["by_drug"]["BORTEZOMIB"]
    assert bz["dose_unit"] == "mg/m2" and bz["n"] == 1
    assert bz["planned_weekly_dose_in_unit"]["median"] == pytest.approx(1.3 * 4 * 7 / 21)
