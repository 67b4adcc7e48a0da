"""Tests for mmtrial.derive.tte: one crafted subject per rule (FDA 2018 endpoints guidance PFS
censoring; admiral derive_param_tte conventions), both sides of the missed-visit threshold,
errors that name the subject, and order independence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.derive.tte import (
    ADTTE_COLUMNS,
    CensorSource,
    EndpointSpec,
    EventSource,
    TteRules,
    derive_param_tte,
    endpoint_specs_from_config,
)
from mmtrial.protocol.model import Protocol
from mmtrial.sdtm.issues import StudyInputError

D0 = pd.Timestamp("2019-01-01")


def day(n):
    """Study day n (day 1 = D0) as a date; None -> NaT."""
    return pd.NaT if n is None else D0 + pd.Timedelta(days=n - 1)


def storm_specs():
    p = Protocol.load()
    return {
        s.paramcd: s
        for s in endpoint_specs_from_config(
            p.section("tte")["endpoints"],
            interval_days=p.visits.response_assessment_days,
            window_days=p.visits.assessment_window_days,
        )
    }


def subject(usubjid, *, pd_=None, death=None, alive=400, nact=None, rsp=None, efffl="Y"):
    return {
        "USUBJID": usubjid,
        "TRTSDT": day(1),
        "EFFFL": efffl,
        "DTHFL": "Y" if death is not None else "N",
        "DTHDT": day(death),
        "LSTALVDT": day(death if death is not None else alive),
        "PDDT": day(pd_),
        "NACTDT": day(nact),
        "RSPFL": "Y" if rsp is not None else "N",
        "RSPDT": day(rsp),
    }


def assessments(usubjid, days, last=None):
    rows = [(usubjid, day(d), "SD") for d in days]
    if last:
        rows.append((usubjid, day(last[0]), last[1]))
    return rows


# 28-day assessments (storm.toml [visits]); missed-visit threshold = 2 * 28 + 7 = 63 days
CASES = {
    # id: (adsl kwargs, assessment days, extra (day, AVALC), expected PFS (CNSR, ADT day, CNSDTDSC/EVNTDESC))
    "pd": (dict(pd_=85), [29, 57], (85, "PD"), (0, 85, "PROGRESSIVE DISEASE (IMWG)")),
    "death_no_pd": (dict(death=70), [29, 57], None, (0, 70, "DEATH")),
    "pd_after_new_tx": (dict(pd_=120, nact=90), [29, 57, 85], (120, "PD"), (1, 85, "LAST ADEQUATE ASSESSMENT BEFORE NEW ANTI-MYELOMA THERAPY (EVENT AFTER)")),
    "death_after_gap_64": (dict(death=121), [29, 57], None, (1, 57, "LAST ADEQUATE ASSESSMENT BEFORE TWO OR MORE MISSED ASSESSMENTS")),
    "death_at_gap_63": (dict(death=120), [29, 57], None, (0, 120, "DEATH")),
    "no_assessment": (dict(alive=200), [], None, (1, 1, "NO ADEQUATE POST-BASELINE ASSESSMENT")),
    "new_tx_no_event": (dict(nact=100, alive=300), [29, 57, 85, 113], None, (1, 85, "LAST ADEQUATE ASSESSMENT BEFORE NEW ANTI-MYELOMA THERAPY")),
    "alive_no_event": (dict(alive=300), [29, 57, 85], None, (1, 85, "LAST ADEQUATE ASSESSMENT")),
    "ne_not_adequate": (dict(alive=300), [29], (57, "NE"), (1, 29, "LAST ADEQUATE ASSESSMENT")),
    "pd_and_death_same_day": (dict(pd_=50, death=50), [29], (50, "PD"), (0, 50, "PROGRESSIVE DISEASE (IMWG)")),
    "early_death_no_assessment": (dict(death=40), [], None, (0, 40, "DEATH")),
}


@pytest.fixture(scope="module")
def crafted():
    adsl = pd.DataFrame([subject(k, **v[0]) for k, v in CASES.items()])
    rows = [r for k, v in CASES.items() for r in assessments(k, v[1], v[2])]
    adrs = pd.DataFrame(rows, columns=["USUBJID", "ADT", "AVALC"])
    return adsl, adrs


@pytest.fixture(scope="module")
def pfs(crafted):
    adsl, adrs = crafted
    return derive_param_tte(adsl, adrs, spec=storm_specs()["PFS"]).set_index("USUBJID")


@pytest.mark.parametrize("case", sorted(CASES))
def test_pfs_rule_per_case_fda_2018(pfs, case):
    # Expected values by hand from the FDA 2018 guidance rules restated in derive/tte.py:
    # events PD/death; after new therapy or >= 2 missed assessments (gap > 63 d) -> censored at the
    # last adequate assessment; none adequate -> day 1. AVAL = ADT - TRTSDT + 1.
    cnsr, adt_day, desc = CASES[case][3]
    r = pfs.loc[case]
    assert r["CNSR"] == cnsr
    assert r["ADT"] == day(adt_day)
    assert r["AVAL"] == adt_day
    assert r["EVNTDESC"] == desc
    if cnsr:
        assert r["CNSDTDSC"] == desc
    else:
        assert pd.isna(r["CNSDTDSC"])


def test_missed_visit_threshold_both_sides(pfs):
    # last adequate at day 57; death at day 120 is 63 days later (= 2*28 + 7: event), day 121 is 64 (censored)
    assert pfs.loc["death_at_gap_63", "CNSR"] == 0
    assert pfs.loc["death_after_gap_64", "CNSR"] == 1


def test_columns_and_traceability(pfs):
    assert list(pfs.reset_index().columns) == ADTTE_COLUMNS
    assert pfs.loc["pd", "SRCDOM"] == "ADRS" and pfs.loc["pd", "SRCVAR"] == "PDDT"
    assert pfs.loc["alive_no_event", "SRCVAR"] == "ADT"
    assert (pfs["PARAMCD"] == "PFS").all() and (pfs["AVALU"] == "DAYS").all()


def test_os_death_event_and_last_alive_censoring(crafted):
    adsl, adrs = crafted
    os_ = derive_param_tte(adsl, adrs, spec=storm_specs()["OS"]).set_index("USUBJID")
    assert os_.loc["death_after_gap_64", ["CNSR", "AVAL"]].tolist() == [0, 121]  # OS ignores PFS rules
    assert os_.loc["alive_no_event", ["CNSR", "AVAL", "CNSDTDSC"]].tolist() == [1, 300, "LAST KNOWN ALIVE DATE"]


def test_dor_responders_only_from_response_date():
    adsl = pd.DataFrame([subject("r1", rsp=29, pd_=113), subject("r2", rsp=57, alive=200), subject("n1", pd_=60)])
    adrs = pd.DataFrame(
        assessments("r1", [29, 57, 85], (113, "PD")) + assessments("r2", [29, 57, 85, 113, 141]) + assessments("n1", [29], (60, "PD")),
        columns=["USUBJID", "ADT", "AVALC"],
    )
    dor = derive_param_tte(adsl, adrs, spec=storm_specs()["DOR"]).set_index("USUBJID")
    assert sorted(dor.index) == ["r1", "r2"]
    assert dor.loc["r1", ["CNSR", "AVAL"]].tolist() == [0, 113 - 29 + 1]
    assert dor.loc["r2", ["CNSR", "AVAL", "CNSDTDSC"]].tolist() == [1, 141 - 57 + 1, "LAST ADEQUATE ASSESSMENT"]
    assert (dor["STARTDT"] == pd.Series({"r1": day(29), "r2": day(57)})).all()


def test_ttr_and_ttnt():
    adsl = pd.DataFrame([subject("r1", rsp=29, nact=150, alive=300), subject("n1", death=90)])
    specs = storm_specs()
    ttr = derive_param_tte(adsl, None, spec=specs["TTR"]).set_index("USUBJID")
    assert ttr.index.tolist() == ["r1"] and ttr.loc["r1", "AVAL"] == 29 and ttr.loc["r1", "CNSR"] == 0
    ttnt = derive_param_tte(adsl, None, spec=specs["TTNT"]).set_index("USUBJID")
    assert ttnt.loc["r1", ["CNSR", "AVAL", "EVNTDESC"]].tolist() == [0, 150, "START OF NEXT ANTI-MYELOMA THERAPY"]
    assert ttnt.loc["n1", ["CNSR", "AVAL", "EVNTDESC"]].tolist() == [0, 90, "DEATH"]


def test_population_filter_drops_non_efficacy_subjects(crafted):
    adsl, adrs = crafted
    adsl2 = pd.concat([adsl, pd.DataFrame([subject("x", efffl="N", death=10)])], ignore_index=True)
    out = derive_param_tte(adsl2, adrs, spec=storm_specs()["OS"])
    assert "x" not in set(out["USUBJID"]) and len(out) == len(adsl)


def test_adt_never_before_startdt():
    # admiral derive_param_tte: ADT is never before STARTDT (censoring date earlier -> STARTDT)
    a = pd.DataFrame([subject("s", alive=1)])
    a["LSTALVDT"] = day(-5)
    out = derive_param_tte(a, None, spec=storm_specs()["OS"])
    assert out["ADT"].iloc[0] == day(1) and out["AVAL"].iloc[0] == 1


def test_event_before_origin_is_an_error_naming_subject_and_value():
    a = pd.DataFrame([subject("bad-1", death=10)])
    a["DTHDT"] = day(-3)
    with pytest.raises(StudyInputError, match=r"adsl, USUBJID bad-1: DTHDT = '2018-12-28': OS event date is before the origin TRTSDT"):
        derive_param_tte(a, None, spec=storm_specs()["OS"])


def test_missing_origin_is_an_error_naming_subject():
    a = pd.DataFrame([subject("s9")])
    a["TRTSDT"] = pd.NaT
    with pytest.raises(StudyInputError, match=r"USUBJID s9: TRTSDT: OS origin date is missing"):
        derive_param_tte(a, None, spec=storm_specs()["OS"])


def test_no_applicable_censoring_is_an_error_not_a_silent_drop():
    a = pd.DataFrame([subject("s1")])
    a["LSTALVDT"] = pd.NaT
    with pytest.raises(StudyInputError, match="no event and no censoring source applies"):
        derive_param_tte(a, None, spec=storm_specs()["OS"])


def test_unknown_variable_in_where_is_named():
    spec = EndpointSpec(
        "X", "x", "TRTSDT",
        events=[EventSource("e", "DTHDT", "DEATH", where={"NOPE": "Y"})],
        censors=[CensorSource("c", "LSTALVDT", "ALIVE")],
    )
    with pytest.raises(KeyError, match="'NOPE'"):
        derive_param_tte(pd.DataFrame([subject("s")]), None, spec=spec)


def test_sources_validate_themselves():
    with pytest.raises(ValueError, match="evntdesc"):
        EventSource("e", "DTHDT", "")
    with pytest.raises(ValueError, match="missed_visits"):
        TteRules(missed_visits=0)
    with pytest.raises(ValueError, match="unknown keys"):
        endpoint_specs_from_config({"OS": {"param": "x", "start": "TRTSDT", "events": [], "censors": [], "typo": 1}}, interval_days=28, window_days=7)


def test_order_of_input_rows_does_not_matter(crafted):
    # admiral test-derive_param_tte.R: same result whatever the input sort order
    adsl, adrs = crafted
    spec = storm_specs()["PFS"]
    a = derive_param_tte(adsl, adrs, spec=spec).sort_values("USUBJID").reset_index(drop=True)
    rng = np.random.default_rng(0)
    b = derive_param_tte(
        adsl.sample(frac=1, random_state=1), adrs.iloc[rng.permutation(len(adrs))], spec=spec
    ).sort_values("USUBJID").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_rule_rows_print_every_source():
    rows = storm_specs()["PFS"].rule_rows()
    kinds = [r["kind"] for r in rows]
    assert kinds.count("event") == 2 and kinds.count("rule") == 2
    assert sum(k.startswith("censor") for k in kinds) == 5
    assert any("63 days" in r["condition"] for r in rows)


def test_string_dtypes_of_adsl_and_adrs_need_not_agree(crafted):
    # pandas 3: ADSL USUBJID as str (NaN missing) and ADRS USUBJID as string[python] (NA missing)
    adsl, adrs = crafted
    adrs2 = adrs.assign(USUBJID=adrs["USUBJID"].astype(pd.StringDtype("python")), ADT=adrs["ADT"].astype("datetime64[us]"))
    a = derive_param_tte(adsl, adrs, spec=storm_specs()["PFS"])
    b = derive_param_tte(adsl, adrs2, spec=storm_specs()["PFS"])
    pd.testing.assert_frame_equal(a, b)
