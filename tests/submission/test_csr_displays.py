"""CSR displays of issue 14 (tables/csr_more.py, figures/csr_more.py) on hand-built data.

Oracles: exposure-adjusted incidence rate worked by hand (FDA STF IG 2.2.4: patients with the
event per 100 patient-years at risk, time to first event or end of the TEAE window); the exact
Poisson interval of Garwood (1936) at k = 1: (0.0253, 5.5716) (Ulm 1990, Table 1); quartiles by
SAS QNTLDEF=5 worked by hand (R quantile type 2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.figures import csr_more as fm
from mmtrial.figures.svg import figure_to_svg
from mmtrial.tables import csr_more as tm


def _adsl():
    return pd.DataFrame({
        "USUBJID": ["1", "2", "3"], "SAFFL": ["Y", "Y", "Y"], "EFFFL": ["Y", "Y", "Y"],
        "TRTSDT": pd.to_datetime(["2020-01-01"] * 3), "TRTEDT": pd.to_datetime(["2020-01-31", "2020-03-01", "2020-01-10"]),
        "DTHDT": pd.to_datetime([None, None, "2020-01-20"]), "LSTALVDT": pd.to_datetime(["2020-06-01", "2020-06-01", "2020-01-20"]),
        "BOR": ["PR", "MR", "PD"], "MRDT": pd.to_datetime(["2020-01-29", "2020-02-26", None]),
        "PDDT": pd.to_datetime([None, "2020-03-10", "2020-01-15"]), "EOTSTT": ["ONGOING", "DISCONTINUED", "DISCONTINUED"],
    })


def _adae():
    return pd.DataFrame({
        "USUBJID": ["1", "1", "2", "3"], "AEDECOD": ["NAUSEA", "NAUSEA", "FATIGUE", "NAUSEA"],
        "AEBODSYS": ["GI", "GI", "GEN", "GI"], "ASTDT": pd.to_datetime(["2020-01-10", "2020-01-05", "2020-02-01", "2020-01-03"]),
        "ATOXGR": [1.0, 3.0, 2.0, 4.0], "TRTEMFL": ["Y", "Y", "Y", "Y"], "AERELFL": ["Y", "N", "Y", "Y"],
    })


def test_eair_by_hand():
    r = {x.term: x for x in tm.compute_eair(_adae(), _adsl(), window_days=30)}
    # windows: S1 2020-01-01..2020-03-01 (TRTEDT+30) = 61 d; S2 ..2020-03-31 = 91 d; S3 capped at death 01-20 = 20 d
    # NAUSEA: S1 first onset 01-05 -> 5 d, S3 01-03 -> 3 d, S2 none -> 91 d: 99 d
    assert r["NAUSEA"].n == 2 and r["NAUSEA"].patient_years == pytest.approx(99 / 365.25)
    assert r["NAUSEA"].rate == pytest.approx(100 * 2 / (99 / 365.25))
    # FATIGUE: S2 02-01 -> 32 d; S1 61, S3 20: 113 d; one event: Garwood CI (0.0253, 5.5716) events
    py = 113 / 365.25
    assert r["FATIGUE"].patient_years == pytest.approx(py)
    assert r["FATIGUE"].ci[0] == pytest.approx(100 * 0.025318 / py, rel=1e-3)
    assert r["FATIGUE"].ci[1] == pytest.approx(100 * 5.571643 / py, rel=1e-4)


def test_related_ae_by_worst_related_grade():
    t = tm.table_related_ae_by_grade(_adae(), _adsl())
    rows = {(g, r[0]): list(r[1:]) for g, r in zip(t.groups, t.data.itertuples(index=False), strict=True)}
    # related: S1 NAUSEA grade 1 (its grade-3 nausea is not related), S2 FATIGUE 2, S3 NAUSEA 4; N = 3
    assert rows[("", "Any treatment-related event")] == ["3 (100.0)", "2 (66.7)", "0 (0.0)", "1 (33.3)", "0 (0.0)"]
    assert rows[("GI", "  NAUSEA")] == ["2 (66.7)", "1 (33.3)", "0 (0.0)", "1 (33.3)", "0 (0.0)"]
    assert t.population == "Safety population (N = 3)"


def test_lab_by_visit_quartiles_sas_definition_5():
    adlb = pd.DataFrame({
        "USUBJID": ["1", "2", "3", "4", "5", "1", "2", "3", "4", "5"], "PARAMCD": ["PLAT"] * 10,
        "AVAL": [1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, np.nan], "AVALU": ["10^9/L"] * 10,
        "ABLFL": ["Y"] * 5 + [None] * 5, "ONTRTFL": [None] * 5 + ["Y"] * 5,
        "AVISITN": [0.0] * 5 + [8.0] * 5, "AVISIT": ["BASELINE"] * 5 + ["CYCLE 1 DAY 8"] * 5,
        "ADY": [-1.0] * 5 + [8.0] * 5, "ADT": pd.to_datetime(["2020-01-01"] * 10),
    })
    adsl = pd.DataFrame({"USUBJID": list("12345"), "SAFFL": ["Y"] * 5})
    st = tm.compute_lab_by_visit(adlb, adsl, min_n=4).set_index("AVISITN")
    # n = 5 values 1..5: QNTLDEF=5 Q1 = 2 (np = 1.25 -> x(2)), median 3, Q3 = 4
    assert st.loc[0.0, ["n", "q1", "median", "q3"]].tolist() == [5, 2.0, 3.0, 4.0]
    # n = 4 values 10..40: np = 1 is an integer -> Q1 = (x1 + x2) / 2 = 15; median 25; Q3 35
    assert st.loc[8.0, ["n", "q1", "median", "q3"]].tolist() == [4, 15.0, 25.0, 35.0]
    t = tm.table_lab_by_visit(st.reset_index(), {"PLAT": "Platelets"})
    assert t.data.iloc[1, 1] == "4; 25 (15, 35)"


def test_spider_and_swimmer_figures_render():
    adrs = pd.DataFrame({"USUBJID": ["1", "1", "2"], "PARAMCD": ["OVR"] * 3, "ANL01FL": ["Y"] * 3,
                         "PCHG": [-30.0, -60.0, 150.0], "ADY": [29.0, 57.0, 29.0], "PCHGPARM": ["SPEP"] * 3})
    d = fm.compute_spider_data(adrs, _adsl())
    assert d.groupby("USUBJID").size().to_dict() == {"1": 3, "2": 2}  # baseline 0% added at day 1
    assert figure_to_svg(fm.plot_spider(d), "spider", close=False).startswith("<svg")
    s = fm.compute_swimmer_response(_adsl())
    assert s["USUBJID"].tolist() == ["1", "2"]  # PR and MR; PD is not a responder; sorted by duration
    assert s["ONGOING"].tolist() == [True, False]
    assert s.loc[s["USUBJID"] == "1", "DUR"].item() == pytest.approx(31 / 30.4375)
    assert figure_to_svg(fm.plot_swimmer_response(s), "swimmer", close=False).startswith("<svg")


def test_swimmer_lanes_capped_to_the_longest_treated():
    """Issue 15: at most SWIMMER_MAX_PATIENTS lanes, the longest treated, still ordered by duration;
    a smaller set is drawn whole (the demo's 40 responders are unchanged)."""
    d = pd.DataFrame({"USUBJID": [f"S{i:03d}" for i in range(7)], "BOR": "PR",
                      "DUR": [5.0, 1.0, np.nan, 7.0, 3.0, 7.0, 2.0]})
    got = fm.cap_swimmer_response(d, max_patients=3)
    assert got["USUBJID"].tolist() == ["S000", "S003", "S005"]  # 5, 7, 7 (ties by USUBJID)
    assert fm.cap_swimmer_response(d, max_patients=7) is d
