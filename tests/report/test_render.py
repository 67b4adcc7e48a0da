"""The HTML report: structure, accessibility, traceability, self-containment, determinism.

Expected values come from the crafted analysis (conftest.CRAFTED_BOR: 12 subjects with BOR
sCR 1, CR 0, VGPR 1, PR 3, MR 2, SD 3, PD 1, NE 1), i.e. known by construction.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from report_testkit import CRAFTED_BOR, make_analysis, parse_html

from mmtrial.report.model import Figure, Section, Table
from mmtrial.report.render import render_html, subject_anchor, write_report

RUN_DATE = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(make_analysis(), run_date=RUN_DATE)


@pytest.fixture(scope="module")
def tree(html):
    return parse_html(html)


def _table(tree, caption_part: str):
    for t in tree.find_all("table"):
        cap = t.find_all("caption")
        if cap and caption_part in cap[0].text:
            return t
    raise AssertionError(f"no table captioned {caption_part!r}")


def _ids(tree) -> list[str]:
    return [n.attrs["id"] for n in tree.iter() if n.attrs.get("id")]


# --- accessibility: real table markup ---------------------------------------------------------


def test_every_table_has_caption_column_headers_with_scope(tree):
    tables = tree.find_all("table")
    # 4 methods-section tables (regimen, ladder, populations, key choices) + BOR + AE + issues +
    # published + every method setting (appendix) + listing
    assert len(tables) == 10
    for t in tables:
        caps = t.find_all("caption")
        assert len(caps) == 1 and re.match(r"(Table|Listing) \d+(\.\d+)*\.? \S", caps[0].text)  # ICH E3 "Table 14.2.1"
        heads = t.find_all("thead")[0].find_all("th")
        assert heads and all(h.attrs.get("scope") == "col" for h in heads)


def test_stub_column_cells_are_row_headers(tree):
    t = _table(tree, "Best overall response")
    row_heads = [th for th in t.find_all("tbody")[0].find_all("th")]
    assert [th.text for th in row_heads] == [
        "sCR",
        "CR",
        "VGPR",
        "PR",
        "MR",
        "SD",
        "PD",
        "NE",
        "ORR (>=PR)",
    ]
    assert all(th.attrs["scope"] == "row" for th in row_heads)


def test_row_groups_are_rowgroup_headers_in_their_own_tbody(tree):
    t = _table(tree, "Adverse events by worst grade")
    bodies = t.find_all("tbody")
    assert len(bodies) == 2
    groups = [b.find_all("th")[0] for b in bodies]
    assert [g.text for g in groups] == [
        "Blood and lymphatic system disorders",
        "Gastrointestinal disorders",
    ]
    assert all(g.attrs["scope"] == "rowgroup" and g.attrs["colspan"] == "3" for g in groups)


def test_figure_has_caption_and_alt_text_and_decodes_to_svg(tree):
    figs = tree.find_all("figure")
    assert len(figs) == 1
    img = figs[0].find_all("img")[0]
    assert img.attrs["alt"].startswith("Waterfall plot")
    assert figs[0].find_all("figcaption")[0].text.startswith("Figure 14.2.1")  # ICH E3 numbering
    src = img.attrs["src"]
    assert src.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
    assert svg.startswith("<svg") and 'role="img"' in svg and "<title>Waterfall plot" in svg


def test_table_footnotes_give_population_method_and_source(tree):
    t = _table(tree, "Best overall response")
    notes_id = t.attrs["aria-describedby"]
    notes = next(n for n in tree.iter("div") if n.attrs.get("id") == notes_id).text
    assert "Clopper-Pearson" in notes
    assert "Population: mITT (N = 12)." in notes
    assert "Source: ADSL, ADRS (PARAMCD BOR)." in notes


# --- traceability ----------------------------------------------------------------------------


def test_ids_are_unique_and_every_internal_link_has_its_anchor(tree):
    ids = _ids(tree)
    assert len(ids) == len(set(ids))
    hrefs = [a.attrs["href"] for a in tree.iter("a")]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    missing = {h for h in hrefs if h[1:] not in set(ids)}
    assert not missing


def test_every_adsl_subject_has_one_listing_row_anchor(tree):
    rows = [tr for tr in tree.iter("tr") if tr.attrs.get("id", "").startswith("subj-")]
    assert sorted(tr.attrs["id"] for tr in rows) == [
        subject_anchor(f"SIM-01-{i:04d}") for i in range(1, 13)
    ]
    listing = _table(tree, "Listing of subjects")
    assert all(tr.ancestor("table") is listing for tr in rows)


def test_count_links_to_the_subjects_behind_it_in_two_clicks(tree):
    # PR: subjects 1, 5 and 11 by construction (CRAFTED_BOR)
    expected = [f"SIM-01-{i + 1:04d}" for i, b in enumerate(CRAFTED_BOR) if b == "PR"]
    t = _table(tree, "Best overall response")
    pr_row = next(tr for tr in t.iter("tr") if tr.children and tr.children[0].text == "PR")
    link = pr_row.find_all("a")[0]
    assert link.text == "3 (25.0)"
    assert link.attrs["title"] == "3 subjects: " + ", ".join(expected)
    # click 1: the index entry names the three subjects
    entry = next(n for n in tree.iter("div") if n.attrs.get("id") == link.attrs["href"][1:])
    subject_links = [a for a in entry.find_all("a") if a.attrs["href"].startswith("#subj-")]
    assert [a.text for a in subject_links] == expected
    # click 2: each lands on the subject's listing row, whose BOR is PR
    listing = _table(tree, "Listing of subjects")
    header = [th.text for th in listing.find_all("thead")[0].find_all("th")]
    bor_col = header.index("BOR")
    for a in subject_links:
        row = next(tr for tr in listing.iter("tr") if tr.attrs.get("id") == a.attrs["href"][1:])
        assert row.children[bor_col].text == "PR"


def test_single_subject_count_links_straight_to_the_listing_row(tree):
    t = _table(tree, "Best overall response")
    scr_row = next(tr for tr in t.iter("tr") if tr.children and tr.children[0].text == "sCR")
    assert (
        scr_row.find_all("a")[0].attrs["href"] == "#subj-SIM-01-0008"
    )  # the one sCR (CRAFTED_BOR)


def test_zero_count_is_not_a_link(tree):
    t = _table(tree, "Best overall response")
    cr_row = next(tr for tr in t.iter("tr") if tr.children and tr.children[0].text == "CR")
    assert cr_row.find_all("a") == []


def test_subject_without_listing_row_is_named_but_not_linked():
    a = make_analysis()
    t = a.sections[0].blocks[0]
    t.cell_subjects[(2, "Any grade")] = ["SIM-99-0001", "SIM-01-0007"]
    tree = parse_html(render_html(a, run_date=RUN_DATE))
    ids = set(_ids(tree))
    assert all(a.attrs["href"][1:] in ids for a in tree.iter("a"))
    entry = next(n for n in tree.iter("div") if n.attrs.get("id") == "trace-tbl-ae-grade-r2-c1")
    assert "SIM-99-0001" in entry.text
    assert [x.text for x in entry.find_all("a") if x.attrs["href"].startswith("#subj-")] == [
        "SIM-01-0007"
    ]


def test_cell_subjects_outside_the_table_is_an_error_naming_table_row_and_column():
    a = make_analysis()
    a.sections[0].blocks[0].cell_subjects[(7, "Any grade")] = ["SIM-01-0001"]
    with pytest.raises(ValueError, match=r"ae-grade.*row 7.*Any grade"):
        render_html(a, run_date=RUN_DATE)


# --- synthetic banner, header ----------------------------------------------------------------


def test_synthetic_banner_on_screen_and_on_every_printed_page(html, tree):
    banner = next(n for n in tree.iter("div") if n.attrs.get("id") == "synthetic-banner")
    assert "SYNTHETIC DATA" in banner.text
    assert re.search(r"@top-center \{ content: \"SYNTHETIC DATA", html)
    # a synthetic study never presents itself as the trial it imitates (DEVELOPERS brief)
    assert "<title>STORM-like synthetic study results report (SYNTHETIC DATA)</title>" in html
    assert "<h1>STORM-like synthetic study: results report</h1>" in html


def test_real_study_has_no_synthetic_banner():
    html = render_html(make_analysis(synthetic=False), run_date=RUN_DATE)
    assert "SYNTHETIC" not in html.upper().replace("SYNTHETIC-", "")
    assert "synthetic data" not in html


def test_run_header_names_version_checksum_protocol_profile_and_date(tree):
    from importlib.metadata import version

    info = next(n for n in tree.iter("dl")).text
    assert version("mmtrial") in info
    assert "sha256:0f3a9c" in info
    assert "STORM (mmtrial/protocol/storm.toml)" in info
    assert "Method profile" in info and "sas" in info
    date = [n for n in tree.iter("p") if n.attrs.get("id") == "run-date"]
    assert date[0].text == f"Report date: {RUN_DATE}"


def test_sections_follow_their_order(tree):
    titles = [h.text for h in tree.iter("h2") if h.parent.tag == "section"]
    assert [t.split(". ", 1)[1] for t in titles] == [
        "Study and methods summary",  # 10
        "Efficacy: response",  # 40
        "Safety",  # 60
        "Data issues found at input",  # 90
        "Appendix: published versus computed results",  # 95
        "Appendix: every method setting in force",  # 97
        "Appendix: subjects behind linked counts",  # 98
        "Appendix: subject listings",  # 99
    ]


def test_toc_links_every_section_table_and_figure(tree):
    nav = next(tree.iter("nav"))
    targets = {a.attrs["href"][1:] for a in nav.find_all("a")}
    wanted = {s.attrs["id"] for s in tree.iter("section")}
    wanted |= {t.attrs["id"] for t in tree.iter("div") if "tlg" in t.attrs.get("class", "").split()}
    wanted |= {f.attrs["id"] for f in tree.iter("figure")}
    assert wanted <= targets


def test_text_is_escaped(html):
    assert "<script" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "IMWG criteria &amp; confirmation" in html


# --- self-contained --------------------------------------------------------------------------


def test_no_external_resources(html, tree):
    assert not tree.find_all("script") and not tree.find_all("link") and not tree.find_all("iframe")
    for n in tree.iter():
        for attr in ("src", "href", "srcset", "poster", "data"):
            v = n.attrs.get(attr)
            if v is not None:
                assert v.startswith(("#", "data:")), (n.tag, attr, v[:60])
    assert "@import" not in html and "@font-face" not in html
    assert not re.search(r"url\((?!\s*['\"]?(#|data:))", html)
    for img in tree.iter("img"):  # and nothing external inside the embedded images
        svg = base64.b64decode(img.attrs["src"].split(",", 1)[1]).decode("utf-8")
        assert not re.search(r"(?:href|src)=\"(?!#|data:)", svg)
    csp = next(
        m for m in tree.iter("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"
    )
    assert "default-src 'none'" in csp.attrs["content"]


# --- determinism -----------------------------------------------------------------------------


def _without_date_line(html: str) -> str:
    lines = html.splitlines()
    date_lines = [i for i, ln in enumerate(lines) if 'id="run-date"' in ln]
    assert len(date_lines) == 1
    return "\n".join(ln for i, ln in enumerate(lines) if i != date_lines[0])


def test_rerun_is_byte_identical_apart_from_the_date_line():
    a1 = render_html(make_analysis(), run_date="2026-01-01T00:00:00Z")
    a2 = render_html(make_analysis(), run_date="2026-06-30T12:34:56Z")
    assert a1 != a2
    assert _without_date_line(a1) == _without_date_line(a2)
    assert len([1 for x, y in zip(a1.splitlines(), a2.splitlines(), strict=True) if x != y]) == 1


def test_streamed_report_file_is_the_rendered_document(tmp_path, monkeypatch):
    """write_report streams the document a slice at a time (issue 15); the file is exactly
    render_html's text in UTF-8 wherever the slices fall
    (7-character slices over a section of 1- to 4-byte characters)."""
    import mmtrial.report.render as render
    from mmtrial.report.model import Text

    monkeypatch.setattr(render, "_WRITE_CHARS", 7)
    a = make_analysis()
    a.sections.append(Section(id="utf8", title="Médiane ≥ 5", blocks=[Text("naïve – ≤ 3 mg/m² 😀 " * 40)]))
    path = write_report(a, tmp_path, run_date=RUN_DATE)
    text = render_html(a, run_date=RUN_DATE)
    assert "😀" in text
    assert path.read_bytes() == text.encode("utf-8")


def test_rerun_in_a_new_process_is_byte_identical(html):
    # a new interpreter with another hash seed: matplotlib's SVG ids and any set/dict order
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from report_testkit import make_analysis;"
        "from mmtrial.report.render import render_html;"
        f"sys.stdout.write(render_html(make_analysis(), run_date={RUN_DATE!r}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MPLBACKEND": "Agg"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True,
        env=env,
        check=True,
    ).stdout.decode("utf-8")
    assert out == html


def test_default_date_line_is_utc_iso_to_the_second():
    html = render_html(make_analysis())
    assert re.search(r'id="run-date">Report date: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ<', html)


# --- formats (renderer's own tables) ----------------------------------------------------------


def test_published_appendix_rounds_half_up_like_sas():
    # SAS ROUND/PUT round half away from zero (validation.md section 2; CAMIS rounding page):
    # 26.25 -> 26.3 (round-half-even would print 26.2); 18.65 -> 18.7; 3.65 months -> 3.7.
    a = make_analysis()
    a.results["response"]["orr"].update(estimate=0.2625, ci=[0.1865, 0.3505])
    a.results["time_to_event"] = {"PFS": {"median": 3.65, "ci": [2.95, None], "unit": "months"}}
    tree = parse_html(render_html(a, run_date=RUN_DATE))
    t = _table(tree, "Published STORM results")
    rows = {
        tr.children[0].text: [c.text for c in tr.children[1:]]
        for tr in t.find_all("tbody")[0].find_all("tr")
    }
    assert rows["Overall response rate (>=PR), %"][:2] == ["26.2", "26.3"]
    assert rows["ORR 95% CI, %"][:2] == ["(19, 35)", "(18.7, 35.1)"]
    assert rows["Median progression-free survival, months"][:2] == ["3.7", "3.7"]


def test_wide_table_is_marked_for_landscape_print(tree):
    listing = _table(tree, "Listing of subjects")
    wrapper = listing.ancestor("div").ancestor("div")
    assert "wide" in wrapper.attrs["class"].split()
    bor = _table(tree, "Best overall response")
    assert "wide" not in bor.ancestor("div").ancestor("div").attrs["class"].split()


# --- errors and edge cases -------------------------------------------------------------------


def test_figure_without_alt_text_is_refused():
    a = make_analysis()
    a.sections.append(
        Section(id="x", title="X", blocks=[Figure(id="f", title="F", alt=" ", svg="<svg/>")])
    )
    with pytest.raises(ValueError, match="alt text"):
        render_html(a, run_date=RUN_DATE)


def test_duplicate_block_ids_get_unique_html_ids():
    a = make_analysis()
    df = pd.DataFrame({"a": ["1"]})
    a.sections.append(
        Section(id="safety", title="More", blocks=[Table(id="bor", title="T", data=df)], order=61)
    )
    tree = parse_html(render_html(a, run_date=RUN_DATE))
    ids = _ids(tree)
    assert len(ids) == len(set(ids)) and "tbl-bor-2" in ids and "sec-safety-2" in ids


def test_empty_analysis_renders_with_renderer_sections_only():
    a = make_analysis()
    a.sections, a.adam, a.results, a.issues = [], {}, {}, []
    tree = parse_html(render_html(a, run_date=RUN_DATE))
    titles = [h.text.split(". ", 1)[1] for h in tree.iter("h2") if h.parent.tag == "section"]
    assert titles == [
        "Study and methods summary",
        "Data issues found at input",
        "Appendix: published versus computed results",
        "Appendix: every method setting in force",
        "Appendix: subject listings",
    ]
    assert "No problems were found in the input." in tree.text


def test_write_report_is_atomic_and_replaces(tmp_path):
    out = tmp_path / "out"
    p = write_report(make_analysis(), out, run_date=RUN_DATE)
    assert p == out / "report.html"
    first = p.read_bytes()
    p2 = write_report(make_analysis(), out, run_date="2027-01-01T00:00:00Z")
    assert p2.read_bytes() != first
    assert sorted(x.name for x in out.iterdir()) == ["report.html"]  # no temp files left
    mask = os.umask(0)
    os.umask(mask)
    assert p2.stat().st_mode & 0o777 == 0o666 & ~mask  # as open() would create it, not 0600


def test_pdf_form_of_the_trace_index_keeps_entries_and_names_subjects_as_text(html):
    from mmtrial.report.pdf import compact_trace_index

    compact = compact_trace_index(html)
    tree = parse_html(compact)
    entries = [n for n in tree.iter("div") if "trace-entry" in n.attrs.get("class", "")]
    assert len(entries) == len(
        [n for n in parse_html(html).iter("div") if "trace-entry" in n.attrs.get("class", "")]
    )
    pr = next(e for e in entries if e.attrs["id"] == "trace-tbl-bor-r3-c1")
    assert not pr.find_all("li")
    assert (
        pr.find_all("p")[0].text == "SIM-01-0001, SIM-01-0005, SIM-01-0011"
    )  # the PR subjects (CRAFTED_BOR)
    # everything outside the index is unchanged
    cut = html.index('<div class="trace-index">')
    assert compact[:cut] == html[:cut]


def test_text_columns_are_left_aligned_and_number_columns_are_not(tree):
    bor = _table(tree, "Best overall response")
    assert all("class" not in td.attrs for td in bor.find_all("td"))  # counts and CIs: centred
    methods = _table(tree, "Method choices in force")
    first = methods.find_all("tbody")[0].find_all("tr")[0]
    assert [td.attrs.get("class") for td in first.find_all("td")] == ["txt", "txt"]


def test_long_words_get_break_points_without_changing_the_text():
    from mmtrial.report.render import cell_html

    word = "biomarker.classifier.rf_min_samples_leaf_grid"
    out = cell_html(word)
    assert out.replace("<wbr>", "") == word
    assert max(len(p) for p in out.split("<wbr>")) <= 20
    assert cell_html("a&b " + "x" * 25) == "a&amp;b " + "x" * 20 + "<wbr>" + "x" * 5
