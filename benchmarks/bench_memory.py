"""Benchmark: peak memory of the full analysis against the input's own size (issue 15).

For each study size it simulates a study (Parquet domains, ``mmtrial simulate --format
parquet``), then runs two child processes and reads their peak resident set size
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a fresh process each time):

* floor: a Python process that imports pandas and reads every domain file into DataFrames
  (``pandas.read_parquet``) -- the memory any analysis of that input needs at least;
* ``mmtrial analyze`` of the study (no PDF).

It prints both, their ratio, the CPU seconds of the analysis (children included), and the
growth from the smallest to each larger size (peak RSS / subjects, relative to the smallest),
so "close to linear" can be read off. Targets: < 2 GB at 20,000 subjects, < 8 GB at 100,000, in
decimal gigabytes (2 x 10^9 and 8 x 10^9 bytes: 1,907 and 7,629 MiB; the peaks are printed in MiB).

    .venv/bin/python benchmarks/bench_memory.py [--n 2000 20000 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path


def _child(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """Peak RSS (MiB) and CPU seconds of one child process (run in a fresh grandchild, so the
    RUSAGE_CHILDREN maximum belongs to this run only)."""
    code = textwrap.dedent(f"""
        import resource, subprocess, sys
        subprocess.run({args!r}, check=True, stdout=subprocess.DEVNULL)
        u = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(u.ru_maxrss / 1024, u.ru_utime + u.ru_stime)
    """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    rss, cpu = out.stdout.split()
    return float(rss), float(cpu)


#: Issue 15's goals for the peak resident set size, in bytes (decimal GB: 2 GB = 2 x 10^9 bytes).
GOALS_BYTES = {20000: 2 * 10**9, 100000: 8 * 10**9}

FLOOR = """
import sys
from pathlib import Path
import pandas as pd
frames = {p.stem: pd.read_parquet(p) for p in sorted(Path(sys.argv[1]).glob("*.parquet"))}
print(sum(len(f) for f in frames.values()))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="simulate into (and reuse) this folder")
    args = ap.parse_args()
    mm = [sys.executable, "-m", "mmtrial.cli"]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp_s:
        base = args.keep or Path(tmp_s)
        for n in args.n:
            study, out = base / f"study{n}s{args.seed}", Path(tmp_s) / f"out{n}"
            if not (study / "dm.parquet").exists():
                subprocess.run([*mm, "simulate", "--n", str(n), "--seed", str(args.seed), "--format", "parquet",
                                "--out", str(study), "--quiet"], check=True, stdout=subprocess.DEVNULL)
            size = sum(p.stat().st_size for p in study.glob("*.parquet")) / 2**20
            floor, _ = _child([sys.executable, "-c", FLOOR, str(study)])
            rss, cpu = _child([*mm, "analyze", str(study), "--out", str(out), "--quiet"])
            rows.append((n, size, floor, rss, cpu))
            print(f"n={n:>7,}: input {size:7.1f} MiB Parquet; floor (read all domains) {floor:7.0f} MiB; "
                  f"analyze peak RSS {rss:7.0f} MiB = {rss / floor:4.1f} x floor; {cpu:7.1f} s CPU", flush=True)
    n0, _, f0, r0, c0 = rows[0]
    for n, _, f, r, c in rows[1:]:
        k = n / n0
        print(f"growth {n0:,} -> {n:,} subjects (x{k:g}): peak RSS x{r / r0:.1f} (floor x{f / f0:.1f}), "
              f"CPU x{c / c0:.1f}; per subject {r / n * 1024:.0f} KiB vs {r0 / n0 * 1024:.0f} KiB")
    for n, _, _, r, _ in rows:
        goal = GOALS_BYTES.get(n)
        if goal:
            mib = goal / 2**20
            print(f"n={n:,}: peak {r:,.0f} MiB vs goal < {goal / 1e9:g} GB = {mib:,.0f} MiB: "
                  f"{'met' if r < mib else 'NOT met'}")


if __name__ == "__main__":
    main()
