"""Benchmark: the demo analysis in CPU seconds, the permutation test, the PDF, leftover processes
(issue 15).

CPU time, not wall time: the machine may be shared, so every figure is CPU seconds of the process
and its children (``resource.getrusage``), and each is also printed as a ratio to a *floor*
measured in the same run, repeated ``--runs`` times (median):

* floor for the whole analysis: a Python process that only imports numpy and pandas (every
  analysis pays it) -- the ratio says how many "bare interpreter starts" the analysis costs;
* floor for the permutation test: one nested cross-validation of the same panel (the test
  refits it once per permutation, so B permutations cost about B floors; less is shared work);
* floor for the PDF: the same analysis without ``--pdf``.

It also counts the processes left behind by ``analyze()`` (must be 0). Run:

    .venv/bin/python benchmarks/bench_lean.py [--runs 3] [--pdf]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path


def _cpu_children() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def _run_cpu(args: list[str]) -> float:
    """CPU seconds (user + system, children included) of one subprocess."""
    before = _cpu_children()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _cpu_children() - before


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pdf", action="store_true", help="also time --pdf")
    args = ap.parse_args()
    env_note = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    with tempfile.TemporaryDirectory() as tmp:
        study, out = Path(tmp) / "study", Path(tmp) / "out"
        mm = [sys.executable, "-m", "mmtrial.cli"]
        subprocess.run([*mm, "simulate", "--n", "123", "--seed", "7", "--out", str(study), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        floor = [_run_cpu(_py("import numpy, pandas")) for _ in range(args.runs)]
        ana = [_run_cpu([*mm, "analyze", str(study), "--out", str(out), "--quiet"]) for _ in range(args.runs)]
        f, a = statistics.median(floor), statistics.median(ana)
        print(f"machine: {env_note} at start")
        print(f"floor (python -c 'import numpy, pandas'): {f:.2f} s CPU (median of {args.runs})")
        print(f"mmtrial analyze, demo n=123 (no PDF):    {a:.2f} s CPU = {a / f:.1f} x floor "
              f"(runs: {', '.join(f'{v:.2f}' for v in ana)}; target < 5 s)")
        if args.pdf:
            pdf = [_run_cpu([*mm, "analyze", str(study), "--out", str(out), "--quiet", "--pdf"])
                   for _ in range(args.runs)]
            p = statistics.median(pdf)
            print(f"mmtrial analyze --pdf:                   {p:.2f} s CPU; the PDF adds {p - a:.2f} s "
                  f"({p / a:.2f} x the analysis without it; target < 5 s extra)")

        # the permutation test against one nested cross-validation of the same panel
        code = f"""
            import dataclasses, pickle, resource, time, warnings, sys
            import numpy as np
            from mmtrial.pipeline import analyze
            import mmtrial.steps.biomarker as b
            from mmtrial.stats import classifier as C
            got = {{}}
            def grab(X, y, options=None, **kw):
                got.update(X=X, y=y, options=options)
                raise SystemExit
            b.fit_response_classifier = grab
            try:
                analyze({str(study)!r}, {str(Path(tmp) / 'bm')!r}, steps=("adsl", "response", "biomarker"))
            except SystemExit:
                pass
            X, y, o = got["X"].to_numpy(float), got["y"].to_numpy().astype(int), got["options"]
            o = dataclasses.replace(o, n_jobs=1)
            seeds = C._seeds(o.seed)
            def cpu():
                u = resource.getrusage(resource.RUSAGE_SELF); return u.ru_utime + u.ru_stime
            with warnings.catch_warnings(), C._fast_sklearn():
                C._ignore_convergence()
                C._nested_cv(X, y, options=o, impute=False, seeds=seeds)  # warm
                t = cpu(); C._nested_cv(X, y, options=o, impute=False, seeds=seeds); one = cpu() - t
                t = cpu(); C._nested_cv(X, y, options=o, impute=False, seeds=seeds, fast_fit=False)
                ref = cpu() - t
            t = cpu(); test = C.compute_permutation_test(X, y, 0.5, options=o, impute=False, seeds=seeds)
            perm = cpu() - t
            print(one, ref, perm, o.permutations, X.shape[0], X.shape[1])
        """
        r = subprocess.run(_py(code), check=True, capture_output=True, text=True).stdout.split()
        one, ref, perm, B, n, p = float(r[0]), float(r[1]), float(r[2]), int(r[3]), r[4], r[5]
        print(f"biomarker panel {n} x {p}: one nested CV {one:.3f} s CPU (floor); through the scikit-learn "
              f"pipeline {ref:.3f} s ({ref / one:.1f} x)")
        print(f"permutation test, B = {B}: {perm:.2f} s CPU = {perm / one:.1f} x floor "
              f"({perm / B * 1000:.0f} ms per permutation); before issue 15 about {B} x the pipeline figure")

        # processes left behind by analyze() with a worker pool
        code = f"""
            import os
            from mmtrial.pipeline import analyze
            analyze({str(study)!r}, {str(Path(tmp) / 'lo')!r}, steps=("adsl", "response", "biomarker"),
                    options={{"biomarker": {{"permutations": 4, "n_jobs": 2}}}})
            me, n = os.getpid(), 0
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        st = open(f"/proc/{{d}}/stat").read()
                    except OSError:
                        continue
                    n += int(st.rsplit(")", 1)[1].split()[1]) == me
            print(n)
        """
        if Path("/proc").exists():
            left = subprocess.run(_py(code), check=True, capture_output=True, text=True).stdout.split()[-1]
            print(f"processes left behind by analyze() with n_jobs = 2: {left} (target 0)")
    print(f"machine: load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
