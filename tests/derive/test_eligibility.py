"""Eligibility as data (STORM Part 2, Chari 2019: domain.md 1.1, tag C), the label population
(XPOVIO 2019 section 1.1: domain.md 1.9, tag C), myeloma type, time since diagnosis and
high-risk cytogenetics."""

from __future__ import annotations

import pandas as pd
import pytest

from mmtrial.derive.drugs import DrugDictionary
from mmtrial.derive.eligibility import (
    Criterion,
    EligibilityRule,
    derive_cytogenetics,
    derive_disease_history,
    derive_eligibility,
    derive_eligibility_listing,
)
from mmtrial.protocol.model import load_protocol

DICT = DrugDictionary.load()
FIVE = ["bortezomib", "carfilzomib", "lenalidomide", "pomalidomide", "daratumumab"]


def status(rows):
    return pd.DataFrame(rows, columns=["USUBJID", "DRUG", "EXPFL", "REFFL"]).assign(
        LDOSEDT=pd.Timestamp("2018-01-01"), NXTPDDT=pd.NaT, NXTPDDY=pd.array([pd.NA] * len(rows), dtype="Int64"))


def storm_patient(sid, refractory=FIVE, extra=(("melphalan", "Y", "N"), ("dexamethasone", "Y", "Y"))):
    return [(sid, d, "Y", "Y" if d in refractory else "N") for d in FIVE] + [(sid, *e) for e in extra]


def subjects(ids, nlines=7, lastref="Y", meas="Y"):
    return pd.DataFrame({"USUBJID": ids, "NLINES": nlines, "LSTREFFL": lastref, "MEASFL": meas})


def test_storm_patient_meets_every_inclusion_criterion_and_label():
    st = status(storm_patient("S1"))
    e = derive_eligibility(subjects(["S1"]), st, dictionary=DICT).iloc[0]
    assert (e["ELIGFL"], e["LABELFL"]) == ("Y", "Y")


@pytest.mark.parametrize(
    ("case", "failing"),
    [
        # STORM: prior alkylator required
        ("no_alkylator", "EXP_ALK"),
        # STORM: refractory to daratumumab (exposed only is not enough)
        ("dara_not_refractory", "REF_DAR"),
        # STORM: refractory to the last line
        ("last_line_not_refractory", "REF_LAST"),
        # STORM: measurable disease
        ("not_measurable", "MEASURABLE"),
        # STORM: glucocorticoid-refractory
        ("gc_not_refractory", "REF_GC"),
    ],
)
def test_each_storm_criterion_fails_alone(case, failing):
    extra = (("melphalan", "Y", "N"), ("dexamethasone", "Y", "N" if case == "gc_not_refractory" else "Y"))
    if case == "no_alkylator":
        extra = (("dexamethasone", "Y", "Y"),)
    ref = [d for d in FIVE if not (case == "dara_not_refractory" and d == "daratumumab")]
    st = status(storm_patient("S1", ref, extra))
    subj = subjects(["S1"], lastref="N" if case == "last_line_not_refractory" else "Y",
                    meas="N" if case == "not_measurable" else "Y")
    e = derive_eligibility(subj, st, dictionary=DICT).iloc[0]
    failed = [c.id for c in EligibilityRule().criteria if e[f"ELIG_{c.id}"] == "N"]
    assert failed == [failing]
    assert e["ELIGFL"] == "N"


def test_label_population_needs_four_lines_two_pis_two_imids_and_anti_cd38():
    # XPOVIO 2019 section 1.1: >= 4 prior therapies, refractory to >= 2 PIs, >= 2 IMiDs, an anti-CD38
    st = status(storm_patient("S1") + storm_patient("S2") + storm_patient("S3", [d for d in FIVE if d != "carfilzomib"]))
    subj = subjects(["S1", "S2", "S3"])
    subj.loc[1, "NLINES"] = 3
    e = derive_eligibility(subj, st, dictionary=DICT).set_index("USUBJID")
    assert e["LABELFL"].to_dict() == {"S1": "Y", "S2": "N", "S3": "N"}
    assert e.loc["S2", "LABEL_LINES4"] == "N" and e.loc["S3", "LABEL_REF_PI2"] == "N"
    # 4 lines is enough (>= 4)
    subj.loc[1, "NLINES"] = 4
    assert derive_eligibility(subj, st, dictionary=DICT).set_index("USUBJID").loc["S2", "LABELFL"] == "Y"


def test_listing_gives_criterion_and_evidence_for_each_failure():
    st = status(storm_patient("S1", [d for d in FIVE if d != "daratumumab"], extra=(("dexamethasone", "Y", "Y"),)))
    subj = subjects(["S1"])
    e = derive_eligibility(subj, st, dictionary=DICT)
    adlot = pd.DataFrame({"USUBJID": ["S1"], "LINENUM": [7], "DRUGS": ["x"], "LOTENDT": [pd.Timestamp("2018-01-01")],
                          "LOTPDDT": [pd.Timestamp("2018-01-02")]})
    lst = derive_eligibility_listing(e, status=st, subjects=subj, adlot=adlot, dictionary=DICT)
    assert lst["CRITID"].tolist() == ["EXP_ALK", "REF_DAR"]
    assert lst["EVIDENCE"].iloc[0] == "ALKYLATOR (need >= 1 exposed): exposed to none; refractory to none"
    assert lst["EVIDENCE"].iloc[1].startswith("daratumumab last dose 2018-01-01; refractory N")


def test_protocol_section_parses_and_matches_defaults():
    rule = EligibilityRule.from_protocol(load_protocol().section("eligibility"))
    assert [c.id for c in rule.criteria] == [c.id for c in EligibilityRule().criteria]
    assert [c.terms for c in rule.label_population] == [c.terms for c in EligibilityRule().label_population]
    with pytest.raises(ValueError, match="not understood"):
        Criterion("X", "bad", ("refractory to PI",))
    with pytest.raises(ValueError, match="unknown option"):
        EligibilityRule.from_protocol({"criterion": []})


def test_myeloma_type_and_time_since_diagnosis_from_mh():
    # data-contract.md mh PRIMARY DIAGNOSIS; DIAGYRS = (TRTSDT - DIAGDT) / 365.25
    mh = pd.DataFrame({"USUBJID": ["A", "B", "C", "D"], "MHCAT": "PRIMARY DIAGNOSIS",
                       "MHTERM": ["IGG KAPPA MULTIPLE MYELOMA", "LAMBDA LIGHT CHAIN MULTIPLE MYELOMA",
                                  "NON-SECRETORY MULTIPLE MYELOMA", "PLASMA CELL NEOPLASM"],
                       "MHSTDT": pd.to_datetime(["2012-01-01", "2013-01-01", "2014-01-01", None]), "ROWNUM": [1, 2, 3, 4]})
    adsl = pd.DataFrame({"USUBJID": ["A", "B", "C", "D", "E"], "TRTSDT": pd.to_datetime(["2019-01-01"] * 5)})
    h, issues = derive_disease_history(mh, adsl)
    h = h.set_index("USUBJID")
    assert h["MMTYPE"].fillna("-").to_dict() == {"A": "IgG", "B": "Light chain", "C": "Non-secretory", "D": "Other", "E": "-"}
    assert h.loc["B", "MMLCTYPE"] == "Lambda"
    assert h.loc["A", "DIAGYRS"] == pytest.approx(2557 / 365.25)  # 2012-01-01 -> 2019-01-01 = 2557 days
    assert [(i.domain, i.variable, i.row) for i in issues] == [("mh", "MHTERM", 4)]


def test_high_risk_cytogenetics_default_and_configurable():
    # default high risk: del(17p), t(4;14), t(14;16) positive; gain(1q) only when configured;
    # results after first dose ignored; untested -> missing
    lb = pd.DataFrame({
        "USUBJID": ["A", "B", "B", "C", "D"], "LBCAT": "CYTOGENETICS",
        "LBTESTCD": ["T1416", "DEL17P", "GAIN1Q", "DEL17P", "DEL17P"],
        "LBSTRESC": ["POSITIVE", "NEGATIVE", "POSITIVE", "POSITIVE", "NEGATIVE"],
        "LBDT": pd.to_datetime(["2018-12-01", "2018-12-01", "2018-12-01", "2019-02-01", "2018-12-01"]),
    })
    adsl = pd.DataFrame({"USUBJID": ["A", "B", "C", "D", "E"], "TRTSDT": pd.to_datetime(["2019-01-01"] * 5)})
    c = derive_cytogenetics(lb, adsl).set_index("USUBJID")
    assert c["HRCYTOFL"].fillna("-").to_dict() == {"A": "Y", "B": "N", "C": "-", "D": "N", "E": "-"}
    assert c.loc["B", "GAIN1QFL"] == "Y"
    wide = derive_cytogenetics(lb, adsl, rule=EligibilityRule(high_risk_cytogenetics=("DEL17P", "T414", "T1416", "GAIN1Q")))
    assert wide.set_index("USUBJID").loc["B", "HRCYTOFL"] == "Y"
