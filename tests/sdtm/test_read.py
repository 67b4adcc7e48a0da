"""Reading each format round-trips the same frames (issue 2, quality bar)."""

from __future__ import annotations

import pandas as pd
import pytest

from mmtrial.sdtm import load_study, read_study
from mmtrial.sdtm.write import write_study_folder


@pytest.mark.parametrize("ext", [".parquet", ".xpt", ".json"])
def test_each_format_reads_to_the_same_normalised_frames_as_csv(tmp_path, raw_domains, ext):
    ref, ref_issues = load_study(write_study_folder(tmp_path / "csv", raw_domains, ".csv"))
    got, got_issues = load_study(write_study_folder(tmp_path / ext[1:], raw_domains, ext))
    assert ref is not None and got is not None
    assert [i.rule for i in got_issues] == [i.rule for i in ref_issues]
    for name in raw_domains:
        a = ref[name].reset_index(drop=True)
        b = got[name][a.columns].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_read_study_normalises_dates_units_and_keeps_raw_values(study_dir):
    study = read_study(study_dir)
    lb = study["lb"]
    # g/L -> g/dL: 30 g/L = 3.0 g/dL (data/units.toml, factor 0.1)
    row = lb.loc[(lb["USUBJID"] == "S-002") & (lb["LBTESTCD"] == "MPROTEIN")].iloc[0]
    assert row["LBSTRESN"] == pytest.approx(3.0)
    assert row["LBSTRESU"] == "g/dL"
    assert row["LBSTRESN_RAW"] == 30.0 and row["LBSTRESU_RAW"] == "g/L"
    hgb = lb.loc[lb["LBTESTCD"] == "HGB"].iloc[0]
    assert hgb["LBSTRESN"] == pytest.approx(9.5) and hgb["LBSTNRLO"] == pytest.approx(12.0)
    assert str(study["dm"].loc[0, "RFXSTDT"].date()) == "2019-01-07"
    cm = study["cm"]
    # partial start date 2015-03 imputed to the first of the month, flagged D
    assert str(cm.loc[0, "CMSTDT"].date()) == "2015-03-01" and cm.loc[0, "CMSTDTF"] == "D"
    assert list(cm["ROWNUM"]) == [1, 2, 3]
    rules = {i.rule for i in study.metadata["issues"]}
    assert rules == {"DATE_IMPUTED"}


def test_files_starting_with_underscore_and_unknown_names_are_not_domains(study_dir):
    (study_dir / "_truth.csv").write_text("USUBJID\nX\n")
    (study_dir / "notes.csv").write_text("a\n1\n")
    study = read_study(study_dir)
    assert set(study.domains) == {"dm", "ex", "lb", "ae", "ds", "cm"}


def test_study_json_marks_synthetic_and_checksum_changes_with_content(study_dir):
    (study_dir / "study.json").write_text('{"synthetic": true}')
    s1 = read_study(study_dir)
    assert s1.synthetic is True
    (study_dir / "dm.csv").write_text((study_dir / "dm.csv").read_text().replace("65", "66"))
    assert read_study(study_dir).checksum != s1.checksum
