"""The exposure_safety step end to end (mmtrial.steps.exposure_safety).

Expected values are hand-worked from the small studies below (dates, doses and grades chosen so
each count can be checked by eye) with CTCAE v5.0 thresholds (domain.md section 3).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmtrial.context import Analysis, Study
from mmtrial.protocol.model import Protocol
from mmtrial.report.model import Figure, Listing, Table
from mmtrial.steps import exposure_safety


def _analysis(protocol: Protocol | None = None) -> Analysis:
    ex = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S1", "S2", "S2", "S3"], "EXTRT": ["SELINEXOR"] * 6,
        "EXDOSE": [80, 100, 80.0, 80, 80, 80], "EXDOSU": "mg",
        "EXDOSFRQ": ["BIW", "QW", "QW", "BIW", "BIW", "BIW"],
        "EXSTDT": pd.to_datetime(["2020-01-01", "2020-01-15", "2020-02-12", "2020-01-01", "2020-01-29", "2020-01-06"]),
        "EXENDT": pd.to_datetime(["2020-01-14", "2020-02-04", "2020-03-10", "2020-01-21", "2020-02-25", "2020-01-19"]),
        "EXADJ": [None, "ADVERSE EVENT", "ADVERSE EVENT", None, "ADVERSE EVENT", None],
        "ROWNUM": np.arange(1, 7),
    })
    lb = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S1", "S2", "S2", "S2", "S3", "S3"],
        "LBTESTCD": ["PLAT", "PLAT", "PLAT", "PLAT", "PLAT", "SODIUM", "HGB", "HGB"],
        "LBSTRESN": [180, 60, 20, 200, 70, 128, 11, 7.5],
        "LBSTRESU": ["10^9/L"] * 5 + ["mmol/L", "g/dL", "g/dL"],
        "LBSTNRLO": [150] * 5 + [135, 12, 12], "LBSTNRHI": [400] * 5 + [145, 16, 16],
        "LBDT": pd.to_datetime(["2020-01-01", "2020-01-13", "2020-02-03", "2020-01-01", "2020-01-20",
                                "2020-02-10", "2020-01-06", "2020-01-13"]),
        "LBCAT": "HEMATOLOGY", "ROWNUM": np.arange(1, 9),
    })
    ae = pd.DataFrame({
        "USUBJID": ["S1", "S2", "S3"], "AEDECOD": ["Thrombocytopenia", "Nausea", "Fatigue"],
        "AEBODSYS": ["Blood and lymphatic system disorders", "Gastrointestinal disorders",
                     "General disorders and administration site conditions"],
        "AESTDT": pd.to_datetime(["2020-01-13", "2020-01-10", "2020-01-08"]),
        "AEENDT": pd.to_datetime(["2020-02-20", None, "2020-01-30"]),
        "AETOXGR": [3.0, 2, 3], "AESER": ["N", "N", "Y"], "AEREL": ["Y", "Y", "N"],
        "AEACN": ["DOSE REDUCED", "DOSE NOT CHANGED", "DRUG WITHDRAWN"],
        "AEOUT": ["RECOVERED/RESOLVED", "NOT RECOVERED/NOT RESOLVED", "FATAL"], "ROWNUM": [1, 2, 3],
    })
    adsl = pd.DataFrame({
        "USUBJID": ["S1", "S2", "S3"], "SAFFL": ["Y"] * 3,
        "TRTSDT": pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-06"]),
        "TRTEDT": pd.to_datetime(["2020-03-10", "2020-02-25", "2020-01-19"]),
        "DTHFL": ["", "", "Y"], "DTHDT": pd.to_datetime([None, None, "2020-02-01"]),
        "DTHCAUS": [None, None, "ADVERSE EVENT"],
        "EOTSTT": ["ONGOING", "DISCONTINUED", "DISCONTINUED"],
        "DCTREAS": [None, "PROGRESSIVE DISEASE", "ADVERSE EVENT"],
        "EOSSTT": ["ONGOING", "ONGOING", "DISCONTINUED"], "DCSREAS": [None, None, "DEATH"],
    })
    study = Study(domains={"ex": ex, "lb": lb, "ae": ae, "ds": pd.DataFrame()}, synthetic=True)
    return Analysis(study=study, protocol=protocol or _storm_all_rules(), adam={"adsl": adsl})


def _storm_all_rules() -> Protocol:
    """STORM with the unverified (tag U) dose rules switched on: the hand-worked case uses them."""
    p = Protocol.load()
    assert p.model_extra is not None
    p.model_extra["dose_rules"] = {**p.section("dose_rules"), "include_unverified": True}
    return p


def test_unverified_rules_off_by_default() -> None:
    """Default [dose_rules]: only tag-C rows apply (S2's platelet WRONG LEVEL and sodium NOT
    INTERRUPTED); S3's grade 3 fatigue row (FAT-G3, tag U) is off and named in the footnotes."""
    a = _analysis(Protocol.load())
    exposure_safety.run(a)
    assert a.results["safety"]["dose_rule_deviations"]["deviations"] == 2
    off = a.methods["safety"]["dose_rules"]["rules_off"]
    assert "FAT-G3" in off and "NA-INTERRUPT" not in off and "PLT-REDUCE" not in off


@pytest.fixture(scope="module")
def done() -> Analysis:
    a = _analysis()
    exposure_safety.run(a)
    return a


def test_step_adds_datasets_sections_results_and_methods(done):
    assert {"adae", "adlb", "adex", "adexlvl", "adexchk"} <= set(done.adam)
    orders = {s.id: s.order for s in done.sections}
    assert orders == {"disposition": 15, "exposure": 30, "safety": 60}
    assert {"safety", "exposure"} <= set(done.methods)
    json.dumps(done.results["safety"])  # serialisable


def test_results_safety_hand_worked(done):
    s = done.results["safety"]
    # per PT: Thrombocytopenia grade 3, Nausea grade 2, Fatigue grade 3
    assert s["by_preferred_term"]["Thrombocytopenia"] == {
        "soc": "Blood and lymphatic system disorders", "any_grade": 1, "grade_3_plus": 1}
    assert s["by_preferred_term"]["Nausea"]["grade_3_plus"] == 0
    # platelets: S1 worst 20 (grade 4), S2 worst 70 (grade 2); sodium 128 grade 2; Hb 7.5 grade 3
    assert s["lab_worst_grade"]["Platelet count decreased"]["grade_4"] == 1
    assert s["lab_worst_grade"]["Platelet count decreased"]["grade_2"] == 1
    assert s["lab_worst_grade"]["Hyponatremia"]["grade_2"] == 1
    assert s["lab_worst_grade"]["Anemia"]["grade_3"] == 1
    assert s["disposition"] == {"on_treatment": 1, "discontinued_treatment": 2,
                                "discontinued_by_reason": {"PROGRESSIVE DISEASE": 1, "ADVERSE EVENT": 1},
                                "in_follow_up": 1, "died": 1}
    assert s["deaths"]["adverse_event"] == 1
    # S2 restarted at level 0 after platelets 70 (WRONG LEVEL) and kept dosing with sodium 128
    # (NOT INTERRUPTED); S3 kept dosing with grade 3 fatigue (NOT INTERRUPTED)
    assert s["dose_rule_deviations"]["deviations"] == 3
    assert s["dose_rule_deviations"]["by_type"] == {"NOT INTERRUPTED": 2, "WRONG LEVEL": 1}
    # S1: 8 x 80... durations 10, 8 and 2 weeks -> median 8.0, range 2-10
    assert s["exposure"]["duration_weeks"] == {"median": 8.0, "min": 2.0, "max": 10.0}


def test_tables_link_counts_to_subjects_and_carry_footnotes(done):
    tables = [b for s in done.sections for b in s.blocks if isinstance(b, Table)]
    ids = {t.id for t in tables}
    assert {"DST01", "mmtrial-EX02", "AET01", "AET02", "AET04_PI", "STF-T10", "AET-ACN", "DTHT01",
            "LBT07", "mmtrial-LB01", "LBT14-PLAT", "EX-RULES", "EX-RULES-L"} <= ids
    aet01 = next(t for t in tables if t.id == "AET01")
    col = aet01.data.columns[1]
    assert aet01.data.iloc[0, 1] == "3 (100.0)"
    assert aet01.cell_subjects[(0, col)] == ["S1", "S2", "S3"]
    assert any("CTCAE v5.0" in f for f in next(t for t in tables if t.id == "LBT07").footnotes)
    assert any("30 days" in f for f in aet01.footnotes)
    listing = next(t for t in tables if isinstance(t, Listing))
    assert len(listing.data) == 3
    fig = next(b for s in done.sections for b in s.blocks if isinstance(b, Figure))
    assert fig.svg.startswith("<?xml") and fig.alt


def test_step_runs_on_the_shared_three_subject_study_through_reader_and_adsl(tmp_path):
    support = pytest.importorskip("support.sdtm_study")
    from mmtrial.sdtm.check import read_study
    from mmtrial.sdtm.write import write_study_folder
    from mmtrial.steps import adsl as adsl_step

    folder = write_study_folder(tmp_path / "s", support.valid_raw_domains())
    a = Analysis(study=read_study(folder), protocol=Protocol.load())
    adsl_step.run(a)
    exposure_safety.run(a)
    # S-002 hemoglobin 95 g/L -> 9.5 g/dL after the reader's conversion: anemia grade 2
    hgb = a.adam["adlb"].loc[a.adam["adlb"]["PARAMCD"] == "HGB"]
    assert hgb["AVAL"].tolist() == [pytest.approx(9.5)]
    assert hgb["ATOXGR"].tolist() == [2]
    assert a.results["safety"]["patients_with_teae"] >= 1


def test_step_runs_on_simulated_study(tmp_path):
    sim = pytest.importorskip("mmtrial.simulate")
    if not hasattr(sim, "simulate_study"):
        pytest.skip("mmtrial.simulate.simulate_study not available yet")
    from mmtrial.pipeline import run_steps
    from mmtrial.sdtm.check import read_study

    folder = sim.write_study(sim.simulate_study(n=60, seed=7), tmp_path / "sim")
    a = Analysis(study=read_study(folder), protocol=Protocol.load())
    steps = ("adsl", "exposure_safety")
    run_steps(a, steps)
    s = a.results["safety"]
    assert s["n"] > 0 and s["exposure"]["n"] > 0
    assert s["lab_worst_grade"]


def test_adlb_from_the_variables_the_step_hands_on_equals_adlb_from_every_lb_variable(tmp_path):
    """The step gives derive_adlb only ADLB_LB_VARIABLES of lb (issue 15: the others leave memory
    first): the same ADLB as from every variable of a simulated study's lb (every variable the
    simulator writes, LBSEQ included, plus the reader's), so a variable derive_adlb starts to read
    without being listed fails here."""
    sim = pytest.importorskip("mmtrial.simulate")
    from mmtrial.derive.toxgrade import derive_adlb
    from mmtrial.sdtm.check import read_study
    from mmtrial.steps import adsl as adsl_step

    folder = sim.write_study(sim.simulate_study(n=40, seed=3), tmp_path / "sim")
    a = Analysis(study=read_study(folder), protocol=Protocol.load())
    adsl_step.run(a)
    lb = a.study["lb"].assign(LBSEQ=np.arange(len(a.study["lb"]), dtype=float) + 1)
    assert set(exposure_safety.ADLB_LB_VARIABLES) <= set(lb.columns) and len(lb.columns) > 12
    narrow = lb[[c for c in lb.columns if c in exposure_safety.ADLB_LB_VARIABLES]]
    pd.testing.assert_frame_equal(derive_adlb(narrow, a.adam["adsl"]), derive_adlb(lb, a.adam["adsl"]))


def test_deaths_in_results_follow_the_deaths_table_rule_fatal_ae_without_cause():
    # docs/safety.md "deaths by cause" (TLG DTHT01): a death whose DTHCAUS is not recorded but
    # with a fatal AE (S3: fatigue, AEOUT FATAL, not related) is an adverse-event death. The
    # deaths table and results.json safety.deaths must count it the same way: 1 AE death, 0 PD,
    # 0 other (hand count from the fixture).
    a = _analysis()
    a.adam["adsl"]["DTHCAUS"] = [None, None, None]
    exposure_safety.run(a)
    d = a.results["safety"]["deaths"]
    assert (d["total"], d["progressive_disease"], d["adverse_event"]) == (1, 0, 1)
    t = next(b for s in a.sections for b in s.blocks if isinstance(b, Table) and b.id == "DTHT01")
    rows = dict(zip(t.data.iloc[:, 0].str.strip(), t.data.iloc[:, 1], strict=True))
    assert rows["Adverse event"] == "1 (33.3)"
    assert rows["Not related"] == "1 (33.3)"
    assert rows["Other or unknown"] == "0 (0.0)"


def test_lbt15_shifts_to_grade_3_4_hand_worked(done):
    # tlg-catalog.md section 5 LBT15: n/N (%), N = patients not grade 3-4 at baseline (tern
    # count_abnormal_by_baseline: missing baseline excluded from that row, kept in Total).
    # CTCAE v5.0 (domain.md 3), hand-graded from the fixture:
    #   PLAT S1 baseline 180 (LLN 150: grade 0) -> worst 20 (< 25: grade 4); S2 200 (0) -> 70 (2)
    #   HGB  S3 baseline 11.0 (LLN 12: grade 1) -> worst 7.5 (< 8.0: grade 3)
    #   SODIUM S2 128 post-baseline only: no baseline grade -> Total only, 128 is grade 2
    t = next(b for s in done.sections for b in s.blocks if isinstance(b, Table) and b.id == "LBT15")
    rows = {r[0]: list(r[1:]) for r in t.data.itertuples(index=False)}
    assert rows["Platelet count decreased (PLAT)"] == ["1/2 (50.0%)", "0/0", "1/2 (50.0%)"]
    assert rows["Anemia (HGB)"] == ["1/1 (100.0%)", "0/0", "1/1 (100.0%)"]
    assert rows["Hyponatremia (SODIUM)"] == ["0/0", "0/0", "0/1 (0.0%)"]
    col = t.data.columns[1]
    plat = list(t.data.iloc[:, 0]).index("Platelet count decreased (PLAT)")
    assert t.cell_subjects[(plat, col)] == ["S1"]


def test_aet02_shows_each_soc_once_with_its_total_under_the_group_header(done):
    # presentation rule (AET02 layout, tern/rtables): the SOC name is the row-group header only;
    # its total row reads "Any preferred term". Hand count: S1 thrombocytopenia grade 3 -> 1 (33.3)
    aet02 = next(b for s in done.sections for b in s.blocks if getattr(b, "id", "") == "AET02")
    labels = aet02.data[aet02.stub].tolist()
    socs = {g for g in aet02.groups if g}
    assert socs and not socs & set(labels)  # no SOC repeated as a row
    i = aet02.groups.index("Blood and lymphatic system disorders")
    assert labels[i] == "Any preferred term"
    assert aet02.data.iloc[i, 1:].tolist() == ["1 (33.3)", "1 (33.3)"]
    assert labels[i + 1] == "  Thrombocytopenia"


def test_laboratory_grade_footnote_names_ctcae_without_nested_brackets(done):
    # data/ctcae_v5.json name "Common Terminology Criteria for Adverse Events (CTCAE)", version 5.0
    notes = {f for s in done.sections for b in s.blocks for f in getattr(b, "footnotes", [])}
    lab = [f for f in notes if f.startswith("Laboratory grades: NCI")]
    assert lab == ["Laboratory grades: NCI Common Terminology Criteria for Adverse Events (CTCAE) v5.0."]
