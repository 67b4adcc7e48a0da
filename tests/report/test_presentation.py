"""Presentation rules found by trying the demo as a new user: run-header profile, no repeated
population footnote, sentence lists read as prose, at-risk labels never cut mid-word, CLI problem
text punctuated. Expected values are written out by hand from each rule's statement."""

from __future__ import annotations

import pandas as pd
from report_testkit import make_analysis

from mmtrial.cli import _problem_text
from mmtrial.figures.km import _risk_row_label
from mmtrial.report.methods import flatten_settings
from mmtrial.report.model import Table
from mmtrial.report.render import _notes, render_html

RUN_DATE = "2026-01-01T00:00:00Z"


def _header(html: str) -> str:
    return html.split("<dt>Method profile</dt>", 1)[1].split("</dd>", 1)[0]


def test_run_header_profile_is_the_run_option_when_it_overrides_the_protocol():
    # rule (docs/report.md, run header): --profile r over a protocol saying sas shows both
    a = make_analysis()
    a.options = {"profile": "r"}
    assert "r (run option; protocol: sas)" in _header(render_html(a, run_date=RUN_DATE))


def test_run_header_profile_is_the_protocol_one_without_an_override():
    assert _header(render_html(make_analysis(), run_date=RUN_DATE)).endswith("<dd>sas")


def _table(footnotes: list[str], population: str | None) -> Table:
    return Table(id="t", title="t", data=pd.DataFrame({"a": ["1"]}), footnotes=footnotes,
                 population=population, source="ADSL")


def test_population_line_not_repeated_when_a_footnote_already_states_it():
    # same text -> one line; a longer footnote containing it -> one line; a different one -> both
    same = _notes(_table(["Population: mITT."], "mITT"))
    assert [n for n in same if n.startswith("Population:")] == ["Population: mITT."]
    longer = _notes(_table(["Population: mITT (EFFFL = Y). Subgroup: penta."], "mITT"))
    assert [n for n in longer if n.startswith("Population:")] == [
        "Population: mITT (EFFFL = Y). Subgroup: penta."
    ]
    other = _notes(_table(["Population: mITT."], "Safety population"))
    assert other == ["Population: mITT.", "Population: Safety population.", "Source: ADSL."]


def test_a_list_of_sentences_is_joined_as_prose_and_scalars_with_commas():
    got = flatten_settings({"notes": ["First rule.", "Second rule."], "levels": [0.9, 0.95]})
    assert got == [("notes", "First rule. Second rule."), ("levels", "0.9, 0.95")]


def test_at_risk_row_label_is_whole_or_shortened_at_a_word_boundary():
    assert _risk_row_label("Overall survival") == ("Overall survival", 8.0)
    # 25 characters: was shown as "Progression-free surviva"
    assert _risk_row_label("Progression-free survival") == ("Progression-free survival", 7.0)
    assert _risk_row_label("Progression-free survival, label population") == (
        "Progression-free ...",
        7.0,
    )


def test_cli_problem_and_hint_read_as_two_sentences():
    assert _problem_text("required variable missing", "See docs/data-contract.md.") == (
        "required variable missing. See docs/data-contract.md."
    )
    assert _problem_text("bad date (YYYY-MM-DD).", None) == "bad date (YYYY-MM-DD)."
