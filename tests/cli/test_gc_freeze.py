"""The `analyze` command freezes the objects its imports made (gc.freeze, issue 15); a Python
caller of mmtrial's analyze() keeps its garbage collector untouched."""

from __future__ import annotations

import gc

import pytest
from typer.testing import CliRunner

import mmtrial.cli as cli
import mmtrial.pipeline as pipeline

runner = CliRunner()


@pytest.fixture
def freezes(monkeypatch) -> list[str]:
    """gc.freeze recorded (not done: the test process keeps its collector), ADSL step only."""
    calls: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(pipeline, "STEPS", ("adsl",))
    return calls


def test_analyze_command_freezes_before_the_work(tmp_path, study, freezes, monkeypatch):
    order: list[str] = []
    real_load = pipeline.load_study
    monkeypatch.setattr(pipeline, "load_study", lambda *a, **k: (order.append(f"read after {freezes}"), real_load(*a, **k))[1])
    r = runner.invoke(cli.app, ["analyze", str(study), "--out", str(tmp_path / "out"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert freezes == ["freeze"] and order == ["read after ['freeze']"]


def test_library_analyze_does_not_freeze(tmp_path, study, freezes):
    pipeline.analyze(study, tmp_path / "out")
    assert freezes == []


def test_pdf_renderer_is_loaded_before_the_freeze(tmp_path, study, freezes, monkeypatch):
    """With --pdf the renderer's modules are imported (and checked) first, so they are frozen too."""
    seen: list[str] = []
    monkeypatch.setattr(pipeline, "require_pdf_renderer",
                        lambda engine="weasyprint": seen.append(f"{engine} before {len(freezes)} freeze(s)"))
    monkeypatch.setattr(pipeline, "analyze", lambda *a, **k: (_ for _ in ()).throw(SystemExit(0)))
    runner.invoke(cli.app, ["analyze", str(study), "--out", str(tmp_path / "out"), "--quiet", "--pdf",
                            "--pdf-engine", "chromium"])
    assert seen and seen[0] == "chromium before 0 freeze(s)" and freezes == ["freeze"]
