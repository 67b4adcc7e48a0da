"""The command line: exit codes, outputs, --quiet (issue 2, items 1-5)."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from mmtrial.cli import app
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains

runner = CliRunner()


def test_simulate_writes_a_study_folder_csv_and_parquet(tmp_path):
    r = runner.invoke(app, ["simulate", "--n", "20", "--seed", "3", "--out", str(tmp_path / "s"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / "dm.csv").exists() and json.loads((tmp_path / "s" / "study.json").read_text())["synthetic"]
    r = runner.invoke(app, ["simulate", "--n", "20", "--out", str(tmp_path / "p"), "--format", "parquet", "--quiet"])
    assert r.exit_code == 0 and (tmp_path / "p" / "lb.parquet").exists()
    assert len(pd.read_parquet(tmp_path / "p" / "dm.parquet")) == 20


def test_check_exits_1_on_errors_and_lists_them(tmp_path):
    raw = valid_raw_domains()
    raw["lb"].loc[0, "LBSTRESU"] = "mg/mL"
    study = write_study_folder(tmp_path / "bad", raw)
    r = runner.invoke(app, ["check", str(study), "--out", str(tmp_path / "issues.csv")])
    assert r.exit_code == 1
    assert "UNIT" in r.output or "unit unknown" in r.output
    assert (pd.read_csv(tmp_path / "issues.csv")["rule"] == "UNIT_UNKNOWN").any()
    ok = write_study_folder(tmp_path / "ok", valid_raw_domains())
    assert runner.invoke(app, ["check", str(ok), "--quiet"]).exit_code == 0


def test_analyze_on_errors_exits_1_without_a_report(tmp_path):
    raw = valid_raw_domains()
    raw["ex"].loc[0, "EXSTDTC"] = "07/01/2019"
    study = write_study_folder(tmp_path / "bad", raw)
    r = runner.invoke(app, ["analyze", str(study), "--out", str(tmp_path / "out"), "--quiet"])
    assert r.exit_code == 1
    assert not (tmp_path / "out" / "report.html").exists() and (tmp_path / "out" / "issues.csv").exists()


def test_analyze_quiet_prints_only_the_report_path(tmp_path):
    study = write_study_folder(tmp_path / "s", valid_raw_domains())
    r = runner.invoke(app, ["analyze", str(study), "--out", str(tmp_path / "out"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines() == [str(tmp_path / "out" / "report.html")]
