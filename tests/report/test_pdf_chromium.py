"""``--pdf-engine chromium``: the report printed by headless Chromium (issue 15).

Page sizes are read from the PDF's ``/MediaBox`` entries (PDF 1.7, ISO 32000-1 7.7.3.3: the
page's size in points, 1/72 in; A4 = 595.3 x 841.9 pt). Skipped when no Chromium is installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmtrial.report.pdf import PdfUnavailableError, chromium_command, find_chromium

try:
    find_chromium()
    _REASON = ""
except PdfUnavailableError as exc:  # pragma: no cover - depends on the machine
    _REASON = str(exc)

SRC = str(Path(__file__).resolve().parents[2] / "src")
TESTS = str(Path(__file__).resolve().parent)


def test_command_has_no_browser_header_and_a_private_profile(tmp_path: Path):
    cmd = chromium_command("/x/chromium", tmp_path / "r.html", tmp_path / "r.pdf", tmp_path / "p")
    assert "--headless" in cmd and "--no-pdf-header-footer" in cmd
    assert f"--user-data-dir={tmp_path / 'p'}" in cmd and cmd[-1] == (tmp_path / "r.html").as_uri()
    # bookmarks from the headings; the PDF stays tagged (no --disable-pdf-tagging)
    assert "--generate-pdf-document-outline" in cmd and "--disable-pdf-tagging" not in cmd


def test_headless_shell_is_preferred_to_the_browser(monkeypatch):
    """issue 15 (docs/design.md "sixth pass: PDF"): the headless shell prints the same pages in
    about a third of the browser's CPU, so it is used when both are installed."""
    import shutil

    on_path = {"chromium": "/usr/bin/chromium", "chromium-headless-shell": "/usr/bin/chromium-headless-shell"}
    monkeypatch.setattr(shutil, "which", on_path.get)
    assert find_chromium() == "/usr/bin/chromium-headless-shell"
    del on_path["chromium-headless-shell"]
    assert find_chromium() == "/usr/bin/chromium"
    on_path.clear()
    with pytest.raises(PdfUnavailableError, match="chromium-headless-shell"):
        find_chromium()


@pytest.mark.skipif(bool(_REASON), reason=f"Chromium unavailable: {_REASON}")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_chromium_pdf_pages_and_no_process_left(tmp_path: Path):
    """A4 portrait pages plus landscape pages for the wide listing (the print stylesheet's
    ``@page wide``; the listing is printed with ``pdf_content="full"``), and no Chromium helper left running (its temporary profile lives under
    this test's own TMPDIR, so any survivor would name it on its command line)."""
    code = f"""
        import os
        from report_testkit import make_analysis
        from mmtrial.report.render import write_report
        write_report(make_analysis(), {str(tmp_path)!r}, pdf=True, run_date="2026-01-01T00:00:00Z",
                     pdf_engine="chromium", pdf_content="full")
        left = []
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != os.getpid():  # this script names the folder too
                try:
                    with open(f"/proc/{{d}}/cmdline", "rb") as fh:
                        cmd = fh.read()
                except OSError:
                    continue
                if {str(tmp_path / "tmp").encode()!r} in cmd:
                    left.append(d)
        print(len(left))
    """
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"),
           "PYTHONPATH": os.pathsep.join([SRC, TESTS, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "0"
    pdf = (tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    boxes = [tuple(round(float(v)) for v in m.split()[2:])
             for m in re.findall(rb"/MediaBox\s*\[([^\]]*)\]", pdf)]
    assert boxes and set(boxes) == {(595, 842), (842, 595)}
    assert boxes[0] == (595, 842)
    # a tagged PDF (structure tree for screen readers) with bookmarks (document outline)
    assert b"/StructTreeRoot" in pdf and b"/Outlines" in pdf
