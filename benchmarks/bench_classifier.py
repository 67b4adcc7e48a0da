"""Benchmark: the response classifier at STORM scale, 35 subjects x 5,000 markers (issue 8).

Times, on one simulated panel (16 responders, 19 non-responders, four planted markers):

1. the nested cross-validation alone (5 x 3 folds, 6 penalties, k = 4) plus the final model;
2. the full default analysis with the permutation test (default 100 permutations), on one core
   and, when asked, on several (``--jobs``); the results are identical whatever the core count.

Prints subjects x markers per second and peak memory (tracemalloc for Python allocations, and
the process's maximum resident set size).

    .venv/bin/python benchmarks/bench_classifier.py [n_subjects] [n_markers] [--permutations B] [--jobs J]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd

from mmtrial.stats.classifier import ClassifierOptions, fit_response_classifier


def panel(n: int, p: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    n1 = round(n * 16 / 35)
    y = pd.Series(np.r_[np.ones(n1, int), np.zeros(n - n1, int)], index=[f"S{i:04d}" for i in range(n)])
    X = pd.DataFrame(rng.normal(size=(n, p)), index=y.index, columns=[f"M{j:05d}" for j in range(p)])
    X.iloc[:, :4] += 1.5 * y.to_numpy()[:, None]
    return X, y


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=35)
    ap.add_argument("p", nargs="?", type=int, default=5000)
    ap.add_argument("--permutations", type=int, default=ClassifierOptions().permutations)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--model", default="l1-logistic")
    args = ap.parse_args()
    X, y = panel(args.n, args.p)
    cells = args.n * args.p
    fit_response_classifier(X.iloc[:, :50], y, options=ClassifierOptions(permutations=0))  # warm imports

    t0 = time.perf_counter()
    c0 = time.process_time()
    res = fit_response_classifier(X, y, options=ClassifierOptions(model=args.model, permutations=0))
    t_cv = time.perf_counter() - t0
    cpu_cv = time.process_time() - c0
    tracemalloc.start()  # separate run: tracing slows Python code, so it is not timed
    fit_response_classifier(X, y, options=ClassifierOptions(model=args.model, permutations=0))
    _, peak_cv = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"panel: {args.n} subjects x {args.p} markers ({cells:,} values), model {args.model}")
    print(f"nested CV + final model: {t_cv:.2f} s wall, {cpu_cv:.2f} s CPU ({cells / t_cv:,.0f} values/s); "
          f"CV accuracy {res.cv.accuracy.x}/{res.cv.accuracy.n}, AUC {res.cv.auc.estimate:.3f}; "
          f"top markers {list(res.selection_counts.index[:4])}; peak traced memory {peak_cv / 2**20:.1f} MiB")

    jobs = sorted({1, args.jobs})
    for j in jobs:
        opts = ClassifierOptions(model=args.model, permutations=args.permutations, n_jobs=j)
        t0 = time.perf_counter()
        c0 = time.process_time()
        res = fit_response_classifier(X, y, options=opts)
        t = time.perf_counter() - t0
        cpu = time.process_time() - c0
        per = (t - t_cv) / max(args.permutations, 1)
        print(f"full analysis, {args.permutations} permutations, {j} job(s): {t:.2f} s wall, {cpu:.2f} s CPU "
              "in this process "
              f"({per * 1000:.0f} ms per permutation); p = {res.permutation.p_value:.4f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
