"""Tests for the ``tte`` step on crafted ADSL/ADRS frames (the response and prior-therapy steps'
outputs, per docs/adam.md): ADTTE, results.json parts, methods, and the efficacy-tte section."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmtrial.context import Analysis, Study
from mmtrial.protocol.model import Protocol
from mmtrial.report.model import Figure, Table, Text
from mmtrial.stats import kaplan_meier
from mmtrial.steps import tte


def crafted_frames(n: int = 150, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A STORM-like cohort: exponential OS, PD before death, 28-day assessments (vectorised)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2018-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    surv = rng.exponential(260, n).astype(int) + 5
    follow = rng.uniform(100, 700, n).astype(int)
    died = surv <= follow
    end = np.where(died, surv, follow)
    rsp_day = rng.integers(20, 90, n)
    resp = (rng.random(n) < 0.3) & (rsp_day < end)
    pd_day = np.maximum(rng.exponential(120, n).astype(int) + 28, np.where(resp, rsp_day + 28, 0))
    has_pd = pd_day < end
    nact = np.where((rng.random(n) < 0.3) & has_pd, np.minimum(end - 1, pd_day + 10), -1)

    def D(d):
        return pd.Series(start + pd.to_timedelta(np.maximum(d, 0), unit="D")).where(pd.Series(d) >= 0)

    usub = np.array([f"S{i:03d}" for i in range(n)])
    adsl = pd.DataFrame(
        {
            "USUBJID": usub, "TRTSDT": start, "DTHFL": np.where(died, "Y", "N"), "DTHDT": D(np.where(died, surv, -1)),
            "LSTALVDT": D(end), "EFFFL": "Y", "RSPFL": np.where(resp, "Y", "N"), "CBRFL": np.where(resp, "Y", "N"),
            "RSPDT": D(np.where(resp, rsp_day, -1)), "PDDT": D(np.where(has_pd, pd_day, -1)),
            "NACTDT": D(nact), "PENTAFL": np.where(rng.random(n) < 0.68, "Y", "N"),
            "HRCYTOFL": np.where(rng.random(n) < 0.5, "Y", "N"), "NLINES": rng.integers(3, 12, n),
        }
    )
    # assessments every 28 days until PD or end, 5% missed at random, plus the PD assessment
    k = np.arange(1, 30)
    subj = np.repeat(np.arange(n), k.size)
    d = np.tile(28 * k, n)
    stop = np.where(has_pd, pd_day, end)
    keep = (d < stop[subj]) & (rng.random(d.size) >= 0.05)
    ovr = pd.DataFrame({"USUBJID": usub[subj[keep]], "ADT": start[subj[keep]] + pd.to_timedelta(d[keep], unit="D"), "AVALC": "SD"})
    pdr = pd.DataFrame({"USUBJID": usub[has_pd], "ADT": start[has_pd] + pd.to_timedelta(pd_day[has_pd], unit="D"), "AVALC": "PD"})
    adrs = pd.concat([ovr, pdr], ignore_index=True).assign(PARAMCD="OVR")
    return adsl, adrs


def make_analysis(options=None, drop=()) -> Analysis:
    adsl, adrs = crafted_frames()
    a = Analysis(study=Study(domains={}, synthetic=True), protocol=Protocol.load(), options=dict(options or {}))
    a.adam["adsl"] = adsl.drop(columns=list(drop))
    a.adam["adrs"] = adrs
    return a


@pytest.fixture(scope="module")
def run_sas():
    a = make_analysis()
    tte.run(a)
    return a


def test_adtte_has_contract_columns_and_parameters(run_sas):
    adtte = run_sas.adam["adtte"]
    for col in ("USUBJID", "PARAMCD", "AVAL", "CNSR", "STARTDT", "ADT", "EVNTDESC", "CNSDTDSC", "SRCDOM", "SRCVAR"):
        assert col in adtte.columns
    assert set(adtte["PARAMCD"]) == {"OS", "PFS", "DOR", "TTR", "TTNT"}
    assert (adtte.loc[adtte["CNSR"] == 1, "CNSDTDSC"].notna()).all()


def test_results_time_to_event_matches_independent_km_on_adtte(run_sas):
    # data contract: median in months = days / 30.4375, null when not reached; CI transform named.
    # Independent check: statsmodels SurvfuncRight median on the same ADTTE rows (SAS-style rule).
    from statsmodels.duration.survfunc import SurvfuncRight

    res = run_sas.results["time_to_event"]
    adtte = run_sas.adam["adtte"]
    for code in ("OS", "PFS", "DOR"):
        rows = adtte[adtte["PARAMCD"] == code]
        sm = SurvfuncRight(rows["AVAL"].to_numpy(float), (rows["CNSR"] == 0).to_numpy(int))
        r = res[code]
        assert r["n"] == len(rows) and r["events"] == int((rows["CNSR"] == 0).sum())
        assert r["median"] == pytest.approx(sm.quantile(0.5) / 30.4375)
        assert r["unit"] == "months" and r["ci_transform"] == "log-log"
        lo, _ = sm.quantile_ci(0.5, method="cloglog")
        assert r["ci"][0] == pytest.approx(lo / 30.4375)
        assert set(r["quantiles"]) == {"0.25", "0.5", "0.75"}
        assert [lm["time"] for lm in r["landmarks"]] == [3.0, 6.0, 12.0]
    json.dumps(run_sas.results)  # serialisable (None for NE, no NaN objects)


def test_os_by_response_has_naive_landmark_and_time_dependent(run_sas):
    o = run_sas.results["os_by_response"]
    assert set(o) >= {"naive", "landmark", "mantel_byar", "time_dependent_cox"}
    assert o["landmark"]["landmark"] == 2.0
    n_land = sum(g["n"] for g in o["landmark"]["groups"].values())
    assert n_land + o["landmark"]["n_excluded"] == run_sas.results["time_to_event"]["OS"]["n"]
    assert o["time_dependent_cox"]["ties"] == "breslow"  # SAS profile


def test_subgroups_and_binomial_test(run_sas):
    adsl = run_sas.adam["adsl"]
    rows = {(r["subgroup"], r["category"]): r for r in run_sas.results["subgroups"]["rows"]}
    penta = adsl[adsl["PENTAFL"] == "Y"]
    r = rows[("Penta-refractory", "Yes")]
    assert (r["x"], r["n"]) == (int((penta["RSPFL"] == "Y").sum()), len(penta))
    assert r["method"] == "clopper-pearson"
    assert ("Prior lines", ">= 7") in rows
    bt = run_sas.results["binomial_test"]
    # exact design: smallest r with P(X >= r | n, 0.10) <= 0.025 (scipy binomial tail, by search)
    from scipy import stats

    n = bt["n"]
    r_ref = next(r for r in range(n + 2) if stats.binom.sf(r - 1, n, 0.10) <= 0.025)
    assert bt["null"] == 0.10 and bt["critical_value"] == r_ref
    assert bt["x"] == int((adsl["RSPFL"] == "Y").sum())
    assert "illustrative" in bt["design_source"]


def test_section_blocks_footnotes_and_methods(run_sas):
    sec = [s for s in run_sas.sections if s.id == "efficacy-tte"]
    assert len(sec) == 1 and sec[0].order == 45
    blocks = sec[0].blocks
    ids = [b.id for b in blocks if isinstance(b, (Table, Figure))]
    for want in ("TTET01", "km-pfs", "km-os", "km-dor", "TTE02", "km-os-landmark", "RSP02", "ONCT05", "forest-orr", "BINOM01", "TTERULES"):
        assert want in ids
    for b in blocks:
        if isinstance(b, Table):
            assert b.footnotes, b.id
        if isinstance(b, Figure):
            assert b.svg.startswith("<svg") and b.alt
    ttet = next(b for b in blocks if isinstance(b, Table) and b.id == "TTET01")
    assert any("log-log" in f and "Brookmeyer-Crowley" in f for f in ttet.footnotes)
    assert any("30.4375" in f for f in ttet.footnotes)
    tte02 = next(b for b in blocks if isinstance(b, Table) and b.id == "TTE02")
    assert any("Guarantee-time" in f for f in tte02.footnotes)
    m = run_sas.methods["tte"]
    assert m["profile"] == "sas" and m["km"]["ci_transform"] == "log-log"
    assert "63 d" in m["rules"]["PFS"] and "DTHDT" in m["rules"]["OS"]


def test_table_cells_trace_to_subjects(run_sas):
    ttet = next(b for s in run_sas.sections for b in s.blocks if isinstance(b, Table) and b.id == "TTET01")
    row = ttet.data.index[ttet.data["Statistic"] == "With an event, n (%)"][0]
    ids = ttet.cell_subjects[(int(row), "Value")]
    os_rows = run_sas.adam["adtte"].query("PARAMCD == 'PFS' and CNSR == 0")
    assert sorted(ids) == sorted(os_rows["USUBJID"])  # the first block is PFS (protocol order)


def test_r_profile_switches_transform_median_rule_and_ties():
    a = make_analysis({"profile": "r"})
    tte.run(a)
    assert a.results["time_to_event"]["OS"]["ci_transform"] == "log"
    assert a.results["time_to_event"]["OS"]["median_rule"] == "r"
    assert a.results["os_by_response"]["time_dependent_cox"]["ties"] == "efron"
    rows = a.adam["adtte"].query("PARAMCD == 'OS'")
    km = kaplan_meier(rows["AVAL"] / 30.4375, rows["CNSR"] == 0, profile="r")
    assert a.results["time_to_event"]["OS"]["median"] == km.median


def test_missing_prior_therapy_variables_are_reported_not_dropped():
    a = make_analysis(drop=("PENTAFL", "NLINES"))
    tte.run(a)
    assert a.results["subgroups"]["unavailable"] == ["PENTAFL", "NLINES"]
    texts = [b.text for s in a.sections for b in s.blocks if isinstance(b, Text)]
    assert any("PENTAFL" in t for t in texts)


def test_missing_adsl_is_a_clear_error():
    a = Analysis(study=Study(domains={}), protocol=Protocol.load())
    with pytest.raises(ValueError, match="adsl"):
        tte.run(a)


def test_missing_response_variables_name_the_variable_and_step():
    a = make_analysis(drop=("PDDT", "EFFFL"))
    with pytest.raises(ValueError, match=r"ADSL lacks .*EFFFL \(step response\), PDDT \(step response\)"):
        tte.run(a)


def test_response_step_not_run_is_stated_in_report_and_results():
    a = make_analysis(drop=("EFFFL", "RSPFL", "RSPDT", "PDDT", "NACTDT", "CBRFL"))
    tte.run(a)
    assert a.results["tte_status"]["run"] is False
    assert "adtte" not in a.adam
    texts = [b.text for s in a.sections for b in s.blocks if isinstance(b, Text)]
    assert any("'response' step must run before 'tte'" in t for t in texts)


def test_event_and_censoring_reasons_are_indented_sub_rows_in_sentence_case(run_sas):
    # display only: ADTTE keeps "DEATH"; the table shows "  Death" (one indent level) under its parent
    ttet = next(b for s in run_sas.sections for b in s.blocks if isinstance(b, Table) and b.id == "TTET01")
    os_rows = ttet.data.loc[[g == "Overall survival" for g in ttet.groups], "Statistic"].tolist()
    i = os_rows.index("With an event, n (%)")
    assert os_rows[i + 1] == "  Death"
    j = os_rows.index("Censored, n (%)")
    assert os_rows[j + 1] == "  Last known alive date"
    assert set(run_sas.adam["adtte"].query("PARAMCD == 'OS' and CNSR == 0")["EVNTDESC"]) == {"DEATH"}


def test_km_plots_label_the_y_axis_with_the_endpoint(run_sas):
    figs = {b.id: b.svg for s in run_sas.sections for b in s.blocks if isinstance(b, Figure)}
    assert "Overall survival probability" in figs["km-os"]
    assert "Progression-free survival probability" in figs["km-pfs"]
    assert "Probability of remaining in response" in figs["km-dor"]
    assert "Probability event-free" not in figs["km-os"]
