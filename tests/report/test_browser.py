"""The report in a real browser: headless Debian chromium driven by playwright.

Opens report.html from a file:// URL and checks: no console errors, no broken images, the
best-response counts equal results.json, a traceability link lands on the listing row in two
clicks; saves screenshots to the test's output folder (and to $MMTRIAL_TEST_ARTIFACTS when set).

The report comes from the ``built_report`` fixture (tests/report/conftest.py), which can be
overridden to point at the real pipeline's output. Never runs ``playwright install``: it uses
/usr/bin/chromium (Debian package ``chromium``) and is skipped with the reason when it is absent.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from mmtrial.tables.format import fmt_ci

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is absent (apt-get install chromium); the browser test needs Debian's chromium",
    ),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright (Python) is not installed"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def opened(browser, built_report):
    html_path, results = built_report
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on(
        "console",
        lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(Path(html_path).resolve().as_uri(), wait_until="load")
    yield page, results, errors
    page.close()


def _save(page, tmp_path: Path, name: str, *, full_page: bool = False) -> Path:
    out = tmp_path / name
    page.screenshot(path=str(out), full_page=full_page)
    extra = os.environ.get("MMTRIAL_TEST_ARTIFACTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(extra) / name)
    return out


def _leading_int(text: str) -> int:
    m = re.match(r"\s*(\d+)", text)
    assert m, f"no count at the start of {text!r}"
    return int(m.group(1))


def _bor_table(page):
    tables = page.locator(
        "table", has=page.locator("caption", has_text=re.compile("best overall response", re.I))
    )
    assert tables.count() >= 1, "no table captioned 'best overall response'"
    return tables.first


def test_report_opens_without_console_errors_or_broken_images(opened, tmp_path):
    page, _, errors = opened
    assert errors == []
    images = page.evaluate(
        "Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])"
    )
    assert images, "the report has no figure"
    assert [alt for alt, ok in images if not ok] == []
    assert all(alt.strip() for alt, _ in images)
    shot = _save(page, tmp_path, "report-top.png")
    assert shot.stat().st_size > 0


def test_bor_counts_equal_results_json(opened):
    page, results, _ = opened
    counts = results["response"]["counts"]
    table = _bor_table(page)
    rows = table.locator("tbody tr")
    seen = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        label = row.locator("th").first.inner_text().strip()
        if label in counts:
            seen[label] = _leading_int(row.locator("td").first.inner_text())
    assert seen == {k: int(v) for k, v in counts.items()}
    orr = results["response"]["orr"]
    orr_label = re.compile(r"^(ORR|Overall response)", re.I)
    orr_row = table.locator("tbody tr", has=page.locator("th", has_text=orr_label)).first
    cells = orr_row.locator("td").all_inner_texts()
    assert _leading_int(cells[0]) == orr["x"]
    # its 95% CI as results.json gives it, in the report's format (percent, one decimal, half-up)
    assert fmt_ci((orr["ci"][0] * 100, orr["ci"][1] * 100)) in cells


def test_traceability_link_lands_on_the_listing_row_in_two_clicks(opened, tmp_path):
    page, results, _ = opened
    table = _bor_table(page)
    # the PR count (several subjects): click 1 opens the list of subjects behind it
    link = table.locator("tbody tr", has=page.locator("th", has_text=re.compile(r"^PR$"))).locator(
        "a.trace"
    )
    n_pr = int(results["response"]["counts"]["PR"])
    tooltip = link.get_attribute("title")
    assert tooltip.startswith(f"{n_pr} subjects: ")
    link.click()
    entry_id = page.evaluate("decodeURIComponent(location.hash.slice(1))")
    assert entry_id.startswith("trace-")
    entry = page.locator(f"[id='{entry_id}']")
    assert entry.is_visible() and entry.evaluate("e => e.matches(':target')")
    subjects = entry.locator("a[href^='#subj-']")
    assert subjects.count() == n_pr
    first = subjects.first.inner_text()
    assert first in tooltip
    # click 2: the subject's row in the listing, in view and highlighted
    subjects.first.click()
    row_id = page.evaluate("decodeURIComponent(location.hash.slice(1))")
    assert row_id == f"subj-{first}"
    row = page.locator(f"tr[id='{row_id}']")
    assert row.evaluate("e => e.matches(':target')")
    box = row.bounding_box()
    assert box is not None and 0 <= box["y"] < page.viewport_size["height"]
    assert row.locator("th").first.inner_text().strip() == first
    listing_header = row.locator("xpath=ancestor::table[1]/thead/tr/th").all_inner_texts()
    bor = row.locator("td").nth(listing_header.index("BOR") - 1).inner_text()
    assert bor == "PR"
    _save(page, tmp_path, "report-listing-row.png")


def test_issue14_displays_are_numbered_and_drawn(opened):
    """Spider, swimmer-by-response and lab-over-time figures load; the new tables carry ICH E3
    numbers (14.2 efficacy, 14.3 safety) and their population under the caption."""
    page, _, _ = opened
    tables = page.evaluate("Array.from(document.querySelectorAll('table caption')).map(c => c.innerText)")
    if not any("exposure-adjusted" in c.lower() for c in tables):
        pytest.skip("the crafted report has no issue-14 displays (the demo report has)")
    figs = page.evaluate(
        "Array.from(document.querySelectorAll('figure')).map(f => [f.querySelector('figcaption').innerText,"
        " f.querySelector('img').complete && f.querySelector('img').naturalWidth > 0])"
    )
    caps = {c: ok for c, ok in figs}
    for title in ("myeloma marker over time", "Time on treatment of responders", "Laboratory values over time"):
        hit = [c for c in caps if title.lower() in c.lower()]
        assert hit and all(caps[c] for c in hit), title
        assert re.match(r"Figure 14\.[23]\.\d+", hit[0]), hit[0]
    for title in ("Exposure-adjusted incidence rates", "Treatment-related treatment-emergent",
                  "Laboratory values over time"):
        hit = [c for c in tables if title.lower() in c.lower()]
        assert hit and re.match(r"Table 14\.3\.\d+", hit[0]) and "Population: Safety population" in hit[0], title
