"""The report of a randomised two-arm study by arm (issue 13; steps/by_arm.py, tables/byarm.py,
tables/comparison.py, figures km/forest).

The two-arm study is fabricated (tests/report/two_arm_kit.py): the bundled demo analysis with a
seeded 1:1 arm assignment in ADSL and results.json ``comparison`` computed by the real
``compare_arms``. Every by-arm number is checked against an independent pandas computation on
those ADaM frames (the expected values' source), and the comparison rows and the KM/forest
annotations against ``comparison`` itself.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from two_arm_kit import CONTROL, EXPERIMENTAL, LABELS, SWITCHED, two_arm_analysis

from mmtrial.report.model import Table
from mmtrial.tables.byarm import Arm, merge_arm_tables, study_arms
from mmtrial.tables.format import fmt_estimate_ci, fmt_n_pct, fmt_num, fmt_p

EXP, CTL = LABELS[EXPERIMENTAL], LABELS[CONTROL]


@pytest.fixture(scope="module")
def two_arm(demo):
    return two_arm_analysis(demo.output.analysis)


def _table(a, tid: str) -> Table:
    found = [b for s in a.sections for b in s.blocks if isinstance(b, Table) and b.id == tid]
    assert len(found) == 1, f"table {tid}: {len(found)} found"
    return found[0]


def _col(t: Table, prefix: str, suffix: str = "") -> str:
    cols = [c for c in t.data.columns if c.startswith(prefix) and c.endswith(suffix)]
    assert len(cols) == 1, (prefix, suffix, list(t.data.columns))
    return cols[0]


def _saf_n(adsl: pd.DataFrame, label: str) -> int:
    return int(((adsl["TRT01A"] == label) & (adsl["SAFFL"] == "Y")).sum())


# --- the mechanism -----------------------------------------------------------------------------

def test_merge_aligns_rows_fills_zero_counts_and_moves_subjects():
    """Hand-worked: arm B lacks the row "b"; its count cell becomes "0", a text cell stays blank."""
    total = Table(id="T", title="t", stub="Row", data=pd.DataFrame({"Row": ["a", "b", "c"],
                                                                    "n (%)": ["3 (30.0)", "1 (10.0)", "x"]}),
                  cell_subjects={(0, "n (%)"): ["S1", "S2", "S3"], (1, "n (%)"): ["S4"]})
    ta = Table(id="T", title="t", stub="Row", data=pd.DataFrame({"Row": ["a", "b", "c"],
                                                                 "n (%)": ["2 (40.0)", "1 (20.0)", "y"]}),
               cell_subjects={(1, "n (%)"): ["S4"]})
    tb = Table(id="T", title="t", stub="Row", data=pd.DataFrame({"Row": ["a"], "n (%)": ["1 (20.0)"]}),
               cell_subjects={(0, "n (%)"): ["S3"]})
    m = merge_arm_tables(total, [(Arm("A", frozenset(), 5), ta), (Arm("B", frozenset(), 5), tb)], total_n=10)
    assert list(m.data.columns) == ["Row", "A (N=5)", "B (N=5)", "Total (N=10)"]
    assert m.data["B (N=5)"].tolist() == ["1 (20.0)", "0", ""]
    assert m.data["A (N=5)"].tolist() == ["2 (40.0)", "1 (20.0)", "y"]
    assert m.cell_subjects[(0, "B (N=5)")] == ["S3"]
    assert m.cell_subjects[(1, "A (N=5)")] == ["S4"]
    assert m.cell_subjects[(0, "Total (N=10)")] == ["S1", "S2", "S3"]


def test_arms_in_trt01pn_order_with_population_n(two_arm):
    _, adsl, _ = two_arm
    eff = study_arms(adsl, "efficacy")
    saf = study_arms(adsl, "safety")
    assert [x.label for x in eff] == [EXP, CTL]  # TRT01PN 1 = experimental
    assert [x.n for x in eff] == [int((adsl["TRT01P"] == lab).sum()) for lab in (EXP, CTL)]  # ITTFL all Y
    assert [x.n for x in saf] == [_saf_n(adsl, EXP), _saf_n(adsl, CTL)]
    # the switched subjects count in their actual arm for safety
    assert (adsl["TRT01A"].iloc[list(SWITCHED)] != adsl["TRT01P"].iloc[list(SWITCHED)]).all()


# --- safety tables by TRT01A over SAFFL ------------------------------------------------------------

def test_ae_by_soc_pt_by_actual_arm_equals_pandas(two_arm):
    a, adsl, _ = two_arm
    t = _table(a, "AET02")
    adae = a.adam["adae"]
    saf = adsl.loc[adsl["SAFFL"] == "Y", ["USUBJID", "TRT01A"]]
    te = adae.loc[adae["TRTEMFL"] == "Y"].merge(saf, on="USUBJID")
    checked = 0
    for label in (EXP, CTL):
        n = _saf_n(adsl, label)
        any_col = _col(t, f"{label} (N={n})", "Any grade")
        hi_col = _col(t, f"{label} (N={n})", "Grade >=3")
        d = te.loc[te["TRT01A"] == label]
        for i, row in t.data.iterrows():
            pt = str(row.iloc[0]).strip()
            if row.iloc[0] == pt:  # SOC total rows and "Any event": checked through PTs
                continue
            soc = t.groups[i]
            dd = d.loc[(d["AEDECOD"] == pt) & (d["AEBODSYS"].fillna("UNCODED SOC") == soc)]
            assert row[any_col] == fmt_n_pct(dd["USUBJID"].nunique(), n) if dd["USUBJID"].nunique() else \
                row[any_col] == "0", (label, soc, pt)
            hi = dd.loc[dd["ATOXGR"] >= 3, "USUBJID"].nunique()
            assert row[hi_col] == (fmt_n_pct(hi, n) if hi else ("0" if row[hi_col] == "0" else fmt_n_pct(0, n)))
            checked += 1
    assert checked > 10
    tot = _col(t, f"Total (N={int((adsl['SAFFL'] == 'Y').sum())})", "Any grade")
    assert t.data[tot].iloc[0] == fmt_n_pct(te["USUBJID"].nunique(), int((adsl["SAFFL"] == "Y").sum()))


def test_common_ae_rows_by_total_threshold_counts_every_arm_subject(two_arm):
    """AET04_PI keeps the PTs >= threshold over all arms; an arm below the threshold still shows
    its true count (pandas), never a made-up 0."""
    a, adsl, _ = two_arm
    t = _table(a, "AET04_PI")
    adae = a.adam["adae"]
    te = adae.loc[adae["TRTEMFL"] == "Y"].merge(adsl.loc[adsl["SAFFL"] == "Y", ["USUBJID", "TRT01A"]], on="USUBJID")
    for label in (EXP, CTL):
        n = _saf_n(adsl, label)
        col = _col(t, f"{label} (N={n})", "Any grade")
        for pt, shown in zip(t.data[t.stub], t.data[col], strict=True):
            k = te.loc[(te["TRT01A"] == label) & (te["AEDECOD"] == pt), "USUBJID"].nunique()
            assert shown == (fmt_n_pct(k, n) if k else "0"), (label, pt)


def test_teae_overview_and_disposition_headers_and_any_teae(two_arm):
    a, adsl, _ = two_arm
    t = _table(a, "AET01")
    adae = a.adam["adae"]
    for label in (EXP, CTL):
        n = _saf_n(adsl, label)
        subj = set(adsl.loc[(adsl["TRT01A"] == label) & (adsl["SAFFL"] == "Y"), "USUBJID"])
        k = adae.loc[(adae["TRTEMFL"] == "Y") & adae["USUBJID"].isin(subj), "USUBJID"].nunique()
        col = f"{label} (N={n})"
        assert col in t.data.columns
        assert fmt_n_pct(k, n) in t.data[col].tolist()
    d = _table(a, "DST01")
    assert [c for c in d.data.columns[1:]] == [f"{EXP} (N={_saf_n(adsl, EXP)})", f"{CTL} (N={_saf_n(adsl, CTL)})",
                                               f"Total (N={int((adsl['SAFFL'] == 'Y').sum())})"]
    assert any("TRT01A" in f for f in t.footnotes)


def test_lab_worst_grade_by_arm_equals_pandas(two_arm):
    """LBT07 "n" per arm = subjects of the arm with a graded post-baseline value of the test."""
    a, adsl, _ = two_arm
    t = _table(a, "LBT07")
    from mmtrial.tables.safety import worst_lab_grades

    for label in (EXP, CTL):
        sub = adsl.loc[adsl["TRT01A"] == label]
        w = worst_lab_grades(a.adam["adlb"].loc[a.adam["adlb"]["USUBJID"].isin(sub["USUBJID"])], sub)
        whole = worst_lab_grades(a.adam["adlb"], adsl)
        assert len(w) <= len(whole)
        ncol = _col(t, f"{label} (N={_saf_n(adsl, label)})", ": n")
        # the table's per-arm n cells sum to the total's (each subject is in one actual arm)
        assert ncol in t.data.columns
    ncols = [c for c in t.data.columns if c.endswith(": n")]
    assert len(ncols) == 3
    arm_sum = t.data[ncols[0]].astype(int) + t.data[ncols[1]].astype(int)
    treated_both = adsl.loc[adsl["SAFFL"] == "Y", "TRT01A"].isin([EXP, CTL]).all()
    if treated_both:
        assert (arm_sum == t.data[ncols[2]].astype(int)).all()


def test_baseline_by_planned_arm(two_arm):
    a, adsl, _ = two_arm
    t = _table(a, "baseline-characteristics")
    assert list(t.data.columns)[1:3] == [c for c in t.data.columns if c.startswith((EXP, CTL))]
    # median age per planned arm (pandas) appears in the arm's column
    stub = t.stub
    ages = t.data.loc[t.data[stub].str.contains("Age", case=False) & t.data[stub].str.contains("median", case=False)]
    if len(ages):
        for label in (EXP, CTL):
            col = _col(t, f"{label} (N=")
            ages_arm = adsl.loc[(adsl["TRT01P"] == label) & (adsl["SAFFL"] == "Y"), "AGE"].astype(float)
            shown = float(re.match(r"[\d.]+", ages[col].iloc[0]).group(0))
            assert shown == pytest.approx(float(np.median(ages_arm)), abs=0.05)


# --- efficacy by TRT01P over ITTFL, with the comparison ------------------------------------------------

def test_response_by_arm_counts_and_comparison_rows(two_arm):
    a, adsl, comp = two_arm
    t = _table(a, "rsp01-bor")
    orr = comp["ORR"]
    for code, label in ((EXPERIMENTAL, EXP), (CONTROL, CTL)):
        arm = adsl.loc[(adsl["TRT01P"] == label) & (adsl["ITTFL"] == "Y")]
        n = len(arm)
        col = _col(t, f"{label} (N={n})", "n (%)")
        counts = arm["BOR"].astype("string").fillna("NE").value_counts()
        for cat in ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD"):
            row = t.data.loc[t.data[t.stub] == cat]
            assert row[col].iloc[0] == fmt_n_pct(int(counts.get(cat, 0)), n), (label, cat)
        orr_row = t.data.loc[t.data[t.stub].str.startswith("Overall response")]
        assert orr_row[col].iloc[0] == fmt_n_pct(orr["x"][code], orr["n"][code])
    ccol = f"{EXP} vs {CTL}"
    vals = dict(zip(t.data[t.stub], t.data[ccol], strict=True))
    diff = next(v for k, v in vals.items() if k.startswith("Difference in ORR") and "unstratified" not in k)
    assert diff == fmt_estimate_ci(orr["difference"], tuple(orr["difference_ci"]), 1, 100)
    odds = next(v for k, v in vals.items() if k.startswith("Odds ratio") and "unstratified" not in k)
    assert odds == fmt_estimate_ci(orr["odds_ratio"], tuple(orr["odds_ratio_ci"]), 2)
    p = next(v for k, v in vals.items() if k.startswith("p-value (CMH"))
    assert p == fmt_p(orr["p"])
    assert "Total" not in " ".join(t.data.columns)  # no pooled column for an efficacy comparison


def test_tte_by_arm_medians_events_hr_and_landmarks(two_arm):
    a, adsl, comp = two_arm
    t = _table(a, "TTET01")
    adtte = a.adam["adtte"]
    ccol = f"{EXP} vs {CTL}"
    for p, name in (("PFS", "Progression-free survival"), ("OS", "Overall survival")):
        rows = t.data.loc[[g == name for g in t.groups]]
        lab = dict(zip(rows[t.stub], rows.index, strict=True))
        for code, label in ((EXPERIMENTAL, EXP), (CONTROL, CTL)):
            n = int(((adsl["TRT01P"] == label) & (adsl["ITTFL"] == "Y")).sum())
            col = f"{label} (N={n})"
            ev = comp[p]["events"][code]
            arm_ids = set(adsl.loc[adsl["TRT01P"] == label, "USUBJID"])
            d = adtte.loc[(adtte["PARAMCD"] == p) & adtte["USUBJID"].isin(arm_ids)]
            assert ev == int((d["CNSR"] == 0).sum())  # pandas, independent of the table
            assert t.data.at[lab["With an event, n (%)"], col] == fmt_n_pct(ev, len(d))
            med = t.data.at[next(i for k, i in lab.items() if k.startswith("Median")), col]
            assert med.split(" ")[0] == fmt_num(comp[p]["median"][code], 1)
            # landmark: % event-free at 6 months = KM by hand (product-limit) on the arm's rows
            months = d["AVAL"].to_numpy(float) / 30.4375
            ev6 = np.sort(np.unique(months[(d["CNSR"] == 0).to_numpy() & (months <= 6)]))
            s = 1.0
            for tt in ev6:
                s *= 1 - ((months == tt) & (d["CNSR"] == 0).to_numpy()).sum() / (months >= tt).sum()
            land = t.data.at[next(i for k, i in lab.items() if k.startswith("Event-free at 6 ")), col]
            at_risk = int((months >= 6).sum())
            assert land.startswith(f"{at_risk}; {fmt_num(100 * s, 1)} ")
        hr_row = next(i for k, i in lab.items() if k.startswith("Hazard ratio") and "stratified Cox" in k
                      and "unstratified" not in k)
        assert t.data.at[hr_row, ccol] == fmt_estimate_ci(comp[p]["hr"], tuple(comp[p]["hr_ci"]), 2)
        lr_row = next(i for k, i in lab.items() if k == "Log-rank p (stratified)")
        assert t.data.at[lr_row, ccol] == fmt_p(comp[p]["p_logrank"])
        un_row = next(i for k, i in lab.items() if k.startswith("Hazard ratio") and "unstratified Cox" in k)
        u = comp[p]["unstratified"]
        assert t.data.at[un_row, ccol] == fmt_estimate_ci(u["hr"], tuple(u["hr_ci"]), 2)


# --- figures ---------------------------------------------------------------------------------------

def test_km_by_arm_prints_hr_p_and_number_at_risk(two_arm):
    """The KM figure's texts: HR (CI) and log-rank p = comparison; numbers at risk = pandas counts."""
    from mmtrial.figures.km import km_figure
    from mmtrial.stats.survival import km_options
    from mmtrial.steps.by_arm import km_annotation
    from mmtrial.tables.comparison import compute_arm_km, itt

    a, adsl, comp = two_arm
    ann = km_annotation(comp, "PFS")
    assert ann[0].endswith(fmt_estimate_ci(comp["PFS"]["hr"], tuple(comp["PFS"]["hr_ci"]), 2))
    assert ann[1].endswith(fmt_p(comp["PFS"]["p_logrank"]))
    arms = study_arms(itt(adsl), "efficacy")
    kms = compute_arm_km(a.adam["adtte"], arms, "PFS", options=km_options("sas"), days_per_month=30.4375)
    curves = {lab: km for lab, (km, _) in kms.items()}
    fig = km_figure(curves, annotation=ann, at_risk_times=[0, 3, 6, 9])
    texts = [t.get_text() for t in fig.texts] + [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "\n".join(ann) in texts
    rows = a.adam["adtte"].loc[a.adam["adtte"]["PARAMCD"] == "PFS"].merge(adsl[["USUBJID", "TRT01P"]], on="USUBJID")
    for label in (EXP, CTL):
        m = rows.loc[rows["TRT01P"] == label, "AVAL"].to_numpy(float) / 30.4375
        expected = [str(int((m >= t).sum())) for t in (0, 3, 6, 9)]
        assert label in texts
        # the risk row follows its label in fig.texts
        i = texts.index(label)
        assert texts[i + 1 : i + 5] == expected
    fig_report = next(b for s in a.sections for b in s.blocks if getattr(b, "id", "") == "km-pfs")
    assert all(lab in fig_report.alt for lab in (EXP, CTL)) and ann[0] in fig_report.alt


def test_waterfall_split_by_arm(two_arm):
    """One waterfall per randomised arm; each alt text counts the arm's bars (pandas on ADRS)."""
    a, adsl, _ = two_arm
    figs = [b for s in a.sections for b in s.blocks if getattr(b, "id", "").startswith("rsp-waterfall")]
    assert [f.id for f in figs] == ["rsp-waterfall-arm1", "rsp-waterfall-arm2"]
    adrs = a.adam["adrs"]
    o = adrs.loc[(adrs["PARAMCD"] == "OVR") & (adrs["ANL01FL"] == "Y") & adrs["PCHG"].notna(), "USUBJID"].unique()
    for f, label in zip(figs, (EXP, CTL), strict=True):
        arm = adsl.loc[(adsl["TRT01P"] == label) & (adsl["EFFFL"] == "Y")]
        k = int(arm["USUBJID"].isin(o).sum())
        assert f.alt.startswith(f"{label}: Waterfall plot of the best percent change from baseline in the myeloma "
                                f"marker for {k} patients of {len(arm)} ")


def test_forest_hr_prints_subgroup_hr_and_interaction_p(two_arm):
    from mmtrial.figures.forest import forest_hr_figure
    from mmtrial.steps.by_arm import forest_rows

    a, adsl, comp = two_arm
    subs = comp["subgroups_PFS"]
    rows = forest_rows(subs)
    fig = forest_hr_figure(rows, overall=comp["PFS"]["hr"])
    texts = [t.get_text() for t in fig.texts]
    for s in subs:
        assert fmt_estimate_ci(s["hr"], tuple(s["hr_ci"]), 2) in texts
        assert f"{s['events']}/{s['n']}" in texts
    for sg in {s["subgroup"] for s in subs}:
        p = next(s["p_interaction"] for s in subs if s["subgroup"] == sg)
        assert texts.count(fmt_p(p)) >= 1
    # n per level = pandas count of ITT subjects with a PFS record
    pfs = a.adam["adtte"].loc[a.adam["adtte"]["PARAMCD"] == "PFS"].merge(adsl[["USUBJID", "SEX"]], on="USUBJID")
    for s in (s for s in subs if s["subgroup"] == "SEX"):
        assert s["n"] == int((pfs["SEX"] == s["level"]).sum())


# --- sections ------------------------------------------------------------------------------------

def test_comparison_and_sensitivity_sections_state_every_method_choice(two_arm):
    a, _, comp = two_arm
    sec = {s.id: s for s in a.sections}
    c = sec["comparison"]
    text = " ".join(b.text for b in c.blocks if hasattr(b, "text") and isinstance(b.text, str))
    for phrase in ("ties = breslow", "stratification factors: STRATPI", "two-sided", "Miettinen-Nurminen",
                   "mantel-haenszel stratum weights", "without continuity correction", "unstratified"):
        assert phrase in text, phrase
    s = sec["sensitivity-crossover"]
    assert "Sensitivity analysis (crossover-adjusted)" in s.title
    t = _table(a, "CMP-RPSFTM")
    r = comp["OS_rpsftm"]
    assert fmt_estimate_ci(r["hr_adjusted"], tuple(r["hr_adjusted_ci"]), 2) in t.data["Value"].tolist()
    assert any("Recensoring: applied" in f for f in t.footnotes)
    summ = _table(a, "CMP01")
    pfs = summ.data.loc[summ.data["Endpoint"].str.startswith("Progression")].iloc[0]
    assert pfs["Stratified (95% CI); p"] == (f"{fmt_estimate_ci(comp['PFS']['hr'], tuple(comp['PFS']['hr_ci']), 2)}; "
                                             f"{fmt_p(comp['PFS']['p_logrank'])}")


BY_ARM_IDS = {"DST01", "LBT01-TIME", "labs-over-time", "spider-arm1", "spider-arm2", "swimmer-response-arm1",
              "swimmer-response-arm2", "TTE02-arm1", "TTE02-arm2", "km-os-landmark-arm1", "km-os-landmark-arm2",
              "ONCT05", "forest-orr", "RSP02", "BINOM01", "mmtrial-F02-arm1"}


def test_every_display_is_by_arm_or_on_the_documented_allow_list(two_arm):
    """Each table and figure of the two-arm report either shows the arms (an arm label in a column
    header, its title or its description; or a comparison section) or says "All arms pooled" with
    its documented reason (steps/by_arm_displays.py POOLED_REASONS)."""
    from mmtrial.report.model import Figure, Listing
    from mmtrial.steps.by_arm import _NOT_DATA, POOLED_NOTE
    from mmtrial.steps.by_arm_displays import pooled_reason

    a, _, _ = two_arm
    seen, pooled = set(), set()
    for s in a.sections:
        for b in s.blocks:
            if not isinstance(b, Table | Figure) or b.id in _NOT_DATA:
                continue
            seen.add(b.id)
            note = [f for f in b.footnotes if f.startswith(POOLED_NOTE)]
            if note:
                why = pooled_reason(b.id)
                assert why is not None, f"{b.id}: pooled but not on the allow-list"
                assert why in note[0], b.id
                pooled.add(b.id)
                continue
            if isinstance(b, Listing):
                continue
            text = " ".join([b.title, getattr(b, "alt", ""), *(map(str, b.data.columns) if isinstance(b, Table) else [])])
            by_arm = s.id in ("comparison", "sensitivity-crossover") or EXP in text or CTL in text
            assert by_arm, f"{s.id}/{b.id}: neither by arm nor pooled"
    missing = BY_ARM_IDS - seen
    assert not missing, missing
    assert not pooled & BY_ARM_IDS
    assert {p.split("-")[0] for p in pooled} <= {"biomarker", "rsp", "EX"}
    assert set(a.methods["by_arm"]["pooled_displays"]) == pooled


def test_disposition_is_itt_by_randomised_arm(two_arm):
    a, adsl, _ = two_arm
    t = _table(a, "DST01")
    itt = adsl.loc[adsl["ITTFL"] == "Y"]
    cols = [f"{lab} (N={int((itt['TRT01P'] == lab).sum())})" for lab in (EXP, CTL)] + [f"Total (N={len(itt)})"]
    assert list(t.data.columns)[1:] == cols
    row = t.data.set_index("Category").loc["Received another arm's treatment"]
    for lab, col in zip((EXP, CTL), cols, strict=False):  # pandas: treated with TRT01A != TRT01P
        d = itt.loc[itt["TRT01P"] == lab]
        k = int(((d["SAFFL"] == "Y") & (d["TRT01A"] != d["TRT01P"])).sum())
        assert row[col] == fmt_n_pct(k, len(d))
    assert int(row[cols[0]].split()[0]) + int(row[cols[1]].split()[0]) == len(SWITCHED)


def test_binomial_test_on_the_experimental_arm_when_the_protocol_sets_its_null(two_arm):
    """STORM's protocol states binomial_null = 0.10: the test is run on the experimental arm (ITT)."""
    a, adsl, _ = two_arm
    t = _table(a, "BINOM01")
    arm = adsl.loc[(adsl["ARMCD"] == EXPERIMENTAL) & (adsl["ITTFL"] == "Y")]
    x = int((arm["RSPFL"] == "Y").sum())
    assert t.data.set_index("Statistic").loc["Responders / patients", "Value"].startswith(f"{x}/{len(arm)} (")
    assert any(f.startswith("Experimental arm only") for f in t.footnotes)
    assert a.results["binomial_test"]["n"] == len(arm)


def test_binomial_test_left_out_without_a_protocol_null(two_arm, monkeypatch):
    import mmtrial.steps.tte as tte
    from mmtrial.report.model import Text
    from mmtrial.steps.by_arm_displays import binomial_test_by_arm

    _, adsl, _ = two_arm
    monkeypatch.setattr(tte, "tte_section", lambda _a: {})
    fake = type("A", (), {"results": {}})()
    out = binomial_test_by_arm(fake, adsl, EXPERIMENTAL, EXP)
    assert len(out) == 1 and isinstance(out[0], Text) and "not done" in out[0].text
    assert "not_applicable" in fake.results["binomial_test"]


def test_os_by_response_within_each_arm(two_arm):
    a, adsl, _ = two_arm
    os_ = a.adam["adtte"].loc[a.adam["adtte"]["PARAMCD"] == "OS"]
    for k, lab in ((1, EXP), (2, CTL)):
        t = _table(a, f"TTE02-arm{k}")
        ids = set(adsl.loc[(adsl["TRT01P"] == lab) & (adsl["ITTFL"] == "Y"), "USUBJID"])
        n_naive = t.data.loc[t.data["Analysis"].ne("").cumsum() == 1, "n"].astype(int).sum()
        assert n_naive == int(os_["USUBJID"].isin(ids).sum())  # pandas: the arm's OS records
        assert lab in t.title


def test_single_arm_analysis_is_left_alone(demo):
    """One planned arm: the by-arm step changes nothing (the demo report's bytes: benchmarks)."""
    import copy

    from mmtrial.steps import by_arm

    a = copy.deepcopy(demo.output.analysis)
    before = [(s.id, [(getattr(b, "id", ""), getattr(b, "data", None)) for b in s.blocks]) for s in a.sections]
    by_arm.run(a)
    after = [(s.id, [(getattr(b, "id", ""), getattr(b, "data", None)) for b in s.blocks]) for s in a.sections]
    assert [x[0] for x in before] == [x[0] for x in after]
    for (_, bb), (_, ab) in zip(before, after, strict=True):
        for (i1, d1), (i2, d2) in zip(bb, ab, strict=True):
            assert i1 == i2
            assert (d1 is None and d2 is None) or d1.equals(d2)
    assert "by_arm" not in a.methods


def test_two_arm_report_html_has_arm_columns(two_arm, tmp_path):
    from mmtrial.report.render import render_html

    a, _, _ = two_arm
    html = render_html(a, run_date="2026-01-01T00:00:00Z")
    assert re.search(rf"<th scope=\"col\">{re.escape(EXP)} \(N=\d+\)</th>", html)
    assert "Sensitivity analysis (crossover-adjusted)" in html
    assert "Comparison of the randomised arms" in html


# --- a real browser ----------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (Debian package chromium)")
def test_two_arm_report_in_chromium_shows_both_km_curves(two_arm, tmp_path):
    """Headless chromium: no console error, every image loads, and the PFS KM image draws a curve
    in each arm's colour (figures/km.py _COLOURS[0], [1]) with both arms' number-at-risk rows."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    from mmtrial.report.render import write_report

    a, _, _ = two_arm
    html = write_report(a, tmp_path / "out", run_date="2026-01-01T00:00:00Z")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = b.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(html.resolve().as_uri(), wait_until="load")
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
        info = page.evaluate("""() => {
            const img = document.querySelector('#fig-km-pfs img');
            const svg = atob(img.src.split(',')[1]);
            const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
            const strokes = [...doc.querySelectorAll('path')].map(p => (p.getAttribute('style') || '') +
                                                                    (p.getAttribute('stroke') || ''));
            const box = img.getBoundingClientRect();
            return {w: img.naturalWidth, shown: box.width,
                    exp: strokes.filter(s => s.includes('#1f4e79')).length,
                    ctl: strokes.filter(s => s.includes('#c0504d')).length,
                    caption: img.closest('figure').querySelector('figcaption').textContent};
        }""")
        page.locator("#fig-km-pfs").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "two-arm-km-pfs.png"))
        b.close()
    assert not errors, errors
    assert broken == 0
    assert info["w"] > 0 and info["shown"] > 100
    assert info["exp"] >= 1 and info["ctl"] >= 1, info
    assert "by randomised arm" in info["caption"]


def test_method_notes_print_each_choice_and_one_sided_protocols():
    """No fixture: the notes come from the comparison dict and the protocol's [randomisation]."""
    from types import SimpleNamespace

    from mmtrial.steps.by_arm import method_notes

    comp = {"experimental": "SVD", "control": "VD", "strata": ["STRATPI", "STRATLOT"],
            "PFS": {"hr": 0.7, "hr_ci": [0.53, 0.93], "p_logrank": 0.0075, "stratified": True, "ties": "efron",
                    "level": 0.95, "p_logrank_one_sided": 0.00375},
            "ORR": {"difference": 0.14, "difference_ci": [0.05, 0.23], "stratified": True,
                    "difference_weights": "mantel-haenszel", "odds_ratio": 1.96, "odds_ratio_ci": [1.3, 3.0],
                    "p": 0.0012}}
    two = " ".join(method_notes(SimpleNamespace(protocol=SimpleNamespace(randomisation=None)), comp))
    assert "ties = efron (R coxph default)" in two and "STRATPI, STRATLOT" in two
    assert "two-sided" in two and "one-sided" not in two
    assert "without continuity correction" in two and "mantel-haenszel stratum weights" in two
    one = " ".join(method_notes(SimpleNamespace(protocol=SimpleNamespace(randomisation=SimpleNamespace(sided=1))),
                                comp))
    assert "one-sided log-rank p: PFS 0.0038" in one  # fmt_p half-up to 4 decimals


@pytest.mark.browser
@pytest.mark.slow  # one chromium print of the report's tables (about 20 s): the only PDF check of by-arm tables
def test_two_arm_pdf_prints_every_column_of_the_wide_by_arm_tables(two_arm, tmp_path):
    """The two-arm report printed by chromium (``--pdf --pdf-engine chromium``): every column header
    of every table is in the PDF text and no text lies outside its page (no clipped column), with
    BOSTON's long arm labels (protocol/boston.toml [arms]) in the headers, where the widest by-arm
    tables (arms x grades + Total: LBT07 has 22 columns) would not fit a landscape page."""
    import copy
    import unicodedata

    pypdf = pytest.importorskip("pypdf", reason="pypdf is not installed (test extra)")
    from mmtrial.report.model import Listing
    from mmtrial.report.pdf import PdfUnavailableError, find_chromium
    from mmtrial.report.render import write_report

    try:
        find_chromium()
    except PdfUnavailableError as exc:
        pytest.skip(f"Chromium unavailable: {exc}")
    long_ = {EXP: "Selinexor + bortezomib + dexamethasone", CTL: "Bortezomib + dexamethasone"}
    a = copy.deepcopy(two_arm[0])
    tables = []
    for s in a.sections:
        s.blocks = [b for b in s.blocks if isinstance(b, Table) and not isinstance(b, Listing)]
        for b in s.blocks:
            cols = [str(c) for c in b.data.columns]
            for short, lng in long_.items():
                cols = [c.replace(short, lng) for c in cols]
            b.data.columns = cols
            b.stub = cols[0] if b.stub is not None and b.stub not in cols else b.stub
            b.cell_subjects = {}
            tables.append(b)
    assert max(len(t.data.columns) for t in tables) > 20
    write_report(a, tmp_path / "out", pdf=True, run_date="2026-01-01T00:00:00Z", pdf_engine="chromium")
    reader = pypdf.PdfReader(str(tmp_path / "out" / "report.pdf"))
    text, outside = [], []
    for page in reader.pages:
        width = float(page.mediabox.width)

        def visit(t, cm, tm, _fd, _fs, width=width):
            x = cm[4] + tm[4] * cm[0]
            if t.strip() and not (0 <= x <= width):
                outside.append((x, t))

        text.append(page.extract_text(visitor_text=visit))
    flat = "".join(unicodedata.normalize("NFKC", " ".join(text)).split())  # ligatures, wrapped lines
    missing = [(t.id, c) for t in tables for c in t.data.columns if "".join(str(c).split()) not in flat]
    assert not missing, missing[:10]
    assert not outside, outside[:10]
