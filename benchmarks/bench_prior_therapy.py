"""Benchmark: prior-therapy derivations at 100,000 subjects with 8 regimens each (issue 4).

Plain script: ``.venv/bin/python benchmarks/bench_prior_therapy.py [n_subjects] [regimens]``.
Builds a synthetic normalised cm/rs/pr (about 2.4 million cm rows), then times each derivation
(drug exposure, regimens, lines, ADLOT, line and drug refractoriness, ADSL flags, eligibility) and
prints rows/second and the peak resident memory (``resource.getrusage``).
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import pandas as pd

from mmtrial.derive.drugs import DrugDictionary, derive_drug_exposure
from mmtrial.derive.eligibility import derive_eligibility
from mmtrial.derive.lines import (
    LineRule,
    derive_adlot,
    derive_lines_of_therapy,
    derive_regimens,
    derive_transplants,
)
from mmtrial.derive.refractory import (
    RefractoryRule,
    derive_drug_refractory,
    derive_line_refractory,
    derive_refractory_flags,
)

REGIMENS = [
    ("BORTEZOMIB", "LENALIDOMIDE", "DEXAMETHASONE"), ("LENALIDOMIDE",), ("CARFILZOMIB", "DEXAMETHASONE"),
    ("POMALIDOMIDE", "CYCLOPHOSPHAMIDE", "DEXAMETHASONE"), ("DARATUMUMAB", "DEXAMETHASONE"),
    ("MELPHALAN", "PREDNISONE"), ("DARATUMUMAB", "POMALIDOMIDE", "DEXAMETHASONE"),
    ("CARFILZOMIB", "POMALIDOMIDE", "DEXAMETHASONE"), ("IXAZOMIB", "DEXAMETHASONE"), ("VELCADE", "Revlimid", "dex"),
]


def make_study(n: int, k: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n), k)
    seq = np.tile(np.arange(k), n)
    reg = rng.integers(0, len(REGIMENS), n * k)
    dur = rng.integers(30, 400, n * k)
    gap = rng.integers(1, 90, n * k)
    start = np.zeros(n * k, dtype=np.int64)
    step = (dur + gap).reshape(n, k)
    start = (np.cumsum(step, axis=1) - step).ravel() + 14000
    end = start + dur
    ndr = np.array([len(REGIMENS[r]) for r in reg])
    ridx = np.repeat(np.arange(n * k), ndr)
    pos = np.arange(len(ridx)) - np.repeat(np.cumsum(ndr) - ndr, ndr)
    drug = np.array([REGIMENS[r][p] for r, p in zip(reg[ridx], pos, strict=True)], dtype=object)
    reason = np.where(rng.random(n * k) < 0.7, "PROGRESSIVE DISEASE", "TOXICITY")
    ids = np.char.add("S", np.arange(n).astype(str)).astype(object)
    day0 = np.datetime64("1970-01-01")
    cm = pd.DataFrame({
        "USUBJID": ids[subj[ridx]], "CMCAT": "PRIOR ANTI-MYELOMA THERAPY",
        "CMGRPID": np.char.add("R", seq[ridx].astype(str)).astype(object), "CMTRT": drug,
        "CMSTDT": (day0 + start[ridx].astype("timedelta64[D]")).astype("datetime64[ns]"),
        "CMENDT": (day0 + end[ridx].astype("timedelta64[D]")).astype("datetime64[ns]"),
        "CMSTDTF": "", "CMENDTF": np.where(rng.random(len(ridx)) < 0.05, "D", ""),
        "CMRSDISC": reason[ridx], "ROWNUM": np.arange(1, len(ridx) + 1),
    })
    pdmask = reason == "PROGRESSIVE DISEASE"
    pdday = end + rng.integers(-20, 80, n * k)
    rs = pd.DataFrame({
        "USUBJID": ids[subj[pdmask]], "RSCAT": "PRIOR THERAPY", "RSTESTCD": "OVRLRESP", "RSSTRESC": "PD",
        "RSGRPID": np.char.add("R", seq[pdmask].astype(str)).astype(object),
        "RSDT": (day0 + pdday[pdmask].astype("timedelta64[D]")).astype("datetime64[ns]"), "RSDTF": "",
        "ROWNUM": np.arange(1, int(pdmask.sum()) + 1),
    })
    has_sct = rng.random(n) < 0.6
    sct_day = start.reshape(n, k)[:, 1] - 20
    pr = pd.DataFrame({
        "USUBJID": ids[has_sct], "PRTRT": "AUTOLOGOUS STEM CELL TRANSPLANT",
        "PRSTDT": (day0 + sct_day[has_sct].astype("timedelta64[D]")).astype("datetime64[ns]"), "PRSTDTF": "",
        "PRLNKGRP": pd.NA, "ROWNUM": np.arange(1, int(has_sct.sum()) + 1),
    })
    return cm, rs, pr


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    t0 = time.perf_counter()
    cm, rs, pr = make_study(n, k)
    print(f"synthetic input: {n:,} subjects, {k} regimens each, {len(cm):,} cm rows, {len(rs):,} rs rows, "
          f"{len(pr):,} transplants ({time.perf_counter() - t0:.1f} s)")
    d = DrugDictionary.load()
    lr, rr = LineRule(), RefractoryRule()
    timings: list[tuple[str, float]] = []
    start_all = time.perf_counter()

    def timed(name, f):
        t = time.perf_counter()
        out = f()
        timings.append((name, time.perf_counter() - t))
        return out

    exp, _ = timed("drug exposure (dictionary)", lambda: derive_drug_exposure(cm, dictionary=d))
    sct = timed("transplants", lambda: derive_transplants(pr, rule=lr))
    items = timed("regimens", lambda: derive_regimens(exp, sct))
    lines = timed("lines of therapy", lambda: derive_lines_of_therapy(items, exp, rule=lr))
    adlot = timed("ADLOT", lambda: derive_adlot(lines))
    lref = timed("line refractory", lambda: derive_line_refractory(lines, rs, rule=rr))
    trt = pd.Series(pd.Timestamp("2030-01-01"), index=pd.Index(cm["USUBJID"].unique()))
    adrefr, _ = timed("drug refractory (ADREFR)", lambda: derive_drug_refractory(exp, rs, dictionary=d, rule=rr, trtsdt=trt))
    subj = pd.DataFrame({"USUBJID": pd.Series(cm["USUBJID"].unique(), dtype="string")})
    nl = adlot.groupby("USUBJID")["LINENUM"].max()
    subj["NLINES"] = subj["USUBJID"].map(nl).fillna(0).astype("int64")
    last = lref.sort_values("LINENUM").drop_duplicates("USUBJID", keep="last").set_index("USUBJID")["LOTREFFL"]
    subj["LSTREFFL"] = subj["USUBJID"].map(last).fillna("N")
    flags = timed("ADSL flags (TCR, penta ...)", lambda: derive_refractory_flags(adrefr, subj, dictionary=d, rule=rr))
    flags["MEASFL"] = "Y"
    elig = timed("eligibility", lambda: derive_eligibility(flags, adrefr, dictionary=d))
    total = time.perf_counter() - start_all
    for name, t in timings:
        print(f"  {name:32s} {t:7.2f} s   {len(cm) / t:14,.0f} cm rows/s")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"total {total:.1f} s: {n / total:,.0f} subjects/s, {len(cm) / total:,.0f} cm rows/s; "
          f"peak RSS {peak_kb / 1024:,.0f} MiB")
    print(f"lines: {len(adlot):,}; median lines {subj['NLINES'].median():.0f}; TCR {flags['TCRFL'].eq('Y').mean():.1%}; "
          f"penta {flags['PENTAFL'].eq('Y').mean():.1%}; eligible {elig['ELIGFL'].eq('Y').mean():.1%}")


if __name__ == "__main__":
    main()
