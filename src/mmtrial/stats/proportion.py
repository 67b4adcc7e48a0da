"""Confidence intervals for one proportion, and the exact one-sided binomial test.

Ten interval methods, named as SAS PROC FREQ (``BINOMIAL(CL=...)``) and R (``DescTools::BinomCI``,
``binom``) name them. Default Clopper-Pearson: the exact interval that reproduces STORM's and the
FDA's published intervals (../shared/reference/validation.md section 1; domain.md section 1.8).

Reference values (tests/stats/test_proportion.py): CAMIS pages SAS/ci_for_prop.qmd,
R/ci_for_prop.qmd and Comp/r-sas_ci_for_prop.qmd, CDISC pilot x = 36, n = 154.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from mmtrial.stats import _dist
from mmtrial.stats._result import AsDict

CiMethod = Literal[
    "clopper-pearson",
    "wilson",
    "wilson-cc",
    "agresti-coull",
    "jeffreys",
    "mid-p",
    "wald",
    "wald-cc",
    "likelihood-ratio",
    "logit",
]
CI_METHODS: tuple[str, ...] = get_args(CiMethod)

#: Display names for footnotes ("95% CI (Clopper-Pearson)"), as SAS PROC FREQ labels them.
CI_METHOD_LABELS: dict[str, str] = {
    "clopper-pearson": "Clopper-Pearson (exact)",
    "wilson": "Wilson (score)",
    "wilson-cc": "Wilson (score) with continuity correction",
    "agresti-coull": "Agresti-Coull",
    "jeffreys": "Jeffreys",
    "mid-p": "mid-p (exact)",
    "wald": "Wald (asymptotic)",
    "wald-cc": "Wald with continuity correction",
    "likelihood-ratio": "likelihood ratio",
    "logit": "logit",
}


def _check(x: int, n: int, method: str, level: float) -> None:
    if method not in CI_METHODS:
        raise ValueError(
            f"proportion_ci: parameter 'method' must be one of {', '.join(CI_METHODS)}; got {method!r}"
        )
    if not (0.0 < level < 1.0):
        raise ValueError(f"proportion_ci: parameter 'level' must be in (0, 1); got {level!r}")
    if int(n) != n or n < 1:
        raise ValueError(f"proportion_ci: parameter 'n' must be a positive integer; got {n!r}")
    if int(x) != x or x < 0 or x > n:
        raise ValueError(f"proportion_ci: parameter 'x' must be an integer in [0, n={n}]; got {x!r}")


def _clopper_pearson(x: int, n: int, a: float) -> tuple[float, float]:
    lo = 0.0 if x == 0 else float(_dist.beta_ppf(a / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(_dist.beta_ppf(1 - a / 2, x + 1, n - x))
    return lo, hi


def _wilson(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _wilson_cc(x: int, n: int, z: float) -> tuple[float, float]:
    # Newcombe 1998 (Stat Med 17:857), method 4; SAS PROC FREQ BINOMIAL(CL=WILSON(CORRECT)).
    p = x / n
    q = 1 - p
    den = 2 * (n + z * z)
    if x == 0:
        lo = 0.0
    else:
        lo = (2 * n * p + z * z - 1 - z * math.sqrt(z * z - 2 - 1 / n + 4 * p * (n * q + 1))) / den
    if x == n:
        hi = 1.0
    else:
        hi = (2 * n * p + z * z + 1 + z * math.sqrt(z * z + 2 - 1 / n + 4 * p * (n * q - 1))) / den
    return max(0.0, lo), min(1.0, hi)


def _agresti_coull(x: int, n: int, z: float) -> tuple[float, float]:
    nt = n + z * z
    pt = (x + z * z / 2) / nt
    half = z * math.sqrt(pt * (1 - pt) / nt)
    return max(0.0, pt - half), min(1.0, pt + half)


def _jeffreys(x: int, n: int, a: float) -> tuple[float, float]:
    # Brown, Cai, DasGupta 2001 (Stat Sci 16:101): Beta(x + 1/2, n - x + 1/2) quantiles, with the
    # lower limit 0 at x = 0 and the upper limit 1 at x = n (as SAS PROC FREQ).
    lo = 0.0 if x == 0 else float(_dist.beta_ppf(a / 2, x + 0.5, n - x + 0.5))
    hi = 1.0 if x == n else float(_dist.beta_ppf(1 - a / 2, x + 0.5, n - x + 0.5))
    return lo, hi


def _mid_p(x: int, n: int, a: float) -> tuple[float, float]:
    # Berry & Armitage 1995: P(X > x) + P(X = x)/2 = a/2 (lower), P(X < x) + P(X = x)/2 = a/2 (upper).
    eps = 1e-15
    if x == 0:
        lo = 0.0
    else:
        lo = _dist.brentq(
            lambda p: _dist.binom_sf(x, n, p) + 0.5 * _dist.binom_pmf(x, n, p) - a / 2,
            eps,
            1 - eps,
            xtol=1e-14,
        )
    if x == n:
        hi = 1.0
    else:
        hi = _dist.brentq(
            lambda p: _dist.binom_cdf(x - 1, n, p) + 0.5 * _dist.binom_pmf(x, n, p) - a / 2,
            eps,
            1 - eps,
            xtol=1e-14,
        )
    return float(lo), float(hi)


def _wald(x: int, n: int, z: float, cc: bool) -> tuple[float, float]:
    p = x / n
    half = z * math.sqrt(p * (1 - p) / n) + (1 / (2 * n) if cc else 0.0)
    return max(0.0, p - half), min(1.0, p + half)


def _xlogy(a: float, b: float) -> float:
    return 0.0 if a == 0 else a * math.log(b)


def _likelihood_ratio(x: int, n: int, a: float) -> tuple[float, float]:
    # The set {p : 2 [l(p_hat) - l(p)] <= chi2_1(1 - a)} (SAS PROC FREQ BINOMIAL(CL=LR)).
    crit = float(_dist.chi2_ppf(1 - a, 1))
    ph = x / n
    lmax = _xlogy(x, ph) + _xlogy(n - x, 1 - ph)

    def dev(p: float) -> float:
        return 2 * (lmax - (_xlogy(x, p) + _xlogy(n - x, 1 - p))) - crit

    eps = 1e-15
    lo = 0.0 if x == 0 else _dist.brentq(dev, eps, ph, xtol=1e-14)
    hi = 1.0 if x == n else _dist.brentq(dev, ph, 1 - eps, xtol=1e-14)
    return float(lo), float(hi)


def _logit(x: int, n: int, z: float, a: float) -> tuple[float, float]:
    # Logit (Wald interval on the log-odds): log(p/(1-p)) +/- z / sqrt(n p (1-p)).
    # Undefined at x = 0 and x = n: mmtrial then takes the exact (Clopper-Pearson) interval,
    # a documented choice (docs/statistics.md), rather than returning a degenerate [0, 0].
    if x == 0 or x == n:
        return _clopper_pearson(x, n, a)
    p = x / n
    lg = math.log(p / (1 - p))
    half = z / math.sqrt(n * p * (1 - p))
    return 1 / (1 + math.exp(-(lg - half))), 1 / (1 + math.exp(-(lg + half)))


def proportion_ci(
    x: int, n: int, method: CiMethod | str = "clopper-pearson", level: float = 0.95
) -> tuple[float, float]:
    """Two-sided confidence interval for the proportion x/n.

    Parameters
    ----------
    x, n : int
        Number of responders and number of subjects (``0 <= x <= n``, ``n >= 1``).
    method : str
        One of ``clopper-pearson`` (default), ``wilson``, ``wilson-cc``, ``agresti-coull``,
        ``jeffreys``, ``mid-p``, ``wald``, ``wald-cc``, ``likelihood-ratio``, ``logit``.
    level : float
        Confidence level, default 0.95.

    Returns
    -------
    (low, high) : tuple of float, limits within [0, 1].

    Rule
    ----
    Formulas as SAS PROC FREQ ``BINOMIAL(CL=...)`` documents them and as CAMIS compares them
    (PSIAIMS/CAMIS Comp/r-sas_ci_for_prop.qmd): Clopper-Pearson 1934 (beta quantiles); Wilson
    1927 score; Wilson with continuity correction (Newcombe 1998, method 4); Agresti-Coull 1998
    (add z^2/2 successes and failures); Jeffreys (Beta(x+1/2, n-x+1/2), Brown-Cai-DasGupta
    2001); mid-p (Berry-Armitage 1995); Wald and Wald with 1/(2n) correction, truncated to
    [0, 1]; likelihood ratio (chi-square 1 df inversion); logit (Wald on log-odds). At x = 0
    the lower limit is 0 and at x = n the upper limit is 1 for the exact-type methods.

    Examples
    --------
    >>> [round(v, 5) for v in proportion_ci(36, 154)]
    [0.16942, 0.30865]
    """
    _check(x, n, method, level)
    x, n = int(x), int(n)
    a = 1 - level
    z = float(_dist.norm_ppf(1 - a / 2))
    if method == "clopper-pearson":
        return _clopper_pearson(x, n, a)
    if method == "wilson":
        return _wilson(x, n, z)
    if method == "wilson-cc":
        return _wilson_cc(x, n, z)
    if method == "agresti-coull":
        return _agresti_coull(x, n, z)
    if method == "jeffreys":
        return _jeffreys(x, n, a)
    if method == "mid-p":
        return _mid_p(x, n, a)
    if method == "wald":
        return _wald(x, n, z, cc=False)
    if method == "wald-cc":
        return _wald(x, n, z, cc=True)
    if method == "likelihood-ratio":
        return _likelihood_ratio(x, n, a)
    return _logit(x, n, z, a)


@dataclass(frozen=True)
class ProportionResult(AsDict):
    """A proportion with its interval and the method that produced it (results.json shape)."""

    x: int
    n: int
    estimate: float
    ci: tuple[float, float]
    method: str
    level: float

    def describe(self) -> str:
        """Footnote text: ``95% CI (Clopper-Pearson (exact))``."""
        return f"{self.level * 100:g}% CI ({CI_METHOD_LABELS[self.method]})"


def compute_proportion(
    x: int, n: int, method: CiMethod | str = "clopper-pearson", level: float = 0.95
) -> ProportionResult:
    """x/n with its CI as a typed result (``NaN`` estimate and CI when ``n`` is 0)."""
    if n == 0:
        nan = float("nan")
        return ProportionResult(0, 0, nan, (nan, nan), method, level)
    lo, hi = proportion_ci(x, n, method, level)
    return ProportionResult(int(x), int(n), x / n, (lo, hi), method, level)


@dataclass(frozen=True)
class BinomialTest:
    """Exact one-sided binomial test of H0: p <= p0 against H1: p > p0, with the design.

    ``critical_value`` is the smallest responder count r with P(X >= r | p0) <= alpha (the
    design's rejection threshold); ``actual_alpha`` = P(X >= r | p0); ``power`` maps each
    alternative p1 to P(X >= r | p1).
    """

    x: int
    n: int
    p0: float
    alpha: float
    p_value: float
    critical_value: int
    actual_alpha: float
    power: dict[float, float] = field(default_factory=dict)

    @property
    def reject(self) -> bool:
        return self.x >= self.critical_value

    def as_dict(self) -> dict:
        return {
            "x": self.x,
            "n": self.n,
            "null": self.p0,
            "alternative": "greater",
            "alpha_one_sided": self.alpha,
            "p_value": self.p_value,
            "critical_value": self.critical_value,
            "actual_alpha": self.actual_alpha,
            "power": {f"{k:g}": v for k, v in self.power.items()},
            "reject_null": self.reject,
            "method": "exact binomial, one-sided",
        }


def compute_binomial_test(
    x: int, n: int, p0: float, *, alpha: float = 0.025, alternatives: tuple[float, ...] = ()
) -> BinomialTest:
    """Exact one-sided binomial test of the response rate against a protocol null.

    Rule
    ----
    Single-stage exact binomial design (A'Hern 2001, Stat Med 20:859): reject H0: p <= p0 when
    the number of responders X >= r, the smallest r with P(X >= r | p0) <= alpha; power at p1
    is P(X >= r | p1). The p-value is P(X >= x | p0) (``scipy.stats.binomtest``, alternative
    "greater").

    Examples
    --------
    >>> t = compute_binomial_test(32, 122, 0.10, alpha=0.025, alternatives=(0.20,))
    >>> t.critical_value, round(t.actual_alpha, 4), round(t.power[0.2], 3)
    (20, 0.0187, 0.868)
    """
    if not (0.0 < p0 < 1.0):
        raise ValueError(f"compute_binomial_test: parameter 'p0' must be in (0, 1); got {p0!r}")
    if not (0.0 < alpha < 0.5):
        raise ValueError(f"compute_binomial_test: parameter 'alpha' must be in (0, 0.5); got {alpha!r}")
    _check(x, n, "clopper-pearson", 0.95)
    ks = np.arange(n + 2)
    tail = _dist.binom_sf(ks - 1, n, p0)  # P(X >= k)
    r = int(ks[np.argmax(tail <= alpha)])
    p_value = _dist.binomtest_greater(int(x), int(n), p0)
    power = {float(p1): float(_dist.binom_sf(r - 1, n, p1)) for p1 in alternatives}
    return BinomialTest(int(x), int(n), float(p0), float(alpha), p_value, r, float(tail[r]), power)
