"""Overall survival adjusted for crossover: the rank-preserving structural failure time model.

A sensitivity analysis, never the primary one: when control patients switch to the experimental
drug after progression (BOSTON's Vd arm could cross over to SVd), the ITT hazard ratio for OS
is diluted towards 1. RPSFTM asks what control survival would have been without the switch.

Rule
----
Robins JM, Tsiatis AA, Commun Stat Theory Methods 1991;20:2609-31; White IR et al., Stat Med
1999;18:2617-34 (recensoring); Latimer NR et al., NICE DSU TSD 16 (2014) and Med Decis Making
2014;34:387 (use in HTA, with recensoring; test-based interval of the adjusted HR).

Model: each subject's untreated ("counterfactual") time is U(psi) = T_off + exp(psi) x T_on,
where T_on is the time spent on the experimental drug (the whole follow-up in the experimental
arm by the "treatment group" definition; the time after the switch for a control switcher) and
T_off the rest. Randomisation makes U independent of arm at the true psi: psi_hat is the root of
the (stratified) log-rank statistic Z(psi) comparing U between arms; the CI is the set of psi with
|Z(psi)| < z. Recensoring (White 1999): a subject's administrative censoring time C (randomisation
to data cut-off) becomes D(psi) = min(C, C x exp(psi)); U > D(psi) is censored at D(psi), so
censoring stays independent of treatment received. psi < 0: the drug lengthens survival; the
acceleration factor is exp(-psi). Adjusted HR: Cox model of the experimental arm as observed vs
the control arm's counterfactual times at psi_hat; its CI is test-based (it preserves the ITT
log-rank p-value; Latimer 2014), as the plain Cox CI ignores the uncertainty in psi_hat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmtrial.stats import _dist
from mmtrial.stats._result import AsDict
from mmtrial.stats.twoarm import (
    compute_logrank_oev,
    compute_stratified_cox,
    compute_stratified_logrank,
)


@dataclass(frozen=True)
class RpsftmResult(AsDict):
    """RPSFTM estimate: psi, the acceleration factor exp(-psi), and the crossover-adjusted HR."""

    psi: float
    psi_ci: tuple[float, float]
    acceleration_factor: float
    acceleration_factor_ci: tuple[float, float]
    hr_adjusted: float
    hr_adjusted_ci: tuple[float, float]
    hr_itt: float
    p_itt: float
    recensoring: bool
    treatment_time: str
    level: float
    n_switchers: int
    method: str = "RPSFTM (Robins-Tsiatis 1991), log-rank estimating equation"


def compute_counterfactual_time(
    time, event, on_time, censor_time, psi: float, *, recensor: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Untreated times U(psi) = (T - T_on) + exp(psi) T_on, recensored at min(C, C exp(psi)).

    Examples
    --------
    A control patient followed 10 months, switched at month 6 (T_on = 4), psi = log(0.5), cut-off
    12 months after randomisation: U = 6 + 0.5 x 4 = 8; D = min(12, 6) = 6 < 8, so censored at 6.

    >>> u, d = compute_counterfactual_time([10.0], [1], [4.0], [12.0], np.log(0.5))
    >>> float(u[0]), int(d[0])
    (6.0, 0)
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    on = np.clip(np.asarray(on_time, dtype=float), 0.0, t)
    u = (t - on) + np.exp(psi) * on
    if not recensor:
        return u, e.copy()
    c = np.asarray(censor_time, dtype=float)
    d = np.minimum(c, c * np.exp(psi))
    cens = u > d
    return np.where(cens, d, u), np.where(cens, 0.0, e)


def _z_statistic(psi, time, event, arm, on, cens, strata, recensor) -> float:
    u, d = compute_counterfactual_time(time, event, on, cens, psi, recensor=recensor)
    o, ex, v = compute_logrank_oev(u, d, arm, strata)
    return (o - ex) / np.sqrt(v) if v > 0 else float("nan")


def fit_rpsftm(
    time,
    event,
    arm,
    on_time,
    censor_time,
    *,
    strata=None,
    recensor: bool = True,
    level: float = 0.95,
    psi_range: tuple[float, float] = (-3.0, 3.0),
    grid: int = 61,
    ties: str = "breslow",
    treatment_time: str = "as given",
) -> RpsftmResult:
    """Fit the RPSFTM by g-estimation on the log-rank test (see the module docstring).

    Parameters
    ----------
    time, event : observed time from randomisation and event indicator (1 = death).
    arm : 1 experimental, 0 control (as randomised).
    on_time : time on the experimental drug (experimental arm: usually ``time``; control: time
        after the switch, 0 for non-switchers).
    censor_time : administrative censoring time (randomisation to the data cut-off), for every
        subject, for recensoring.
    strata : optional stratum per subject (stratified log-rank in the estimating equation).

    Algorithm
    ---------
    1. Z(psi) on a grid over ``psi_range``; 2. roots of Z(psi) (point estimate) and of
    Z(psi) = +-z (limits) by Brent's method inside the bracketing grid cells; a limit with no
    crossing inside the range is NaN (not estimable). When Z has several roots the one nearest
    0 is taken and the report says so through ``method``.
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    a = (np.asarray(arm) == 1).astype(float)
    on = np.asarray(on_time, dtype=float)
    c = np.asarray(censor_time, dtype=float)
    zq = float(_dist.norm_ppf(1 - (1 - level) / 2))
    args = (t, e, a, on, c, strata, recensor)
    psis = np.linspace(psi_range[0], psi_range[1], grid)
    zs = np.array([_z_statistic(p, *args) for p in psis])  # a fixed small grid, not per subject

    def roots(target: float) -> list[float]:
        f = zs - target
        out = []
        for i in np.flatnonzero(np.isfinite(f[:-1]) & np.isfinite(f[1:]) & (np.sign(f[:-1]) != np.sign(f[1:]))):
            out.append(float(_dist.brentq(lambda p: _z_statistic(p, *args) - target,
                                          psis[i], psis[i + 1], xtol=1e-10)))
        return out

    nan = float("nan")
    r0 = roots(0.0)
    method = RpsftmResult.method
    if len(r0) > 1:
        method += f"; {len(r0)} roots of the estimating equation, the one nearest 0 taken"
    psi = min(r0, key=abs) if r0 else nan
    # Z(psi) increases with psi when the arm-1 counterfactual times shrink faster; limits are the
    # outermost crossings of +-z around psi
    lims = sorted(roots(zq) + roots(-zq))
    lo = max((x for x in lims if x < psi), default=nan) if r0 else nan
    hi = min((x for x in lims if x > psi), default=nan) if r0 else nan

    itt = compute_stratified_cox(t, e, a, strata, ties=ties)  # type: ignore[arg-type]
    lr = compute_stratified_logrank(t, e, a, strata)
    n_sw = int(np.sum((a == 0) & (on > 0)))
    if not np.isfinite(psi):
        return RpsftmResult(nan, (lo, hi), nan, (nan, nan), nan, (nan, nan), itt.hr, lr.p_value,
                            recensor, treatment_time, level, n_sw, method)
    u, d = compute_counterfactual_time(t, e, on, c, psi, recensor=recensor)
    # experimental arm as observed; control arm counterfactual (untreated)
    t_adj = np.where(a == 1, t, u)
    e_adj = np.where(a == 1, e, d)
    adj = compute_stratified_cox(t_adj, e_adj, a, strata, ties=ties)  # type: ignore[arg-type]
    z_itt = float(_dist.norm_isf(lr.p_value / 2)) if lr.p_value > 0 else np.inf
    if np.isfinite(adj.hr) and z_itt > 0 and np.isfinite(z_itt):
        se = abs(np.log(adj.hr)) / z_itt
        hr_ci = (float(adj.hr * np.exp(-zq * se)), float(adj.hr * np.exp(zq * se)))
    else:
        hr_ci = (nan, nan)
    af_ci = (float(np.exp(-hi)) if np.isfinite(hi) else nan, float(np.exp(-lo)) if np.isfinite(lo) else nan)
    return RpsftmResult(psi, (lo, hi), float(np.exp(-psi)), af_ci, adj.hr, hr_ci, itt.hr, lr.p_value,
                        recensor, treatment_time, level, n_sw, method)
