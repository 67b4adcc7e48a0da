"""Kaplan-Meier estimation with SAS and R parity: Greenwood variance, four CI transforms,
quantiles with the Brookmeyer-Crowley interval, landmark survival and number at risk.

A small numpy implementation (validation.md section 2; stack-notes.md): lifelines closes an
unreached median CI at the last event and pins pandas < 3, and statsmodels' ``SurvfuncRight``
has no R midpoint rule, so neither gives every number SAS and R give. The quantile search is
R survival's ``quantile.survfit`` (``findq``: the first time the curve is at or below 1 - q,
the midpoint of a flat segment that sits exactly at 1 - q), applied to the estimate and to
the pointwise lower and upper limits (Brookmeyer & Crowley 1982, Biometrics 38:29).

Profiles (``METHOD_PROFILES``): ``"sas"`` = PROC LIFETEST defaults (log-log transform; a
quantile whose curve ends flat at exactly 1 - q is NE; survival beyond the last observation
is NE). ``"r"`` = survival::survfit defaults (log transform; midpoint of the final flat
segment up to the last observed time; survival carried beyond the last observation, as
``summary(fit, times, extend = TRUE)``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd

from mmtrial.stats import _dist

CiTransform = Literal["log-log", "log", "plain", "arcsine", "logit"]
MedianRule = Literal["sas", "r"]
CI_TRANSFORMS: tuple[str, ...] = get_args(CiTransform)

#: SAS PROC LIFETEST CONFTYPE= names and R survfit conf.type names, for footnotes.
TRANSFORM_LABELS: dict[str, str] = {
    "log-log": "log-log (SAS CONFTYPE=LOGLOG; R conf.type='log-log')",
    "log": "log (SAS CONFTYPE=LOG; R conf.type='log')",
    "plain": "linear (SAS CONFTYPE=LINEAR; R conf.type='plain')",
    "arcsine": "arcsine-square root (SAS CONFTYPE=ASINSQRT; R conf.type='arcsin')",
    "logit": "logit (SAS CONFTYPE=LOGIT; R conf.type='logit')",
}

_TOL = math.sqrt(np.finfo(float).eps)  # R quantile.survfit tolerance


@dataclass(frozen=True)
class KMOptions:
    """Method choices for :func:`kaplan_meier` (copied into the result and its footnotes).

    Options
    -------
    ci_transform : "log-log" (default; SAS PROC LIFETEST), "log" (R survfit), "plain"
        (tern), "arcsine", "logit".
    level : confidence level, default 0.95.
    median_rule : "sas" (default): a quantile whose curve ends flat exactly at 1 - q is NE;
        "r": the midpoint of that flat segment and the last observed time.
    beyond_last : "ne" (default; SAS): survival after the last observed time is not
        estimable; "carry": the last value is carried forward (R ``extend = TRUE``).
    variance : "greenwood" (the only variance; SAS and R default for Kaplan-Meier).
    """

    ci_transform: CiTransform = "log-log"
    level: float = 0.95
    median_rule: MedianRule = "sas"
    beyond_last: Literal["ne", "carry"] = "ne"
    variance: Literal["greenwood"] = "greenwood"
    profile: str = "custom"

    def __post_init__(self) -> None:
        if self.ci_transform not in CI_TRANSFORMS:
            raise ValueError(
                f"KMOptions: parameter 'ci_transform' must be one of {', '.join(CI_TRANSFORMS)}; "
                f"got {self.ci_transform!r}"
            )
        if self.median_rule not in get_args(MedianRule):
            raise ValueError(
                f"KMOptions: parameter 'median_rule' must be 'sas' or 'r'; got {self.median_rule!r}"
            )
        if self.beyond_last not in ("ne", "carry"):
            raise ValueError(
                f"KMOptions: parameter 'beyond_last' must be 'ne' or 'carry'; got {self.beyond_last!r}"
            )
        if not (0.0 < self.level < 1.0):
            raise ValueError(f"KMOptions: parameter 'level' must be in (0, 1); got {self.level!r}")
        if self.variance != "greenwood":
            raise ValueError(f"KMOptions: parameter 'variance' must be 'greenwood'; got {self.variance!r}")

    def describe(self) -> str:
        """Footnote text naming every choice."""
        rule = (
            "NE when the curve does not fall below the quantile (SAS)"
            if self.median_rule == "sas"
            else "midpoint of a flat segment at the quantile (R)"
        )
        return (
            f"Kaplan-Meier estimates; {self.level * 100:g}% CIs by Greenwood variance with the "
            f"{TRANSFORM_LABELS[self.ci_transform]} transform; median and quantile CIs by "
            f"Brookmeyer-Crowley; quantile rule: {rule}; NE = not estimable."
        )


#: The SAS and R profiles select the whole set of choices (ARCHITECTURE.md "Method choices").
METHOD_PROFILES: dict[str, KMOptions] = {
    "sas": KMOptions("log-log", 0.95, "sas", "ne", profile="sas"),
    "r": KMOptions("log", 0.95, "r", "carry", profile="r"),
}


def km_options(profile: str = "sas", **overrides) -> KMOptions:
    """The options of a profile (``"sas"`` or ``"r"``), with any field overridden."""
    if profile not in METHOD_PROFILES:
        raise ValueError(f"km_options: parameter 'profile' must be 'sas' or 'r'; got {profile!r}")
    base = asdict(METHOD_PROFILES[profile])
    base.update(overrides)
    if overrides:
        base["profile"] = f"{profile} (modified: {', '.join(sorted(overrides))})"
    return KMOptions(**base)


def compute_km_ci(
    surv: np.ndarray, sigma: np.ndarray, transform: str, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise CI limits for S(t) from the Greenwood SE of log S(t) (``sigma``).

    Rule
    ----
    R survival ``survfit_confint`` (identical to SAS PROC LIFETEST's CONFTYPE formulas,
    Klein & Moeschberger 2003 section 4.3): plain S +/- z sigma S; log S exp(+/- z sigma);
    log-log exp(-exp(log(-log S) -/+ z sigma / log S)); arcsine sin^2(asin(sqrt S) -/+
    z sigma sqrt(S/(1-S))/2); logit on log(S/(1-S)) with SE sigma/(1-S). Limits are clipped to
    [0, 1]; NaN (not estimable) where the transform is undefined (S = 0; S = 1 for log-log and
    logit), as R returns NA.
    """
    z = float(_dist.norm_ppf(1 - (1 - level) / 2))
    s = np.asarray(surv, dtype=float)
    se = np.asarray(sigma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if transform == "plain":
            se2 = z * se * s
            lo = np.maximum(s - se2, 0.0)
            hi = np.minimum(s + se2, 1.0)
            bad = ~np.isfinite(se2)
            lo[bad] = np.nan
            hi[bad] = np.nan
        elif transform == "log":
            xx = np.where(s == 0, np.nan, s)
            lo = np.exp(np.log(xx) - z * se)
            hi = np.minimum(np.exp(np.log(xx) + z * se), 1.0)
        elif transform == "log-log":
            xx = np.where((s == 0) | (s == 1), np.nan, s)
            se2 = z * se / np.log(xx)
            lo = np.exp(-np.exp(np.log(-np.log(xx)) - se2))
            hi = np.exp(-np.exp(np.log(-np.log(xx)) + se2))
        elif transform == "arcsine":
            xx = np.where(s == 0, np.nan, s)
            se2 = 0.5 * z * se * np.sqrt(xx / (1 - xx))
            a = np.arcsin(np.sqrt(xx))
            lo = np.sin(np.maximum(0.0, a - se2)) ** 2
            hi = np.sin(np.minimum(np.pi / 2, a + se2)) ** 2
            one = s == 1
            lo[one & (se == 0)] = 1.0
            hi[one & (se == 0)] = 1.0
        elif transform == "logit":
            xx = np.where((s == 0) | (s == 1), np.nan, s)
            se2 = z * se / (1 - xx)
            lg = np.log(xx / (1 - xx))
            lo = 1 - 1 / (1 + np.exp(lg - se2))
            hi = 1 - 1 / (1 + np.exp(lg + se2))
        else:  # pragma: no cover - KMOptions checks the name
            raise ValueError(f"compute_km_ci: unknown transform {transform!r}")
    lo = np.where(np.isfinite(lo), lo, np.nan)
    hi = np.where(np.isfinite(hi), hi, np.nan)
    return lo, hi


@dataclass(frozen=True)
class _QuantileCurve:
    """A cumulative curve prepared once for R's ``findq`` search (see :func:`_findq`)."""

    xs: np.ndarray  # times of the kept points, ordered by ys
    ys: np.ndarray  # kept, non-NaN values of 1 - curve, ascending
    xmax: float
    y_last: float


def _prepare_curve(x: np.ndarray, y: np.ndarray) -> _QuantileCurve:
    """Drop repeated values keeping the first time at each level (R ``duplicated``), then NaN.

    ``x`` starts with the origin and ``y`` with 0. A survival curve and its limits are
    (nearly always) monotone, so the dedup is a linear pass; otherwise a sort, as R ``approx``
    orders its input.
    """
    nan = np.isnan(y)
    keep = np.ones(y.size, dtype=bool)
    keep[1:] = y[1:] != y[:-1]
    # R duplicated(): only the first NaN anywhere is kept
    if nan.any():
        keep &= ~nan
        keep[int(np.argmax(nan))] = True
    vals = y[keep]
    ok = ~np.isnan(vals)
    ys, xs = vals[ok], x[keep][ok]
    if ys.size > 1 and np.any(np.diff(ys) < 0):
        # non-monotone limits: R duplicated() drops any repeat; approx() sorts by value
        _, first = np.unique(y, return_index=True, equal_nan=True)
        k = np.sort(first)
        vals = y[k]
        ok = ~np.isnan(vals)
        order = np.argsort(vals[ok], kind="stable")
        ys, xs = vals[ok][order], x[k][ok][order]
    return _QuantileCurve(xs, ys, float(x[-1]), float(vals[-1]) if vals.size else float("nan"))


def _findq(c: _QuantileCurve, p: float, rule: str, origin: float = 0.0) -> float | None:
    """R ``findq``: the time where the cumulative curve (1 - S) reaches ``p``.

    Flat segment exactly at ``p``: midpoint of its start and the next jump (R and SAS); a
    final flat segment at ``p``: midpoint with the last observed time (R) or NE (SAS).
    """
    if p == 0:
        return origin
    ys, xs = c.ys, c.xs
    if ys.size == 0:
        return None

    def first_at_or_above(level: float) -> float | None:
        # approx(y, x, level, method="constant", f=1, rule=1): the x of the smallest y >= level
        if level < ys[0] or level > ys[-1]:
            return None
        return float(xs[int(np.searchsorted(ys, level, side="left"))])

    x1 = first_at_or_above(p - _TOL)
    x2 = first_at_or_above(p + _TOL)
    if x1 is not None and x2 is not None:
        return (x1 + x2) / 2
    if x1 is not None and not np.isnan(c.y_last) and abs(p - c.y_last) < _TOL:
        return (x1 + c.xmax) / 2 if rule == "r" else None
    return None


def _none(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


@dataclass(frozen=True, repr=False)
class KaplanMeier:
    """A fitted Kaplan-Meier curve (from :func:`kaplan_meier`).

    Arrays are over the distinct observed times (events or censorings), ascending:
    ``time``, ``n_risk``, ``n_event``, ``n_censor``, ``surv``, ``std_err`` (Greenwood SE of
    log S, as R's ``std.err``), ``lower``, ``upper`` (NaN where not estimable).
    Anything not estimable is returned as ``None`` by the query methods.
    """

    time: np.ndarray
    n_risk: np.ndarray
    n_event: np.ndarray
    n_censor: np.ndarray
    surv: np.ndarray
    std_err: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    options: KMOptions
    _cache: dict = field(default_factory=dict, compare=False)

    # -- counts ---------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.n_risk[0]) if self.n_risk.size else 0

    @property
    def events(self) -> int:
        return int(self.n_event.sum())

    @property
    def censored(self) -> int:
        return int(self.n_censor.sum())

    # -- quantiles ------------------------------------------------------------------------
    def quantile(self, q: float) -> tuple[float | None, float | None, float | None]:
        """The time by which a fraction ``q`` has had the event: (estimate, low, high).

        ``quantile(0.5)`` is the median. Brookmeyer-Crowley interval: the times where the
        pointwise lower and upper limits reach 1 - q. ``None`` where not reached (NE); never
        the last event time.
        """
        if not (0.0 <= q <= 1.0):
            raise ValueError(f"quantile: parameter 'q' must be in [0, 1]; got {q!r}")
        key = ("q", float(q))
        if key in self._cache:
            return self._cache[key]
        rule = self.options.median_rule
        out = tuple(_findq(c, q, rule) for c in self._curves())
        self._cache[key] = out
        return out  # type: ignore[return-value]

    def _curves(self) -> tuple[_QuantileCurve, ...]:
        if "curves" not in self._cache:
            x = np.concatenate([[0.0], self.time])
            self._cache["curves"] = tuple(
                _prepare_curve(x, np.concatenate([[0.0], 1.0 - c])) for c in (self.surv, self.lower, self.upper)
            )
        return self._cache["curves"]

    @property
    def median(self) -> float | None:
        return self.quantile(0.5)[0]

    @property
    def median_ci(self) -> tuple[float | None, float | None]:
        _, lo, hi = self.quantile(0.5)
        return lo, hi

    # -- survival at times ----------------------------------------------------------------
    def _index(self, t: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.time, t, side="right") - 1

    def survival_table(self, times) -> pd.DataFrame:
        """S(t), CI and number at risk at each of ``times`` (vectorised; NaN = not estimable).

        Number at risk at t counts subjects with time >= t (R ``summary.survfit``; SAS).
        """
        t = np.atleast_1d(np.asarray(times, dtype=float))
        if self.time.size == 0:  # no subjects: nothing is estimable, nobody is at risk
            nan = np.full(t.shape, np.nan)
            return pd.DataFrame({"time": t, "n_risk": np.zeros(t.shape, dtype=int), "surv": nan,
                                 "lower": nan, "upper": nan})
        i = self._index(t)
        before = i < 0
        j = np.clip(i, 0, max(self.time.size - 1, 0))
        s = np.where(before, 1.0, self.surv[j]) if self.time.size else np.ones_like(t)
        lo = np.where(before, 1.0, self.lower[j]) if self.time.size else np.ones_like(t)
        hi = np.where(before, 1.0, self.upper[j]) if self.time.size else np.ones_like(t)
        if self.time.size:
            # before the first event S = 1 exactly: R gives (1, 1) for log/plain, NA for log-log
            first_event = self.time[self.n_event > 0][0] if self.events else np.inf
            pre = t < first_event
            s = np.where(pre, 1.0, s)
            lo = np.where(pre, 1.0, lo)
            hi = np.where(pre, 1.0, hi)
            beyond = t > self.time[-1]
            if self.options.beyond_last == "ne":
                s = np.where(beyond, np.nan, s)
                lo = np.where(beyond, np.nan, lo)
                hi = np.where(beyond, np.nan, hi)
        k = np.searchsorted(self.time, t, side="left")
        risk = np.where(k < self.time.size, self.n_risk[np.minimum(k, max(self.time.size - 1, 0))], 0)
        return pd.DataFrame({"time": t, "n_risk": risk.astype(int), "surv": s, "lower": lo, "upper": hi})

    def survival_at(self, t: float) -> tuple[float | None, float | None, float | None]:
        """(S(t), low, high) at one time; ``None`` where not estimable."""
        row = self.survival_table([t]).iloc[0]
        return _none(row["surv"]), _none(row["lower"]), _none(row["upper"])

    def number_at_risk(self, times) -> np.ndarray:
        """Subjects still at risk (time >= t) at each of ``times``."""
        return self.survival_table(times)["n_risk"].to_numpy()

    # -- tables and description -----------------------------------------------------------
    @property
    def event_table(self) -> pd.DataFrame:
        """One row per distinct time: at risk, events, censored, S, SE, CI (traceability)."""
        return pd.DataFrame(
            {
                "time": self.time,
                "n_risk": self.n_risk,
                "n_event": self.n_event,
                "n_censor": self.n_censor,
                "surv": self.surv,
                "std_err": self.std_err,
                "lower": self.lower,
                "upper": self.upper,
            }
        )

    @property
    def methods(self) -> dict:
        """The method choices in force (for ``a.methods`` and footnotes)."""
        d = asdict(self.options)
        d["quantile_ci"] = "Brookmeyer-Crowley"
        d["ties"] = "events before censorings at the same time (SAS and R)"
        d["description"] = self.options.describe()
        return d

    def summary(self, quantiles=(0.25, 0.5, 0.75), times=()) -> dict:
        """Counts, quantiles with CIs and landmark survival (None = not estimable)."""
        out: dict = {"n": self.n, "events": self.events, "censored": self.censored}
        out["quantiles"] = {f"{q:g}": list(self.quantile(q)) for q in quantiles}
        tab = self.survival_table(list(times)) if len(times) else None
        out["landmarks"] = (
            []
            if tab is None
            else [
                {
                    "time": float(r.time),
                    "n_risk": int(r.n_risk),
                    "surv": _none(r.surv),
                    "ci": [_none(r.lower), _none(r.upper)],
                }
                for r in tab.itertuples()
            ]
        )
        return out

    def __repr__(self) -> str:
        med = self.median
        return (
            f"KaplanMeier(n={self.n}, events={self.events}, censored={self.censored}, "
            f"median={'NE' if med is None else f'{med:g}'}, ci_transform={self.options.ci_transform!r}, "
            f"median_rule={self.options.median_rule!r}, level={self.options.level})"
        )


#: The bincount path is taken when the largest time is below n + 4,096 (11 years of days
#: whatever n): its count array (two counts per day) then stays within about twice the size of
#: the times themselves, no more than the sort path's keys.
_DAY_SPAN_FACTOR = 1
_DAY_SPAN_EXTRA = 4096


def _day_counts(t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Events and subjects per distinct time when every time is a whole number (days).

    One ``bincount`` over ``2 * time + event`` (a hash-free group-by: the count array is
    indexed by the day); ``None`` when a time is not a whole number or the largest time
    exceeds ``_DAY_SPAN_FACTOR * n + _DAY_SPAN_EXTRA``. ``t`` is validated (finite, >= 0).
    """
    n = t.size
    head = t[:16]
    if n == 0 or not np.array_equal(head, np.floor(head)):
        return None  # cheap early exit for fractional times (months)
    tmax = float(t.max())
    if tmax >= _DAY_SPAN_FACTOR * n + _DAY_SPAN_EXTRA:
        return None
    key = t.astype(np.intp)
    if not np.array_equal(key, t):
        return None
    key <<= 1
    np.bitwise_or(key, e, out=key)
    c = np.bincount(key, minlength=2 * (int(tmax) + 1)).reshape(-1, 2)
    total = c.sum(axis=1)
    at = np.flatnonzero(total)
    return at.astype(float), c[at, 1], total[at]


def _sorted_counts(t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events and subjects per distinct time by one sort of 64-bit keys.

    A non-negative float's IEEE 754 bit pattern, read as an unsigned integer, orders as the
    value does; shifted left by one (which drops the sign bit of -0.0, so -0.0 and 0.0 share a
    key) it takes the event flag in its lowest bit. One ``np.sort`` of the keys (no index
    permutation) gives the distinct times and, per time, the subjects (run lengths) and
    events (keys with the low bit set). ``t`` is validated (finite, >= 0).
    """
    n = t.size
    key = t.view(np.uint64) << np.uint64(1)
    np.bitwise_or(key, e, out=key)
    key.sort()
    tk = key >> np.uint64(1)
    starts = np.flatnonzero(np.concatenate(([True], tk[1:] != tk[:-1])))
    times = tk[starts].view(np.float64)
    d = np.add.reduceat((key & np.uint64(1)).view(np.int64), starts)
    total = np.diff(np.append(starts, n))
    return times, d, total


def count_by_time(t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct times, ascending, with their events and subjects (event or censored).

    Parameters
    ----------
    t : float64 array of validated times (finite, >= 0).
    e : bool array, True = event.

    Returns
    -------
    times (float64), events (int64), subjects (int64), one entry per distinct time.

    Notes
    -----
    Whole-number times with a span of at most a few times n: :func:`_day_counts` (a
    ``bincount``, no sort); otherwise :func:`_sorted_counts` (one sort of n keys). The result
    is exactly that of a stable sort of the times (the first release's algorithm, kept as the
    oracle of tests/stats/test_survival_counts.py), including a time of -0.0: the zero time
    is the one met first in input order.
    """
    if t.size == 0:
        return np.array([], dtype=float), np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    out = _day_counts(t, e)
    times, d, total = out if out is not None else _sorted_counts(t, e)
    if times.size and times[0] == 0 and np.signbit(t).any():
        times = times.copy()
        times[0] = t[int(np.argmax(t == 0))]  # -0.0 or 0.0, whichever comes first
    return times, d, total


def _item(v):
    return v.item() if hasattr(v, "item") else v


def _validate(time, event) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time, dtype=float).ravel()
    e_raw = np.asarray(event).ravel()
    if t.shape != e_raw.shape:
        raise ValueError(
            f"kaplan_meier: 'time' and 'event' must have the same length; got {t.size} and {e_raw.size}"
        )
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"kaplan_meier: 'time' must be finite and >= 0; {int(bad.sum())} value(s) are not, "
            f"first at position {i}: {_item(np.asarray(time).ravel()[i])!r}"
        )
    if e_raw.dtype == bool:
        e = e_raw
    else:
        ef = np.asarray(e_raw, dtype=float)
        badv = ~np.isin(ef, (0.0, 1.0))
        if badv.any():
            i = int(np.flatnonzero(badv)[0])
            raise ValueError(
                f"kaplan_meier: 'event' must be 0/1 or boolean (1 = event); "
                f"{int(badv.sum())} value(s) are not, first at position {i}: {_item(e_raw[i])!r}"
            )
        e = ef == 1.0
    return t, e


def kaplan_meier(
    time,
    event,
    ci_transform: CiTransform | None = None,
    level: float | None = None,
    median_rule: MedianRule | None = None,
    *,
    profile: str = "sas",
    options: KMOptions | None = None,
) -> KaplanMeier:
    """Fit a Kaplan-Meier curve with Greenwood CIs.

    Parameters
    ----------
    time : array-like of float, >= 0
        Follow-up time (any unit; the result is in the same unit).
    event : array-like of 0/1 or bool
        1 (True) = event, 0 = censored.
    ci_transform, level, median_rule
        Override the profile's choice (see :class:`KMOptions`).
    profile : "sas" (default) or "r"
        Selects the whole set of choices (:data:`METHOD_PROFILES`).
    options : KMOptions, optional
        A full option set (takes precedence over ``profile``).

    Returns
    -------
    KaplanMeier

    Rule
    ----
    Kaplan & Meier 1958: S(t) = prod over event times t_i <= t of (1 - d_i / n_i); at a tied
    time, events precede censorings (the censored subject is at risk at that time; SAS and R).
    Greenwood 1926: var(log S(t)) = sum d_i / (n_i (n_i - d_i)). Quantiles and their CIs as
    R ``quantile.survfit`` (see module docstring), with the SAS/R rule for a final flat segment.

    Algorithm
    ---------
    1. Events and subjects per distinct time (:func:`count_by_time`: a ``bincount`` over
       integer times, otherwise one sort of the times with the event flag in the lowest bit);
       every later step works on the distinct-time table only.
    2. At risk = n minus the count with a smaller time; S = cumprod(1 - d/n).
    3. Greenwood cumulative sum; CI limits by the transform (:func:`compute_km_ci`).

    Examples
    --------
    CAMIS toy data (Comp/r-sas_survival.qmd): the curve sits at 0.5 after t = 87.

    >>> t = [54, 75, 77, 84, 87, 92, 103, 105, 112, 118]
    >>> e = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    >>> kaplan_meier(t, e).median is None
    True
    >>> kaplan_meier(t, e, median_rule="r").median
    102.5
    >>> kaplan_meier(t, e).quantile(0.25)
    (77.0, 54.0, None)
    """
    if options is None:
        over = {
            k: v
            for k, v in (("ci_transform", ci_transform), ("level", level), ("median_rule", median_rule))
            if v is not None
        }
        options = km_options(profile, **over) if over else km_options(profile)
    t, e = _validate(time, event)
    n = t.size
    if n == 0:
        empty = np.array([], dtype=float)
        return KaplanMeier(empty, empty.astype(int), empty.astype(int), empty.astype(int), empty, empty, empty, empty, options)
    times, d, total = count_by_time(t, e)
    n_risk = n - (np.cumsum(total) - total)  # subjects with a time >= this one
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - d / n_risk)
        g = np.where(d > 0, d / (n_risk * (n_risk - d).astype(float)), 0.0)
    sigma = np.sqrt(np.cumsum(g))
    lo, hi = compute_km_ci(surv, sigma, options.ci_transform, options.level)
    return KaplanMeier(times, n_risk, d, total - d, surv, sigma, lo, hi, options)
