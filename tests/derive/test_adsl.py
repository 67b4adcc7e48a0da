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
    # S-001: ex 2019-01-07..02-03 then 02-11..03-31 -> TRTSDT 01-07, TRTEDT 03-31
    assert adsl.loc["S-001", "TRTSDT"] == pd.Timestamp("2019-01-07")
    assert adsl.loc["S-001", "TRTEDT"] == pd.Timestamp("2019-03-31")
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
