"""`mmtrial demo` passes --pdf-engine and --pdf-content on to its analysis (as `analyze` takes them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import mmtrial.cli as cli
import mmtrial.pipeline as pipeline

runner = CliRunner()


@pytest.fixture
def recorded(monkeypatch) -> dict[str, object]:
    """The renderer check and the analysis replaced by recorders (the demo's study is still simulated)."""
    seen: dict[str, object] = {}
    monkeypatch.setattr(pipeline, "require_pdf_renderer", lambda engine="weasyprint": seen.update(checked=engine))
    monkeypatch.setattr(cli, "analyze", lambda *a, **kw: seen.update(kw))
    return seen


def test_demo_passes_pdf_engine_and_content(tmp_path: Path, recorded):
    r = runner.invoke(cli.app, ["demo", "--n", "5", "--out", str(tmp_path / "d"), "--quiet", "--pdf",
                                "--pdf-engine", "chromium", "--pdf-content", "full"])
    assert r.exit_code == 0, r.output
    assert recorded["checked"] == "chromium"  # the chosen renderer is checked before any work
    assert recorded["pdf"] is True
    assert recorded["pdf_engine"] == cli.PdfEngine.chromium and recorded["pdf_content"] == cli.PdfContent.full


def test_demo_defaults_are_analyze_defaults(tmp_path: Path, recorded):
    r = runner.invoke(cli.app, ["demo", "--n", "5", "--out", str(tmp_path / "d"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "checked" not in recorded and recorded["pdf"] is False
    assert recorded["pdf_engine"] == cli.PdfEngine.weasyprint and recorded["pdf_content"] == cli.PdfContent.body
