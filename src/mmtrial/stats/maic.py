"""Matching-adjusted indirect comparison (MAIC): the trial's patients weighted to a published
population.

* :func:`compute_maic_weights`: method-of-moments weights (Signorovitch et al.,
  Pharmacoeconomics 2010;28:935, appendix; NICE DSU TSD 18, Phillippo et al. 2016, section 3.2
  and Appendix D) so that the weighted means (and optionally SDs) of the trial's baseline
  covariates equal the published ones;
* :func:`compute_ess`: Kish's effective sample size of the weights;
* :func:`compare_maic`: the weighted outcome of the trial (weighted Kaplan-Meier median or
  weighted proportion) beside the published comparator outcome, with a bootstrap CI (the MAIC
  weights re-estimated in every resample; Signorovitch 2010; TSD 18 section 3.2.3).

Unanchored MAIC (single-arm trial vs a published arm) assumes every prognostic factor and
effect modifier is balanced (TSD 18 section 2.3); its result is reported with that caveat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmtrial.stats import _dist
from mmtrial.stats.weighting import compute_weighted_km


def compute_ess(w) -> float:
    """Effective sample size (sum w)^2 / sum w^2.

    Rule
    ----
    Kish, Survey Sampling 1965; NICE DSU TSD 18 (Phillippo et al. 2016) section 3.2.2 and
    Appendix D. Invariant to rescaling the weights.

    Examples
    --------
    >>> compute_ess([1, 1, 1, 1])
    4.0
    >>> compute_ess([2, 1, 1])
    2.6666666666666665
    """
    w = np.asarray(w, dtype=float)
    s2 = float(np.sum(w**2))
    return float(np.sum(w) ** 2 / s2) if s2 > 0 else 0.0


def _moment_matrix(X_ipd: pd.DataFrame, target: dict[str, float], target_sd: dict[str, float] | None
                   ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Columns to match (centred at the target) and their names.

    A variable in ``target_sd`` adds the column x^2 with target mean^2 + sd^2 (Phillippo et al.
    2016, TSD 18 section 3.2.1; the Roche MAIC package's ``AGE_SQUARED``).
    """
    who = "compute_maic_weights"
    if not isinstance(X_ipd, pd.DataFrame):
        raise ValueError(f"{who}: X_ipd must be a DataFrame; got {type(X_ipd).__name__}")
    if not target:
        raise ValueError(f"{who}: target has no variables")
    missing = [k for k in target if k not in X_ipd.columns]
    if missing:
        raise ValueError(f"{who}: target variables {missing} are not columns of the trial data "
                         f"(columns: {list(X_ipd.columns)})")
    cols, names, tvals = [], [], []
    for k, v in target.items():
        s = X_ipd[k]
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            raise ValueError(f"{who}: variable {k!r} must be numeric (proportions: code it 0/1); got {s.dtype}")
        x = s.to_numpy(float)
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(f"{who}: variable {k!r} is missing/non-finite for {int(bad.sum())} trial subject(s), "
                             f"first at row {X_ipd.index[int(np.flatnonzero(bad)[0])]!r}")
        if not np.isfinite(float(v)):
            raise ValueError(f"{who}: target value of {k!r} must be a finite number; got {v!r}")
        if not x.min() < float(v) < x.max():
            raise ValueError(
                f"{who}: the target of {k!r} ({float(v):g}) lies outside (or on the edge of) the range of the "
                f"trial's data [{x.min():g}, {x.max():g}]: no positive weights reproduce it (a published "
                "proportion of 0 or 1 cannot be matched by a trial with both values; restrict the trial data "
                "or drop the variable)"
            )
        cols.append(x)
        names.append(str(k))
        tvals.append(float(v))
    for k, sd in (target_sd or {}).items():
        if k not in target:
            raise ValueError(f"{who}: target_sd variable {k!r} needs its mean in target too")
        if not (np.isfinite(float(sd)) and float(sd) >= 0):
            raise ValueError(f"{who}: target SD of {k!r} must be a non-negative number; got {sd!r}")
        x = X_ipd[k].to_numpy(float)
        cols.append(x**2)
        names.append(f"{k}^2")
        tvals.append(float(target[k]) ** 2 + float(sd) ** 2)
    X = np.column_stack(cols)
    return X - np.asarray(tvals), names, np.asarray(tvals)


def _solve_moments(Z: np.ndarray, counts: np.ndarray, *, max_iter: int = 100, tol: float = 1e-12
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Batched Newton for argmin_b log sum_i c_bi exp(Z_i b), one problem per row of ``counts``.

    Returns (beta (B, p), converged (B,)). Minimising log Q has the same minimiser as Q =
    sum exp(Z b) (Signorovitch 2010) and is numerically stable: its gradient is the weighted
    mean of Z (the moment residual) and its Hessian the weighted covariance of Z.
    """
    B = counts.shape[0]
    p = Z.shape[1]
    sd = Z.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    Zs = Z / sd  # scaling columns changes b, not the weights
    beta = np.zeros((B, p))
    logc = np.where(counts > 0, np.log(np.where(counts > 0, counts, 1.0)), -np.inf)

    def parts(b):
        eta = logc + b @ Zs.T  # (B, n)
        m = eta.max(axis=1, keepdims=True)
        r = np.exp(eta - m)
        s = r.sum(axis=1, keepdims=True)
        pw = r / s
        f = (m[:, 0] + np.log(s[:, 0]))
        g = pw @ Zs  # (B, p) weighted mean
        return f, g, pw

    f, g, pw = parts(beta)
    converged = np.max(np.abs(g), axis=1) < tol
    for _ in range(max_iter):  # Newton iterations, vectorised over problems
        active = ~converged
        if not active.any():
            break
        H = (pw[:, :, None] * Zs[None]).transpose(0, 2, 1) @ Zs - g[:, :, None] * g[:, None, :]
        H = H + 1e-12 * np.eye(p)[None]
        step = np.linalg.solve(H, g[:, :, None])[:, :, 0]
        t = np.ones(B)
        new = beta - step
        fn, gn, pwn = parts(new)
        for _h in range(40):  # backtracking where the objective did not decrease
            worse = active & ~(fn <= f + 1e-14 * np.abs(f))
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
            new = beta - t[:, None] * step
            fn, gn, pwn = parts(new)
        beta = np.where(active[:, None], new, beta)
        f = np.where(active, fn, f)
        g = np.where(active[:, None], gn, g)
        pw = np.where(active[:, None], pwn, pw)
        converged = np.max(np.abs(g), axis=1) < tol
    return beta / sd, converged


def compute_maic_weights(
    X_ipd: pd.DataFrame,
    target: dict[str, float],
    *,
    target_sd: dict[str, float] | None = None,
    tol: float = 1e-10,
) -> np.ndarray:
    """MAIC weights w_i = exp(x_i' b) that reproduce the published means exactly.

    Parameters
    ----------
    X_ipd : DataFrame
        The trial's individual patient data, one row per patient; the columns named in
        ``target`` must be numeric (a proportion is the mean of a 0/1 column).
    target : dict variable -> published mean (or proportion)
    target_sd : dict variable -> published SD, optional
        Also match the SD: the weighted mean of x^2 is matched to mean^2 + SD^2 (TSD 18
        section 3.2.1).
    tol : float
        Largest accepted |weighted mean - target| relative to the variable's SD in the trial.

    Returns
    -------
    ndarray of weights exp((x_i - target)' b) (the scale of Signorovitch 2010 and the R
    packages; rescale by n / sum(w) for "rescaled weights"). Weighted means equal the target.

    Raises
    ------
    ValueError
        A variable is missing or non-numeric, or the target lies outside the range of the trial's
        data (no weights can reach it: the objective has no minimum).

    Rule
    ----
    Signorovitch et al., Pharmacoeconomics 2010;28:935 (appendix): with z_i = x_i - target,
    b minimises Q(b) = sum_i exp(z_i' b) (convex; its stationary point sets sum w_i z_i = 0).
    Solved by Newton's method on log Q with step halving (the R packages use BFGS on Q; the
    minimiser is the same). Reference values: the Roche MAIC package vignette (ESS 157.07).
    """
    Z, names, _ = _moment_matrix(X_ipd, target, target_sd)
    n, p = Z.shape
    if n == 0:
        raise ValueError("compute_maic_weights: the trial data have no rows")
    beta, ok = _solve_moments(Z, np.ones((1, n)))
    eta = Z @ beta[0]
    w = np.exp(eta)
    sd = Z.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    resid = (w @ Z) / w.sum() if np.isfinite(w).all() and w.sum() > 0 else np.full(p, np.inf)
    if not ok[0] or not np.all(np.abs(resid) / sd <= tol):
        worst = names[int(np.argmax(np.abs(resid) / sd))] if np.isfinite(resid).all() else names[0]
        raise ValueError(
            "compute_maic_weights: no weights reproduce the target: it lies outside (or on the edge of) "
            f"the range of the trial's data (variable {worst!r}); e.g. a published proportion of 0 or 1, or a "
            "mean beyond the trial's minimum/maximum. Drop or coarsen that variable."
        )
    return w


@dataclass(frozen=True)
class MaicResult:
    """An unanchored MAIC: the trial's weighted outcome beside the published comparator's."""

    outcome: str  # "median" (time to event) or "proportion" (binary)
    n: int
    ess: float
    weights: np.ndarray = field(repr=False)
    balance: pd.DataFrame = field(repr=False)  # variable, target, mean_unweighted, mean_weighted
    estimate_unweighted: float | None = None
    estimate_weighted: float | None = None
    ci: tuple[float | None, float | None] = (None, None)  # bootstrap percentile CI (weighted)
    published: dict = field(default_factory=dict)
    difference: float | None = None  # weighted - published (proportions; medians when given)
    difference_ci: tuple[float | None, float | None] = (None, None)
    n_boot: int = 0
    boot_failed: int = 0
    level: float = 0.95
    seed: int = 0
    method: str = ("MAIC, method of moments (Signorovitch 2010; NICE DSU TSD 18); "
                   "bootstrap percentile CI with weights re-estimated per resample")

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, "n": self.n, "ess": self.ess,
                "estimate_unweighted": self.estimate_unweighted, "estimate_weighted": self.estimate_weighted,
                "ci": list(self.ci), "published": dict(self.published), "difference": self.difference,
                "difference_ci": list(self.difference_ci), "n_boot": self.n_boot, "boot_failed": self.boot_failed,
                "level": self.level, "seed": self.seed, "method": self.method,
                "balance": self.balance.to_dict(orient="records")}


def _weighted_median_batch(t: np.ndarray, e: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted KM median for each row of weights ``W`` (B, n): first time S(t) <= 0.5.

    Vectorised over the resamples (one sort); NaN where the curve stays above 0.5.
    """
    order = np.argsort(t, kind="stable")
    ts, es, Ws = t[order], e[order], W[:, order]
    starts = np.flatnonzero(np.concatenate(([True], ts[1:] != ts[:-1])))
    times = ts[starts]
    d = np.add.reduceat(Ws * es[None, :], starts, axis=1)
    tot = np.add.reduceat(Ws, starts, axis=1)
    before = np.concatenate([np.zeros((W.shape[0], 1)), np.cumsum(tot, axis=1)[:, :-1]], axis=1)
    nr = Ws.sum(axis=1, keepdims=True) - before
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(d > 0, d / nr, 0.0)
    s = np.cumprod(1 - lam, axis=1)
    below = s <= 0.5 + 1e-12
    has = below.any(axis=1)
    idx = np.argmax(below, axis=1)
    return np.where(has, times[idx], np.nan)


def compare_maic(
    X_ipd: pd.DataFrame,
    target: dict[str, float],
    *,
    time=None,
    event=None,
    response=None,
    published: dict | None = None,
    target_sd: dict[str, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> MaicResult:
    """Unanchored MAIC: the trial's outcome weighted to the published population.

    Parameters
    ----------
    X_ipd, target, target_sd
        As :func:`compute_maic_weights`.
    time, event : arrays, optional
        Time-to-event outcome of the trial (event 1 = event): the weighted Kaplan-Meier median
        (R quantile rule) is the outcome.
    response : array of 0/1, optional
        Binary outcome: the weighted proportion is the outcome.
    published : dict, optional
        The comparator's published outcome: ``{"median": m}`` (same time unit) or
        ``{"proportion": p, "n": n}``; copied into the result. For a proportion with its n the
        difference (weighted - published) gets a CI from the bootstrap variance of the
        weighted proportion plus the binomial variance p(1 - p)/n of the published one (Wald).
        For a median, the difference of medians is given without CI.
    n_boot : int
        Bootstrap resamples (0 = none); resampling patients with replacement, the MAIC weights
        re-estimated in each resample (TSD 18 section 3.2.3; Roche MAIC ``bootstrap_HR``).
        Resamples whose data cannot reach the target are dropped and counted in ``boot_failed``.
    seed : int
        numpy ``default_rng`` seed (reproducible).
    level : confidence level of the percentile CI.

    Returns
    -------
    MaicResult

    Algorithm
    ---------
    A bootstrap resample is a vector of multinomial counts c_b over the n patients, so the
    resampled MAIC problem is argmin log sum_i c_bi exp(z_i' b), and the resampled weighted
    outcome uses weights c_bi w_bi: all resamples are solved together (batched Newton, numpy
    arrays (B, n)), without a Python loop over resamples or patients.
    """
    who = "compare_maic"
    if (time is None) == (response is None):
        raise ValueError(f"{who}: give either time and event (time to event) or response (binary)")
    if not 0 < level < 1:
        raise ValueError(f"{who}: level must be in (0, 1); got {level!r}")
    if n_boot < 0:
        raise ValueError(f"{who}: n_boot must be >= 0; got {n_boot!r}")
    w = compute_maic_weights(X_ipd, target, target_sd=target_sd)
    Z, names, tvals = _moment_matrix(X_ipd, target, target_sd)
    n = w.size
    X = Z + tvals
    balance = pd.DataFrame({"variable": names, "target": tvals, "mean_unweighted": X.mean(0),
                            "mean_weighted": (w @ X) / w.sum()})
    published = dict(published or {})
    alpha = 1 - level
    rng = np.random.default_rng(seed)
    if n_boot:
        idx = rng.integers(0, n, size=(n_boot, n))
        counts = np.zeros((n_boot, n))
        np.add.at(counts, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
        beta, ok = _solve_moments(Z, counts)
        Wb = counts * np.exp(np.clip(beta @ Z.T, -700, 700))
    if response is not None:
        r = np.asarray(response, dtype=float)
        if r.size != n or np.any(~np.isin(r, (0.0, 1.0))):
            raise ValueError(f"{who}: response must be 0/1 with one value per trial patient ({n})")
        est_u = float(r.mean())
        est_w = float(w @ r / w.sum())
        ci: tuple = (None, None)
        diff = diff_ci = None
        failed = 0
        if n_boot:
            pb = (Wb @ r) / Wb.sum(axis=1)
            pb = pb[ok]
            failed = int((~ok).sum())
            ci = (float(np.quantile(pb, alpha / 2)), float(np.quantile(pb, 1 - alpha / 2)))
        if "proportion" in published:
            pp = float(published["proportion"])
            diff = est_w - pp
            if n_boot and "n" in published:
                var = float(np.var(pb, ddof=1)) + pp * (1 - pp) / float(published["n"])
                z = float(_dist.norm_ppf(1 - alpha / 2))
                diff_ci = (diff - z * np.sqrt(var), diff + z * np.sqrt(var))
        return MaicResult("proportion", n, compute_ess(w), w, balance, est_u, est_w, ci, published, diff,
                          diff_ci if diff_ci else (None, None), n_boot, failed, level, seed)
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    if t.size != n or e.size != n:
        raise ValueError(f"{who}: time and event need one value per trial patient ({n})")
    km_u = compute_weighted_km(t, e, None)
    km_w = compute_weighted_km(t, e, w)
    ci = (None, None)
    failed = 0
    if n_boot:
        mb = _weighted_median_batch(t, e, Wb)[ok]
        failed = int((~ok).sum())
        if mb.size:
            # a resample whose curve stays above 0.5 has median +inf (not reached)
            m = np.where(np.isnan(mb), np.inf, mb)
            lo, hi = (float(np.quantile(m, q, method="inverted_cdf")) for q in (alpha / 2, 1 - alpha / 2))
            ci = (lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None)
    diff = None
    if "median" in published and km_w.median is not None:
        diff = float(km_w.median) - float(published["median"])
    return MaicResult("median", n, compute_ess(w), w, balance, km_u.median, km_w.median, ci, published, diff,
                      (None, None), n_boot, failed, level, seed)
