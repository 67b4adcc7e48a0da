"""Efficacy tables of a randomised two-arm study: per-arm summaries and the arm comparison.

Columns: one per randomised arm (TRT01P, TRT01PN order) over the ITT population (ITTFL = Y),
then one column "<experimental> vs <control>" holding the comparison from results.json
``comparison`` (stats/twoarm.py ``compare_arms``): no Total column (ICH E9: efficacy is
compared between randomised arms, a pooled estimate has no meaning there).

Rule
----
Per-arm rows reuse the single-arm builders (``tables/response.py`` ``bor_table``,
``tables/efficacy.py`` ``tte_summary_table``) on each arm's subjects; comparison rows print the
contract's keys: HR (CI) and log-rank p, stratified and unstratified; ORR difference (stratified
Miettinen-Nurminen, MH weights), MH odds ratio (Robins-Breslow-Greenland CI), CMH p without
continuity correction (data contract v2, "Randomised two-arm trials"; docs/randomised.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmtrial.report.model import Table
from mmtrial.stats.survival import KaplanMeier, KMOptions, kaplan_meier
from mmtrial.tables.byarm import Arm, arms_footnote, merge_arm_tables, study_arms
from mmtrial.tables.format import fmt_estimate_ci, fmt_num, fmt_p

#: Labels of the time-to-event parameters in tables and figures.
TTE_LABELS: dict[str, str] = {
    "PFS": "Progression-free survival", "OS": "Overall survival", "DOR": "Duration of response",
    "TTR": "Time to response", "TTNT": "Time to next treatment",
}


def arm_labels(adsl: pd.DataFrame) -> dict[str, str]:
    """ARMCD -> TRT01P label (the comparison keys arms by ARMCD; tables by TRT01P)."""
    if not {"ARMCD", "TRT01P"} <= set(adsl.columns):
        return {}
    d = adsl[["ARMCD", "TRT01P"]].dropna().drop_duplicates("ARMCD")
    return {str(k): str(v) for k, v in zip(d["ARMCD"], d["TRT01P"], strict=True)}


def itt(adsl: pd.DataFrame) -> pd.DataFrame:
    """The ITT population (ITTFL = Y; every subject when ADSL has no ITTFL)."""
    if "ITTFL" not in adsl.columns:
        return adsl
    return adsl.loc[adsl["ITTFL"].astype("string").eq("Y").fillna(False).to_numpy(dtype=bool)]


def comparison_header(comparison: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    e, c = comparison.get("experimental", ""), comparison.get("control", "")
    return f"{labels.get(e, e)} vs {labels.get(c, c)}"


def strata_text(comparison: Mapping[str, Any]) -> str:
    s = list(comparison.get("strata") or [])
    return ", ".join(s) if s else "none"


def _add_comparison_rows(t: Table, rows: Sequence[tuple[str, str, str]], col: str) -> Table:
    """Append (group, label, value) rows whose value is in the comparison column ``col``."""
    data = t.data.copy()
    data[col] = ""
    stub = t.stub or str(data.columns[0])
    extra = pd.DataFrame([{c: "" for c in data.columns} | {stub: lab, col: val} for _, lab, val in rows],
                         columns=data.columns, dtype=object)
    groups = list(t.groups or [""] * len(data)) + [g for g, _, _ in rows]
    t.data = pd.concat([data, extra], ignore_index=True)
    t.groups = groups
    return t


def compute_arm_km(adtte: pd.DataFrame, arms: Sequence[Arm], paramcd: str, *, options: KMOptions,
                   days_per_month: float) -> dict[str, tuple[KaplanMeier, pd.DataFrame]]:
    """Per arm: the KM curve of ``paramcd`` in months and the arm's ADTTE rows (AVAL_DISPLAY = months)."""
    rows = adtte.loc[adtte["PARAMCD"] == paramcd]
    out = {}
    for arm in arms:
        r = rows.loc[rows["USUBJID"].astype(str).isin(arm.subjects)].copy()
        r["AVAL_DISPLAY"] = r["AVAL"].to_numpy(float) / days_per_month
        km = kaplan_meier(r["AVAL_DISPLAY"].to_numpy(float), (r["CNSR"] == 0).to_numpy(), options=options)
        out[arm.label] = (km, r)
    return out


def hr_rows(comparison: Mapping[str, Any], paramcd: str, group: str) -> list[tuple[str, str, str]]:
    """HR (CI) and log-rank p, stratified and unstratified, of one endpoint of ``comparison``."""
    c = comparison.get(paramcd) or {}
    if "hr" not in c:
        return [(group, "Hazard ratio", str(c.get("unavailable", "not computed")))]
    lvl = f"{float(c.get('level', 0.95)) * 100:g}%"
    u = c.get("unstratified") or {}
    strat = "stratified" if c.get("stratified") else "unstratified"
    rows = [(group, f"Hazard ratio ({lvl} CI), {strat} Cox", fmt_estimate_ci(c["hr"], tuple(c["hr_ci"]), 2)),
            (group, f"Log-rank p ({strat})", fmt_p(c.get("p_logrank")))]
    if c.get("stratified") and u:
        rows += [(group, f"Hazard ratio ({lvl} CI), unstratified Cox",
                  fmt_estimate_ci(u.get("hr"), tuple(u.get("hr_ci") or (None, None)), 2)),
                 (group, "Log-rank p (unstratified)", fmt_p(u.get("p_logrank")))]
    return rows


def table_tte_by_arm(adtte: pd.DataFrame, adsl: pd.DataFrame, comparison: Mapping[str, Any], *,
                     params: Sequence[str], options: KMOptions, days_per_month: float,
                     landmarks: Sequence[float], quantiles: Sequence[float] = (0.5,),
                     footnotes: Sequence[str] = (), table_id: str = "TTET01") -> Table | None:
    """Time-to-event endpoints by randomised arm (ITT) with HR, log-rank p, medians, landmark rates."""
    arms = study_arms(itt(adsl), "efficacy")
    if len(arms) < 2:
        return None
    from mmtrial.tables.efficacy import tte_summary_table

    built = []
    codes = [p for p in params if (adtte["PARAMCD"] == p).any()]
    if not codes:
        return None
    kms = {p: compute_arm_km(adtte, arms, p, options=options, days_per_month=days_per_month) for p in codes}
    for arm in arms:
        eps = {p: (TTE_LABELS.get(p, p), *kms[p][arm.label]) for p in codes}
        built.append((arm, tte_summary_table(eps, landmarks=landmarks, quantiles=quantiles, table_id=table_id)))
    pooled = tte_summary_table({p: (TTE_LABELS.get(p, p), *_pooled(kms[p], options)) for p in codes},
                               landmarks=landmarks, quantiles=quantiles, table_id=table_id)
    t = merge_arm_tables(pooled, built, total_n=None,
                         footnote=arms_footnote("efficacy", arms, False))
    labels = arm_labels(adsl)
    col = comparison_header(comparison, labels)
    rows = [r for p in codes if p in comparison for r in hr_rows(comparison, p, TTE_LABELS.get(p, p))]
    t = _add_comparison_rows(t, rows, col)
    # keep each endpoint's comparison rows inside its block: stable sort by the endpoint's first row
    order = {g: i for i, g in enumerate(dict.fromkeys(t.groups or []))}
    pos = np.argsort([order[g] for g in t.groups], kind="stable")
    t.data = t.data.iloc[pos].reset_index(drop=True)
    moved = {int(old): new for new, old in enumerate(pos)}
    t.groups = [t.groups[i] for i in pos]
    t.cell_subjects = {(moved[r], c): s for (r, c), s in t.cell_subjects.items()}
    t.title = "Time-to-event endpoints by randomised arm"
    t.population = "Intent-to-treat population"
    t.footnotes = [*footnotes, *t.footnotes[-2:]]
    return t


def _pooled(per_arm: Mapping[str, tuple[KaplanMeier, pd.DataFrame]], options: KMOptions):
    """The row skeleton of the merged table: all arms' rows together (its values are not shown)."""
    r = pd.concat([v[1] for v in per_arm.values()], ignore_index=True)
    km = kaplan_meier(r["AVAL_DISPLAY"].to_numpy(float), (r["CNSR"] == 0).to_numpy(), options=options)
    return km, r


def table_response_by_arm(adsl: pd.DataFrame, comparison: Mapping[str, Any], *, method: str, level: float,
                          footnotes: Sequence[str] = (), table_id: str = "rsp01-bor") -> Table | None:
    """Best overall response by randomised arm (ITT) with the ORR comparison rows."""
    from mmtrial.tables.response import bor_table, compute_response_summary

    pop = itt(adsl)
    arms = study_arms(pop, "efficacy")
    if len(arms) < 2 or "BOR" not in pop.columns:
        return None
    whole = pop.assign(EFFFL="Y")  # ORR over the ITT population (every randomised subject)
    built = []
    for arm in arms:
        s = compute_response_summary(whole.loc[whole["USUBJID"].astype(str).isin(arm.subjects)],
                                     method=method, level=level)
        built.append((arm, bor_table(s, footnotes=[], population="", table_id=table_id)))
    skel = bor_table(compute_response_summary(whole, method=method, level=level), footnotes=[], population="",
                     table_id=table_id)
    t = merge_arm_tables(skel, built, total_n=None, footnote=arms_footnote("efficacy", arms, False))
    labels = arm_labels(adsl)
    col = comparison_header(comparison, labels)
    o = comparison.get("ORR") or {}
    g = "Comparison of overall response"
    if "difference" in o:
        lvl = f"{float(o.get('level', level)) * 100:g}%"
        u = o.get("unstratified") or {}
        st = "stratified" if o.get("stratified") else "unstratified"
        rows = [(g, f"Difference in ORR, % ({lvl} CI), {st} Miettinen-Nurminen",
                 fmt_estimate_ci(o["difference"], tuple(o["difference_ci"]), 1, 100)),
                (g, f"Odds ratio ({lvl} CI), {'Mantel-Haenszel' if o.get('stratified') else 'unstratified'}",
                 fmt_estimate_ci(o["odds_ratio"], tuple(o["odds_ratio_ci"]), 2)),
                (g, f"p-value ({'CMH' if o.get('stratified') else 'chi-square'}, no continuity correction)",
                 fmt_p(o.get("p")))]
        if o.get("stratified") and u:
            rows += [(g, f"Difference in ORR, % ({lvl} CI), unstratified Miettinen-Nurminen",
                      fmt_estimate_ci(u.get("difference"), tuple(u.get("difference_ci") or (None, None)), 1, 100)),
                     (g, f"Odds ratio ({lvl} CI), unstratified",
                      fmt_estimate_ci(u.get("odds_ratio"), tuple(u.get("odds_ratio_ci") or (None, None)), 2)),
                     (g, f"p-value (unstratified, {u.get('p_method', 'score test')})", fmt_p(u.get("p")))]
    else:
        rows = [(g, "ORR comparison", str(o.get("unavailable", "not computed")))]
    t = _add_comparison_rows(t, rows, col)
    t.title = "Best overall response by randomised arm"
    t.population = "Intent-to-treat population"
    t.footnotes = [*footnotes, t.footnotes[-1]]
    t.source = "ADSL (ITTFL, TRT01P, BOR, RSPFL); results.json comparison.ORR"
    return t


def table_comparison_summary(comparison: Mapping[str, Any], labels: Mapping[str, str], *,
                             footnotes: Sequence[str] = ()) -> Table:
    """One row per comparison (PFS, OS, ORR): stratified and unstratified estimate with CI and p."""
    rows = []
    for p in ("PFS", "OS"):
        c = comparison.get(p) or {}
        if "hr" not in c:
            continue
        u = c.get("unstratified") or {}
        med = c.get("median") or {}
        ev = c.get("events") or {}
        arms = [comparison.get("experimental"), comparison.get("control")]
        rows.append({
            "Endpoint": f"{TTE_LABELS.get(p, p)}: hazard ratio",
            "Events": "; ".join(f"{labels.get(a, a)} {ev.get(a, 'NE')}" for a in arms),
            "Median, months": "; ".join(f"{labels.get(a, a)} {fmt_num(med.get(a), 2)}" for a in arms),
            "Stratified (95% CI); p": f"{fmt_estimate_ci(c['hr'], tuple(c['hr_ci']), 2)}; {fmt_p(c.get('p_logrank'))}"
            if c.get("stratified") else "not stratified",
            "Unstratified (95% CI); p": f"{fmt_estimate_ci(u.get('hr'), tuple(u.get('hr_ci') or (None, None)), 2)}; "
                                        f"{fmt_p(u.get('p_logrank'))}" if u else "",
        })
    o = comparison.get("ORR") or {}
    if "difference" in o:
        u = o.get("unstratified") or {}
        arms = [comparison.get("experimental"), comparison.get("control")]
        x, n = o.get("x") or {}, o.get("n") or {}
        rows.append({
            "Endpoint": "Overall response: difference, %",
            "Events": "; ".join(f"{labels.get(a, a)} {x.get(a)}/{n.get(a)}" for a in arms),
            "Median, months": "",
            "Stratified (95% CI); p": f"{fmt_estimate_ci(o['difference'], tuple(o['difference_ci']), 1, 100)}; "
                                      f"{fmt_p(o.get('p'))}" if o.get("stratified") else "not stratified",
            "Unstratified (95% CI); p": f"{fmt_estimate_ci(u.get('difference'), tuple(u.get('difference_ci') or (None, None)), 1, 100)}; "
                                        f"{fmt_p(u.get('p'))}" if u else "",
        })
        rows.append({
            "Endpoint": "Overall response: odds ratio",
            "Events": "", "Median, months": "",
            "Stratified (95% CI); p": fmt_estimate_ci(o["odds_ratio"], tuple(o["odds_ratio_ci"]), 2)
            if o.get("stratified") else "not stratified",
            "Unstratified (95% CI); p": fmt_estimate_ci(u.get("odds_ratio"), tuple(u.get("odds_ratio_ci") or (None, None)), 2)
            if u else "",
        })
    cols = ["Endpoint", "Events", "Median, months", "Stratified (95% CI); p", "Unstratified (95% CI); p"]
    e, c = comparison.get("experimental", ""), comparison.get("control", "")
    return Table(id="CMP01", title=f"Comparison of {labels.get(e, e)} with {labels.get(c, c)}",
                 data=pd.DataFrame(rows, columns=cols), footnotes=list(footnotes),
                 population="Intent-to-treat population", source="results.json comparison", stub="Endpoint")


def table_subgroup_hr(subgroups: Sequence[Mapping[str, Any]], *, footnotes: Sequence[str] = ()) -> Table:
    """PFS hazard ratio by subgroup (the forest plot's numbers) with the interaction p."""
    rows, ne = [], []
    for s in subgroups:
        if s.get("not_estimable"):
            ne.append(f"{s.get('subgroup', '')}: {s.get('level', '')}: {s['not_estimable']}")
        ci = tuple(s.get("hr_ci") or (None, None))
        rows.append({"Subgroup": str(s.get("subgroup", "")), "Level": str(s.get("level", "")),
                     "n": str(s.get("n", "")), "Events": str(s.get("events", "")),
                     "HR (95% CI)": fmt_estimate_ci(s.get("hr"), ci, 2),
                     "Interaction p": fmt_p(s.get("p_interaction"))})
    return Table(id="CMP-SUBGROUP", title="Progression-free survival hazard ratio by subgroup",
                 data=pd.DataFrame(rows, columns=["Subgroup", "Level", "n", "Events", "HR (95% CI)", "Interaction p"]),
                 footnotes=list(footnotes) + ([f"NE: hazard ratio not estimable ({'; '.join(ne)})."] if ne else []),
                 population="Intent-to-treat population",
                 source="results.json comparison.subgroups_PFS", stub="Subgroup")


def table_rpsftm(r: Mapping[str, Any], *, footnotes: Sequence[str] = ()) -> Table:
    """The crossover-adjusted OS analysis (RPSFTM): psi, acceleration factor, adjusted and ITT HR."""
    lvl = f"{float(r.get('level', 0.95)) * 100:g}%"
    rows = [
        ("Control patients who switched", str(r.get("n_switchers", "NE"))),
        (f"psi ({lvl} CI)", fmt_estimate_ci(r.get("psi"), tuple(r.get("psi_ci") or (None, None)), 3)),
        (f"Acceleration factor exp(-psi) ({lvl} CI)",
         fmt_estimate_ci(r.get("acceleration_factor"), tuple(r.get("acceleration_factor_ci") or (None, None)), 2)),
        (f"Crossover-adjusted hazard ratio ({lvl} CI, test-based)",
         fmt_estimate_ci(r.get("hr_adjusted"), tuple(r.get("hr_adjusted_ci") or (None, None)), 2)),
        ("ITT hazard ratio (for reference)", fmt_num(r.get("hr_itt"), 2)),
        ("ITT log-rank p (kept by the test-based CI)", fmt_p(r.get("p_itt"))),
        ("Recensoring", "yes (White et al. 1999)" if r.get("recensoring") else "no"),
        ("Time on experimental treatment", str(r.get("treatment_time", ""))),
    ]
    return Table(id="CMP-RPSFTM", title="Sensitivity analysis (crossover-adjusted): overall survival by RPSFTM",
                 data=pd.DataFrame(rows, columns=["Statistic", "Value"]), footnotes=list(footnotes),
                 population="Intent-to-treat population", source="results.json comparison.OS_rpsftm",
                 stub="Statistic")
