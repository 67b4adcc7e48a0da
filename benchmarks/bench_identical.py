"""Check: results.json and the ADaM Parquet files are byte-identical before and after a change
(issue 15), on the demo (n = 123, seed 7) and on a 2,000-subject study (seed 11).

"Before" is a git revision of this repository (default: the commit before issue 15's work,
``--base``); its ``src/`` is exported to a temporary folder and run with the same interpreter.
Both analyses run on the same simulated study (simulated once, by the current tree). Prints each
file's status and the CPU seconds of both runs (children included), their ratio, and exits 1 on
any difference.

    .venv/bin/python benchmarks/bench_identical.py [--base REV] [--n 123 2000]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu_children() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def _analyze(src: Path, study: Path, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = _cpu_children()
    subprocess.run([sys.executable, "-m", "mmtrial.cli", "analyze", str(study), "--out", str(out), "--quiet"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return _cpu_children() - before


def _export(rev: str, dest: Path) -> Path:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="ef8f0f1", help="git revision to compare with")
    ap.add_argument("--n", type=int, nargs="+", default=[123, 2000])
    ap.add_argument("--seed", type=int, default=11, help="seed of the larger studies (the demo uses 7)")
    args = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        base_src = _export(args.base, tmp / "base")
        new_src = ROOT / "src"
        for n in args.n:
            seed = 7 if n == 123 else args.seed
            study = tmp / f"study{n}"
            subprocess.run([sys.executable, "-m", "mmtrial.cli", "simulate", "--n", str(n), "--seed", str(seed),
                            "--out", str(study), "--quiet"], check=True, env={**os.environ, "PYTHONPATH": str(new_src)},
                           stdout=subprocess.DEVNULL)
            t_base = _analyze(base_src, study, tmp / f"base{n}")
            t_new = _analyze(new_src, study, tmp / f"new{n}")
            files = ["results.json", *sorted(str(p.relative_to(tmp / f"base{n}"))
                                             for p in (tmp / f"base{n}" / "adam").glob("*.parquet"))]
            for f in files:
                a, b = tmp / f"base{n}" / f, tmp / f"new{n}" / f
                same = b.exists() and a.read_bytes() == b.read_bytes()
                bad += not same
                print(f"n={n:>6} {f:28s} {'identical' if same else 'DIFFERENT'}")
            print(f"n={n:>6} analyze CPU: {args.base} {t_base:.2f} s, now {t_new:.2f} s "
                  f"(now / before = {t_new / t_base:.2f}; load average {os.getloadavg()[0]:.1f})")
    print("all identical" if not bad else f"{bad} file(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
