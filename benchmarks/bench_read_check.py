"""Benchmark: simulate + write + read + check at 1,000 and 100,000 subjects (issue 2).

Prints subjects/second per stage and the process's peak resident memory so far (ru_maxrss;
tracemalloc was not used: it slows pandas/pyarrow work many-fold and so distorts the timings). Run: ``.venv/bin/python benchmarks/bench_read_check.py [N ...]`` (default 1000 100000).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from mmtrial.sdtm import load_study
from mmtrial.simulate import simulate_study, write_study


def _measure(label: str, n: int, fn):
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{label:<28} n={n:>7,}  {dt:7.2f} s  {n / dt:>10,.0f} subjects/s  peak RSS so far {peak:8.0f} MiB")
    return out


def main(sizes: list[int]) -> None:
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "study"
            sim = _measure("simulate", n, lambda: simulate_study(n=n, seed=1))  # noqa: B023
            rows = sum(len(d) for d in sim.domains.values())
            folders = {}
            for fmt in ("parquet", "csv"):
                folders[fmt] = folder.with_name(f"study-{fmt}")
                _measure(f"write ({fmt})", n, partial(write_study, sim, folders[fmt], fmt=fmt))
            del sim  # free the simulated frames before reading
            for fmt, f in folders.items():
                study, issues = _measure(f"read + check ({fmt})", n, partial(load_study, f))
                errors = [i for i in issues if i.severity == "error"]
                assert study is not None and not errors, errors[:5]
                del study
            print(f"  ({rows:,} SDTM rows)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 100_000])
