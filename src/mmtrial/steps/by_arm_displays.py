"""By-arm versions of the displays that ``steps/by_arm.py`` does not rebuild from a recipe (issue 13).

A randomised study's report shows each display by arm or says, in the display's footnote, why it
is pooled (docs/randomised.md "The report by arm"). This module builds:

* **disposition** (DST01) over the ITT population by randomised arm, randomised-not-treated
  counted (ICH E3 section 10.1; TLG catalog DST01);
* **laboratory values over time** (LBT01-TIME) one column per actual treatment with a Total,
  and its figure with one line per arm (safety population, TRT01A);
* **spider and swimmer plots** (efficacy: TRT01P) and the **dose-level swimmer plot** (safety:
  TRT01A, the arm's own study drug): one figure per arm;
* **OS by response** (TTE02 and the landmark KM plot) within each randomised arm: response is
  a post-randomisation outcome, so pooling the arms would mix the treatment effect into it;
* **time to response** (RSP02) by randomised arm;
* **ORR by subgroup**: per-arm ORR and the ORR difference (Miettinen-Nurminen) by subgroup, the
  subgroups of the PFS forest plot (steps/comparison.py ``compute_subgroup_levels``), with a
  forest plot of the difference;
* the **exact binomial test** of the ORR against a null rate: a single-arm design's test. Only
  when the protocol sets ``[tte] binomial_null`` explicitly is it shown, for the experimental
  arm (the null rate is a historical-control rate for the experimental regimen); otherwise it
  is left out with a note saying why.

Displays still pooled (each with its reason in its footnote, :data:`POOLED_REASONS`): the
biomarker model (prognostic, fitted on all patients), the concordance of the derived response
with the independent assessor (a check of the derivation), the dose-rule table and listing of
the study drug's label rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmtrial.context import Analysis
from mmtrial.report.model import Figure, Table, Text
from mmtrial.tables.byarm import Arm, rebuild_by_arm, study_arms
from mmtrial.tables.format import fmt_estimate_ci, fmt_pct

if TYPE_CHECKING:
    from mmtrial.steps.comparison import ComparisonOptions

#: Displays deliberately left pooled in a randomised study's report, with the reason printed in
#: their footnote (the by-arm allow-list; tests/report/test_by_arm_displays.py).
POOLED_REASONS: dict[str, str] = {
    "biomarker": "Pooled over the arms by design: an exploratory prognostic model of response on baseline "
                 "markers fitted on all patients of the efficacy population (arm is not a covariate); one arm "
                 "alone would halve its sample, and a treatment-by-marker (predictive) analysis is not part of it.",
    "rsp-concordance": "Pooled over the arms by design: agreement of the derived IMWG response with the "
                       "independent assessor checks the derivation, not the treatment; it does not depend on the arm.",
    "EX-RULES": "Not split by arm: the dose-modification rules are the study drug's label rules "
                "(data/dose_rules.toml); they govern only patients who receive that drug, and the percentages "
                "use the whole safety population.",
}


def pooled_reason(block_id: str) -> str | None:
    """The documented reason a display stays pooled, by block id (prefix match for id families)."""
    if block_id in POOLED_REASONS:
        return POOLED_REASONS[block_id]
    for k, v in POOLED_REASONS.items():
        if block_id.startswith(k + "-"):
            return v
    return None


def _subset(df: pd.DataFrame | None, arm: Arm) -> pd.DataFrame | None:
    if df is None or "USUBJID" not in df.columns:
        return df
    return df.loc[df["USUBJID"].astype(str).isin(arm.subjects)]


def _y(df: pd.DataFrame, var: str) -> np.ndarray:
    if var not in df.columns:
        return np.zeros(len(df), dtype=bool)
    return df[var].astype("string").str.upper().eq("Y").fillna(False).to_numpy(dtype=bool)


# --- disposition ------------------------------------------------------------------------------

def disposition_by_arm(adsl: pd.DataFrame, footnotes: list[str]) -> Table | None:
    """DST01 over the ITT population by randomised arm, with a Total column (None without ITTFL)."""
    if "ITTFL" not in adsl.columns:
        return None
    from mmtrial.tables.safety import table_disposition_randomised

    return rebuild_by_arm(table_disposition_randomised(adsl, footnotes=footnotes), adsl)


# --- laboratory values over time --------------------------------------------------------------

def labs_over_time_by_arm(adlb: pd.DataFrame, adsl: pd.DataFrame) -> tuple[Table | None, Figure | None]:
    """LBT01-TIME by actual treatment (a Total column) and the figure with one line per arm."""
    from mmtrial.figures import csr_more as fm
    from mmtrial.figures.svg import figure_to_svg
    from mmtrial.steps.csr_displays import LAB_TIME_NAMES
    from mmtrial.tables.csr_more import compute_lab_by_visit, table_lab_by_visit_long

    arms = study_arms(adsl, "safety")
    t = rebuild_by_arm(table_lab_by_visit_long(adlb, adsl, LAB_TIME_NAMES), adsl)
    frames = {a.header: compute_lab_by_visit(_subset(adlb, a), _subset(adsl, a)) for a in arms}
    frames = {k: v for k, v in frames.items() if len(v)}
    if not frames:
        return t, None
    alt = ("Median and interquartile range of platelets, neutrophils, haemoglobin, sodium and creatinine by "
           "analysis visit, one panel per test, one line per arm (" + "; ".join(frames) + ").")
    fig = Figure(id="labs-over-time", title="Laboratory values over time by treatment arm: median and "
                 "interquartile range by visit", alt=alt,
                 svg=figure_to_svg(fm.plot_lab_over_time_by_arm(frames, LAB_TIME_NAMES), alt, close=False),
                 footnotes=["Line: median; band: first to third quartile (SAS QNTLDEF=5); per arm, visits with "
                            "at least 5 values of the arm's patients.",
                            "Population: safety population by actual treatment (TRT01A)."])
    return t, fig


# --- one figure per arm -----------------------------------------------------------------------

def spider_swimmer_by_arm(adsl: pd.DataFrame, adrs: pd.DataFrame | None) -> dict[str, list[Figure]]:
    """The spider plot and the swimmer plot of responders, one figure per randomised arm (the
    pooled figures' builders, steps/csr_displays.py, on each arm's patients)."""
    from mmtrial.steps.csr_displays import spider_figure, swimmer_response_figure

    out: dict[str, list[Figure]] = {"spider": [], "swimmer-response": []}
    if "EFFFL" not in adsl.columns:
        return out
    for k, arm in enumerate(study_arms(adsl, "efficacy"), start=1):
        sub = _subset(adsl, arm)
        figs = {}
        if adrs is not None and {"PCHG", "ANL01FL", "ADY"} <= set(adrs.columns):
            figs["spider"] = spider_figure(
                adrs, sub, fig_id=f"spider-arm{k}",
                title=f"Change from baseline in the myeloma marker over time: {arm.label}",
                alt_lead=f"{arm.label}: spider plot of the ",
                population=f"Population: efficacy patients of the arm {arm.label} (TRT01P) with a post-baseline value.")
        if "BOR" in sub.columns:
            figs["swimmer-response"] = swimmer_response_figure(
                sub, fig_id=f"swimmer-response-arm{k}",
                title=f"Time on treatment of responders (MR or better): {arm.label}",
                alt_lead=f"{arm.label}: swimmer plot of ",
                population=f"Population: efficacy patients of the arm {arm.label} (TRT01P) with a best response "
                           "of MR or better.")
        for key, fig in figs.items():
            if fig is not None:
                out[key].append(fig)
    return out


def dose_swimmer_by_arm(a: Analysis, max_subjects: int) -> list[Figure]:
    """The dose-level swimmer plot per actual treatment arm, each of its arm's study drug."""
    from mmtrial.figures.swimmer import compute_swimmer_data, plot_swimmer

    adsl, adexlvl = a.adam["adsl"], a.adam.get("adexlvl")
    if adexlvl is None or "ACTARMCD" not in adsl.columns:
        return []
    p = a.protocol
    out = []
    for k, arm in enumerate(study_arms(adsl, "safety"), start=1):
        sub = _subset(adsl, arm)
        code = sub["ACTARMCD"].astype("string").dropna()
        if code.empty:
            continue
        reg = p.regimen_for(str(code.iloc[0]))
        drug = str(getattr(reg, "study_drug", None) or p.study.drug).upper()
        lvl = _subset(adexlvl, arm)
        if "EXTRT" in lvl.columns and not lvl["EXTRT"].astype("string").str.upper().eq(drug).any():
            continue
        seg, marks = compute_swimmer_data(lvl, sub, study_drug=drug, adae=_subset(a.adam.get("adae"), arm),
                                          adrs=_subset(a.adam.get("adrs"), arm), max_subjects=max_subjects)
        if not len(seg):
            continue
        ladder = p.ladders.get(drug)
        labels = {x.level: x.label for x in ladder.levels} if ladder is not None else {}
        n_lanes = seg["USUBJID"].nunique()
        alt = (f"{arm.label}: swimmer plot of {n_lanes} patients: bars show weeks on {drug.title()} coloured by dose "
               "level, gaps are interruptions; markers show grade 3 or higher adverse events, first response of PR "
               "or better, progression and death.")
        out.append(Figure(id=f"mmtrial-F02-arm{k}", title=f"{drug.title()} dose level over time (swimmer plot): "
                          f"{arm.label}", alt=alt, svg=plot_swimmer(seg, marks, ladder_labels=labels),
                          footnotes=[f"Up to {max_subjects} patients of the arm {arm.label} (actual treatment, "
                                     "TRT01A) shown (responders first, then the longest treated), ordered by "
                                     "duration.", *([] if labels else [f"The protocol gives no dose ladder for {drug.title()} "
                                                                        f"([dose_ladder.{drug}]): the bars show time on "
                                                                        "the drug and its interruptions; reduced doses "
                                                                        "are not placed on ladder levels."])]))
    return out


# --- OS by response within each arm -----------------------------------------------------------

def os_by_response_by_arm(a: Analysis, adsl: pd.DataFrame, adtte: pd.DataFrame) -> list:
    """TTE02 and the landmark KM plot within each randomised arm (ITT), response time measured from
    the OS origin of ADTTE (STARTDT, the randomisation date), so both clocks start together."""
    from mmtrial.figures.km import km_svg, km_ylabel
    from mmtrial.steps.by_arm import _tte_config
    from mmtrial.steps.tte import _profile, compute_os_by_response
    from mmtrial.tables.efficacy import os_by_response_table

    cfg, opts = _tte_config(a)
    flag, rdate = cfg.os_by_response_flag, cfg.os_by_response_date
    os_ = adtte.loc[adtte["PARAMCD"] == "OS"]
    if os_.empty or not {flag, rdate}.issubset(adsl.columns) or "STARTDT" not in os_.columns:
        return []
    ties = cfg.cox_ties or ("breslow" if _profile(a, cfg) == "sas" else "efron")
    L = cfg.os_by_response_landmark_months
    out: list = []
    for k, arm in enumerate(study_arms(adsl, "efficacy"), start=1):
        d = _subset(os_, arm).merge(adsl[["USUBJID", flag, rdate]], on="USUBJID", how="left")
        if d.empty:
            continue
        naive, land, mb, tdc = compute_os_by_response(d, "STARTDT", cfg, opts, ties)
        arm_note = (f"Arm {arm.label} (randomised arm TRT01P, intent-to-treat population): OS by response within "
                    "the arm; the arms are not pooled because response is an outcome of the randomised treatment.")
        ne = [f"NE ({name}): {res.reason}." for name, res in (("naive HR", naive.cox), ("landmark HR", land.cox),
                                                              ("time-dependent HR", tdc), ("Mantel-Byar", mb))
              if getattr(res, "reason", None)]
        tab = os_by_response_table([naive, land], mantel_byar=mb, td_cox=tdc, scale=1.0, footnotes=[
            arm_note, *ne,
            "Guarantee-time (immortal-time) bias: the naive row favours responders (Anderson, Cain & Gelber, "
            "J Clin Oncol 1983); the landmark and time-dependent analyses avoid it.",
            f"Responder: {flag} = Y; time to response from the OS origin (STARTDT, randomisation); landmark "
            f"{L:g} months. Cox models: Wald CI; ties {ties.capitalize()}.", opts.describe()])
        tab.id, tab.title = f"TTE02-arm{k}", f"{tab.title}: {arm.label}"
        out.append(tab)
        if land.groups:
            alt = (f"{arm.label}: Kaplan-Meier curves of overall survival from the {L:g}-month landmark for "
                   "responders and non-responders at the landmark, with number at risk.")
            out.append(Figure(id=f"km-os-landmark-arm{k}",
                              title=f"Overall survival by response at the {L:g}-month landmark: {arm.label}",
                              alt=alt, svg=km_svg(land.groups, alt, xlabel="Months from landmark",
                                                  ylabel=km_ylabel("OS")),
                              footnotes=[arm_note, opts.describe()]))
    return out


# --- time to response by arm ------------------------------------------------------------------------

def ttr_by_arm(a: Analysis, adsl: pd.DataFrame, adtte: pd.DataFrame, pooled: Table | None) -> Table | None:
    """RSP02 (time to response among responders) with one column per randomised arm, no Total
    (an efficacy display of a randomised study: tables/comparison.py)."""
    from mmtrial.stats.survival import kaplan_meier
    from mmtrial.steps.by_arm import _tte_config
    from mmtrial.tables.byarm import arms_footnote, merge_arm_tables
    from mmtrial.tables.efficacy import ttr_table

    if pooled is None:
        return None
    cfg, opts = _tte_config(a)
    ttr = adtte.loc[adtte["PARAMCD"] == "TTR"]
    arms = study_arms(adsl, "efficacy")
    built = []
    for arm in arms:
        d = _subset(ttr, arm)
        km = kaplan_meier(d["AVAL"].to_numpy(float) / cfg.days_per_month, (d["CNSR"] == 0).to_numpy(),
                          options=opts)
        built.append((arm, ttr_table(km, d, days_per_month=cfg.days_per_month, footnotes=[opts.describe()])))
    return merge_arm_tables(pooled, built, total_n=None, footnote=arms_footnote("efficacy", arms, False))


# --- ORR by subgroup: per arm and the difference --------------------------------------------------

def compute_orr_subgroups_by_arm(adsl: pd.DataFrame, experimental: str, strata: list[str], *,
                                 labels: dict[str, str] | None = None, level: float = 0.95,
                                 opts: ComparisonOptions | None = None) -> list[dict[str, Any]]:
    """Per subgroup level (the PFS forest plot's subgroups), ITT population: responders / n per arm
    and the ORR difference (experimental - control) with the unstratified Miettinen-Nurminen score
    interval (:func:`mmtrial.stats.twoarm.compute_mn_risk_difference`). Responder: RSPFL = Y, as
    results.json ``comparison.ORR``. ``opts``: the protocol's ``[forest]`` subgroups (defaults
    when None)."""
    from mmtrial.stats.twoarm import compute_mn_risk_difference
    from mmtrial.steps.comparison import ComparisonOptions, compute_subgroup_levels

    itt = adsl.loc[_y(adsl, "ITTFL")] if "ITTFL" in adsl.columns else adsl
    g = itt["ARMCD"].astype("string").str.upper().eq(experimental.upper()).fillna(False).to_numpy(dtype=bool)
    r = _y(itt, "RSPFL")
    subgroups = [("ALL", "All patients", pd.Series("All", index=itt.index, dtype="string"))]
    subgroups += compute_subgroup_levels(itt, strata, opts or ComparisonOptions(), labels)
    rows = []
    for var, name, lv in subgroups:
        tab = pd.DataFrame({"L": lv.astype(object), "G": g, "R": r}).dropna(subset=["L"])
        agg = tab.groupby(["L", "G"])["R"].agg(["sum", "size"]).unstack("G", fill_value=0)
        for level_value in sorted(agg.index, key=str):
            x1, n1 = (int(agg.at[level_value, (c, True)]) if (c, True) in agg.columns else 0 for c in ("sum", "size"))
            x0, n0 = (int(agg.at[level_value, (c, False)]) if (c, False) in agg.columns else 0 for c in ("sum", "size"))
            row = {"subgroup": name, "variable": var, "level": str(level_value), "x": [x1, x0], "n": [n1, n0],
                   "difference": None, "difference_ci": [None, None]}
            if n1 and n0:
                rd = compute_mn_risk_difference(x1, n1, x0, n0, level=level)
                row["difference"], row["difference_ci"] = float(rd.estimate), [float(rd.ci[0]), float(rd.ci[1])]
            rows.append(row)
    return rows


def orr_subgroup_displays(rows: list[dict[str, Any]], labels: tuple[str, str], level: float) -> list:
    """ONCT05 by arm (responders / n (%) per arm, the difference with its CI) and its forest plot."""
    from mmtrial.figures.forest import forest_difference_figure
    from mmtrial.figures.svg import figure_to_svg

    if not rows:
        return []
    e, c = labels
    lv = f"{level * 100:g}%"
    diff_col = f"Difference, % ({lv} CI)"
    data = pd.DataFrame([{"Subgroup": r["subgroup"], "Level": r["level"],
                          f"{e}: responders/n (%)": _x_of_n(r, 0),
                          f"{c}: responders/n (%)": _x_of_n(r, 1),
                          diff_col: (fmt_estimate_ci(r["difference"], tuple(r["difference_ci"]), 1, 100)
                                     if r["difference"] is not None else "NE")} for r in rows])
    notes = [f"Intent-to-treat population by randomised arm (TRT01P); responder: RSPFL = Y (confirmed PR or "
             f"better, IMWG). Difference: {e} - {c}, unstratified Miettinen-Nurminen score interval "
             "(Miettinen & Nurminen 1985); NE when an arm has no patient in the level.",
             "Subgroups: those of the PFS hazard-ratio forest plot (randomisation strata, age, sex, cytogenetic "
             "risk, prior lines, refractory status); exploratory, no multiplicity adjustment."]
    t = Table(id="ONCT05", title="Overall response rate by subgroup and randomised arm", data=data, footnotes=notes,
              population="Intent-to-treat population", source="ADSL (ITTFL, TRT01P, ARMCD, RSPFL, subgroup variables)",
              stub="Subgroup")
    frows = [{"label": f"{r['subgroup']}: {r['level']}" if r["variable"] != "ALL" else "All patients",
              "n": sum(r["n"]), "counts": f"{r['x'][0]}/{r['n'][0]} vs {r['x'][1]}/{r['n'][1]}",
              "estimate": r["difference"], "ci": r["difference_ci"]} for r in rows]
    alt = ("Forest plot of the difference in overall response rate (" + f"{e} - {c}" + ") by subgroup: "
           + "; ".join(f"{f['label']} {f['counts']}, " + (fmt_estimate_ci(f['estimate'], tuple(f['ci']), 1, 100)
                                                          if f["estimate"] is not None else "NE") for f in frows) + ".")
    fig = Figure(id="forest-orr", title="Difference in overall response rate by subgroup", alt=alt,
                 svg=figure_to_svg(forest_difference_figure(frows, overall=rows[0]["difference"], favours=(e, c)), alt),
                 footnotes=notes)
    return [t, fig]


def _x_of_n(r: dict[str, Any], i: int) -> str:
    """``40/52 (76.9)``: responders / n (%) of arm ``i`` (0 experimental, 1 control)."""
    x, n = r["x"][i], r["n"][i]
    return f"{x}/{n} ({fmt_pct(x, n)})" if n else "0/0"


# --- the exact binomial test ------------------------------------------------------------------------

def binomial_test_by_arm(a: Analysis, adsl: pd.DataFrame, experimental: str, label: str) -> list:
    """The protocol's exact binomial test of the ORR on the experimental arm, or a note why it is omitted.

    Rule: the test compares one arm's ORR with a fixed null rate (a single-arm design, e.g. STORM
    H0: ORR <= 10%). In a randomised study ORR is compared between the arms (CMH, the comparison
    table). The test is kept only when the protocol states its null rate (``[tte] binomial_null``),
    and then for the experimental arm (ITT), whose regimen the null rate was set for.
    """
    from mmtrial.stats.proportion import compute_binomial_test
    from mmtrial.steps.tte import TteConfig, tte_section
    from mmtrial.tables.efficacy import binomial_test_table

    raw = tte_section(a)
    if "binomial_null" not in raw:
        a.results["binomial_test"] = {"not_applicable": "randomised study: ORR is compared between the arms "
                                                        "(comparison.ORR); the protocol sets no [tte] binomial_null"}
        return [Text("Exact binomial test of the ORR against a null rate: not done. It is a single-arm design's "
                     "test and this randomised protocol sets no null rate ([tte] binomial_null); the ORR is "
                     "compared between the randomised arms (Cochran-Mantel-Haenszel test, table rsp01-bor and "
                     "the comparison section).")]
    cfg = TteConfig.model_validate(raw)
    itt = adsl.loc[_y(adsl, "ITTFL")] if "ITTFL" in adsl.columns else adsl
    arm = itt.loc[itt["ARMCD"].astype("string").str.upper().eq(experimental.upper()).fillna(False).to_numpy(dtype=bool)]
    x, n = int(_y(arm, "RSPFL").sum()), len(arm)
    if not n:
        return []
    bt = compute_binomial_test(x, n, cfg.binomial_null, alpha=cfg.binomial_alpha,
                               alternatives=tuple(cfg.binomial_alternatives))
    a.results["binomial_test"] = {**bt.as_dict(), "design_source": cfg.binomial_design_source,
                                  "population": f"experimental arm {experimental} (ITT)"}
    t = binomial_test_table(bt, design_source=cfg.binomial_design_source, footnotes=[
        f"Experimental arm only ({label}, intent-to-treat population, responder RSPFL = Y): the protocol's null "
        "rate ([tte] binomial_null) is a rate for the experimental regimen; the control arm is compared with it "
        "by the randomised comparison, not by this test."])
    t.title = f"{t.title}: {label}"
    return [t]
