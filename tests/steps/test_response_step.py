"""Step ``response`` end to end on a crafted study with STORM's published BOR distribution.

Expected values: STORM Part 2 mITT (Chari et al., NEJM 2019; domain.md 1.3, tag C): sCR 2, CR 0,
VGPR 6, PR 24, MR 16 -> ORR 32/122 = 26.2% with Clopper-Pearson 95% CI 18.7-35.0
(validation.md section 1), clinical benefit 48/122 = 39.3% with CI 30.6-48.6 (domain.md 1.3a).
SD 48 and PD/NE 26 (split here 20/6) complete the 122. One more dosed subject without measurable
disease makes the safety population 123.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mmtrial.context import Analysis, Study
from mmtrial.protocol.model import Protocol
from mmtrial.report.model import Figure, Listing, Table
from mmtrial.steps import response as step

T0 = pd.Timestamp("2020-01-01")
SPEC = {"SPEP": ("MPROTEIN", "SERUM", "g/dL"), "IFES": ("IFE", "SERUM", None), "IFEU": ("IFE", "URINE", None),
        "BMPC": ("BMPC", "BONE MARROW", "%"), "BMCLON": ("BMCLONAL", "BONE MARROW", None),
        "KAPPA": ("KAPPAFLC", "SERUM", "mg/dL"), "LAMBDA": ("LAMBDFLC", "SERUM", "mg/dL")}
# serum M-protein at days 0, 28, 56 per BOR category (hand-worked: 2.0 -> x is a (2-x)/2 reduction)
COURSE = {"sCR": [2.0, 0.0, 0.0], "VGPR": [2.0, 0.1, 0.1], "PR": [2.0, 0.9, 0.9], "MR": [2.0, 1.4, 1.4],
          "SD": [2.0, 1.9, 1.9], "PD": [2.0, 2.6, 2.7], "NE": [2.0]}
STORM = {"sCR": 2, "CR": 0, "VGPR": 6, "PR": 24, "MR": 16, "SD": 48, "PD": 20, "NE": 6}


def storm_like_study() -> tuple[Study, pd.DataFrame, dict[str, str]]:
    rows, truth, subjects = [], {}, []
    i = 0
    for cat, n in STORM.items():
        for _ in range(n):
            i += 1
            s = f"S{i:03d}"
            subjects.append(s)
            truth[s] = cat
            for d, v in zip((0, 28, 56), COURSE[cat], strict=False):
                rows.append((s, d, "SPEP", v))
            if cat == "sCR":
                rows += [(s, d, k, "NEGATIVE") for d in (28, 56) for k in ("IFES", "IFEU")]
                rows += [(s, 20, "BMPC", 2.0), (s, 20, "BMCLON", "NEGATIVE")]
                rows += [(s, d, k, 1.0) for d in (28, 56) for k in ("KAPPA", "LAMBDA")]
    subjects.append("S999")  # dosed, not measurable (0.3 g/dL)
    rows += [("S999", 0, "SPEP", 0.3), ("S999", 28, "SPEP", 0.3)]
    lb = pd.DataFrame([{"USUBJID": s, "LBTESTCD": SPEC[k][0], "LBSPEC": SPEC[k][1],
                        "LBSTRESN": np.nan if isinstance(v, str) else v, "LBSTRESC": v if isinstance(v, str) else None,
                        "LBSTRESU": SPEC[k][2], "LBDT": T0 + pd.Timedelta(days=d), "ROWNUM": j + 1}
                       for j, (s, d, k, v) in enumerate(rows)])
    adsl = pd.DataFrame({"STUDYID": "T", "USUBJID": subjects, "TRTSDT": T0, "SAFFL": "Y"})
    return Study(domains={"lb": lb}, synthetic=True), adsl, truth


def run_step(options=None, rs=None) -> tuple[Analysis, dict[str, str]]:
    study, adsl, truth = storm_like_study()
    if rs is not None:
        study.domains["rs"] = rs
    a = Analysis(study=study, protocol=Protocol.load(), adam={"adsl": adsl}, options=options or {})
    step.run(a)
    return a, truth


@pytest.fixture(scope="module")
def analysis():
    return run_step()


def test_counts_and_cis_reproduce_storm_table(analysis):
    a, _ = analysis
    r = a.results["response"]
    assert r["counts"] == STORM and r["n"] == 122
    assert (r["orr"]["x"], r["orr"]["n"]) == (32, 122)
    assert [round(100 * v, 1) for v in r["orr"]["ci"]] == [18.7, 35.0]  # validation.md 1: CP 18.7-35.0
    assert (r["cbr"]["x"], [round(100 * v, 1) for v in r["cbr"]["ci"]]) == (48, [30.6, 48.6])  # domain.md 1.3a
    assert r["vgpr_or_better"]["x"] == 8 and r["orr"]["method"] == "clopper-pearson"


def test_adsl_and_adrs_variables(analysis):
    a, truth = analysis
    adsl = a.adam["adsl"].set_index("USUBJID")
    for v in ("MEASFL", "RSPROUTE", "EFFFL", "BOR", "BORDT", "RSPFL", "CBRFL", "VGPRFL", "RSPDT", "MRDT", "PDDT",
              "LSTADQDT", "NACTDT"):
        assert v in adsl.columns, v
    assert dict(adsl.loc[list(truth), "BOR"]) == truth
    assert adsl.loc["S999", ["MEASFL", "EFFFL", "RSPROUTE"]].tolist() == ["N", "N", "NONE"]
    adrs = a.adam["adrs"]
    assert set(adrs["PARAMCD"]) == {"OVR", "BOR"} and (adrs["PARAMCD"] == "BOR").sum() == 122
    assert set(adrs["AVALC"]) <= {"sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"}
    assert adrs["ADT"].dtype.kind == "M"


def test_section_table_links_counts_to_subjects(analysis):
    a, truth = analysis
    sec = next(s for s in a.sections if s.id == "efficacy-response")
    assert sec.order == 40
    tab = next(b for b in sec.blocks if isinstance(b, Table))
    assert tab.data.iloc[0, 1] == "2 (1.6)" and tab.data.iloc[8, 1] == "32 (26.2)"
    assert tab.data.iloc[8, 2] == "(18.7, 35.0)"
    assert sorted(tab.cell_subjects[(0, "n (%)")]) == sorted(s for s, c in truth.items() if c == "sCR")
    text = " ".join(tab.footnotes)
    for needle in ("modified intention-to-treat", "IMWG 2016", "two consecutive", "0.5 g/dL", "Clopper-Pearson",
                   "PD nadir"):
        assert needle in text, needle
    fig = next(b for b in sec.blocks if isinstance(b, Figure))
    assert fig.svg.startswith("<svg") and "116 patients" in fig.alt  # 122 minus 6 NE without post-baseline
    assert a.methods["response"]["ci"]["method"] == "clopper-pearson"
    assert a.methods["response"]["options"]["nadir_basis"] == "all"


def test_protocol_options_override_and_validation():
    a, _ = run_step(options={"response": {"serum_measurable_g_dl": 2.5}})
    assert a.results["response"]["n"] == 0  # every baseline is 2.0 g/dL < 2.5
    with pytest.raises(ValidationError):
        run_step(options={"response": {"nadir_basis": "lowest"}})


def test_concordance_with_assessor_responses():
    t = T0 + pd.Timedelta(days=28)
    # IRC agrees with the derived PR for S009-S012 (PR subjects) except S012 where it says MR;
    rs = pd.DataFrame({
        "USUBJID": ["S009", "S009", "S010", "S010", "S011", "S011", "S012", "S012"],
        "RSTESTCD": "OVRLRESP", "RSCAT": None, "RSEVAL": "INDEPENDENT ASSESSOR",
        "RSSTRESC": ["PR", "PR", "PR", "PR", "PR", "PR", "MR", "MR"],
        "RSDT": [t, t + pd.Timedelta(days=28)] * 4, "ROWNUM": range(1, 9)})
    a, _ = run_step(rs=rs)
    c = a.results["response"]["concordance"]["INDEPENDENT ASSESSOR"]
    assert (c["n"], c["agree"]) == (4, 3) and c["table"]["PR"]["MR"] == 1
    sec = next(s for s in a.sections if s.id == "efficacy-response")
    lst = next(b for b in sec.blocks if isinstance(b, Listing))
    row = lst.data.iloc[0]
    assert row["USUBJID"] == "S012" and "SPEP 0.90" in row["Assessments (derived category and values)"]


def test_confirmed_nadir_footnote_states_the_rule_implemented():
    # The footnote must describe compute_prior_nadir(basis="confirmed") (docs/imwg-response.md,
    # "Nadir reading"): an earlier value counts as the higher of it and the next value. Values
    # 2.0, 0.5, 1.0 (baseline 2.0): the confirmed nadir before the third is max(0.5, 1.0) = 1.0
    # only once both are in the past, so it is 2.0 there, never 0.5 (the lower of the pair).
    from mmtrial.derive.response import compute_prior_nadir

    nad = compute_prior_nadir(np.zeros(4, dtype="int64"), np.array([2.0, 0.5, 1.0, 1.0]), np.full(4, 2.0),
                              basis="confirmed")
    assert list(nad) == [2.0, 2.0, 2.0, 1.0]
    cfg = step.ResponseConfig(nadir_basis="confirmed")
    text = " ".join(step.method_footnotes(cfg, "95% CI", "mITT"))
    assert "higher of it and the next value" in text and "lower of two" not in text
