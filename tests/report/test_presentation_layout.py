"""Presentation rules from the second new-user review: methods summary with its appendix, sub-row
indentation, wide tables that wrap or scroll with a cue, KM y-axis wording per endpoint, the
waterfall legend outside the data, sentence-case event/censoring reasons. Expected values are
written out by hand from each rule's statement."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from report_testkit import make_analysis, parse_html

from mmtrial.figures.km import km_ylabel
from mmtrial.figures.waterfall import waterfall_figure
from mmtrial.report.methods import summary_rows
from mmtrial.report.model import Section, SectionLink, Table, Text
from mmtrial.report.render import indent_level, render_html
from mmtrial.tables.efficacy import display_sentence_case

RUN_DATE = "2026-01-01T00:00:00Z"


def test_methods_summary_is_short_and_links_to_the_settings_appendix():
    a = make_analysis()
    tree = parse_html(render_html(a, run_date=RUN_DATE))
    methods = next(n for n in tree.iter("section") if n.attrs.get("id") == "sec-methods")
    tables = [c.text for c in methods.iter("caption")]
    assert not any("Method choices in force" in t for t in tables)  # the long table moved
    link = next(n for n in methods.iter("a") if n.text == "Appendix: every method setting in force")
    assert link.attrs["href"] == "#sec-methods-settings"
    appendix = next(n for n in tree.iter("section") if n.attrs.get("id") == "sec-methods-settings")
    assert any("Method choices in force" in c.text for c in appendix.iter("caption"))


def test_summary_rows_read_the_recorded_settings():
    # a.methods as the steps record them (response ci label, tte km, safety): the headline rows
    a = make_analysis()
    a.methods.update({
        "response": {"criteria": "IMWG 2016", "ci": {"label": "95% CI, Clopper-Pearson (exact)"},
                     "confirmation": {"consecutive": 2, "confirm_pd": True}},
        "tte": {"km": {"variance": "greenwood", "ci_transform": "log-log", "median_rule": "sas",
                       "quantile_ci": "Brookmeyer-Crowley"}},
        "safety": {"ctcae_version": "5.0", "teae_window_days": 30},
    })
    rows = dict(summary_rows(a))
    assert rows["Method profile"] == "sas"
    assert rows["Confidence intervals for proportions"] == "95% CI, Clopper-Pearson (exact)"
    assert rows["Kaplan-Meier"] == (
        "Greenwood variance; log-log CI transform; median rule: sas; quantile CIs: Brookmeyer-Crowley"
    )
    assert rows["Response criteria (IMWG options)"] == (
        "IMWG 2016; response confirmed by 2 consecutive assessments; PD confirmed: yes"
    )
    assert rows["CTCAE version"] == "v5.0"
    assert rows["Treatment-emergent AE window"] == "first dose to 30 days after the last dose"
    assert set(rows) >= {"Safety population", "Efficacy population"}


def test_section_link_without_its_target_shows_the_label_as_text():
    a = make_analysis()
    a.sections.append(Section(id="x", title="X", blocks=[
        SectionLink(text="See {link} below.", section_id="nowhere", label="the nowhere section"),
        Text("after"),
    ], order=50))
    html = render_html(a, run_date=RUN_DATE)
    assert '<p class="section-link">See the nowhere section below.</p>' in html


@pytest.mark.parametrize(("text", "level"), [("Death", 0), ("  Death", 1), ("    Related", 2),
                                             ("   Odd", 1), (" " * 20 + "deep", 4)])
def test_indent_level_is_two_leading_spaces_per_level_capped(text, level):
    assert indent_level(text) == level


def test_sub_rows_get_an_indent_class_and_keep_their_text():
    a = make_analysis()
    data = pd.DataFrame({"Statistic": ["With an event, n (%)", "  Death"], "Value": ["3 (30.0)", "3 (30.0)"]})
    a.sections.append(Section(id="t", title="T", order=50, blocks=[
        Table(id="ind", title="Indented", data=data, stub="Statistic")]))
    tree = parse_html(render_html(a, run_date=RUN_DATE))
    t = next(n for n in tree.iter("div") if n.attrs.get("id") == "tbl-ind")
    heads = t.find_all("tbody")[0].find_all("th")
    assert [h.attrs.get("class") for h in heads] == [None, "indent-1"]
    assert heads[1].text == "  Death"


def test_wide_tables_scroll_with_edge_shadows_on_screen_and_print_flat():
    from importlib.resources import files

    css = files("mmtrial.report").joinpath("templates/report.css").read_text()
    screen, printed = css.split("@media print", 1)
    assert ".tlg-scroll {\n  overflow-x: auto;" in screen and "radial-gradient" in screen
    assert "table.listing thead th, table.listing td.txt { white-space: normal; }" in screen
    assert ".tlg-scroll { overflow: visible; background: none; }" in printed


@pytest.mark.parametrize(("code", "param", "label"), [
    ("OS", "Overall Survival", "Overall survival probability"),
    ("PFS", "Progression-Free Survival", "Progression-free survival probability"),
    ("DOR", "Duration of Response (PR or better)", "Probability of remaining in response"),
    ("TTP", "Time to Progression", "Time to progression probability"),
    ("XYZ", None, "Probability event-free"),
])
def test_km_y_axis_says_the_endpoint(code, param, label):
    assert km_ylabel(code, param) == label


def test_waterfall_legend_sits_outside_the_plot_area():
    # -90% (VGPR) reference line runs across the bottom of the axes: the legend must not overlap
    # the axes at all (its bottom at or above the axes' top)
    best = pd.DataFrame({"USUBJID": [f"S{i}" for i in range(8)],
                         "BOR": ["PD", "SD", "SD", "MR", "PR", "PR", "VGPR", "sCR"],
                         "PCHGPARM": "SPEP",
                         "BEST_PCHG": np.array([60.0, -5, -10, -30, -55, -70, -92, -100])})
    fig, _alt = waterfall_figure(best)
    ax = fig.axes[0]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    leg = ax.get_legend().get_window_extent(r)
    box = ax.get_window_extent(r)
    assert leg.y0 >= box.y1 - 1
    assert fig.bbox.contains(leg.x0, leg.y1) and fig.bbox.contains(leg.x1, leg.y1)


@pytest.mark.parametrize(("raw", "shown"), [
    ("PROGRESSIVE DISEASE (IMWG)", "Progressive disease (IMWG)"),
    ("LAST KNOWN ALIVE DATE", "Last known alive date"),
    ("TIME TO RESPONSE (PR OR BETTER)", "Time to response (PR or better)"),
    ("START OF NEXT ANTI-MYELOMA THERAPY", "Start of next anti-myeloma therapy"),
    ("Already mixed Case", "Already mixed Case"),
])
def test_event_and_censoring_reasons_display_in_sentence_case(raw, shown):
    assert display_sentence_case(raw) == shown
