"""Synthetic real-world myeloma cohort with a known treatment effect and known confounding.

    from mmtrial.simulate.cohort import CohortParams, simulate_cohort, write_cohort
    sim = simulate_cohort(n=2000, seed=1)
    write_cohort(sim, "cohort/", fmt="sdtm")      # or fmt="omop": cohort/cdm.duckdb

A generative model of long, irregular treatment histories (synthetic data; docs/external.md,
"The cohort simulator"). It never imports derive/ or stats/: refractoriness, triple-class
refractory status and the index line are tracked by the model itself (the IMWG rule, as the
derivations apply it) and written to ``_truth.csv`` / ``_truth_lines.csv`` so that the
derivations can be checked against them.

Generating model (every patient, vectorised over patients, one step per line of therapy)
-----------------------------------------------------------------------------------------
1. Diagnosis date uniform over ``diag_start`` + ``diag_days``; age at diagnosis normal
   (``age_mean``, ``age_sd``, clipped 35-89); sex; high-risk cytogenetics (Bernoulli
   ``hr_cyto``; tested with probability ``cyto_tested``). Observation ends at the earlier of the
   data cut-off and loss to follow-up (exponential, ``loss_per_year``).
2. Line *k* starts ``first_line_delay`` days after diagnosis (line 1) or 1-21 days after the
   progression that ended line *k-1*. Its regimen is drawn from the line's menu (``MENUS``;
   one cm row per drug, all drugs of a regimen share start and end). Time on the regimen is
   exponential with median ``line_median_days[k]`` (x ``hr_duration`` when high-risk), at least
   28 days. It stops for progression with probability ``pd_stop_prob`` (progression 0-30 days
   after the last dose, so the regimen's drugs become refractory) or for toxicity (progression
   61 + exponential(90) days after the last dose: not refractory).
3. Refractory status follows the IMWG rule (Rajkumar 2011) exactly as derive/refractory.py
   applies it with its defaults: a drug is refractory when a progression falls after its
   first dose and at most 60 days after its last dose.
4. Before the index line, death competes with each line at a yearly rate
   ``pre_death_per_year`` x exp(0.04 (age - 65)) x 1.15^(k-1).
5. Index: the first line *k* >= 2 that starts triple-class refractory (refractory to >= 1 PI,
   >= 1 IMiD and an anti-CD38 antibody). Covariates at index x = (age, prior lines k-1,
   penta-refractory, male). Treatment A ~ Bernoulli(expit(ps_intercept + ps_age (age-65) +
   ps_lines (prior lines - 4) + ps_penta penta + ps_male male)) (KNOWN CONFOUNDING: younger,
   less pretreated, non-penta-refractory patients are treated more often). Treated patients get
   the study regimen (``study_regimen``, e.g. selinexor + dexamethasone) at the index line.
6. Survival from the index line start: exponential with hazard
   ln2/``os_median_days`` x exp(beta_age (age-65) + beta_lines (prior lines-4) + beta_penta
   penta + beta_male male + ``log_hr`` A) (KNOWN EFFECT ``log_hr`` conditional on x). Both
   potential outcomes T0 and T1 come from the same uniform draw and are written to the truth,
   so the marginal hazard ratio among the treated (the ATT estimand of IPTW) can be computed.
   Lines after the index continue (later-line menu) until death.
7. Labs are sparse: a serum M-protein before a line start with probability ``lab_prob``
   (measurable, >= 0.5 g/dL, with probability ``measurable_prob``).

Everything after the end of observation is unobserved: lines starting later are dropped, a
regimen still running has no end date, later progressions and deaths are not recorded.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial._io import check_output_folder, finish_dir, new_temp_dir, remove_tree

SYNTHETIC_LABEL = "synthetic data"
EPOCH = np.datetime64("1970-01-01", "D")

#: Drugs the model knows, with their class (PI, IMID, CD38 or other).
DRUGS: dict[str, str] = {
    "BORTEZOMIB": "PI", "CARFILZOMIB": "PI", "IXAZOMIB": "PI",
    "LENALIDOMIDE": "IMID", "POMALIDOMIDE": "IMID", "THALIDOMIDE": "IMID",
    "DARATUMUMAB": "CD38", "ISATUXIMAB": "CD38",
    "DEXAMETHASONE": "GC", "CYCLOPHOSPHAMIDE": "ALK", "MELPHALAN": "ALK", "ELOTUZUMAB": "SLAMF7",
    "SELINEXOR": "XPO1",
}
DRUG_NAMES = tuple(DRUGS)
PENTA_DRUGS = ("BORTEZOMIB", "CARFILZOMIB", "LENALIDOMIDE", "POMALIDOMIDE")

#: Regimen menus by line (name, drugs, weight): line 1, line 2, lines >= 3.
MENUS: tuple[tuple[tuple[str, tuple[str, ...], float], ...], ...] = (
    (("VRd", ("BORTEZOMIB", "LENALIDOMIDE", "DEXAMETHASONE"), 0.55),
     ("VCd", ("BORTEZOMIB", "CYCLOPHOSPHAMIDE", "DEXAMETHASONE"), 0.2),
     ("DRd", ("DARATUMUMAB", "LENALIDOMIDE", "DEXAMETHASONE"), 0.15),
     ("VMP", ("BORTEZOMIB", "MELPHALAN", "DEXAMETHASONE"), 0.1)),
    (("DRd", ("DARATUMUMAB", "LENALIDOMIDE", "DEXAMETHASONE"), 0.35),
     ("KRd", ("CARFILZOMIB", "LENALIDOMIDE", "DEXAMETHASONE"), 0.25),
     ("DVd", ("DARATUMUMAB", "BORTEZOMIB", "DEXAMETHASONE"), 0.2),
     ("PVd", ("POMALIDOMIDE", "BORTEZOMIB", "DEXAMETHASONE"), 0.2)),
    (("DPd", ("DARATUMUMAB", "POMALIDOMIDE", "DEXAMETHASONE"), 0.25),
     ("KPd", ("CARFILZOMIB", "POMALIDOMIDE", "DEXAMETHASONE"), 0.2),
     ("Kd", ("CARFILZOMIB", "DEXAMETHASONE"), 0.15),
     ("PCd", ("POMALIDOMIDE", "CYCLOPHOSPHAMIDE", "DEXAMETHASONE"), 0.15),
     ("IsaPd", ("ISATUXIMAB", "POMALIDOMIDE", "DEXAMETHASONE"), 0.1),
     ("EPd", ("ELOTUZUMAB", "POMALIDOMIDE", "DEXAMETHASONE"), 0.05),
     ("IRd", ("IXAZOMIB", "LENALIDOMIDE", "DEXAMETHASONE"), 0.1)),
)


@dataclass(frozen=True)
class CohortParams:
    """Parameters of the cohort model (module docstring); every value is written to cohort.json."""

    study_id: str = "MMTRIAL-COHORT"
    diag_start: str = "2010-01-01"
    diag_days: int = 3650
    data_cutoff: str = "2024-06-30"
    age_mean: float = 66.0
    age_sd: float = 9.0
    male_fraction: float = 0.55
    hr_cyto: float = 0.25
    cyto_tested: float = 0.6
    first_line_delay: tuple[int, int] = (7, 60)
    line_median_days: tuple[float, ...] = (540.0, 330.0, 220.0, 160.0)
    hr_duration: float = 0.7
    pd_stop_prob: float = 0.8
    max_lines: int = 14
    pre_death_per_year: float = 0.05
    loss_per_year: float = 0.03
    lab_prob: float = 0.6
    measurable_prob: float = 0.85
    # index-line treatment model (known confounding) and survival model (known effect)
    study_regimen: tuple[str, ...] = ("SELINEXOR", "DEXAMETHASONE")
    ps_intercept: float = -0.4
    ps_age: float = -0.05
    ps_lines: float = -0.35
    ps_penta: float = -0.9
    ps_male: float = 0.0
    os_median_days: float = 240.0
    beta_age: float = 0.03
    beta_lines: float = 0.12
    beta_penta: float = 0.5
    beta_male: float = 0.1
    log_hr: float = math.log(0.7)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("male_fraction", "hr_cyto", "cyto_tested", "pd_stop_prob", "lab_prob", "measurable_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"CohortParams.{name}: expected a probability in [0, 1]; got {v!r}")
        if self.max_lines < 2:
            raise ValueError(f"CohortParams.max_lines: expected >= 2; got {self.max_lines!r}")
        for d in self.study_regimen:
            if d not in DRUGS:
                raise ValueError(f"CohortParams.study_regimen: unknown drug {d!r}; known {sorted(DRUGS)}")


@dataclass
class SimulatedCohort:
    """The simulated cohort: SDTM-style frames, the truth, and the metadata (synthetic data)."""

    domains: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    truth_lines: pd.DataFrame
    metadata: dict[str, Any]


def _day(s: str) -> int:
    return int((np.datetime64(s, "D") - EPOCH).astype(int))


def _iso(days: np.ndarray) -> np.ndarray:
    """ISO dates (object array) from integer days; NaN/negative sentinel -> None."""
    d = np.asarray(days, dtype=float)
    ok = np.isfinite(d)
    out = np.full(len(d), None, dtype=object)
    if ok.any():
        out[ok] = np.datetime_as_string((EPOCH + d[ok].astype(np.int64)).astype("datetime64[D]"))
    return out


def simulate_cohort(n: int, seed: int = 1, params: CohortParams | None = None, *,
                    id_offset: int = 0) -> SimulatedCohort:
    """Simulate ``n`` patients (module docstring: the generating model). Deterministic per seed.

    ``id_offset``: patients are numbered from ``id_offset + 1`` (USUBJID ``C0000001`` ...), so a
    large cohort can be simulated in chunks with distinct seeds and offsets."""
    if n < 1:
        raise ValueError(f"simulate_cohort: n must be >= 1; got {n}")
    p = params or CohortParams()
    rng = np.random.default_rng(seed)
    nd = len(DRUG_NAMES)
    drug_ix = {d: i for i, d in enumerate(DRUG_NAMES)}
    cls = np.array([DRUGS[d] for d in DRUG_NAMES])

    # 1. patients
    diag = _day(p.diag_start) + rng.integers(0, p.diag_days, n)
    age0 = np.clip(rng.normal(p.age_mean, p.age_sd, n), 35, 89)
    birth = diag - np.round(age0 * 365.25).astype(np.int64) - rng.integers(0, 365, n)
    male = rng.random(n) < p.male_fraction
    hr = rng.random(n) < p.hr_cyto
    cyto_tested = rng.random(n) < p.cyto_tested
    cutoff = _day(p.data_cutoff)
    loss = diag + np.ceil(rng.exponential(365.25 / max(p.loss_per_year, 1e-9), n)).astype(np.int64)
    obs_end = np.minimum(cutoff, loss)

    # menus as arrays
    menus = []
    for m in MENUS:
        w = np.array([x[2] for x in m])
        mat = np.zeros((len(m), nd), dtype=bool)
        for j, (_, drugs, _) in enumerate(m):
            mat[j, [drug_ix[d] for d in drugs]] = True
        menus.append((w / w.sum(), mat))
    study_mat = np.zeros(nd, dtype=bool)
    study_mat[[drug_ix[d] for d in p.study_regimen]] = True

    first_exp = np.full((n, nd), np.iinfo(np.int64).max, dtype=np.int64)
    last_end = np.full((n, nd), -(10**9), dtype=np.int64)
    ref = np.zeros((n, nd), dtype=bool)
    start = diag + rng.integers(p.first_line_delay[0], p.first_line_delay[1] + 1, n)
    active = np.ones(n, dtype=bool)
    death = np.full(n, np.inf)
    indexed = np.zeros(n, dtype=bool)
    idx_line = np.zeros(n, dtype=np.int64)
    idx_day = np.full(n, -1, dtype=np.int64)
    treated = np.zeros(n, dtype=bool)
    t0 = np.full(n, np.nan)
    t1 = np.full(n, np.nan)
    xcov = np.full((n, 4), np.nan)
    rec_lines: list[dict[str, np.ndarray]] = []
    base_rate = math.log(2) / p.os_median_days

    for k in range(p.max_lines):
        ids = np.flatnonzero(active & (start <= obs_end))
        if len(ids) == 0:
            break
        s = start[ids]
        # status at the line start (before this line's drugs)
        r_pi = (ref[ids] & (cls == "PI")).any(1)
        r_im = (ref[ids] & (cls == "IMID")).any(1)
        r_cd = (ref[ids] & (cls == "CD38")).any(1)
        tcr = r_pi & r_im & r_cd
        penta = ref[ids][:, [drug_ix[d] for d in PENTA_DRUGS]].all(1) & r_cd
        new_idx = tcr & ~indexed[ids] & (k >= 1)
        ni = ids[new_idx]
        if len(ni):
            age_i = (s[new_idx] - birth[ni]) / 365.25
            prior = np.full(len(ni), k, dtype=float)
            pen = penta[new_idx].astype(float)
            ml = male[ni].astype(float)
            lin = (p.ps_intercept + p.ps_age * (age_i - 65) + p.ps_lines * (prior - 4)
                   + p.ps_penta * pen + p.ps_male * ml)
            a = rng.random(len(ni)) < 1.0 / (1.0 + np.exp(-lin))
            eta = p.beta_age * (age_i - 65) + p.beta_lines * (prior - 4) + p.beta_penta * pen + p.beta_male * ml
            e = rng.exponential(1.0, len(ni))
            t0[ni] = e / (base_rate * np.exp(eta))
            t1[ni] = e / (base_rate * np.exp(eta + p.log_hr))
            indexed[ni] = True
            idx_line[ni] = k + 1
            idx_day[ni] = s[new_idx]
            treated[ni] = a
            xcov[ni] = np.column_stack([age_i, prior, pen, ml])
            death[ni] = s[new_idx] + np.ceil(np.where(a, t1[ni], t0[ni]))
        # regimen
        w, mat = menus[min(k, 2)]
        choice = rng.choice(len(w), size=len(ids), p=w)
        drugs = mat[choice].copy()
        on_study = new_idx & treated[ids]
        drugs[on_study] = study_mat
        # duration, stop reason, progression
        med = p.line_median_days[min(k, len(p.line_median_days) - 1)] * np.where(hr[ids], p.hr_duration, 1.0)
        dur = np.maximum(28, np.ceil(rng.exponential(med / math.log(2))).astype(np.int64))
        end = s + dur - 1
        # pre-index death competes with the line (after the index, death is fixed)
        pre = ~indexed[ids]
        age_now = (s - birth[ids]) / 365.25
        rate = p.pre_death_per_year / 365.25 * np.exp(0.04 * (age_now - 65)) * 1.15 ** k
        dpre = s + np.ceil(rng.exponential(1.0 / rate)).astype(np.int64)
        death[ids[pre]] = np.where(dpre[pre] < death[ids[pre]], dpre[pre], death[ids[pre]])
        dth = death[ids]
        died_on = dth <= end
        end = np.where(died_on, dth, end).astype(np.int64)
        by_pd = rng.random(len(ids)) < p.pd_stop_prob
        pdd = np.where(by_pd, end + rng.integers(0, 31, len(ids)),
                       end + 61 + np.ceil(rng.exponential(90, len(ids))).astype(np.int64))
        has_pd = ~died_on & (pdd < dth)
        reason = np.where(died_on, "DEATH", np.where(by_pd, "PROGRESSIVE DISEASE", "TOXICITY"))
        nxt = pdd + rng.integers(1, 22, len(ids))
        # exposure bookkeeping, then refractoriness from this line's progression
        rows = np.repeat(np.arange(len(ids)), drugs.sum(1))
        cols = np.nonzero(drugs)[1]
        pid = ids[rows]
        first_exp[pid, cols] = np.minimum(first_exp[pid, cols], s[rows])
        last_end[pid, cols] = end[rows]
        hp = has_pd
        if hp.any():
            pp = ids[hp]
            pdv = pdd[hp][:, None]
            newref = (first_exp[pp] < pdv) & (last_end[pp] >= pdv - 60) & (last_end[pp] > -(10**9))
            ref[pp] |= newref
        rec_lines.append({
            "pid": ids, "line": np.full(len(ids), k + 1), "start": s, "end": end, "reason": reason,
            "pd": np.where(has_pd, pdd, -1), "drugs": drugs, "tcr": tcr, "penta": penta,
            "ref_pi": r_pi, "ref_im": r_im, "ref_cd": r_cd,
        })
        cont = has_pd & (nxt < dth)
        start[ids] = nxt
        active[ids] = cont
    # patients past max_lines keep their last line's dates (history ends)

    lines = {k: np.concatenate([r[k] for r in rec_lines]) for k in rec_lines[0] if k != "drugs"}
    ldrugs = np.concatenate([r["drugs"] for r in rec_lines])
    return _assemble(p, seed, n, id_offset, rng, lines, ldrugs, diag, birth, male, hr, cyto_tested, obs_end, death,
                     indexed, idx_line, idx_day, treated, t0, t1, xcov)


def _assemble(p: CohortParams, seed: int, n: int, id_offset: int, rng: np.random.Generator, lines: dict[str, np.ndarray],
              ldrugs: np.ndarray, diag, birth, male, hr, cyto_tested, obs_end, death, indexed, idx_line,
              idx_day, treated, t0, t1, xcov) -> SimulatedCohort:
    usubjid = np.char.add("C", np.char.zfill(np.arange(id_offset + 1, id_offset + n + 1).astype(str), 7)).astype(object)
    pid = lines["pid"]
    oe = obs_end[pid]
    seen = lines["start"] <= oe
    L = {k: v[seen] for k, v in lines.items()}
    D = ldrugs[seen]
    oe = oe[seen]
    pid = L["pid"]
    end_seen = L["end"] <= oe
    pd_seen = (L["pd"] >= 0) & (L["pd"] <= oe)
    death_seen = death <= obs_end
    last_alive = np.where(death_seen, death, obs_end).astype(np.int64)

    # cm: one row per drug of each observed regimen
    r, c = np.nonzero(D)
    grp = np.array([f"R{x:02d}" for x in range(1, p.max_lines + 1)], dtype=object)[L["line"][r] - 1]
    cm = pd.DataFrame({
        "STUDYID": p.study_id, "USUBJID": usubjid[pid[r]], "CMTRT": np.array(DRUG_NAMES, dtype=object)[c],
        "CMCAT": "PRIOR ANTI-MYELOMA THERAPY", "CMGRPID": grp,
        "CMSTDTC": _iso(L["start"][r]),
        "CMENDTC": _iso(np.where(end_seen[r], L["end"][r], np.nan)),
        "CMRSDISC": np.where(end_seen[r], L["reason"][r], None),
    }).sort_values(["USUBJID", "CMGRPID", "CMTRT"], kind="stable").reset_index(drop=True)
    # rs: progression events (prior-therapy response records)
    q = np.flatnonzero(pd_seen)
    rs = pd.DataFrame({
        "STUDYID": p.study_id, "USUBJID": usubjid[pid[q]], "RSCAT": "PRIOR THERAPY", "RSTESTCD": "OVRLRESP",
        "RSSTRESC": "PD", "RSEVAL": "INVESTIGATOR",
        "RSGRPID": np.array([f"R{x:02d}" for x in range(1, p.max_lines + 1)], dtype=object)[L["line"][q] - 1],
        "RSDTC": _iso(L["pd"][q]),
    }).sort_values(["USUBJID", "RSDTC"], kind="stable").reset_index(drop=True)
    # dm, mh, ds
    first_start = np.full(n, np.nan)
    l1 = L["line"] == 1
    first_start[pid[l1]] = L["start"][l1]
    age_first = np.floor((np.where(np.isfinite(first_start), first_start, diag) - birth) / 365.25).astype(np.int64)
    dm = pd.DataFrame({
        "STUDYID": p.study_id, "USUBJID": usubjid, "AGE": age_first, "SEX": np.where(male, "M", "F"),
        "BRTHDTC": _iso(birth), "RFXSTDTC": _iso(first_start), "DTHFL": np.where(death_seen, "Y", None),
        "DTHDTC": _iso(np.where(death_seen, death, np.nan)), "ARM": "REAL-WORLD COHORT (SYNTHETIC DATA)",
    })
    mh = pd.DataFrame({"STUDYID": p.study_id, "USUBJID": usubjid, "MHCAT": "PRIMARY DIAGNOSIS",
                       "MHTERM": "MULTIPLE MYELOMA", "MHDECOD": "PLASMA CELL MYELOMA", "MHSTDTC": _iso(diag)})
    dd = np.flatnonzero(death_seen)
    al = np.flatnonzero(~death_seen)
    ds = pd.concat([
        pd.DataFrame({"STUDYID": p.study_id, "USUBJID": usubjid[dd], "DSCAT": "DISPOSITION EVENT",
                      "DSDECOD": "DEATH", "DSTERM": "DEATH", "DSSTDTC": _iso(death[dd])}),
        pd.DataFrame({"STUDYID": p.study_id, "USUBJID": usubjid[al], "DSCAT": "OTHER EVENT",
                      "DSDECOD": "LAST KNOWN ALIVE", "DSTERM": "LAST KNOWN ALIVE", "DSSTDTC": _iso(obs_end[al])}),
    ], ignore_index=True).sort_values("USUBJID", kind="stable").reset_index(drop=True)
    # lb: sparse serum M-protein before line starts; cytogenetics at diagnosis for tested patients
    has_lab = rng.random(len(pid)) < p.lab_prob
    meas = rng.random(len(pid)) < p.measurable_prob
    val = np.where(meas, np.exp(rng.normal(math.log(1.6), 0.6, len(pid))), rng.uniform(0.0, 0.45, len(pid)))
    ldate = L["start"] - rng.integers(0, 21, len(pid))
    m = np.flatnonzero(has_lab)
    lb_m = pd.DataFrame({"USUBJID": usubjid[pid[m]], "LBCAT": "CHEMISTRY", "LBTESTCD": "MPROTEIN",
                         "LBSPEC": "SERUM", "LBSTRESN": np.round(val[m], 2), "LBSTRESC": None,
                         "LBSTRESU": "g/dL", "LBDTC": _iso(ldate[m])})
    ct = np.flatnonzero(cyto_tested)
    tests = ("DEL17P", "T414", "T1416")
    which = rng.integers(0, 3, n)
    cy = pd.DataFrame({
        "USUBJID": np.repeat(usubjid[ct], 3), "LBCAT": "CYTOGENETICS", "LBTESTCD": np.tile(tests, len(ct)),
        "LBSPEC": "BONE MARROW", "LBSTRESN": np.nan,
        "LBSTRESC": np.where(np.repeat(hr[ct], 3) & (np.tile(np.arange(3), len(ct)) == np.repeat(which[ct], 3)),
                             "POSITIVE", "NEGATIVE"),
        "LBSTRESU": "", "LBDTC": np.repeat(_iso(diag[ct]), 3)})
    lb = pd.concat([lb_m, cy], ignore_index=True).sort_values(["USUBJID", "LBDTC"], kind="stable").reset_index(drop=True)

    truth = pd.DataFrame({
        "USUBJID": usubjid, "DIAGDTC": _iso(diag), "INDEXFL": np.where(indexed, "Y", "N"),
        "INDEXLN": np.where(indexed, idx_line, 0), "INDEXDTC": _iso(np.where(indexed, idx_day, np.nan)),
        "TREATED": np.where(treated, "Y", "N"), "AGEIDX": np.round(xcov[:, 0], 4), "NPRIOR": xcov[:, 1],
        "PENTAFL": np.where(xcov[:, 2] == 1, "Y", np.where(np.isnan(xcov[:, 2]), None, "N")),
        "MALE": xcov[:, 3], "T0DAYS": t0, "T1DAYS": t1,
        "CENSDAYS": np.where(indexed, obs_end - idx_day, np.nan),
        "DEATHDTC": _iso(np.where(np.isfinite(death), death, np.nan)), "OBSENDDTC": _iso(obs_end),
        "LASTALIVEDTC": _iso(last_alive), "HRCYTO": np.where(hr, "Y", "N"),
    })
    truth_lines = pd.DataFrame({
        "USUBJID": usubjid[pid], "LINENUM": L["line"], "LINESTDTC": _iso(L["start"]),
        "TCRFL": np.where(L["tcr"], "Y", "N"), "PENTAFL": np.where(L["penta"], "Y", "N"),
        "PIREFFL": np.where(L["ref_pi"], "Y", "N"), "IMDREFFL": np.where(L["ref_im"], "Y", "N"),
        "C38REFFL": np.where(L["ref_cd"], "Y", "N"),
        "DRUGS": _drug_lists(D),
    }).sort_values(["USUBJID", "LINENUM"]).reset_index(drop=True)
    meta = {
        "synthetic": True, "label": SYNTHETIC_LABEL, "generator": "mmtrial.simulate.cohort", "kind": "cohort",
        "version": "1.0", "seed": seed, "n": n, "study_id": p.study_id, "data_cutoff": p.data_cutoff,
        "params": _jsonable(asdict(p)),
        "menus": {f"line {'>=3' if i == 2 else i + 1}": [[nm, list(d), w] for nm, d, w in m] for i, m in enumerate(MENUS)},
        "true_log_hr_conditional": p.log_hr,
    }
    return SimulatedCohort(domains={"dm": dm, "cm": cm, "rs": rs, "ds": ds, "lb": lb, "mh": mh},
                           truth=truth, truth_lines=truth_lines, metadata=meta)


def _drug_lists(D: np.ndarray) -> np.ndarray:
    """';'-joined drug names per row of a boolean drug matrix (one pass per drug, not per row)."""
    out = np.full(len(D), "", dtype=object)
    for j, name in enumerate(DRUG_NAMES):
        has = D[:, j]
        sep = np.where(out[has] == "", "", ";")
        out[has] = out[has] + sep + name
    return out


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (tuple, list)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    return o


def write_cohort(sim: SimulatedCohort, out_dir: str | Path, fmt: str = "sdtm") -> Path:
    """Write the cohort to ``out_dir`` (output-folder rules, docs/cli.md; kind ``cohort``).

    ``sdtm``: one CSV per domain plus ``_truth.csv``, ``_truth_lines.csv`` and ``study.json``
    (``synthetic: true``); ``omop``: ``cdm.duckdb`` with the OMOP CDM v5.4 tables
    (:func:`mmtrial.simulate.cohort_omop.write_omop`) plus the same truth files and study.json.
    """
    if fmt not in ("sdtm", "omop"):
        raise ValueError(f"write_cohort: fmt must be 'sdtm' or 'omop'; got {fmt!r}")
    given = Path(out_dir)
    out = check_output_folder(given, kind="cohort")
    tmp = new_temp_dir(out, kind="cohort")
    try:
        if fmt == "sdtm":
            for name, df in sim.domains.items():
                df.to_csv(tmp / f"{name}.csv", index=False)
        else:
            from mmtrial.simulate.cohort_omop import write_omop

            write_omop(sim, tmp / "cdm.duckdb")
        sim.truth.to_csv(tmp / "_truth.csv", index=False)
        sim.truth_lines.to_csv(tmp / "_truth_lines.csv", index=False)
        meta = dict(sim.metadata)
        meta["format"] = fmt
        meta["domains"] = {k: len(v) for k, v in sim.domains.items()}
        (tmp / "study.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
        finish_dir(tmp, out, kind="cohort", status="complete")
    finally:
        if tmp.exists():
            remove_tree(tmp)
    return given
