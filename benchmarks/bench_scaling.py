"""Benchmark: growth of the whole analysis with the number of subjects (issue 15).

Issue 15 asks for "growth close to linear from 2,000 to 100,000 subjects". For each study size
this script simulates a study (``mmtrial simulate --format parquet``, seed 7, reused when
``--keep`` names a folder that already has it) and runs ``mmtrial analyze`` (no PDF) in a fresh
process, reading its CPU seconds (children included) and peak resident set size
(``bench_memory._child``). It prints, per size, both figures per subject and their ratio to the
smallest size's (1.0 = linear; below 1 = the fixed costs, imports and the report's skeleton, are
spread over more subjects), and the growth exponent from the previous size,
``log(cost ratio) / log(size ratio)`` (1.0 = linear, 2.0 = quadratic).

    python benchmarks/bench_scaling.py [--n 2000 10000] [--big] [--keep DIR]

``--big`` adds 50,000 subjects (about 5 GB and several minutes of CPU; never run two at once on a
shared machine). The 20,000 and 100,000 runs of ``bench_memory.py`` use the same seed and folder
names (``study<n>s<seed>``), so ``--keep`` can reuse their studies.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import _child  # peak RSS and CPU of one fresh child process


def _study(base: Path, n: int, seed: int) -> Path:
    study = base / f"study{n}s{seed}"
    if not (study / "dm.parquet").exists():
        subprocess.run([sys.executable, "-m", "mmtrial.cli", "simulate", "--n", str(n), "--seed", str(seed),
                        "--format", "parquet", "--out", str(study), "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
    return study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--big", action="store_true", help="also 50,000 subjects")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="simulate into (and reuse) this folder")
    args = ap.parse_args()
    sizes = sorted(set(args.n) | ({50000} if args.big else set()))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"mmtrial analyze (no PDF), Parquet input, seed {args.seed}")
    rows: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp_s:
        base = args.keep or Path(tmp_s)
        base.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            study, out = _study(base, n, args.seed), Path(tmp_s) / f"out{n}"
            rss, cpu = _child([sys.executable, "-m", "mmtrial.cli", "analyze", str(study), "--out", str(out),
                               "--quiet"])
            rows.append((n, cpu, rss))
            n0, c0, r0 = rows[0]
            line = (f"n={n:>7,}: {cpu:8.1f} s CPU ({cpu / n * 1000:6.2f} s per 1,000 subjects, "
                    f"x{cpu / n / (c0 / n0):.2f} of n={n0:,}'s); peak RSS {rss:7,.0f} MiB "
                    f"({rss / n * 1024:6.1f} KiB per subject, x{rss / n / (r0 / n0):.2f})")
            if len(rows) > 1:
                np_, cp, rp = rows[-2]
                k = math.log(n / np_)
                line += f"; exponent from n={np_:,}: CPU {math.log(cpu / cp) / k:.2f}, RSS {math.log(rss / rp) / k:.2f}"
            print(line, flush=True)
            subprocess.run(["rm", "-rf", str(out)], check=False)
    n0, c0, r0 = rows[0]
    n1, c1, r1 = rows[-1]
    if n1 > n0:
        k = math.log(n1 / n0)
        print(f"growth {n0:,} -> {n1:,} subjects (x{n1 / n0:g}): CPU x{c1 / c0:.1f} (exponent {math.log(c1 / c0) / k:.2f}), "
              f"peak RSS x{r1 / r0:.1f} (exponent {math.log(r1 / r0) / k:.2f}); 1.0 = linear")


if __name__ == "__main__":
    main()
