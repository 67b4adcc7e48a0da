"""Cox proportional-hazards model: partial likelihood, Newton-Raphson, in NumPy.

One engine for every unweighted Cox model of mmtrial (issue 15: statsmodels' ``PHReg`` and the
scipy.stats it imports cost about 1.5-2 s of CPU per run for a handful of small fits):

* :func:`fit_cox`: p covariates, Breslow or Efron ties, strata (a separate baseline hazard per
  stratum), left truncation / counting-process rows ``(entry, time]``; returns the coefficients,
  their covariance (the inverse of the observed information) and the log partial likelihood.

The weighted model with a robust variance (external controls) is
:func:`mmtrial.stats.weighting.fit_weighted_cox`, a separate engine.

Rule
----
Log partial likelihood (Cox, JRSS B 1972;34:187; Therneau & Grambsch, *Modeling Survival Data*,
Springer 2000, sections 3.2-3.3 and 3.7), for each stratum and each distinct event time t with
d tied events D(t) and risk set R(t) = {i : entry_i < t <= time_i}, r_i = exp(x_i b):

* Breslow: sum over i in D(t) of x_i b - d log S0(t), S0 = sum over R(t) of r_i;
* Efron: sum over i in D(t) of x_i b - sum over k = 0..d-1 of log(S0(t) - (k/d) S0_D(t)), S0_D
  the sum of r_i over D(t) (R ``coxph`` default; Efron, JASA 1977;72:557).

Score and observed information follow by differentiation (the weighted means and covariances of
x over the risk set, with the same k/d corrections). An entry time of 0 or less means "at risk
from the start" (as ``PHReg`` without entry times); a positive entry time e puts the row at
risk only at times t > e (R ``Surv(start, stop, event)``).

Iteration: as statsmodels ``PHReg.fit()`` (``LikelihoodModel.fit``, method "newton",
``optimizer._fit_newton``), which the earlier releases used, so that the iteration count, the
non-convergent (monotone-likelihood) cases and the covariance are the same recipe: start at
b = 0; Newton steps on the log likelihood divided by n with a ridge of 1e-10 added to the
information's diagonal; stop when no coefficient moves more than 1e-8, or after 100 steps; the
covariance is the inverse of the information at the final b, without the ridge. R ``coxph.fit``
(``coxph.control``) instead stops on a relative change of the log likelihood below 1e-9 with
step halving, after at most 20 steps; both reach the maximum to about 1e-13 when it exists (the
tests compare with R ``coxph`` and with ``PHReg``).

Risk-set sums are built without a loop over subjects or event times: each row adds its r_i,
r_i x_i and r_i x_i x_i' to the cell (stratum, index of the last event time <= time_i) and
removes them at the cell (stratum, last event time <= entry_i); a reverse cumulative sum over
the event times of each stratum then gives the sums over R(t).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Ties = Literal["efron", "breslow"]

#: Newton-Raphson settings of statsmodels ``LikelihoodModel.fit(method="newton")``.
MAX_ITER = 100
TOL = 1e-8
RIDGE = 1e-10


@dataclass(frozen=True)
class CoxFit:
    """Estimates of :func:`fit_cox`."""

    coef: np.ndarray  # (p,) log hazard ratios
    cov: np.ndarray  # (p, p) inverse of the observed information at coef
    loglik: float  # log partial likelihood at coef
    converged: bool  # False when the 100 Newton steps were used up (e.g. monotone likelihood)
    iterations: int
    n: int  # rows used
    n_events: int

    @property
    def se(self) -> np.ndarray:
        """Standard errors: square roots of the covariance's diagonal."""
        return np.sqrt(np.diag(self.cov))


def _codes(strata, n: int) -> tuple[np.ndarray, int]:
    if strata is None:
        return np.zeros(n, dtype=np.int64), 1
    s = np.asarray(strata)
    if s.shape[0] != n:
        raise ValueError(f"strata must have one value per row ({n}); got {s.shape[0]}")
    uniq, codes = np.unique(s, return_inverse=True)
    return codes.astype(np.int64).ravel(), int(uniq.size)


def _validate(t: np.ndarray, e: np.ndarray, x: np.ndarray, entry: np.ndarray | None) -> None:
    n = t.size
    if e.size != n or x.shape[0] != n or (entry is not None and entry.size != n):
        raise ValueError(f"time, event, covariates and entry must have one value per row; got {t.size} times, "
                         f"{e.size} events, {x.shape[0]} covariate rows"
                         + ("" if entry is None else f", {entry.size} entry times"))
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"time must be finite and non-negative; row {i} has {t[i]!r}")
    bad = ~np.isin(e, (0.0, 1.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"event must be 0 or 1; row {i} has {e[i]!r}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"covariates must be finite; row {i} has {x[i].tolist()!r}")
    if entry is not None:
        bad = np.isnan(entry) | (entry > t) | ((entry > 0) & (entry >= t))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"a positive entry time must be before the row's time (R Surv(start, stop): "
                             f"stop > start); row {i} has entry {entry[i]!r}, time {t[i]!r}")


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order grouping equal ``keys``, the start of each run in that order, and each run's key."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1]))) if k.size else np.zeros(0, np.int64)
    return order, starts, k[starts]


def fit_cox(time, event, X, *, entry=None, strata=None, ties: Ties = "efron", missing: Literal["raise", "drop"] = "raise",
            max_iter: int = MAX_ITER, tol: float = TOL) -> CoxFit:
    """Fit a Cox model by maximum partial likelihood (see the module's Rule).

    Parameters
    ----------
    time : (n,) event or censoring times (the ``stop`` of counting-process rows), >= 0
    event : (n,) 1 = event at ``time``, 0 = censored
    X : (n,) or (n, p) covariates
    entry : (n,) optional entry (``start``) times; a row is at risk at t when entry < t <= time
        (an entry of 0 or less: at risk from the start)
    strata : (n,) optional stratum labels (a separate baseline hazard per stratum)
    ties : "efron" (R default) or "breslow" (SAS default)
    missing : "raise" (a NaN time, event, covariate or entry is an error) or "drop" (such rows
        are left out, as statsmodels ``PHReg``'s default ``missing="drop"``, which the callers
        of the earlier releases relied on; R ``coxph``'s ``na.action = na.omit``)

    Returns
    -------
    CoxFit
        NaN coefficients and covariance when there is no event; a NaN covariance when the
        information matrix at the estimate is singular (a covariate, or a combination of
        covariates, constant within every risk set: not estimable; ``PHReg`` gave NaN or
        meaningless standard errors there, from rounding). Raises ValueError on invalid input.
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties: allowed 'efron', 'breslow'; got {ties!r}")
    t = np.asarray(time, dtype=float).ravel()
    e = np.asarray(event, dtype=float).ravel()
    x = np.asarray(X, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    en = None if entry is None else np.asarray(entry, dtype=float).ravel()
    if missing not in ("raise", "drop"):
        raise ValueError(f"missing: allowed 'raise', 'drop'; got {missing!r}")
    if missing == "drop" and t.size == e.size == x.shape[0] and (en is None or en.size == t.size):
        keep = ~(np.isnan(t) | np.isnan(e) | np.isnan(x).any(axis=1) | (False if en is None else np.isnan(en)))
        if not keep.all():
            t, e, x = t[keep], e[keep], x[keep]
            en = None if en is None else en[keep]
            strata = None if strata is None else np.asarray(strata)[keep]
    _validate(t, e, x, en)
    n, p = x.shape
    codes, n_strata = _codes(strata, n)
    dead = np.flatnonzero(e == 1)
    nan_fit = CoxFit(np.full(p, np.nan), np.full((p, p), np.nan), float("nan"), False, 0, n, int(dead.size))
    if dead.size == 0:
        return nan_fit

    # event-time index of each row's time and entry: row i is at risk at the k-th distinct event
    # time when lo_i < k <= hi_i
    ut = np.unique(t[dead])
    n_ut = ut.size
    hi = np.searchsorted(ut, t, side="right") - 1
    lo = (np.full(n, -1, dtype=np.int64) if en is None
          else np.where(en > 0, np.searchsorted(ut, en, side="right") - 1, -1))
    width = n_ut + 1  # column 0 collects what is never read (before the first event time)
    add_cell = codes * width + hi + 1
    sub = np.flatnonzero(lo >= 0)
    cells = np.concatenate((add_cell, codes[sub] * width + lo[sub] + 1))
    rows = np.concatenate((np.arange(n), sub))
    sign = np.concatenate((np.ones(n), -np.ones(sub.size)))
    c_order, c_starts, c_keys = _segments(cells)
    c_rows, c_sign = rows[c_order], sign[c_order][:, None]

    # tied events: one group per (stratum, event time); Efron's k/d for the k-th of d deaths
    g_cell = codes[dead] * width + hi[dead] + 1
    d_order, d_starts, d_keys = _segments(g_cell)
    dead = dead[d_order]
    d_size = np.diff(np.append(d_starts, dead.size))
    g_of = np.repeat(np.arange(d_keys.size), d_size)
    if ties == "efron":
        k = np.arange(dead.size) - np.repeat(d_starts, d_size)
        frac = (k / np.repeat(d_size, d_size))[:, None]
    else:
        frac = None
    x_dead_sum = x[dead].sum(axis=0)
    pairs = (x[:, :, None] * x[:, None, :]).reshape(n, p * p)
    cols = np.hstack((np.ones((n, 1)), x, pairs))  # 1, x, x x' per row

    def terms(beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        eta = x @ beta
        if n_strata == 1:
            eta = eta - eta.max()
        else:  # per-stratum shift (the ratios within a stratum are unchanged)
            top = np.full(n_strata, -np.inf)
            np.maximum.at(top, codes, eta)
            eta = eta - top[codes]
        w = np.exp(eta)[:, None] * cols  # r, r x, r x x'
        grid = np.zeros((n_strata * width, cols.shape[1]))
        grid[c_keys] = np.add.reduceat(w[c_rows] * c_sign, c_starts, axis=0)
        grid = grid.reshape(n_strata, width, -1)
        risk = np.cumsum(grid[:, ::-1], axis=1)[:, ::-1].reshape(n_strata * width, -1)[d_keys][g_of]
        if frac is not None:
            risk = risk - frac * np.add.reduceat(w[dead], d_starts, axis=0)[g_of]
        c0 = risk[:, 0]
        a = risk[:, 1:1 + p] / c0[:, None]
        b = risk[:, 1 + p:].reshape(-1, p, p) / c0[:, None, None]
        loglik = float(eta[dead].sum() - np.log(c0).sum())
        score = x_dead_sum - a.sum(axis=0)
        info = (b - a[:, :, None] * a[:, None, :]).sum(axis=0)
        return loglik, score, info

    beta = np.zeros(p)
    old = np.full(p, np.inf)
    it = 0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        while it < max_iter and np.any(np.abs(beta - old) > tol):
            _, score, info = terms(beta)
            h = info / n
            h[np.diag_indices(p)] += RIDGE
            old = beta
            beta = old + np.linalg.solve(h, score / n)
            it += 1
        loglik, _, info = terms(beta)
        try:
            cov = np.linalg.inv(info / n) / n
        except np.linalg.LinAlgError:  # e.g. a covariate constant within every risk set
            cov = np.full((p, p), np.nan)
    return CoxFit(beta, cov, loglik, it < max_iter, it, n, int(dead.size))


__all__ = ["CoxFit", "Ties", "fit_cox"]
