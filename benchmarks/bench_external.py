"""Benchmark: the external-cohort derivations (lines, refractory status at every line start,
STORM eligibility) at scale (issue 16, docs/external.md "Scale").

1. simulate ``n`` patients in chunks (simulate/cohort.py, synthetic data) into a normalised
   cohort folder (Parquet, bucketed by patient);
2. one DuckDB SQL pass over the Parquet files, written to Parquet (out of core; ``--memory``
   caps DuckDB's memory);
3. the pandas derivations partitioned by patient on a local Dask cluster (``--dask-n``
   patients, default the smaller of n and 20,000), and in one process for comparison.

Prints seconds, patients per second and the ratio of each path to the single SQL pass (per
patient, so runs on different n compare).

    .venv/bin/python benchmarks/bench_external.py [--n 1000000] [--dask-n 20000] [--workers 2] [--memory 2GB]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dask-n", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=20_000)
    ap.add_argument("--memory", default="2GB")
    ap.add_argument("--keep", default=None, help="folder for the Parquet files (default: a temporary folder)")
    a = ap.parse_args()
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="mmtrial-bench-ext-"))
    try:
        big = root / "cohort"
        if not (big / "ex").is_dir():
            t = build(big, a.n, a.chunk, partitions=1)
            print(f"simulate + write {a.n:,} patients (synthetic data): {t:.1f} s")
        t0 = time.perf_counter()
        out = derive_status_sql(big, eligibility=RULE, out=root / "status.parquet", memory_limit=a.memory)
        t_sql = time.perf_counter() - t0
        import duckdb

        nl, ne = duckdb.sql(f"SELECT count(*), count(*) FILTER (WHERE ELIGFL = 'Y') FROM '{out}'").fetchall()[0]
        print(f"DuckDB single SQL pass: {a.n:,} patients, {nl:,} lines ({ne:,} eligible) in {t_sql:.1f} s "
              f"({a.n / t_sql:,.0f} patients/s)")
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
