"""End to end on the bundled demo (synthetic STORM-like study, n=123, seed 7): the output contract
(../shared/spec/data-contract.md "Output"), synthetic labelling, recovery of the simulator's
truth, and a byte-identical re-run (issues 2, 3, 7)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from mmtrial.pipeline import analyze
from mmtrial.stats import proportion_ci

CATEGORIES = ["sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"]


@pytest.fixture(scope="module")
def results(demo):
    return json.loads(demo.output.results_json.read_text())


def test_adam_datasets_have_the_contract_variables(demo):
    adam = demo.out_dir / "adam"
    need = {
        "adsl": {"USUBJID", "SAFFL", "EFFFL", "TCRFL", "PENTAFL", "NLINES"},
        "adrs": {"USUBJID", "PARAMCD", "AVALC", "ADT"},
        "adtte": {"USUBJID", "PARAMCD", "AVAL", "CNSR", "STARTDT", "ADT", "EVNTDESC", "CNSDTDSC"},
        "adlb": {"USUBJID", "PARAMCD", "ADT", "AVAL", "ATOXGR", "BTOXGR", "ATOXDSCL"},
        "adex": {"USUBJID"},
        "adae": {"USUBJID", "AEDECOD"},
    }
    for name, cols in need.items():
        df = pd.read_parquet(adam / f"{name}.parquet")
        assert cols <= set(df.columns), (name, cols - set(df.columns))
    adrs = pd.read_parquet(adam / "adrs.parquet")
    assert set(adrs["AVALC"].astype(str)) <= set(CATEGORIES)
    adsl = pd.read_parquet(adam / "adsl.parquet")
    bor = adrs[adrs["PARAMCD"] == "BOR"]
    assert set(bor["USUBJID"]) == set(adsl.loc[adsl["EFFFL"] == "Y", "USUBJID"])  # one BOR per efficacy subject
    adtte = pd.read_parquet(adam / "adtte.parquet")
    assert {"PFS", "OS", "DOR", "TTR"} <= set(adtte["PARAMCD"].astype(str))
    assert set(adtte["CNSR"].unique()) <= {0, 1}


def test_results_json_headline_numbers_are_consistent(results):
    pops = results["populations"]
    assert pops["safety"] == 123 and pops["efficacy"] <= 123
    r = results["response"]
    assert set(r["counts"]) == set(CATEGORIES) and sum(r["counts"].values()) == pops["efficacy"]
    x = r["counts"]["sCR"] + r["counts"]["CR"] + r["counts"]["VGPR"] + r["counts"]["PR"]
    assert (r["orr"]["x"], r["orr"]["n"]) == (x, pops["efficacy"])
    assert r["orr"]["ci"] == pytest.approx(list(proportion_ci(x, pops["efficacy"])))  # Clopper-Pearson
    assert r["cbr"]["x"] == x + r["counts"]["MR"]
    for p in ("PFS", "OS", "DOR", "TTR"):
        t = results["time_to_event"][p]
        assert t["unit"] == "months" and (t["median"] is None or t["median"] > 0)
    assert {"safety", "biomarker", "baseline"} <= set(results)
    assert results["study"]["synthetic"] is True


def test_derived_bor_recovers_the_simulators_truth(demo):
    adsl = pd.read_parquet(demo.out_dir / "adam" / "adsl.parquet").set_index("USUBJID")
    truth = demo.truth.set_index("USUBJID")
    eff = adsl.index[adsl["EFFFL"] == "Y"]
    assert (adsl.loc[eff, "BOR"].astype(str) == truth.loc[eff, "TRUE_BOR"].astype(str)).all()


def test_every_output_says_synthetic_data(demo):
    html = demo.output.report_html.read_text()
    assert html.lower().count("synthetic data") >= 2
    assert "<title>" in html and "synthetic" in html.split("</title>")[0].lower()


def test_report_has_every_section(demo):
    html = demo.output.report_html.read_text()
    ids = set(re.findall(r'<section class="report-section" id="sec-([a-z-]+)"', html))
    assert {"methods", "populations", "disposition", "baseline", "exposure", "efficacy-response",
            "efficacy-tte", "safety", "biomarker", "input-issues", "published", "listings"} <= ids


def test_rerun_gives_a_byte_identical_report_apart_from_the_date_line(demo, tmp_path):
    again = analyze(demo.study_dir, tmp_path / "again", run_date="2027-06-30T12:00:00Z")
    a = demo.output.report_html.read_text().splitlines()
    b = again.report_html.read_text().splitlines()
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    assert len(diff) == 1 and "2026-01-01" in diff[0][0] and "2027-06-30" in diff[0][1]
    assert demo.output.results_json.read_text() == again.results_json.read_text()
