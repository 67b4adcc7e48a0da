"""Consistent number formats for every table (issue 7).

SAS rounds half away from zero (12.5 -> 13; ../shared/reference/validation.md section 2);
Python's and R's ``round`` round half to even. Tables that must match SAS use
:func:`round_half_up`, which works on the decimal string so 0.125 -> 0.13 as SAS prints it.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

NE = "NE"

#: Beyond this magnitude a number prints in scientific notation (``1.0e+300``): fixed decimals of
#: a huge value are not readable, and exact half-up rounding needs as many digits as the number.
SCIENTIFIC_FROM = 1e15


def _finite(x) -> float | None:
    """``x`` as a float, or None when missing or not finite (None, NaN, NA, NaT, +-inf)."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def round_half_up(x: float, digits: int = 0) -> float:
    """Round half away from zero, as SAS's ROUND and PUT do (CAMIS rounding page).

    Missing or non-finite input gives NaN (never an error); values of magnitude >=
    :data:`SCIENTIFIC_FROM` are returned unchanged (their decimals are not representable).
    """
    v = _finite(x)
    if v is None:
        return float("nan")
    if abs(v) >= SCIENTIFIC_FROM:
        return v
    q = Decimal(1).scaleb(-digits)
    d = Decimal(repr(v)).quantize(q, rounding=ROUND_HALF_UP)
    return float(d)


def fmt_num(x: float | None, digits: int = 1) -> str:
    """A number with fixed decimals, half-up; ``NE`` (not estimable) for None, NaN and +-inf.

    A value of magnitude >= :data:`SCIENTIFIC_FROM` prints in scientific notation with ``digits``
    decimals (``1.0e+300``).
    """
    v = _finite(x)
    if v is None:
        return NE
    if abs(v) >= SCIENTIFIC_FROM:
        return f"{v:.{digits}e}"
    return f"{round_half_up(v, digits):.{digits}f}"


P_DIGITS = 4


def fmt_p(p: float | None, digits: int = P_DIGITS) -> str:
    """A p-value as CSR tables print it: ``0.0123``, ``<0.0001`` below the last digit; never
    scientific notation (ICH E3 tables; the usual SAS ``PVALUE6.4`` format). ``NE`` if missing."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return NE
    floor = 10.0 ** -digits
    if p < floor:
        return f"<{floor:.{digits}f}"
    return f"{round_half_up(min(p, 1.0), digits):.{digits}f}"


def fmt_pct(x: int, n: int, digits: int = 1) -> str:
    """Percent of n to one decimal: ``26.2``; ``NE`` when n is 0 or missing."""
    if not n:
        return NE
    return fmt_num(100.0 * x / n, digits)


def fmt_n_pct(x: int, n: int, digits: int = 1) -> str:
    """``32 (26.2)``: the count and its percent of n, as in NEJM and TLG tables."""
    if not n:
        return f"{x}"
    return f"{x} ({fmt_pct(x, n, digits)})"


def _scaled(v, scale: float) -> float | None:
    f = _finite(v)
    return None if f is None else f * scale


def fmt_ci(ci: tuple[float | None, float | None] | None, digits: int = 1, scale: float = 1.0) -> str:
    """``(18.7, 35.0)``; a limit that is not estimable prints ``NE``."""
    if ci is None:
        return f"({NE}, {NE})"
    lo, hi = ci
    f = [fmt_num(_scaled(v, scale), digits) for v in (lo, hi)]
    return f"({f[0]}, {f[1]})"


def fmt_estimate_ci(
    est: float | None, ci: tuple[float | None, float | None] | None, digits: int = 1, scale: float = 1.0
) -> str:
    """``3.7 (3.0, 5.3)``: an estimate with its interval; NE where not estimable."""
    e = fmt_num(_scaled(est, scale), digits)
    return f"{e} {fmt_ci(ci, digits, scale)}"


def fmt_median_range(values, digits: int = 1) -> str:
    """``9.0 (1.0-60.0)``: median and range of a numeric vector; NE when empty."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return NE
    return f"{fmt_num(float(np.median(v)), digits)} ({fmt_num(float(v.min()), digits)}-{fmt_num(float(v.max()), digits)})"
