"""Benchmark: simulate and write synthetic STORM-like studies of 1,000 and 100,000 subjects.

Plain script: ``python benchmarks/bench_simulate.py [N ...] [--format csv|parquet]``.
Prints subjects/second, rows/second (wall and CPU time: on a shared machine the CPU time is the
fair measure) and peak memory: the process's peak resident set size, and with ``--tracemalloc``
also the traced peak (tracemalloc slows numpy allocation-heavy code about twofold).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

from mmtrial.simulate import simulate_study, write_study


def run(n: int, fmt: str, trace: bool) -> None:
    if trace:
        tracemalloc.start()
    c0, t0 = time.process_time(), time.perf_counter()
    sim = simulate_study(n=n, seed=1)
    c1, t1 = time.process_time(), time.perf_counter()
    peak_sim = tracemalloc.get_traced_memory()[1] if trace else 0
    rows = sum(len(df) for df in sim.domains.values())
    tmp = Path(tempfile.mkdtemp(prefix="mmtrial-bench-"))
    try:
        t2 = time.perf_counter()
        write_study(sim, tmp / "study", fmt=fmt)
        t3 = time.perf_counter()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    traced = ""
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        traced = f"  peak traced {peak_sim / 2**20:,.0f} MiB (with write {peak / 2**20:,.0f} MiB)"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"n={n:>7,}  rows={rows:>11,}  simulate {t1 - t0:6.2f} s wall, {c1 - c0:6.2f} s CPU "
          f"({n / (t1 - t0):>8,.0f} subjects/s, {rows / (t1 - t0):>10,.0f} rows/s wall)  "
          f"write[{fmt}] {t3 - t2:6.2f} s ({n / (t3 - t2):>8,.0f} subjects/s)  "
          f"max RSS {rss:,.0f} MiB{traced}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="*", type=int, default=[1_000, 100_000])
    ap.add_argument("--format", default="csv", choices=["csv", "parquet"])
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations")
    args = ap.parse_args()
    for n in args.n:
        run(n, args.format, args.tracemalloc)


if __name__ == "__main__":
    main()
