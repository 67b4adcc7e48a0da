"""Benchmark: the external-cohort derivations (lines, refractory status at every line start,
STORM eligibility) at scale (issue 16, docs/external.md "Scale").

1. simulate ``n`` patients in chunks (simulate/cohort.py, synthetic data) into a normalised
   cohort folder (Parquet, bucketed by patient);
2. one DuckDB SQL pass over the Parquet files, written to Parquet (out of core; ``--memory``
   caps DuckDB's memory);
3. the pandas derivations partitioned by patient on a local Dask cluster (``--dask-n``
   patients, default the smaller of n and 20,000), and in one process for comparison.

Prints seconds, patients per second, the derivation's ratio to the floor (one SQL pass that reads
every input row and writes one row per patient, measured in the same run) and the ratio of each
path to the derivation's SQL pass (per patient, so runs on different n compare).

    .venv/bin/python benchmarks/bench_external.py [--n 1000000] [--dask-n 20000] [--workers 2] [--memory 2GB]
        [--replicate 10] [--threads 2] [--sql-only] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrial.derive.drugs import DrugDictionary
from mmtrial.derive.eligibility import STORM_CRITERIA, EligibilityRule
from mmtrial.external.scale import derive_status_dask, derive_status_sql, write_normalised_parquet
from mmtrial.simulate.cohort import simulate_cohort

RULE = EligibilityRule(criteria=STORM_CRITERIA, label_population=())


def frames_of(sim) -> dict[str, pd.DataFrame]:
    """Simulated domains with the date and number columns the derivations read (the checks of
    external/cohort.py are not part of what is timed)."""
    d = {k: v.copy() for k, v in sim.domains.items()}
    for dom, cols in (("cm", ("CMSTDTC", "CMENDTC")), ("rs", ("RSDTC",)), ("lb", ("LBDTC",))):
        for c in cols:
            d[dom][c[:-1]] = pd.to_datetime(d[dom][c])
            d[dom][c[:-1] + "F"] = ""
    d["cm"]["ROWNUM"] = np.arange(1, len(d["cm"]) + 1)
    d["lb"]["LBSTRESN"] = pd.to_numeric(d["lb"]["LBSTRESN"])
    return d


def build(folder: Path, n: int, chunk: int, partitions: int) -> float:
    t0 = time.perf_counter()
    dic = DrugDictionary.load(None)
    for i, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        write_normalised_parquet(frames_of(simulate_cohort(m, seed=10_000 + i, id_offset=start)), folder,
                                 dictionary=dic, partitions=partitions, part=i)
    return time.perf_counter() - t0


def replicate(folder: Path, copies: int) -> None:
    """Add ``copies - 1`` relabelled copies of the simulated patients (USUBJID prefixed ``K<j>-``):
    a large cohort in seconds, with the simulated cohort's per-patient structure."""
    import duckdb

    for name in ("ex", "pd", "lab", "sct"):
        if not (folder / name).is_dir():
            continue
        src = sorted((folder / name).glob("part-*.parquet"))
        for j in range(1, copies):
            for f in src:
                duckdb.execute(f"COPY (SELECT * REPLACE ('K{j}-' || USUBJID AS USUBJID) FROM read_parquet('{f}')) "
                               f"TO '{folder / name / (f'k{j:03d}-' + f.name)}' (FORMAT PARQUET)")


def sql_floor(folder: Path, out: Path, memory: str) -> float:
    """The floor: one SQL pass that reads every input row (ex, pd, lab) and writes one row per
    patient (counts and date ranges) to Parquet. Any derivation reads at least this much."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory}'")
    t0 = time.perf_counter()
    con.execute(f"""COPY (
        WITH e AS (SELECT USUBJID, count(*) AS N, count(DISTINCT CMGRPID) AS NREG, min(CMSTDT) AS F, max(CMENDT) AS L
                   FROM read_parquet('{folder}/ex/*.parquet') GROUP BY USUBJID),
             p AS (SELECT USUBJID, count(*) AS NPD, max(PDDT) AS LPD FROM read_parquet('{folder}/pd/*.parquet') GROUP BY USUBJID),
             b AS (SELECT USUBJID, count(*) AS NLB, max(VAL) AS MX FROM read_parquet('{folder}/lab/*.parquet') GROUP BY USUBJID)
        SELECT * FROM e LEFT JOIN p USING (USUBJID) LEFT JOIN b USING (USUBJID)) TO '{out}' (FORMAT PARQUET)""")
    con.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dask-n", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=20_000)
    ap.add_argument("--memory", default="2GB")
    ap.add_argument("--keep", default=None, help="folder for the Parquet files (default: a temporary folder)")
    ap.add_argument("--replicate", type=int, default=1,
                    help="simulate n/k patients and write k relabelled copies (a large cohort fast)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--sql-only", action="store_true", help="skip the Dask and pandas comparison")
    a = ap.parse_args()
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="mmtrial-bench-ext-"))
    try:
        big = root / "cohort"
        if not (big / "ex").is_dir():
            k = max(1, a.replicate)
            t = build(big, a.n // k, a.chunk, partitions=1)
            if k > 1:
                t0 = time.perf_counter()
                replicate(big, k)
                t += time.perf_counter() - t0
            print(f"simulate + write {a.n:,} patients (synthetic data{f'; {k} relabelled copies of {a.n // k:,}' if k > 1 else ''}): "
                  f"{t:.1f} s")
        import resource

        import duckdb

        n_pat = duckdb.sql(f"SELECT count(DISTINCT USUBJID) FROM read_parquet('{big}/ex/*.parquet')").fetchall()[0][0]
        t_floor = sql_floor(big, root / "floor.parquet", a.memory)
        timings: list[tuple[str, float]] = []
        cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        t0 = time.perf_counter()
        out = derive_status_sql(big, eligibility=RULE, out=root / "status.parquet", memory_limit=a.memory,
                                threads=a.threads, temp_directory=root / "spill", timings=timings)
        t_sql = time.perf_counter() - t0
        cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0
        nl, ne = duckdb.sql(f"SELECT count(*), count(*) FILTER (WHERE ELIGFL = 'Y') FROM '{out}'").fetchall()[0]
        print(f"DuckDB derivation: {n_pat:,} patients, {nl:,} lines ({ne:,} eligible) in {t_sql:.1f} s "
              f"(process CPU {cpu:.1f} s; {n_pat / t_sql:,.0f} patients/s); floor (one SQL pass reading every "
              f"input row) {t_floor:.1f} s; ratio {t_sql / t_floor:.1f}x")
        print("  steps: " + "; ".join(f"{k} {v:.1f} s" for k, v in timings))
        if a.sql_only:
            return
        dn = min(a.n, a.dask_n or 20_000)
        small = root / "small"
        if not (small / "ex").is_dir():
            build(small, dn, a.chunk, partitions=max(2, 4 * a.workers))
        t0 = time.perf_counter()
        derive_status_sql(small, eligibility=RULE)
        t_sql_small = time.perf_counter() - t0
        import distributed

        with distributed.LocalCluster(n_workers=a.workers, threads_per_worker=1, dashboard_address=None) as cl, \
                distributed.Client(cl) as client:
            t0 = time.perf_counter()
            dk = derive_status_dask(small, eligibility=RULE, client=client)
            t_dask = time.perf_counter() - t0
        t0 = time.perf_counter()
        derive_status_dask(small, eligibility=RULE, client=None)  # dask's default (threads) scheduler
        t_local = time.perf_counter() - t0
        per = t_sql / a.n
        print(f"SQL pass on {dn:,} patients: {t_sql_small:.1f} s")
        print(f"Dask, {a.workers} workers, pandas derivations by patient partition: {dn:,} patients, {len(dk):,} "
              f"lines in {t_dask:.1f} s; ratio to the single SQL pass (same n) {t_dask / t_sql_small:.1f}x; "
              f"per patient vs the {a.n:,}-patient SQL pass {(t_dask / dn) / per:.1f}x")
        print(f"pandas derivations, threads scheduler: {t_local:.1f} s; ratio to the SQL pass {t_local / t_sql_small:.1f}x")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
