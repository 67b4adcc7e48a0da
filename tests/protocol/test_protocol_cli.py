"""``mmtrial protocol check/init/schema/list`` and the ProtocolError contract (data contract v2,
"Exit codes": a bad protocol file is a usage error, exit 2, one line naming file, key and line).

Each bad file below is a minimal valid protocol with one mistake; the expected line is counted by
hand in the text written (1-based).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from mmtrial.cli import app
from mmtrial.errors import EXIT_USAGE, ProtocolError
from mmtrial.protocol import Protocol, bundled, bundled_names
from mmtrial.protocol.sections import protocol_json_schema

runner = CliRunner()

MINIMAL = """\
[study]
id = "MINI"
title = "A minimal protocol"

[regimen]
cycle_length_days = 21
study_drug = "POMALIDOMIDE"
drugs = [
  { name = "POMALIDOMIDE", dose = 4, cycle_days = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] },
  { name = "DEXAMETHASONE", dose = 40, cycle_days = [1, 8, 15] },
]
"""

# (name, text, dotted key, line, words in the message)
CASES = [
    ("misspelled section", MINIMAL + "\n[safty]\nteae_window_days = 30\n", "safty", 13,
     "unknown section [safty]; did you mean [safety]?"),
    ("unknown nested key", MINIMAL.replace("dose = 40,", 'dose = 40, rout = "ORAL",'),
     "regimen.drugs[1].rout", 10, "unknown key 'rout'"),
    ("unknown key in an options section", MINIMAL + "\n[refractory]\nwindow_dayz = 60\n",
     "refractory.window_dayz", 14, "did you mean 'window_days'?"),
    ("unknown key deep in tte", MINIMAL + (
        '\n[tte.endpoints.OS]\nparam = "OS"\nstart = "TRTSDT"\nevents = [\n'
        '  { name = "death", date = "DTHDT", evntdesc = "DEATH", bogus = 1 },\n]\n'
        'censors = [ { name = "alive", date = "LSTALVDT", cnsdtdsc = "ALIVE" } ]\n'),
     "tte.endpoints.OS.events[0].bogus", 17, "unknown key 'bogus'"),
    ("wrong type", MINIMAL.replace("dose = 4,", 'dose = "four",'), "regimen.drugs[0].dose", 9,
     "valid number"),
    ("wrong type of a section", "visits = 3\n" + MINIMAL, "visits", 1, "valid dictionary"),
    ("wrong type of an options section", "tte = 3\n" + MINIMAL, "tte", 1, "[tte] must be a table"),
    ("impossible value", MINIMAL.replace("cycle_length_days = 21", "cycle_length_days = -21"),
     "regimen.cycle_length_days", 6, "greater than 0"),
    ("impossible option value", MINIMAL + "\n[tte]\nlevel = 1.5\n", "tte.level", 14, "less than 1"),
    ("impossible value checked by the options model", MINIMAL + "\n[safety]\ncommon_ae_threshold = 2\n",
     "safety.common_ae_threshold", 14, "allowed (0, 1]"),
    ("day beyond the cycle", MINIMAL.replace("cycle_days = [1, 8, 15]", "cycle_days = [1, 8, 22]"),
     "regimen", 5, "beyond the 21-day cycle"),
    ("missing rules file", MINIMAL + '\n[dose_rules]\nfile = "nope.toml"\n', "dose_rules.file", 14,
     "no such dose-rule table"),
    ("missing required section", MINIMAL.split("[regimen]")[0], "regimen", None, "required key missing"),
]


@pytest.mark.parametrize("name,text,key,line,words", CASES, ids=[c[0] for c in CASES])
def test_check_reports_file_line_and_key_with_exit_2(tmp_path: Path, name, text, key, line, words):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    r = runner.invoke(app, ["protocol", "check", str(f)])
    assert r.exit_code == EXIT_USAGE, r.output
    out = r.output.strip()
    where = f"{f}:{line}" if line is not None else f"{f}"
    assert out.startswith(f"error: {where} [{key}]: "), out
    assert words in out
    assert len(out.splitlines()) == 1 and "Traceback" not in out
    # the same error from the API, with its parts
    with pytest.raises(ProtocolError) as e:
        Protocol.load(f)
    assert (e.value.file, e.value.key, e.value.line) == (str(f), key, line)


def test_toml_syntax_error_gives_its_own_line(tmp_path: Path):
    f = tmp_path / "syntax.toml"
    f.write_text(MINIMAL.replace('title = "A minimal protocol"', 'title = "A minimal protocol'))
    r = runner.invoke(app, ["protocol", "check", str(f)])
    assert r.exit_code == EXIT_USAGE
    assert r.output.startswith(f"error: {f}:3: TOML syntax error"), r.output


def test_unreadable_file_is_a_usage_error(tmp_path: Path):
    r = runner.invoke(app, ["protocol", "check", str(tmp_path / "absent.toml")])
    assert r.exit_code == EXIT_USAGE and "cannot read the protocol file" in r.output


def test_minimal_protocol_checks_and_takes_defaults(tmp_path: Path):
    f = tmp_path / "mini.toml"
    f.write_text(MINIMAL)
    r = runner.invoke(app, ["protocol", "check", str(f)])
    assert r.exit_code == 0, r.output
    p = Protocol.load(f)
    assert p.visits.response_assessment_days == 28 and p.published == {}
    assert [s.weekly_dose for s in p.ladder_for("POMALIDOMIDE")] == pytest.approx([4 * 14 * 7 / 21])


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_protocol_passes_check(name):
    r = runner.invoke(app, ["protocol", "check", name])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"{name}: ok")


@pytest.mark.parametrize("name", ["stratus", "sirius"])
def test_example_protocols_carry_published_results_with_a_source(name):
    p = Protocol.load(name)
    assert p.published_source and "orr_pct" in p.published and "source" not in p.published


def test_init_writes_a_commented_protocol_that_checks(tmp_path: Path):
    r = runner.invoke(app, ["protocol", "init", "--like", "stratus"])
    assert r.exit_code == 0
    assert r.output.startswith("# A new mmtrial protocol, started from the bundled protocol 'stratus'")
    f = tmp_path / "my.toml"
    f.write_text(r.output)
    assert runner.invoke(app, ["protocol", "check", str(f)]).exit_code == 0
    bad = runner.invoke(app, ["protocol", "init", "--like", "nope"])
    assert bad.exit_code == EXIT_USAGE and "bundled: " in bad.output


def test_shipped_schema_is_up_to_date():
    shipped = json.loads(bundled("storm").with_name("protocol.schema.json").read_text("utf-8"))
    assert shipped == protocol_json_schema(), (
        "src/mmtrial/protocol/protocol.schema.json is stale: regenerate it with "
        "`mmtrial protocol schema > src/mmtrial/protocol/protocol.schema.json`")
    r = runner.invoke(app, ["protocol", "schema"])
    assert r.exit_code == 0 and json.loads(r.output) == shipped


def test_schema_accepts_the_bundled_protocols_and_refuses_mistakes(tmp_path: Path):
    schema = protocol_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    for name in bundled_names():
        assert list(v.iter_errors(tomllib.loads(bundled(name).read_text("utf-8")))) == [], name
    for _, text, *_ in CASES[:3]:
        assert list(v.iter_errors(tomllib.loads(text))), text


def test_storm_style_single_ladder_errors_point_at_the_written_line():
    # the first-release [dose_ladder] (source + levels) is the study drug's ladder; a typo in its
    # second level (line 14 of the file) is reported there
    f = Path(__file__).with_name("legacy_ladder_typo.toml")
    with pytest.raises(ProtocolError) as e:
        Protocol.load(f)
    assert e.value.line == 14 and e.value.key == "dose_ladder.SELINEXOR.levels[1].days_of_weak"
