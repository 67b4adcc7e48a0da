"""A protocol with only [study] and [regimen] runs end to end (issue 12 quality bar).

The study is the STORM simulator's (selinexor + dexamethasone), so the minimal protocol names
that regimen; every other section takes its documented default (docs/protocol.md). Before this
release the time-to-event step failed on it with "endpoints Field required".
"""

from __future__ import annotations

import json

import pytest

from mmtrial.pipeline import STEPS, analyze
from mmtrial.simulate import simulate_study, write_study

pytestmark = pytest.mark.slow  # simulates and analyses a 30-subject study (about 25 s of CPU)

MINIMAL = """\
[study]
id = "MINI"
title = "Selinexor and dexamethasone, a minimal protocol"

[regimen]
cycle_length_days = 28
study_drug = "SELINEXOR"
drugs = [
  { name = "SELINEXOR", dose = 80, cycle_days = [1, 3, 8, 10, 15, 17, 22, 24] },
  { name = "DEXAMETHASONE", dose = 20, days_of_week = [1, 3] },
]
"""


@pytest.fixture(scope="module")
def minimal_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("minimal")
    write_study(simulate_study(n=30, seed=11), base / "study")
    proto = base / "mini.toml"
    proto.write_text(MINIMAL)
    # the biomarker step (100 permutations by default) adds only run time here
    out = analyze(base / "study", base / "out", protocol=proto, steps=[s for s in STEPS if s != "biomarker"],
                  run_date="2026-01-01T00:00:00Z")
    return out, json.loads(out.results_json.read_text("utf-8"))


def test_default_endpoints_are_the_single_arm_definitions(minimal_run):
    out, results = minimal_run
    assert set(results["time_to_event"]) >= {"OS", "PFS", "DOR", "TTR", "TTNT"}
    assert out.analysis.adam["adtte"]["PARAMCD"].nunique() == 5


def test_no_label_population_or_storm_criteria_without_an_eligibility_section(minimal_run):
    out, results = minimal_run
    assert results["eligibility"]["label_population"] is None
    assert results["eligibility"]["failing"] == {}
    html = out.report_html.read_text("utf-8")
    assert "label-population-failures" not in html and "Label population" not in html
    assert "The protocol lists no inclusion criteria" in html


def test_regimen_and_planned_dose_in_the_report(minimal_run):
    out, _ = minimal_run
    html = out.report_html.read_text("utf-8")
    # 80 mg x 8 days x 7 / 28 = 160 mg/week (cycle_days and days_of_week give the same schedule)
    assert "160 mg/week" in html and "twice weekly (days 1, 3)" in html
    assert "no [dose_ladder] for SELINEXOR" in html
