"""The cohort derivations at scale: one SQL pass in DuckDB over Parquet (out of core), and the
pandas derivations partitioned by patient on Dask (docs/external.md, "Scale").

Input: a *normalised cohort folder* (:func:`write_normalised_parquet`): ``ex/*.parquet``
(USUBJID, CMGRPID, DRUG, CMSTDT, CMENDT, CMRSDISC, CMSCAT, CMLNKGRP; one row per drug of a
regimen, DRUG the dictionary's canonical name), ``pd/*.parquet`` (USUBJID, PDDT: prior-therapy
progressions), ``lab/*.parquet`` (USUBJID, LBDT, VAL: serum M-protein g/dL) and
``sct/*.parquet`` (USUBJID, PRROW, PRTRT, PRSTDT, PRLNKGRP: the pr procedures) and
``classes.parquet`` (DRUG, CLASS), each file holding whole patients (a hash bucket of USUBJID).
``pd`` also carries RSGRPID (for ``pd_link = "regimen"``); ``resp/*.parquet`` (USUBJID, RSGRPID,
RSSTRESC, RSDT) holds the other prior-therapy responses (for ``nonresponse_is_refractory``).

The SQL pass computes, for every line of every patient, what external/history.py and
external/emulate.py compute with pandas (tests/external/test_scale.py checks equality, on a
simulated cohort and on generated cohorts with transplants and non-default rules):

* integer person and drug ids first (every join and window is on integers; drug sets are
  128-bit masks, so "a subset of the previous regimen" is one AND);
* lines (Rajkumar 2015) with the LineRule rules a-d and the transplant rule (a later SCT starts
  a line unless it is a planned tandem) of derive/lines.py, as window functions over the items
  (regimens and pr transplants) of each patient;
* refractoriness in closed form, without a landmark copy of the history: a row's *threshold* is
  its first progression after its first dose (an ASOF join) when that progression is within
  ``window_days`` of the last dose (a row without an end is ongoing until the day before the
  line: the progression must be on or before the line's start, and ``min_exposure_days`` then
  counts up to it). The drug is refractory at line *L* when a row of a line before *L* has a
  threshold on or before *L*'s start; line starts do not decrease, so a second ASOF join gives
  the first such line (the drug's *onset line*), and per-line counts of drugs in a rule term's
  set are cumulative sums of onsets (and first exposures) over the lines: one window per patient;
* refractory to the last line (an item of line L-1 with a threshold by line L's start), measurable
  disease (ASOF join of the latest M-protein within the lab window), the composite flags and the
  eligibility criteria.

RefractoryRule options handled: window_days, min_exposure_days, pd_link, pd_on_first_day,
missing_end, nonresponse_is_refractory (the regimen's first non-response date, like a progression
that needs no window), composites; partial_dates other than "imputed" raises (it needs the
imputation flags: the pandas and Dask paths have them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial.derive.drugs import DrugDictionary
from mmtrial.derive.eligibility import Criterion, EligibilityRule
from mmtrial.derive.lines import DEFAULT_LINE_RULE, LineRule
from mmtrial.derive.refractory import DEFAULT_REFRACTORY_RULE, RefractoryRule, parse_term
from mmtrial.external.emulate import EmulationOptions

DEFAULT_EMULATION = EmulationOptions()


def _q(values: tuple[str, ...]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")" if values else "(NULL)"


def write_normalised_parquet(frames: dict[str, pd.DataFrame], folder: str | Path, *, dictionary: DrugDictionary,
                             partitions: int = 1, part: int = 0) -> Path:
    """Write checked cohort frames (external/cohort.py) as a normalised cohort folder part.

    Rows are bucketed by ``hash(USUBJID) % partitions``; call once per chunk of patients with a
    distinct ``part`` to build a large folder chunk by chunk (files ``<table>/part-<part>-<b>.parquet``).
    """
    from mmtrial.derive.drugs import derive_drug_exposure

    folder = Path(folder)
    ex, _ = derive_drug_exposure(frames.get("cm"), dictionary=dictionary)
    ex = ex[["USUBJID", "CMGRPID", "DRUG", "CMSTDT", "CMENDT", "CMRSDISC", "CMSCAT", "CMLNKGRP"]]
    rs = frames.get("rs")
    if rs is not None and len(rs):
        sel = (rs["RSCAT"].astype("string").str.upper().eq("PRIOR THERAPY").fillna(False)
               & rs["RSSTRESC"].astype("string").str.upper().eq("PD").fillna(False) & rs["RSDT"].notna())
        if "RSTESTCD" in rs:
            sel &= rs["RSTESTCD"].astype("string").str.upper().eq("OVRLRESP").fillna(False)
        grp = rs["RSGRPID"].astype("string") if "RSGRPID" in rs else pd.Series(pd.NA, index=rs.index, dtype="string")
        pdt = pd.DataFrame({"USUBJID": rs.loc[sel, "USUBJID"].astype("string"), "PDDT": pd.to_datetime(rs.loc[sel, "RSDT"]),
                            "RSGRPID": grp[sel]})
    else:
        pdt = pd.DataFrame({"USUBJID": pd.Series(dtype="string"), "PDDT": pd.Series(dtype="datetime64[ns]"),
                            "RSGRPID": pd.Series(dtype="string")})
    resp = pd.DataFrame({"USUBJID": pd.Series(dtype="string"), "RSGRPID": pd.Series(dtype="string"),
                         "RSSTRESC": pd.Series(dtype="string"), "RSDT": pd.Series(dtype="datetime64[ns]")})
    if rs is not None and len(rs):  # the other prior-therapy responses (non-response rules)
        sel = (rs["RSCAT"].astype("string").str.upper().eq("PRIOR THERAPY").fillna(False) & rs["RSDT"].notna()
               & ~rs["RSSTRESC"].astype("string").str.upper().eq("PD").fillna(False))
        if "RSTESTCD" in rs:
            sel &= rs["RSTESTCD"].astype("string").str.upper().eq("OVRLRESP").fillna(False)
        resp = pd.DataFrame({"USUBJID": rs.loc[sel, "USUBJID"].astype("string"), "RSGRPID": grp[sel],
                             "RSSTRESC": rs.loc[sel, "RSSTRESC"].astype("string").str.upper().str.strip(),
                             "RSDT": pd.to_datetime(rs.loc[sel, "RSDT"])})
    pr = frames.get("pr")
    sct = pd.DataFrame({"USUBJID": pd.Series(dtype="string"), "PRROW": pd.Series(dtype="int64"),
                        "PRTRT": pd.Series(dtype="string"), "PRSTDT": pd.Series(dtype="datetime64[ns]"),
                        "PRLNKGRP": pd.Series(dtype="string")})
    if pr is not None and len(pr) and "PRTRT" in pr:
        sct = pd.DataFrame({
            "USUBJID": pr["USUBJID"].astype("string"),
            "PRROW": pr["ROWNUM"].astype("int64") if "ROWNUM" in pr else np.arange(1, len(pr) + 1),
            "PRTRT": pr["PRTRT"].astype("string").str.upper().str.strip(),
            "PRSTDT": pd.to_datetime(pr["PRSTDT"]) if "PRSTDT" in pr else pd.NaT,
            "PRLNKGRP": pr["PRLNKGRP"].astype("string") if "PRLNKGRP" in pr else pd.Series(pd.NA, index=pr.index, dtype="string")})
    lb = frames.get("lb")
    if lb is not None and len(lb):
        m = lb.loc[lb["LBTESTCD"].astype("string").str.upper().eq("MPROTEIN").fillna(False)
                   & lb["LBSPEC"].astype("string").str.upper().isin(["SERUM", "BLOOD", "SERUM OR PLASMA"]).fillna(False)
                   & lb["LBDT"].notna() & pd.to_numeric(lb["LBSTRESN"], errors="coerce").notna()]
        lab = pd.DataFrame({"USUBJID": m["USUBJID"].astype("string"), "LBDT": pd.to_datetime(m["LBDT"]),
                            "VAL": pd.to_numeric(m["LBSTRESN"]).astype(float)})
    else:
        lab = pd.DataFrame({"USUBJID": pd.Series(dtype="string"), "LBDT": pd.Series(dtype="datetime64[ns]"),
                            "VAL": pd.Series(dtype=float)})
    for name, df in (("ex", ex), ("pd", pdt), ("lab", lab), ("sct", sct), ("resp", resp)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        b = pd.util.hash_pandas_object(df["USUBJID"].astype(str), index=False).to_numpy() % partitions
        for k in range(partitions):
            df.loc[b == k].reset_index(drop=True).to_parquet(folder / name / f"part-{part:05d}-{k:04d}.parquet", index=False)
    dictionary.drug_classes[["DRUG", "CLASS"]].to_parquet(folder / "classes.parquet", index=False)
    return folder


class _Terms:
    """Rule terms as SQL: drug-set counts become cumulative per-line columns ``T.A<k>`` (drugs of
    the set that became refractory, or were first exposed, at or before the line), the others
    conditions on the per-line table ``L``."""

    def __init__(self, dictionary: DrugDictionary, drug_ids: dict[str, int], masks: bool) -> None:
        self.dictionary = dictionary
        self.drug_ids = drug_ids
        self.masks = masks  # drug sets as 128-bit masks (T.RMASK, T.EMASK) rather than one count per set
        self.aggs: dict[tuple[str, tuple[int, ...]], str] = {}

    def sql(self, term: str) -> str:
        t = parse_term(term)
        if t.kind == "lines":
            return f"(L.NPRIOR >= {t.n})"
        if t.kind == "last_line":
            return "(L.LSTREFFL = 'Y')"
        if t.kind == "flag":
            if t.var != "MEASFL":
                raise ValueError(f"rule term {term!r}: the SQL pass derives only the flag MEASFL")
            return "(L.MEASFL = 'Y')"
        drugs: set[str] = set()
        for n in t.names:
            kind, canon = self.dictionary.resolve(n)
            if kind == "drug":
                drugs.add(canon)
            else:
                drugs |= set(self.dictionary.drug_classes.loc[self.dictionary.drug_classes["CLASS"] == canon, "DRUG"])
        ids = tuple(sorted(self.drug_ids[d] for d in drugs if d in self.drug_ids))
        if self.masks:
            col = "T.RMASK" if t.status == "refractory" else "T.EMASK"
            return f"(bit_count({col} & '{sum(1 << i for i in ids)}'::HUGEINT) >= {t.n})"
        key = (t.status, ids)
        if key not in self.aggs:
            self.aggs[key] = f"A{len(self.aggs)}"
        return f"(T.{self.aggs[key]} >= {t.n})"

    def event_columns(self) -> str:
        """Per (patient, line): drugs of each set whose refractoriness starts (R) or whose first
        exposure counts (E) at that line."""
        if self.masks:
            return ("bit_or(CASE WHEN K = 'R' THEN 1::HUGEINT << DID ELSE 0::HUGEINT END) AS RMASK, "
                    "bit_or(CASE WHEN K = 'E' THEN 1::HUGEINT << DID ELSE 0::HUGEINT END) AS EMASK")
        out = []
        for (status, ids), col in self.aggs.items():
            k = "R" if status == "refractory" else "E"
            inset = f"DID IN ({', '.join(map(str, ids))})" if ids else "FALSE"
            out.append(f"sum(CASE WHEN K = '{k}' AND {inset} THEN 1 ELSE 0 END)::INTEGER AS {col}")
        return ", ".join(out) if out else "0 AS A_NONE"

    def cumulative_columns(self) -> str:
        if self.masks:
            # a line without a start date has no progression on or before it (pandas path: rs_l empty)
            return ("CASE WHEN L.LOTSTDT IS NULL THEN 0::HUGEINT ELSE coalesce(bit_or(ev.RMASK), 0::HUGEINT) END AS RMASK, "
                    "coalesce(bit_or(ev.EMASK), 0::HUGEINT) AS EMASK")
        out = []
        for (status, _), col in self.aggs.items():
            cum = f"coalesce(sum(ev.{col}), 0)"
            # a line without a start date has no progression on or before it (pandas path: rs_l empty)
            out.append(f"CASE WHEN L.LOTSTDT IS NULL THEN 0 ELSE {cum} END AS {col}" if status == "refractory"
                       else f"{cum} AS {col}")
        return ", ".join(out) if out else "0 AS A_NONE"


MASK_DRUGS = 126  # at most this many distinct drugs: drug sets as HUGEINT bit masks

def _check_sql_rule(rule: RefractoryRule) -> None:
    """The SQL pass implements every RefractoryRule option except partial-date bounds (they need
    the imputation flags)."""
    if rule.partial_dates != "imputed":
        raise ValueError("derive_status_sql implements RefractoryRule partial_dates = 'imputed' (the normalised "
                         "folder holds imputed dates without their flags); use the pandas path "
                         "(external/history.py) or derive_status_dask for partial_dates = 'certain'/'possible'")


def _has_column(con: Any, glob: str, column: str) -> bool:
    cols = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{glob}')").df()["column_name"]
    return column in set(cols)


def derive_status_sql(
    folder: str | Path,
    *,
    eligibility: EligibilityRule | None = None,
    dictionary: DrugDictionary | None = None,
    line_rule: LineRule = DEFAULT_LINE_RULE,
    refractory_rule: RefractoryRule = DEFAULT_REFRACTORY_RULE,
    options: EmulationOptions = DEFAULT_EMULATION,
    out: str | Path | None = None,
    con: Any = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
    timings: list[tuple[str, float]] | None = None,
) -> pd.DataFrame | Path:
    """Lines, refractory status and eligibility at every line start, in one DuckDB SQL pass over
    a normalised cohort folder (module docstring). Returns a frame, or writes ``out`` (Parquet)
    and returns its path (out of core: nothing is pulled into Python).

    ``memory_limit``, ``threads``, ``temp_directory``: DuckDB settings (spill files go to
    ``temp_directory``); ``timings``: a list that receives (step, seconds) per statement.
    """
    import duckdb

    _check_sql_rule(refractory_rule)
    dictionary = dictionary or DrugDictionary.load(None)
    folder = Path(folder)
    own = con is None
    con = con or duckdb.connect()
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if temp_directory:
        con.execute(f"SET temp_directory = '{temp_directory}'")
    con.execute("SET preserve_insertion_order = false")
    r = line_rule
    rr = refractory_rule
    w = int(rr.window_days)
    after = ">=" if rr.pd_on_first_day else ">"
    ongoing_lag = max(0, 1 - w)  # an ongoing row (no end) ends the day before the line: PD <= start + min(0, w - 1)
    ongoing = rr.missing_end == "ongoing"
    epoch = "DATE '1970-01-01'"

    def run(step: str, sql: str) -> None:
        t0 = time.perf_counter()
        con.execute(sql)
        if timings is not None:
            timings.append((step, time.perf_counter() - t0))

    try:
        ex = f"read_parquet('{folder}/ex/*.parquet')"
        has_sct = (folder / "sct").is_dir() and any((folder / "sct").glob("*.parquet"))
        link = rr.pd_link == "regimen"
        if link and not _has_column(con, f"{folder}/pd/*.parquet", "RSGRPID"):
            raise ValueError(f"pd_link = 'regimen' needs RSGRPID in {folder}/pd (write the folder again with "
                             "write_normalised_parquet)")
        sct_src = f"read_parquet('{folder}/sct/*.parquet')" if has_sct else None
        ids = f"SELECT DISTINCT USUBJID FROM {ex}" + (f" UNION SELECT DISTINCT USUBJID FROM {sct_src}" if sct_src else "")
        # integer person ids (in USUBJID order) and drug ids: every join and window below is on integers
        run("patients", f"""CREATE OR REPLACE TEMP TABLE subj AS
            SELECT USUBJID, (row_number() OVER (ORDER BY USUBJID))::INTEGER AS PID FROM ({ids}) u""")
        run("drugs", f"""CREATE OR REPLACE TEMP TABLE drugs AS
            SELECT DRUG, (row_number() OVER (ORDER BY DRUG) - 1)::INTEGER AS DID
            FROM (SELECT DISTINCT DRUG FROM {ex} WHERE DRUG IS NOT NULL) d""")
        drug_ids = dict(con.execute("SELECT DRUG, DID FROM drugs").fetchall())
        use_masks = len(drug_ids) <= MASK_DRUGS
        if use_masks:  # drug sets as a 128-bit mask (subset = one AND)
            mask, no_mask = "bit_or(CASE WHEN DID IS NULL THEN 0::HUGEINT ELSE (1::HUGEINT << DID) END)", "0::HUGEINT"
            subset = "((MASK & PMASK) = MASK)"
            ndrugs = f"bit_count({mask})::INTEGER"  # distinct drugs: the set bits (no DISTINCT aggregate)
        else:
            mask, no_mask = "list_sort(list(DISTINCT DID) FILTER (WHERE DID IS NOT NULL))", "[]::INTEGER[]"
            subset = "list_has_all(PMASK, MASK)"
            ndrugs = f"len({mask})::INTEGER"
        run("exposure rows", f"""CREATE OR REPLACE TEMP TABLE x AS
            SELECT s.PID, e.CMGRPID AS ITEMID, d.DID,
                   (CAST(e.CMSTDT AS DATE) - {epoch})::INTEGER AS ST, (CAST(e.CMENDT AS DATE) - {epoch})::INTEGER AS EN,
                   upper(trim(e.CMRSDISC)) AS REASON, upper(trim(e.CMSCAT)) AS PHASE,
                   CASE WHEN trim(e.CMLNKGRP) <> '' THEN e.CMLNKGRP END AS LNK
            FROM {ex} e JOIN subj s ON s.USUBJID = e.USUBJID LEFT JOIN drugs d ON d.DRUG = e.DRUG""")
        noend = "-2147483647"
        sct_sql = ""
        if sct_src:
            sct_sql = f"""UNION ALL
            SELECT s.PID, 'SCT' || CAST(p.PRROW AS VARCHAR) AS ITEMID, TRUE AS ISSCT,
                   (CAST(p.PRSTDT AS DATE) - {epoch})::INTEGER AS ST, (CAST(p.PRSTDT AS DATE) - {epoch})::INTEGER AS EN,
                   NULL::VARCHAR AS REASON, NULL::VARCHAR AS PHASE,
                   CASE WHEN trim(p.PRLNKGRP) <> '' THEN trim(p.PRLNKGRP) END AS LNK, {no_mask} AS MASK, 0 AS NDRUGS
            FROM {sct_src} p JOIN subj s ON s.USUBJID = p.USUBJID
            WHERE upper(trim(p.PRTRT)) IN {_q(r.transplant_terms)}"""
        run("regimens", f"""CREATE OR REPLACE TEMP TABLE it AS
            SELECT PID, ITEMID, FALSE AS ISSCT, min(ST) AS ST,
                   CASE WHEN bool_or(EN IS NULL) THEN NULL ELSE max(EN) END AS EN,
                   arg_max(REASON, coalesce(EN, {noend})) FILTER (WHERE REASON IS NOT NULL) AS REASON,
                   arg_min(PHASE, coalesce(EN, {noend})) FILTER (WHERE PHASE IS NOT NULL) AS PHASE,
                   arg_min(LNK, coalesce(EN, {noend})) FILTER (WHERE LNK IS NOT NULL) AS LNK,
                   {mask} AS MASK, {ndrugs} AS NDRUGS
            FROM x GROUP BY PID, ITEMID
            {sct_sql}""")
        planned = "TRUE" if r.infer_planned else "FALSE"
        tandem = f"coalesce(ST - LSCT <= {r.tandem_max_days}, FALSE)"
        if r.tandem_requires_link:
            tandem += " AND coalesce(LNK = LLNK, FALSE)"
        order = "PID ORDER BY ST IS NULL, ST, ISSCT, ITEMID"
        run("lines", f"""CREATE OR REPLACE TEMP TABLE items AS
            WITH p AS (
              SELECT *, row_number() OVER w AS ITEMSEQ, lag(ST) OVER w AS PST, lag(EN) OVER w AS PEN,
                     lag(REASON) OVER w AS PREASON, lag(PHASE) OVER w AS PPHASE, lag(LNK) OVER w AS PLNK,
                     lag(MASK) OVER w AS PMASK, lag(ISSCT) OVER w AS PSCT,
                     last_value(CASE WHEN ISSCT THEN ST END IGNORE NULLS) OVER wp AS LSCT,
                     last_value(CASE WHEN ISSCT THEN LNK END IGNORE NULLS) OVER wp AS LLNK,
                     coalesce(sum(ISSCT::INTEGER) OVER wp, 0) AS NPSCT
              FROM it
              WINDOW w AS (PARTITION BY {order}),
                     wp AS (PARTITION BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)),
            g AS (
              SELECT *, ST - PEN AS GAP, ISSCT AND NPSCT > 0 AS LATER FROM p),
            f AS (
              SELECT *,
                coalesce(ST = PST, FALSE) AS SAME,
                coalesce(LNK IS NOT NULL AND LNK = PLNK, FALSE) AS LINKED,
                coalesce(NOT ISSCT AND NOT coalesce(PSCT, TRUE) AND NDRUGS > 0 AND {subset}
                         AND NOT coalesce(PREASON IN {_q(r.progression_reasons)}, FALSE)
                         AND GAP <= {r.same_regimen_gap_days}, FALSE) AS CONT,
                coalesce({planned} AND (coalesce(PREASON IN {_q(r.planned_reasons)}, FALSE)
                                        OR coalesce(PHASE IN {_q(r.continuation_phases)}, FALSE)
                                        OR (ISSCT AND coalesce(PPHASE = 'INDUCTION', FALSE)))
                         AND NOT coalesce(PREASON IN {_q(r.unplanned_reasons)}, FALSE)
                         AND GAP <= {r.planned_gap_days}, FALSE) AS PLANNED,
                {tandem} AS TANDEM
              FROM g)
            SELECT PID, ITEMID, ISSCT, ST, EN, ITEMSEQ,
                   sum(CASE WHEN ITEMSEQ = 1 OR (LATER AND NOT TANDEM)
                                 OR (NOT LATER AND NOT (SAME OR LINKED OR PLANNED OR CONT)) THEN 1 ELSE 0 END)
                       OVER (PARTITION BY PID ORDER BY ITEMSEQ ROWS UNBOUNDED PRECEDING)::INTEGER AS LINENUM
            FROM f""")
        grp = ", RSGRPID AS GRP" if link else ""
        run("progressions", f"""CREATE OR REPLACE TEMP TABLE pdt AS
            SELECT s.PID, (CAST(p.PDDT AS DATE) - {epoch})::INTEGER AS PD{grp}
            FROM read_parquet('{folder}/pd/*.parquet') p JOIN subj s ON s.USUBJID = p.USUBJID WHERE p.PDDT IS NOT NULL""")

        nonresp = rr.nonresponse_is_refractory
        if nonresp:
            if not ((folder / "resp").is_dir() and any((folder / "resp").glob("*.parquet"))):
                raise ValueError(f"nonresponse_is_refractory needs {folder}/resp (the prior-therapy responses; "
                                 "write the folder again with write_normalised_parquet)")
            # the first non-response (e.g. SD) recorded for each regimen (derive/refractory.py)
            run("non-response", f"""CREATE OR REPLACE TEMP TABLE nrt AS
                SELECT s.PID, r.RSGRPID AS GRP, min((CAST(r.RSDT AS DATE) - {epoch})::INTEGER) AS NRDT
                FROM read_parquet('{folder}/resp/*.parquet') r JOIN subj s ON s.USUBJID = r.USUBJID
                WHERE r.RSDT IS NOT NULL AND upper(trim(r.RSSTRESC)) IN {_q(rr.nonresponse_values)}
                GROUP BY s.PID, r.RSGRPID""")
        m = int(rr.min_exposure_days)
        zero = "TRUE" if m == 0 else "FALSE"
        # A row's threshold: the first line start on or after it makes the row count. PD: the first
        # progression after the first dose (ASOF: nearest later PD), when within the window of a
        # known last dose; a row without an end is ongoing until the day before the line (PD on or
        # before the line's start; exposure counted up to it), or never counts (missing_end exclude).
        # Exposure (min_exposure_days): derive/refractory.py, (end - start + 1) >= m, unknown -> m == 0.
        fin_ok = f"coalesce(EN - ST + 1 >= {m}, {zero})"
        if ongoing:
            pd_open = f"CASE WHEN NXT IS NOT NULL THEN greatest(NXT + {ongoing_lag}, ST + {m}) END"
            # no start date either: undated, never counts (derive/refractory.py EXPOKFL)
            nr_open = f"CASE WHEN NRDT IS NULL OR ST IS NULL THEN NULL ELSE greatest(NRDT, ST + {m}) END"
        else:
            pd_open = "NULL"
            nr_open = "NULL"  # missing_end "exclude": the row does not count, neither by PD nor by non-response
        drug_pd = f"CASE WHEN EN IS NULL THEN {pd_open} WHEN {fin_ok} AND NXT <= EN + {w} THEN NXT END"
        drug_nr = f"CASE WHEN EN IS NULL THEN {nr_open} WHEN {fin_ok} THEN NRDT END"
        item_pd = (f"CASE WHEN EN IS NULL THEN {f'NXT + {ongoing_lag}' if ongoing else 'NULL'} "
                   f"WHEN NXT <= EN + {w} THEN NXT END")
        drug_thr = f"least({drug_pd}, {drug_nr})" if nonresp else drug_pd
        item_thr = f"least({item_pd}, NRDT)" if nonresp else item_pd
        nr_join = "LEFT JOIN nrt q ON q.PID = n.PID AND q.GRP = n.ITEMID" if nonresp else ""
        nr_col = ", q.NRDT" if nonresp else ""
        eq = "AND p.GRP = r.ITEMID" if link else ""
        run("line starts", """CREATE OR REPLACE TEMP TABLE lot AS
            SELECT PID, LINENUM, min(ST) AS LOTSTDT, CASE WHEN bool_or(EN IS NULL) THEN NULL ELSE max(EN) END AS LOTENDT
            FROM items GROUP BY PID, LINENUM""")
        run("line starts by date", """CREATE OR REPLACE TEMP TABLE lotd AS
            SELECT PID, LOTSTDT, min(LINENUM) AS LINENUM FROM lot WHERE LOTSTDT IS NOT NULL GROUP BY PID, LOTSTDT""")
        run("drug onset", f"""CREATE OR REPLACE TEMP TABLE ds AS
            WITH r AS (
              SELECT x.PID, x.ITEMID, x.DID, x.ST, x.EN, i.LINENUM AS SRCLINE
              FROM x JOIN items i ON i.PID = x.PID AND i.ITEMID = x.ITEMID AND NOT i.ISSCT
              WHERE x.DID IS NOT NULL),
            n AS (
              SELECT r.*, p.PD AS NXT FROM r ASOF LEFT JOIN pdt p ON p.PID = r.PID {eq} AND p.PD {after} r.ST),
            t AS (
              SELECT n.PID, n.DID, n.SRCLINE, n.ST, n.EN, n.NXT{nr_col} FROM n {nr_join}),
            h AS (
              SELECT PID, DID, SRCLINE, {drug_thr} AS THR FROM t),
            o AS (
              SELECT h.PID, h.DID, h.SRCLINE, CASE WHEN l.LINENUM IS NOT NULL THEN greatest(h.SRCLINE + 1, l.LINENUM) END AS ONSLN
              FROM h ASOF LEFT JOIN lotd l ON l.PID = h.PID AND l.LOTSTDT >= h.THR)
            SELECT PID, DID, min(SRCLINE) + 1 AS EXPLN, min(ONSLN) AS ONSLN FROM o GROUP BY PID, DID""")
        eqi = "AND p.GRP = i.ITEMID" if link else ""
        run("line refractory", f"""CREATE OR REPLACE TEMP TABLE lth AS
            WITH n AS (
              SELECT i.PID, i.ITEMID, i.LINENUM, i.ST, i.EN, p.PD AS NXT
              FROM items i ASOF LEFT JOIN pdt p ON p.PID = i.PID {eqi} AND p.PD {after} i.ST),
            t AS (
              SELECT n.PID, n.LINENUM, n.ST, n.EN, n.NXT{nr_col} FROM n {nr_join})
            SELECT PID, LINENUM, min({item_thr}) AS TH FROM t GROUP BY PID, LINENUM""")
        run("labs", f"""CREATE OR REPLACE TEMP TABLE lab AS
            SELECT s.PID, (CAST(b.LBDT AS DATE) - {epoch})::INTEGER AS LBDT, b.VAL
            FROM read_parquet('{folder}/lab/*.parquet') b JOIN subj s ON s.USUBJID = b.USUBJID WHERE b.LBDT IS NOT NULL""")
        run("line status", f"""CREATE OR REPLACE TEMP TABLE L AS
            WITH m AS (
              SELECT lot.PID, lot.LINENUM, lab.LBDT, lab.VAL FROM lot ASOF LEFT JOIN lab
              ON lab.PID = lot.PID AND lab.LBDT <= lot.LOTSTDT),
            q AS (
              SELECT lot.*, lag(lth.TH) OVER (PARTITION BY lot.PID ORDER BY lot.LINENUM) AS PTH
              FROM lot LEFT JOIN lth ON lth.PID = lot.PID AND lth.LINENUM = lot.LINENUM)
            SELECT q.PID, q.LINENUM, q.LOTSTDT, q.LOTENDT, q.LINENUM - 1 AS NPRIOR,
                   CASE WHEN q.PTH IS NOT NULL AND q.PTH <= q.LOTSTDT THEN 'Y' ELSE 'N' END AS LSTREFFL,
                   CASE WHEN m.LBDT IS NULL OR m.LBDT < q.LOTSTDT - {int(options.lab_window_days)} THEN NULL
                        WHEN m.VAL >= 0.5 THEN 'Y' ELSE 'N' END AS MEASFL
            FROM q LEFT JOIN m ON m.PID = q.PID AND m.LINENUM = q.LINENUM""")
        terms = _Terms(dictionary, drug_ids, use_masks)
        cols = []
        for name, tl in rr.composites.items():
            cols.append(f"CASE WHEN {' AND '.join(terms.sql(t) for t in tl)} THEN 'Y' ELSE 'N' END AS {name}")
        crit: tuple[Criterion, ...] = tuple(eligibility.criteria) if eligibility is not None else ()
        meas = {"when_available": "coalesce(L.MEASFL, 'Y') = 'Y'", "require": "L.MEASFL = 'Y'", "ignore": "TRUE"}[options.measurable]
        conds = []
        for c in crit:
            parts = [meas if parse_term(t).kind == "flag" and parse_term(t).var == "MEASFL" else terms.sql(t)
                     for t in c.terms]
            cond = " AND ".join(parts)
            conds.append(cond)
            cols.append(f"CASE WHEN {cond} THEN 'Y' ELSE 'N' END AS ELIG_{c.id}")
        cols.append(f"CASE WHEN {' AND '.join(f'({x})' for x in conds) if conds else 'TRUE'} THEN 'Y' ELSE 'N' END AS ELIGFL")
        # drug-set counts per line: events at the line where a drug's refractoriness starts (R) or
        # its exposure first counts (E), summed over the lines up to L (one window per patient)
        run("status events", f"""CREATE OR REPLACE TEMP TABLE ev AS
            SELECT PID, LN, {terms.event_columns()} FROM (
              SELECT PID, DID, ONSLN AS LN, 'R' AS K FROM ds WHERE ONSLN IS NOT NULL
              UNION ALL SELECT PID, DID, EXPLN AS LN, 'E' AS K FROM ds) e
            GROUP BY PID, LN""")
        run("status by line", f"""CREATE OR REPLACE TEMP TABLE T AS
            SELECT L.PID, L.LINENUM, {terms.cumulative_columns()}
            FROM L LEFT JOIN ev ON ev.PID = L.PID AND ev.LN <= L.LINENUM
            GROUP BY L.PID, L.LINENUM, L.LOTSTDT""")
        q = (f"SELECT s.USUBJID, L.LINENUM, {epoch} + L.LOTSTDT AS LOTSTDT, {epoch} + L.LOTENDT AS LOTENDT, "
             f"L.NPRIOR, L.LSTREFFL, L.MEASFL, {', '.join(cols)} "
             "FROM L JOIN T ON T.PID = L.PID AND T.LINENUM = L.LINENUM JOIN subj s ON s.PID = L.PID "
             "ORDER BY L.PID, L.LINENUM")
        if out is not None:
            run("write", f"COPY ({q}) TO '{out}' (FORMAT PARQUET)")
            return Path(out)
        t0 = time.perf_counter()
        res = con.execute(q).df()
        if timings is not None:
            timings.append(("fetch", time.perf_counter() - t0))
        return res
    finally:
        if own:
            con.close()


def _status_of_bucket(folder: str, bucket: str, eligibility: EligibilityRule | None, options: EmulationOptions,
                      line_rule: LineRule = DEFAULT_LINE_RULE,
                      refractory_rule: RefractoryRule = DEFAULT_REFRACTORY_RULE) -> pd.DataFrame:
    """The pandas derivations (external/history.py, emulate.py) for the patients of one bucket."""
    from mmtrial.external.emulate import derive_measurable_at_lines
    from mmtrial.external.history import derive_cohort_history

    f = Path(folder)
    ex = pd.read_parquet(f / "ex" / bucket)
    pdt = pd.read_parquet(f / "pd" / bucket)
    lab = pd.read_parquet(f / "lab" / bucket)
    cm = pd.DataFrame({"USUBJID": ex["USUBJID"].astype("string"), "CMTRT": ex["DRUG"].str.upper(),
                       "CMCAT": "PRIOR ANTI-MYELOMA THERAPY", "CMGRPID": ex["CMGRPID"],
                       "CMSTDT": pd.to_datetime(ex["CMSTDT"]), "CMENDT": pd.to_datetime(ex["CMENDT"]),
                       "CMSTDTF": "", "CMENDTF": "", "CMRSDISC": ex["CMRSDISC"], "CMSCAT": ex["CMSCAT"],
                       "CMLNKGRP": ex["CMLNKGRP"], "ROWNUM": np.arange(1, len(ex) + 1)})
    rs = pd.DataFrame({"USUBJID": pdt["USUBJID"].astype("string"), "RSCAT": "PRIOR THERAPY", "RSTESTCD": "OVRLRESP",
                       "RSSTRESC": "PD", "RSDT": pd.to_datetime(pdt["PDDT"]), "RSDTF": "", "ROWNUM": np.arange(1, len(pdt) + 1)})
    lb = pd.DataFrame({"USUBJID": lab["USUBJID"].astype("string"), "LBTESTCD": "MPROTEIN", "LBSPEC": "SERUM",
                       "LBSTRESN": lab["VAL"], "LBDT": pd.to_datetime(lab["LBDT"])})
    if "RSGRPID" in pdt:
        rs["RSGRPID"] = pdt["RSGRPID"].astype("string").to_numpy()
    if (f / "resp" / bucket).is_file():
        resp = pd.read_parquet(f / "resp" / bucket)
        rs = pd.concat([rs, pd.DataFrame({"USUBJID": resp["USUBJID"].astype("string"), "RSCAT": "PRIOR THERAPY",
                                          "RSTESTCD": "OVRLRESP", "RSSTRESC": resp["RSSTRESC"],
                                          "RSDT": pd.to_datetime(resp["RSDT"]), "RSDTF": "",
                                          "RSGRPID": resp["RSGRPID"].astype("string")})], ignore_index=True)
        rs["ROWNUM"] = np.arange(1, len(rs) + 1)
    frames = {"cm": cm, "rs": rs, "lb": lb}
    if (f / "sct" / bucket).is_file():
        sct = pd.read_parquet(f / "sct" / bucket)
        frames["pr"] = pd.DataFrame({"USUBJID": sct["USUBJID"].astype("string"), "ROWNUM": sct["PRROW"],
                                     "PRTRT": sct["PRTRT"], "PRSTDT": pd.to_datetime(sct["PRSTDT"]),
                                     "PRSTDTF": "", "PRLNKGRP": sct["PRLNKGRP"]})
    h = derive_cohort_history(frames, line_rule=line_rule, refractory_rule=refractory_rule)
    st = h.status
    st["MEASFL"] = derive_measurable_at_lines(st, lb, window_days=options.lab_window_days)
    if eligibility is not None and eligibility.criteria:
        from mmtrial.derive.eligibility import derive_eligibility

        ctx = st.rename(columns={"USUBJID": "_PAT", "KEY": "USUBJID"})
        ctx["NLINES"] = ctx["NPRIOR"]
        if options.measurable != "require":
            ctx["MEASFL"] = ctx["MEASFL"].fillna("Y") if options.measurable == "when_available" else "Y"
        rule = EligibilityRule(criteria=tuple(eligibility.criteria), label_population=())
        el = derive_eligibility(ctx, h.refr, dictionary=DrugDictionary.load(None), rule=rule)
        st = st.merge(el.rename(columns={"USUBJID": "KEY"}).drop(columns=["LABELFL"]), on="KEY", how="left")
    return st


def derive_status_dask(folder: str | Path, *, eligibility: EligibilityRule | None = None,
                       options: EmulationOptions = DEFAULT_EMULATION, client: Any = None,
                       line_rule: LineRule = DEFAULT_LINE_RULE,
                       refractory_rule: RefractoryRule = DEFAULT_REFRACTORY_RULE) -> pd.DataFrame:
    """The pandas derivations partitioned by patient: one Dask task per bucket file of the
    normalised cohort folder (every file holds whole patients). ``client``: a
    ``distributed.Client`` (a local cluster in tests); without one, Dask's default scheduler."""
    import dask

    folder = Path(folder)
    buckets = sorted(p.name for p in (folder / "ex").glob("*.parquet"))
    tasks = [dask.delayed(_status_of_bucket)(str(folder), b, eligibility, options, line_rule, refractory_rule)
             for b in buckets]
    parts = client.gather(client.compute(tasks)) if client is not None else dask.compute(*tasks)
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).sort_values(["USUBJID", "LINENUM"]).reset_index(drop=True)


@dataclass
class Timing:
    what: str
    seconds: float
    rows: int


def time_it(what: str, fn, *a, **kw) -> tuple[Any, Timing]:
    t0 = time.perf_counter()
    res = fn(*a, **kw)
    n = len(res) if hasattr(res, "__len__") else 0
    return res, Timing(what, time.perf_counter() - t0, n)
