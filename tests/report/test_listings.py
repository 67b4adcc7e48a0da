"""The per-subject listing: dose levels on the protocol ladder, refractory status, missing columns.

Dose ladder oracle: XPOVIO (selinexor) label Table 1, Xd reductions 160 -> 100 -> 80 -> 60 mg/week
(domain.md section 1.10), as in storm.toml [dose_ladder]; levels 0, -1, -2, -3.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from report_testkit import make_analysis

from mmtrial.protocol.model import Protocol
from mmtrial.report.listings import (
    SUBJECT_LISTING_ID,
    build_subject_listing,
    derive_dose_level_sequence,
    derive_refractory_status,
)

LADDER = Protocol.load().dose_ladder


def _ex(rows):
    return pd.DataFrame(rows, columns=["USUBJID", "EXTRT", "EXDOSE", "EXDOSFRQ", "EXSTDT"]).assign(
        EXSTDT=lambda d: pd.to_datetime(d["EXSTDT"])
    )


def test_dose_levels_follow_the_xpovio_ladder_through_each_reduction():
    ex = _ex(
        [
            ("A", "SELINEXOR", 80, "BIW", "2019-01-01"),  # 160 mg/wk, level 0
            ("A", "SELINEXOR", 80, "BIW", "2019-01-15"),  # same dose again: not a new step
            ("A", "SELINEXOR", 100, "QW", "2019-02-01"),  # 100 mg/wk, level -1
            ("A", "SELINEXOR", 80, "QW", "2019-03-01"),  # 80 mg/wk, level -2
            ("A", "SELINEXOR", 60, "QW", "2019-04-01"),  # 60 mg/wk, level -3
            ("A", "DEXAMETHASONE", 20, "BIW", "2019-01-01"),  # not the study drug
        ]
    )
    out = derive_dose_level_sequence(ex, LADDER, study_drug="SELINEXOR")
    assert out.to_dict("records") == [
        {"USUBJID": "A", "DOSELVLS": "160 -> 100 -> 80 -> 60 mg/wk (levels 0 -> -1 -> -2 -> -3)"}
    ]


def test_off_ladder_dose_is_marked_and_zero_dose_interval_is_not_a_level():
    ex = _ex(
        [
            ("B", "SELINEXOR", 80, "BIW", "2019-01-01"),
            ("B", "SELINEXOR", 0, "BIW", "2019-01-20"),  # interruption
            ("B", "SELINEXOR", 40, "QW", "2019-02-01"),  # 40 mg/wk is not on the ladder
        ]
    )
    out = derive_dose_level_sequence(ex, LADDER, study_drug="selinexor")
    assert out["DOSELVLS"].tolist() == ["160 -> 40 mg/wk (levels 0 -> ?)"]


def test_dose_levels_return_to_a_previous_level_as_a_new_step():
    ex = _ex(
        [
            ("C", "SELINEXOR", 80, "BIW", "2019-01-01"),
            ("C", "SELINEXOR", 100, "QW", "2019-02-01"),
            ("C", "SELINEXOR", 80, "BIW", "2019-03-01"),  # re-escalation
        ]
    )
    out = derive_dose_level_sequence(ex, LADDER, study_drug="SELINEXOR")
    assert out["DOSELVLS"].tolist() == ["160 -> 100 -> 160 mg/wk (levels 0 -> -1 -> 0)"]


@settings(max_examples=30, deadline=None)
@given(st.randoms(use_true_random=False))
def test_dose_levels_do_not_depend_on_row_order(rnd):
    rows = [
        ("A", "SELINEXOR", 80, "BIW", "2019-01-01"),
        ("A", "SELINEXOR", 100, "QW", "2019-02-01"),
        ("B", "SELINEXOR", 80, "BIW", "2019-01-03"),
        ("B", "SELINEXOR", 80, "QW", "2019-03-01"),
        ("C", "SELINEXOR", 80, "BIW", "2019-01-05"),
    ]
    expected = derive_dose_level_sequence(_ex(rows), LADDER, study_drug="SELINEXOR")
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    got = derive_dose_level_sequence(_ex(shuffled), LADDER, study_drug="SELINEXOR")
    pd.testing.assert_frame_equal(got, expected)


def test_refractory_status_names_the_most_extensive_category():
    # domain.md 2.7: penta-refractory subjects are also triple-class refractory
    adsl = pd.DataFrame(
        {
            "PENTAFL": ["Y", "N", "N", None],
            "QUADFL": ["Y", "Y", "N", "N"],
            "TCRFL": ["Y", "Y", "Y", "N"],
        }
    )
    assert derive_refractory_status(adsl).tolist() == [
        "Penta-refractory",
        "Quad-refractory",
        "Triple-class refractory",
        "No",
    ]
    assert derive_refractory_status(pd.DataFrame({"X": [1]})) is None


def test_listing_has_one_row_per_subject_sorted_with_bor_dates_and_levels():
    a = make_analysis()
    a.adam["adsl"] = a.adam["adsl"].iloc[::-1]  # input order must not matter
    lst = build_subject_listing(a)
    assert lst.id == SUBJECT_LISTING_ID and lst.anchor_column == "USUBJID"
    df = lst.data
    assert df["USUBJID"].tolist() == sorted(df["USUBJID"])
    first = df.iloc[0]
    assert first["BOR"] == "PR" and first["BOR date"] == "2019-03-04"  # TRTSDT + 56 days
    assert first["First response (>=PR)"] == "2019-02-04"
    assert first["Dose levels"] == "160 -> 100 mg/wk (levels 0 -> -1)"
    assert df.iloc[1]["First response (>=PR)"] == ""  # SD: no response date
    assert first["Refractory status"] == "Penta-refractory"
    assert df.iloc[1]["Refractory status"] == "Triple-class refractory"


def test_listing_names_the_columns_it_could_not_show():
    a = make_analysis()
    a.adam["adsl"] = a.adam["adsl"].drop(columns=["BORDT", "PENTAFL", "TCRFL"])
    lst = build_subject_listing(a)
    assert "BOR date" not in lst.data.columns and "Refractory status" not in lst.data.columns
    note = lst.footnotes[-1]
    assert note.startswith("Not derived in this analysis")
    assert (
        "BOR date (ADSL.BORDT)" in note and "Refractory status (ADSL.PENTAFL/QUADFL/TCRFL)" in note
    )
    assert "Progression (ADSL.PDDT)" in note


def test_no_adsl_means_no_listing():
    a = make_analysis()
    a.adam = {}
    assert build_subject_listing(a) is None


def test_dose_levels_of_a_once_weekly_regimen_come_from_the_exposure_intervals():
    """BOSTON's SVd arm records selinexor one row per dose (EXDOSFRQ ONCE, 100 mg weekly, days
    1, 8, 15, 22, 29 of 35-day cycles; Grosicki 2020): the frequency alone gives no weekly dose,
    so the listing takes WKDOSE and DOSELVL from the exposure derivation (ADEXLVL) measured
    against the arm's regimen. Ladder 100 -> 80 mg once weekly = levels 0 -> -1 (boston.toml,
    XPOVIO label XVd reductions)."""
    from mmtrial.derive.exposure import derive_exposure_intervals
    from mmtrial.report.listings import derive_dose_level_sequence_from_intervals
    from mmtrial.steps.exposure_safety import drug_ladder_for

    p = Protocol.load("boston")
    days = ["2020-01-01", "2020-01-08", "2020-01-15", "2020-01-22", "2020-01-29"]
    doses = [100, 100, 100, 80, 80]
    ex = pd.DataFrame({"USUBJID": "S1", "EXTRT": "SELINEXOR", "EXDOSE": doses, "EXDOSU": "mg",
                       "EXDOSFRQ": "ONCE", "EXSTDT": pd.to_datetime(days), "EXENDT": pd.to_datetime(days)})
    ex["ROWNUM"] = range(1, len(ex) + 1)
    lv = derive_exposure_intervals(ex, ladder=p.dose_ladder, regimen=p.regimen_for("SVD"),
                                   ladder_for=drug_ladder_for(p))
    out = derive_dose_level_sequence_from_intervals(lv, study_drug="SELINEXOR")
    assert out.to_dict("records") == [{"USUBJID": "S1", "DOSELVLS": "100 -> 80 mg/wk (levels 0 -> -1)"}]
