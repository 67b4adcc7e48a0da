"""Distribution functions on ``scipy.special``, bit for bit as ``scipy.stats`` (issue 15).

``import scipy.stats`` costs about 1 s of CPU (it builds every distribution and rewrites their
docstrings at import); ``scipy.special`` about 0.2 s. The few distribution functions mmtrial's
statistics need are thin layers over special functions in ``scipy.stats`` itself (SciPy
1.12-1.17, ``scipy/stats/_continuous_distns.py`` and ``_discrete_distns.py``):

========================  ===============================================================
``norm.cdf(x)``           ``ndtr(x)``
``norm.sf(x)``            ``ndtr(-x)``
``norm.ppf(q)``           ``ndtri(q)`` (then ``* scale + loc`` = ``* 1.0 + 0.0``)
``norm.isf(q)``           ``-ndtri(q)`` (same)
``chi2.sf(x, df)``        ``chdtrc(df, x)``; 1 for x <= 0
``chi2.ppf(q, df)``       ``2 * gammaincinv(df / 2, q)``; 0 at q = 0, inf at q = 1
``beta.ppf(q, a, b)``     the Boost quantile ``scipy.special._ufuncs._beta_ppf``; 0 / 1 at q = 0 / 1
``binom.sf(k, n, p)``     ``clip(_binom_sf(floor(k), n, p), 0, 1)``; 1 for k < 0, 0 for k >= n
``binom.cdf(k, n, p)``    ``clip(_binom_cdf(floor(k), n, p), 0, 1)``; 0 for k < 0, 1 for k >= n
``binom.pmf(k, n, p)``    ``clip(_binom_pmf(k, n, p), 0, 1)``; 0 off the support
========================  ===============================================================

``rv_continuous`` / ``rv_discrete`` add only argument checks, the values at the ends of the
support and ``* scale + loc``, reproduced here for the arguments mmtrial passes (scalars or
arrays of finite values, valid parameters). The Boost-based ufuncs are private names of
``scipy.special._ufuncs``; when one is missing (another SciPy) the function falls back to
``scipy.stats``. tests/stats/test_dist.py checks every function against ``scipy.stats`` for
equality of the doubles (hypothesis), so a SciPy upgrade that changes a rule fails there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmtrial._lazy import import_bare, import_special_ufuncs, lazy_module

# scipy.special's ufuncs from their compiled module, without the package's __init__ (the same
# objects as scipy.special.ndtr etc.; mmtrial._lazy.import_special_ufuncs)
_ufuncs = lazy_module("scipy.special._ufuncs", import_special_ufuncs)


def _special(name: str) -> Any:
    """``scipy.special.<name>``: the ufunc of ``scipy.special._ufuncs`` (the object scipy.special
    exports), or scipy.special's own when another SciPy keeps it elsewhere."""
    f = getattr(_ufuncs, name, None)
    if f is None:  # pragma: no cover - another SciPy layout
        import scipy.special

        f = getattr(scipy.special, name)
    return f


#: SciPy's compiled root finders (``_brentq``), without ``scipy/optimize/__init__.py`` (about
#: 0.55 s of CPU: it imports scipy.linalg, scipy.sparse and more; issue 15)
_zeros = lazy_module("scipy.optimize._zeros", lambda: import_bare("scipy.optimize._zeros", ("scipy.optimize",)))
_BRENTQ_RTOL = 4 * np.finfo(float).eps


def brentq(f, a: float, b: float, *, xtol: float = 2e-12, rtol: float = _BRENTQ_RTOL, maxiter: int = 100) -> float:
    """``scipy.optimize.brentq(f, a, b, xtol=xtol, rtol=rtol, maxiter=maxiter)``, the same root.

    Brent's method (Brent 1973, ch. 3-4) by SciPy's own compiled routine
    (``scipy.optimize._zeros._brentq``, which ``brentq`` calls), with ``brentq``'s checks around
    it (SciPy 1.12-1.17 ``optimize/_zeros_py.py``): xtol > 0, rtol >= 4 eps, a NaN function value
    is a ValueError, no convergence within ``maxiter`` a RuntimeError, ``f(a)`` and ``f(b)`` of
    the same sign a ValueError. tests/stats/test_dist.py checks equality with ``brentq``.
    """
    solver = getattr(_zeros, "_brentq", None)
    if solver is None:  # pragma: no cover - another SciPy layout
        from scipy import optimize

        return optimize.brentq(f, a, b, xtol=xtol, rtol=rtol, maxiter=maxiter)
    if xtol <= 0:
        raise ValueError(f"xtol too small ({xtol:g} <= 0)")
    if rtol < _BRENTQ_RTOL:
        raise ValueError(f"rtol too small ({rtol:g} < {_BRENTQ_RTOL:g})")

    def f_raise(x):
        fx = f(x)
        if np.isnan(fx):
            raise ValueError(f"The function value at x={x} is NaN; solver cannot continue.")
        return fx

    return solver(f_raise, a, b, xtol, rtol, int(maxiter), (), False, True)


def _boost(name: str) -> Any:
    """A private Boost ufunc of ``scipy.special._ufuncs`` that scipy.stats calls, or None."""
    return getattr(_ufuncs, name, None)


def _out(v: np.ndarray) -> Any:
    """A 0-d result as a NumPy scalar (as ``scipy.stats`` returns it), else the array."""
    return v[()] if v.ndim == 0 else v


def norm_cdf(x: Any) -> Any:
    """``scipy.stats.norm.cdf(x)``."""
    return _out(np.asarray(_special("ndtr")(np.asarray(x, dtype=float))))


def norm_sf(x: Any) -> Any:
    """``scipy.stats.norm.sf(x)``."""
    return _out(np.asarray(_special("ndtr")(-np.asarray(x, dtype=float))))


def norm_ppf(q: Any) -> Any:
    """``scipy.stats.norm.ppf(q)``: -inf at 0, inf at 1, NaN outside [0, 1]."""
    q = np.asarray(q, dtype=float)
    with np.errstate(invalid="ignore"):
        out = np.where((q > 0) & (q < 1), _special("ndtri")(q) * 1.0 + 0.0, np.nan)
    out = np.where(q == 0, -np.inf, np.where(q == 1, np.inf, out))
    return _out(out)


def norm_isf(q: Any) -> Any:
    """``scipy.stats.norm.isf(q)``: inf at 0, -inf at 1, NaN outside [0, 1]."""
    q = np.asarray(q, dtype=float)
    with np.errstate(invalid="ignore"):
        out = np.where((q > 0) & (q < 1), -_special("ndtri")(q) * 1.0 + 0.0, np.nan)
    out = np.where(q == 0, np.inf, np.where(q == 1, -np.inf, out))
    return _out(out)


def chi2_sf(x: Any, df: Any) -> Any:
    """``scipy.stats.chi2.sf(x, df)`` for df > 0: 1 for x <= 0, NaN for NaN."""
    x = np.asarray(x, dtype=float)
    df = np.asarray(df, dtype=float)
    if np.any(~(df > 0)):
        from scipy import stats

        return stats.chi2.sf(x, df)
    with np.errstate(invalid="ignore"):
        out = np.where(x > 0, _special("chdtrc")(df, x), 1.0)
    out = np.where(np.isnan(x), np.nan, np.where(x == np.inf, 0.0, out))
    return _out(np.asarray(out, dtype=float))


def chi2_ppf(q: Any, df: Any) -> Any:
    """``scipy.stats.chi2.ppf(q, df)`` for df > 0: 0 at q = 0, inf at q = 1, NaN outside."""
    q = np.asarray(q, dtype=float)
    df = np.asarray(df, dtype=float)
    if np.any(~(df > 0)):
        from scipy import stats

        return stats.chi2.ppf(q, df)
    with np.errstate(invalid="ignore"):
        out = np.where((q > 0) & (q < 1), 2 * _special("gammaincinv")(df / 2, q) * 1.0 + 0.0, np.nan)
    out = np.where(q == 0, 0.0, np.where(q == 1, np.inf, out))
    return _out(np.asarray(out, dtype=float))


def beta_ppf(q: Any, a: Any, b: Any) -> Any:
    """``scipy.stats.beta.ppf(q, a, b)`` for a, b > 0: 0 at q = 0, 1 at q = 1, NaN outside."""
    q = np.asarray(q, dtype=float)
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if _boost("_beta_ppf") is None or np.any(~(a > 0)) or np.any(~(b > 0)):
        from scipy import stats

        return stats.beta.ppf(q, a, b)
    with np.errstate(invalid="ignore"):
        out = np.where((q > 0) & (q < 1), _boost("_beta_ppf")(q, a, b) * 1.0 + 0.0, np.nan)
    out = np.where(q == 0, 0.0, np.where(q == 1, 1.0, out))
    return _out(np.asarray(out, dtype=float))


def _binom_ok(n: np.ndarray, p: np.ndarray) -> bool:
    return bool(np.all((n >= 0) & (n == np.floor(n)) & (p >= 0) & (p <= 1)))


def _binom_tail(name: str, k: Any, n: Any, p: Any, below: float, above: float) -> Any:
    """``scipy.stats.binom.<name>(k, n, p)`` for the tails (``sf``, ``cdf``): scipy's Boost ufunc
    on 0 <= k < n, ``below`` for k < 0 and ``above`` for k >= n (scipy.stats' own range ends);
    scipy.stats itself for any other n, p or a non-finite k."""
    k, n, p = (np.asarray(v, dtype=float) for v in (k, n, p))
    ufunc = _boost(f"_binom_{name}")
    if ufunc is None or not _binom_ok(n, p) or np.any(~np.isfinite(k)):
        from scipy import stats

        return getattr(stats.binom, name)(k, n, p)
    inside = (k >= 0) & (k < n)
    with np.errstate(invalid="ignore"):
        out = np.where(inside, np.clip(ufunc(np.floor(k), n, p), 0, 1), np.where(k < 0, below, above))
    return _out(np.asarray(out, dtype=float))


def binom_sf(k: Any, n: Any, p: Any) -> Any:
    """``scipy.stats.binom.sf(k, n, p)`` = P(X > k) for integer n >= 0 and p in [0, 1]."""
    return _binom_tail("sf", k, n, p, below=1.0, above=0.0)


def binom_cdf(k: Any, n: Any, p: Any) -> Any:
    """``scipy.stats.binom.cdf(k, n, p)`` = P(X <= k) for integer n >= 0 and p in [0, 1]."""
    return _binom_tail("cdf", k, n, p, below=0.0, above=1.0)


def binom_pmf(k: Any, n: Any, p: Any) -> Any:
    """``scipy.stats.binom.pmf(k, n, p)`` for integer n >= 0 and p in [0, 1]."""
    k, n, p = (np.asarray(v, dtype=float) for v in (k, n, p))
    if _boost("_binom_pmf") is None or not _binom_ok(n, p) or np.any(~np.isfinite(k)):
        from scipy import stats

        return stats.binom.pmf(k, n, p)
    inside = (k >= 0) & (k <= n) & (np.floor(k) == k)
    with np.errstate(invalid="ignore"):
        out = np.where(inside, np.clip(_boost("_binom_pmf")(k, n, p), 0, 1), 0.0)
    return _out(np.asarray(out, dtype=float))


def binomtest_greater(k: int, n: int, p: float) -> float:
    """``scipy.stats.binomtest(k, n, p, alternative="greater").pvalue`` = P(X >= k).

    SciPy's rule (``scipy/stats/_binomtest.py``): ``binom.sf(k - 1, n, p)``.
    """
    if not (0 <= k <= n) or n < 1 or int(k) != k or int(n) != n or not (0 <= p <= 1):
        from scipy import stats

        return float(stats.binomtest(int(k), int(n), p, alternative="greater").pvalue)
    return float(binom_sf(k - 1, n, p))


def midrank(x: Any) -> np.ndarray:
    """``scipy.stats.rankdata(x, method="average")`` for a 1-D array without NaN.

    Ranks 1..n in sorted order; tied values share the mean of their ranks. Every rank is an
    integer or a half-integer, exactly representable, so the doubles equal SciPy's.
    """
    x = np.asarray(x)
    n = x.size
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]] if n else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n]
    avg = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(n, dtype=float)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


__all__ = [
    "beta_ppf",
    "binom_cdf",
    "binom_pmf",
    "binom_sf",
    "binomtest_greater",
    "chi2_ppf",
    "chi2_sf",
    "midrank",
    "norm_cdf",
    "norm_isf",
    "norm_ppf",
    "norm_sf",
]
