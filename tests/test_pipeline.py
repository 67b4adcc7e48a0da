"""The pipeline's output contract: atomic outputs, issues.csv, no partial report on errors (issue 2)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from support.sdtm_study import valid_raw_domains

from mmtrial.pipeline import analyze, results_to_json
from mmtrial.sdtm import StudyInputError
from mmtrial.sdtm.write import write_study_folder


def test_input_errors_write_only_issues_csv_and_remove_a_previous_report(tmp_path):
    raw = valid_raw_domains()
    raw["dm"].loc[1, "SEX"] = "FEMALE"
    study = write_study_folder(tmp_path / "bad", raw)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("an old report")
    with pytest.raises(StudyInputError) as exc:
        analyze(study, out)
    assert any(i.rule == "CONTROLLED_TERM" for i in exc.value.issues)
    assert sorted(p.name for p in out.iterdir()) == ["issues.csv"]
    issues = pd.read_csv(out / "issues.csv")
    row = issues.loc[issues["rule"] == "CONTROLLED_TERM"].iloc[0]
    assert (row["domain"], row["variable"], row["row"], row["usubjid"], row["value"]) == ("dm", "SEX", 2, "S-002", "FEMALE")
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())  # no temporary folder left


def test_results_json_writes_nan_and_nat_as_null_never_a_number():
    text = results_to_json({"median": float("nan"), "ci": [1.5, float("nan")], "d": pd.NaT, "n": 3})
    assert json.loads(text) == {"median": None, "ci": [1.5, None], "d": None, "n": 3}
