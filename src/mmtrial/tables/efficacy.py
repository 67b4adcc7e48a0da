"""Efficacy tables: time-to-event summary (TTET01/DORT01), OS by response (mmtrial-TTE02), time
to response (mmtrial-RSP02), ORR by subgroup (ONCT05, single arm), the binomial test and the
time-to-event rules. Numbers come from typed results (``stats/``); footnotes from their methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mmtrial.report.model import Table
from mmtrial.stats.compare import GroupComparison, LogRankResult
from mmtrial.stats.proportion import BinomialTest, ProportionResult
from mmtrial.stats.survival import KaplanMeier
from mmtrial.tables.format import fmt_ci, fmt_estimate_ci, fmt_n_pct, fmt_num, fmt_p, fmt_pct


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "NE"
    return fmt_p(float(p))


#: Words kept in capitals when an upper-case ADaM description is shown in sentence case.
ACRONYMS: frozenset[str] = frozenset({
    "IMWG", "CR", "SCR", "VGPR", "PR", "MR", "SD", "PD", "NE", "AE", "SAE", "CTCAE", "ASCT", "OS",
    "PFS", "DOR", "TTR", "TTNT", "PI", "IMID", "CD38", "ANTI-CD38", "ECOG", "ISS", "R-ISS",
})


def display_sentence_case(text: str) -> str:
    """An upper-case description (EVNTDESC, CNSDTDSC) in sentence case, for display only.

    Each word is lower-cased except the acronyms in :data:`ACRONYMS`; the first letter is then
    capitalised: ``"PROGRESSIVE DISEASE (IMWG)"`` -> ``"Progressive disease (IMWG)"``. Text that is
    not all upper case is returned unchanged (someone chose its capitals). ADTTE keeps its values.
    """
    if text != text.upper():
        return text

    def word(w: str) -> str:
        core = w.strip("()[],.;:")
        return w if core in ACRONYMS else w.lower()

    out = " ".join(word(w) for w in text.split(" "))
    i = next((k for k, ch in enumerate(out) if ch.isalpha()), None)
    return out if i is None else out[:i] + out[i].upper() + out[i + 1 :]


def tte_summary_table(
    endpoints: Mapping[str, tuple[str, KaplanMeier, pd.DataFrame]],
    *,
    landmarks: Sequence[float],
    quantiles: Sequence[float] = (0.25, 0.5, 0.75),
    unit: str = "months",
    footnotes: Sequence[str] = (),
    table_id: str = "TTET01",
    title: str = "Time-to-event endpoints",
    population: str = "",
) -> Table:
    """One block per endpoint: events by earliest contributing event, censorings by reason,
    median and quartiles with CIs, range, landmark event-free rates.

    ``endpoints`` maps PARAMCD to (label, KM on the display time scale, that parameter's ADTTE
    rows, whose ``AVAL_DISPLAY`` column is on the same scale).
    """
    rows: list[tuple[str, str]] = []
    groups: list[str] = []
    subjects: dict[tuple[int, str], list[str]] = {}

    def add(group: str, stat: str, value: str, who: Sequence[str] | None = None) -> None:
        if who is not None:
            subjects[(len(rows), "Value")] = list(who)
        rows.append((stat, value))
        groups.append(group)

    for _code, (label, km, adtte) in endpoints.items():
        n = km.n
        ev = adtte.loc[adtte["CNSR"] == 0]
        cen = adtte.loc[adtte["CNSR"] != 0]
        add(label, "Patients", str(n), adtte["USUBJID"])
        add(label, "With an event, n (%)", fmt_n_pct(len(ev), n), ev["USUBJID"])
        # reasons: sub-rows of their parent (two leading spaces = one indent level in the report)
        for desc, g in ev.groupby("EVNTDESC", sort=True):
            add(label, f"  {display_sentence_case(str(desc))}", fmt_n_pct(len(g), n), g["USUBJID"])
        add(label, "Censored, n (%)", fmt_n_pct(len(cen), n), cen["USUBJID"])
        for desc, g in cen.groupby("CNSDTDSC", sort=True):
            add(label, f"  {display_sentence_case(str(desc))}", fmt_n_pct(len(g), n), g["USUBJID"])
        for q in quantiles:
            est, lo, hi = km.quantile(q)
            name = "Median" if q == 0.5 else f"{q * 100:g}th percentile"
            add(label, f"{name}, {unit} ({km.options.level * 100:g}% CI)", fmt_estimate_ci(est, (lo, hi)))
        if len(adtte):
            t = adtte["AVAL_DISPLAY"].to_numpy(float)
            imax = int(np.argmax(t))
            flag = "+" if adtte["CNSR"].iloc[imax] != 0 else ""
            imin = int(np.argmin(t))
            flag_min = "+" if adtte["CNSR"].iloc[imin] != 0 else ""
            add(label, f"Range, {unit}", f"{fmt_num(t.min())}{flag_min} - {fmt_num(t.max())}{flag}")
        tab = km.survival_table(list(landmarks))
        for r in tab.itertuples():
            s = None if not np.isfinite(r.surv) else r.surv
            ci = (None if not np.isfinite(r.lower) else r.lower, None if not np.isfinite(r.upper) else r.upper)
            add(
                label,
                f"Event-free at {r.time:g} {unit}: at risk; % ({km.options.level * 100:g}% CI)",
                f"{int(r.n_risk)}; {fmt_estimate_ci(s, ci, 1, 100)}",
            )
    data = pd.DataFrame(rows, columns=["Statistic", "Value"])
    fn = [*footnotes, "Range: + marks a censored value. Percentages of patients in the analysis set of each endpoint."]
    return Table(
        id=table_id,
        title=title,
        data=data,
        footnotes=fn,
        population=population,
        source="ADTTE",
        stub="Statistic",
        groups=groups,
        cell_subjects=subjects,
    )


def os_by_response_table(
    comparisons: Sequence[GroupComparison],
    *,
    mantel_byar: LogRankResult,
    td_cox,
    scale: float,
    unit: str = "months",
    footnotes: Sequence[str] = (),
) -> Table:
    """Naive, landmark and time-dependent analyses of OS by response (mmtrial-TTE02)."""
    rows = []
    for c in comparisons:
        first = True
        for gname, km in c.groups.items():
            med = km.median
            lo, hi = km.median_ci

            def s(v):
                return None if v is None else v * scale

            rows.append(
                {
                    "Analysis": c.label if first else "",
                    "Group": gname,
                    "n": str(km.n),
                    "Deaths": str(km.events),
                    f"Median OS, {unit} (95% CI)": fmt_estimate_ci(s(med), (s(lo), s(hi))),
                    "HR (95% CI)": f"{fmt_num(c.cox.hr, 2)} {fmt_ci(c.cox.ci, 2)}" if first else "",
                    "p (log-rank)": _p(c.logrank.p_value) if first else "",
                }
            )
            first = False
        if c.n_excluded:
            rows.append(
                {"Analysis": "", "Group": f"(excluded: {c.n_excluded} died or censored before the landmark)", "n": "", "Deaths": "",
                 f"Median OS, {unit} (95% CI)": "", "HR (95% CI)": "", "p (log-rank)": ""}
            )
    rows.append(
        {
            "Analysis": "Response as time-dependent covariate",
            "Group": "responder vs not yet responder",
            "n": str(td_cox.n_subjects),
            "Deaths": str(td_cox.n_events),
            f"Median OS, {unit} (95% CI)": "",
            "HR (95% CI)": f"{fmt_num(td_cox.hr, 2)} {fmt_ci(td_cox.ci, 2)}",
            "p (log-rank)": f"{_p(mantel_byar.p_value)} (Mantel-Byar)",
        }
    )
    return Table(
        id="TTE02",
        title="Overall survival by response: naive, landmark and time-dependent analyses",
        data=pd.DataFrame(rows),
        footnotes=list(footnotes),
        source="ADTTE (OS), ADSL (RSPFL, RSPDT)",
        stub="Analysis",
    )


def ttr_table(km: KaplanMeier, adtte: pd.DataFrame, *, days_per_month: float, footnotes: Sequence[str] = ()) -> Table:
    """Time to first response among responders (mmtrial-RSP02): median (range) in weeks and months."""
    d = adtte["AVAL"].to_numpy(float)
    rows = [("Responders", str(len(d)))]
    if d.size:
        w = d / 7.0
        m = d / days_per_month
        rows.append(("Time to response, weeks: median (range)", f"{fmt_num(float(np.median(w)))} ({fmt_num(w.min())}-{fmt_num(w.max())})"))
        rows.append(("Time to response, months: median (range)", f"{fmt_num(float(np.median(m)))} ({fmt_num(m.min())}-{fmt_num(m.max())})"))
        rows.append(("Kaplan-Meier median, months (95% CI)", fmt_estimate_ci(km.median, km.median_ci)))
    return Table(
        id="RSP02",
        title="Time to response (PR or better), responders",
        data=pd.DataFrame(rows, columns=["Statistic", "Value"]),
        footnotes=[*footnotes, "Sample median and range of the observed times (all responders have the event); weeks = days / 7."],
        source="ADTTE (TTR)",
        stub="Statistic",
        cell_subjects={(0, "Value"): list(adtte["USUBJID"])},
    )


def subgroup_table(rows: Sequence[dict], *, footnotes: Sequence[str] = ()) -> Table:
    """ORR with exact CI per subgroup level (ONCT05, single-arm form)."""
    data, subjects = [], {}
    for i, r in enumerate(rows):
        res: ProportionResult = r["result"]
        data.append(
            {
                "Subgroup": r["subgroup"],
                "Level": r["level"],
                "n": str(res.n),
                "Responders": str(res.x),
                "ORR, %": fmt_pct(res.x, res.n),
                f"{res.level * 100:g}% CI": fmt_ci(res.ci, 1, 100) if res.n else "(NE, NE)",
            }
        )
        subjects[(i, "Responders")] = list(r.get("responders", []))
        subjects[(i, "n")] = list(r.get("subjects", []))
    return Table(
        id="ONCT05",
        title="Overall response rate by subgroup",
        data=pd.DataFrame(data),
        footnotes=list(footnotes),
        source="ADSL (EFFFL, RSPFL, PENTAFL, HRCYTOFL, NLINES)",
        stub="Subgroup",
        cell_subjects=subjects,
    )


def binomial_test_table(t: BinomialTest, *, design_source: str, footnotes: Sequence[str] = ()) -> Table:
    """The exact one-sided binomial test of ORR with the design's critical value and power."""
    rows = [
        ("Responders / patients", f"{t.x}/{t.n} ({fmt_pct(t.x, t.n)}%)"),
        ("Null hypothesis", f"ORR <= {t.p0 * 100:g}%"),
        ("One-sided alpha (target)", f"{t.alpha:g}"),
        ("Critical value (reject H0 when responders >=)", str(t.critical_value)),
        ("Actual one-sided alpha at the critical value", f"{t.actual_alpha:.4f}"),
        *[(f"Power at ORR {p1 * 100:g}%", f"{pw:.3f}") for p1, pw in t.power.items()],
        ("Exact one-sided p-value", fmt_p(t.p_value)),
        ("H0 rejected", "yes" if t.reject else "no"),
    ]
    return Table(
        id="BINOM01",
        title="Exact one-sided binomial test of the overall response rate",
        data=pd.DataFrame(rows, columns=["Statistic", "Value"]),
        footnotes=[f"Design: {design_source}.", "Exact binomial test (A'Hern 2001); p = P(X >= x | H0).", *footnotes],
        source="ADSL (EFFFL, RSPFL)",
        stub="Statistic",
    )


def tte_rules_table(rule_rows: Sequence[dict]) -> Table:
    """The event and censoring sources in force (rules as data, printed)."""
    return Table(
        id="TTERULES",
        title="Time-to-event definitions: event and censoring sources (protocol [tte] section)",
        data=pd.DataFrame(rule_rows, columns=["PARAMCD", "kind", "name", "date", "condition", "description"]).rename(
            columns={"kind": "Kind", "name": "Source", "date": "Date", "condition": "Condition", "description": "EVNTDESC / CNSDTDSC"}
        ),
        footnotes=[
            "Events: the earliest qualifying event source (ties: listed order). Censoring: the first listed source that applies.",
            "_EXCL = NEWTX: first event after new anti-myeloma therapy; GAP: first event after two or more missed assessments "
            "(FDA Guidance, Clinical Trial Endpoints for the Approval of Cancer Drugs and Biologics, 2018). "
            "_LADQDT: last adequate (not NE) assessment before the event / on or before new therapy.",
        ],
        source="protocol",
        stub="PARAMCD",
    )
