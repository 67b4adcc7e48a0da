"""Benchmark (issue 15): each step's CPU against one DuckDB SQL pass over its input rows, in one run.

"The time of each step within 3x of a single DuckDB/Polars pass over its input rows." For each
step this script builds that step's input at ``n`` subjects (default 20,000), times the step's
derivations in CPU seconds (process, all threads: ``resource.getrusage``) and then one DuckDB SQL
query (one thread) over the same input rows doing the same kinds of work, and prints the ratio.

Steps and their floors:

* read + check: the simulated study (``simulate_study``) written as Parquet, read and checked by
  ``load_study``; floor: DuckDB reading every column of every Parquet file (count, distinct
  subjects, min and max of every column).
* response (IMWG): ``derive_adrs`` on bench_response's lb (20 assessments per subject); floor:
  baseline per subject and test, running nadir by a window, per-assessment PR/PD tests, per
  subject best response and first PD.
* CTCAE grading + exposure: ``derive_adae``, ``derive_adlb``, ``derive_exposure_intervals`` and
  ``derive_adex`` on bench_safety's frames (50 records x 6 tests per subject); floor: baseline per
  subject and test, a CASE grade per lab row against LLN/ULN, worst grade per subject and test,
  every day of every ex record (the derivation expands records into administrations) summed per
  subject, worst AE grade per subject and term.
* lines of therapy + refractory status: regimens .. ADSL flags on bench_prior_therapy's cm/rs
  (8 regimens per subject); floor: its ``FLOOR_SQL``.
* Kaplan-Meier: ``kaplan_meier`` with CIs and quartiles at ``50 x n`` rows of integer days (at n
  rows it takes milliseconds, below the timer's resolution; best of 3 runs for the step and its
  floor; ``bench_km.py`` also times months and unique times); floor: events and at-risk counts per distinct
  time by a window, the product-limit estimate by a cumulative sum of logs.

Every step runs once at 50 subjects first, untimed, so that imports and first-call costs are not
counted as the step's (the demo-CPU work measures those).

Usage: ``python benchmarks/bench_steps_floor.py [--n 20000] [--steps read response safety lines km]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def cpu_of(fn: Callable[[], object]) -> tuple[float, object]:
    t = _cpu()
    out = fn()
    return _cpu() - t, out


def sql_floor(tables: dict[str, pd.DataFrame], sql: str) -> float:
    """CPU seconds of one DuckDB query (one thread) over ``tables`` (registered pandas frames)."""
    import duckdb

    con = duckdb.connect(config={"threads": 1})
    con.sql("SELECT 1").fetchall()  # warm
    t = _cpu()
    for name, df in tables.items():
        con.register(name, df)
    con.sql(sql).df()
    used = _cpu() - t
    con.close()
    return used


RESPONSE_SQL = """
WITH b AS (  -- baseline: the last value on or before the first dose, per subject, test and specimen
  SELECT l.USUBJID, l.LBTESTCD, l.LBSPEC, arg_max(l.LBSTRESN, l.LBDT) FILTER (WHERE l.LBDT <= a.TRTSDT) AS base
  FROM lb l JOIN adsl a USING (USUBJID) GROUP BY ALL),
v AS (  -- every assessment with its baseline and running nadir
  SELECT l.USUBJID, l.LBTESTCD, l.LBSPEC, l.LBDT, l.LBSTRESN, l.LBSTRESC, b.base,
         min(l.LBSTRESN) OVER (PARTITION BY l.USUBJID, l.LBTESTCD, l.LBSPEC ORDER BY l.LBDT
                              ROWS UNBOUNDED PRECEDING) AS nadir
  FROM lb l JOIN b USING (USUBJID, LBTESTCD, LBSPEC)),
r AS (  -- per visit: PR-like and PD-like tests over the visit's rows
  SELECT USUBJID, LBDT, bool_and(LBSTRESN <= 0.5 * base OR LBSTRESN IS NULL) AS pr,
         bool_or(LBSTRESN >= 1.25 * nadir AND LBSTRESN - nadir >= 0.5) AS pd,
         bool_or(LBSTRESC = 'NEGATIVE') AS ifeneg
  FROM v GROUP BY ALL)
SELECT USUBJID, max(pr::INT) AS bor, min(CASE WHEN pd THEN LBDT END) AS pddt, bool_or(ifeneg) AS cr
FROM r GROUP BY USUBJID
"""

SAFETY_SQL = """
WITH b AS (
  SELECT l.USUBJID, l.LBTESTCD, arg_max(l.LBSTRESN, l.LBDT) FILTER (WHERE l.LBDT <= a.TRTSDT) AS base
  FROM lb l JOIN adsl a USING (USUBJID) GROUP BY ALL),
g AS (
  SELECT l.USUBJID, l.LBTESTCD, l.LBDT, l.LBSTRESN - b.base AS chg,
         CASE WHEN LBSTRESN < LBSTNRLO * 0.25 THEN 4 WHEN LBSTRESN < LBSTNRLO * 0.5 THEN 3
              WHEN LBSTRESN < LBSTNRLO * 0.75 THEN 2 WHEN LBSTRESN < LBSTNRLO THEN 1
              WHEN LBSTRESN > LBSTNRHI * 6 THEN 4 WHEN LBSTRESN > LBSTNRHI * 3 THEN 3
              WHEN LBSTRESN > LBSTNRHI * 1.5 THEN 2 WHEN LBSTRESN > LBSTNRHI THEN 1 ELSE 0 END AS grade
  FROM lb l JOIN b USING (USUBJID, LBTESTCD)),
w AS (SELECT USUBJID, LBTESTCD, max(grade) AS worst, max(chg) AS maxchg FROM g GROUP BY ALL),
x AS (  -- every day of every ex record (the derivation expands records to administrations)
  SELECT USUBJID, sum(EXDOSE) AS dose, min(g.d) AS st, max(g.d) AS en, count(*) AS n
  FROM ex, generate_series(EXSTDT::TIMESTAMP, EXENDT::TIMESTAMP, INTERVAL 1 DAY) AS g(d) GROUP BY USUBJID),
e AS (SELECT USUBJID, AEDECOD, max(AETOXGR) AS gr, min(AESTDT) AS st FROM ae GROUP BY ALL)
SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM x), (SELECT count(*) FROM e)
"""

LAB_SQL = SAFETY_SQL.split("x AS (")[0].rstrip().rstrip(",") + "\nSELECT count(*) FROM w\n"  # the grading part alone

KM_SQL = """
WITH d AS (SELECT t, count(*) AS n, sum(e::INT) AS d FROM km GROUP BY t),
r AS (SELECT t, d, sum(n) OVER (ORDER BY t DESC ROWS UNBOUNDED PRECEDING) AS atrisk FROM d)
SELECT t, exp(sum(ln(greatest(1 - d / atrisk, 1e-300))) OVER (ORDER BY t ROWS UNBOUNDED PRECEDING)) AS s FROM r
"""


def step_read(n: int) -> tuple[float, float, int]:
    import duckdb

    from mmtrial.sdtm import load_study
    from mmtrial.simulate import simulate_study, write_study

    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        folder = Path(tmp) / "study"
        sim = simulate_study(n=n, seed=1)
        write_study(sim, folder, fmt="parquet")
        del sim
        before = resource.getrusage(resource.RUSAGE_SELF)
        used, (study, _issues) = cpu_of(lambda: load_study(folder))
        after = resource.getrusage(resource.RUSAGE_SELF)
        if n > 50:  # user vs system time: the system part is mostly first touches of new memory
            print(f"    read + check: user {after.ru_utime - before.ru_utime:.2f} s, "
                  f"system {after.ru_stime - before.ru_stime:.2f} s")
        assert study is not None
        rows = sum(len(d) for d in study.domains.values())
        del study
        con = duckdb.connect(config={"threads": 1})
        con.sql("SELECT 1").fetchall()
        t = _cpu()
        for f in sorted(folder.glob("*.parquet")):
            cols = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM read_parquet('{f}')").fetchall()]
            distinct = ", count(DISTINCT USUBJID)" if "USUBJID" in cols else ""
            con.sql(f"SELECT count(*){distinct}, min(COLUMNS(*)), max(COLUMNS(*)) FROM read_parquet('{f}')").fetchall()
        floor = _cpu() - t
        con.close()
    return used, floor, rows


def step_response(n: int) -> tuple[float, float, int]:
    from bench_response import make_study

    from mmtrial.derive.response import derive_adrs

    doms, adsl = make_study(n, 20)
    used, _ = cpu_of(lambda: derive_adrs(doms, adsl))
    lb = doms["lb"][["USUBJID", "LBTESTCD", "LBSPEC", "LBSTRESN", "LBSTRESC", "LBDT"]]
    floor = sql_floor({"lb": lb, "adsl": adsl[["USUBJID", "TRTSDT"]]}, RESPONSE_SQL)
    return used, floor, len(lb)


def step_safety(n: int) -> tuple[float, float, int]:
    from bench_safety import TESTS, make_frames

    from mmtrial.derive.adae import derive_adae
    from mmtrial.derive.exposure import derive_adex, derive_exposure_intervals
    from mmtrial.derive.toxgrade import derive_adlb
    from mmtrial.protocol.model import Protocol

    adsl, lb, ex, ae = make_frames(n, 50, list(TESTS))
    p = Protocol.load()

    parts: dict[str, float] = {}

    def part(name: str, fn: Callable[[], object]) -> object:
        used, out = cpu_of(fn)
        parts[name] = used
        return out

    def run() -> None:
        adae = part("adae", lambda: derive_adae(ae, adsl))
        part("adlb (CTCAE grades)", lambda: derive_adlb(lb, adsl))
        lv = part("exposure intervals", lambda: derive_exposure_intervals(ex, ladder=p.dose_ladder, regimen=p.regimen))
        part("adex", lambda: derive_adex(lv, adsl, regimen=p.regimen, ladder=p.dose_ladder, adae=adae))

    used, _ = cpu_of(run)
    floor = sql_floor({"lb": lb, "adsl": adsl, "ex": ex, "ae": ae}, SAFETY_SQL)
    if n > 50:
        lab = sql_floor({"lb": lb, "adsl": adsl}, LAB_SQL)
        print("    " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
              + f" ({len(lb):,} lab rows, {len(ex):,} ex rows, {len(ae):,} ae rows); CTCAE grading alone "
              f"{parts['adlb (CTCAE grades)']:.2f} s vs its lab part of the floor {lab:.2f} s = "
              f"{parts['adlb (CTCAE grades)'] / lab:.1f} x")
    return used, floor, len(lb) + len(ex) + len(ae)


def step_lines(n: int) -> tuple[float, float, int]:
    from bench_prior_therapy import FLOOR_SQL, lines_and_refractory, make_study

    from mmtrial.derive.drugs import DrugDictionary, derive_drug_exposure
    from mmtrial.derive.lines import LineRule, derive_transplants
    from mmtrial.derive.refractory import RefractoryRule

    cm, rs, pr = make_study(n, 8)
    d = DrugDictionary.load()
    lr, rr = LineRule(), RefractoryRule()
    exp, _ = derive_drug_exposure(cm, dictionary=d)
    sct = derive_transplants(pr, rule=lr)
    trt = pd.Series(pd.Timestamp("2030-01-01"), index=pd.Index(cm["USUBJID"].unique()))

    def run() -> None:  # the derivations bench_prior_therapy counts as "lines + refractory"
        lines_and_refractory(exp, sct, rs, trt, d, lr, rr)

    used, _ = cpu_of(run)
    c = cm[["USUBJID", "CMGRPID", "CMTRT", "CMSTDT", "CMENDT", "CMRSDISC"]]
    floor = sql_floor({"cm": c, "rs": rs[["USUBJID", "RSDT"]]}, FLOOR_SQL)
    return used, floor, len(cm) + len(rs)


def step_km(n: int) -> tuple[float, float, int]:
    from mmtrial.stats import kaplan_meier

    rows = 50 * n
    rng = np.random.default_rng(2019)
    t = np.ceil(rng.exponential(250, rows))
    e = rng.random(rows) < 0.7

    def run() -> None:
        km = kaplan_meier(t, e)
        for p in (0.25, 0.5, 0.75):
            km.quantile(p)
        km.survival_table([90.0, 180.0, 365.0])

    # tens of milliseconds each: best of 3 for both, so that one preemption does not decide the ratio
    used = min(cpu_of(run)[0] for _ in range(3))
    frame = pd.DataFrame({"t": t, "e": e})
    floor = min(sql_floor({"km": frame}, KM_SQL) for _ in range(3))
    return used, floor, rows


STEPS = {
    "read": ("read + check (Parquet)", step_read),
    "response": ("response (IMWG, derive_adrs)", step_response),
    "safety": ("CTCAE grading + exposure", step_safety),
    "lines": ("lines of therapy + refractory", step_lines),
    "km": ("Kaplan-Meier (50 x n rows)", step_km),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS))
    args = ap.parse_args()
    from mmtrial.pipeline import pandas_options

    print(f"each step vs one DuckDB SQL pass (1 thread) over its input rows; n = {args.n:,} subjects; CPU seconds"
          " (steps under the pandas options analyze() sets: pipeline.pandas_options)")
    worst = 0.0
    for key in args.steps:
        label, fn = STEPS[key]
        with pandas_options():  # what analyze() runs the steps under
            fn(50)  # warm: imports and first-call costs (scipy.stats, pyarrow's Parquet reader ...) are not the step's
            used, floor, rows = fn(args.n)
        ratio = used / floor
        worst = max(worst, ratio)
        print(f"  {label:32s} {rows:>11,} rows  step {used:7.2f} s  floor {floor:6.2f} s  = {ratio:4.1f} x"
              f"  {'OK' if ratio <= 3 else 'ABOVE 3x'}", flush=True)
    print(f"worst {worst:.1f} x (target <= 3x)")


if __name__ == "__main__":
    main()
