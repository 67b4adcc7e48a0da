"""Tests for mmtrial.stats.proportion: every CI method against CAMIS/SAS, statsmodels and scipy,
published trial intervals, and the exact binomial design (each test names its source)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from mmtrial.stats import CI_METHODS, compute_binomial_test, compute_proportion, proportion_ci

# CAMIS (PSIAIMS/CAMIS SAS/ci_for_prop.qmd, R/ci_for_prop.qmd, Comp/r-sas_ci_for_prop.qmd):
# CDISC pilot ADCIBC active arm, x = 36, n = 154, SAS PROC FREQ; values to their printed precision.
CAMIS_36_154 = {
    "clopper-pearson": (0.16942, 0.30865, 5),
    "wald": (0.1669, 0.3006, 4),
    "wilson": (0.17390, 0.30659, 5),
    "agresti-coull": (0.1736, 0.3069, 4),
    "jeffreys": (0.1723, 0.3051, 4),
    "mid-p": (0.17200131, 0.30545883, 8),
    "likelihood-ratio": (0.1717, 0.3047, 4),
    "logit": (0.1736, 0.3070, 4),
}


@pytest.mark.parametrize("method", sorted(CAMIS_36_154))
def test_proportion_ci_matches_camis_cdisc_pilot_36_of_154(method):
    lo_ref, hi_ref, digits = CAMIS_36_154[method]
    lo, hi = proportion_ci(36, 154, method)
    # printed precision; mid-p is printed to 8 decimals from a root finder (CAMIS: R exactci),
    # whose last digit carries its solver tolerance: allow one unit there
    tol = 1.01 * 10**-digits if method == "mid-p" else 10 ** -(digits + 3)
    assert round(lo, digits) == pytest.approx(lo_ref, abs=tol)
    assert round(hi, digits) == pytest.approx(hi_ref, abs=tol)


def test_clopper_pearson_default_matches_style_guide_example():
    # STYLE.md section 7 / CAMIS: x=36, n=154 gives (0.16942, 0.30865)
    lo, hi = proportion_ci(36, 154)
    assert (round(lo, 5), round(hi, 5)) == (0.16942, 0.30865)


@pytest.mark.parametrize(
    ("x", "n", "method", "published"),
    [
        (32, 122, "clopper-pearson", (18.7, 35.0)),  # validation.md 1: STORM ORR NEJM 2019 (19-35)
        (21, 83, "clopper-pearson", (16.4, 36.0)),  # validation.md 1: FDA 2019 penta-refractory
        (104, 165, "clopper-pearson", (55.2, 70.4)),  # validation.md 1: MajesTEC-1 NEJM 2022
        (10, 12, "wilson", (55.2, 95.3)),  # validation.md 1: STORM biomarker accuracy 55-95
        (31, 122, "clopper-pearson", (18.0, 34.1)),  # domain.md 1.8: regulatory ORR 31/122
        (48, 122, "clopper-pearson", (30.6, 48.6)),  # domain.md 1.8: CBR
    ],
)
def test_published_trial_intervals_reproduced(x, n, method, published):
    lo, hi = proportion_ci(x, n, method)
    assert (round(100 * lo, 1), round(100 * hi, 1)) == published


_SM = {  # statsmodels proportion_confint names for the same method
    "clopper-pearson": "beta",
    "wilson": "wilson",
    "agresti-coull": "agresti_coull",
    "jeffreys": "jeffreys",
    "wald": "normal",
}


@pytest.mark.parametrize("method", sorted(_SM))
@pytest.mark.parametrize(("x", "n"), [(0, 10), (1, 10), (5, 10), (9, 10), (10, 10), (32, 122), (3, 400)])
def test_proportion_ci_matches_statsmodels(method, x, n):
    # statsmodels.stats.proportion.proportion_confint implements the same formulas
    ref = proportion_confint(x, n, alpha=0.05, method=_SM[method])
    lo, hi = proportion_ci(x, n, method)
    ref_lo, ref_hi = max(0.0, float(ref[0])), min(1.0, float(ref[1]))
    if method == "jeffreys":  # SAS convention: 0 at x = 0, 1 at x = n (statsmodels leaves the beta quantile)
        ref_lo = 0.0 if x == 0 else ref_lo
        ref_hi = 1.0 if x == n else ref_hi
    assert lo == pytest.approx(ref_lo, abs=1e-9)
    assert hi == pytest.approx(ref_hi, abs=1e-9)


@pytest.mark.parametrize(("x", "n"), [(0, 12), (1, 12), (36, 154), (12, 12), (50, 51)])
@pytest.mark.parametrize("method", ["wilson", "wilson-cc", "clopper-pearson"])
def test_proportion_ci_matches_scipy_binomtest(x, n, method):
    # scipy.stats.binomtest(...).proportion_ci: exact, wilson, wilsoncc (stack-notes.md: equal to R)
    sp = {"wilson": "wilson", "wilson-cc": "wilsoncc", "clopper-pearson": "exact"}[method]
    ref = stats.binomtest(x, n).proportion_ci(confidence_level=0.95, method=sp)
    lo, hi = proportion_ci(x, n, method)
    assert lo == pytest.approx(ref.low, abs=1e-9)
    assert hi == pytest.approx(ref.high, abs=1e-9)


def test_wald_cc_hand_computed():
    # hand: p = 0.5, n = 10: 0.5 -/+ (1.959964 * sqrt(0.025) + 0.05) = 0.5 -/+ 0.359900
    lo, hi = proportion_ci(5, 10, "wald-cc")
    half = 1.959963984540054 * math.sqrt(0.025) + 0.05
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)


def test_mid_p_definition_holds_at_the_limits():
    # Berry & Armitage 1995: P(X > x) + P(X = x)/2 = 0.025 at the lower limit
    lo, hi = proportion_ci(7, 30, "mid-p")
    assert stats.binom.sf(7, 30, lo) + 0.5 * stats.binom.pmf(7, 30, lo) == pytest.approx(0.025, abs=1e-10)
    assert stats.binom.cdf(6, 30, hi) + 0.5 * stats.binom.pmf(7, 30, hi) == pytest.approx(0.025, abs=1e-10)


def test_likelihood_ratio_limits_have_chi2_deviance():
    # SAS PROC FREQ CL=LR: 2 (l(p_hat) - l(p)) = chi2_1(0.95) = 3.841459 at both limits
    x, n = 7, 30
    for p in proportion_ci(x, n, "likelihood-ratio"):
        ph = x / n
        dev = 2 * (x * math.log(ph / p) + (n - x) * math.log((1 - ph) / (1 - p)))
        assert dev == pytest.approx(3.841458820694124, abs=1e-8)


@pytest.mark.parametrize("method", CI_METHODS)
def test_boundaries_zero_and_all_responders(method):
    lo0, hi0 = proportion_ci(0, 20, method)
    lon, hin = proportion_ci(20, 20, method)
    if method == "wald":  # the Wald interval degenerates to a point at 0 and n (SAS prints 0, 0)
        assert (lo0, hi0, lon, hin) == (0.0, 0.0, 1.0, 1.0)
        return
    assert lo0 == 0.0 and 0 < hi0 < 1
    assert hin == 1.0 and 0 < lon < 1


def test_bad_method_names_parameter_allowed_and_got():
    with pytest.raises(ValueError, match=r"'method' must be one of .*clopper-pearson.*got 'exact'"):
        proportion_ci(3, 10, "exact")
    with pytest.raises(ValueError, match=r"'x' must be an integer in \[0, n=10\]; got 11"):
        proportion_ci(11, 10)
    with pytest.raises(ValueError, match="'level'"):
        proportion_ci(1, 10, level=95)


@settings(max_examples=150, deadline=None, database=None)
@given(
    n=st.integers(1, 300),
    frac=st.floats(0, 1),
    method=st.sampled_from(CI_METHODS),
    level=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_property_interval_contains_estimate_and_widens_with_level(n, frac, method, level):
    x = round(frac * n)
    lo, hi = proportion_ci(x, n, method, level)
    assert 0.0 <= lo <= x / n + 1e-12 <= hi + 2e-12 <= 1.0 + 2e-12
    lo2, hi2 = proportion_ci(x, n, method, min(level + 0.005, 0.995))
    assert lo2 <= lo + 1e-9 and hi2 >= hi - 1e-9


def test_compute_proportion_result_and_describe():
    r = compute_proportion(32, 122)
    assert r.estimate == pytest.approx(0.2623, abs=5e-5)
    assert r.describe() == "95% CI (Clopper-Pearson (exact))"
    # validation.md section 1: Clopper-Pearson 18.7-35.0 for 32/122
    assert [round(100 * v, 1) for v in r.as_dict()["ci"]] == [18.7, 35.0]
    assert math.isnan(compute_proportion(0, 0).estimate)


# Exact one-sided binomial design: domain.md section 1.7 (computed illustration, tag D), checked
# here against scipy's binomial distribution directly.
@pytest.mark.parametrize(
    ("p0", "crit", "alpha", "pow20", "pow25"),
    [(0.10, 20, 0.0187, 0.868, 0.992), (0.15, 27, 0.0228, 0.311, 0.797)],
)
def test_binomial_design_critical_value_and_power_domain_1_7(p0, crit, alpha, pow20, pow25):
    t = compute_binomial_test(32, 122, p0, alpha=0.025, alternatives=(0.20, 0.25))
    assert t.critical_value == crit
    assert round(t.actual_alpha, 4) == alpha
    assert round(t.power[0.2], 3) == pow20 and round(t.power[0.25], 3) == pow25
    # the critical value is the smallest r with P(X >= r | p0) <= alpha (scipy)
    assert stats.binom.sf(crit - 1, 122, p0) <= 0.025 < stats.binom.sf(crit - 2, 122, p0)


def test_binomial_test_p_value_storm_vs_10_percent():
    # domain.md 1.7: observed 32/122, exact one-sided p vs 10% = 2.7e-7
    t = compute_binomial_test(32, 122, 0.10)
    assert f"{t.p_value:.1e}" == "2.7e-07"
    assert t.reject
    assert t.as_dict()["critical_value"] == 20


def test_binomial_test_not_rejected_at_critical_value_minus_one():
    # both sides of the threshold: x = 19 < 20 is not significant, x = 20 is
    assert not compute_binomial_test(19, 122, 0.10).reject
    assert compute_binomial_test(20, 122, 0.10).reject
