"""The pipeline's output contract: atomic outputs, issues.csv, no partial report on errors (issue 2)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mmtrial._io import write_marker
from mmtrial.pipeline import analyze, results_to_json
from mmtrial.sdtm import StudyInputError
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains


def test_input_errors_write_only_issues_csv_and_remove_a_previous_report(tmp_path):
    raw = valid_raw_domains()
    raw["dm"].loc[1, "SEX"] = "FEMALE"
    study = write_study_folder(tmp_path / "bad", raw)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("an old report")  # as an earlier run wrote it (its marker)
    write_marker(out, kind="analysis", status="complete", files=["report.html"])
    with pytest.raises(StudyInputError) as exc:
        analyze(study, out)
    assert any(i.rule == "CONTROLLED_TERM" for i in exc.value.issues)
    assert sorted(p.name for p in out.iterdir()) == [".mmtrial-output", "issues.csv"]
    issues = pd.read_csv(out / "issues.csv")
    row = issues.loc[issues["rule"] == "CONTROLLED_TERM"].iloc[0]
    assert (row["domain"], row["variable"], row["row"], row["usubjid"], row["value"]) == ("dm", "SEX", 2, "S-002", "FEMALE")
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())  # no temporary folder left


def test_results_json_writes_nan_and_nat_as_null_never_a_number():
    text = results_to_json({"median": float("nan"), "ci": [1.5, float("nan")], "d": pd.NaT, "n": 3})
    assert json.loads(text) == {"median": None, "ci": [1.5, None], "d": None, "n": 3}


def test_a_tiny_study_without_responders_goes_through_every_step(tmp_path):
    # 3 hand-made subjects, no post-baseline response, one never dosed: every step must cope
    study = write_study_folder(tmp_path / "s", valid_raw_domains())
    out = analyze(study, tmp_path / "out", run_date="2026-01-01")
    assert out.report_html.exists() and out.results_json.exists()
    res = json.loads(out.results_json.read_text())
    assert res["populations"]["enrolled"] == 3 and res["populations"]["safety"] == 2
    assert {p.stem for p in (tmp_path / "out" / "adam").iterdir()} >= {"adsl", "adrs", "adtte", "adex", "adlb", "adae"}
    import duckdb

    con = duckdb.connect(str(tmp_path / "out" / "mmtrial.duckdb"), read_only=True)
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    con.close()
    assert {"adsl", "adrs", "sdtm_dm", "sdtm_lb"} <= tables
    # issue 15: once mmtrial.duckdb is written the domains nothing reads any more are released;
    # reading one raises instead of passing for an absent domain
    study_after = out.analysis.study
    assert "lb" in study_after and "lb" not in study_after.domains
    with pytest.raises(RuntimeError, match="'lb' was released"):
        study_after.get("lb")
    assert study_after.get("ex") is not None and study_after.get("dm") is not None


def test_study_release_keeps_only_the_named_domains():
    from mmtrial.context import Study

    s = Study(domains={"dm": pd.DataFrame({"USUBJID": ["A"]}), "lb": pd.DataFrame({"USUBJID": ["A"]})})
    s.release(keep=("dm", "suppdm"))
    assert list(s.domains) == ["dm"] and s.released == {"lb"}
    assert s.get("suppdm") is None  # absent, never read: still None
    with pytest.raises(RuntimeError, match="released"):
        s["lb"]


def test_input_errors_found_by_a_derivation_also_leave_only_issues_csv(tmp_path):
    # overlapping ex intervals of one drug pass the reader but not the exposure derivation
    # (derive/exposure.py): the run must still end with issues.csv and no report
    raw = valid_raw_domains()
    raw["ex"].loc[1, "EXSTDTC"] = "2019-01-20"  # starts before the previous interval ends (02-03)
    study = write_study_folder(tmp_path / "s", raw)
    with pytest.raises(StudyInputError) as exc:
        analyze(study, tmp_path / "out")
    assert any("overlap" in i.problem for i in exc.value.issues)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".mmtrial-output", "issues.csv"]
    assert pd.read_csv(tmp_path / "out" / "issues.csv")["problem"].str.contains("overlap").any()
