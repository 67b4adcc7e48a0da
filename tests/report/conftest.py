"""Fixtures for the report tests: a crafted analysis with known counts, and a built report.

``built_report`` returns ``(html_path, results)``: the browser test checks the report against
``results``. It builds from the crafted analysis for now; to point the browser test at the real
pipeline, override this fixture (e.g. run ``mmtrial analyze`` on the demo study and return
``(out / "report.html", json.loads((out / "results.json").read_text()))``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from report_testkit import Node, make_analysis, parse_html

from mmtrial.context import Analysis


@pytest.fixture
def analysis_factory() -> Callable[..., Analysis]:
    return make_analysis


@pytest.fixture
def crafted_analysis() -> Analysis:
    return make_analysis()


@pytest.fixture(params=["crafted", "demo"])
def built_report(request, tmp_path: Path) -> tuple[Path, dict]:
    """``(report.html path, results dict)``: a crafted analysis with known counts, and the real
    pipeline's output on the bundled synthetic demo study (tests/conftest.py ``demo``)."""
    from mmtrial.report.render import write_report

    if request.param == "demo":
        demo = request.getfixturevalue("demo")
        return demo.output.report_html, json.loads(demo.output.results_json.read_text(encoding="utf-8"))
    a = make_analysis()
    out = tmp_path / "out"
    html_path = write_report(a, out, run_date="2026-01-01T00:00:00Z")
    (out / "results.json").write_text(json.dumps(a.results, indent=2), encoding="utf-8")
    return html_path, json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.fixture
def html_tree() -> Callable[[str], Node]:
    return parse_html
