"""Aggregates of a simulated study, for calibration against STORM (docs/simulator.md).

Computed from the simulator's ground truth and its own domains with small self-contained
estimators (simulate/ never imports stats/): proportions over the efficacy population and
Kaplan-Meier medians (the smallest time at which S(t) <= 0.5; 'not reached' is NaN).
Months are days / 30.4375 (validation.md section 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmtrial.simulate.params import SimulationParams

DAYS_PER_MONTH = 30.4375

#: published STORM Part 2 values (domain.md sections 1.2-1.6 and 5; tag C unless noted)
PUBLISHED: dict[str, float] = {
    "orr_pct": 26.2, "cbr_pct": 39.3, "scr_n": 2, "vgpr_n": 6, "pr_n": 24, "mr_n": 16,
    "median_pfs_months": 3.7, "median_os_months": 8.6, "median_os_ge_pr_months": 15.6,
    "median_os_ge_mr_months": 15.6, "median_dor_months": 4.4,
    "median_ttr_weeks": 4.1, "g34_thrombocytopenia_pct": 59.0, "g34_anemia_pct": 44.0,
    "g34_hyponatremia_pct": 22.0, "g34_neutropenia_pct": 21.0, "median_treatment_weeks": 9.0,
    "dose_modified_pct": 80.0, "penta_pct": 68.0, "median_prior_regimens": 7.0,
    "median_years_since_diagnosis": 6.6, "high_risk_cyto_pct": 53.0,
}


def km_median(time: np.ndarray, event: np.ndarray) -> float:
    """Kaplan-Meier median: smallest event time with S(t) <= 0.5 (NaN when not reached)."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    ok = ~np.isnan(t)
    t, e = t[ok], e[ok]
    if len(t) == 0:
        return float("nan")
    times = np.unique(t[e])
    at_risk = (t[None, :] >= times[:, None]).sum(axis=1)
    deaths = ((t[None, :] == times[:, None]) & e[None, :]).sum(axis=1)
    surv = np.cumprod(1.0 - deaths / at_risk)
    below = np.flatnonzero(surv <= 0.5)
    return float(times[below[0]]) if len(below) else float("nan")


def summarize(sim: Any) -> dict[str, float]:
    """STORM-comparable aggregates of one simulated study (efficacy population n = measurable)."""
    tr = sim.truth
    eff = tr[tr["TRUE_MEASURABLE"] == "Y"]
    n = len(eff)
    bor = eff["TRUE_BOR"]
    out: dict[str, float] = {"n_efficacy": n, "n_safety": len(tr)}
    for cat in ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"):
        out[f"{cat.lower()}_n"] = float((bor == cat).sum())
    out["orr_pct"] = 100.0 * (eff["TRUE_RESPONDER"] == "Y").mean()
    out["cbr_pct"] = 100.0 * (eff["TRUE_CBR"] == "Y").mean()
    out["median_pfs_months"] = km_median(eff["TRUE_PFS_DAYS"], eff["TRUE_PFS_EVENT"]) / DAYS_PER_MONTH
    out["median_os_months"] = km_median(tr["TRUE_OS_DAYS"], tr["TRUE_OS_EVENT"]) / DAYS_PER_MONTH
    # OS by best overall response (STORM: 15.6 months for >= PR and for >= MR; domain.md 1.4)
    for key, col in (("median_os_ge_pr_months", "TRUE_RESPONDER"), ("median_os_ge_mr_months", "TRUE_CBR")):
        grp = eff[eff[col] == "Y"]
        out[key] = km_median(grp["TRUE_OS_DAYS"], grp["TRUE_OS_EVENT"]) / DAYS_PER_MONTH
    resp = eff[eff["TRUE_RESPONDER"] == "Y"]
    rdt = pd.to_datetime(resp["TRUE_RESP_DT"])
    pdt = pd.to_datetime(resp["TRUE_PD_DT"])
    ddt = pd.to_datetime(resp["TRUE_DTH_DT"])
    ntx = pd.to_datetime(resp["TRUE_NEWTX_DT"])
    last = pd.to_datetime(resp["TRUE_LAST_ADEQ_DT"])
    death_evt = ddt.notna() & pdt.isna() & (ntx.isna() | (ddt < ntx))
    end = pdt.where(pdt.notna(), ddt.where(death_evt, last))
    dor = (end - rdt).dt.days + 1
    out["median_dor_months"] = km_median(dor.to_numpy(float), (pdt.notna() | death_evt).to_numpy()) / DAYS_PER_MONTH
    out["median_ttr_weeks"] = float(np.nanmedian(resp["TRUE_TTR_DAYS"])) / 7.0 if len(resp) else float("nan")

    lb = sim.domains["lb"]
    ae = sim.domains["ae"]
    saf = len(tr)
    for key, term, code, thr in (("thrombocytopenia", "THROMBOCYTOPENIA", "PLAT", 50.0),
                                 ("neutropenia", "NEUTROPENIA", "NEUT", 1.0),
                                 ("hyponatremia", "HYPONATRAEMIA", "SODIUM", 125.0),
                                 ("anemia", "ANAEMIA", "HGB", 8.0)):
        a = ae[(ae["AEDECOD"] == term) & (ae["AETOXGR"] >= 3)]
        out[f"g34_{key}_pct"] = 100.0 * a["USUBJID"].nunique() / saf
        x = lb[lb["LBTESTCD"] == code]
        v = np.where(x["LBSTRESU"] == "g/L", x["LBSTRESN"] / 10.0, x["LBSTRESN"])
        out[f"lab_g34_{key}_pct"] = 100.0 * x.loc[v < thr, "USUBJID"].nunique() / saf
    ex = sim.domains["ex"]
    sel = ex[ex["EXTRT"] == sim.metadata.get("study_drug", "SELINEXOR")]
    first = pd.to_datetime(sel.groupby("USUBJID")["EXSTDTC"].min())
    lastd = pd.to_datetime(sel.groupby("USUBJID")["EXENDTC"].max())
    out["median_treatment_weeks"] = float(((lastd - first).dt.days + 1).median() / 7.0)
    out["dose_modified_pct"] = 100.0 * (tr["TRUE_DOSE_MODIFIED"] == "Y").mean()
    out["penta_pct"] = 100.0 * (eff["TRUE_PENTA"] == "Y").mean()
    out["median_prior_regimens"] = float(tr["TRUE_NREG"].median())
    mh = sim.domains["mh"]
    dx = pd.to_datetime(mh.set_index("USUBJID")["MHSTDTC"])
    fd = pd.to_datetime(sim.domains["dm"].set_index("USUBJID")["RFXSTDTC"])
    out["median_years_since_diagnosis"] = float(((fd - dx).dt.days / 365.25).median())
    cy = lb[(lb["LBCAT"] == "CYTOGENETICS") & lb["LBTESTCD"].isin(["DEL17P", "T414", "T1416"])]
    hr = cy.loc[cy["LBSTRESC"] == "POSITIVE", "USUBJID"].nunique()
    out["high_risk_cyto_pct"] = 100.0 * hr / saf
    return out


def calibration_table(n: int = 122, seeds: range = range(50),
                      params: SimulationParams | None = None) -> pd.DataFrame:
    """Mean (and SD) of each aggregate over ``seeds`` simulated studies beside STORM's value.

    A KM median that is not reached in a study (NaN) is left out of that quantity's mean and
    SD; ``n_not_reached`` counts those studies (it is 0 for every other quantity).
    """
    from mmtrial.simulate.study import simulate_study

    rows = [summarize(simulate_study(n=n, seed=s, params=params)) for s in seeds]
    df = pd.DataFrame(rows)
    out = pd.DataFrame({"simulated_mean": df.mean(), "simulated_sd": df.std(ddof=1),
                        "n_not_reached": df.isna().sum()})
    out["published"] = pd.Series(PUBLISHED)
    return out




#: published BOSTON values (Grosicki S et al., Lancet 2020;396:1563-73; boston.toml [published], tag C)
PUBLISHED_BOSTON: dict[str, float] = {
    "median_pfs_months_SVD": 13.93, "median_pfs_months_VD": 9.46, "pfs_hr": 0.70,
    "orr_pct_SVD": 76.4, "orr_pct_VD": 62.3, "cr_or_better_pct_SVD": 16.9, "cr_or_better_pct_VD": 10.6,
    "g34_thrombocytopenia_pct_SVD": 39.0, "g34_thrombocytopenia_pct_VD": 17.0,
    "g2plus_peripheral_neuropathy_pct_SVD": 21.0, "g2plus_peripheral_neuropathy_pct_VD": 34.0,
}


def two_arm_times(sim: Any, endpoint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(days from randomisation, event, ARMCD) of the true PFS or OS of a simulated two-arm study.

    The truth counts days from the first dose (day 1 = first dose); the ITT origin is the
    randomisation date (data contract v2), so the days between them are added.
    """
    tr = sim.truth
    shift = (pd.to_datetime(tr["TRUE_FIRST_DOSE_DT"]) - pd.to_datetime(tr["TRUE_RAND_DT"])).dt.days.to_numpy(float)
    days = tr[f"TRUE_{endpoint}_DAYS"].to_numpy(float) + shift
    return days, tr[f"TRUE_{endpoint}_EVENT"].to_numpy(bool), tr["ARMCD"].to_numpy(dtype=object)


def discontinuation_pct(ds: pd.DataFrame, usubjid: pd.Series) -> dict[str, float]:
    """Percent of ``usubjid`` (one arm, the denominator) by end-of-treatment reason (ds DSDECOD).

    The records are the simulator's ``DSSCAT = "END OF TREATMENT"`` rows (one per subject whose
    treatment ended; subjects still on treatment at the cut-off have none and count in the
    denominator only).
    """
    ids = set(usubjid)
    eot = ds[(ds["DSSCAT"] == "END OF TREATMENT") & ds["USUBJID"].isin(ids)]
    counts = eot.groupby("DSDECOD")["USUBJID"].nunique()
    return {str(k): 100.0 * v / max(len(ids), 1) for k, v in counts.items()}


def summarize_two_arm(sim: Any) -> dict[str, float]:
    """BOSTON-comparable aggregates of a simulated two-arm study, per arm (ITT; safety = all dosed).

    ORR and CR-or-better over all randomised subjects (ITT); KM medians of PFS and OS from
    randomisation; grade 3/4 thrombocytopenia (AE grade >= 3) and grade >= 2 peripheral
    neuropathy per arm over the subjects of the arm; the end-of-treatment reasons per arm
    (:func:`discontinuation_pct`, ``disc_<DSDECOD>_pct_<ARMCD>``).
    """
    tr = sim.truth
    ae = sim.domains["ae"]
    ds = sim.domains["ds"]
    out: dict[str, float] = {}
    for ep in ("PFS", "OS"):
        days, evt, arm = two_arm_times(sim, ep)
        for a in pd.unique(arm):
            m = arm == a
            out[f"median_{ep.lower()}_months_{a}"] = km_median(days[m], evt[m]) / DAYS_PER_MONTH
    for a, g in tr.groupby("ARMCD"):
        n = len(g)
        out[f"n_{a}"] = float(n)
        out[f"orr_pct_{a}"] = 100.0 * (g["TRUE_RESPONDER"] == "Y").mean()
        out[f"cr_or_better_pct_{a}"] = 100.0 * g["TRUE_BOR"].isin(["sCR", "CR"]).mean()
        treated = g[g["TRUE_TREATED"] != "N"] if "TRUE_TREATED" in g else g  # safety: the dosed subjects
        n_safety = max(len(treated), 1)
        ids = set(treated["USUBJID"])
        sub = ae[ae["USUBJID"].isin(ids)]
        thr = sub[(sub["AEDECOD"] == "THROMBOCYTOPENIA") & (sub["AETOXGR"] >= 3)]
        out[f"g34_thrombocytopenia_pct_{a}"] = 100.0 * thr["USUBJID"].nunique() / n_safety
        pn = sub[sub["AEDECOD"].str.contains("PERIPHERAL", na=False) & (sub["AETOXGR"] >= 2)]
        out[f"g2plus_peripheral_neuropathy_pct_{a}"] = 100.0 * pn["USUBJID"].nunique() / n_safety
        for reason, pct in discontinuation_pct(ds, g["USUBJID"]).items():
            out[f"disc_{reason}_pct_{a}"] = pct
        if "TRUE_CROSSOVER" in g:
            out[f"crossover_pct_{a}"] = 100.0 * (g["TRUE_CROSSOVER"] == "Y").mean()
    return out

__all__ = ["PUBLISHED", "PUBLISHED_BOSTON", "calibration_table", "discontinuation_pct", "km_median", "summarize", "summarize_two_arm",
           "two_arm_times"]
