"""Exit codes and messages (data contract v2 "Exit codes"; docs/cli.md): 0 done, 1 input errors,
2 usage errors in one line, 3 an internal error with a log; never a Python traceback for a
user's mistake."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mmtrial.pipeline as pipeline
from mmtrial.cli import app
from mmtrial.errors import ProtocolError

runner = CliRunner()
STORM = Path(pipeline.__file__).parent / "protocol" / "storm.toml"


def usage_error(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


def test_missing_study_folder_and_a_study_path_that_is_a_file(tmp_path, study):
    line = usage_error(["analyze", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert "study folder not found" in line and "nope" in line
    line = usage_error(["analyze", str(study / "dm.csv"), "--out", str(tmp_path / "out")])
    assert "is a file" in line
    assert "study folder not found" in usage_error(["check", str(tmp_path / "nope")])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "expect"), [
    (None, "cannot read the protocol file: No such file"),
    ('[study]\nid = "X"\ntitle = \n', ":3: TOML syntax error"),
    ("UNKNOWN", "[study.foo]: unknown key"),
    ("BADVALUE", "[regimen.cycle_length_days]: Input should be a valid integer"),
])
def test_protocol_errors_exit_2_naming_file_key_and_line(tmp_path, study, no_reading, text, expect):
    proto = tmp_path / "p.toml"
    if text == "UNKNOWN":
        proto.write_text(STORM.read_text().replace("[study]\n", "[study]\nfoo = 1\n", 1))
    elif text == "BADVALUE":
        src = STORM.read_text()
        assert "\ncycle_length_days = 28" in src
        proto.write_text(src.replace("\ncycle_length_days = 28", '\ncycle_length_days = "x"', 1))
    elif text is not None:
        proto.write_text(text)
    line = usage_error(["analyze", str(study), "--out", str(tmp_path / "out"), "--protocol", str(proto)])
    assert "p.toml" in line and expect in line, line
    assert not (tmp_path / "out").exists()


def test_load_protocol_file_raises_protocol_error_with_its_parts(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nid = "X"\nbad line here\nz = 1\n')
    with pytest.raises(ProtocolError) as exc:
        pipeline.load_protocol_file(bad)
    assert exc.value.file == str(bad) and exc.value.line == 3
    assert pipeline.load_protocol_file(None).study.id  # the bundled protocol loads


def test_pdf_without_weasyprint_is_refused_before_any_work(tmp_path, study, no_reading, monkeypatch):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import weasyprint now fails
    line = usage_error(["analyze", str(study), "--out", str(tmp_path / "out"), "--pdf"])
    assert "pip install 'mmtrial[pdf]'" in line and "libpango-1.0-0" in line and "libpangoft2-1.0-0" in line
    assert not (tmp_path / "out").exists()


def test_a_bad_option_is_a_usage_error(tmp_path, study):
    r = runner.invoke(app, ["analyze", str(study), "--out", str(tmp_path / "o"), "--profile", "spss"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert runner.invoke(app, ["simulate", "--n", "0", "--out", str(tmp_path / "s")]).exit_code == 2


def test_a_bug_outside_an_output_folder_logs_to_the_temporary_folder(tmp_path, study, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "logs"))
    (tmp_path / "logs").mkdir()

    def bug(*a, **k):
        raise KeyError("unexpected")

    monkeypatch.setattr("mmtrial.sdtm.load_study", bug)
    r = runner.invoke(app, ["check", str(study)])
    assert r.exit_code == 3 and "Traceback" not in r.output
    logs = list((tmp_path / "logs").glob("mmtrial-error-*.log"))
    assert len(logs) == 1 and "KeyError: 'unexpected'" in logs[0].read_text()
    assert str(logs[0]) in r.output.replace("\n", "")
    monkeypatch.setenv("MMTRIAL_DEBUG", "1")  # developers get the exception itself
    r = runner.invoke(app, ["check", str(study)])
    assert isinstance(r.exception, KeyError)


def test_the_installed_entry_point_prints_one_line_and_no_traceback(tmp_path):
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run([sys.executable, "-m", "mmtrial.cli", "analyze", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [f"Error: study folder not found: {tmp_path / 'nope'}"]
