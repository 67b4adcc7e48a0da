"""Safety tables: disposition, AE summaries (AET01/02/04/04_PI), SAEs, actions, deaths, labs.

Layouts follow ../shared/reference/tlg-catalog.md sections 1, 4 and 5 (TLG catalog ids
DST01, AET01, AET02, AET04, AET04_PI, DTHT01, LBT07, LBT14, LBT15 and mmtrial-LB01), adapted to one arm:
one column of n (%) per statistic, rows sorted by descending frequency. Every count cell links
to its subjects (``Table.cell_subjects``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd

from mmtrial.report.model import Table
from mmtrial.tables.byarm import by_arm
from mmtrial.tables.format import fmt_n_pct, fmt_pct


class TableBuilder:
    """Rows of display strings plus the subjects behind each count cell."""

    def __init__(self, stub: str, columns: list[str]):
        self.stub = stub
        self.columns = columns
        self.rows: list[dict[str, str]] = []
        self.groups: list[str] = []
        self.cells: dict[tuple[int, str], list[str]] = {}

    def add(self, label: str, values: dict[str, str | tuple[str, Iterable[str]]], group: str = "") -> None:
        row = {self.stub: label}
        i = len(self.rows)
        for c in self.columns:
            v = values.get(c, "")
            if isinstance(v, tuple):
                row[c] = v[0]
                subj = sorted(map(str, v[1]))
                if subj:
                    self.cells[(i, c)] = subj
            else:
                row[c] = v
        self.rows.append(row)
        self.groups.append(group)

    def count(self, subjects: Iterable[str], n: int) -> tuple[str, list[str]]:
        s = sorted(set(map(str, subjects)))
        return fmt_n_pct(len(s), n), s

    def table(self, id: str, title: str, *, footnotes: list[str], population: str, source: str,
              with_groups: bool = False) -> Table:
        data = pd.DataFrame(self.rows, columns=[self.stub, *self.columns])
        return Table(id=id, title=title, data=data, footnotes=footnotes, population=population,
                     source=source, stub=self.stub, groups=self.groups if with_groups else None,
                     cell_subjects=self.cells)


def safety_population(adsl: pd.DataFrame) -> pd.DataFrame:
    return adsl.loc[adsl["SAFFL"] == "Y"]


def teae(adae: pd.DataFrame, adsl: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Treatment-emergent AEs of safety-population subjects (only ``columns``, when given: a
    table that reads a few variables does not copy every ADAE column, issue 15)."""
    saf = set(safety_population(adsl)["USUBJID"])
    keep = (adae["TRTEMFL"] == "Y") & adae["USUBJID"].isin(saf)
    return adae.loc[keep] if columns is None else adae[list(columns)].loc[keep]


def subjects_by(df: pd.DataFrame, by: str | list[str], mask: np.ndarray | None = None) -> dict[Hashable, np.ndarray]:
    """USUBJID of every group of ``by`` (a value, or a tuple of values for several columns),
    among the rows where ``mask`` holds: one group-by instead of one boolean filter of the frame
    per group and per statistic (issue 15). Groups with a missing key are left out, as an
    equality filter would leave them out."""
    if mask is not None:
        df = df.loc[np.asarray(mask, dtype=bool)]
    uid = df["USUBJID"].to_numpy(dtype=object)
    groups = df.groupby(by, sort=False, observed=True, dropna=True).indices
    return {k: uid[ix] for k, ix in groups.items()}


@by_arm("safety")
def table_disposition(adsl: pd.DataFrame, *, footnotes: list[str]) -> Table:
    """DST01-style disposition: on treatment, discontinued (by reason), in follow-up, died.

    Rule
    ----
    On treatment: EOTSTT ONGOING. Discontinued treatment: EOTSTT DISCONTINUED, by DCTREAS.
    In follow-up: off treatment, alive, and EOSSTT not DISCONTINUED/COMPLETED. Died: DTHFL Y.
    STORM: 118 (96%) discontinued, 5 (4%) on treatment, 34 (28%) in survival follow-up
    (domain.md 1.6).
    """
    saf = safety_population(adsl)
    n = len(saf)
    b = TableBuilder("Category", [f"Safety population (N={n})"])
    col = b.columns[0]
    eot = saf.get("EOTSTT", pd.Series(pd.NA, index=saf.index)).astype("string").str.upper()
    eos = saf.get("EOSSTT", pd.Series(pd.NA, index=saf.index)).astype("string").str.upper()
    dth = saf.get("DTHFL", pd.Series(pd.NA, index=saf.index)).astype("string").str.upper() == "Y"
    dth = dth.fillna(False)
    ids = saf["USUBJID"]
    b.add("On treatment", {col: b.count(ids[(eot == "ONGOING").fillna(False)], n)})
    disc = (eot == "DISCONTINUED").fillna(False)
    b.add("Discontinued treatment", {col: b.count(ids[disc], n)})
    reas = saf.get("DCTREAS", pd.Series(pd.NA, index=saf.index)).astype("string").str.upper().fillna("NOT RECORDED")
    counts = reas[disc].value_counts()
    for r in sorted(counts.index, key=lambda x: (-counts[x], x)):
        b.add(f"  {r.capitalize()}", {col: b.count(ids[disc & (reas == r)], n)})
    fu = disc & ~dth & ~eos.isin(["DISCONTINUED", "COMPLETED"]).fillna(False)
    b.add("Off treatment, in follow-up (alive)", {col: b.count(ids[fu], n)})
    b.add("Discontinued study", {col: b.count(ids[(eos == "DISCONTINUED").fillna(False)], n)})
    b.add("Died", {col: b.count(ids[dth], n)})
    miss = eot.isna()
    if miss.any():
        b.add("Treatment status not recorded", {col: b.count(ids[miss], n)})
    return b.table("DST01", "Patient disposition", footnotes=footnotes,
                   population="Safety population", source="ADSL (EOTSTT, DCTREAS, EOSSTT, DTHFL)")


def _ystr(df: pd.DataFrame, var: str) -> pd.Series:
    """``var`` == "Y" as a boolean Series (False when the column is absent or blank)."""
    if var not in df.columns:
        return pd.Series(False, index=df.index)
    return df[var].astype("string").str.upper().eq("Y").fillna(False)


@by_arm("efficacy")
def table_disposition_randomised(adsl: pd.DataFrame, *, footnotes: list[str]) -> Table:
    """DST01 of a randomised study: the ITT population (ITTFL = Y) by randomised arm.

    Rule
    ----
    ICH E3 section 10.1 (disposition of patients: all randomised patients, those who received
    treatment and those who did not, by treatment group); the TLG catalog's DST01 (tern) counts
    every randomised patient in the arm they were randomised to (TRT01P). Randomised, treated:
    SAFFL = Y; randomised, not treated: ITTFL = Y and SAFFL not Y. Received another arm's
    treatment: treated and TRT01A differs from TRT01P. The status rows then follow
    :func:`table_disposition` (EOTSTT, DCTREAS, EOSSTT, DTHFL) over the randomised patients;
    every percentage has the ITT N of the column as its denominator.
    """
    itt = adsl.loc[_ystr(adsl, "ITTFL")]
    n = len(itt)
    b = TableBuilder("Category", [f"Intent-to-treat population (N={n})"])
    col = b.columns[0]
    ids = itt["USUBJID"]
    treated = _ystr(itt, "SAFFL")
    b.add("Randomised", {col: b.count(ids, n)})
    b.add("Received study treatment", {col: b.count(ids[treated], n)})
    b.add("Randomised, not treated", {col: b.count(ids[~treated], n)})
    if {"TRT01A", "TRT01P"} <= set(itt.columns):
        other = treated & (itt["TRT01A"].astype("string") != itt["TRT01P"].astype("string")).fillna(False)
        b.add("Received another arm's treatment", {col: b.count(ids[other], n)})
    eot = itt.get("EOTSTT", pd.Series(pd.NA, index=itt.index)).astype("string").str.upper()
    eos = itt.get("EOSSTT", pd.Series(pd.NA, index=itt.index)).astype("string").str.upper()
    dth = _ystr(itt, "DTHFL")
    b.add("On treatment", {col: b.count(ids[(eot == "ONGOING").fillna(False) & treated], n)})
    disc = (eot == "DISCONTINUED").fillna(False) & treated
    b.add("Discontinued treatment", {col: b.count(ids[disc], n)})
    reas = itt.get("DCTREAS", pd.Series(pd.NA, index=itt.index)).astype("string").str.upper().fillna("NOT RECORDED")
    counts = reas[disc].value_counts()
    for r in sorted(counts.index, key=lambda x: (-counts[x], x)):
        b.add(f"  {r.capitalize()}", {col: b.count(ids[disc & (reas == r)], n)})
    off = (disc | ~treated) & ~dth & ~eos.isin(["DISCONTINUED", "COMPLETED"]).fillna(False)
    b.add("Off treatment or never treated, in follow-up (alive)", {col: b.count(ids[off], n)})
    b.add("Discontinued study", {col: b.count(ids[(eos == "DISCONTINUED").fillna(False)], n)})
    b.add("Died", {col: b.count(ids[dth], n)})
    miss = eot.isna() & treated
    if miss.any():
        b.add("Treatment status not recorded (treated)", {col: b.count(ids[miss], n)})
    notes = ["Intent-to-treat population (ITTFL = Y): every randomised patient, counted in the arm of "
             "randomisation (TRT01P) whether treated or not (ICH E3 section 10.1; TLG catalog DST01). "
             "Received study treatment: SAFFL = Y; received another arm's treatment: TRT01A differs from TRT01P.",
             *footnotes]
    return b.table("DST01", "Patient disposition (randomised patients)", footnotes=notes,
                   population="Intent-to-treat population",
                   source="ADSL (ITTFL, SAFFL, TRT01P, TRT01A, EOTSTT, DCTREAS, EOSSTT, DTHFL)")


@by_arm("safety")
def table_teae_overview(adae: pd.DataFrame, adsl: pd.DataFrame, *, footnotes: list[str]) -> Table:
    """AET01: overview of treatment-emergent adverse events (tlg-catalog section 4)."""
    saf = safety_population(adsl)
    n = len(saf)
    flags = ["AEFATFL", "AESERFL", "AERELFL", "ARDFL", "AINTFL", "AWDFL"]
    te = teae(adae, adsl, ["USUBJID", "ATOXGR", *flags])
    b = TableBuilder("Patients with", [f"All patients (N={n})"])
    c = b.columns[0]
    g = te["ATOXGR"]
    y = {f: np.asarray(te[f] == "Y", dtype=bool) for f in flags}
    uid = te["USUBJID"].to_numpy(dtype=object)
    rows = [
        ("At least one TEAE", np.ones(len(te), dtype=bool)),
        ("Grade 3-5 TEAE", g >= 3),
        ("Grade 3 or 4 TEAE", g.isin([3, 4])),
        ("Grade 4 TEAE", g == 4),
        ("Grade 5 (fatal) TEAE", (g == 5) | y["AEFATFL"]),
        ("Serious TEAE", y["AESERFL"]),
        ("Treatment-related TEAE", y["AERELFL"]),
        ("Treatment-related serious TEAE", y["AERELFL"] & y["AESERFL"]),
        ("TEAE leading to dose reduction", y["ARDFL"]),
        ("TEAE leading to dose interruption", y["AINTFL"]),
        ("TEAE leading to dose reduction or interruption", y["ARDFL"] | y["AINTFL"]),
        ("TEAE leading to treatment discontinuation", y["AWDFL"]),
        ("TEAE with grade not recorded", g.isna()),
    ]
    for label, m in rows:
        m = np.asarray(m, dtype=bool)
        if label.startswith("TEAE with grade not recorded") and not m.any():
            continue
        b.add(label, {c: b.count(uid[m], n)})
    b.add("Total number of TEAEs", {c: f"{len(te)}"})
    return b.table("AET01", "Overview of treatment-emergent adverse events", footnotes=footnotes,
                   population="Safety population", source="ADAE (TRTEMFL, ATOXGR, AESER, AEREL, AEACN)")


#: Row label of a system organ class's total (patients with any preferred term in the SOC), shown
#: under the SOC's row-group header (AET02 layout: the SOC once, then its total and its PTs).
SOC_TOTAL_LABEL = "Any preferred term"


def _soc_pt_order(te: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    subj_soc = te[["USUBJID", "AEBODSYS"]].drop_duplicates().groupby("AEBODSYS").size()
    subj_pt = te[["USUBJID", "AEBODSYS", "AEDECOD"]].drop_duplicates().groupby(
        ["AEBODSYS", "AEDECOD"]).size().rename("n").reset_index()
    return subj_soc, subj_pt


@by_arm("safety")
def table_ae_by_soc_pt(
    adae: pd.DataFrame, adsl: pd.DataFrame, *, footnotes: list[str], id: str = "AET02",
    title: str = "Treatment-emergent adverse events by system organ class and preferred term",
    subset: pd.Series | None = None, min_grade_cols: bool = True,
) -> Table:
    """AET02/AET04: SOC then PT, sorted by descending frequency; any grade and grade >= 3."""
    saf = safety_population(adsl)
    n = len(saf)
    te = teae(adae, adsl, ["USUBJID", "AEBODSYS", "AEDECOD", "ATOXGR"])
    if subset is not None:
        te = te.loc[subset.reindex(te.index).fillna(False).to_numpy(dtype=bool)]
    te = te.assign(AEBODSYS=te["AEBODSYS"].fillna("UNCODED SOC"))
    cols = ["Any grade", "Grade >=3"] if min_grade_cols else ["n (%)"]
    b = TableBuilder("System organ class / Preferred term", cols)
    b.add("Any event", {cols[0]: b.count(te["USUBJID"], n),
                        **({cols[1]: b.count(te.loc[te["ATOXGR"] >= 3, "USUBJID"], n)} if min_grade_cols else {})})
    if te.empty:
        return b.table(id, title, footnotes=footnotes, population="Safety population",
                       source="ADAE", with_groups=True)
    subj_soc, subj_pt = _soc_pt_order(te)
    socs = sorted(subj_soc.index, key=lambda s: (-subj_soc[s], s))
    hi = np.asarray(te["ATOXGR"] >= 3, dtype=bool)
    none = np.array([], dtype=object)
    soc_all, soc_hi = subjects_by(te, "AEBODSYS"), subjects_by(te, "AEBODSYS", hi)
    pt_all, pt_hi = subjects_by(te, ["AEBODSYS", "AEDECOD"]), subjects_by(te, ["AEBODSYS", "AEDECOD"], hi)
    # (n desc, PT) is unique within a SOC, so one sort serves every SOC
    ordered = subj_pt.sort_values(["n", "AEDECOD"], ascending=[False, True])
    pts_of = {soc: list(d["AEDECOD"]) for soc, d in ordered.groupby("AEBODSYS", sort=False)}
    for soc in socs:
        vals = {cols[0]: b.count(soc_all.get(soc, none), n)}
        if min_grade_cols:
            vals[cols[1]] = b.count(soc_hi.get(soc, none), n)
        # the SOC name is the row-group header; its total row is not a second copy of the name
        b.add(SOC_TOTAL_LABEL, vals, group=str(soc))
        for pt in pts_of.get(soc, []):
            vals = {cols[0]: b.count(pt_all.get((soc, pt), none), n)}
            if min_grade_cols:
                vals[cols[1]] = b.count(pt_hi.get((soc, pt), none), n)
            b.add(f"  {pt}", vals, group=str(soc))
    return b.table(id, title, footnotes=footnotes, population="Safety population",
                   source="ADAE (TRTEMFL, AEBODSYS, AEDECOD, ATOXGR)", with_groups=True)


def worst_grade_per_subject_pt(te: pd.DataFrame) -> pd.DataFrame:
    """One row per subject and PT with the worst grade (NaN grade ranks lowest)."""
    g = te["ATOXGR"].fillna(0)
    d = te.assign(_G=g).sort_values(["USUBJID", "AEDECOD", "_G"], ascending=[True, True, False])
    return d.drop_duplicates(["USUBJID", "AEDECOD"])


@by_arm("safety", arm_kwargs={"threshold": 0.0})  # rows: PTs >= threshold over all arms
def table_common_ae(adae: pd.DataFrame, adsl: pd.DataFrame, *, threshold: float, footnotes: list[str]) -> Table:
    """AET04_PI: PTs reported in >= threshold of patients, by highest CTCAE grade.

    STORM-style columns: any grade, grade 1-2, grade 3, grade 4 (and grade 5) at each patient's
    worst grade for the PT; rows by descending any-grade frequency.
    """
    saf = safety_population(adsl)
    n = len(saf)
    te = teae(adae, adsl, ["USUBJID", "AEDECOD", "ATOXGR"])
    w = worst_grade_per_subject_pt(te)
    cnt = w.groupby("AEDECOD").size()
    keep = cnt[cnt >= threshold * n] if n else cnt.iloc[:0]
    cols = ["Any grade", "Grade 1-2", "Grade 3", "Grade 4", "Grade 5"]
    b = TableBuilder("Preferred term", cols)
    rows_of = w.groupby("AEDECOD", sort=False, observed=True).indices
    uid = w["USUBJID"].to_numpy(dtype=object)
    grade = w["_G"].to_numpy()
    for pt in sorted(keep.index, key=lambda p: (-keep[p], p)):
        ix = rows_of[pt]
        u, g = uid[ix], grade[ix]
        b.add(str(pt), {
            "Any grade": b.count(u, n),
            "Grade 1-2": b.count(u[(g == 1) | (g == 2)], n),
            "Grade 3": b.count(u[g == 3], n),
            "Grade 4": b.count(u[g == 4], n),
            "Grade 5": b.count(u[g == 5], n),
        })
    pct = f"{threshold * 100:g}%"
    return b.table("AET04_PI", f"Treatment-emergent adverse events reported in >= {pct} of patients, "
                   "by highest CTCAE grade", footnotes=[
                       f"Preferred terms reported in at least {pct} of the safety population; each "
                       "patient counted once per term at the highest grade.", *footnotes],
                   population="Safety population", source="ADAE (TRTEMFL, AEDECOD, ATOXGR)")


@by_arm("safety")
def table_ae_actions(adae: pd.DataFrame, adsl: pd.DataFrame, *, footnotes: list[str]) -> Table:
    """TEAEs leading to dose reduction, interruption and discontinuation, by PT (STF T12)."""
    saf = safety_population(adsl)
    n = len(saf)
    te = teae(adae, adsl, ["USUBJID", "AEDECOD", "ARDFL", "AINTFL", "AWDFL"])
    cols = ["Dose reduction", "Dose interruption", "Discontinuation"]
    flags = {"Dose reduction": "ARDFL", "Dose interruption": "AINTFL", "Discontinuation": "AWDFL"}
    act = te.loc[(te["ARDFL"] == "Y") | (te["AINTFL"] == "Y") | (te["AWDFL"] == "Y")]
    b = TableBuilder("Preferred term", cols)
    y = {f: np.asarray(act[f] == "Y", dtype=bool) for f in flags.values()}
    none = np.array([], dtype=object)
    uid = act["USUBJID"].to_numpy(dtype=object)
    b.add("Any TEAE", {c: b.count(uid[y[f]], n) for c, f in flags.items()})
    by_flag = {f: subjects_by(act, "AEDECOD", y[f]) for f in flags.values()}
    tot = act[["USUBJID", "AEDECOD"]].drop_duplicates().groupby("AEDECOD").size()
    for pt in sorted(tot.index, key=lambda p: (-tot[p], p)):
        b.add(f"  {pt}", {c: b.count(by_flag[f].get(pt, none), n) for c, f in flags.items()})
    return b.table("AET-ACN", "Treatment-emergent adverse events leading to dose reduction, "
                   "interruption or discontinuation", footnotes=[
                       "Action taken with study treatment as recorded by the investigator (AEACN).",
                       *footnotes], population="Safety population", source="ADAE (AEACN)")


def compute_death_causes(adsl: pd.DataFrame, adae: pd.DataFrame) -> pd.DataFrame:
    """Deaths of the safety population with their primary-cause category and relatedness.

    Rule
    ----
    docs/safety.md "deaths by cause" (TLG DTHT01, STF T8): DTHCAT = ``PROGRESSIVE DISEASE`` when
    ADSL DTHCAUS contains PROGRESS; else ``ADVERSE EVENT`` when DTHCAUS contains ADVERSE or the
    subject has a fatal AE (AEFATFL = Y); else ``OTHER OR UNKNOWN``. DTHRELFL = Y for an
    adverse-event death with a fatal AE assessed as related (AERELFL = Y). The deaths table and
    results.json ``safety.deaths`` both count from this one frame.

    Returns
    -------
    The safety-population rows with DTHFL = Y (all ADSL columns) plus DTHCAT and DTHRELFL.
    """
    saf = safety_population(adsl)
    dth = saf.loc[(saf.get("DTHFL", pd.Series("", index=saf.index)).astype("string").str.upper()
                   == "Y").fillna(False).to_numpy()]
    cause = dth.get("DTHCAUS", pd.Series(pd.NA, index=dth.index)).astype("string").str.upper().fillna("")
    fatal = adae.loc[adae["AEFATFL"] == "Y"] if len(adae) else adae
    fatal_subj = set(fatal["USUBJID"]) if len(fatal) else set()
    rel_subj = set(fatal.loc[fatal["AERELFL"] == "Y", "USUBJID"]) if len(fatal) else set()
    is_pd = cause.str.contains("PROGRESS", regex=False).to_numpy(dtype=bool)
    is_ae = ((cause.str.contains("ADVERSE", regex=False).to_numpy(dtype=bool)
              | dth["USUBJID"].isin(fatal_subj).to_numpy(dtype=bool)) & ~is_pd)
    out = dth.copy()
    out["DTHCAT"] = np.select([is_pd, is_ae], ["PROGRESSIVE DISEASE", "ADVERSE EVENT"], default="OTHER OR UNKNOWN")
    out["DTHRELFL"] = np.where(is_ae & dth["USUBJID"].isin(rel_subj).to_numpy(dtype=bool), "Y", "N")
    return out


@by_arm("safety")
def table_deaths(adsl: pd.DataFrame, adae: pd.DataFrame, *, window_days: int, footnotes: list[str]) -> Table:
    """DTHT01 / STF T8: deaths by primary cause and relatedness, and by time from last dose.

    Rule
    ----
    Cause from ADSL DTHCAUS: progression (PROGRESSIVE DISEASE / DISEASE PROGRESSION), adverse
    event (ADVERSE EVENT, or a fatal AE recorded), other/unknown. Related: a fatal TEAE with
    AEREL = Y. STORM: 12 deaths from AEs, 2 judged treatment-related (domain.md 1.6).
    """
    saf = safety_population(adsl)
    n = len(saf)
    b = TableBuilder("Deaths", [f"All patients (N={n})"])
    c = b.columns[0]
    dth = compute_death_causes(adsl, adae)
    is_pd = dth["DTHCAT"].eq("PROGRESSIVE DISEASE").to_numpy()
    is_ae = dth["DTHCAT"].eq("ADVERSE EVENT").to_numpy()
    rel = dth["DTHRELFL"].eq("Y").to_numpy()
    b.add("All deaths", {c: b.count(dth["USUBJID"], n)})
    b.add("  Progressive disease", {c: b.count(dth.loc[is_pd, "USUBJID"], n)})
    b.add("  Adverse event", {c: b.count(dth.loc[is_ae, "USUBJID"], n)})
    b.add("    Related to study treatment", {c: b.count(dth.loc[is_ae & rel, "USUBJID"], n)})
    b.add("    Not related", {c: b.count(dth.loc[is_ae & ~rel, "USUBJID"], n)})
    b.add("  Other or unknown", {c: b.count(dth.loc[~is_pd & ~is_ae, "USUBJID"], n)})
    if "DTHDT" in dth and "TRTEDT" in dth:
        days = (pd.to_datetime(dth["DTHDT"]) - pd.to_datetime(dth["TRTEDT"])).dt.days
        b.add(f"Within {window_days} days of last dose", {c: b.count(dth.loc[(days <= window_days).fillna(False).to_numpy(), "USUBJID"], n)})
        b.add(f"More than {window_days} days after last dose", {c: b.count(dth.loc[(days > window_days).fillna(False).to_numpy(), "USUBJID"], n)})
    return b.table("DTHT01", "Deaths by primary cause and relatedness", footnotes=[
        "Cause of death from the disposition record (ADSL DTHCAUS); a death with a fatal adverse "
        "event is counted under adverse event unless the cause is progression. Related = a fatal "
        "adverse event assessed as related to study treatment (AEREL = Y).", *footnotes],
        population="Safety population", source="ADSL (DTHFL, DTHCAUS, DTHDT), ADAE (AEOUT, AEREL)")


LAB_ORDER = ["PLAT", "NEUT", "HGB", "WBC", "LYM", "SODIUM", "CREAT"]


def _lab_terms(adlb: pd.DataFrame) -> list[tuple[str, str, str]]:
    t = adlb.loc[adlb["ATOXDSCL"].notna(), ["PARAMCD", "ATOXDSCL", "ATOXDIR"]].drop_duplicates()
    rows = [tuple(map(str, r)) for r in t.itertuples(index=False)]
    return sorted(rows, key=lambda r: (LAB_ORDER.index(r[0]) if r[0] in LAB_ORDER else 99, r[0]))


def worst_lab_grades(adlb: pd.DataFrame, adsl: pd.DataFrame) -> pd.DataFrame:
    """Per safety subject and graded test: worst post-baseline grade and baseline grade."""
    saf = set(safety_population(adsl)["USUBJID"])
    keep = ((adlb["WGRLOFL"] == "Y") | (adlb["WGRHIFL"] == "Y")) & adlb["USUBJID"].isin(saf)
    d = adlb[["USUBJID", "PARAMCD", "ATOXDSCL", "ATOXDIR", "ATOXGR", "BTOXGR"]].loc[keep]
    return d.reset_index(drop=True)


@by_arm("safety")
def table_lab_worst_grade(adlb: pd.DataFrame, adsl: pd.DataFrame, *, footnotes: list[str]) -> Table:
    """LBT07: highest CTCAE grade post-baseline per test and direction."""
    w = worst_lab_grades(adlb, adsl)
    cols = ["n", "Grade 1", "Grade 2", "Grade 3", "Grade 4", "Grade 3-4", "Any grade"]
    b = TableBuilder("CTCAE term (test)", cols)
    paramcd = w["PARAMCD"].to_numpy(dtype=object)
    uid = w["USUBJID"].to_numpy(dtype=object)
    grade = w["ATOXGR"].astype(float).to_numpy()
    for pc, term, _dir in _lab_terms(adlb):
        sel = paramcd == pc
        u, g = uid[sel], grade[sel]
        m = len(u)
        b.add(f"{term} ({pc})", {
            "n": f"{m}",
            **{f"Grade {k}": b.count(u[g == k], m) for k in (1, 2, 3, 4)},
            "Grade 3-4": b.count(u[g >= 3], m),
            "Any grade": b.count(u[g >= 1], m),
        })
    return b.table("LBT07", "Laboratory abnormalities: highest CTCAE grade post-baseline",
                   footnotes=["n = patients with at least one graded post-baseline value on "
                              "treatment; percentages of n (not of the whole safety population: "
                              "the lab-versus-AE table divides the same counts by N, so its "
                              "percentages are smaller).", *footnotes],
                   population="Safety population with a graded post-baseline value", source="ADLB (ATOXGR, WGRLOFL, WGRHIFL)")


@by_arm("safety")
def table_lab_shift(adlb: pd.DataFrame, adsl: pd.DataFrame, paramcd: str, *, footnotes: list[str]) -> Table | None:
    """LBT14: baseline grade (rows) x highest post-baseline grade (columns) for one test."""
    w = worst_lab_grades(adlb, adsl)
    d = w.loc[w["PARAMCD"] == paramcd]
    if d.empty:
        return None
    term = str(d["ATOXDSCL"].iloc[0])
    cols = ["n", "Grade 0", "Grade 1", "Grade 2", "Grade 3", "Grade 4"]
    b = TableBuilder("Baseline grade", cols)
    bg = d["BTOXGR"].astype(float).to_numpy()
    ag = d["ATOXGR"].astype(float).to_numpy()
    uid = d["USUBJID"].to_numpy(dtype=object)
    labels = [("Grade 0 (normal)", bg == 0)] + [(f"Grade {k}", bg == k) for k in (1, 2, 3, 4)] + [
        ("Missing", np.isnan(bg))]
    for label, m in labels:
        k = int(m.sum())
        if k == 0 and label == "Missing":
            continue
        vals = {"n": (f"{k}", uid[m])}
        for j in range(5):
            vals[f"Grade {j}"] = b.count(uid[m & (ag == j)], k)
        b.add(label, vals)
    total = len(d)
    vals = {"n": (f"{total}", uid)}
    for j in range(5):
        vals[f"Grade {j}"] = b.count(uid[ag == j], total)
    b.add("Total", vals)
    return b.table(f"LBT14-{paramcd}", f"Shift from baseline to highest post-baseline CTCAE grade: {term} ({paramcd})",
                   footnotes=["Rows: baseline grade (baseline graded against the normal range); "
                              "columns: highest grade post-baseline on treatment; percentages of "
                              "the row n.", *footnotes],
                   population="Safety population with a graded post-baseline value",
                   source="ADLB (BTOXGR, ATOXGR, worst-grade flags)")


@by_arm("safety")
def table_lab_shift_to_grade34(adlb: pd.DataFrame, adsl: pd.DataFrame, tests: Iterable[str], *,
                               footnotes: list[str]) -> Table | None:
    """LBT15: shifts to CTCAE grade 3-4 post-baseline, one row per test (and its direction).

    Rule
    ----
    tlg-catalog.md section 5, LBT15 (TLG catalog ``tables/lab-results/lbt15``; tern
    ``count_abnormal_by_baseline`` with abnormal = grade 3-4): for each test, n/N (%) where n =
    patients whose highest post-baseline on-treatment grade is 3 or 4, and N = patients with a
    graded post-baseline value whose baseline grade is not 3-4 (baseline grade 0-2; a missing
    baseline grade is excluded, as in tern). Beside it, the same for patients already grade 3-4
    at baseline, and the total (N = all patients with a graded post-baseline value).
    """
    w = worst_lab_grades(adlb, adsl)
    want = [str(t) for t in tests]
    w = w.loc[w["PARAMCD"].astype(str).isin(want)]
    if w.empty:
        return None
    cols = ["Baseline not grade 3-4", "Baseline grade 3-4", "Total"]
    b = TableBuilder("CTCAE term (test)", cols)

    def frac(sub: pd.DataFrame, hit: np.ndarray) -> tuple[str, list[str]]:
        k = len(sub)
        subj = sorted(map(str, sub.loc[hit, "USUBJID"]))
        x = len(subj)
        return (f"{x}/{k} ({fmt_pct(x, k)}%)" if k else "0/0"), subj

    for pc, term, _dir in _lab_terms(adlb):
        if pc not in want:
            continue
        d = w.loc[w["PARAMCD"] == pc]
        if d.empty:
            continue
        bg = d["BTOXGR"].astype(float).to_numpy()
        ag = d["ATOXGR"].astype(float).to_numpy()
        hit = ag >= 3
        not34 = ~np.isnan(bg) & (bg < 3)
        is34 = bg >= 3
        b.add(f"{term} ({pc})", {
            cols[0]: frac(d.loc[not34], hit[not34]),
            cols[1]: frac(d.loc[is34], hit[is34]),
            cols[2]: frac(d, hit),
        })
    if not b.rows:
        return None
    return b.table("LBT15", "Laboratory test shifts to CTCAE grade 3-4 post-baseline",
                   footnotes=["n/N (%): n = patients whose highest post-baseline grade on treatment "
                              "is 3 or 4; N = patients with a graded post-baseline value and the "
                              "baseline grade of the column (baseline graded against the normal "
                              "range; a missing baseline grade counts only in Total).", *footnotes],
                   population="Safety population with a graded post-baseline value",
                   source="ADLB (BTOXGR, ATOXGR, worst-grade flags)")


@by_arm("safety")
def table_lab_vs_ae(adlb: pd.DataFrame, adae: pd.DataFrame, adsl: pd.DataFrame, *,
                    ae_terms: dict[str, tuple[str, ...]], footnotes: list[str]) -> Table:
    """mmtrial-LB01: lab-derived worst grades beside investigator-reported AE incidence.

    A reviewer reads under-reporting off the gap between the lab columns and the AE columns.
    """
    saf = safety_population(adsl)
    n = len(saf)
    w = worst_lab_grades(adlb, adsl)
    te = teae(adae, adsl, ["USUBJID", "AEDECOD", "ATOXGR"])
    wa = worst_grade_per_subject_pt(te) if len(te) else te.assign(_G=[])
    cols = ["Lab any grade", "Lab grade 3", "Lab grade 4", "AE any grade", "AE grade 3", "AE grade 4"]
    b = TableBuilder("CTCAE term (test)", cols)
    paramcd = w["PARAMCD"].to_numpy(dtype=object)
    uid = w["USUBJID"].to_numpy(dtype=object)
    grade = w["ATOXGR"].astype(float).to_numpy()
    wa = wa[["USUBJID", "_G"]].assign(_PT=wa["AEDECOD"].astype("string").str.upper())
    for pc, term, _dir in _lab_terms(adlb):
        sel = paramcd == pc
        u, g = uid[sel], grade[sel]
        terms = ae_terms.get(pc, ())
        a = wa.loc[wa["_PT"].isin(list(terms)).fillna(False).to_numpy()]
        a = a.sort_values("_G", ascending=False).drop_duplicates("USUBJID")
        au, ag = a["USUBJID"].to_numpy(dtype=object), a["_G"].to_numpy()
        b.add(f"{term} ({pc})", {
            "Lab any grade": b.count(u[g >= 1], n),
            "Lab grade 3": b.count(u[g == 3], n),
            "Lab grade 4": b.count(u[g == 4], n),
            "AE any grade": b.count(au, n),
            "AE grade 3": b.count(au[ag == 3], n),
            "AE grade 4": b.count(au[ag == 4], n),
        })
    return b.table("mmtrial-LB01", "Myeloma laboratory toxicities: lab-derived CTCAE grade beside "
                   "investigator-reported adverse events", footnotes=[
                       "Lab columns: highest post-baseline CTCAE grade derived from values; AE "
                       "columns: treatment-emergent AEs reported under the matching preferred "
                       "terms (e.g. Thrombocytopenia, Platelet count decreased), highest grade. "
                       f"Percentages of the safety population (N = {n}), lab and AE columns alike; "
                       "the laboratory-abnormalities table divides the same lab counts by the "
                       "patients with a graded post-baseline value, hence its larger percentages.",
                       *footnotes],
                   population=f"Safety population (N = {n})", source="ADLB (ATOXGR), ADAE (AEDECOD, ATOXGR)")
