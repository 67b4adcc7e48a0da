"""The report as PDF, via WeasyPrint (BSD; PyPI ``weasyprint``, system Pango from Debian).

WeasyPrint lays out the same HTML with the report's print stylesheet: A4 or Letter pages, page
numbers ("Page n of N") and, for a synthetic study, "SYNTHETIC DATA" in every page's top margin;
table header rows repeat on each page, rows are not split, cells wrap, and tables wider than
``WIDE_TABLE_COLUMNS`` columns go on landscape pages, so no table is clipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from mmtrial._io import atomic_write_bytes

PageSize = Literal["A4", "Letter"]
PAGE_SIZES: tuple[str, ...] = ("A4", "Letter")


class PdfUnavailableError(RuntimeError):
    """WeasyPrint or the system libraries it needs (Pango) cannot be loaded."""


def load_weasyprint():
    """Import WeasyPrint, turning a missing package or Pango into one clear error."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: libpango not found by cffi
        raise PdfUnavailableError(
            "PDF output needs WeasyPrint and the system Pango library: "
            "pip install 'mmtrial[pdf]' and apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
            f"fonts-dejavu-core ({type(exc).__name__}: {exc})"
        ) from exc
    return weasyprint


def page_size_css(page_size: str) -> str:
    """The ``@page`` rules that set the paper size (portrait and the landscape ``wide`` pages)."""
    if page_size not in PAGE_SIZES:
        raise ValueError(f"render_pdf: page_size must be one of {PAGE_SIZES}; got {page_size!r}")
    return f"@page {{ size: {page_size}; }} @page wide {{ size: {page_size} landscape; }}"


_TRACE_LIST = re.compile(r'(<div class="trace-entry" id="[^"]*">.*?)<ul>(.*?)</ul>')
_TRACE_ITEM = re.compile(r"<li>(?:<a [^>]*>)?(.*?)(?:</a>)?</li>")


def compact_trace_index(html: str) -> str:
    """Print form of the traceability index: each entry's subjects as one line of text.

    On screen each subject is a link (``<li><a>``); WeasyPrint styles and lays out every element,
    and tens of thousands of them (large AE tables) cost minutes. In the PDF the count still
    links to its entry, and the entry names the subjects as plain text (the listing is sorted by
    USUBJID). Measured in docs/report.md.
    """

    def _one(m: re.Match[str]) -> str:
        names = _TRACE_ITEM.findall(m.group(2))
        return f'{m.group(1)}<p class="trace-subjects">{", ".join(names)}</p>'

    return _TRACE_LIST.sub(_one, html)


def _with_page_size(html: str, page_size: str) -> str:
    style = f"<style>{page_size_css(page_size)}</style>"
    i = html.find("</head>")
    return html[:i] + style + html[i:] if i >= 0 else style + html


def render_pdf_document(html: str, *, page_size: PageSize = "A4"):
    """Lay out the report; returns WeasyPrint's ``Document`` (pages and boxes, for checks)."""
    wp = load_weasyprint()
    return wp.HTML(string=compact_trace_index(_with_page_size(html, page_size))).render()


def render_pdf(html: str, path: Path | str, *, page_size: PageSize = "A4") -> None:
    """Write the report HTML as a PDF at ``path`` (atomically: temp file then ``os.replace``).

    Parameters
    ----------
    html
        The document from :func:`mmtrial.report.render.render_html`.
    path
        Where the PDF goes.
    page_size
        ``"A4"`` (default) or ``"Letter"``; wide tables use the same paper in landscape.
    """
    doc = render_pdf_document(html, page_size=page_size)
    atomic_write_bytes(Path(path), doc.write_pdf())


# --- a second renderer: headless Chromium (issue 15) ----------------------------------------------

PDF_ENGINES: tuple[str, ...] = ("weasyprint", "chromium")
#: Executables tried in this order. The headless shell first (Debian package
#: ``chromium-headless-shell``; Chrome for Testing's ``chrome-headless-shell``): the same Blink
#: layout and print code without the browser, so a print starts in a third of the CPU (one-page
#: print 0.5 s against 1.8 s; the demo's body PDF 3.3 s against 6.0 s, tagged and with bookmarks,
#: the same pages; docs/design.md "sixth pass: PDF").
CHROMIUM_NAMES: tuple[str, ...] = ("chromium-headless-shell", "chrome-headless-shell", "chromium",
                                   "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_TIMEOUT_S = 600


def find_chromium() -> str:
    """The path of the first of :data:`CHROMIUM_NAMES` on PATH (a headless shell before a full
    browser); :class:`PdfUnavailableError` if none."""
    import shutil

    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise PdfUnavailableError(f"--pdf-engine chromium: none of {', '.join(CHROMIUM_NAMES)} is on PATH "
                              "(apt-get install chromium-headless-shell, or chromium)")


#: Chromium switches of the print run besides ``--headless`` and the files (issue 15, measured in
#: docs/design.md "fourth pass": no service a local print does not need; 0.2-0.4 s of CPU less
#: on a one-page print in one series, no measurable change on the demo): no GPU process (``--in-process-gpu``), no
#: extensions, sync, component updates, crash reporter or background networking, one renderer
#: process. ``--generate-pdf-document-outline``: PDF bookmarks from the report's headings (as
#: WeasyPrint makes), for navigation in a 50-page print. The PDF stays tagged (Chromium's
#: default; ``--disable-pdf-tagging`` would save about 1 s and 2.6 MB on the demo but drop the
#: structure that screen readers use).
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--disable-gpu", "--in-process-gpu", "--disable-software-rasterizer", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--disable-default-apps", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--disable-breakpad",
    "--disable-dev-shm-usage", "--mute-audio", "--renderer-process-limit=1",
    "--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider",
    "--no-pdf-header-footer", "--generate-pdf-document-outline",
)


def chromium_command(exe: str, html_file: Path, pdf_file: Path, profile_dir: Path,
                     *, flags: tuple[str, ...] = CHROMIUM_FLAGS) -> list[str]:
    """The headless print command: no browser header/footer (the print stylesheet has its own),
    a throw-away profile, :data:`CHROMIUM_FLAGS`, no sandbox only when running as root
    (Chromium refuses otherwise)."""
    import os

    cmd = [exe, "--headless", *flags, f"--user-data-dir={profile_dir}", f"--print-to-pdf={pdf_file}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--no-sandbox")
    return [*cmd, html_file.resolve().as_uri()]


def _chromium_env() -> dict[str, str]:
    """Chromium's environment: a short TMPDIR (its IPC sockets live there, and a Unix socket path
    is limited to 107 bytes: with a long TMPDIR Chromium aborts), else as given."""
    import os
    import tempfile

    env = dict(os.environ)
    if len(tempfile.gettempdir()) > 40 and os.access("/tmp", os.W_OK):
        env["TMPDIR"] = "/tmp"
    return env


def render_pdf_chromium(html: str, path: Path | str, *, page_size: PageSize = "A4") -> None:
    """Write the report HTML as a PDF with headless Chromium (``--print-to-pdf``).

    Same print form and stylesheet as :func:`render_pdf`; Chromium applies the ``@page`` rules,
    its page breaks may differ (docs/report.md). Chromium runs in its own process group, which is
    ended after it returns, so none of its helper processes outlives the call.
    """
    import contextlib
    import os
    import signal
    import subprocess
    import tempfile

    exe = find_chromium()
    with tempfile.TemporaryDirectory(prefix="mmtrial-pdf-") as tmp_s:
        tmp = Path(tmp_s)
        src, out = tmp / "report.html", tmp / "report.pdf"
        src.write_text(compact_trace_index(_with_page_size(html, page_size)), "utf-8")
        proc = subprocess.Popen(chromium_command(exe, src, out, tmp / "profile"), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                env=_chromium_env())
        try:
            _, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        finally:
            # helpers (zygote, GPU, utility) Chromium has not reaped: end the group it leads
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            tail = (err or b"").decode("utf-8", "replace").strip().splitlines()[-3:]
            raise RuntimeError(f"chromium --print-to-pdf failed (exit {proc.returncode}): {' | '.join(tail)}")
        atomic_write_bytes(Path(path), out.read_bytes())
