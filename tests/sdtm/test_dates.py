"""ISO 8601 partial dates and their documented imputation (sdtm/dates.py; SDTM IG 4.4)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.sdtm.dates import DateImputation, compute_iso_dates, date_column_names

VALUES = pd.Series(["2019-03-14", "2019-03", "2019", "2020-02", None, "", "2019-03-14T10:30"])


@pytest.mark.parametrize(("rule", "expected"), [
    ("first", ["2019-03-14", "2019-03-01", "2019-01-01", "2020-02-01", None, None, "2019-03-14"]),
    ("mid", ["2019-03-14", "2019-03-15", "2019-06-30", "2020-02-15", None, None, "2019-03-14"]),
    ("last", ["2019-03-14", "2019-03-31", "2019-12-31", "2020-02-29", None, None, "2019-03-14"]),  # 2020 leap
    ("none", ["2019-03-14", None, None, None, None, None, "2019-03-14"]),
])
def test_partial_dates_imputed_per_rule(rule, expected):
    r = compute_iso_dates(VALUES, rule)
    got = [None if pd.isna(d) else str(d.date()) for d in r.dates]
    assert got == expected
    assert list(r.flags) == ["", "D", "M", "D", "", "", ""]
    assert not r.invalid.any()


@pytest.mark.parametrize("bad", ["2019-13", "2019-02-29", "2019-04-31", "19-01-01", "2019/01/01", "March 2019"])
def test_invalid_dates_are_flagged_never_guessed(bad):
    r = compute_iso_dates(pd.Series([bad]))
    assert bool(r.invalid.iloc[0]) and pd.isna(r.dates.iloc[0])


def test_date_column_names_follow_the_dtc_convention():
    assert date_column_names("LBDTC") == ("LBDT", "LBDTF")
    assert date_column_names("RFXSTDTC") == ("RFXSTDT", "RFXSTDTF")
    with pytest.raises(ValueError, match="must end in DTC"):
        date_column_names("LBDT")


def test_imputation_option_is_validated():
    with pytest.raises(ValueError, match="start must be one of"):
        DateImputation(start="middle")  # type: ignore[arg-type]


@settings(deadline=None)  # pandas per-call overhead exceeds 200 ms on a loaded 2-core machine
@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_complete_dates_round_trip_and_truncations_bracket_them(d):
    full = compute_iso_dates(pd.Series([d.isoformat()])).dates.iloc[0].date()
    assert full == d
    month = pd.Series([d.isoformat()[:7]])
    lo = compute_iso_dates(month, "first").dates.iloc[0].date()
    hi = compute_iso_dates(month, "last").dates.iloc[0].date()
    assert lo <= d <= hi and lo.day == 1 and (hi + dt.timedelta(days=1)).day == 1
