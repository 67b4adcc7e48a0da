"""Benchmark: Kaplan-Meier with CIs and quantiles at 10^6 subjects (issue 5).

Compares, in one run on the same data, ``mmtrial.stats.kaplan_meier`` (Greenwood CIs, median,
quartiles with Brookmeyer-Crowley CIs, landmark survival) against a plain numpy sort-and-cumprod
Kaplan-Meier (no CIs, no quantiles). Target: within 3x. Prints rows/second and peak memory.

    .venv/bin/python benchmarks/bench_km.py [n_subjects]
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc

import numpy as np

from mmtrial.stats import kaplan_meier


def plain_numpy_km(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The baseline: sort, distinct times, events and at-risk counts, cumprod."""
    order = np.argsort(t, kind="stable")
    ts, es = t[order], e[order]
    starts = np.flatnonzero(np.concatenate(([True], ts[1:] != ts[:-1])))
    d = np.add.reduceat(es.astype(np.int64), starts)
    n_risk = ts.size - starts
    return np.cumprod(1.0 - d / n_risk)


def full_km(t: np.ndarray, e: np.ndarray):
    km = kaplan_meier(t, e)  # SAS profile: log-log CIs
    q = [km.quantile(p) for p in (0.25, 0.5, 0.75)]
    s = km.survival_table([90.0, 180.0, 365.0])
    return km, q, s


def best_of(fn, *args, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def main(n: int = 1_000_000) -> None:
    rng = np.random.default_rng(2019)
    cases = {
        "integer days (ties)": np.ceil(rng.exponential(250, n)),
        "continuous (unique times)": rng.exponential(250, n),
    }
    e = rng.random(n) < 0.7
    print(f"Kaplan-Meier benchmark, n = {n:,} subjects, 70% events (best of 3)")
    worst = 0.0
    for name, t in cases.items():
        base = best_of(plain_numpy_km, t, e)
        full = best_of(full_km, t, e)
        ratio = full / base
        worst = max(worst, ratio)
        km, q, _ = full_km(t, e)
        print(
            f"  {name:26s} numpy sort+cumprod {base:6.3f} s | mmtrial KM + CIs + quantiles {full:6.3f} s "
            f"({n / full / 1e6:5.1f} M rows/s) | ratio {ratio:4.2f}x | median {q[1][0]:.1f} ({q[1][1]:.1f}, {q[1][2]:.1f})"
        )
        np.testing.assert_allclose(plain_numpy_km(t, e), km.surv)  # same curve
    tracemalloc.start()
    full_km(cases["continuous (unique times)"], e)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak traced memory of one fit: {peak / 2**20:.0f} MiB; process max RSS {rss:.0f} MiB")
    print(f"  worst ratio {worst:.2f}x (target <= 3x): {'OK' if worst <= 3 else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
