"""Published-vs-computed appendix and the methods summary."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from report_testkit import make_analysis

from mmtrial.report.methods import (
    build_methods_section,
    build_settings_appendix_section,
    flatten_settings,
)
from mmtrial.report.model import SectionLink
from mmtrial.report.published import (
    PUBLISHED_ITEMS,
    PublishedItem,
    build_published_table,
    convert_time,
    format_computed,
)


def _rows(table):
    return {r[0]: list(r[1:]) for r in table.data.itertuples(index=False)}


def test_every_storm_published_key_has_a_mapping():
    a = make_analysis()
    keys = {it.key for it in PUBLISHED_ITEMS}
    assert set(a.protocol.published) <= keys


def test_published_beside_computed_for_the_crafted_results():
    # crafted: 12 subjects, ORR 5/12 = 41.666..% -> 41.7; counts from CRAFTED_BOR
    t = build_published_table(make_analysis())
    rows = _rows(t)
    assert rows["mITT (efficacy) population, n"][:2] == ["122", "12"]
    assert rows["Partial response, n"][:2] == ["24", "3"]
    assert rows["Overall response rate (>=PR), %"][:2] == ["26.2", "41.7"]
    assert rows["Median overall survival, months"][:2] == ["8.6", "not computed"]
    assert rows["Median overall survival, months"][2] == ""  # the Note column; no results.json paths


def test_synthetic_study_labels_the_computed_column_and_caption():
    t = build_published_table(make_analysis(synthetic=True))
    assert "Computed (synthetic data)" in t.data.columns
    assert t.title.endswith("(synthetic data)")
    assert t.footnotes[0].startswith("Synthetic data")
    real = build_published_table(make_analysis(synthetic=False))
    assert "Computed" in real.data.columns and "synthetic" not in real.title


def test_unmapped_published_key_is_shown_not_dropped():
    a = make_analysis()
    a.protocol = a.protocol.model_copy(update={"published": {**a.protocol.published, "odd_key": 7}})
    rows = _rows(build_published_table(a))
    assert rows["odd_key"][:3] == ["7", "not compared", "no mapping for this key"]


def test_time_conversion_uses_30_4375_days_per_month():
    # data contract: months are days / 30.4375; STORM median TTR 4.1 weeks = 0.943 months
    assert convert_time(30.4375, "days", "months") == pytest.approx(1.0)
    assert convert_time(1.0, "months", "weeks") == pytest.approx(30.4375 / 7)
    with pytest.raises(ValueError, match="fortnights"):
        convert_time(1.0, "fortnights", "days")


def test_median_in_months_is_shown_in_weeks_and_not_reached_is_ne():
    item = PublishedItem("ttr", "TTR", ("time_to_event", "TTR", "median"), "median", "weeks")
    res = {"time_to_event": {"TTR": {"median": 0.943, "unit": "months"}}}
    assert format_computed(item, res) == "4.1"  # 0.943 * 30.4375 / 7 = 4.100
    res["time_to_event"]["TTR"]["median"] = None
    assert format_computed(item, res) == "NE"


def test_proportion_text_matches_the_label_format():
    # XPOVIO label: 21/83 (25.3%, 95% CI 16.4-36.0); CI from scipy binomtest exact for 21/83
    item = PublishedItem("p", "p", ("r",), "prop_text")
    res = {"r": {"x": 21, "n": 83, "ci": [0.16394, 0.36039], "level": 0.95}}
    assert format_computed(item, res) == "21/83 (25.3%, 95% CI 16.4-36.0)"


def test_pct_of_safety_population():
    # STORM: grade 3/4 thrombocytopenia 73/123 = 59.3% (domain.md 1.5 gives 59%)
    item = PublishedItem("g", "g", ("s", "n"), "pct_of", denominator=("pop",))
    assert format_computed(item, {"s": {"n": 73}, "pop": 123}) == "59.3"


@dataclass(frozen=True)
class _Opt:
    transform: str = "log-log"
    level: float = 0.95
    quantiles: tuple = (0.25, 0.75)


def test_flatten_settings_handles_dataclasses_dicts_and_lists():
    got = flatten_settings({"km": _Opt(), "flags": [True, None], "rules": [{"a": 1}]})
    assert got == [
        ("km.transform", "log-log"),
        ("km.level", "0.95"),
        ("km.quantiles", "0.25, 0.75"),
        ("flags", "yes, none"),
        ("rules[0].a", "1"),
    ]


def test_methods_appendix_lists_protocol_and_step_method_choices():
    a = make_analysis()
    a.methods["tte"] = _Opt()
    sec = build_methods_section(a)
    assert sec.order == 10
    # the full table is in the appendix (order 97); the methods section links to it
    assert not any(getattr(b, "id", "") == "methods-in-force" for b in sec.blocks)
    link = next(b for b in sec.blocks if isinstance(b, SectionLink))
    assert link.section_id == "methods-settings"
    appendix = build_settings_appendix_section(a)
    assert (appendix.id, appendix.order) == ("methods-settings", 97)
    table = next(b for b in appendix.blocks if getattr(b, "id", "") == "methods-in-force")
    rows = {r.Setting: (r.Value, r._2) for r in table.data.itertuples(index=False)}
    assert rows["proportion_ci"] == ("clopper-pearson", "protocol [methods]")
    assert rows["tte.transform"] == ("log-log", "analysis step: tte")
    assert rows["response.confirmation"][0] == "two consecutive assessments"
    pops = next(b for b in sec.blocks if getattr(b, "id", "") == "populations")
    assert pops.data["N"].tolist() == ["12", "12"]


def test_penta_subgroup_row_is_selected_from_the_subgroup_records():
    # results.json subgroups (step tte): a list of rows; the penta-refractory "Yes" row is used.
    # XPOVIO label: 21/83 (25.3%, 95% CI 16.4-36.0); CI from scipy binomtest(21, 83) exact.
    res = {
        "subgroups": {
            "rows": [
                {"subgroup": "All patients", "category": "", "x": 32, "n": 122},
                {"subgroup": "Penta-refractory", "category": "No", "x": 11, "n": 39},
                {
                    "subgroup": "Penta-refractory",
                    "category": "Yes",
                    "x": 21,
                    "n": 83,
                    "ci": [0.16394, 0.36039],
                    "level": 0.95,
                },
            ]
        }
    }
    items = {it.key: it for it in PUBLISHED_ITEMS}
    assert format_computed(items["penta_refractory_n"], res) == "83"
    assert format_computed(items["penta_orr"], res) == "21/83 (25.3%, 95% CI 16.4-36.0)"
    assert format_computed(items["penta_orr"], {"subgroups": {"rows": []}}) == "not computed"


def test_grade3_ae_percent_of_the_safety_population_from_by_preferred_term():
    # STORM (domain.md 1.5): grade 3/4 thrombocytopenia 59% of 123 = 73 patients -> 59.3
    res = {"safety": {"n": 123, "by_preferred_term": {"THROMBOCYTOPENIA": {"grade_3_plus": 73}}}}
    items = {it.key: it for it in PUBLISHED_ITEMS}
    assert format_computed(items["g34_thrombocytopenia_pct"], res) == "59.3"
    assert format_computed(items["g34_anemia_pct"], res) == "not computed"


def test_os_of_responders_reads_the_unit_stored_for_the_whole_block():
    res = {
        "os_by_response": {"unit": "days", "naive": {"groups": {"responder": {"median": 474.8}}}}
    }
    item = {it.key: it for it in PUBLISHED_ITEMS}["median_os_mr_or_better_months"]
    assert format_computed(item, res) == "15.6"  # 474.8 / 30.4375 = 15.599


def test_populations_table_is_left_to_a_step_that_shows_its_own():
    from mmtrial.report.model import Section

    a = make_analysis()
    assert any(getattr(b, "id", "") == "populations" for b in build_methods_section(a).blocks)
    a.sections.append(Section(id="populations", title="Analysis populations", order=12))
    assert not any(getattr(b, "id", "") == "populations" for b in build_methods_section(a).blocks)
