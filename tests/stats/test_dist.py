"""mmtrial.stats._dist: scipy.special versions of the scipy.stats functions, equal bit for bit.

Reference: ``scipy.stats`` itself (the installed SciPy), compared with ``==`` on the doubles
(``numpy.array_equal(..., equal_nan=True)`` and the same sign of zero), never a tolerance: the
replacement is only allowed because it gives the same numbers (issue 15). Property tests run 60
examples each by default, 400 under ``--sweeps``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mmtrial.stats import _dist as D
from support.sweeps import examples

unit = st.floats(0.0, 1.0)
prob = st.one_of(unit, st.sampled_from([0.0, 1.0, 0.5, 0.025, 0.975, 1e-300, 1 - 1e-16]))
real = st.floats(-40.0, 40.0)
pos = st.floats(1e-3, 500.0)


def same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True) and bool(
        np.all(np.signbit(a[~np.isnan(a)]) == np.signbit(b[~np.isnan(b)])))


@settings(max_examples=examples(60, 400), deadline=None)
@given(x=real, q=prob)
def test_normal_functions_equal_scipy_stats(x, q):
    assert same(D.norm_cdf(x), stats.norm.cdf(x))
    assert same(D.norm_sf(x), stats.norm.sf(x))
    assert same(D.norm_ppf(q), stats.norm.ppf(q))
    assert same(D.norm_isf(q), stats.norm.isf(q))


@settings(max_examples=examples(60, 400), deadline=None)
@given(x=st.one_of(st.floats(-5.0, 400.0), st.just(0.0)), q=prob, df=st.one_of(st.integers(1, 60), pos))
def test_chi_square_functions_equal_scipy_stats(x, q, df):
    assert same(D.chi2_sf(x, df), stats.chi2.sf(x, df))
    assert same(D.chi2_ppf(q, df), stats.chi2.ppf(q, df))


@settings(max_examples=examples(60, 400), deadline=None)
@given(q=prob, a=st.one_of(pos, st.integers(1, 400), st.floats(0.5, 400.0).map(lambda v: np.floor(v) + 0.5)),
       b=st.one_of(pos, st.integers(1, 400)))
def test_beta_quantile_equals_scipy_stats(q, a, b):
    assert same(D.beta_ppf(q, a, b), stats.beta.ppf(q, a, b))


@settings(max_examples=examples(60, 400), deadline=None)
@given(n=st.integers(0, 400), k=st.integers(-3, 405), p=prob)
def test_binomial_functions_equal_scipy_stats(n, k, p):
    assert same(D.binom_sf(k, n, p), stats.binom.sf(k, n, p))
    assert same(D.binom_cdf(k, n, p), stats.binom.cdf(k, n, p))
    assert same(D.binom_pmf(k, n, p), stats.binom.pmf(k, n, p))
    assert same(D.binom_sf(k + 0.5, n, p), stats.binom.sf(k + 0.5, n, p))
    if 0 <= k <= n and n >= 1:
        assert D.binomtest_greater(k, n, p) == stats.binomtest(k, n, p, alternative="greater").pvalue


def test_vector_arguments_equal_scipy_stats():
    rng = np.random.default_rng(15)
    q = np.r_[0.0, 1.0, rng.random(200)]
    x = rng.normal(scale=5, size=202)
    n = rng.integers(0, 200, size=202)
    k = np.minimum(rng.integers(-2, 202, size=202), 205)
    assert same(D.norm_ppf(q), stats.norm.ppf(q))
    assert same(D.norm_sf(x), stats.norm.sf(x))
    assert same(D.chi2_sf(x ** 2, 3), stats.chi2.sf(x ** 2, 3))
    assert same(D.chi2_ppf(q, 2 * n + 2), stats.chi2.ppf(q, 2 * n + 2))
    assert same(D.beta_ppf(q, n + 1, n + 2), stats.beta.ppf(q, n + 1, n + 2))
    assert same(D.binom_sf(k, n, q), stats.binom.sf(k, n, q))


@pytest.mark.parametrize("bad", [(0.5, 0.0), (0.5, -1.0)])
def test_invalid_parameters_fall_back_to_scipy_stats(bad):
    q, df = bad
    assert same(D.chi2_ppf(q, df), stats.chi2.ppf(q, df))
    assert same(D.chi2_sf(q, df), stats.chi2.sf(q, df))
    assert same(D.beta_ppf(q, df, 1.0), stats.beta.ppf(q, df, 1.0))


@settings(max_examples=examples(60, 400), deadline=None)
@given(st.lists(st.one_of(st.integers(-5, 5).map(float), st.floats(-1e6, 1e6)), min_size=0, max_size=60))
def test_midrank_equals_scipy_rankdata_average(values):
    x = np.asarray(values, dtype=float)
    assert same(D.midrank(x), stats.rankdata(x, method="average"))


@settings(max_examples=60, deadline=None)
@given(st.floats(-5, 5), st.floats(0.1, 3), st.integers(1, 5), st.sampled_from([1e-14, 1e-12, 1e-10, 2e-12]))
def test_brentq_is_scipy_optimize_brentq(root, scale, power, xtol):
    # oracle: scipy.optimize.brentq on the same function and bracket, bit for bit (the same
    # compiled routine); the bracket is asymmetric so that the iterations are not trivial
    from scipy import optimize

    def f(x):
        return math.copysign(abs(x - root) ** power, x - root) * scale + 1e-3 * (x - root)

    a, b = root - 1.7, root + 2.9
    assert D.brentq(f, a, b, xtol=xtol) == optimize.brentq(f, a, b, xtol=xtol)


def test_brentq_errors_are_scipys():
    from scipy import optimize

    for kw, f in (({}, lambda x: x * x + 1.0), ({}, lambda x: float("nan")), ({"xtol": 0.0}, lambda x: x),
                  ({"maxiter": 2}, lambda x: x**3 - 0.3)):
        with pytest.raises((ValueError, RuntimeError)) as ours:
            D.brentq(f, -1.0, 2.0, **kw)
        with pytest.raises((ValueError, RuntimeError)) as theirs:
            optimize.brentq(f, -1.0, 2.0, **kw)
        assert type(ours.value) is type(theirs.value)
