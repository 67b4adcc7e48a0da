"""The single-arm trial against its external control: propensity score, weights, balance,
weighted Kaplan-Meier and Cox, E-value (statistics in stats/weighting.py; docs/external.md).

This module only assembles: the frames (external/trial.py), the covariate matrix (missing
values: pooled median plus a missing indicator, documented), then the calls, and the
``results.json`` entry ``external``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

DAYS_PER_MONTH = 30.4375
SYNTHETIC_LABEL = "synthetic data"


@dataclass
class ExternalComparison:
    """What the comparison computed: the results entry, weights and the balance table."""

    results: dict[str, Any]
    data: pd.DataFrame  # trial + external rows: GROUP, CLUSTER, covariates, outcomes, PS, W
    smd: pd.DataFrame
    km: dict[str, dict[str, Any]] = field(default_factory=dict)


def derive_covariate_matrix(df: pd.DataFrame, covariates: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Numeric covariates without missing values: a covariate with missing values is filled with
    its pooled median and gets a ``<NAME>_MISS`` 0/1 indicator (the missing-indicator method,
    stated in the report). Constant columns are dropped (they cannot enter a logistic model).
    Returns (X, notes)."""
    X = pd.DataFrame(index=df.index)
    notes: list[str] = []
    for c in covariates:
        v = pd.to_numeric(df[c], errors="coerce").astype(float)
        miss = v.isna()
        if miss.all():
            notes.append(f"{c}: missing for every patient; not used")
            continue
        if miss.any():
            v = v.fillna(float(v.median()))
            X[f"{c}_MISS"] = miss.astype(float)
            notes.append(f"{c}: {int(miss.sum())} missing value(s) set to the pooled median, with an indicator {c}_MISS")
        X[c] = v
    const = [c for c in X.columns if X[c].nunique() < 2]
    for c in const:
        notes.append(f"{c}: the same value for every patient; not used")
    X = X.drop(columns=const)
    cols = [c for c in covariates if c in X] + [c for c in X.columns if c.endswith("_MISS")]
    return X[cols], notes


def _rm(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 2)


def compare_external(
    trial: pd.DataFrame,
    external: pd.DataFrame,
    *,
    covariates: list[str],
    estimand: str = "ATT",
    trim: tuple[float, float] | None = None,
    truncate_quantile: float | None = None,
    endpoints: tuple[str, ...] = ("OS", "PFS"),
    ties: str = "breslow",
) -> ExternalComparison:
    """IPTW comparison of the trial (group 1) with the external index lines (group 0).

    Steps: logistic propensity score on ``covariates`` (stats.weighting.compute_propensity),
    weights for ``estimand`` with trimming/truncation, SMDs before/after, per endpoint the
    weighted Kaplan-Meier per group (robust variance clustered by patient) and the weighted Cox
    HR trial vs external with the sandwich variance clustered by patient (an external patient
    may contribute several index lines), unadjusted alongside; E-value of the adjusted HR.
    """
    from mmtrial.stats.maic import compute_ess
    from mmtrial.stats.weighting import (
        compute_evalue,
        compute_iptw_weights,
        compute_propensity,
        compute_smd,
        compute_weighted_cox,
        compute_weighted_km,
    )

    d = pd.concat([trial.assign(GROUP=1), external.assign(GROUP=0)], ignore_index=True)
    d["CLUSTER"] = np.where(d["GROUP"] == 1, "T:", "E:") + d["CLUSTER"].astype(str)
    X, notes = derive_covariate_matrix(d, covariates)
    g = d["GROUP"].to_numpy()
    ps = compute_propensity(X, g)
    w = compute_iptw_weights(ps, g, estimand=estimand, trim=trim, truncate_quantile=truncate_quantile)
    d["PS"] = ps
    d["W"] = w
    smd = compute_smd(X, g, w)
    cl = d["CLUSTER"].to_numpy()
    res_ep: dict[str, Any] = {}
    km: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        t = d[f"{ep}DAYS"].to_numpy(float)
        e = d[f"{ep}EVENT"].to_numpy(float)
        ok = np.isfinite(t) & np.isfinite(e) & (t >= 0)
        if not ok[g == 1].any() or not ok[g == 0].any():
            res_ep[ep] = {"computed": False, "reason": f"no {ep} data in one of the groups"}
            continue
        tt, ee, gg, ww, cc = t[ok], e[ok].astype(int), g[ok], w[ok], cl[ok]
        pos = ww > 0
        adj = compute_weighted_cox(tt[pos], ee[pos], gg[pos], ww[pos], cc[pos], ties=ties)
        una = compute_weighted_cox(tt, ee, gg, None, cc, ties=ties)
        ev = compute_evalue(adj.hr, adj.hr_ci[0], adj.hr_ci[1])
        curves = {}
        med = {}
        for lbl, sel, wt in (("trial", gg == 1, None), ("external_unweighted", gg == 0, None),
                             ("external_weighted", (gg == 0) & pos, ww)):
            k = compute_weighted_km(tt[sel] / DAYS_PER_MONTH, ee[sel], None if wt is None else wt[sel],
                                    cluster=cc[sel])
            curves[lbl] = k
            lo, hi = k.median_ci
            med[lbl] = {"median_months": _rm(k.median), "ci_months": [_rm(lo), _rm(hi)]}
        km[ep] = curves
        res_ep[ep] = {
            "computed": True, "n": int(ok.sum()), "events": {"trial": int(ee[gg == 1].sum()),
                                                             "external": int(ee[gg == 0].sum())},
            "hr": round(adj.hr, 4), "hr_ci": [round(adj.hr_ci[0], 4), round(adj.hr_ci[1], 4)], "p": adj.p,
            "cox": adj.as_dict(), "hr_unadjusted": round(una.hr, 4),
            "hr_unadjusted_ci": [round(una.hr_ci[0], 4), round(una.hr_ci[1], 4)], "p_unadjusted": una.p,
            "medians": med, "evalue": ev.as_dict(),
        }
    ext = g == 0
    primary = next((ep for ep in endpoints if res_ep.get(ep, {}).get("computed")), None)
    results = {
        "method": f"IPTW ({estimand}) from a logistic propensity score; weighted Cox HR with a robust "
                  "variance clustered by patient; weighted Kaplan-Meier",
        "estimand": estimand, "covariates": list(X.columns), "covariate_notes": notes,
        "trim": list(trim) if trim else None, "truncate_quantile": truncate_quantile, "ties": ties,
        "n": {"trial": int((g == 1).sum()), "external_lines": int(ext.sum()),
              "external_patients": int(d.loc[ext, "CLUSTER"].nunique()),
              "external_weight_zero": int((w[ext] == 0).sum())},
        "ess": {"trial": round(float(compute_ess(w[g == 1])), 2), "external": round(float(compute_ess(w[ext])), 2)},
        "smd": [{"covariate": r.covariate, "before": _r(r.smd_unweighted), "after": _r(r.smd_weighted)}
                for r in smd.itertuples()],
        "max_abs_smd": {"before": _r(np.nanmax(np.abs(smd["smd_unweighted"]))),
                        "after": _r(np.nanmax(np.abs(smd["smd_weighted"])))},
        "endpoints": res_ep, "primary_endpoint": primary,
    }
    if primary:
        p = res_ep[primary]
        results.update({"hr": p["hr"], "hr_ci": p["hr_ci"], "p": p["p"], "evalue": p["evalue"],
                        "medians": p["medians"]})
    return ExternalComparison(results=results, data=d, smd=smd, km=km)


def _r(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, 4) if np.isfinite(f) else None
