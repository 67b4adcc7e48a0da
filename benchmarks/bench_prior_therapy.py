"""Benchmark: prior-therapy derivations at 100,000 subjects with 8 regimens each (issue 4).

Plain script: ``.venv/bin/python benchmarks/bench_prior_therapy.py [n_subjects] [regimens]``.
Builds a synthetic normalised cm/rs/pr (about 2.4 million cm rows), then times each derivation
(drug exposure, regimens, lines, ADLOT, line and drug refractoriness, ADSL flags, eligibility) and
prints rows/second and the peak resident memory (``resource.getrusage``).

Floor (issue 15): one DuckDB SQL pass over the same rows doing the same kinds of work (regimens
grouped per subject, a line number per subject by a window over the regimen starts, the
progression-in-window range join per drug row, the per subject-drug and per-subject counts),
timed in CPU seconds (all threads) in the same run; the derivations' CPU seconds are printed as
a ratio to it (target <= 3x for lines of therapy + refractory status).
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import pandas as pd

from mmtrial.derive.drugs import DrugDictionary, derive_drug_exposure
from mmtrial.derive.eligibility import derive_eligibility
from mmtrial.derive.lines import (
    LineRule,
    derive_adlot,
    derive_lines_of_therapy,
    derive_regimens,
    derive_transplants,
)
from mmtrial.derive.refractory import (
    RefractoryRule,
    derive_drug_refractory,
    derive_line_refractory,
    derive_refractory_flags,
)

FLOOR_SQL = """
WITH reg AS (  -- regimens: one row per subject and CMGRPID
  SELECT USUBJID, CMGRPID, min(CMSTDT) AS st, max(CMENDT) AS en, arg_max(CMRSDISC, CMENDT) AS reason,
         string_agg(DISTINCT CMTRT, ';' ORDER BY CMTRT) AS drugs, count(*) AS n
  FROM cm GROUP BY USUBJID, CMGRPID),
lin AS (  -- a line number per subject: a new line when the drugs change
  SELECT *, sum(CASE WHEN drugs IS DISTINCT FROM prev THEN 1 ELSE 0 END)
              OVER (PARTITION BY USUBJID ORDER BY st, CMGRPID) AS linenum
  FROM (SELECT *, lag(drugs) OVER (PARTITION BY USUBJID ORDER BY st, CMGRPID) AS prev FROM reg)),
lot AS (SELECT USUBJID, linenum, min(st) AS st, max(en) AS en FROM lin GROUP BY ALL),
iv AS (  -- drug rows with a progression on therapy or within 60 days
  SELECT c.USUBJID, c.CMTRT, c.CMSTDT, c.CMENDT, min(r.RSDT) AS pd
  FROM cm c LEFT JOIN rs r ON r.USUBJID = c.USUBJID AND r.RSDT >= c.CMSTDT
       AND r.RSDT <= c.CMENDT + INTERVAL 60 DAY
  GROUP BY ALL),
drug AS (SELECT USUBJID, CMTRT, count(*) AS nexp, bool_or(pd IS NOT NULL) AS ref, max(CMENDT) AS last
         FROM iv GROUP BY ALL)
SELECT d.USUBJID, count(*) AS ndrugs, sum(ref::INT) AS nref,
       (SELECT max(linenum) FROM lot l WHERE l.USUBJID = d.USUBJID) AS nlines
FROM drug d GROUP BY d.USUBJID
"""


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def duckdb_floor(cm: pd.DataFrame, rs: pd.DataFrame) -> tuple[float, int]:
    """CPU seconds of one DuckDB pass (FLOOR_SQL) over cm and rs, and its result's row count."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.sql("SELECT 1").fetchall()  # warm
    c = cm[["USUBJID", "CMGRPID", "CMTRT", "CMSTDT", "CMENDT", "CMRSDISC"]]
    r = rs[["USUBJID", "RSDT"]]
    t = _cpu()
    con.register("cm", c)
    con.register("rs", r)
    n = len(con.sql(FLOOR_SQL).df())
    used = _cpu() - t
    con.close()
    return used, n

REGIMENS = [
    ("BORTEZOMIB", "LENALIDOMIDE", "DEXAMETHASONE"), ("LENALIDOMIDE",), ("CARFILZOMIB", "DEXAMETHASONE"),
    ("POMALIDOMIDE", "CYCLOPHOSPHAMIDE", "DEXAMETHASONE"), ("DARATUMUMAB", "DEXAMETHASONE"),
    ("MELPHALAN", "PREDNISONE"), ("DARATUMUMAB", "POMALIDOMIDE", "DEXAMETHASONE"),
    ("CARFILZOMIB", "POMALIDOMIDE", "DEXAMETHASONE"), ("IXAZOMIB", "DEXAMETHASONE"), ("VELCADE", "Revlimid", "dex"),
]


def make_study(n: int, k: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n), k)
    seq = np.tile(np.arange(k), n)
    reg = rng.integers(0, len(REGIMENS), n * k)
    dur = rng.integers(30, 400, n * k)
    gap = rng.integers(1, 90, n * k)
    start = np.zeros(n * k, dtype=np.int64)
    step = (dur + gap).reshape(n, k)
    start = (np.cumsum(step, axis=1) - step).ravel() + 14000
    end = start + dur
    ndr = np.array([len(REGIMENS[r]) for r in reg])
    ridx = np.repeat(np.arange(n * k), ndr)
    pos = np.arange(len(ridx)) - np.repeat(np.cumsum(ndr) - ndr, ndr)
    drug = np.array([REGIMENS[r][p] for r, p in zip(reg[ridx], pos, strict=True)], dtype=object)
    reason = np.where(rng.random(n * k) < 0.7, "PROGRESSIVE DISEASE", "TOXICITY")
    ids = np.char.add("S", np.arange(n).astype(str)).astype(object)
    day0 = np.datetime64("1970-01-01")
    cm = pd.DataFrame({
        "USUBJID": ids[subj[ridx]], "CMCAT": "PRIOR ANTI-MYELOMA THERAPY",
        "CMGRPID": np.char.add("R", seq[ridx].astype(str)).astype(object), "CMTRT": drug,
        "CMSTDT": (day0 + start[ridx].astype("timedelta64[D]")).astype("datetime64[ns]"),
        "CMENDT": (day0 + end[ridx].astype("timedelta64[D]")).astype("datetime64[ns]"),
        "CMSTDTF": "", "CMENDTF": np.where(rng.random(len(ridx)) < 0.05, "D", ""),
        "CMRSDISC": reason[ridx], "ROWNUM": np.arange(1, len(ridx) + 1),
    })
    pdmask = reason == "PROGRESSIVE DISEASE"
    pdday = end + rng.integers(-20, 80, n * k)
    rs = pd.DataFrame({
        "USUBJID": ids[subj[pdmask]], "RSCAT": "PRIOR THERAPY", "RSTESTCD": "OVRLRESP", "RSSTRESC": "PD",
        "RSGRPID": np.char.add("R", seq[pdmask].astype(str)).astype(object),
        "RSDT": (day0 + pdday[pdmask].astype("timedelta64[D]")).astype("datetime64[ns]"), "RSDTF": "",
        "ROWNUM": np.arange(1, int(pdmask.sum()) + 1),
    })
    has_sct = rng.random(n) < 0.6
    sct_day = start.reshape(n, k)[:, 1] - 20
    pr = pd.DataFrame({
        "USUBJID": ids[has_sct], "PRTRT": "AUTOLOGOUS STEM CELL TRANSPLANT",
        "PRSTDT": (day0 + sct_day[has_sct].astype("timedelta64[D]")).astype("datetime64[ns]"), "PRSTDTF": "",
        "PRLNKGRP": pd.NA, "ROWNUM": np.arange(1, int(has_sct.sum()) + 1),
    })
    return cm, rs, pr


def lines_and_refractory(exp, sct, rs, trt, d, lr, rr, timed=lambda name, f: f()):
    """The derivations counted as "lines of therapy + refractory status" (regimens .. ADSL flags),
    each run through ``timed(name, f)``; ``trt``: TRTSDT by subject. Returns ADLOT, the line
    refractory rows, ADREFR, the subjects (NLINES, LSTREFFL) and the ADSL flags."""
    items = timed("regimens", lambda: derive_regimens(exp, sct))
    lines = timed("lines of therapy", lambda: derive_lines_of_therapy(items, exp, rule=lr))
    adlot = timed("ADLOT", lambda: derive_adlot(lines))
    lref = timed("line refractory", lambda: derive_line_refractory(lines, rs, rule=rr))
    adrefr, _ = timed("drug refractory (ADREFR)",
                      lambda: derive_drug_refractory(exp, rs, dictionary=d, rule=rr, trtsdt=trt))
    subj = pd.DataFrame({"USUBJID": pd.Series(trt.index, dtype="string")})
    subj["NLINES"] = subj["USUBJID"].map(adlot.groupby("USUBJID")["LINENUM"].max()).fillna(0).astype("int64")
    last = lref.sort_values("LINENUM").drop_duplicates("USUBJID", keep="last").set_index("USUBJID")["LOTREFFL"]
    subj["LSTREFFL"] = subj["USUBJID"].map(last).fillna("N")
    flags = timed("ADSL flags (TCR, penta ...)", lambda: derive_refractory_flags(adrefr, subj, dictionary=d, rule=rr))
    return adlot, lref, adrefr, subj, flags


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    t0 = time.perf_counter()
    cm, rs, pr = make_study(n, k)
    print(f"synthetic input: {n:,} subjects, {k} regimens each, {len(cm):,} cm rows, {len(rs):,} rs rows, "
          f"{len(pr):,} transplants ({time.perf_counter() - t0:.1f} s)")
    d = DrugDictionary.load()
    lr, rr = LineRule(), RefractoryRule()
    timings: list[tuple[str, float]] = []
    start_all = time.perf_counter()

    cpu: dict[str, float] = {}

    def timed(name, f):
        t, c = time.perf_counter(), _cpu()
        out = f()
        timings.append((name, time.perf_counter() - t))
        cpu[name] = _cpu() - c
        return out

    exp, _ = timed("drug exposure (dictionary)", lambda: derive_drug_exposure(cm, dictionary=d))
    sct = timed("transplants", lambda: derive_transplants(pr, rule=lr))
    trt = pd.Series(pd.Timestamp("2030-01-01"), index=pd.Index(cm["USUBJID"].unique()))
    adlot, _, adrefr, subj, flags = lines_and_refractory(exp, sct, rs, trt, d, lr, rr, timed)
    flags["MEASFL"] = "Y"
    elig = timed("eligibility", lambda: derive_eligibility(flags, adrefr, dictionary=d))
    total = time.perf_counter() - start_all
    for name, t in timings:
        print(f"  {name:32s} {t:7.2f} s   {len(cm) / t:14,.0f} cm rows/s")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"total {total:.1f} s: {n / total:,.0f} subjects/s, {len(cm) / total:,.0f} cm rows/s; "
          f"peak RSS {peak_kb / 1024:,.0f} MiB")
    floor, nrow = duckdb_floor(cm, rs)
    lot_ref = sum(v for k, v in cpu.items() if k in ("regimens", "lines of therapy", "ADLOT", "line refractory",
                                                      "drug refractory (ADREFR)", "ADSL flags (TCR, penta ...)"))
    print(f"floor: one DuckDB SQL pass (1 thread) over the same cm/rs rows: {floor:.2f} s CPU ({nrow:,} subjects)")
    print(f"lines of therapy + refractory status (regimens .. ADSL flags): {lot_ref:.2f} s CPU = "
          f"{lot_ref / floor:.1f} x floor (target <= 3x); all derivations {sum(cpu.values()):.2f} s CPU = "
          f"{sum(cpu.values()) / floor:.1f} x")
    print(f"lines: {len(adlot):,}; median lines {subj['NLINES'].median():.0f}; TCR {flags['TCRFL'].eq('Y').mean():.1%}; "
          f"penta {flags['PENTAFL'].eq('Y').mean():.1%}; eligible {elig['ELIGFL'].eq('Y').mean():.1%}")


if __name__ == "__main__":
    main()
