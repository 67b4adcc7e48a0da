"""The data cut-off (sdtm/cutoff.py) on the hand-made 3-subject study (tests/support/sdtm_study.py).

Expected values are worked by hand from the rules in docs/submission.md ("Data cut-off"):
records starting after the cut-off are dropped, exposure ends are truncated at it, ongoing
adverse events and concomitant therapies lose their end date, a death after it is no death.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from mmtrial.sdtm.check import load_study
from mmtrial.sdtm.cutoff import apply_data_cutoff
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = write_study_folder(tmp_path_factory.mktemp("cut") / "study", valid_raw_domains())
    s, _issues = load_study(folder)
    assert s is not None
    return s


def test_cutoff_drops_truncates_and_blanks(study):
    cut = apply_data_cutoff(study, date(2019, 3, 15))
    d = cut.domains
    # dm: S-001 died 2019-06-30, after the cut-off -> not a death at the cut-off
    s1 = d["dm"].set_index("USUBJID").loc["S-001"]
    assert pd.isna(s1["DTHDT"]) and pd.isna(s1["DTHFL"]) and pd.isna(s1["DTHDTC"])
    # ex: S-001 second record 2019-02-11..2019-03-31 -> ends at the cut-off; S-002 2019-02-04..05-26 too
    ex = d["ex"].sort_values(["USUBJID", "EXSTDT"])
    assert ex["EXENDT"].dt.strftime("%Y-%m-%d").tolist() == ["2019-02-03", "2019-03-15", "2019-03-15"]
    assert ex["EXENDTC"].tolist() == ["2019-02-03", "2019-03-15", "2019-03-15"]
    # ds: every record dated after 2019-03-15 (EOT 03-31, death 06-30, EOT 05-26) is dropped
    assert d["ds"].empty
    assert cut.metadata["cutoff_dropped"]["ds"] == 3
    # lb: 2019-03-04 HGB kept (before), nothing after -> all 5 kept
    assert len(d["lb"]) == 5
    # ae: both start before; S-001's end 2019-02-20 kept, S-002 ongoing stays ongoing
    assert d["ae"]["AEENDT"].notna().sum() == 1
    assert cut.metadata["applied_cutoff"] == date(2019, 3, 15)
    # the input study is untouched
    assert len(study.domains["ds"]) == 3


def test_cutoff_blanks_end_of_ongoing_events(study):
    cut = apply_data_cutoff(study, date(2019, 2, 15))
    ae = cut.domains["ae"].set_index("USUBJID")
    # S-001: 2019-02-01 to 2019-02-20 -> ongoing at 2019-02-15, end blank
    assert pd.isna(ae.loc["S-001", "AEENDT"]) and pd.isna(ae.loc["S-001", "AEENDTC"])
    # lb 2019-03-04 is after the cut-off -> dropped
    assert len(cut.domains["lb"]) == 4
    # cm prior therapy: S-002 daratumumab ended 2018-11-30 -> kept with its end
    assert cut.domains["cm"]["CMENDT"].notna().all()


def test_cutoff_before_first_dose_blanks_treatment_start(study):
    cut = apply_data_cutoff(study, date(2019, 1, 31))
    dm = cut.domains["dm"].set_index("USUBJID")
    # S-002 first dose 2019-02-04 is after the cut-off: not treated at the cut-off
    assert pd.isna(dm.loc["S-002", "RFXSTDT"])
    assert dm.loc["S-001", "RFXSTDT"] == pd.Timestamp("2019-01-07")
    assert set(cut.domains["ex"]["USUBJID"]) == {"S-001"}


def test_cli_cutoff_end_to_end(tmp_path):
    """--cutoff on the 3-subject study: S-001's death (2019-06-30) is after the cut-off, so the
    analysis sees no death; the cut-off is in results.json, the report header and define.xml."""
    import json

    from typer.testing import CliRunner

    from mmtrial.cli import app

    runner = CliRunner()
    study = write_study_folder(tmp_path / "s", valid_raw_domains())
    bad = runner.invoke(app, ["analyze", str(study), "--out", str(tmp_path / "bad"), "--cutoff", "2019-13-01"])
    assert bad.exit_code == 2 and "--cutoff" in bad.output
    r = runner.invoke(app, ["analyze", str(study), "--out", str(tmp_path / "out"), "--quiet", "--cutoff", "2019-05-31"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    res = json.loads((out / "results.json").read_text())
    assert res["study"]["data_cutoff"] == "2019-05-31"
    adsl = pd.read_parquet(out / "adam" / "adsl.parquet")
    assert not adsl["DTHFL"].eq("Y").any()
    assert (adsl["LSTALVDT"].dropna() <= pd.Timestamp("2019-05-31")).all()
    assert '<dd id="data-cutoff">2019-05-31</dd>' in (out / "report.html").read_text()
    assert b"Data cut-off 2019-05-31" in (out / "define.xml").read_bytes()
    assert all(b"Data cut-off: 2019-05-31" in p.read_bytes() for p in (out / "tlf").glob("*.rtf"))
    assert (out / "adam" / "adsl.xpt").stat().st_size > 0


def test_protocol_data_cutoff_field():
    from mmtrial.protocol.model import StudyInfo

    s = StudyInfo(id="X", title="t", drug="D", data_cutoff="2018-04-24")
    assert s.data_cutoff == date(2018, 4, 24)
