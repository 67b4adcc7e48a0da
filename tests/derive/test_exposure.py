"""Exposure from ex intervals (mmtrial.derive.exposure).

Expected values are hand-worked from the ex convention of docs/data-contract.md (BIW = days 1 and
3 of each week counted from EXSTDT, QW = day 1; intervals inclusive) and the XPOVIO Xd ladder
160 -> 100 -> 80 -> 60 mg/week (domain.md 1.10, tag C; storm.toml [dose_ladder]).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.derive.exposure import (
    ExposureOptions,
    compute_dose_cover_days,
    compute_doses_in_interval,
    compute_last_dose_offset,
    derive_adex,
    derive_exposure_intervals,
    expand_administrations,
)
from mmtrial.protocol.model import Protocol
from mmtrial.sdtm.issues import StudyInputError

P = Protocol.load()


def _ex(rows):
    df = pd.DataFrame(rows, columns=["USUBJID", "EXTRT", "EXDOSE", "EXDOSFRQ", "EXSTDT", "EXENDT", "EXADJ"])
    df["EXSTDT"] = pd.to_datetime(df["EXSTDT"])
    df["EXENDT"] = pd.to_datetime(df["EXENDT"])
    df["EXDOSU"] = "mg"
    df["ROWNUM"] = np.arange(1, len(df) + 1)
    return df


def _run(ex, adsl=None):
    lv = derive_exposure_intervals(ex, ladder=P.dose_ladder, regimen=P.regimen, end_fallback=adsl)
    if adsl is None:
        adsl = pd.DataFrame({"USUBJID": ex["USUBJID"].unique()})
    return lv, derive_adex(lv, adsl, regimen=P.regimen, ladder=P.dose_ladder)


def test_doses_counted_on_days_1_and_3_of_each_week():
    # BIW: 1 day -> day 1; 3 days -> days 1, 3; 10 days -> 1, 3, 8, 10; 14 days -> 4 doses
    assert compute_doses_in_interval(np.array([1, 2, 3, 10, 14, 15]), (1, 3)).tolist() == [1, 1, 2, 4, 4, 5]
    # QW: 7 days -> 1 dose; 8 days -> 2 (day 8 = day 1 of week 2)
    assert compute_doses_in_interval(np.array([7, 8, 28]), (1,)).tolist() == [1, 2, 4]
    # last dose: 14-day BIW interval -> day 10 (offset 9); 28-day QW -> day 22 (offset 21)
    assert compute_last_dose_offset(np.array([14]), (1, 3)).tolist() == [9]
    assert compute_last_dose_offset(np.array([28]), (1,)).tolist() == [21]


def test_hand_worked_subject_with_reduction_interruption_and_restart():
    # 80 mg BIW 2020-01-01..01-28 (8 doses, 640 mg); 100 mg QW 01-29..02-11 (2 doses, 200 mg)
    # gap 02-12..02-18 (7 days) for an AE; 80 mg QW 02-19..03-17 (4 doses, 320 mg)
    ex = _ex([
        ("S1", "SELINEXOR", 80, "BIW", "2020-01-01", "2020-01-28", None),
        ("S1", "SELINEXOR", 100, "QW", "2020-01-29", "2020-02-11", "ADVERSE EVENT"),
        ("S1", "SELINEXOR", 80, "QW", "2020-02-19", "2020-03-17", "THROMBOCYTOPENIA"),
    ])
    lv, adex = _run(ex)
    assert lv["NDOSES"].tolist() == [8, 2, 4]
    assert lv["DOSELVL"].tolist() == [0, -1, -2]
    assert lv["CHGTYPE"].tolist() == ["START", "REDUCTION", "REDUCTION"]
    assert lv["GAPDAYS"].tolist() == [0, 0, 7]
    assert lv["RESTFL"].tolist() == ["", "", "Y"]
    r = adex.iloc[0]
    # duration 2020-01-01..03-17 = 77 days = 11.0 weeks; cumulative 1160 mg
    assert r["TRTDURD"] == 77 and r["TRTDURW"] == pytest.approx(11.0)
    assert r["CUMDOSE"] == 1160
    # actual weekly dose 1160 / 11 = 105.45; RDI = 105.45 / 160 = 0.6591
    assert r["ACTWKDOS"] == pytest.approx(1160 / 11)
    assert r["RDI"] == pytest.approx(1160 / 11 / 160)
    assert (r["NREDUC"], r["NINTERR"], r["INTRDAYS"]) == (2, 1, 7)
    assert r["TTFRED"] == 28  # 2020-01-29 - 2020-01-01
    assert r["REDREAS"] == "ADVERSE EVENT; THROMBOCYTOPENIA"
    assert r["INTRREAS"] == "THROMBOCYTOPENIA"
    # cycles (28 days from 01-01): doses on days 1-28 (cycle 1), 29-42 (cycle 2), 50-71 (cycles 2, 3)
    assert r["CYCLES"] == 3
    assert (r["MINLVL"], r["LASTLVL"]) == (-2, -2)


def test_long_interruption_skips_a_cycle_without_doses():
    # 80 mg BIW days 1-7 (cycle 1), restart day 64 = 2020-03-04 (cycle 3): cycle 2 has no dose
    ex = _ex([
        ("S2", "SELINEXOR", 80, "BIW", "2020-01-01", "2020-01-07", None),
        ("S2", "SELINEXOR", 100, "QW", "2020-03-04", "2020-03-10", "ADVERSE EVENT"),
    ])
    _, adex = _run(ex)
    assert adex["CYCLES"].tolist() == [2]
    assert adex["NINTERR"].tolist() == [1]


def test_zero_dose_interval_is_an_interruption_with_its_reason():
    ex = _ex([
        ("S3", "SELINEXOR", 80, "BIW", "2020-01-01", "2020-01-14", None),
        ("S3", "SELINEXOR", 0, "BIW", "2020-01-15", "2020-01-21", "HYPONATRAEMIA"),
        ("S3", "SELINEXOR", 80, "BIW", "2020-01-22", "2020-02-04", None),
    ])
    lv, adex = _run(ex)
    assert len(lv) == 2
    assert lv["GAPDAYS"].tolist() == [0, 7]
    assert lv["INTRREAS"].tolist()[1] == "HYPONATRAEMIA"
    assert lv["CHGTYPE"].tolist() == ["START", "SAME"]
    # 8 doses x 80 mg = 640 mg over 35 days = 5 weeks: 128 mg/week, RDI 0.8
    assert adex["RDI"].tolist() == [pytest.approx(0.8)]


def test_off_ladder_dose_gets_no_level_and_dexamethasone_uses_regimen_plan():
    ex = _ex([
        ("S4", "SELINEXOR", 60, "BIW", "2020-01-01", "2020-01-14", None),
        ("S4", "DEXAMETHASONE", 20, "BIW", "2020-01-01", "2020-01-14", None),
    ])
    lv, adex = _run(ex)
    sel = lv.loc[lv["EXTRT"] == "SELINEXOR"].iloc[0]
    assert np.isnan(sel["DOSELVL"]) and sel["ONLADDFL"] == "N"
    dex = adex.loc[adex["EXTRT"] == "DEXAMETHASONE"].iloc[0]
    # regimen: dexamethasone 20 mg days 1 and 3 -> 40 mg/week planned; 4 doses / 2 weeks -> RDI 1
    assert dex["PLNWKDOS"] == 40 and dex["RDI"] == pytest.approx(1.0)


def test_duration_last_dose_option():
    ex = _ex([("S5", "SELINEXOR", 80, "BIW", "2020-01-01", "2020-01-14", None)])
    lv = derive_exposure_intervals(ex, ladder=P.dose_ladder, regimen=P.regimen,
                                   options=ExposureOptions(duration_end="last_dose"))
    adex = derive_adex(lv, pd.DataFrame({"USUBJID": ["S5"]}), regimen=P.regimen, ladder=P.dose_ladder,
                       options=ExposureOptions(duration_end="last_dose"))
    assert adex["TRTDURD"].tolist() == [10]  # last dose day 10 (2020-01-10)


def test_overlapping_intervals_and_unknown_frequency_are_errors_naming_rows():
    ex = _ex([
        ("S6", "SELINEXOR", 80, "BIW", "2020-01-01", "2020-01-14", None),
        ("S6", "SELINEXOR", 100, "QW", "2020-01-10", "2020-01-20", None),
    ])
    with pytest.raises(StudyInputError, match=r"row 2.*overlaps"):
        _run(ex)
    ex2 = _ex([("S7", "SELINEXOR", 80, "TIW", "2020-01-01", "2020-01-14", None)])
    with pytest.raises(StudyInputError, match="EXDOSFRQ = 'TIW'"):
        _run(ex2)


def test_missing_end_date_uses_trtedt_with_a_warning():
    ex = _ex([("S8", "SELINEXOR", 80, "BIW", "2020-01-01", None, None)])
    adsl = pd.DataFrame({"USUBJID": ["S8"], "TRTEDT": pd.to_datetime(["2020-01-14"])})
    lv = derive_exposure_intervals(ex, ladder=P.dose_ladder, regimen=P.regimen, end_fallback=adsl)
    assert lv["AENDT"].tolist() == [pd.Timestamp("2020-01-14")]
    assert lv["AENDTF"].tolist() == ["Y"]
    assert lv.attrs["issues"][0].severity == "warning"


def test_subject_order_does_not_change_adex():
    rows = [
        ("B", "SELINEXOR", 80, "BIW", "2020-01-01", "2020-01-14", None),
        ("A", "SELINEXOR", 80, "BIW", "2020-02-01", "2020-02-14", None),
        ("A", "SELINEXOR", 100, "QW", "2020-02-15", "2020-02-28", "ADVERSE EVENT"),
    ]
    _, a1 = _run(_ex(rows))
    _, a2 = _run(_ex(rows[::-1]))
    pd.testing.assert_frame_equal(a1.reset_index(drop=True), a2.reset_index(drop=True))


def test_administrations_are_the_days_of_each_rows_pattern():
    """The administrations generated from the rows' dose counts (issue 15) are exactly the days the
    ex convention names (docs/data-contract.md, ex): ONCE = EXSTDT, QD = every day EXSTDT..EXENDT,
    a weekly code = the days of each week counted from EXSTDT whose weekday is in its pattern --
    here listed day by day as the oracle, for random rows and patterns that do and do not
    include day 1."""
    freqs = {"BIW": (1, 3), "QW": (1,), "D25": (2, 5), "W5": (1, 2, 3, 4, 5)}
    opts = ExposureOptions(frequencies=freqs)
    rng = np.random.default_rng(15)
    n = 300
    codes = np.array(["ONCE", "QD", "BIW", "QW", "D25", "W5", "XX"], dtype=object)
    frq = codes[rng.integers(0, len(codes), n)]
    st = np.datetime64("2020-01-01") + rng.integers(0, 400, n).astype("timedelta64[D]")
    en = st + rng.integers(0, 40, n).astype("timedelta64[D]")
    dose = np.where(rng.random(n) < 0.1, 0.0, 20.0)
    subj = np.array([f"S{i:02d}" for i in rng.integers(0, 12, n)], dtype=object)
    drug = np.array(["DEX", "SEL"], dtype=object)[rng.integers(0, 2, n)]
    rows = pd.DataFrame({"USUBJID": subj, "EXTRT": drug, "EXDOSE": dose, "EXDOSU": "mg", "EXDOSFRQ": frq,
                         "ASTDT": st, "AENDT": en, "EXADJ": pd.array([pd.NA] * n, dtype="string"),
                         "ROWNUM": np.arange(1, n + 1), "EXCYCLE": np.nan, "VISCYC": np.nan})
    rows = rows.sort_values(["USUBJID", "EXTRT", "ASTDT", "ROWNUM"], kind="stable").reset_index(drop=True)
    expected = []
    for r in rows.itertuples():
        if r.EXDOSE <= 0:
            continue
        first = np.datetime64(r.ASTDT, "D")
        ndays = int((np.datetime64(r.AENDT, "D") - first).astype(int)) + 1
        for off in range(1 if r.EXDOSFRQ == "ONCE" else ndays):
            pattern = freqs.get(r.EXDOSFRQ)
            if r.EXDOSFRQ in ("ONCE", "QD"):
                expected.append((r.USUBJID, r.EXTRT, first + off, r.ROWNUM, np.nan, np.nan))
            elif pattern is not None and off % 7 + 1 in pattern:
                cover = compute_dose_cover_days(np.array([off]), pattern)[0]
                expected.append((r.USUBJID, r.EXTRT, first + off, r.ROWNUM, float(cover), float(len(pattern))))
    expected.sort(key=lambda t: (t[0], t[1], t[2]))
    adm = expand_administrations(rows, opts)
    got = list(zip(adm["USUBJID"], adm["EXTRT"], adm["ADT"].to_numpy(dtype="datetime64[D]"), adm["ROWNUM"],
                   adm["ROWCOV"], adm["PERWK"], strict=True))
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g[:4] == e[:4]
        assert (np.isnan(g[4]) and np.isnan(e[4])) or g[4] == e[4]
        assert (np.isnan(g[5]) and np.isnan(e[5])) or g[5] == e[5]
