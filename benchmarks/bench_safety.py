"""Benchmark: CTCAE grading (ADLB), exposure (ADEX) and dose-rule checks at scale.

Default scale (issue 6): 100,000 subjects x 50 lab records x 6 tests = 30,000,000 lab rows.
Plain script; prints rows/second per stage and peak memory (resource.getrusage max RSS).

    .venv/bin/python benchmarks/bench_safety.py                 # full scale
    .venv/bin/python benchmarks/bench_safety.py --subjects 10000  # quick
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from mmtrial.derive.adae import derive_adae
from mmtrial.derive.doserules import DoseRuleSet, derive_rule_checks, derive_rule_events
from mmtrial.derive.exposure import derive_adex, derive_exposure_intervals
from mmtrial.derive.toxgrade import derive_adlb
from mmtrial.protocol.model import Protocol

TESTS = {  # test: (unit, LLN, ULN, median, log-sd)
    "PLAT": ("10^9/L", 150.0, 400.0, 120.0, 0.6),
    "NEUT": ("10^9/L", 1.8, 7.5, 2.0, 0.6),
    "HGB": ("g/dL", 12.0, 16.0, 10.0, 0.2),
    "WBC": ("10^9/L", 4.0, 11.0, 4.0, 0.5),
    "SODIUM": ("mmol/L", 135.0, 145.0, 134.0, 0.03),
    "CREAT": ("mg/dL", 0.6, 1.2, 1.0, 0.4),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_frames(n_subj: int, n_rec: int, tests: list[str], seed: int = 1):
    rng = np.random.default_rng(seed)
    ids = pd.array([f"S{i:07d}" for i in range(n_subj)], dtype="str")
    t0 = np.datetime64("2020-01-01") + rng.integers(0, 365, n_subj).astype("timedelta64[D]")
    n_wk = rng.integers(2, 60, n_subj)
    adsl = pd.DataFrame({"USUBJID": ids, "TRTSDT": t0.astype("datetime64[ns]"),
                         "TRTEDT": (t0 + (7 * n_wk - 1).astype("timedelta64[D]")).astype("datetime64[ns]"),
                         "SAFFL": "Y"})
    # labs: n_rec records per test per subject, weekly from 7 days before first dose
    nt = len(tests)
    rows = n_subj * n_rec * nt
    subj = np.repeat(np.arange(n_subj), n_rec * nt)
    tst = np.tile(np.repeat(np.arange(nt), n_rec), n_subj)
    k = np.tile(np.arange(n_rec), n_subj * nt)
    spec = [TESTS[t] for t in tests]
    med = np.array([s[3] for s in spec])[tst]
    sd = np.array([s[4] for s in spec])[tst]
    val = np.round(med * np.exp(sd * rng.standard_normal(rows)), 2)
    lb = pd.DataFrame({
        "USUBJID": ids.take(subj),
        "LBTESTCD": pd.Categorical.from_codes(tst, tests).astype("str"),
        "LBDT": (t0[subj] + (7 * k - 7).astype("timedelta64[D]")).astype("datetime64[ns]"),
        "LBSTRESN": val,
        "LBSTRESU": pd.array(np.array([s[0] for s in spec], dtype=object)[tst], dtype="str"),
        "LBSTNRLO": np.array([s[1] for s in spec])[tst],
        "LBSTNRHI": np.array([s[2] for s in spec])[tst],
        "ROWNUM": np.arange(1, rows + 1),
    })
    # ex: start 80 BIW, ~half reduce to 100 QW after a 7-day gap
    red = rng.random(n_subj) < 0.5
    w1 = np.where(red, np.maximum(n_wk // 2, 1), n_wk)
    e1 = t0 + (7 * w1 - 1).astype("timedelta64[D]")
    s2 = e1 + np.timedelta64(8, "D")
    e2 = t0 + (7 * n_wk - 1 + 7).astype("timedelta64[D]")
    ex = pd.concat([
        pd.DataFrame({"USUBJID": ids, "EXTRT": "SELINEXOR", "EXDOSE": 80.0, "EXDOSFRQ": "BIW",
                      "EXSTDT": t0.astype("datetime64[ns]"), "EXENDT": e1.astype("datetime64[ns]"), "EXADJ": None}),
        pd.DataFrame({"USUBJID": ids[red], "EXTRT": "SELINEXOR", "EXDOSE": 100.0, "EXDOSFRQ": "QW",
                      "EXSTDT": s2[red].astype("datetime64[ns]"), "EXENDT": e2[red].astype("datetime64[ns]"),
                      "EXADJ": "ADVERSE EVENT"}),
    ], ignore_index=True)
    ex["ROWNUM"] = np.arange(1, len(ex) + 1)
    # ae: 8 per subject
    m = 8
    asub = np.repeat(np.arange(n_subj), m)
    pts = np.array(["NAUSEA", "FATIGUE", "THROMBOCYTOPENIA", "DIARRHOEA", "VOMITING", "ANAEMIA",
                    "PNEUMONIA", "WEIGHT DECREASED"])
    socs = np.array(["GASTROINTESTINAL DISORDERS", "GENERAL DISORDERS", "BLOOD AND LYMPHATIC SYSTEM DISORDERS",
                     "GASTROINTESTINAL DISORDERS", "GASTROINTESTINAL DISORDERS",
                     "BLOOD AND LYMPHATIC SYSTEM DISORDERS", "INFECTIONS AND INFESTATIONS", "INVESTIGATIONS"])
    pi = rng.integers(0, len(pts), n_subj * m)
    ast = t0[asub] + rng.integers(0, 200, n_subj * m).astype("timedelta64[D]")
    ae = pd.DataFrame({
        "USUBJID": ids.take(asub), "AEDECOD": pts[pi], "AEBODSYS": socs[pi],
        "AESTDT": ast.astype("datetime64[ns]"),
        "AEENDT": (ast + rng.integers(1, 30, n_subj * m).astype("timedelta64[D]")).astype("datetime64[ns]"),
        "AETOXGR": rng.choice([1.0, 2, 3, 4], n_subj * m, p=[0.5, 0.3, 0.15, 0.05]),
        "AEACN": "DOSE NOT CHANGED", "AESER": "N", "AEREL": "Y", "AEOUT": "RECOVERED/RESOLVED",
        "ROWNUM": np.arange(1, n_subj * m + 1),
    })
    return adsl, lb, ex, ae


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=100_000)
    ap.add_argument("--records", type=int, default=50)
    ap.add_argument("--tests", type=int, default=6)
    args = ap.parse_args()
    tests = list(TESTS)[: args.tests]
    t = time.perf_counter()
    adsl, lb, ex, ae = make_frames(args.subjects, args.records, tests)
    print(f"generated {len(lb):,} lab rows, {len(ex):,} ex rows, {len(ae):,} ae rows "
          f"in {time.perf_counter() - t:.1f} s; peak RSS {peak_rss_mb():,.0f} MB")
    p = Protocol.load()

    def stage(name, rows, fn):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        print(f"{name:<28} {rows:>12,} rows {dt:8.2f} s {rows / dt:>14,.0f} rows/s   peak RSS {peak_rss_mb():,.0f} MB")
        return out

    adae = stage("derive_adae", len(ae), lambda: derive_adae(ae, adsl))
    adlb = stage("derive_adlb (CTCAE grades)", len(lb), lambda: derive_adlb(lb, adsl))
    lb = None  # free the input
    lv = stage("derive_exposure_intervals", len(ex), lambda: derive_exposure_intervals(
        ex, ladder=p.dose_ladder, regimen=p.regimen))
    stage("derive_adex", len(lv), lambda: derive_adex(lv, adsl, regimen=p.regimen, ladder=p.dose_ladder, adae=adae))
    rules = DoseRuleSet.load()
    ev = stage("derive_rule_events", len(adlb) + len(adae), lambda: derive_rule_events(adlb, adae, rules))
    stage("derive_rule_checks", len(ev), lambda: derive_rule_checks(
        ev, lv, adlb, rules, study_drug="SELINEXOR", ladder_levels=[0, -1, -2, -3]))
    print(f"graded records: {int(adlb['ATOXGR'].notna().sum()):,}; peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
