"""Step ``by_arm`` (last): a randomised study's report by arm (issue 13); nothing for one arm.

When ADSL's planned arm (TRT01P) has two or more values:

* every table built by a ``tables/`` builder marked :func:`~mmtrial.tables.byarm.by_arm` is
  rebuilt with one column per arm and a Total column (safety tables by TRT01A over SAFFL,
  baseline by TRT01P), in TRT01PN / TRT01AN order;
* the efficacy tables become by randomised arm over the ITT population with the comparison rows
  of results.json ``comparison`` (best overall response with the ORR difference, odds ratio and
  p; time-to-event endpoints with HR and log-rank p, medians, landmark rates), and the KM plots
  get one curve per arm with the number at risk per arm and the HR (CI) and log-rank p printed;
* a "Comparison of the randomised arms" section (summary table, methods, forest plot of the PFS
  hazard ratio by subgroup with interaction p) and, when ``comparison.OS_rpsftm`` is present, a
  section "Sensitivity analysis (crossover-adjusted)";
* any other table or figure says "all arms pooled".

The method choices printed in the footnotes (ties, strata, sidedness, Miettinen-Nurminen
weights, CMH without continuity correction, recensoring) are read from results.json
``comparison`` as stats/twoarm.py wrote it, and from the protocol's ``[randomisation]``.
"""

from __future__ import annotations

from typing import Any

from mmtrial.context import Analysis
from mmtrial.report.model import Figure, Listing, Section, Table, Text
from mmtrial.tables.byarm import ArmSplit, is_multi_arm, rebuild_by_arm, study_arms
from mmtrial.tables.format import fmt_estimate_ci, fmt_p

#: Report position of the new sections (report/render.py SECTION_ORDER: response 40, tte 45).
COMPARISON_ORDER = 46
SENSITIVITY_ORDER = 47
COMPARISON_SECTION_ID = "comparison"
SENSITIVITY_SECTION_ID = "sensitivity-crossover"

#: Tables that describe rules, not subjects: no "pooled" note.
_NOT_DATA = {"TTERULES", "populations", "not-computable"}
POOLED_NOTE = "All arms pooled (this display is not split by arm)."


def _tte_config(a: Analysis):
    from mmtrial.stats.survival import km_options
    from mmtrial.steps.tte import TteConfig, _profile

    cfg = TteConfig.model_validate(a.protocol.section("tte"))
    over = {k: v for k, v in (("ci_transform", cfg.ci_transform), ("median_rule", cfg.median_rule)) if v is not None}
    if cfg.level != 0.95:
        over["level"] = cfg.level
    return cfg, km_options(_profile(a, cfg), **over)


def sidedness(a: Analysis, comparison: dict[str, Any]) -> str:
    """"two-sided" / "one-sided": results.json ``comparison.sided`` if given, else the protocol's."""
    sided = comparison.get("sided")
    if sided is None:
        rnd = getattr(a.protocol, "randomisation", None)
        sided = getattr(rnd, "sided", 2) if rnd is not None else 2
    return "one-sided" if int(sided) == 1 else "two-sided"


def method_notes(a: Analysis, comparison: dict[str, Any]) -> list[str]:
    """Each comparison method choice in words (printed under the comparison tables)."""
    strata = ", ".join(comparison.get("strata") or []) or "none"
    pfs = comparison.get("PFS") or comparison.get("OS") or {}
    ties = pfs.get("ties", "breslow")
    level = float(pfs.get("level", (comparison.get("ORR") or {}).get("level", 0.95)))
    orr = comparison.get("ORR") or {}
    notes = [
        f"Randomised comparison {comparison.get('experimental')} (experimental) vs {comparison.get('control')} "
        f"(control), intent-to-treat population; stratification factors: {strata} (a missing stratum value "
        "is its own stratum).",
        f"Hazard ratio: Cox proportional hazards model, experimental / control, stratified by the randomisation "
        f"strata (separate baseline hazards), ties = {ties} "
        f"({'SAS PHREG default' if ties == 'breslow' else 'R coxph default'}), Wald {level * 100:g}% CI; "
        "the unstratified model is shown beside it.",
        "Log-rank p: stratified log-rank test (hypergeometric variance, O - E summed over strata), "
        "two-sided; unstratified beside it.",
        "Medians: Kaplan-Meier per arm, months = days / 30.4375.",
    ]
    if sidedness(a, comparison) == "one-sided":
        one = {k: (comparison.get(k) or {}).get("p_logrank_one_sided") for k in ("PFS", "OS")}
        shown = "; ".join(f"{k} {fmt_p(v)}" for k, v in one.items() if v is not None)
        notes.append("The protocol specifies a one-sided test ([randomisation] sided = 1); the p-values shown "
                     "are two-sided" + (f"; one-sided log-rank p: {shown}." if shown else
                                        " (one-sided p = half the two-sided p when the HR favours the "
                                        "experimental arm)."))
    if "difference" in orr:
        notes.append(
            f"ORR difference: {'stratified ' if orr.get('stratified') else ''}Miettinen-Nurminen score interval"
            f"{' with ' + str(orr.get('difference_weights', 'mantel-haenszel')) + ' stratum weights' if orr.get('stratified') else ''}"
            " (Miettinen & Nurminen 1985; SAS COMMONRISKDIFF(CL=MNMH); R ratesci::scoreci); odds ratio: "
            "Mantel-Haenszel with the Robins-Breslow-Greenland CI; p: Cochran-Mantel-Haenszel test without "
            "continuity correction (SAS PROC FREQ CMH; R mantelhaen.test(correct = FALSE)).")
    return notes


def rpsftm_notes(r: dict[str, Any]) -> list[str]:
    rec = r.get("recensoring")
    return [
        "Sensitivity analysis, not the primary analysis: overall survival adjusted for control patients "
        "switching to the experimental drug, by the rank-preserving structural failure time model "
        "(Robins & Tsiatis 1991).",
        f"Method: {r.get('method', 'RPSFTM')}. Recensoring: {'applied' if rec else 'not applied'}"
        f"{' (White et al. 1999; NICE DSU TSD 16)' if rec else ''}. Treatment time: {r.get('treatment_time', '')}.",
        "The adjusted hazard ratio's CI is test-based: it keeps the ITT log-rank p-value (Latimer et al. 2014).",
    ]


def _km_annotation(comparison: dict[str, Any], paramcd: str) -> list[str]:
    """The lines printed on a two-arm KM plot: HR (CI) and log-rank p, stratified (and unstratified)."""
    c = comparison.get(paramcd) or {}
    if "hr" not in c:
        return []
    lvl = f"{float(c.get('level', 0.95)) * 100:g}%"
    kind = "stratified" if c.get("stratified") else "unstratified"
    lines = [f"HR ({lvl} CI), {kind}: {fmt_estimate_ci(c['hr'], tuple(c['hr_ci']), 2)}",
             f"Log-rank p, {kind}: {fmt_p(c.get('p_logrank'))}"]
    u = c.get("unstratified") or {}
    if c.get("stratified") and u:
        lines.append(f"Unstratified HR: {fmt_estimate_ci(u.get('hr'), tuple(u.get('hr_ci') or (None, None)), 2)}; "
                     f"p = {fmt_p(u.get('p_logrank'))}")
    return lines


km_annotation = _km_annotation


def km_arm_figures(a: Analysis, comparison: dict[str, Any], codes: list[str]) -> dict[str, Figure]:
    """One KM figure per endpoint with one curve per randomised arm (ITT)."""
    from mmtrial.figures.km import km_svg, km_ylabel
    from mmtrial.tables.comparison import TTE_LABELS, compute_arm_km, itt

    adsl, adtte = a.adam["adsl"], a.adam.get("adtte")
    if adtte is None:
        return {}
    cfg, opts = _tte_config(a)
    arms = study_arms(itt(adsl), "efficacy")
    out = {}
    for code in codes:
        if not (adtte["PARAMCD"] == code).any():
            continue
        kms = compute_arm_km(adtte, arms, code, options=opts, days_per_month=cfg.days_per_month)
        curves = {label: km for label, (km, _) in kms.items()}
        ann = _km_annotation(comparison, code)
        name = TTE_LABELS.get(code, code)
        alt = (f"Kaplan-Meier curves of {name.lower()} by randomised arm: "
               + "; ".join(f"{lab} n = {km.n}, {km.events} events" for lab, km in curves.items())
               + (". " + "; ".join(ann) if ann else "") + ". Number at risk per arm under the plot.")
        out[code] = Figure(id=f"km-{code.lower()}", title=f"Kaplan-Meier plot of {name.lower()} by randomised arm",
                           alt=alt, svg=km_svg(curves, alt, ylabel=km_ylabel(code), annotation=ann),
                           footnotes=[f"Intent-to-treat population; origin: randomisation date. {opts.describe()}",
                                      *(["Hazard ratio and log-rank p: " + "; ".join(ann) + "."] if ann else [])])
    return out


def forest_rows(subgroups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Forest plot rows from ``comparison.subgroups_PFS``: the interaction p on each subgroup's first row."""
    rows, seen = [], set()
    for s in subgroups:
        sg = str(s.get("subgroup", ""))
        rows.append({"label": f"{sg}: {s.get('level', '')}", "n": s.get("n"), "events": s.get("events"),
                     "hr": s.get("hr"), "hr_ci": s.get("hr_ci"),
                     "p_interaction": None if sg in seen else s.get("p_interaction")})
        seen.add(sg)
    return rows


def build_comparison_section(a: Analysis, comparison: dict[str, Any], labels: dict[str, str]) -> Section:
    from mmtrial.figures.forest import forest_hr_figure
    from mmtrial.figures.svg import figure_to_svg
    from mmtrial.tables.comparison import table_comparison_summary, table_subgroup_hr

    notes = method_notes(a, comparison)
    e, c = comparison.get("experimental", ""), comparison.get("control", "")
    blocks: list = [Text(f"Comparison of the randomised arms: {labels.get(e, e)} (experimental) versus "
                         f"{labels.get(c, c)} (control), intent-to-treat population. " + " ".join(notes))]
    if a.study is not None and a.study.synthetic:
        blocks.insert(0, Text("Synthetic data: these comparisons describe a simulated study."))
    blocks.append(table_comparison_summary(comparison, labels, footnotes=notes))
    subs = comparison.get("subgroups_PFS") or []
    if subs:
        pfs = comparison.get("PFS") or {}
        rows = forest_rows(list(subs))
        fn = ["Hazard ratio of progression-free survival within each subgroup level: unstratified Cox model "
              f"(ties = {pfs.get('ties', 'breslow')}); interaction p: Wald test of the arm-by-subgroup terms "
              "(R coxph(Surv(t, e) ~ arm * subgroup))."]
        fn += [comparison["subgroups_PFS_note"]] if comparison.get("subgroups_PFS_note") else []  # [forest]
        alt = ("Forest plot of the progression-free survival hazard ratio by subgroup: "
               + "; ".join(f"{r['label']} HR {fmt_estimate_ci(r['hr'], tuple(r['hr_ci'] or (None, None)), 2)}"
                           for r in rows) + ".")
        fig = forest_hr_figure(rows, overall=pfs.get("hr"), favours=(labels.get(e, e), labels.get(c, c)))
        blocks.append(Figure(id="forest-pfs-hr", title="Progression-free survival hazard ratio by subgroup",
                             alt=alt, svg=figure_to_svg(fig, alt), footnotes=fn))
        blocks.append(table_subgroup_hr(subs, footnotes=fn))
    return Section(id=COMPARISON_SECTION_ID, title="Comparison of the randomised arms", blocks=blocks,
                   order=COMPARISON_ORDER)


def build_sensitivity_section(a: Analysis, r: dict[str, Any]) -> Section:
    from mmtrial.tables.comparison import table_rpsftm

    notes = rpsftm_notes(r)
    return Section(id=SENSITIVITY_SECTION_ID, title="Sensitivity analysis (crossover-adjusted): overall survival",
                   blocks=[Text(" ".join(notes)), table_rpsftm(r, footnotes=notes)], order=SENSITIVITY_ORDER)


def _replace(blocks: list, block_id: str, new) -> list:
    """``blocks`` with the block ``block_id`` replaced by ``new`` (a block or a list of blocks)."""
    if new is None or (isinstance(new, list) and not new):
        return blocks
    out: list = []
    for b in blocks:
        if getattr(b, "id", None) == block_id:
            out.extend(new if isinstance(new, list) else [new])
        else:
            out.append(b)
    return out


def waterfall_arm_figures(a: Analysis) -> list[Figure]:
    """The waterfall plot split by randomised arm (one figure per arm, TRT01PN order)."""
    from mmtrial.figures.svg import figure_to_svg
    from mmtrial.figures.waterfall import derive_best_change, waterfall_figure

    adsl, adrs = a.adam["adsl"], a.adam.get("adrs")
    if adrs is None or not len(adrs) or "EFFFL" not in adsl.columns:
        return []
    out = []
    for k, arm in enumerate(study_arms(adsl, "efficacy"), start=1):
        sub = adsl.loc[adsl["USUBJID"].astype(str).isin(arm.subjects)]
        best = derive_best_change(adrs, sub)
        if not len(best):
            continue
        n_eff = int(sub["EFFFL"].astype("string").eq("Y").fillna(False).sum())
        fig, alt = waterfall_figure(best, n_eligible=n_eff)
        alt = f"{arm.label}: {alt}"
        out.append(Figure(id=f"rsp-waterfall-arm{k}",
                          title=f"Best percent change from baseline in the myeloma marker: {arm.label}",
                          alt=alt, svg=figure_to_svg(fig, alt),
                          footnotes=[f"{len(best)} of {n_eff} efficacy patients of the arm {arm.label} (TRT01P) "
                                     "with a post-baseline value of their marker before new therapy. Increases "
                                     "above +100% are drawn at +100%. Colour: confirmed best overall response."]))
    return out


def _pooled_note(b):
    """A display not split by arm says so in its footnote, with the documented reason when it has one
    (steps/by_arm_displays.py ``POOLED_REASONS``)."""
    from mmtrial.steps.by_arm_displays import pooled_reason

    if isinstance(b, Listing) and pooled_reason(str(b.id)) is None:
        return b
    if not isinstance(b, Table | Figure) or b.id in _NOT_DATA:
        return b
    why = pooled_reason(str(b.id))
    note = f"{POOLED_NOTE} {why}" if why else POOLED_NOTE
    if note not in b.footnotes:
        b.footnotes = [*b.footnotes, note]
    return b


def _more_displays_by_arm(a: Analysis, comparison: dict[str, Any], labels: dict[str, str]) -> set[int]:
    """Disposition, labs over time, spider/swimmer plots, OS by response, ORR by subgroup and the
    binomial test by arm (steps/by_arm_displays.py); returns the ids of the new blocks."""
    from mmtrial.steps import by_arm_displays as bd
    from mmtrial.steps.exposure_safety import SafetyOptions

    adsl = a.adam["adsl"]
    new: list = []

    def put(section_id: str, block_id: str, blocks) -> None:
        for s in a.sections:
            if s.id == section_id:
                s.blocks = _replace(s.blocks, block_id, blocks)
                new.extend(blocks if isinstance(blocks, list) else [blocks] if blocks is not None else [])

    put("disposition", "DST01", bd.disposition_by_arm(adsl, footnotes=[]))
    adlb = a.adam.get("adlb")
    if adlb is not None and "AVISITN" in adlb.columns:
        t, fig = bd.labs_over_time_by_arm(adlb, adsl)
        put("safety-labs-time", "LBT01-TIME", t)
        put("safety-labs-time", "labs-over-time", fig)
    figs = bd.spider_swimmer_by_arm(adsl, a.adam.get("adrs"))
    for fid, fs in figs.items():
        put("efficacy-time", fid, fs)
    put("exposure", "mmtrial-F02", bd.dose_swimmer_by_arm(a, SafetyOptions.from_protocol(a.protocol).swimmer_max_subjects))
    adtte = a.adam.get("adtte")
    rnd = getattr(a.protocol, "randomisation", None)
    exp_ = str(comparison.get("experimental") or getattr(rnd, "experimental", "") or "")
    if adtte is not None:
        osr = bd.os_by_response_by_arm(a, adsl, adtte)
        put("efficacy-tte", "TTE02", [b for b in osr if isinstance(b, Table)] or None)
        put("efficacy-tte", "km-os-landmark", [b for b in osr if isinstance(b, Figure)] or None)
        rsp02 = next((b for s in a.sections for b in s.blocks if getattr(b, "id", None) == "RSP02"), None)
        put("efficacy-tte", "RSP02", bd.ttr_by_arm(a, adsl, adtte, rsp02))
    if exp_ and {"ARMCD", "RSPFL"} <= set(adsl.columns):
        from mmtrial.steps.comparison import forest_options, stratum_labels

        cfg, _ = _tte_config(a)
        ctl = str(comparison.get("control") or getattr(rnd, "control", "") or "")
        rows = bd.compute_orr_subgroups_by_arm(adsl, exp_, list(comparison.get("strata") or []),
                                               labels=stratum_labels(a.study.get("suppdm")) if a.study else None,
                                               level=cfg.level, opts=forest_options(a.protocol))
        blocks = bd.orr_subgroup_displays(rows, (labels.get(exp_, exp_), labels.get(ctl, ctl)), cfg.level)
        put("efficacy-tte", "ONCT05", [b for b in blocks if isinstance(b, Table)] or None)
        put("efficacy-tte", "forest-orr", [b for b in blocks if isinstance(b, Figure)] or None)
        put("efficacy-tte", "BINOM01", bd.binomial_test_by_arm(a, adsl, exp_, labels.get(exp_, exp_)))
    return {id(b) for b in new}


def run(a: Analysis) -> None:
    adsl = a.adam.get("adsl")
    if not is_multi_arm(adsl):
        return
    from mmtrial.tables.comparison import arm_labels, table_response_by_arm, table_tte_by_arm

    comparison: dict[str, Any] = a.results.get("comparison") or {}
    labels = arm_labels(adsl)
    cfg, opts = _tte_config(a)
    method = str(a.protocol.methods.get("proportion_ci", "clopper-pearson"))
    level = float(a.protocol.methods.get("level", 0.95))
    notes = method_notes(a, comparison) if comparison else []
    rebuilt: set[int] = set()
    split = ArmSplit(adsl)  # arms and arm subsets computed once for every table (issue 15)
    for s in a.sections:
        blocks = []
        for b in s.blocks:
            nb = rebuild_by_arm(b, adsl, split) if isinstance(b, Table) and not isinstance(b, Listing) else b
            if nb is not b:
                rebuilt.add(id(nb))
            blocks.append(nb)
        s.blocks = blocks
    adtte = a.adam.get("adtte")
    km_codes = [p for p in ("PFS", "OS", "DOR", "TTNT") if adtte is not None and (adtte["PARAMCD"] == p).any()]
    figs = km_arm_figures(a, comparison, km_codes)
    for s in a.sections:
        if s.id == "efficacy-response":
            t = table_response_by_arm(adsl, comparison, method=method, level=level, footnotes=[n for n in notes if n.startswith("ORR difference")])
            s.blocks = _replace(s.blocks, "rsp01-bor", t)
            if t is not None:
                rebuilt.add(id(t))
            wf = waterfall_arm_figures(a)
            s.blocks = _replace(s.blocks, "rsp-waterfall", wf)
            rebuilt.update(id(f) for f in wf)
        elif s.id == "efficacy-tte" and adtte is not None:
            t = table_tte_by_arm(adtte, adsl, comparison, params=km_codes, options=opts,
                                 days_per_month=cfg.days_per_month, landmarks=cfg.landmark_months,
                                 footnotes=[opts.describe(), *[n for n in notes if n.startswith(("Hazard ratio", "Log-rank",
                                                                                     "The protocol specifies"))]])
            s.blocks = _replace(s.blocks, "TTET01", t)
            if t is not None:
                rebuilt.add(id(t))
            for f in figs.values():
                s.blocks = _replace(s.blocks, f.id, f)
                rebuilt.add(id(f))
    rebuilt.update(_more_displays_by_arm(a, comparison, labels))
    for s in a.sections:
        s.blocks = [b if id(b) in rebuilt else _pooled_note(b) for b in s.blocks]
    if comparison:
        a.sections.append(build_comparison_section(a, comparison, labels))
        r = comparison.get("OS_rpsftm")
        if isinstance(r, dict) and ("psi" in r or "hr_adjusted" in r):
            a.sections.append(build_sensitivity_section(a, r))
        elif isinstance(r, dict) and r:  # present but not estimable: say why
            why = r.get("unavailable") or r.get("reason") or "not estimable on this study"
            a.sections.append(Section(id=SENSITIVITY_SECTION_ID, order=SENSITIVITY_ORDER,
                                      title="Sensitivity analysis (crossover-adjusted): overall survival",
                                      blocks=[Text(f"The crossover-adjusted analysis (RPSFTM) was not computed: {why}.")]))
    a.methods["by_arm"] = {
        "efficacy_columns": "TRT01P (planned arm) over ITTFL = Y, TRT01PN order; no Total column",
        "safety_columns": "TRT01A (actual treatment) over SAFFL = Y, TRT01AN order; Total = all arms",
        "comparison_footnotes": notes,
        "arms": {"planned": [x.label for x in study_arms(adsl, "efficacy")],
                 "actual": [x.label for x in study_arms(adsl, "safety")]},
        "pooled_displays": sorted({str(b.id) for s in a.sections for b in s.blocks
                                   if isinstance(b, Table | Figure)
                                   and any(str(f).startswith(POOLED_NOTE) for f in b.footnotes)}),
        "pooled_reasons": "steps/by_arm_displays.py POOLED_REASONS (printed in each pooled display's footnote)",
    }
