"""Benchmark: IMWG response derivation at scale (issue 3 quality bar).

100,000 subjects x 20 post-baseline assessments (serum and urine M-protein, kappa and lambda FLC
at each, immunofixation at a quarter of visits, one marrow per subject), i.e. about 9 million lb
rows, through :func:`mmtrial.derive.response.derive_adrs` (baseline, route, assessments, nadirs,
categories, confirmation, BOR). Target: under 30 s on 2 cores. Prints rows/second and peak memory.

Usage: ``python benchmarks/bench_response.py [n_subjects] [n_visits]``
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import pandas as pd

from mmtrial.derive.response import derive_adrs


def make_study(n: int, visits: int, seed: int = 1) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """A synthetic normalised lb (vectorised) with mixed courses: response, stable, progression."""
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2020-01-01")
    start = rng.integers(0, 700, n)
    s0 = rng.lognormal(np.log(2.0), 0.6, n)
    u0 = np.where(rng.random(n) < 0.3, rng.lognormal(np.log(600), 0.8, n), rng.uniform(0, 150, n))
    depth = rng.uniform(-0.2, 1.0, n)  # fraction of reduction reached
    prog_at = rng.integers(3, visits + 8, n)  # visit where progression starts (beyond: never)
    k = np.arange(visits + 1)
    frac = 1 - depth[:, None] * (1 - np.exp(-k[None, :] / 2.0))
    frac = np.where(k[None, :] >= prog_at[:, None], frac * (1.6 ** (k[None, :] - prog_at[:, None] + 1)), frac)
    frac *= rng.lognormal(0, 0.05, frac.shape)
    days = start[:, None] + 28 * k[None, :] + np.where(k > 0, rng.integers(-3, 4, (n, visits + 1)), 0)
    subj = np.repeat(np.arange(n), visits + 1)
    dd = days.ravel()
    parts = []
    lam = rng.uniform(0.5, 2.0, n)
    for code, spec, unit, vals in (("MPROTEIN", "SERUM", "g/dL", (s0[:, None] * frac).ravel()),
                                   ("MPROTEIN", "URINE", "mg/24h", (u0[:, None] * frac).ravel()),
                                   ("KAPPAFLC", "SERUM", "mg/dL", (lam[:, None] * (1 + 30 * frac)).ravel()),
                                   ("LAMBDFLC", "SERUM", "mg/dL", np.repeat(lam, visits + 1))):
        parts.append(pd.DataFrame({"SUBJ": subj, "LBTESTCD": code, "LBSPEC": spec, "LBSTRESN": vals,
                                   "LBSTRESC": None, "LBSTRESU": unit, "D": dd}))
    ife = (k[None, :] % 4 == 3) & np.ones((n, 1), bool)
    neg = (frac < 0.05).ravel()
    for spec in ("SERUM", "URINE"):
        m = ife.ravel()
        parts.append(pd.DataFrame({"SUBJ": subj[m], "LBTESTCD": "IFE", "LBSPEC": spec, "LBSTRESN": np.nan,
                                   "LBSTRESC": np.where(neg[m], "NEGATIVE", "POSITIVE"), "LBSTRESU": None, "D": dd[m]}))
    parts.append(pd.DataFrame({"SUBJ": np.arange(n), "LBTESTCD": "BMPC", "LBSPEC": "BONE MARROW",
                               "LBSTRESN": rng.uniform(1, 40, n), "LBSTRESC": None, "LBSTRESU": "%",
                               "D": start + 100}))
    lb = pd.concat(parts, ignore_index=True)
    ids = np.char.add("SUBJ-", np.arange(n).astype(str)).astype(object)
    lb.insert(0, "USUBJID", ids[lb.pop("SUBJ").to_numpy()])
    lb["LBDT"] = (t0 + lb.pop("D").to_numpy().astype("timedelta64[D]")).astype("datetime64[ns]")
    lb["ROWNUM"] = np.arange(1, len(lb) + 1)
    for c in ("LBTESTCD", "LBSPEC", "LBSTRESU", "LBSTRESC"):
        lb[c] = lb[c].astype("string")
    adsl = pd.DataFrame({"USUBJID": ids, "TRTSDT": (t0 + start.astype("timedelta64[D]")).astype("datetime64[ns]"),
                         "SAFFL": "Y"})
    return {"lb": lb}, adsl


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    visits = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    t = time.perf_counter()
    doms, adsl = make_study(n, visits)
    print(f"built {len(doms['lb']):,} lb rows for {n:,} subjects x {visits} assessments in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    res = derive_adrs(doms, adsl)
    el = time.perf_counter() - t
    rows = len(doms["lb"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bor = res.adsl["BOR"].value_counts().to_dict()
    print(f"derive_adrs: {el:.1f} s, {rows / el:,.0f} lb rows/second, {len(res.adrs):,} ADRS rows, "
          f"{n / el:,.0f} subjects/second; peak RSS {peak_mb:,.0f} MB")
    print(f"BOR: {bor}")
    print("target < 30 s:", "met" if el < 30 else "NOT met")


if __name__ == "__main__":
    main()
