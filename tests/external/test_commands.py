"""`mmtrial simulate-cohort`, `mmtrial external` and `mmtrial maic` end to end: output-folder rules,
results.json entry `external`, the report section and the "synthetic data" labels."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mmtrial.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ext")
    r = runner.invoke(app, ["simulate", "--n", "60", "--out", str(root / "study"), "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["simulate-cohort", "--n", "900", "--seed", "4", "--out", str(root / "cohort"), "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["simulate-cohort", "--n", "900", "--seed", "4", "--format", "omop",
                            "--out", str(root / "omop"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert (root / "omop" / "cdm.duckdb").is_file()
    return root


def test_simulate_cohort_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    r = runner.invoke(app, ["simulate-cohort", "--n", "5", "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert (tmp_path / "mine.txt").read_text() == "user data"


@pytest.mark.slow
def test_external_command_sdtm_and_omop(inputs):
    res = {}
    for fmt in ("cohort", "omop"):
        out = inputs / f"out-{fmt}"
        r = runner.invoke(app, ["external", str(inputs / "study"), "--cohort", str(inputs / fmt), "--out", str(out),
                                "--quiet"])
        assert r.exit_code == 0, r.output
        ext = json.loads((out / "results.json").read_text())["external"]
        for k in ("method", "n", "ess", "smd", "hr", "hr_ci", "p", "medians", "evalue", "attrition"):
            assert k in ext, k
        assert ext["synthetic"] is True and ext["label"] == "synthetic data"
        html = (out / "report.html").read_text()
        assert "External control (synthetic data)" in html
        assert (out / "attrition.csv").is_file() and (out / "weights.csv").is_file()
        res[fmt] = ext
    # the same cohort as SDTM and as OMOP: the same results (apart from where it came from)
    for k in ("n", "ess", "smd", "hr", "hr_ci", "p", "medians", "attrition"):
        assert res["cohort"][k] == res["omop"][k], k
    # re-running into its own output folder is allowed; into the study folder is not
    r = runner.invoke(app, ["external", str(inputs / "study"), "--cohort", str(inputs / "cohort"),
                            "--out", str(inputs / "study" / "x"), "--quiet"])
    assert r.exit_code == 2


@pytest.mark.slow
def test_maic_command(inputs):
    out = inputs / "maic"
    r = runner.invoke(app, ["maic", str(inputs / "study"), "--target", "mammoth", "--out", str(out),
                            "--n-boot", "50", "--quiet"])
    assert r.exit_code == 0, r.output
    ext = json.loads((out / "results.json").read_text())["external"]
    assert ext["kind"] == "MAIC" and ext["target"]["id"] == "MAMMOTH"
    assert 0 < ext["ess"]["trial"] <= ext["n"]["trial"]
    # the matched means reproduce the target exactly (method of moments)
    for b in ext["balance"]:
        assert b["mean_weighted"] == pytest.approx(b["target"], abs=1e-6)
    assert ext["endpoints"]["OS"]["published_median_months"] == 8.6
    assert "synthetic data" in (out / "report.html").read_text()


def test_maic_unknown_target_is_a_usage_error(tmp_path):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "dm.csv").write_text("USUBJID,AGE,SEX\n")
    r = runner.invoke(app, ["maic", str(tmp_path / "study"), "--target", "nosuch", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "nosuch" in r.output


def test_external_cohort_input_errors_write_issues_csv(tmp_path):
    """Data contract v2 (output folder rules): input errors exit 1 and OUT receives only
    issues.csv naming the cohort's domain, row, USUBJID, variable and value (as mmtrial analyze)."""
    from mmtrial.sdtm.issues import read_issues_csv

    study = tmp_path / "study"
    study.mkdir()  # never read: the cohort is read and checked first
    coh = tmp_path / "cohort"
    coh.mkdir()
    (coh / "dm.csv").write_text("STUDYID,DOMAIN,USUBJID,SUBJID,AGE,SEX\nRWD,DM,P1,1,70,F\n")
    (coh / "cm.csv").write_text(
        "STUDYID,DOMAIN,USUBJID,CMSEQ,CMTRT,CMCAT,CMSTDTC,CMENDTC,CMGRPID\n"
        "RWD,CM,P1,1,BORTEZOMIB,PRIOR ANTI-MYELOMA THERAPY,2019-13-45,2019-06-01,R1\n")
    out = tmp_path / "out"
    r = runner.invoke(app, ["external", str(study), "--cohort", str(coh), "--out", str(out), "--quiet"])
    assert r.exit_code == 1, r.output
    assert not (out / "report.html").exists()
    iss = read_issues_csv(out / "issues.csv")
    bad = iss.loc[iss["severity"].eq("error")]
    assert len(bad) and bad["domain"].eq("cohort:cm").any(), iss
    row = bad.loc[bad["domain"].eq("cohort:cm")].iloc[0]
    assert (row["variable"], str(row["usubjid"]), str(row["value"]), int(row["row"])) == ("CMSTDTC", "P1", "2019-13-45", 1)
    # a valid cohort and a study with errors (no domain files): the study's issues, same folder rules
    good = tmp_path / "good"
    assert runner.invoke(app, ["simulate-cohort", "--n", "5", "--out", str(good), "--quiet"]).exit_code == 0
    r2 = runner.invoke(app, ["external", str(study), "--cohort", str(good), "--out", str(out), "--quiet"])
    assert r2.exit_code == 1, r2.output
    iss2 = read_issues_csv(out / "issues.csv")
    assert iss2["severity"].eq("error").any() and not iss2["domain"].astype(str).str.startswith("cohort:").any()
    assert not (out / "report.html").exists()


def test_cohort_and_study_folders_are_different_kinds(tmp_path):
    """docs/cli.md (data contract v2): --out may be a folder an earlier run of the *same command*
    wrote; a simulate-cohort folder is not simulate's, and the reverse (marker kind ``cohort``)."""
    cohort = tmp_path / "cohort"
    r = runner.invoke(app, ["simulate-cohort", "--n", "5", "--out", str(cohort), "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads((cohort / ".mmtrial-output").read_text())["kind"] == "cohort"
    before = sorted(p.name for p in cohort.iterdir())
    r = runner.invoke(app, ["simulate", "--n", "5", "--out", str(cohort), "--quiet"])
    assert r.exit_code == 2 and "mmtrial simulate-cohort" in r.output
    assert sorted(p.name for p in cohort.iterdir()) == before
    study = tmp_path / "study"
    assert runner.invoke(app, ["simulate", "--n", "5", "--out", str(study), "--quiet"]).exit_code == 0
    r = runner.invoke(app, ["simulate-cohort", "--n", "5", "--out", str(study), "--quiet"])
    assert r.exit_code == 2 and "mmtrial simulate" in r.output
    r = runner.invoke(app, ["simulate-cohort", "--n", "5", "--seed", "2", "--out", str(cohort), "--quiet"])
    assert r.exit_code == 0, r.output  # its own earlier output may be replaced
