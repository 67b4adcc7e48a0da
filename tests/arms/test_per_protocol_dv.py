"""Per-protocol population from protocol deviations (issue 13): ``[randomisation]
per_protocol_exclude`` names the dv categories (DVCAT or DVDECOD) that take a subject out of
PPROTFL (ICH E9 section 5.2.2: the per-protocol set excludes major protocol violations), and the
dv input checks. Expected values are hand-worked on the frames shown."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from mmtrial.derive.arms import derive_var_pprotfl
from mmtrial.protocol.arms import RandomisationConfig
from mmtrial.sdtm.randomisation import check_deviations


def _adsl() -> pd.DataFrame:
    return pd.DataFrame({"USUBJID": ["S1", "S2", "S3", "S4", "S5"], "ITTFL": ["Y", "Y", "Y", "Y", "N"],
                         "SAFFL": ["Y", "Y", "Y", "N", "N"], "ARMCD": ["A", "A", "B", "B", "A"],
                         "ACTARMCD": ["A", "A", "A", "NOTTRT", "A"]})


DV = pd.DataFrame({"USUBJID": ["S1", "S2", "S2"], "DVCAT": ["MINOR", "major", None],
                   "DVDECOD": ["VISIT OUT OF WINDOW", "ELIGIBILITY CRITERIA NOT MET", "WRONG DOSE"]})


def test_major_deviation_excludes_from_per_protocol():
    # S1: minor deviation only -> stays; S2: a MAJOR one (case-insensitive) -> out;
    # S3: treated with the other arm -> out; S4 not treated, S5 not randomised -> out
    out = derive_var_pprotfl(_adsl(), DV, ["MAJOR"])
    assert out["PPROTFL"].tolist() == ["Y", "N", "N", "N", "N"]


def test_exclusion_by_coded_term_and_without_a_rule():
    assert derive_var_pprotfl(_adsl(), DV, ["visit out of window"])["PPROTFL"].tolist() == ["N", "Y", "N", "N", "N"]
    assert derive_var_pprotfl(_adsl(), DV, [])["PPROTFL"].tolist() == ["Y", "Y", "N", "N", "N"]  # dv not read
    assert derive_var_pprotfl(_adsl(), None, ["MAJOR"])["PPROTFL"].tolist() == ["Y", "Y", "N", "N", "N"]


def test_dv_checks():
    assert check_deviations(DV, []) == []
    assert check_deviations(DV, ["MAJOR"]) == []
    miss = check_deviations(None, ["MAJOR"])
    assert [(i.domain, i.rule, i.severity) for i in miss] == [("dv", "MISSING_DOMAIN", "warning")]
    nocat = check_deviations(DV[["USUBJID"]], ["MAJOR"])
    assert [(i.rule, i.severity) for i in nocat] == [("MISSING_VARIABLE", "error")]
    typo = check_deviations(DV, ["MAJOR", "MAJRO"])
    assert [(i.rule, i.value) for i in typo] == [("DEVIATION_CATEGORY_UNUSED", "MAJRO")]


def test_protocol_exclusion_needs_per_protocol():
    ok = RandomisationConfig(experimental="A", control="B", per_protocol=True, per_protocol_exclude=["MAJOR"])
    assert ok.per_protocol_exclude == ["MAJOR"]
    with pytest.raises(ValidationError, match="per_protocol_exclude needs per_protocol"):
        RandomisationConfig(experimental="A", control="B", per_protocol_exclude=["MAJOR"])
