"""Exposure tables: duration and dose intensity (EXT01 / STF T6), dose modifications
(mmtrial-EX02), and the protocol dose-rule deviation summary and listing.

Layouts: ../shared/reference/tlg-catalog.md section 2; STORM reports median weeks on treatment
"9.0 (range 1-60)" (domain.md 1.4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrial.report.model import Listing, Table
from mmtrial.tables.byarm import by_arm
from mmtrial.tables.format import fmt_median_range, fmt_num
from mmtrial.tables.safety import TableBuilder


def fmt_planned(values: pd.Series) -> str:
    """The planned weekly dose: one value when every patient has it (``160``, ``18.67``), else the
    median (range) (body-size doses differ by patient)."""
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if v.size == 0:
        return "NE"
    if np.allclose(v, v[0], rtol=1e-9):
        x = float(v[0])
        return fmt_num(x, 0) if abs(x - round(x)) < 1e-9 else fmt_num(x, 2)
    return fmt_median_range(v, 2)


@by_arm("safety")
def table_exposure(adex: pd.DataFrame, adsl: pd.DataFrame, *, drugs: list[str], footnotes: list[str]) -> Table:
    """EXT01 / mmtrial-EX02: per drug (one column each), duration, cycles, delays, dose in mg and,
    for a body-size drug, in its unit (mg/m2 or mg/kg), intensity and modifications."""
    saf = adsl.loc[adsl["SAFFL"] == "Y", "USUBJID"]
    n = len(saf)
    cols = [d.title() for d in drugs]
    b = TableBuilder("Parameter", cols)
    per = {d: adex.loc[(adex["EXTRT"] == d) & adex["USUBJID"].isin(saf)] for d in drugs}
    unit = {d: (str(per[d]["DOSEUNIT"].dropna().iloc[0]) if "DOSEUNIT" in per[d] and per[d]["DOSEUNIT"].notna().any()
                else "mg") for d in drugs}
    body_units = sorted({u for u in unit.values() if u != "mg"})

    def row(label: str, f, only: str | None = None) -> None:
        b.add(label, {c: f(per[d]) for c, d in zip(cols, drugs, strict=True) if only is None or unit[d] == only})

    row("Patients treated, n", lambda x: (f"{x['USUBJID'].nunique()}", x["USUBJID"]))
    row("Duration of treatment, weeks: median (range)", lambda x: fmt_median_range(x["TRTDURW"], 1))
    row("Duration of treatment, weeks: mean (SD)", lambda x: (
        f"{fmt_num(float(x['TRTDURW'].mean()) if len(x) else None, 1)} "
        f"({fmt_num(float(x['TRTDURW'].std()) if len(x) > 1 else None, 1)})"))
    for lo, hi, label in ((0, 4, "< 4 weeks"), (4, 8, "4 to < 8 weeks"), (8, 12, "8 to < 12 weeks"),
                          (12, 26, "12 to < 26 weeks"), (26, np.inf, ">= 26 weeks")):
        row(f"  {label}", lambda x, lo=lo, hi=hi: b.count(
            x.loc[(x["TRTDURW"] >= lo) & (x["TRTDURW"] < hi), "USUBJID"], n))
    row("Cycles started: median (range)", lambda x: fmt_median_range(x["CYCLES"], 0))
    if "NDELAY" in adex and (adex["NDELAY"] > 0).any():
        row("At least one delayed cycle start", lambda x: b.count(x.loc[x["NDELAY"] > 0, "USUBJID"], n))
        row("  Days of delay: median (range), patients with a delay",
            lambda x: fmt_median_range(x.loc[x["NDELAY"] > 0, "DELAYD"], 0))
    if "NMISSCYC" in adex and (adex["NMISSCYC"] > 0).any():
        row("At least one missed cycle", lambda x: b.count(x.loc[x["NMISSCYC"] > 0, "USUBJID"], n))
    row("Number of doses: median (range)", lambda x: fmt_median_range(x["NDOSES"], 0))
    row("Cumulative dose, mg: median (range)", lambda x: fmt_median_range(x["CUMDOSE"], 0))
    for u in body_units:
        row(f"Cumulative dose, {u}: median (range)", lambda x: fmt_median_range(x["CUMDOSEU"], 2), only=u)
    row("Planned weekly dose, mg", lambda x: fmt_planned(x["PLNWKDOS"]) if len(x) else "")
    for u in body_units:
        row(f"Planned weekly dose, {u}", lambda x: fmt_planned(x["PLNWKDU"]) if len(x) else "", only=u)
    row("Actual weekly dose, mg: median (range)", lambda x: fmt_median_range(x["ACTWKDOS"], 1))
    for u in body_units:
        row(f"Actual weekly dose, {u}: median (range)", lambda x: fmt_median_range(x["ACTWKDU"], 2), only=u)
    row("Relative dose intensity, %: median (range)", lambda x: fmt_median_range(100 * x["RDI"], 1))
    row("  RDI < 70%", lambda x: b.count(x.loc[x["RDI"] < 0.7, "USUBJID"], n))
    row("At least one dose reduction", lambda x: b.count(x.loc[x["NREDUC"] > 0, "USUBJID"], n))
    row("  Reductions per patient: median (range)", lambda x: fmt_median_range(x["NREDUC"], 0))
    row("  Time to first reduction, days: median (range)", lambda x: fmt_median_range(x["TTFRED"].dropna(), 0))
    row("At least one dose interruption", lambda x: b.count(x.loc[x["NINTERR"] > 0, "USUBJID"], n))
    row("  Days interrupted: median (range), patients with interruption",
        lambda x: fmt_median_range(x.loc[x["NINTERR"] > 0, "INTRDAYS"], 0))
    row("Reduction or interruption", lambda x: b.count(
        x.loc[(x["NREDUC"] > 0) | (x["NINTERR"] > 0), "USUBJID"], n))
    row("Discontinued treatment for an adverse event", lambda x: b.count(
        x.loc[x["AEDISFL"] == "Y", "USUBJID"], n))
    return b.table("mmtrial-EX02", "Study drug exposure and dose modifications", footnotes=footnotes,
                   population="Safety population", source="ADEX, ADEXLVL (dosing runs), ADEXCYC (cycles), "
                   "ADAE (AEACN)")


@by_arm("safety")
def table_modification_reasons(adexlvl: pd.DataFrame, adsl: pd.DataFrame, *, study_drug: str,
                               footnotes: list[str]) -> Table:
    """Reductions and interruptions of the study drug by reason (EXADJ)."""
    saf = set(adsl.loc[adsl["SAFFL"] == "Y", "USUBJID"])
    n = len(saf)
    lv = adexlvl.loc[(adexlvl["EXTRT"] == study_drug.upper()) & adexlvl["USUBJID"].isin(saf)]
    cols = ["Reductions: patients", "Reductions: events", "Interruptions: patients", "Interruptions: events"]
    b = TableBuilder("Reason (EXADJ)", cols)
    red = lv.loc[lv["CHGTYPE"] == "REDUCTION"].assign(R=lambda x: x["CHGREAS"].fillna("NOT RECORDED"))
    intr = lv.loc[lv["RESTFL"] == "Y"].assign(R=lambda x: x["INTRREAS"].fillna("NOT RECORDED"))
    reasons = sorted(set(red["R"]) | set(intr["R"]))
    b.add("Any reason", {
        cols[0]: b.count(red["USUBJID"], n), cols[1]: f"{len(red)}",
        cols[2]: b.count(intr["USUBJID"], n), cols[3]: f"{len(intr)}",
    })
    for r in reasons:
        rr = red.loc[red["R"] == r]
        ii = intr.loc[intr["R"] == r]
        b.add(f"  {str(r).capitalize()}", {
            cols[0]: b.count(rr["USUBJID"], n), cols[1]: f"{len(rr)}",
            cols[2]: b.count(ii["USUBJID"], n), cols[3]: f"{len(ii)}",
        })
    return b.table("EX03", f"{study_drug.title()} dose reductions and interruptions by reason",
                   footnotes=footnotes, population="Safety population", source="ADEXLVL (CHGTYPE, RESTFL, EXADJ)")


def table_dose_rule_summary(checks: pd.DataFrame, rules, adsl: pd.DataFrame, *, footnotes: list[str]) -> Table:
    """Per label rule: events meeting it, deviations, patients with a deviation."""
    saf = adsl.loc[adsl["SAFFL"] == "Y", "USUBJID"]
    n = len(saf)
    cols = ["Tag", "Condition", "Action due", "Events checked", "Deviations", "Patients with deviation"]
    b = TableBuilder("Rule", cols)
    gov = checks.loc[checks["GOVFL"] == "Y"] if len(checks) else checks
    for r in rules.rules:
        d = gov.loc[gov["RULEID"] == r.id] if len(gov) else gov
        dev = d.loc[d["DEVFL"] == "Y"] if len(d) else d
        b.add(f"{r.id} ({r.reaction})", {
            "Tag": r.tag, "Condition": r.condition_text(), "Action due": r.action,
            "Events checked": f"{len(d)}", "Deviations": f"{len(dev)}",
            "Patients with deviation": b.count(dev["USUBJID"] if len(dev) else [], n),
        })
    dev_all = gov.loc[gov["DEVFL"] == "Y"] if len(gov) else gov
    b.add("Any rule", {"Events checked": f"{len(gov)}", "Deviations": f"{len(dev_all)}",
                       "Patients with deviation": b.count(dev_all["USUBJID"] if len(dev_all) else [], n)})
    return b.table("EX-RULES", "Protocol dose-modification rules: events and deviations",
                   footnotes=footnotes, population="Safety population",
                   source="ADLB, ADAE, ADEXLVL; data/dose_rules.toml")


def listing_dose_rule_deviations(checks: pd.DataFrame, *, footnotes: list[str], max_rows: int = 500) -> Listing:
    """One row per deviation: subject, date, rule, finding, action due, dose actually given."""
    cols = ["USUBJID", "Date", "Rule", "Tag", "Finding", "Action due", "Level at event",
            "Action taken", "New level", "Deviation"]
    d = checks.loc[checks["DEVFL"] == "Y"] if len(checks) else checks
    d = d.sort_values(["USUBJID", "ADT"]) if len(d) else d
    total = len(d)
    d = d.head(max_rows)

    def lvl(s: pd.Series) -> pd.Series:  # display only, at most max_rows rows
        return s.map(lambda x: "" if pd.isna(x) else f"{int(x)}")

    data = pd.DataFrame({
        "USUBJID": d["USUBJID"].astype(str).to_numpy() if len(d) else [],
        "Date": pd.to_datetime(d["ADT"]).dt.strftime("%Y-%m-%d").to_numpy() if len(d) else [],
        "Rule": d["RULEID"].to_numpy() if len(d) else [],
        "Tag": d["TAG"].to_numpy() if len(d) else [],
        "Finding": d["FINDING"].to_numpy() if len(d) else [],
        "Action due": d["REQACT"].to_numpy() if len(d) else [],
        "Level at event": lvl(d["CURLVL"]).to_numpy() if len(d) else [],
        "Action taken": d["ACTACT"].str.lower().to_numpy() if len(d) else [],
        "New level": lvl(d["NEWLVL"]).to_numpy() if len(d) else [],
        "Deviation": d["DEVTEXT"].to_numpy() if len(d) else [],
    }, columns=cols)
    notes = list(footnotes)
    if total > max_rows:
        notes.insert(0, f"First {max_rows} of {total} deviations shown; all are in ADEXCHK.")
    cells = {(i, "USUBJID"): [s] for i, s in enumerate(data["USUBJID"])}
    return Listing(id="EX-RULES-L", title="Listing of protocol dose-rule deviations", data=data,
                   footnotes=notes, population="Safety population", source="ADEXCHK",
                   cell_subjects=cells, anchor_column=None)


def summarise_exposure(adex: pd.DataFrame, study_drug: str) -> dict:
    """Numbers for results.json ``safety.exposure`` (study drug)."""
    x = adex.loc[adex["EXTRT"] == study_drug.upper()]

    def med(s: pd.Series) -> dict:
        s = s.dropna()
        if s.empty:
            return {"median": None, "min": None, "max": None}
        return {"median": float(np.median(s)), "min": float(s.min()), "max": float(s.max())}

    n = int(x["USUBJID"].nunique())
    return {
        "drug": study_drug.upper(),
        "n": n,
        "duration_weeks": med(x["TRTDURW"]),
        "cycles_started": med(x["CYCLES"]),
        "cumulative_dose_mg": med(x["CUMDOSE"]),
        "planned_weekly_dose_mg": (None if x.empty or x["PLNWKDOS"].isna().all()
                                   else float(np.median(x["PLNWKDOS"].dropna()))),
        "dose_unit": "mg" if x.empty or "DOSEUNIT" not in x else str(x["DOSEUNIT"].iloc[0]),
        "planned_weekly_dose_in_unit": med(x["PLNWKDU"]) if "PLNWKDU" in x else None,
        "patients_with_delayed_cycle": int((x["NDELAY"] > 0).sum()) if "NDELAY" in x else 0,
        "actual_weekly_dose_mg": med(x["ACTWKDOS"]),
        "relative_dose_intensity": med(x["RDI"]),
        "patients_with_reduction": int((x["NREDUC"] > 0).sum()),
        "patients_with_interruption": int((x["NINTERR"] > 0).sum()),
        "patients_with_reduction_or_interruption": int(((x["NREDUC"] > 0) | (x["NINTERR"] > 0)).sum()),
        "time_to_first_reduction_days": med(x["TTFRED"]),
        "patients_discontinued_for_ae": int((x["AEDISFL"] == "Y").sum()),
        "pct_with_reduction_or_interruption": None if n == 0 else float(
            100.0 * int(((x["NREDUC"] > 0) | (x["NINTERR"] > 0)).sum()) / n),
        "by_drug": {str(d): _drug_numbers(g, med) for d, g in adex.groupby("EXTRT", sort=True)},
    }


def _drug_numbers(x: pd.DataFrame, med) -> dict:
    """results.json ``safety.exposure.by_drug[DRUG]``: each drug of the combination."""
    unit = str(x["DOSEUNIT"].iloc[0]) if "DOSEUNIT" in x and x["DOSEUNIT"].notna().any() else "mg"
    return {
        "n": int(x["USUBJID"].nunique()),
        "dose_unit": unit,
        "cycles_started": med(x["CYCLES"]),
        "planned_weekly_dose_mg": med(x["PLNWKDOS"]),
        "planned_weekly_dose_in_unit": med(x["PLNWKDU"]) if "PLNWKDU" in x else None,
        "relative_dose_intensity": med(x["RDI"]),
        "patients_with_reduction": int((x["NREDUC"] > 0).sum()),
        "patients_with_interruption": int((x["NINTERR"] > 0).sum()),
        "patients_with_delayed_cycle": int((x["NDELAY"] > 0).sum()) if "NDELAY" in x else 0,
    }
