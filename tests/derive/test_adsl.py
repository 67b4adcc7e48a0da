"""ADSL base derivations (derive/adsl.py), hand-worked on the 3-subject study of tests/sdtm."""

from __future__ import annotations

import pandas as pd
import pytest

from mmtrial.derive.adsl import derive_adsl
from mmtrial.sdtm import read_study
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains


@pytest.fixture
def adsl(tmp_path):
    study = read_study(write_study_folder(tmp_path / "s", valid_raw_domains()))
    return derive_adsl(study.domains).set_index("USUBJID")


def test_treatment_dates_are_first_and_last_dosed_days(adsl):
    # S-001: ex 2019-01-07..02-03 BIW then 02-11..03-31 QW (Mondays from 02-11) -> TRTSDT 01-07,
    # TRTEDT = the last Monday dose 2019-03-25 (not the end of its dosing week, 03-31)
    assert adsl.loc["S-001", "TRTSDT"] == pd.Timestamp("2019-01-07")
    assert adsl.loc["S-001", "TRTEDT"] == pd.Timestamp("2019-03-25")
    assert pd.isna(adsl.loc["S-003", "TRTSDT"])


def test_safety_population_is_at_least_one_dose(adsl):
    assert adsl["SAFFL"].to_dict() == {"S-001": "Y", "S-002": "Y", "S-003": "N"}


def test_death_date_flag_and_cause_from_fatal_ae(adsl):
    assert adsl.loc["S-001", "DTHFL"] == "Y" and adsl.loc["S-001", "DTHDT"] == pd.Timestamp("2019-06-30")
    # S-001 has an AE with AEOUT = FATAL -> cause ADVERSE EVENT (derive_vars_death rule)
    assert adsl.loc["S-001", "DTHCAUS"] == "ADVERSE EVENT"
    assert adsl.loc["S-002", "DTHFL"] == "N" and pd.isna(adsl.loc["S-002", "DTHCAUS"])


def test_last_alive_is_death_date_or_latest_complete_date(adsl):
    assert adsl.loc["S-001", "LSTALVDT"] == pd.Timestamp("2019-06-30")
    # S-002: latest of ex end 05-26, lb 03-04, ae 02-10, ds 05-26 -> 2019-05-26
    assert adsl.loc["S-002", "LSTALVDT"] == pd.Timestamp("2019-05-26")


def test_disposition_status_and_reason(adsl):
    assert (adsl.loc["S-001", "EOTSTT"], adsl.loc["S-001", "DCTREAS"]) == ("DISCONTINUED", "PROGRESSIVE DISEASE")
    assert (adsl.loc["S-002", "EOTSTT"], adsl.loc["S-002", "DCTREAS"]) == ("DISCONTINUED", "ADVERSE EVENT")
    assert adsl.loc["S-003", "EOTSTT"] == "ONGOING"
    assert adsl.loc["S-002", "EOSSTT"] == "ONGOING"


def test_last_dose_is_the_last_scheduled_dosing_day_of_the_interval():
    # BIW = days 1 and 3 of each week from EXSTDT (docs/data-contract.md): 2019-01-07 (Mon) to
    # 2019-01-20 (Sun) doses on 01-07, 01-09, 01-14, 01-16 -> last dose 2019-01-16, not 01-20.
    # QW from 2019-02-04 to 2019-02-17 doses 02-04 and 02-11 -> 2019-02-11.
    from mmtrial.derive.adsl import compute_last_dose_dates

    ex = pd.DataFrame({"EXSTDT": pd.to_datetime(["2019-01-07", "2019-02-04", "2019-03-01"]),
                       "EXENDT": pd.to_datetime(["2019-01-20", "2019-02-17", "2019-03-05"]),
                       "EXDOSFRQ": ["BIW", "QW", "QD"]})
    got = compute_last_dose_dates(ex)
    assert list(got.dt.strftime("%Y-%m-%d")) == ["2019-01-16", "2019-02-11", "2019-03-05"]
