"""Comparing two randomised arms: stratified Cox and log-rank, stratified risk difference, CMH.

The statistics of a randomised two-arm myeloma trial (data contract v2, results.json
``comparison``):

* :func:`compute_stratified_cox`: Cox hazard ratio, experimental vs control, stratified by the
  randomisation strata (separate baseline hazards; R ``coxph(... + strata(s))``, SAS PHREG
  ``STRATA``); ties Breslow (SAS profile) or Efron (R profile);
* :func:`compute_stratified_logrank`: the stratified log-rank test (R ``survdiff(... +
  strata(s))``; SAS LIFETEST ``STRATA / GROUP=``): O - E and the hypergeometric variance summed
  over strata;
* :func:`compute_mn_risk_difference`: the difference of two proportions with the (stratified)
  Miettinen-Nurminen score interval, Mantel-Haenszel stratum weights (Miettinen & Nurminen,
  Stat Med 1985;4:213; SAS Viya ``COMMONRISKDIFF(CL=MNMH)``; R ``ratesci::scoreci(contrast =
  "RD", stratified = TRUE, weighting = "MH", skew = FALSE)``);
* :func:`compute_cmh`: the Mantel-Haenszel common odds ratio with the Robins-Breslow-Greenland
  interval and the Cochran-Mantel-Haenszel test without continuity correction (SAS PROC FREQ
  ``CMH``; R ``mantelhaen.test(correct = FALSE)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mmtrial.stats import _dist
from mmtrial.stats._result import AsDict
from mmtrial.stats.compare import (
    CoxResult,
    LogRankResult,
    compute_logrank_oev_counting,
    cox_without_comparison,
)
from mmtrial.stats.cox import fit_cox

Ties = Literal["efron", "breslow"]


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level: allowed 0 < level < 1; got {level}")
    return float(_dist.norm_ppf(1 - (1 - level) / 2))


def _strata_codes(strata, n: int) -> np.ndarray:
    """Integer codes of the strata (one stratum when ``strata`` is None); NaN/None is a stratum."""
    if strata is None:
        return np.zeros(n, dtype=np.int64)
    import pandas as pd

    s = pd.Series(np.asarray(strata, dtype=object)).astype("string").fillna("<missing>")
    codes = pd.factorize(s, sort=True)[0]
    if codes.size != n:
        raise ValueError(f"strata must have one value per subject ({n}); got {codes.size}")
    return codes.astype(np.int64)


def combine_strata(*factors) -> np.ndarray:
    """One stratum label per subject from several factors (``"PI=Y|LOT=1|RISS=III"`` style).

    Examples
    --------
    >>> combine_strata(["Y", "N"], [1, 2]).tolist()
    ['Y|1', 'N|2']
    """
    cols = [np.asarray(f, dtype=object).astype(str) for f in factors]
    if not cols:
        raise ValueError("combine_strata: give at least one factor")
    out = cols[0]
    for c in cols[1:]:
        out = np.char.add(np.char.add(out.astype(str), "|"), c.astype(str))
    return out.astype(object)


# --- survival ------------------------------------------------------------------------------------


def compute_stratified_logrank(time, event, group, strata=None) -> LogRankResult:
    """Log-rank test of group 1 vs 0, stratified: O, E and variance summed over strata.

    Rule
    ----
    Peto & Peto 1972; stratified form as R ``survdiff(Surv(t, e) ~ g + strata(s))`` and SAS
    PROC LIFETEST ``STRATA s / GROUP = g``: within each stratum the hypergeometric O - E and
    variance at each event time; the statistic is (sum O - E)^2 / sum V on 1 df, p two-sided.

    Examples
    --------
    >>> r = compute_stratified_logrank([1, 2, 3, 4], [1, 1, 1, 1], [1, 1, 0, 0])
    >>> round(r.observed, 3), round(r.expected, 3)
    (2.0, 0.833)
    """
    o, ex, v = compute_logrank_oev(time, event, group, strata)
    method = "stratified log-rank" if strata is not None else "log-rank"
    if v <= 0:
        return LogRankResult(o, ex, v, float("nan"), float("nan"), method)
    chisq = (o - ex) ** 2 / v
    return LogRankResult(o, ex, v, chisq, float(_dist.chi2_sf(chisq, 1)), method)


def compute_logrank_oev(time, event, group, strata=None) -> tuple[float, float, float]:
    """Observed and expected events of group 1 and the hypergeometric variance, summed over strata."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    g = (np.asarray(group) == 1).astype(float)
    codes = _strata_codes(strata, t.size)
    o = ex = v = 0.0
    for k in np.unique(codes):  # one pass per stratum (a handful), vectorised within
        m = codes == k
        ok, ek, vk = compute_logrank_oev_counting(np.full(int(m.sum()), -np.inf), t[m], e[m], g[m])
        o, ex, v = o + ok, ex + ek, v + vk
    return o, ex, v


def compute_stratified_cox_estimability(time, event, x, codes,
                                        labels: tuple[str, str] = ("group 1", "group 0")) -> str:
    """Why a stratified Cox model with one binary covariate has no finite estimate ("" if it has).

    Rule
    ----
    The partial log-likelihood of a binary covariate is concave, and its terms stay bounded as
    beta -> +infinity only for events whose subject has the largest covariate in its risk set
    (Bryson & Johnson, Biometrika 1981;68:703; Heinze & Schemper, Biometrics 2001;57:114). So a
    finite maximum exists if and only if some group-0 event has a group-1 subject at risk in its
    stratum (time >= the event time) and some group-1 event has a group-0 subject at risk in its
    stratum. Otherwise the estimate is a hazard ratio of 0 or infinity (monotone likelihood; R's
    ``coxph`` warns "coefficient may be infinite"), or, with neither, not identifiable.
    """
    t = np.asarray(time, dtype=float)
    ev = np.asarray(event, dtype=float) == 1
    x1 = np.asarray(x, dtype=float) == 1
    ok = ~np.isnan(t) & ~np.isnan(np.asarray(event, dtype=float))  # fit_cox's missing="drop"
    t, ev, x1, codes = t[ok], ev[ok], x1[ok], np.asarray(codes)[ok]
    reason = cox_without_comparison(ev, x1, labels)
    if reason:
        return reason
    # latest time of each (stratum, group): an event has the other group at risk in its stratum
    # when that group's latest time in the stratum is at or after the event time
    n_strata = int(codes.max()) + 1
    last = np.full((n_strata, 2), -np.inf)
    np.maximum.at(last, (codes, x1.astype(np.int64)), t)
    other_at_risk = last[codes, 1 - x1.astype(np.int64)] >= t
    bounded_above = bool((ev & ~x1 & other_at_risk).any())  # a group-0 event facing group 1
    bounded_below = bool((ev & x1 & other_at_risk).any())  # a group-1 event facing group 0
    if bounded_above and bounded_below:
        return ""
    where = " in its stratum" if n_strata > 1 else ""
    if not bounded_above and not bounded_below:
        return (f"no event has a subject of the other group at risk{where}: the hazard ratio is not "
                "identifiable")
    none = labels[0] if not bounded_below else labels[1]
    other = labels[1] if not bounded_below else labels[0]
    return (f"no event in the {none} group has a subject of the {other} group at risk{where}: the "
            "hazard ratio estimate is "
            f"{'0' if not bounded_below else 'infinite'} (monotone partial likelihood)")


def compute_stratified_cox(
    time, event, group, strata=None, *, ties: Ties = "breslow", level: float = 0.95,
    labels: tuple[str, str] = ("experimental", "control"),
) -> CoxResult:
    """Cox hazard ratio of group 1 vs 0 with a separate baseline hazard per stratum.

    Rule
    ----
    Stratified proportional-hazards model (Kalbfleisch & Prentice 2002, section 4.4; R
    ``coxph(Surv(t, e) ~ g + strata(s), ties = ...)``; SAS PHREG ``STRATA s; TIES = ...``),
    fitted by :func:`mmtrial.stats.cox.fit_cox` with strata; Wald CI and p. Ties: Breslow (SAS
    default) or Efron (R default). A stratum with one arm only contributes nothing.
    Not estimable (NaN, ``reason`` says why) when
    :func:`compute_stratified_cox_estimability` finds no finite maximum (monotone likelihood).
    """
    if ties not in ("breslow", "efron"):
        raise ValueError(f"ties: allowed 'breslow', 'efron'; got {ties!r}")
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    x = (np.asarray(group) == 1).astype(float)
    codes = _strata_codes(strata, t.size)
    method = "stratified Cox" if strata is not None else "Cox"
    nan = float("nan")
    n_events = int(np.nansum(e))
    reason = compute_stratified_cox_estimability(t, e, x, codes, labels)
    if reason:
        return CoxResult(nan, (nan, nan), nan, ties, level, method, int(t.size), n_events, reason=reason)
    fit = fit_cox(t, e, x, strata=codes, ties=ties, missing="drop")
    b, se = float(fit.coef[0]), float(fit.se[0])
    if not np.isfinite(se) or se <= 0:
        return CoxResult(nan, (nan, nan), nan, ties, level, method, int(t.size), n_events,
                         reason=f"the Cox model has no finite standard error (coefficient {b:.3g}, SE {se:.3g})")
    z = _z(level)
    p = float(2 * _dist.norm_sf(abs(b / se)))
    return CoxResult(float(np.exp(b)), (float(np.exp(b - z * se)), float(np.exp(b + z * se))), p,
                     ties, level, method, int(t.size), n_events)


# --- binary endpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskDifference(AsDict):
    """Difference of two proportions (experimental - control) with its interval."""

    estimate: float
    ci: tuple[float, float]
    p_value: float
    method: str
    weights: str
    level: float
    strata: int


def compute_restricted_mle(x1, n1, x0, n0, delta) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood p1, p0 under the constraint p1 - p0 = ``delta`` (per stratum).

    Rule
    ----
    Miettinen & Nurminen 1985, Appendix 1; Farrington & Manning, Stat Med 1990;9:1447: the root
    of a cubic, in closed (trigonometric) form.
    """
    x1, n1, x0, n0 = (np.asarray(a, dtype=float) for a in (x1, n1, x0, n0))
    p1, p0 = x1 / n1, x0 / n0
    theta = n0 / n1
    a = 1.0 + theta
    b = -(1.0 + theta + p1 + theta * p0 + delta * (theta + 2.0))
    c = delta**2 + delta * (2.0 * p1 + theta + 1.0) + p1 + theta * p0
    d = -p1 * delta * (1.0 + delta)
    v = b**3 / (27 * a**3) - b * c / (6 * a**2) + d / (2 * a)
    u = np.sign(v) * np.sqrt(np.maximum(b**2 / (9 * a**2) - c / (3 * a), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(u == 0, 0.0, v / u**3)
    w = (np.pi + np.arccos(np.clip(ratio, -1.0, 1.0))) / 3.0
    pt1 = np.clip(2 * u * np.cos(w) - b / (3 * a), 0.0, 1.0)
    pt0 = np.clip(pt1 - delta, 0.0, 1.0)
    return pt1, pt0


def _mn_score(delta: float, x1, n1, x0, n0, wn) -> float:
    """Stratified MN score at ``delta`` (Miettinen & Nurminen 1985, eq. 6 with 'N-1' variance)."""
    pt1, pt0 = compute_restricted_mle(x1, n1, x0, n0, delta)
    lam = (n1 + n0) / (n1 + n0 - 1.0)
    var = (pt1 * (1 - pt1) / n1 + pt0 * (1 - pt0) / n0) * lam
    s = float(np.sum(wn * (x1 / n1 - x0 / n0 - delta)))
    vd = float(np.sum(wn**2 * var))
    if s == 0:
        return 0.0
    return s / np.sqrt(vd) if vd > 0 else np.sign(s) * np.inf


def compute_mn_risk_difference(
    x1, n1, x0, n0, *, level: float = 0.95
) -> RiskDifference:
    """Risk difference (1 - 0) with the Miettinen-Nurminen score interval, MH-weighted strata.

    Pass arrays (one value per stratum) for a stratified analysis, scalars for an unstratified one.

    Rule
    ----
    Miettinen O, Nurminen M, Stat Med 1985;4:213-226: the interval is the set of delta whose
    score statistic Z(delta) = sum w_h (p1h - p0h - delta) / sqrt(sum w_h^2 V_h(delta)) lies
    within +-z, V_h from the restricted MLE with the N/(N-1) factor; weights w_h =
    n1h n0h / (n1h + n0h) normalised (Mantel-Haenszel; SAS ``COMMONRISKDIFF(CL=MNMH)``, R
    ratesci ``weighting = "MH"``). Estimate: the Mantel-Haenszel difference (the root of Z = 0);
    p: the score test at 0 (equals the CMH test for one or more strata, without continuity
    correction, up to the N/(N-1) factor).
    Strata where either arm has no subjects are dropped.
    """
    x1, n1, x0, n0 = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (x1, n1, x0, n0))
    keep = (n1 > 0) & (n0 > 0)
    x1, n1, x0, n0 = x1[keep], n1[keep], x0[keep], n0[keep]
    nan = float("nan")
    if x1.size == 0:
        return RiskDifference(nan, (nan, nan), nan, "miettinen-nurminen", "mantel-haenszel", level, 0)
    if np.any(x1 < 0) or np.any(x1 > n1) or np.any(x0 < 0) or np.any(x0 > n0):
        raise ValueError("compute_mn_risk_difference: need 0 <= x <= n in every stratum")
    w = n1 * n0 / (n1 + n0)
    wn = w / w.sum()
    est = float(np.sum(wn * (x1 / n1 - x0 / n0)))
    z = _z(level)
    eps = 1e-10

    def limit(target: float, lo: float, hi: float) -> float:
        f = lambda d: _mn_score(d, x1, n1, x0, n0, wn) - target  # noqa: E731
        flo, fhi = f(lo), f(hi)
        if flo * fhi > 0:
            return lo if abs(flo) < abs(fhi) else hi
        return float(_dist.brentq(f, lo, hi, xtol=1e-12))

    low = limit(z, -1 + eps, est) if est > -1 + eps else -1.0
    high = limit(-z, est, 1 - eps) if est < 1 - eps else 1.0
    z0 = _mn_score(0.0, x1, n1, x0, n0, wn)
    p = float(2 * _dist.norm_sf(abs(z0))) if np.isfinite(z0) else 0.0
    return RiskDifference(est, (low, high), p, "miettinen-nurminen", "mantel-haenszel", level, int(x1.size))


@dataclass(frozen=True)
class CmhResult(AsDict):
    """Mantel-Haenszel common odds ratio (1 vs 0) and the CMH test."""

    odds_ratio: float
    ci: tuple[float, float]
    chisq: float
    p_value: float
    level: float
    strata: int
    method: str = "mantel-haenszel (Robins-Breslow-Greenland CI); CMH test without continuity correction"


def compute_cmh(x1, n1, x0, n0, *, level: float = 0.95) -> CmhResult:
    """Mantel-Haenszel odds ratio with the RBG interval, and the CMH chi-square (no correction).

    Arrays give one 2x2 table per stratum: ``x1`` responders of ``n1`` in arm 1, ``x0`` of ``n0``
    in arm 0.

    Rule
    ----
    Mantel & Haenszel, J Natl Cancer Inst 1959;22:719 (estimate and test); Robins, Breslow &
    Greenland, Biometrics 1986;42:311 (variance of log OR_MH); as SAS PROC FREQ ``CMH`` and R
    ``mantelhaen.test(correct = FALSE)``. Strata with fewer than two subjects are dropped.
    """
    a, n1, c, n0 = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x1, n1, x0, n0))
    n = n1 + n0
    keep = n >= 2
    a, n1, c, n0, n = a[keep], n1[keep], c[keep], n0[keep], n[keep]
    nan = float("nan")
    if a.size == 0:
        return CmhResult(nan, (nan, nan), nan, nan, level, 0)
    b, d = n1 - a, n0 - c
    R, S = a * d / n, b * c / n
    P, Q = (a + d) / n, (b + c) / n
    sr, ss = R.sum(), S.sum()
    m1 = a + c
    ea = n1 * m1 / n
    va = n1 * n0 * m1 * (n - m1) / (n**2 * (n - 1))
    vsum = va.sum()
    chisq = float((a.sum() - ea.sum()) ** 2 / vsum) if vsum > 0 else nan
    p = float(_dist.chi2_sf(chisq, 1)) if vsum > 0 else nan
    if sr == 0 or ss == 0:
        return CmhResult(float(sr / ss) if ss > 0 else nan, (nan, nan), chisq, p, level, int(a.size))
    orr = sr / ss
    var = (P * R).sum() / (2 * sr**2) + (P * S + Q * R).sum() / (2 * sr * ss) + (Q * S).sum() / (2 * ss**2)
    z = _z(level)
    se = float(np.sqrt(var))
    return CmhResult(float(orr), (float(orr * np.exp(-z * se)), float(orr * np.exp(z * se))), chisq, p,
                     level, int(a.size))


def stratum_tables(response, group, strata=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-stratum (x1, n1, x0, n0) from one row per subject (response 0/1, group 1/0).

    Examples
    --------
    >>> [t.tolist() for t in stratum_tables([1, 0, 1, 1], [1, 1, 0, 0], ["a", "a", "a", "b"])]
    [[1.0, 0.0], [2.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    """
    r = (np.asarray(response) == 1).astype(float)
    g = np.asarray(group) == 1
    codes = _strata_codes(strata, r.size)
    k = int(codes.max()) + 1 if codes.size else 0
    x1 = np.bincount(codes[g], weights=r[g], minlength=k)
    n1 = np.bincount(codes[g], minlength=k).astype(float)
    x0 = np.bincount(codes[~g], weights=r[~g], minlength=k)
    n0 = np.bincount(codes[~g], minlength=k).astype(float)
    return x1, n1, x0, n0


# --- the whole comparison of a randomised trial (results.json "comparison") ----------------------


def compare_arms(
    adsl,
    adtte,
    *,
    experimental: str,
    control: str,
    strata: list[str] | tuple[str, ...] = (),
    arm_var: str = "ARMCD",
    responder_var: str = "RSPFL",
    population_var: str = "ITTFL",
    params: tuple[str, ...] = ("PFS", "OS"),
    ties: Ties = "breslow",
    km_profile: str = "sas",
    level: float = 0.95,
    days_per_month: float = 30.4375,
) -> dict:
    """Experimental vs control: the data contract's results.json ``comparison`` entry.

    Per time-to-event parameter of ``adtte`` (AVAL days, CNSR 0 = event): stratified Cox HR
    (ties of the profile) with its CI, two-sided stratified log-rank p, medians per arm (KM, the
    profile's transform and median rule; months = days / ``days_per_month``), events per arm, and
    the unstratified HR and p beside them. ORR (``responder_var`` = "Y" of the ITT population):
    x and n per arm, the stratified Miettinen-Nurminen difference (MH weights), the MH odds ratio
    (RBG CI) and the CMH p (no continuity correction), and the unstratified variants.
    Strata are ADSL variables; subjects with a missing stratum value form their own stratum.
    """
    import pandas as pd

    from mmtrial.stats.survival import kaplan_meier, km_options

    sl = adsl
    if population_var in sl.columns:
        sl = sl[sl[population_var].astype("string").eq("Y").fillna(False)]
    sl = sl[sl[arm_var].isin([experimental, control])]
    strata = list(strata)
    missing = [s for s in strata if s not in sl.columns]
    if missing:
        raise ValueError(f"compare_arms: strata {missing} are not ADSL variables")
    st = combine_strata(*(sl[s].astype("string").fillna("<missing>").to_numpy() for s in strata)) if strata else None
    grp = (sl[arm_var] == experimental).astype(int).to_numpy()
    out: dict = {"experimental": experimental, "control": control, "strata": strata,
                 "population": population_var, "n": {experimental: int(grp.sum()), control: int((1 - grp).sum())}}
    kmo = km_options(km_profile)
    sub = pd.DataFrame({"USUBJID": sl["USUBJID"].to_numpy(), "_G": grp, "_S": st if st is not None else "all"})
    for p in params:
        d = adtte[adtte["PARAMCD"] == p].merge(sub, on="USUBJID", how="inner")
        if d.empty:
            out[p] = {"unavailable": f"no {p} records for the randomised subjects"}
            continue
        t = d["AVAL"].to_numpy(float)
        e = (d["CNSR"].to_numpy() == 0).astype(int)
        g = d["_G"].to_numpy()
        s = d["_S"].to_numpy() if strata else None
        cox = compute_stratified_cox(t, e, g, s, ties=ties, level=level, labels=(experimental, control))
        lr = compute_stratified_logrank(t, e, g, s)
        cox0 = compute_stratified_cox(t, e, g, None, ties=ties, level=level, labels=(experimental, control))
        lr0 = compute_stratified_logrank(t, e, g, None)
        med, ev = {}, {}
        for arm, code in ((experimental, 1), (control, 0)):
            m = g == code
            ev[arm] = int(e[m].sum())
            if m.any():
                km = kaplan_meier(t[m], e[m], ci_transform=kmo.ci_transform, level=level, median_rule=kmo.median_rule)
                med[arm] = None if km.median is None else km.median / days_per_month
            else:
                med[arm] = None
        out[p] = {"hr": cox.hr, "hr_ci": list(cox.ci), "p_logrank": lr.p_value, "stratified": bool(strata),
                  "ties": ties, "level": level, "median": med, "events": ev,
                  "unstratified": {"hr": cox0.hr, "hr_ci": list(cox0.ci), "p_logrank": lr0.p_value}}
        if cox.reason:  # written only when the hazard ratio is not estimable
            out[p]["not_estimable"] = cox.reason
        if cox0.reason:
            out[p]["unstratified"]["not_estimable"] = cox0.reason
    if responder_var in sl.columns:
        r = sl[responder_var].astype("string").eq("Y").fillna(False).to_numpy().astype(int)
        tabs = stratum_tables(r, grp, st)
        mn = compute_mn_risk_difference(*tabs, level=level)
        cmh = compute_cmh(*tabs, level=level)
        tabs0 = stratum_tables(r, grp, None)
        mn0 = compute_mn_risk_difference(*tabs0, level=level)
        cmh0 = compute_cmh(*tabs0, level=level)
        out["ORR"] = {
            "x": {experimental: int(r[grp == 1].sum()), control: int(r[grp == 0].sum())},
            "n": {experimental: int((grp == 1).sum()), control: int((grp == 0).sum())},
            "difference": mn.estimate, "difference_ci": list(mn.ci), "difference_method": "miettinen-nurminen",
            "difference_weights": "mantel-haenszel", "odds_ratio": cmh.odds_ratio, "odds_ratio_ci": list(cmh.ci),
            "p": cmh.p_value, "stratified": bool(strata), "level": level,
            "unstratified": {"difference": mn0.estimate, "difference_ci": list(mn0.ci),
                             "odds_ratio": cmh0.odds_ratio, "odds_ratio_ci": list(cmh0.ci),
                             "p": mn0.p_value, "p_method": "score test (MN)"},
        }
    else:
        out["ORR"] = {"unavailable": f"ADSL has no {responder_var}"}
    return out


def compute_subgroup_hazard_ratios(time, event, group, subgroup, *, ties: Ties = "breslow",
                                   level: float = 0.95):
    """Hazard ratio (group 1 vs 0) within each level of a subgroup variable, and the interaction p.

    Returns a frame with one row per level (LEVEL, N, EVENTS, HR, LCL, UCL, REASON: why the HR
    is not estimable, "" when it is) and the p-value of the treatment-by-subgroup interaction.

    Rule
    ----
    Forest plot of subgroup hazard ratios (e.g. BOSTON, Grosicki 2020, Figure 2): an unstratified
    Cox model within each level; interaction: Wald chi-square of the arm x subgroup terms of
    the Cox model ``arm + subgroup + arm:subgroup`` on (levels - 1) df (R ``coxph(Surv(t, e) ~
    arm * factor(sg))``, SAS PHREG ``arm|sg``). Subjects with a missing level are left out.
    """
    import pandas as pd

    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    g = (np.asarray(group) == 1).astype(float)
    sg = pd.Series(np.asarray(subgroup, dtype=object)).astype("string")
    ok = sg.notna().to_numpy()
    t, e, g, sg = t[ok], e[ok], g[ok], sg[ok].reset_index(drop=True)
    levels = sorted(sg.unique())
    rows = []
    for lv in levels:  # a handful of levels
        m = (sg == lv).to_numpy()
        c = compute_stratified_cox(t[m], e[m], g[m], None, ties=ties, level=level)
        rows.append({"LEVEL": lv, "N": int(m.sum()), "EVENTS": int(e[m].sum()), "HR": c.hr,
                     "LCL": c.ci[0], "UCL": c.ci[1], "REASON": c.reason})
    out = pd.DataFrame(rows)
    p_int = float("nan")
    if len(levels) > 1 and e.sum() > 0:
        dummies = np.column_stack([(sg == lv).to_numpy(float) for lv in levels[1:]])
        x = np.column_stack([g, dummies, dummies * g[:, None]])
        try:
            fit = fit_cox(t, e, x, ties=ties, missing="drop")
            k = len(levels) - 1
            b = fit.coef[-k:]
            v = fit.cov[-k:, -k:]
            chisq = float(b @ np.linalg.solve(v, b))
            p_int = float(_dist.chi2_sf(chisq, k))
        except (np.linalg.LinAlgError, ValueError):
            p_int = float("nan")
    return out, p_int


# --- event-free rates at landmarks: difference of two Kaplan-Meier estimates ----------------------


@dataclass(frozen=True)
class RateDifference:
    """Kaplan-Meier S(t) per arm at a landmark, their difference and its Wald CI."""

    time: float
    surv: tuple[float, float]
    se: tuple[float, float]
    difference: float
    ci: tuple[float, float]
    level: float
    method: str = "difference of Kaplan-Meier estimates; Greenwood SE, Wald CI on the survival scale"

    def as_dict(self) -> dict:
        return {"time": self.time, "surv": list(self.surv), "se": list(self.se), "difference": self.difference,
                "difference_ci": list(self.ci), "level": self.level, "method": self.method}


def compute_km_rate_difference(km1, km0, times, *, level: float = 0.95) -> list[RateDifference]:
    """S1(t) - S0(t) at each landmark ``t`` with a Wald CI from the Greenwood variances.

    Rule
    ----
    The two arms are independent samples, so Var(S1 - S0) = Var(S1) + Var(S0), each by
    Greenwood's formula (Klein & Moeschberger 2003, section 4.2; R ``summary(survfit)``
    ``std.err`` is the SE of S); CI = difference +- z SE. ``km1``/``km0`` are
    :class:`~mmtrial.stats.survival.KaplanMeier` fits (``std_err`` is the SE of log S, so
    SE(S) = S x std_err). Not estimable (NaN) beyond an arm's last observed time.
    """
    z = _z(level)
    t = np.atleast_1d(np.asarray(times, dtype=float))

    def at(km) -> tuple[np.ndarray, np.ndarray]:
        tab = km.survival_table(t)
        s = tab["surv"].to_numpy(float)
        i = np.searchsorted(km.time, t, side="right") - 1
        se_log = np.where(i >= 0, km.std_err[np.clip(i, 0, max(km.time.size - 1, 0))], 0.0) if km.time.size \
            else np.full(t.shape, np.nan)
        se = np.where(np.isfinite(s), s * np.nan_to_num(se_log, nan=0.0), np.nan)
        return s, se

    s1, se1 = at(km1)
    s0, se0 = at(km0)
    d = s1 - s0
    se = np.sqrt(se1**2 + se0**2)
    return [RateDifference(float(t[k]), (float(s1[k]), float(s0[k])), (float(se1[k]), float(se0[k])), float(d[k]),
                           (float(d[k] - z * se[k]), float(d[k] + z * se[k])), level) for k in range(t.size)]


def compute_logrank_one_sided(time, event, group, strata=None) -> float:
    """One-sided (stratified) log-rank p for group 1 having fewer events than expected:
    Phi((O - E) / sqrt(V)) (the direction of benefit for the experimental arm)."""
    o, ex, v = compute_logrank_oev(time, event, group, strata)
    return float(_dist.norm_cdf((o - ex) / np.sqrt(v))) if v > 0 else float("nan")
