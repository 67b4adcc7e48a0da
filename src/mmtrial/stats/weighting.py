"""Confounding adjustment for an external control: propensity score, IPTW, balance, weighted
Kaplan-Meier and Cox, E-value.

The statistics of issue 16 (single-arm trial vs an external real-world cohort; docs/external.md
"Statistics"):

* :func:`compute_propensity`: P(trial | covariates) by unpenalised logistic regression
  (statsmodels GLM, binomial family, logit link; categorical columns dummy-coded);
* :func:`compute_iptw_weights`: inverse-probability-of-treatment weights for the ATT, ATE or
  ATO (overlap) estimand, with optional trimming and truncation (Austin & Stuart, Stat Med
  2015;34:3661; Li, Morgan & Zaslavsky, JASA 2018;113:390);
* :func:`compute_smd`: standardised mean differences before and after weighting (Austin, Stat
  Med 2009;28:3083; cobalt ``bal.tab`` with ``s.d.denom = "pooled"``);
* :func:`compute_weighted_km`: Kaplan-Meier with case weights and the robust (infinitesimal
  jackknife) or Greenwood variance, as R ``survfit(Surv(t, e) ~ 1, weights = w)``;
* :func:`compute_weighted_cox`: weighted partial likelihood (Breslow or Efron ties) with the
  robust sandwich variance of Lin & Wei (JASA 1989;84:1074), optionally clustered, as R
  ``coxph(Surv(t, e) ~ g, weights = w, cluster = id)``;
* :func:`compute_evalue`: the E-value of a hazard ratio and its CI (VanderWeele & Ding, Ann
  Intern Med 2017;167:268).

The Cox engine is a small numpy Newton-Raphson of its own: the unweighted engine
(:mod:`mmtrial.stats.cox`, used by :mod:`mmtrial.stats.twoarm`) has no case weights and no
sandwich variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mmtrial.stats import _dist
from mmtrial.stats.survival import KaplanMeier, km_options

Estimand = Literal["ATT", "ATE", "ATO"]
Ties = Literal["breslow", "efron"]
ESTIMANDS: tuple[str, ...] = ("ATT", "ATE", "ATO")


# --- design matrix and propensity score ----------------------------------------------------------


def _design_matrix(X: pd.DataFrame, *, drop_first: bool, who: str) -> pd.DataFrame:
    """Numeric design matrix: numeric/boolean columns as floats, other columns dummy-coded.

    Raises ValueError naming the column and the first row with a missing value.
    """
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"{who}: X must be a pandas DataFrame of covariates; got {type(X).__name__}")
    if X.shape[1] == 0:
        raise ValueError(f"{who}: X has no covariate columns")
    na = X.isna()
    if na.to_numpy().any():
        col = na.any().idxmax()
        row = X.index[int(np.argmax(na[col].to_numpy()))]
        raise ValueError(
            f"{who}: covariate {col!r} is missing for {int(na[col].sum())} row(s), first at row {row!r}; "
            "impute or drop these rows before weighting"
        )
    parts = []
    for c in X.columns:
        s = X[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            parts.append(s.astype(float).rename(str(c)))
        else:
            cat = s.astype("string")
            levels = sorted(cat.unique())
            use = levels[1:] if drop_first else levels
            for lv in use:
                parts.append((cat == lv).astype(float).rename(f"{c}={lv}"))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=X.index)


def _as_group(treated, n: int, who: str) -> np.ndarray:
    g = np.asarray(treated)
    if g.ndim != 1 or g.size != n:
        raise ValueError(f"{who}: treated must have one 0/1 value per row ({n}); got shape {g.shape}")
    gf = g.astype(float)
    bad = ~np.isin(gf, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{who}: treated must be 0/1 (1 = trial); row {i} has {g[i]!r}")
    return gf


def compute_propensity(X: pd.DataFrame, treated: np.ndarray) -> np.ndarray:
    """Propensity score P(treated = 1 | X) by unpenalised logistic regression.

    Parameters
    ----------
    X : DataFrame
        One row per subject, one column per covariate. Numeric and boolean columns enter as
        they are; any other column (string, category, object) is dummy-coded with its first
        level (sorted) as reference. No missing values (impute first).
    treated : array of 0/1
        1 = trial (treated), 0 = external control.

    Returns
    -------
    ndarray of float, the fitted probabilities in the order of ``X``.

    Raises
    ------
    ValueError
        Missing covariate values, a constant covariate, collinear covariates, or (quasi-)complete
        separation (a covariate combination predicts membership perfectly: the maximum
        likelihood estimate does not exist; Albert & Anderson, Biometrika 1984;71:1).

    Rule
    ----
    Rosenbaum & Rubin, Biometrika 1983;70:41; logistic model with intercept, maximum
    likelihood (statsmodels ``GLM(family=Binomial())``, IRLS), as R ``glm(treated ~ ., family =
    binomial)``. Separation is reported when a fitted probability is within 1e-8 of 0 or 1 or
    the fit does not converge.
    """
    import warnings

    import statsmodels.api as sm

    who = "compute_propensity"
    D = _design_matrix(X, drop_first=True, who=who)
    g = _as_group(treated, len(D), who)
    if g.min() == g.max():
        raise ValueError(f"{who}: every subject has treated = {int(g[0])}; need both trial and external subjects")
    const = [c for c in D.columns if np.ptp(D[c].to_numpy()) == 0]
    if const:
        raise ValueError(f"{who}: covariate(s) {const} take one value for every subject; drop them")
    A = np.column_stack([np.ones(len(D)), D.to_numpy(float)])
    if np.linalg.matrix_rank(A) < A.shape[1]:
        raise ValueError(f"{who}: covariates {list(D.columns)} are collinear (a column is a combination of others)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = sm.GLM(g, A, family=sm.families.Binomial()).fit(maxiter=100, tol=1e-12)
        except Exception as exc:  # statsmodels PerfectSeparationError in older versions
            raise ValueError(f"{who}: logistic regression failed ({exc}); check for separation") from exc
    p = np.asarray(fit.fittedvalues, dtype=float)
    converged = bool(getattr(fit, "converged", True))
    if not converged or np.any(p < 1e-8) or np.any(p > 1 - 1e-8):
        raise ValueError(
            f"{who}: (quasi-)complete separation: the covariates {list(D.columns)} predict trial "
            "membership perfectly for some subjects, so the propensity model has no maximum-likelihood "
            "fit; restrict the external cohort to the trial's eligibility or coarsen the covariates"
        )
    return p


# --- weights -------------------------------------------------------------------------------------


def compute_iptw_weights(
    ps,
    treated,
    estimand: Estimand = "ATT",
    trim: tuple[float, float] | None = None,
    truncate_quantile: float | None = None,
) -> np.ndarray:
    """Inverse-probability-of-treatment weights from propensity scores.

    Parameters
    ----------
    ps : array of float in (0, 1)
        Propensity scores P(treated = 1 | X).
    treated : array of 0/1
        1 = trial, 0 = external control.
    estimand : "ATT" (default), "ATE" or "ATO" (alias "overlap"; case-insensitive)
        ATT (effect in the trial population): treated 1, control ps / (1 - ps).
        ATE (whole population): treated 1 / ps, control 1 / (1 - ps).
        ATO (overlap population): treated 1 - ps, control ps.
    trim : (low, high), optional
        Subjects with ps outside [low, high] get weight 0 (Crump et al., Biometrika
        2009;96:187; e.g. (0.1, 0.9)).
    truncate_quantile : float in (0.5, 1), optional
        Within each group, weights above the group's ``truncate_quantile`` quantile (of the
        non-zero weights; numpy "linear" quantile = R type 7) are set to that quantile (Cole &
        Hernan, Am J Epidemiol 2008;168:656). The trial's ATT weights are all 1 and stay so.

    Returns
    -------
    ndarray of float weights (unnormalised).

    Rule
    ----
    Austin & Stuart, Stat Med 2015;34:3661, section 2 (ATE and ATT weights); Li, Morgan &
    Zaslavsky, JASA 2018;113:390 (overlap weights: the ATO, bounded, exact mean balance for the
    covariates of a logistic propensity model). Trimming is applied before truncation.

    Examples
    --------
    >>> compute_iptw_weights([0.5, 0.2, 0.8], [1, 0, 0]).round(3).tolist()
    [1.0, 0.25, 4.0]
    >>> compute_iptw_weights([0.5, 0.2], [1, 0], "ATO").tolist()
    [0.5, 0.2]
    """
    who = "compute_iptw_weights"
    p = np.asarray(ps, dtype=float)
    g = _as_group(treated, p.size, who)
    if np.any(~np.isfinite(p)) or np.any(p <= 0) or np.any(p >= 1):
        raise ValueError(f"{who}: propensity scores must be strictly between 0 and 1")
    est = str(estimand).upper()
    est = "ATO" if est == "OVERLAP" else est
    if est not in ESTIMANDS:
        raise ValueError(f"{who}: estimand must be one of {', '.join(ESTIMANDS)}; got {estimand!r}")
    t = g == 1
    if est == "ATT":
        w = np.where(t, 1.0, p / (1 - p))
    elif est == "ATE":
        w = np.where(t, 1 / p, 1 / (1 - p))
    else:
        w = np.where(t, 1 - p, p)
    if trim is not None:
        lo, hi = (float(v) for v in trim)
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"{who}: trim must be (low, high) with 0 <= low < high <= 1; got {trim!r}")
        w = np.where((p < lo) | (p > hi), 0.0, w)
    if truncate_quantile is not None:
        q = float(truncate_quantile)
        if not 0.5 < q < 1:
            raise ValueError(f"{who}: truncate_quantile must be in (0.5, 1); got {truncate_quantile!r}")
        for grp in (t, ~t):  # two groups
            nz = grp & (w > 0)
            if nz.any():
                cap = float(np.quantile(w[nz], q))
                w = np.where(nz, np.minimum(w, cap), w)
    return w


# --- balance -------------------------------------------------------------------------------------


def _wmean_var(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted means and (population) variances of the columns of ``x``."""
    sw = w.sum()
    m = (w[:, None] * x).sum(0) / sw
    v = (w[:, None] * (x - m) ** 2).sum(0) / sw
    return m, v


def compute_smd(X: pd.DataFrame, treated, weights=None, *, sd_denominator: Literal["pooled", "treated"] = "pooled"
                ) -> pd.DataFrame:
    """Standardised mean differences (trial - external) before and after weighting.

    Parameters
    ----------
    X : DataFrame
        Covariates; non-numeric columns are expanded to one 0/1 column per level (every level).
    treated : array of 0/1
    weights : array, optional
        Balancing weights (e.g. :func:`compute_iptw_weights`); without them the weighted SMD
        equals the unweighted one.
    sd_denominator : "pooled" (default) or "treated"
        "pooled": sqrt((s1^2 + s0^2) / 2) of the unweighted groups (Austin 2009; cobalt
        ``s.d.denom = "pooled"``, cobalt's default for the ATE); "treated": the trial group's
        unweighted SD (cobalt's default for the ATT).

    Returns
    -------
    DataFrame with columns covariate, type ("binary"/"continuous"), mean_treated,
    mean_control (unweighted), mean_treated_weighted, mean_control_weighted, smd_unweighted,
    smd_weighted.

    Rule
    ----
    Austin, Stat Med 2009;28:3083 (SMD for continuous and binary covariates); Austin & Stuart,
    Stat Med 2015;34:3661 section 4 (balance after weighting; threshold 0.1). The denominator is
    the same before and after weighting (cobalt's practice), so a change of the SMD is a change
    of the mean difference only. Continuous: variance with divisor n - 1 per group; binary
    (values 0/1 only): p (1 - p) (cobalt ``bin.vars``). Weighted means use the weights as given.
    """
    who = "compute_smd"
    D = _design_matrix(X, drop_first=False, who=who)
    g = _as_group(treated, len(D), who)
    w = np.ones(len(D)) if weights is None else np.asarray(weights, dtype=float)
    if w.size != len(D) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{who}: weights must be {len(D)} finite non-negative numbers")
    x = D.to_numpy(float)
    t = g == 1
    if t.all() or (~t).all():
        raise ValueError(f"{who}: need both trial (1) and external (0) subjects")
    binary = np.all((x == 0) | (x == 1), axis=0)
    m1, m0 = x[t].mean(0), x[~t].mean(0)
    v1 = np.where(binary, m1 * (1 - m1), x[t].var(0, ddof=1) if t.sum() > 1 else 0.0)
    v0 = np.where(binary, m0 * (1 - m0), x[~t].var(0, ddof=1) if (~t).sum() > 1 else 0.0)
    if sd_denominator == "pooled":
        sd = np.sqrt((v1 + v0) / 2)
    elif sd_denominator == "treated":
        sd = np.sqrt(v1)
    else:
        raise ValueError(f"{who}: sd_denominator must be 'pooled' or 'treated'; got {sd_denominator!r}")
    mw1, _ = _wmean_var(x[t], w[t])
    mw0, _ = _wmean_var(x[~t], w[~t])
    with np.errstate(divide="ignore", invalid="ignore"):
        smd = np.where(sd > 0, (m1 - m0) / sd, np.where(m1 == m0, 0.0, np.nan))
        smdw = np.where(sd > 0, (mw1 - mw0) / sd, np.where(mw1 == mw0, 0.0, np.nan))
    return pd.DataFrame({
        "covariate": list(D.columns), "type": np.where(binary, "binary", "continuous"),
        "mean_treated": m1, "mean_control": m0, "mean_treated_weighted": mw1, "mean_control_weighted": mw0,
        "smd_unweighted": smd, "smd_weighted": smdw,
    })


# --- weighted Kaplan-Meier -----------------------------------------------------------------------


def _surv_arrays(time, event, weights, who: str):
    t = np.asarray(time, dtype=float).ravel()
    e = np.asarray(event, dtype=float).ravel()
    w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=float).ravel()
    if not (t.size == e.size == w.size):
        raise ValueError(f"{who}: time, event and weights must have the same length; got {t.size}, {e.size}, {w.size}")
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{who}: time must be finite and >= 0; position {i} has {t[i]!r}")
    bad = ~np.isin(e, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{who}: event must be 0/1 (1 = event); position {i} has {e[i]!r}")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{who}: weights must be finite and >= 0; position {i} has {w[i]!r}")
    return t, e, w


def _cluster_codes(cluster, n: int, who: str) -> np.ndarray:
    if cluster is None:
        return np.arange(n)
    c = pd.Series(np.asarray(cluster, dtype=object))
    if c.size != n:
        raise ValueError(f"{who}: cluster must have one value per row ({n}); got {c.size}")
    if c.isna().any():
        raise ValueError(f"{who}: cluster is missing at position {int(np.flatnonzero(c.isna().to_numpy())[0])}")
    return pd.factorize(c)[0].astype(np.int64)


def compute_weighted_km(
    time,
    event,
    weights=None,
    *,
    variance: Literal["robust", "greenwood"] = "robust",
    cluster=None,
    ci_transform: str = "log",
    level: float = 0.95,
    median_rule: str = "r",
) -> KaplanMeier:
    """Kaplan-Meier curve with case weights (e.g. IPTW), as R ``survfit(..., weights = w)``.

    Parameters
    ----------
    time, event : arrays (event 1 = event, 0 = censored)
    weights : array of non-negative floats, optional (default all 1)
    variance : "robust" (default) or "greenwood"
        "robust": infinitesimal-jackknife variance (sum over clusters of the squared weighted
        influence of each subject on log S(t)); R survival 3.x's default whenever weights are
        given (``robust = TRUE``). "greenwood": Greenwood's formula with weighted counts, R
        ``robust = FALSE``.
    cluster : array, optional
        Subject identifiers when a subject contributes several rows (robust variance only).
    ci_transform, level, median_rule
        As :func:`mmtrial.stats.survival.kaplan_meier`; defaults are R's ("log", 0.95, "r").

    Returns
    -------
    :class:`~mmtrial.stats.survival.KaplanMeier` whose ``n_risk``, ``n_event`` and ``n_censor``
    are weighted (floats) and whose ``std_err`` is the SE of log S(t). R reports the robust
    ``std.err`` on the S(t) scale (``logse = FALSE``): R's value is ``std_err * surv``.

    Rule
    ----
    S(t) = prod_{t_k <= t} (1 - d_k / n_k) with d_k, n_k the weighted events and number at risk
    (Therneau & Grambsch 2000, section 7.2; R ``survfitKM``). Influence of subject i on log S(t)
    (derivative with respect to its weight): U_i(t) = sum_{t_k <= min(t, T_i)} lambda_k c_k -
    delta_i c_{k(i)} [T_i <= t], lambda_k = d_k / n_k, c_k = 1 / (n_k (1 - lambda_k)); robust
    var(log S(t)) = sum_clusters (sum_{i in cluster} w_i U_i(t))^2. Computed in closed form with
    running per-cluster sums (no subject x time matrix). Greenwood: sum d_k / (n_k (n_k - d_k)).
    """
    from mmtrial.stats.survival import compute_km_ci

    who = "compute_weighted_km"
    if variance not in ("robust", "greenwood"):
        raise ValueError(f"{who}: variance must be 'robust' or 'greenwood'; got {variance!r}")
    if cluster is not None and variance != "robust":
        raise ValueError(f"{who}: cluster needs variance='robust' (Greenwood's formula has no clustered form)")
    t, e, w = _surv_arrays(time, event, weights, who)
    opts = km_options("r", ci_transform=ci_transform, level=level, median_rule=median_rule)
    n = t.size
    if n == 0:
        empty = np.array([], dtype=float)
        return KaplanMeier(empty, empty, empty, empty, empty, empty, empty, empty, opts)
    cl = _cluster_codes(cluster, n, who)
    order = np.argsort(t, kind="stable")
    ts, es, ws, cs = t[order], e[order], w[order], cl[order]
    starts = np.flatnonzero(np.concatenate(([True], ts[1:] != ts[:-1])))
    ends = np.append(starts[1:], n) - 1
    times = ts[starts]
    wd = np.add.reduceat(ws * es, starts)
    wtot = np.add.reduceat(ws, starts)
    n_risk = ws.sum() - np.concatenate(([0.0], np.cumsum(wtot)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(wd > 0, wd / n_risk, 0.0)
        lam = np.where((wd > 0) & (wd >= n_risk * (1 - 1e-12)), 1.0, lam)  # everyone at risk has the event: S = 0 exactly
        surv = np.cumprod(1.0 - lam)
        if variance == "greenwood":
            gterm = np.where(wd > 0, wd / (n_risk * (n_risk - wd)), 0.0)
            gterm = np.where(lam == 1, np.inf, gterm)  # R: Inf once S(t) = 0
            sigma = np.sqrt(np.cumsum(gterm))
        else:
            ck = np.where(wd > 0, 1.0 / (n_risk * (1.0 - lam)), 0.0)
            C = np.cumsum(lam * ck)  # C(t) at each distinct time
            k_of = np.repeat(np.arange(times.size), np.diff(np.append(starts, n)))
            u = C[k_of] - es * ck[k_of]  # fixed influence once T_i <= t
            # running per-cluster sums in time order: W_c = weight still at risk (T > t), A_c = sum w u
            df = pd.DataFrame({"c": cs, "w": ws, "wu": ws * u})
            wc_tot = np.bincount(cs, weights=ws)
            w_after = wc_tot[cs] - df.groupby("c")["w"].cumsum().to_numpy()
            w_before = w_after + ws
            a_after = df.groupby("c")["wu"].cumsum().to_numpy()
            a_before = a_after - ws * u
            sw2 = float(np.sum(wc_tot**2)) + np.cumsum(w_after**2 - w_before**2)
            swa = np.cumsum(w_after * a_after - w_before * a_before)
            sa2 = np.cumsum(a_after**2 - a_before**2)
            Ct = C
            var = Ct**2 * sw2[ends] + 2 * Ct * swa[ends] + sa2[ends]
            # the variance only changes at event times (a censoring moves weight from W_c to A_c
            # at the same value): carry it forward so rounding cannot make a flat curve wiggle
            last_ev = np.maximum.accumulate(np.where(wd > 0, np.arange(times.size), -1))
            var = np.where(last_ev >= 0, var[np.maximum(last_ev, 0)], 0.0)
            sigma = np.sqrt(np.maximum(var, 0.0))
            sigma = np.where(np.isfinite(C), sigma, np.nan)
    lo, hi = compute_km_ci(surv, sigma, opts.ci_transform, opts.level)
    return KaplanMeier(times, n_risk, wd, wtot - wd, surv, sigma, lo, hi, opts)


# --- weighted Cox --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightedCoxResult:
    """Weighted Cox hazard ratio (group 1 vs 0) with robust and model-based standard errors.

    ``hr_ci`` and ``p`` use ``se_robust`` (Wald, two-sided) when ``variance == "robust"``.
    """

    hr: float
    hr_ci: tuple[float, float]
    se_robust: float
    se_model: float
    p: float
    n: int
    events: int
    coef: float = float("nan")
    ties: str = "breslow"
    level: float = 0.95
    variance: str = "robust"
    clusters: int = 0
    converged: bool = True
    method: str = "weighted Cox, robust sandwich variance (Lin & Wei 1989)"
    reason: str = ""  # why the HR is not estimable (empty when it is)

    def as_dict(self) -> dict:
        out = {"hr": self.hr, "hr_ci": list(self.hr_ci), "se_robust": self.se_robust,
               "se_model": self.se_model, "p": self.p, "n": self.n, "events": self.events,
               "coef": self.coef, "ties": self.ties, "level": self.level, "variance": self.variance,
               "clusters": self.clusters, "converged": self.converged, "method": self.method}
        if self.reason:
            out["not_estimable"] = self.reason
        return out


@dataclass(frozen=True)
class CoxFit:
    """A fitted weighted Cox model (any number of covariates)."""

    coef: np.ndarray
    var_model: np.ndarray
    var_robust: np.ndarray
    loglik: float
    score_resid: np.ndarray  # unweighted score residuals, one row per input row
    converged: bool
    iterations: int


def _cox_terms(beta, x, ev_idx, grp_of_ev, n_grp, grp_first_pos, w, temp_ev, d_ev):
    """Log-likelihood, score, information and per-event quantities at ``beta`` (sorted data)."""
    eta = x @ beta
    risk = w * np.exp(eta)
    p = x.shape[1]
    # reverse cumulative sums over subjects sorted by time ascending: sums over T >= t
    rx = risk[:, None] * x
    rxx = rx[:, :, None] * x[:, None, :]
    S0 = np.cumsum(risk[::-1])[::-1]
    S1 = np.cumsum(rx[::-1], axis=0)[::-1]
    S2 = np.cumsum(rxx[::-1], axis=0)[::-1]
    pos = grp_first_pos[grp_of_ev]  # first sorted position of the event's time
    # sums over the deaths of each tied group
    D0 = np.bincount(grp_of_ev, weights=risk[ev_idx], minlength=n_grp)
    D1 = np.stack([np.bincount(grp_of_ev, weights=rx[ev_idx, j], minlength=n_grp) for j in range(p)], axis=1)
    D2 = np.zeros((n_grp, p, p))
    np.add.at(D2, grp_of_ev, rxx[ev_idx])
    Wd = np.bincount(grp_of_ev, weights=w[ev_idx], minlength=n_grp)
    meanwt = (Wd / d_ev)[grp_of_ev]
    d2 = S0[pos] - temp_ev * D0[grp_of_ev]
    a = (S1[pos] - temp_ev[:, None] * D1[grp_of_ev]) / d2[:, None]
    b2 = (S2[pos] - temp_ev[:, None, None] * D2[grp_of_ev]) / d2[:, None, None]
    loglik = float(np.sum(w[ev_idx] * eta[ev_idx]) - np.sum(meanwt * np.log(d2)))
    U = (w[ev_idx][:, None] * x[ev_idx]).sum(0) - (meanwt[:, None] * a).sum(0)
    info = (meanwt[:, None, None] * (b2 - a[:, :, None] * a[:, None, :])).sum(0)
    return loglik, U, info, meanwt, d2, a, eta


def fit_weighted_cox(
    time,
    event,
    X,
    weights=None,
    *,
    cluster=None,
    ties: Ties = "breslow",
    max_iter: int = 50,
    tol: float = 1e-10,
) -> CoxFit:
    """Fit a Cox model by weighted partial likelihood; model-based and robust variances.

    Parameters
    ----------
    time, event : arrays (event 1 = event)
    X : array (n, p) of covariates
    weights : case weights (default 1)
    cluster : identifiers; the robust variance sums the score residuals within each cluster
        (default: each row its own cluster, R ``robust = TRUE``)
    ties : "breslow" or "efron"

    Rule
    ----
    Weighted partial likelihood (Binder, Biometrika 1992;79:139; R ``coxph`` with ``weights``;
    C routine coxfit6): risk r_i = w_i exp(x_i b); Breslow: each tied death divides by the full
    weighted risk set; Efron: the k-th of d tied deaths (k = 0..d-1) divides by S0 - (k/d)
    (sum of the deaths' risks), weighted by the mean case weight of the deaths. Newton-Raphson
    from b = 0 with step halving. Robust variance: V D'D V, D the cluster sums of the weighted
    score residuals w_i L_i (Lin & Wei, JASA 1989;84:1074; R ``residuals(type = "dfbeta",
    weighted = TRUE)`` summed by cluster); L_i = delta_i (x_i - abar(T_i)) - exp(x_i b) sum over
    the risk-set terms of T_i's tied groups of h (x_i - a), with the Efron factor (1 - k/d) for
    the deaths at their own time.
    """
    who = "fit_weighted_cox"
    if ties not in ("breslow", "efron"):
        raise ValueError(f"{who}: ties must be 'breslow' or 'efron'; got {ties!r}")
    t, e, w = _surv_arrays(time, event, weights, who)
    x_raw = np.asarray(X, dtype=float)
    if x_raw.ndim == 1:
        x_raw = x_raw[:, None]
    if x_raw.shape[0] != t.size:
        raise ValueError(f"{who}: X must have one row per subject ({t.size}); got {x_raw.shape[0]}")
    n, p = x_raw.shape
    cl = _cluster_codes(cluster, n, who)
    order = np.argsort(t, kind="stable")
    ts, es, ws, x = t[order], e[order], w[order], x_raw[order]
    # centring the covariates (as R does) leaves the estimates unchanged and helps exp()
    x = x - (ws[:, None] * x).sum(0) / max(ws.sum(), 1e-300)
    is_ev = (es == 1) & (ws > 0)
    ev_idx = np.flatnonzero(is_ev)
    nan_fit = CoxFit(np.full(p, np.nan), np.full((p, p), np.nan), np.full((p, p), np.nan), float("nan"),
                     np.full((n, p), np.nan), False, 0)
    if ev_idx.size == 0:
        return nan_fit
    starts = np.flatnonzero(np.concatenate(([True], ts[1:] != ts[:-1])))
    first_pos_of_sorted = np.repeat(starts, np.diff(np.append(starts, n)))
    ev_first = first_pos_of_sorted[ev_idx]
    grp_keys, grp_of_ev = np.unique(ev_first, return_inverse=True)
    n_grp = grp_keys.size
    d_grp = np.bincount(grp_of_ev, minlength=n_grp).astype(float)
    grp_start_ev = np.concatenate(([0], np.cumsum(d_grp)[:-1])).astype(int)
    k_ev = np.arange(ev_idx.size) - grp_start_ev[grp_of_ev]
    temp_ev = k_ev / d_grp[grp_of_ev] if ties == "efron" else np.zeros(ev_idx.size)
    d_ev = d_grp

    def terms(b):
        return _cox_terms(b, x, ev_idx, grp_of_ev, n_grp, grp_keys, ws, temp_ev, d_ev)

    beta = np.zeros(p)
    ll, U, info, *_ = terms(beta)
    converged = False
    n_iter = 0
    for it in range(1, max_iter + 1):  # Newton-Raphson iterations (a handful)
        n_iter = it
        try:
            step = np.linalg.solve(info, U)
        except np.linalg.LinAlgError:
            break
        new = beta + step
        ll_new, U_new, info_new, *_ = terms(new)
        halvings = 0
        while (not np.isfinite(ll_new) or ll_new < ll - 1e-12 * abs(ll)) and halvings < 30:
            step = step / 2
            new = beta + step
            ll_new, U_new, info_new, *_ = terms(new)
            halvings += 1
        beta, U, info = new, U_new, info_new
        done = abs(ll_new - ll) <= tol * max(1.0, abs(ll)) and np.max(np.abs(step)) < 1e-7
        ll = ll_new
        if done:
            converged = True
            break
    try:
        V = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return nan_fit
    ll, U, info, meanwt, d2, a, eta = terms(beta)
    # score residuals (unweighted), sorted order
    h = meanwt / d2  # hazard increment per event term
    H = np.bincount(grp_of_ev, weights=h, minlength=n_grp)
    Hx = np.stack([np.bincount(grp_of_ev, weights=h * a[:, j], minlength=n_grp) for j in range(p)], axis=1)
    Ht = np.bincount(grp_of_ev, weights=temp_ev * h, minlength=n_grp)
    Htx = np.stack([np.bincount(grp_of_ev, weights=temp_ev * h * a[:, j], minlength=n_grp) for j in range(p)],
                   axis=1)
    abar = np.stack([np.bincount(grp_of_ev, weights=a[:, j], minlength=n_grp) for j in range(p)], axis=1)
    abar = abar / d_grp[:, None]
    cH = np.cumsum(H)
    cHx = np.cumsum(Hx, axis=0)
    grp_times = ts[grp_keys]
    gi = np.searchsorted(grp_times, ts, side="right") - 1  # last event group at or before T_i
    has = gi >= 0
    gi0 = np.maximum(gi, 0)
    ex = np.exp(eta)
    resid = -ex[:, None] * np.where(has[:, None], x * cH[gi0][:, None] - cHx[gi0], 0.0)
    g_ev = grp_of_ev  # deaths: own-time correction and the death term
    resid[ev_idx] += x[ev_idx] - abar[g_ev]
    resid[ev_idx] += ex[ev_idx][:, None] * (x[ev_idx] * Ht[g_ev][:, None] - Htx[g_ev])
    Dw = ws[:, None] * resid @ V
    cs = cl[order]
    n_cl = int(cs.max()) + 1
    Dc = np.stack([np.bincount(cs, weights=Dw[:, j], minlength=n_cl) for j in range(p)], axis=1)
    Vr = Dc.T @ Dc
    out_resid = np.empty_like(resid)
    out_resid[order] = resid
    return CoxFit(beta, V, Vr, float(ll), out_resid, converged, n_iter)


def compute_weighted_cox(
    time,
    event,
    group,
    weights=None,
    cluster=None,
    ties: Ties = "breslow",
    *,
    level: float = 0.95,
    variance: Literal["robust", "model"] = "robust",
) -> WeightedCoxResult:
    """Weighted Cox hazard ratio of group 1 (trial) vs 0 (external) with a sandwich variance.

    Parameters
    ----------
    time, event : arrays (event 1 = event)
    group : array of 0/1
    weights : case weights (e.g. IPTW); default 1
    cluster : patient identifiers when a patient contributes several rows (several eligible
        lines); the robust variance is clustered by them
    ties : "breslow" (default; SAS) or "efron" (R default)
    level : confidence level of ``hr_ci``
    variance : "robust" (default; the CI and p use the sandwich SE) or "model"

    Returns
    -------
    WeightedCoxResult (hr, hr_ci, se_robust, se_model, p, n, events, ...)

    Rule
    ----
    As R ``coxph(Surv(t, e) ~ g, weights = w, cluster = id, ties = ...)`` (robust SE in
    ``summary(fit)$coefficients[, "robust se"]``; without ``cluster``, ``robust = TRUE``): see
    :func:`fit_weighted_cox`. Austin, Stat Med 2016;35:5642 recommends the robust variance
    for IPTW Cox models (conservative; it ignores the estimation of the propensity score).
    Wald CI exp(b +- z se) and two-sided p.
    """
    who = "compute_weighted_cox"
    if ties not in ("breslow", "efron"):
        raise ValueError(f"{who}: ties must be 'breslow' or 'efron'; got {ties!r}")
    if variance not in ("robust", "model"):
        raise ValueError(f"{who}: variance must be 'robust' or 'model'; got {variance!r}")
    if not 0 < level < 1:
        raise ValueError(f"{who}: level must be in (0, 1); got {level!r}")
    t, e, w = _surv_arrays(time, event, weights, who)
    g = _as_group(group, t.size, who)
    cl = _cluster_codes(cluster, t.size, who)
    n_cl = int(cl.max()) + 1 if cl.size else 0
    nan = float("nan")
    events = int(e.sum())
    has_w = w > 0
    ev_w = (e == 1) & has_w

    def not_estimable(reason: str, se_r=nan, se_m=nan, b=nan, conv=False) -> WeightedCoxResult:
        return WeightedCoxResult(nan, (nan, nan), se_r, se_m, nan, int(t.size), events, b, ties, level, variance,
                                 n_cl, conv, reason=reason)

    if events == 0 or not ev_w.any():
        return not_estimable("no events")
    if (not has_w.any()) or np.ptp(g[has_w]) == 0:
        return not_estimable("one group only")
    for code, name in ((1, "trial (group 1)"), (0, "external (group 0)")):
        if not (ev_w & (g == code)).any():  # monotone likelihood: the MLE is infinite
            return not_estimable(f"no events in the {name}: the hazard ratio is 0 or infinite")
    fit = fit_weighted_cox(t, e, g[:, None], w, cluster=cluster, ties=ties)
    b = float(fit.coef[0])
    se_m = float(np.sqrt(fit.var_model[0, 0]))
    se_r = float(np.sqrt(fit.var_robust[0, 0]))
    se = se_r if variance == "robust" else se_m
    z = float(_dist.norm_ppf(1 - (1 - level) / 2))
    if not fit.converged or not np.isfinite(se_m) or se_m > 1e3:
        # an SE of log HR in the thousands is the signature of an infinite estimate (monotone
        # likelihood: all events of one group before any of the other's risk set ends)
        return not_estimable("the partial likelihood has no finite maximum (monotone likelihood)", se_r, se_m, b)
    if not (np.isfinite(b) and np.isfinite(se) and se > 0):
        return not_estimable("the variance is not estimable", se_r, se_m, b, fit.converged)
    p = float(2 * _dist.norm_sf(abs(b / se)))
    return WeightedCoxResult(float(np.exp(b)), (float(np.exp(b - z * se)), float(np.exp(b + z * se))), se_r, se_m,
                             p, int(t.size), events, b, ties, level, variance, n_cl, fit.converged)


# --- E-value -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EValue:
    """E-value of an estimate and of the CI limit closer to the null."""

    estimate: float
    ci_limit: float
    rr_estimate: float  # the risk-ratio scale value the E-value is computed from
    rare_outcome: bool
    method: str = "VanderWeele & Ding 2017"

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "ci_limit": self.ci_limit, "rr": self.rr_estimate,
                "rare_outcome": self.rare_outcome, "method": self.method}


def _hr_to_rr(hr: np.ndarray, rare: bool) -> np.ndarray:
    if rare:
        return hr
    return (1 - 0.5 ** np.sqrt(hr)) / (1 - 0.5 ** np.sqrt(1 / hr))


def _evalue_rr(rr: np.ndarray) -> np.ndarray:
    r = np.where(rr < 1, 1 / rr, rr)
    return r + np.sqrt(r * (r - 1))


def compute_evalue(hr: float, ci_lower: float, ci_upper: float, rare_outcome: bool = False) -> EValue:
    """E-value for a hazard ratio and its confidence interval.

    Parameters
    ----------
    hr, ci_lower, ci_upper : hazard ratio and its CI limits (> 0)
    rare_outcome : bool
        True when the outcome is rare (< 15% at the end of follow-up): the HR approximates the
        risk ratio. False (default; death or progression in relapsed myeloma is common): the
        HR is converted to a risk ratio first.

    Returns
    -------
    EValue (estimate, ci_limit)

    Rule
    ----
    VanderWeele & Ding, Ann Intern Med 2017;167:268, Table: for a risk ratio RR >= 1,
    E = RR + sqrt(RR (RR - 1)); for RR < 1 use 1 / RR. Common outcome: RR ~ (1 - 0.5^sqrt(HR))
    / (1 - 0.5^sqrt(1/HR)) (VanderWeele, Biometrics 2020;76:746; R EValue ``evalues.HR``).
    The CI's E-value uses the limit closer to 1, and is 1 when the CI includes 1.

    Examples
    --------
    VanderWeele & Ding 2017 (breastfeeding example): RR 3.9, CI 1.8 to 8.7 -> E-values 7.26 and 3.0.

    >>> ev = compute_evalue(3.9, 1.8, 8.7, rare_outcome=True)
    >>> round(ev.estimate, 2), round(ev.ci_limit, 2)
    (7.26, 3.0)
    """
    who = "compute_evalue"
    vals = np.array([hr, ci_lower, ci_upper], dtype=float)
    if np.any(~np.isfinite(vals)) or np.any(vals <= 0):
        raise ValueError(f"{who}: hr and CI limits must be positive numbers; got {hr}, {ci_lower}, {ci_upper}")
    if not ci_lower <= hr <= ci_upper:
        raise ValueError(f"{who}: need ci_lower <= hr <= ci_upper; got {ci_lower}, {hr}, {ci_upper}")
    rr = _hr_to_rr(vals, bool(rare_outcome))
    est = float(_evalue_rr(rr[:1])[0])
    if ci_lower <= 1 <= ci_upper:
        lim = 1.0
    else:
        near = rr[1] if rr[0] > 1 else rr[2]
        lim = float(_evalue_rr(np.array([near]))[0])
    return EValue(est, lim, float(rr[0]), bool(rare_outcome))


# --- the whole external-control comparison (results.json "external") -----------------------------


@dataclass(frozen=True)
class ExternalComparison:
    """Trial vs external control after propensity-score weighting (:func:`compare_external`)."""

    estimand: str
    ps: np.ndarray
    weights: np.ndarray
    smd: pd.DataFrame
    cox: WeightedCoxResult
    cox_unadjusted: WeightedCoxResult
    km: dict  # "trial"/"external" -> weighted KaplanMeier
    km_unweighted: dict  # "trial"/"external" -> KaplanMeier (unit weights)
    evalue: EValue | None
    n: dict  # rows per group
    patients: dict  # distinct clusters (patients) per group
    ess: dict  # Kish ESS of the weights per group
    trimmed: int  # rows given weight 0 by trimming
    options: dict

    def as_dict(self, time_scale: float = 1.0) -> dict:
        """The results.json ``external`` entry; medians divided by ``time_scale`` (e.g. 30.4375 for
        months from days)."""

        def med(km: KaplanMeier) -> dict:
            m, lo, hi = km.quantile(0.5)
            f = (lambda v: None if v is None else float(v) / time_scale)  # noqa: E731
            return {"median": f(m), "ci": [f(lo), f(hi)]}

        smd = self.smd
        return {
            "method": (f"IPTW ({self.estimand}) from a logistic propensity score; weighted Kaplan-Meier "
                       "(robust variance); weighted Cox with robust sandwich variance"
                       + (" clustered by patient" if self.options.get("clustered") else "")),
            "estimand": self.estimand, "n": dict(self.n), "patients": dict(self.patients), "ess": dict(self.ess),
            "trimmed": self.trimmed, "options": dict(self.options),
            "smd": smd[["covariate", "smd_unweighted", "smd_weighted"]].to_dict(orient="records"),
            "max_abs_smd": {"unweighted": float(np.nanmax(np.abs(smd["smd_unweighted"]))),
                            "weighted": float(np.nanmax(np.abs(smd["smd_weighted"])))},
            "hr": self.cox.hr, "hr_ci": list(self.cox.hr_ci), "p": self.cox.p, "se_robust": self.cox.se_robust,
            "hr_not_estimable": self.cox.reason or None,
            "se_model": self.cox.se_model, "ties": self.cox.ties, "level": self.cox.level,
            "events": {"trial": int(self.km_unweighted["trial"].events),
                       "external": int(self.km_unweighted["external"].events)},
            "unadjusted": {"hr": self.cox_unadjusted.hr, "hr_ci": list(self.cox_unadjusted.hr_ci),
                           "p": self.cox_unadjusted.p,
                           "median": {g: med(k) for g, k in self.km_unweighted.items()}},
            "median": {g: med(k) for g, k in self.km.items()},
            "evalue": None if self.evalue is None else self.evalue.as_dict(),
        }


def compare_external(
    X: pd.DataFrame,
    treated,
    time,
    event,
    *,
    cluster=None,
    estimand: Estimand = "ATT",
    trim: tuple[float, float] | None = None,
    truncate_quantile: float | None = None,
    ties: Ties = "breslow",
    level: float = 0.95,
    rare_outcome: bool = False,
) -> ExternalComparison:
    """Single-arm trial vs external control: propensity score, weights, balance, weighted KM and
    Cox, E-value, in one call.

    Parameters
    ----------
    X : DataFrame of baseline covariates (one row per analysed row; see
        :func:`compute_propensity`)
    treated : 0/1 (1 = trial)
    time, event : outcome from the index date (event 1 = event)
    cluster : patient identifiers when a patient contributes several rows (several eligible
        lines, "every eligible line" index); KM and Cox variances are clustered by them
    estimand, trim, truncate_quantile : see :func:`compute_iptw_weights`
    ties, level : see :func:`compute_weighted_cox`
    rare_outcome : see :func:`compute_evalue`

    Returns
    -------
    ExternalComparison (``as_dict()`` gives the results.json ``external`` entry)

    Rule
    ----
    Austin & Stuart, Stat Med 2015;34:3661 (propensity-score weighting, balance, weighted
    survival analysis with a robust variance); VanderWeele & Ding 2017 (E-value of the adjusted
    HR). The unadjusted comparison (unit weights) is reported beside the adjusted one.
    """
    t, e, _ = _surv_arrays(time, event, None, "compare_external")
    g = _as_group(treated, t.size, "compare_external")
    ps = compute_propensity(X, g)
    w = compute_iptw_weights(ps, g, estimand, trim=trim, truncate_quantile=truncate_quantile)
    w_raw = compute_iptw_weights(ps, g, estimand)
    smd = compute_smd(X, g, w)
    cl = None if cluster is None else np.asarray(cluster, dtype=object)
    cox = compute_weighted_cox(t, e, g, w, cluster=cl, ties=ties, level=level)
    cox0 = compute_weighted_cox(t, e, g, None, cluster=cl, ties=ties, level=level,
                                variance="robust" if cl is not None else "model")
    km, km0, n, pts, ess = {}, {}, {}, {}, {}
    for name, code in (("trial", 1), ("external", 0)):
        m = g == code
        cm = None if cl is None else cl[m]
        km[name] = compute_weighted_km(t[m], e[m], w[m], cluster=cm)
        km0[name] = compute_weighted_km(t[m], e[m], None, cluster=cm)
        n[name] = int(m.sum())
        pts[name] = int(pd.Series(cm).nunique()) if cm is not None else int(m.sum())
        wm = w[m]
        ess[name] = float(wm.sum() ** 2 / np.sum(wm**2)) if np.sum(wm**2) > 0 else 0.0
    ev = None
    if np.isfinite(cox.hr) and all(np.isfinite(cox.hr_ci)):
        ev = compute_evalue(cox.hr, cox.hr_ci[0], cox.hr_ci[1], rare_outcome=rare_outcome)
    opts = {"estimand": str(estimand).upper(), "trim": None if trim is None else list(trim),
            "truncate_quantile": truncate_quantile, "ties": ties, "level": level,
            "rare_outcome": bool(rare_outcome), "clustered": cl is not None,
            "smd_denominator": "pooled SD of the unweighted groups"}
    return ExternalComparison(str(estimand).upper(), ps, w, smd, cox, cox0, km, km0, ev, n, pts, ess,
                              int(np.sum((w == 0) & (w_raw > 0))), opts)
