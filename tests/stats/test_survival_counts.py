"""Kaplan-Meier's count-by-time paths (issue 15) against the first release's algorithm.

``kaplan_meier`` counts events and subjects per distinct time by a ``bincount`` (whole-number
times) or one sort of 64-bit keys (any other times) instead of a stable argsort of all rows.
The oracle is a frozen copy of the first release's code (``_reference_km`` below: stable
argsort, ``np.add.reduceat``, the same Greenwood and CI arithmetic); every array of the fit must
be bit-identical to it, -0.0 times included. R survival parity itself is tested in
tests/stats/test_survival.py.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.stats import kaplan_meier
from mmtrial.stats.survival import _day_counts, _sorted_counts, compute_km_ci, count_by_time
from support.sweeps import examples


def _reference_km(t: np.ndarray, e: np.ndarray, transform: str, level: float) -> dict[str, np.ndarray]:
    """Frozen copy of kaplan_meier's estimation at commit 0f2dabf (the oracle)."""
    n = t.size
    order = np.argsort(t, kind="stable")
    ts = t[order]
    es = e[order]
    starts = np.flatnonzero(np.concatenate(([True], ts[1:] != ts[:-1])))
    times = ts[starts]
    d = np.add.reduceat(es.astype(np.int64), starts)
    total = np.diff(np.append(starts, n))
    n_risk = n - starts
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - d / n_risk)
        g = np.where(d > 0, d / (n_risk * (n_risk - d).astype(float)), 0.0)
    sigma = np.sqrt(np.cumsum(g))
    lo, hi = compute_km_ci(surv, sigma, transform, level)
    return {"time": times, "n_risk": n_risk, "n_event": d, "n_censor": total - d, "surv": surv,
            "std_err": sigma, "lower": lo, "upper": hi}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical: same dtype, shape and bytes (so -0.0 != 0.0 and NaN payloads count)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# times of every kind the paths distinguish: small whole numbers (bincount), whole numbers far
# above n (sort), months (days / 30.4375), any non-negative float (subnormal to 1e300), zeros
# of both signs
_day = st.integers(0, 40).map(float)
_far = st.integers(0, 10**9).map(float)
_month = st.integers(0, 3000).map(lambda d: d / 30.4375)
_any = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)
_zero = st.sampled_from([0.0, -0.0])
times_of_one_kind = st.sampled_from([_day, _far, _month, _any]).flatmap(
    lambda kind: st.lists(st.one_of(kind, _zero) if kind is not _far else kind, min_size=1, max_size=80)
)
mixed_times = st.lists(st.one_of(_day, _far, _month, _any, _zero), min_size=1, max_size=80)
data = st.one_of(times_of_one_kind, mixed_times).flatmap(
    lambda t: st.tuples(st.just(t), st.lists(st.booleans(), min_size=len(t), max_size=len(t)))
)


@settings(max_examples=examples(50, 400), deadline=None, database=None)
@given(data=data, transform=st.sampled_from(["log-log", "log", "plain", "arcsine", "logit"]),
       as_int=st.booleans())
def test_property_fit_is_bit_identical_to_the_first_release(data, transform, as_int):
    t = np.asarray(data[0], dtype=float)
    e = np.asarray(data[1], dtype=bool)
    km = kaplan_meier(t, e.astype(int) if as_int else e, ci_transform=transform)
    ref = _reference_km(t, e, transform, 0.95)
    for name, want in ref.items():
        assert _same(getattr(km, name), want), name


@settings(max_examples=examples(40, 300), deadline=None, database=None)
@given(data=data)
def test_property_each_counting_path_matches_a_stable_sort(data):
    # both paths directly (kaplan_meier picks one), against the stable argsort's counts
    t = np.asarray(data[0], dtype=float)
    e = np.asarray(data[1], dtype=bool)
    ref = _reference_km(t, e, "log", 0.95)
    want = (ref["time"], ref["n_event"], ref["n_event"] + ref["n_censor"])
    got = count_by_time(t, e)
    assert all(_same(g, w) for g, w in zip(got, want, strict=True))
    sorted_ = _sorted_counts(t, e)
    assert all(_same(g, w) for g, w in zip(sorted_[1:], want[1:], strict=True))
    # the sorted path maps -0.0 to 0.0 (count_by_time restores the first zero): compare values
    assert np.array_equal(sorted_[0], want[0])
    days = _day_counts(t, e)
    if days is not None:
        assert np.array_equal(t, np.floor(t))
        assert all(_same(g, w) for g, w in zip(days[1:], want[1:], strict=True))
        assert np.array_equal(days[0], want[0])


def test_paths_taken_for_days_months_and_far_times():
    # which path serves which input (the speed of bench_km.py relies on it)
    rng = np.random.default_rng(5)
    days = np.ceil(rng.exponential(250, 5000))
    e = rng.random(5000) < 0.7
    assert _day_counts(days, e) is not None
    assert _day_counts(days / 30.4375, e) is None  # months: sorted keys
    assert _day_counts(days + 1e6, e) is None  # largest time far above n: sorted keys
    fit = kaplan_meier(days, e)
    ref = _reference_km(days, e, "log-log", 0.95)
    assert all(_same(getattr(fit, k), v) for k, v in ref.items())


def test_negative_zero_time_is_the_first_zero_in_input_order():
    # first release: the stable sort keeps -0.0 and 0.0 in input order; the first one names the time
    for t in ([-0.0, 0.0, 3.0], [0.0, -0.0, 3.0], [-0.0, 2.5], [5.0, -0.0, 0.0]):
        km = kaplan_meier(t, [1] * len(t))
        ref = _reference_km(np.asarray(t), np.ones(len(t), bool), "log-log", 0.95)
        assert _same(km.time, ref["time"]) and _same(km.n_event, ref["n_event"])
