"""The cohort derivations at scale: one SQL pass in DuckDB over Parquet (out of core), and the
pandas derivations partitioned by patient on Dask (docs/external.md, "Scale").

Input: a *normalised cohort folder* (:func:`write_normalised_parquet`): ``ex/*.parquet``
(USUBJID, CMGRPID, DRUG, CMSTDT, CMENDT, CMRSDISC, CMSCAT, CMLNKGRP; one row per drug of a
regimen, DRUG the dictionary's canonical name), ``pd/*.parquet`` (USUBJID, PDDT: prior-therapy
progressions), ``lab/*.parquet`` (USUBJID, LBDT, VAL: serum M-protein g/dL) and
``classes.parquet`` (DRUG, CLASS), each file holding whole patients (a hash bucket of USUBJID).

The SQL pass computes, for every line of every patient, what external/history.py and
external/emulate.py compute with pandas (tests/external/test_scale.py checks equality):

* lines (Rajkumar 2015) with the LineRule rules a-d of derive/lines.py as window functions
  (transplants are not handled by the SQL pass: cohorts with pr use the pandas path);
* the *onset* of refractoriness per drug: the first progression after the first dose and at
  most ``window_days`` after the last dose of any of the drug's rows (IMWG; derive/refractory.py
  with its defaults). A drug is refractory at line *L* when its onset is on or before line
  *L*'s start, exposed when one of its rows belongs to a line before *L*. This is the landmark
  rule of external/history.py in closed form (a progression on or before the start of line *L*
  can only qualify rows of earlier lines), so one pass serves every line;
* refractory to the last line (items of line L-1 with a qualifying progression by line L's
  start), measurable disease (ASOF join of the latest M-protein within the lab window), the
  composite flags and the eligibility criteria as counts over the drugs of each rule term.
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
        pdt = pd.DataFrame({"USUBJID": rs.loc[sel, "USUBJID"].astype("string"), "PDDT": pd.to_datetime(rs.loc[sel, "RSDT"])})
    else:
        pdt = pd.DataFrame({"USUBJID": pd.Series(dtype="string"), "PDDT": pd.Series(dtype="datetime64[ns]")})
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
    for name, df in (("ex", ex), ("pd", pdt), ("lab", lab)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        b = pd.util.hash_pandas_object(df["USUBJID"].astype(str), index=False).to_numpy() % partitions
        for k in range(partitions):
            df.loc[b == k].reset_index(drop=True).to_parquet(folder / name / f"part-{part:05d}-{k:04d}.parquet", index=False)
    dictionary.drug_classes[["DRUG", "CLASS"]].to_parquet(folder / "classes.parquet", index=False)
    return folder


class _Terms:
    """Rule terms as SQL: drug-set counts become aggregate columns of one join of the lines with
    the per-drug status (one pass), the others conditions on the per-line view ``L``."""

    def __init__(self, dictionary: DrugDictionary) -> None:
        self.dictionary = dictionary
        self.aggs: dict[tuple[str, tuple[str, ...]], str] = {}

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
        key = (t.status, tuple(sorted(drugs)))
        if key not in self.aggs:
            self.aggs[key] = f"A{len(self.aggs)}"
        return f"(T.{self.aggs[key]} >= {t.n})"

    def agg_columns(self) -> str:
        out = []
        for (status, drugs), col in self.aggs.items():
            cond = "S.REFDT <= L.LOTSTDT" if status == "refractory" else "S.FIRSTLN < L.LINENUM"
            out.append(f"sum(CASE WHEN {cond} AND S.DRUG IN {_q(drugs)} THEN 1 ELSE 0 END) AS {col}")
        return ", ".join(out) if out else "0 AS A_NONE"


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
) -> pd.DataFrame | Path:
    """Lines, refractory status and eligibility at every line start, in one DuckDB SQL pass over
    a normalised cohort folder (module docstring). Returns a frame, or writes ``out`` (Parquet)
    and returns its path (out of core: nothing is pulled into Python)."""
    import duckdb

    if refractory_rule.pd_link != "any" or refractory_rule.partial_dates != "imputed" or \
            refractory_rule.nonresponse_is_refractory or refractory_rule.min_exposure_days or refractory_rule.pd_on_first_day:
        raise ValueError("derive_status_sql implements the default RefractoryRule (pd_link any, imputed dates, "
                         "no non-response, no minimum exposure); use the pandas path for other options")
    dictionary = dictionary or DrugDictionary.load(None)
    folder = Path(folder)
    own = con is None
    con = con or duckdb.connect()
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    r = line_rule
    w = int(refractory_rule.window_days)
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW ex AS SELECT * FROM read_parquet('{folder}/ex/*.parquet')")
        con.execute(f"CREATE OR REPLACE TEMP VIEW pdv AS SELECT USUBJID, CAST(PDDT AS DATE) AS PDDT FROM read_parquet('{folder}/pd/*.parquet')")
        con.execute(f"CREATE OR REPLACE TEMP VIEW lab AS SELECT USUBJID, CAST(LBDT AS DATE) AS LBDT, VAL FROM read_parquet('{folder}/lab/*.parquet')")
        con.execute("""CREATE OR REPLACE TEMP TABLE reg AS
            SELECT USUBJID, CMGRPID AS ITEMID, min(CAST(CMSTDT AS DATE)) AS STDT,
                   CASE WHEN bool_or(CMENDT IS NULL) THEN NULL ELSE max(CAST(CMENDT AS DATE)) END AS ENDT,
                   last(upper(trim(CMRSDISC)) ORDER BY CMENDT NULLS FIRST) FILTER (WHERE CMRSDISC IS NOT NULL) AS REASON,
                   first(upper(trim(CMSCAT)) ORDER BY CMENDT NULLS FIRST) FILTER (WHERE CMSCAT IS NOT NULL) AS PHASE,
                   first(CMLNKGRP ORDER BY CMENDT NULLS FIRST) FILTER (WHERE CMLNKGRP IS NOT NULL AND trim(CMLNKGRP) <> '') AS LNKGRP,
                   list_sort(list(DISTINCT DRUG)) AS DRUGS, count(DISTINCT DRUG) AS NDRUGS
            FROM ex GROUP BY USUBJID, CMGRPID""")
        planned = "TRUE" if r.infer_planned else "FALSE"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE items AS
            WITH s AS (
              SELECT *, row_number() OVER (PARTITION BY USUBJID ORDER BY STDT IS NULL, STDT, ITEMID) AS ITEMSEQ FROM reg),
            p AS (
              SELECT *, lag(STDT) OVER w AS PSTDT, lag(ENDT) OVER w AS PENDT, lag(REASON) OVER w AS PREASON,
                     lag(LNKGRP) OVER w AS PLNK, lag(DRUGS) OVER w AS PDRUGS
              FROM s WINDOW w AS (PARTITION BY USUBJID ORDER BY ITEMSEQ)),
            f AS (
              SELECT *, datediff('day', PENDT, STDT) AS GAP FROM p),
            g AS (
              SELECT *,
                coalesce(STDT = PSTDT, FALSE) AS SAME,
                coalesce(LNKGRP IS NOT NULL AND LNKGRP = PLNK, FALSE) AS LINKED,
                coalesce(NDRUGS > 0 AND list_has_all(PDRUGS, DRUGS) AND NOT coalesce(PREASON IN {_q(r.progression_reasons)}, FALSE)
                         AND GAP <= {r.same_regimen_gap_days}, FALSE) AS CONT,
                coalesce({planned} AND (coalesce(PREASON IN {_q(r.planned_reasons)}, FALSE) OR coalesce(PHASE IN {_q(r.continuation_phases)}, FALSE))
                         AND NOT coalesce(PREASON IN {_q(r.unplanned_reasons)}, FALSE) AND GAP <= {r.planned_gap_days}, FALSE) AS PLANNED
              FROM f)
            SELECT USUBJID, ITEMID, STDT, ENDT, ITEMSEQ,
                   sum(CASE WHEN ITEMSEQ = 1 OR NOT (SAME OR LINKED OR PLANNED OR CONT) THEN 1 ELSE 0 END)
                       OVER (PARTITION BY USUBJID ORDER BY ITEMSEQ) AS LINENUM
            FROM g""")
        con.execute("""CREATE OR REPLACE TEMP TABLE lot AS
            SELECT USUBJID, LINENUM, min(STDT) AS LOTSTDT,
                   CASE WHEN bool_or(ENDT IS NULL) THEN NULL ELSE max(ENDT) END AS LOTENDT
            FROM items GROUP BY USUBJID, LINENUM""")
        # refractory onset per drug row -> per drug; first line of exposure per drug
        con.execute(f"""CREATE OR REPLACE TEMP TABLE drugstat AS
            WITH e AS (
              SELECT ex.USUBJID, ex.DRUG, CAST(ex.CMSTDT AS DATE) AS ST, CAST(ex.CMENDT AS DATE) AS EN, i.LINENUM
              FROM ex JOIN items i ON i.USUBJID = ex.USUBJID AND i.ITEMID = ex.CMGRPID),
            f AS (
              SELECT e.USUBJID, e.DRUG, min(p.PDDT) AS F FROM e JOIN pdv p ON p.USUBJID = e.USUBJID
              WHERE p.PDDT > e.ST AND (e.EN IS NULL OR p.PDDT <= e.EN + {w}) GROUP BY e.USUBJID, e.DRUG)
            SELECT e.USUBJID, e.DRUG, min(e.LINENUM) AS FIRSTLN, any_value(f.F) AS REFDT
            FROM e LEFT JOIN f ON f.USUBJID = e.USUBJID AND f.DRUG = e.DRUG
            GROUP BY e.USUBJID, e.DRUG""")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE itemref AS
            SELECT i.USUBJID, i.LINENUM, min(p.PDDT) AS F FROM items i JOIN pdv p ON p.USUBJID = i.USUBJID
            WHERE p.PDDT > i.STDT AND (i.ENDT IS NULL OR p.PDDT <= i.ENDT + {w})
            GROUP BY i.USUBJID, i.LINENUM""")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE L AS
            WITH m AS (
              SELECT lot.USUBJID, lot.LINENUM, lab.LBDT, lab.VAL FROM lot ASOF LEFT JOIN lab
              ON lab.USUBJID = lot.USUBJID AND lab.LBDT <= lot.LOTSTDT)
            SELECT lot.*, lot.LINENUM - 1 AS NPRIOR,
                   CASE WHEN ir.F IS NOT NULL AND ir.F <= lot.LOTSTDT THEN 'Y' ELSE 'N' END AS LSTREFFL,
                   CASE WHEN m.LBDT IS NULL OR m.LBDT < lot.LOTSTDT - {int(options.lab_window_days)} THEN NULL
                        WHEN m.VAL >= 0.5 THEN 'Y' ELSE 'N' END AS MEASFL
            FROM lot LEFT JOIN itemref ir ON ir.USUBJID = lot.USUBJID AND ir.LINENUM = lot.LINENUM - 1
            LEFT JOIN m ON m.USUBJID = lot.USUBJID AND m.LINENUM = lot.LINENUM""")
        terms = _Terms(dictionary)
        cols = []
        for name, tl in refractory_rule.composites.items():
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
        con.execute(f"""CREATE OR REPLACE TEMP TABLE T AS
            SELECT L.USUBJID, L.LINENUM, {terms.agg_columns()}
            FROM L LEFT JOIN drugstat S ON S.USUBJID = L.USUBJID
            GROUP BY L.USUBJID, L.LINENUM""")
        q = (f"SELECT L.USUBJID, L.LINENUM, L.LOTSTDT, L.LOTENDT, L.NPRIOR, L.LSTREFFL, L.MEASFL, {', '.join(cols)} "
             "FROM L JOIN T ON T.USUBJID = L.USUBJID AND T.LINENUM = L.LINENUM ORDER BY L.USUBJID, L.LINENUM")
        if out is not None:
            con.execute(f"COPY ({q}) TO '{out}' (FORMAT PARQUET)")
            return Path(out)
        return con.execute(q).df()
    finally:
        if own:
            con.close()


def _status_of_bucket(folder: str, bucket: str, eligibility: EligibilityRule, options: EmulationOptions) -> pd.DataFrame:
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
    frames = {"cm": cm, "rs": rs, "lb": lb}
    h = derive_cohort_history(frames)
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
                       options: EmulationOptions = DEFAULT_EMULATION, client: Any = None) -> pd.DataFrame:
    """The pandas derivations partitioned by patient: one Dask task per bucket file of the
    normalised cohort folder (every file holds whole patients). ``client``: a
    ``distributed.Client`` (a local cluster in tests); without one, Dask's default scheduler."""
    import dask

    folder = Path(folder)
    buckets = sorted(p.name for p in (folder / "ex").glob("*.parquet"))
    tasks = [dask.delayed(_status_of_bucket)(str(folder), b, eligibility, options) for b in buckets]
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
