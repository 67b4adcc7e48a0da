"""Step prior_therapy end to end on a small hand-made normalised study (context.py conventions).

Subjects (expected values worked by hand from domain.md 1.1, 2.6, 2.7):
* P1: penta-refractory, 5 lines (VRd+ASCT+R maintenance planned = line 1), STORM-eligible.
* P2: triple-class refractory, carfilzomib never given: fails EXP_CFZ, not penta.
* P3: daratumumab stopped for toxicity with PD 90 days later: fails REF_DAR (not TCR).
"""

from __future__ import annotations

import pandas as pd

from mmtrial.context import Analysis, Study
from mmtrial.protocol.model import load_protocol
from mmtrial.steps import prior_therapy

CAT = "PRIOR ANTI-MYELOMA THERAPY"


def _cm():
    rows = []

    def reg(s, g, drugs, st, en, reason, phase=None, link=None):
        for d in drugs:
            rows.append((s, g, d, st, en, reason, phase, link))

    # P1: VRd induction -> ASCT -> lenalidomide maintenance (planned, linked) = line 1
    reg("P1", "R1", ["BORTEZOMIB", "LENALIDOMIDE", "DEXAMETHASONE"], "2012-01-01", "2012-04-30", "PLANNED", "INDUCTION", "L1")
    reg("P1", "R2", ["LENALIDOMIDE"], "2012-08-01", "2014-06-30", "PROGRESSIVE DISEASE", "MAINTENANCE", "L1")
    reg("P1", "R3", ["CARFILZOMIB", "DEXAMETHASONE"], "2014-07-15", "2015-05-31", "PROGRESSIVE DISEASE")
    reg("P1", "R4", ["POMALIDOMIDE", "CYCLOPHOSPHAMIDE", "DEXAMETHASONE"], "2015-06-15", "2016-05-31", "PROGRESSIVE DISEASE")
    reg("P1", "R5", ["DARATUMUMAB", "DEXAMETHASONE"], "2016-06-15", "2017-06-30", "PROGRESSIVE DISEASE")
    reg("P1", "R6", ["MELPHALAN", "BORTEZOMIB", "DEXAMETHASONE"], "2017-07-15", "2017-12-31", "PROGRESSIVE DISEASE")
    # P2: no carfilzomib
    reg("P2", "R1", ["BORTEZOMIB", "DEXAMETHASONE"], "2013-01-01", "2013-12-31", "PROGRESSIVE DISEASE")
    reg("P2", "R2", ["POMALIDOMIDE", "DEXAMETHASONE"], "2014-01-15", "2015-12-31", "PROGRESSIVE DISEASE")
    reg("P2", "R3", ["DARATUMUMAB", "MELPHALAN", "DEXAMETHASONE"], "2016-01-15", "2017-11-30", "PROGRESSIVE DISEASE")
    # P3: daratumumab stopped for toxicity; PD 90 days later
    reg("P3", "R1", ["BORTEZOMIB", "LENALIDOMIDE", "DEXAMETHASONE"], "2014-01-01", "2015-12-31", "PROGRESSIVE DISEASE")
    reg("P3", "R2", ["DARATUMUMAB", "DEXAMETHASONE"], "2016-01-15", "2016-04-30", "TOXICITY")
    reg("P3", "R3", ["CARFILZOMIB", "POMALIDOMIDE", "CYCLOPHOSPHAMIDE", "DEXAMETHASONE"], "2016-05-10", "2017-12-01", "PROGRESSIVE DISEASE")
    df = pd.DataFrame(rows, columns=["USUBJID", "CMGRPID", "CMTRT", "CMSTDT", "CMENDT", "CMRSDISC", "CMSCAT", "CMLNKGRP"])
    df["CMCAT"] = CAT
    df["CMSTDT"] = pd.to_datetime(df["CMSTDT"])
    df["CMENDT"] = pd.to_datetime(df["CMENDT"])
    df["CMSTDTF"] = ""
    df["CMENDTF"] = ""
    df["ROWNUM"] = range(1, len(df) + 1)
    return df


def _rs():
    rows = [
        ("P1", "R2", "2014-06-30"), ("P1", "R3", "2015-05-31"), ("P1", "R4", "2016-05-31"),
        ("P1", "R5", "2017-06-30"), ("P1", "R6", "2017-12-31"),
        ("P2", "R1", "2013-12-31"), ("P2", "R2", "2015-12-31"), ("P2", "R3", "2017-11-30"),
        ("P3", "R1", "2015-12-31"), ("P3", "R2", "2016-07-29"), ("P3", "R3", "2017-12-01"),
    ]
    df = pd.DataFrame(rows, columns=["USUBJID", "RSGRPID", "RSDT"])
    df["RSDT"] = pd.to_datetime(df["RSDT"])
    df["RSDTF"] = ""
    df["RSCAT"] = "PRIOR THERAPY"
    df["RSTESTCD"] = "OVRLRESP"
    df["RSSTRESC"] = "PD"
    df["ROWNUM"] = range(1, len(df) + 1)
    return df


def _study():
    pr = pd.DataFrame({"USUBJID": ["P1"], "PRTRT": ["AUTOLOGOUS STEM CELL TRANSPLANT"],
                       "PRSTDT": pd.to_datetime(["2012-06-15"]), "PRSTDTF": [""], "PRLNKGRP": ["L1"], "ROWNUM": [1]})
    mh = pd.DataFrame({"USUBJID": ["P1", "P2", "P3"], "MHCAT": "PRIMARY DIAGNOSIS",
                       "MHTERM": ["IGG KAPPA MULTIPLE MYELOMA", "KAPPA LIGHT CHAIN MULTIPLE MYELOMA", "IGA LAMBDA MULTIPLE MYELOMA"],
                       "MHSTDT": pd.to_datetime(["2011-07-01", "2012-07-01", "2013-07-01"]), "ROWNUM": [1, 2, 3]})
    lb = pd.DataFrame({
        "USUBJID": ["P1", "P1", "P2", "P1", "P2", "P3"],
        "LBCAT": ["CYTOGENETICS", "CYTOGENETICS", "CYTOGENETICS", "DISEASE ASSESSMENT", "DISEASE ASSESSMENT", "DISEASE ASSESSMENT"],
        "LBTESTCD": ["DEL17P", "T414", "DEL17P", "MPROTEIN", "MPROTEIN", "MPROTEIN"],
        "LBSPEC": ["BONE MARROW", "BONE MARROW", "BONE MARROW", "SERUM", "SERUM", "SERUM"],
        "LBSTRESC": ["POSITIVE", "NEGATIVE", "NEGATIVE", None, None, None],
        "LBSTRESN": [None, None, None, 2.0, 1.5, 3.0],
        "LBSTRESU": [None, None, None, "g/dL", "g/dL", "g/dL"],
        "LBDT": pd.to_datetime(["2018-01-10"] * 6), "ROWNUM": range(1, 7),
    })
    study = Study(domains={"cm": _cm(), "rs": _rs(), "pr": pr, "mh": mh, "lb": lb}, synthetic=True)
    adsl = pd.DataFrame({"USUBJID": ["P1", "P2", "P3"], "AGE": [66.0, 70.0, 58.0], "SEX": ["M", "F", "M"],
                         "RACE": ["WHITE"] * 3, "TRTSDT": pd.to_datetime(["2018-01-15"] * 3),
                         "SAFFL": ["Y", "Y", "Y"], "MEASFL": ["Y", "Y", "Y"]})
    a = Analysis(study=study, protocol=load_protocol())
    a.adam["adsl"] = adsl
    return a


def test_step_derives_adsl_flags_lines_and_eligibility():
    a = _study()
    prior_therapy.run(a)
    s = a.adam["adsl"].set_index("USUBJID")
    # P1: line 1 = VRd + ASCT + R maintenance (linked); then KRd.., Pcd, Dd, Md -> 5 lines
    assert s["NLINES"].to_dict() == {"P1": 5, "P2": 3, "P3": 3}
    assert s["PENTAFL"].to_dict() == {"P1": "Y", "P2": "N", "P3": "N"}
    assert s["TCRFL"].to_dict() == {"P1": "Y", "P2": "Y", "P3": "N"}
    assert s["TCEFL"].to_dict() == {"P1": "Y", "P2": "Y", "P3": "Y"}
    assert s["PRSCTFL"].to_dict() == {"P1": "Y", "P2": "N", "P3": "N"}
    assert s["DARREFFL"].to_dict() == {"P1": "Y", "P2": "Y", "P3": "N"}
    assert s["ELIGFL"].to_dict() == {"P1": "Y", "P2": "N", "P3": "N"}
    # label: >= 4 lines, >= 2 PI, >= 2 IMiD, anti-CD38 refractory: only P1
    assert s["LABELFL"].to_dict() == {"P1": "Y", "P2": "N", "P3": "N"}
    assert s["MMTYPE"].to_dict() == {"P1": "IgG", "P2": "Light chain", "P3": "IgA"}
    assert s["HRCYTOFL"].astype(object).where(s["HRCYTOFL"].notna(), None).to_dict() == {"P1": "Y", "P2": "N", "P3": None}
    # time since diagnosis: P1 2011-07-01 -> 2018-01-15 = 2390 days / 365.25
    assert abs(s.loc["P1", "DIAGYRS"] - 2390 / 365.25) < 1e-9
    assert s["LSTREFFL"].to_dict() == {"P1": "Y", "P2": "Y", "P3": "Y"}


def test_step_eligibility_listing_names_criterion_and_evidence():
    a = _study()
    prior_therapy.run(a)
    res = a.results["eligibility"]
    assert res["eligible"] == 1
    assert res["failing"]["EXP_CFZ"] == 1
    assert res["failing"]["REF_DAR"] == 1
    sec = next(s for s in a.sections if s.id == "baseline")
    assert sec.order == 20
    lst = next(b for b in sec.blocks if getattr(b, "id", "") == "eligibility-failures")
    rows = lst.data.set_index(["USUBJID", "Criterion id"])
    assert rows.loc[("P2", "EXP_CFZ"), "Evidence"] == "no carfilzomib in prior therapy"
    # P3 daratumumab: last dose 2016-04-30, PD 2016-07-29 = 90 days after (window 60)
    ev = rows.loc[("P3", "REF_DAR"), "Evidence"]
    assert "last dose 2016-04-30" in ev and "2016-07-29" in ev and "90 days after last dose" in ev


def test_step_adlot_adrefr_traceability_and_baseline_table():
    a = _study()
    prior_therapy.run(a)
    lot = a.adam["adlot"]
    l1 = lot.loc[(lot["USUBJID"] == "P1") & (lot["LINENUM"] == 1)].iloc[0]
    assert l1["REGIMENS"] == "R1;SCT1;R2"
    assert l1["LOTREFFL"] == "Y"  # PD on lenalidomide maintenance
    refr = a.adam["adrefr"].set_index(["USUBJID", "DRUG"])
    ev = refr.loc[("P1", "daratumumab")]
    assert (ev["REFGRPID"], str(ev["REFPDDT"].date()), ev["REFDAYS"]) == ("R5", "2017-06-30", 0)
    sec = next(s for s in a.sections if s.id == "baseline")
    table = sec.blocks[0]
    data = table.data.set_index("Characteristic")
    assert data.columns.tolist() == ["All patients (N=3)", "Penta-refractory (N=1)"]
    assert data.loc["Penta-refractory", "All patients (N=3)"] == "1 (33.3)"
    assert data.loc["Triple-class refractory", "All patients (N=3)"] == "2 (66.7)"
    assert data.loc["Prior lines of therapy: median (range)", "All patients (N=3)"] == "3 (3-5)"
    pos = data.index.get_loc("Triple-class refractory")
    assert table.cell_subjects[(pos, "All patients (N=3)")] == ["P1", "P2"]
    assert a.results["baseline"]["penta"] == {"n": 1, "pct": 33.3}
    assert a.results["baseline"]["median_prior_lines"] == 3.0
    assert "prior_therapy" in a.methods and a.methods["prior_therapy"]["refractory"]["window_days"] == 60


def test_step_is_idempotent_and_keeps_other_adsl_columns():
    a = _study()
    prior_therapy.run(a)
    first = a.adam["adsl"].copy()
    prior_therapy.run(a)
    pd.testing.assert_frame_equal(first, a.adam["adsl"])
    assert "RACE" in a.adam["adsl"] and len([s for s in a.sections if s.id == "baseline"]) == 1


def test_eligibility_sentence_has_no_nested_brackets():
    # the sources carry their own brackets ("... (STORM Part 2 eligibility)"), so the sentence
    # names them after a colon: no "((" or "))" in the text
    a = _study()
    prior_therapy.run(a)
    sec = next(s for s in a.sections if s.id == "baseline")
    text = next(b.text for b in sec.blocks if getattr(b, "text", "").startswith("Eligibility"))
    assert "))" not in text and "((" not in text
    assert text.startswith("Eligibility by the protocol inclusion criteria: 1 of 3 subjects meet all")
    assert "Criteria source: Chari A, et al." in text
