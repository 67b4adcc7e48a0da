"""The output folder is the user's (data contract v2; docs/cli.md "The output folder"): refusals
before any work with exit 2 and one line, the user's files untouched byte for byte; the marker;
reruns; stale temporary folders; a failed run never leaves an old report looking current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mmtrial.pipeline as pipeline
from mmtrial._io import MARKER, check_output_folder, clean_stale_temps, read_marker, write_marker
from mmtrial.cli import app
from mmtrial.errors import OutputFolderError
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains

runner = CliRunner()


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``: file bytes, link targets, folders (to prove nothing changed)."""
    out: dict[str, object] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
    return out


@pytest.fixture
def fast_steps(monkeypatch):
    """Full runs with the ADSL step only (the folder rules do not depend on the steps)."""
    monkeypatch.setattr(pipeline, "STEPS", ("adsl",))


def refused(args: list[str], root: Path, expect: str) -> None:
    before = snapshot(root)
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --out"), r.output
    assert expect in lines[0], lines[0]
    assert "Traceback" not in r.output
    assert snapshot(root) == before  # the user's files untouched, byte for byte, nothing added


def test_out_is_the_study_folder(tmp_path, study, no_reading):
    refused(["analyze", str(study), "--out", str(study)], tmp_path, "is the study folder")


def test_out_inside_the_study_folder(tmp_path, study, no_reading):
    refused(["analyze", str(study), "--out", str(study / "out")], tmp_path, "lies inside the study folder")


def test_out_containing_the_study_folder(tmp_path, study, no_reading, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(["analyze", "study", "--out", "."], tmp_path, "contains the study folder")


def test_out_dot_and_dot_dot_from_inside_the_study(tmp_path, study, no_reading, monkeypatch):
    monkeypatch.chdir(study)
    refused(["analyze", ".", "--out", "."], tmp_path, "is the study folder")
    refused(["analyze", ".", "--out", ".."], tmp_path, "contains the study folder")


def test_out_a_symlink_to_the_study_is_resolved(tmp_path, study, no_reading):
    (tmp_path / "link").symlink_to(study, target_is_directory=True)
    refused(["analyze", str(study), "--out", str(tmp_path / "link")], tmp_path, "is the study folder")
    refused(["analyze", str(tmp_path / "link"), "--out", str(study / "x")], tmp_path, "inside the study")


def test_out_with_the_users_files_and_no_marker(tmp_path, study, no_reading):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("my notes")
    refused(["analyze", str(study), "--out", str(tmp_path / "out")], tmp_path, "mmtrial did not write it")


def test_out_marked_but_holding_a_file_mmtrial_did_not_write(tmp_path, study, no_reading):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("old report")
    write_marker(out, kind="analysis", status="complete", files=["report.html"])
    (out / "notes.txt").write_text("added by the user after the run")
    refused(["analyze", str(study), "--out", str(out)], tmp_path, "holds files mmtrial did not write (notes.txt)")


def test_out_holding_another_kind_of_mmtrial_output(tmp_path, study, no_reading):
    sim_study = write_study_folder(tmp_path / "other", valid_raw_domains())
    write_marker(sim_study, kind="study", status="complete", files=[p.name for p in sim_study.iterdir()])
    refused(["analyze", str(study), "--out", str(sim_study)], tmp_path, "mmtrial simulate")


def test_out_a_regular_file_or_under_one(tmp_path, study, no_reading):
    (tmp_path / "file.txt").write_text("x")
    refused(["analyze", str(study), "--out", str(tmp_path / "file.txt")], tmp_path, "is a file, not a folder")
    refused(["analyze", str(study), "--out", str(tmp_path / "file.txt" / "a" / "out")], tmp_path,
            "is a file, so nothing can be written under it")


def test_out_a_broken_symlink(tmp_path, study, no_reading):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    refused(["analyze", str(study), "--out", str(tmp_path / "dangling")], tmp_path, "broken symbolic link")


def test_out_where_mmtrial_cannot_write(tmp_path, study, no_reading, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere: emulate the permission check's answer
        import mmtrial._io as io

        real = io._writable
        monkeypatch.setattr(io, "_writable", lambda p: p != locked and real(p))
    try:
        refused(["analyze", str(study), "--out", str(locked / "out")], tmp_path, "permission denied")
    finally:
        locked.chmod(0o755)


def test_the_python_api_applies_the_same_rules(tmp_path, study, no_reading):
    with pytest.raises(OutputFolderError, match="is the study folder"):
        pipeline.analyze(study, study)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("a")
    with pytest.raises(OutputFolderError, match="mmtrial did not write it"):
        pipeline.analyze(study, tmp_path / "mine")


def test_simulate_and_demo_refuse_a_folder_with_the_users_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("1,2\n")
    refused(["simulate", "--n", "5", "--out", str(tmp_path / "mine")], tmp_path, "mmtrial did not write it")
    refused(["demo", "--n", "5", "--out", str(tmp_path / "mine")], tmp_path, "mmtrial did not write it")
    # a demo folder whose study sub-folder holds a file of the user's: refused before simulating
    demo = tmp_path / "demo"
    demo.mkdir()
    write_marker(demo, kind="demo", status="complete", folders=["study", "output"])
    (demo / "study").mkdir()
    (demo / "study" / "mine.txt").write_text("x")
    refused(["demo", "--n", "5", "--out", str(demo)], tmp_path, "mmtrial did not write it")


def test_check_out_file_rules(tmp_path, study):
    (tmp_path / "results.csv").write_text("my,own\n1,2\n")
    refused(["check", str(study), "--out", str(tmp_path / "results.csv")], tmp_path, "mmtrial did not write")
    refused(["check", str(study), "--out", str(tmp_path)], tmp_path, "is a folder")
    refused(["check", str(study), "--out", str(study / "issues.csv")], tmp_path, "inside the study folder")
    target = tmp_path / "reports" / "issues.csv"  # missing parent folders are created
    assert runner.invoke(app, ["check", str(study), "--out", str(target), "--quiet"]).exit_code == 0
    assert target.read_text().startswith("domain,variable,problem,severity")
    # mmtrial may overwrite an issues.csv it wrote
    assert runner.invoke(app, ["check", str(study), "--out", str(target), "--quiet"]).exit_code == 0


def test_input_errors_into_a_refused_out_write_nothing(tmp_path, monkeypatch):
    raw = valid_raw_domains()
    raw["dm"].loc[1, "SEX"] = "FEMALE"
    bad = write_study_folder(tmp_path / "bad", raw)
    refused(["analyze", str(bad), "--out", str(bad / "out")], tmp_path, "inside the study folder")
    r = runner.invoke(app, ["analyze", str(bad), "--out", str(tmp_path / "out"), "--quiet"])
    assert r.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MARKER, "issues.csv"]
    assert read_marker(tmp_path / "out")["status"] == "input-errors"


def test_marker_and_rerun_into_an_earlier_output(tmp_path, study, fast_steps):
    out = tmp_path / "a" / "b" / "out"  # missing parents are created
    first = pipeline.analyze(study, out, run_date="2026-01-01")
    marker = read_marker(out)
    assert marker["tool"] == "mmtrial" and marker["kind"] == "analysis" and marker["status"] == "complete"
    assert marker["study"] == str(study.resolve()) and marker["version"]
    assert {"report.html", "results.json", "issues.csv", "adam/adsl.parquet"} <= set(marker["files"])
    assert set(marker["files"]) == {p.relative_to(out).as_posix() for p in out.rglob("*")
                                    if p.is_file() and p.name != MARKER}
    assert first.report_html == out / "report.html" and first.report_html.exists()
    (out / ".DS_Store").write_bytes(b"finder")  # a file manager's file: kept, not refused
    (out / "report.html").write_text("stale")
    again = pipeline.analyze(study, out, run_date="2026-01-02")
    assert "stale" not in again.report_html.read_text()
    assert (out / ".DS_Store").read_bytes() == b"finder"
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # no temporary folder left
    r = runner.invoke(app, ["analyze", str(study), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporary_folders_of_killed_runs_are_cleaned(tmp_path):
    out = tmp_path / "out"
    dead = _dead_pid()

    def temp(name: str, marked: bool = True, age_days: float = 0) -> Path:
        p = tmp_path / name
        p.mkdir()
        (p / "adsl.parquet").write_bytes(b"partial")
        if marked:
            write_marker(p, kind="analysis", status="writing")
        if age_days:
            t = time.time() - age_days * 86400
            os.utime(p, (t, t))
        return p

    gone = [temp(f".out.tmp-{dead}-abc123"), temp(f".out.old-{dead}"),
            temp(f".out.tmp-{os.getpid()}-old", age_days=2)]  # alive but two days old
    kept = [temp(f".out.tmp-{os.getpid()}-live"),  # a run still going
            temp(f".out.tmp-{dead}-users", marked=False),  # not mmtrial's: never deleted
            temp(f".other.tmp-{dead}-abc")]  # beside another output
    removed = clean_stale_temps(out)
    assert sorted(removed) == sorted(gone)
    assert not any(p.exists() for p in gone) and all(p.exists() for p in kept)


def test_a_failed_run_never_leaves_an_old_report_looking_current(tmp_path, study, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("last week's report")
    write_marker(out, kind="analysis", status="complete", files=["report.html"])

    def bug(*a, **k):
        raise ZeroDivisionError("a bug in a step")

    monkeypatch.setattr(pipeline, "run_steps", bug)
    with pytest.raises(ZeroDivisionError) as exc:
        pipeline.analyze(study, out)
    log = out / pipeline.ERROR_LOG
    assert exc.value.mmtrial_log == log
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "issues.csv", pipeline.ERROR_LOG]
    assert read_marker(out)["status"] == "failed"
    assert "ZeroDivisionError: a bug in a step" in log.read_text() and "Traceback" in log.read_text()
    # the command line: a short message naming the log, exit 3, no traceback wall
    r = runner.invoke(app, ["analyze", str(study), "--out", str(out), "--quiet"])
    assert r.exit_code == 3
    assert "internal error" in r.output and str(log) in r.output.replace("\n", "")
    assert "Traceback" not in r.output


def test_check_output_folder_accepts_absent_empty_and_marked(tmp_path):
    assert check_output_folder(tmp_path / "new", kind="analysis") == (tmp_path / "new").resolve()
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", kind="analysis")
    (tmp_path / "finder").mkdir()
    (tmp_path / "finder" / ".DS_Store").write_bytes(b"x")
    check_output_folder(tmp_path / "finder", kind="analysis")  # only a file manager's file: empty
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / MARKER).write_text(json.dumps({"tool": "other"}))
    with pytest.raises(OutputFolderError, match="did not write it"):
        check_output_folder(tmp_path / "fake", kind="analysis")


def test_atomic_writer_replaces_only_on_success(tmp_path):
    """The streaming writer (XPT, Dataset-JSON, every atomic output): an error mid-stream leaves
    the earlier file untouched and no temporary file behind; success replaces it whole."""
    from mmtrial._io import atomic_writer

    target = tmp_path / "adsl.xpt"
    target.write_bytes(b"earlier")
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write(b"first chunk")
        raise RuntimeError("failed after the first chunk")
    assert target.read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adsl.xpt"]
    with atomic_writer(target) as fh:
        fh.write(b"one ")
        fh.write(b"two")
    assert target.read_bytes() == b"one two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adsl.xpt"]
