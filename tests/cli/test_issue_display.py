"""Issues readable in bulk on the terminal: grouped by rule with counts before examples, errors
first, limited; every issue in issues.csv (issue 11)."""

from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

import mmtrial.cli as cli
from mmtrial.sdtm.issues import InputIssue, describe_example, group_issues, read_issues_csv
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains


def many_issues() -> list[InputIssue]:
    missing = InputIssue("cm", "CMCAT", "required variable missing", rule="MISSING_VARIABLE")
    typ = [InputIssue("lb", "LBSTRESN", "not a number", usubjid=f"01-{k:03d}", row=k + 12,
                      value="x", rule="TYPE") for k in range(6429)]
    warn = [InputIssue("ae", "AESTDTC", "partial date imputed", severity="warning", rule="DATE_IMPUTED",
                       usubjid="01-001", row=3)]
    norule = [InputIssue("ex", "EXDOSE", "dose above the protocol's", value=str(v)) for v in (900, 950)]
    return [*typ[:3], *warn, missing, *typ[3:], *norule]


def test_groups_count_and_order():
    groups = group_issues(many_issues())
    assert [(g.severity, g.domain, g.variable, g.rule, g.count) for g in groups] == [
        ("error", "lb", "LBSTRESN", "TYPE", 6429),
        ("error", "cm", "CMCAT", "MISSING_VARIABLE", 1),
        ("error", "ex", "EXDOSE", "", 2),  # no rule: grouped by problem text
        ("warning", "ae", "AESTDTC", "DATE_IMPUTED", 1),
    ]
    assert len(groups[0].examples) == 3 and groups[0].examples[0].row == 12
    assert describe_example(groups[0].examples[0]) == "row 12, USUBJID 01-000, value 'x'"


def show(issues, **kw) -> str:
    buf = io.StringIO()
    saved = cli.console
    cli.console = Console(file=buf, width=200, no_color=True)
    try:
        cli._show_issues(issues, **kw)
    finally:
        cli.console = saved
    return buf.getvalue()


def test_terminal_shows_counts_before_examples_errors_first():
    text = show(many_issues())
    lines = text.strip().splitlines()
    assert lines[0] == "Input check: 6,432 errors (3 kinds), 1 warning (1 kind)"
    assert lines[1].startswith("error   lb LBSTRESN (TYPE): 6,429 \u00d7 not a number")
    assert lines[2].strip() == "e.g. row 12, USUBJID 01-000, value 'x'; row 13, USUBJID 01-001, value 'x'"
    assert text.index("CMCAT") < text.index("EXDOSE") < text.index("AESTDTC")  # errors, then warnings
    assert len(lines) < 12  # not 6,433 lines
    limited = show(many_issues(), limit=2, csv_path="out/issues.csv")
    assert "... 2 more kind(s), 3 issue(s); all are in out/issues.csv" in limited
    assert "AESTDTC" not in limited


def test_check_command_groups_a_real_studys_issues(tmp_path):
    raw = valid_raw_domains()
    raw["lb"]["LBSTRESN"] = raw["lb"]["LBSTRESN"].astype(object)
    raw["lb"].loc[[0, 1, 2], "LBSTRESN"] = ["=1+2", "-", "abc"]
    study = write_study_folder(tmp_path / "s", raw)
    r = CliRunner().invoke(cli.app, ["check", str(study), "--out", str(tmp_path / "issues.csv")])
    assert r.exit_code == 1
    flat = " ".join(r.output.split())
    assert "lb LBSTRESN (TYPE): 3 \u00d7" in flat and "e.g. row 1" in flat
    issues = read_issues_csv(tmp_path / "issues.csv")
    assert set(issues.loc[issues["rule"] == "TYPE", "value"]) == {"=1+2", "-", "abc"}
