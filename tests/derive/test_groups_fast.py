"""The seventh pass's group helpers (derive/_groups.py, issue 15) against the former code.

Oracles: the former ``row_lookup`` and ``first_valid`` (commit 9dd1338, frozen below),
``numpy.lexsort`` for ``lex_order`` and pandas' ``groupby(...).sum()`` for ``group_sum``; the
results must be exactly equal (bits included) on hypothesis cases (10 x more under
``--sweeps``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.derive._groups import (
    equality_keys,
    first_valid,
    group_sum,
    is_lex_sorted,
    lex_order,
    row_lookup,
)
from support.sweeps import examples


def _row_lookup_9dd1338(left, right):
    """row_lookup as of 9dd1338: a binary search over the sorted right keys."""
    nl = len(left[0])
    if len(right[0]) == 0:
        return np.full(nl, -1, dtype=np.int64)
    keys = equality_keys([np.concatenate([np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)])
                          for a, b in zip(left, right, strict=True)])
    lk, rk = keys[:nl], keys[nl:]
    order = np.argsort(rk, kind="stable")
    srt = rk[order]
    j = np.minimum(np.searchsorted(srt, lk, side="left"), len(srt) - 1)
    return np.where(srt[j] == lk, order[j], -1)


def _first_valid_9dd1338(valid, starts):
    """first_valid as of 9dd1338 (no shortcut for all / none valid)."""
    n = len(valid)
    pos = np.where(valid, np.arange(n), n)
    out = np.minimum.reduceat(pos, starts) if n else np.zeros(0, dtype=np.int64)
    return np.where(out == n, -1, out)


def _cols(draw, n, ncol, lo, hi):
    return [np.array(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)), dtype=np.int64)
            for _ in range(ncol)]


@st.composite
def lookups(draw):
    ncol = draw(st.integers(1, 3))
    hi = draw(st.sampled_from([3, 40, 10**6]))  # small ranges: the dense table; wide: the search
    nr, nl = draw(st.integers(0, 30)), draw(st.integers(0, 60))
    right = _cols(draw, nr, ncol, -2, hi)
    left = _cols(draw, nl, ncol, -3, hi + 1)
    if nr and nl and draw(st.booleans()):  # some left rows copied from the right (hits)
        k = draw(st.lists(st.integers(0, nr - 1), min_size=nl, max_size=nl))
        take = np.array(draw(st.lists(st.booleans(), min_size=nl, max_size=nl)))
        left = [np.where(take, r[k], c) for c, r in zip(left, right, strict=True)]
    return left, right


@settings(max_examples=examples(60, full=600), deadline=None)
@given(lookups())
def test_row_lookup_equals_the_former_binary_search(case):
    """Unique and duplicated right keys (the dense table is used only when exact), left keys
    outside the right range, empty sides."""
    left, right = case
    if len(left[0]) == 0 and len(right[0]) == 0:
        return
    np.testing.assert_array_equal(row_lookup(left, right), _row_lookup_9dd1338(left, right))


@settings(max_examples=examples(40, full=400), deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from([True, False, True]), min_size=n, max_size=n),
    st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True),
    st.sampled_from(["mixed", "all", "none"]))))
def test_first_valid_equals_the_former_reduceat(case):
    valid, starts, mode = case
    v = np.array(valid, dtype=bool)
    if mode != "mixed":
        v[:] = mode == "all"
    s = np.array(sorted(set(starts) | {0}), dtype=np.int64)
    np.testing.assert_array_equal(first_valid(v, s), _first_valid_9dd1338(v, s))


@settings(max_examples=examples(40, full=400), deadline=None)
@given(st.integers(0, 50).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(-3, 5), min_size=n, max_size=n), min_size=1, max_size=4),
    st.booleans(), st.booleans())))
def test_lex_order_and_is_lex_sorted_equal_numpy_lexsort(case):
    """Stable ties, already sorted input (the no-sort path) and keys too wide to pack."""
    cols, presort, wide = case
    cols = [np.array(c, dtype=np.int64) for c in cols]
    if wide:
        cols = [c * (2**40) for c in cols]  # > 63 bits when packed: numpy.lexsort
    if presort and len(cols[0]):
        o = np.lexsort(tuple(cols[::-1]))
        cols = [c[o] for c in cols]
    want = np.lexsort(tuple(cols[::-1]))
    np.testing.assert_array_equal(lex_order(cols), want)
    # sorted (ties in any order) exactly when the stable lexsort keeps the rows where they are
    assert is_lex_sorted(cols) == bool(np.array_equal(want, np.arange(len(want))))


@settings(max_examples=examples(40, full=400), deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.lists(st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.1, 1.3, 19.5, 1e-9, np.nan])),
             min_size=n, max_size=n),
    st.lists(st.integers(0, 6), min_size=n, max_size=n), st.booleans())))
def test_group_sum_equals_pandas_groupby_sum_bits(case):
    """Sorted ids without NaN (``reduceat``), unsorted ids or NaN (pandas' compensated sum)."""
    vals, ids, sort_ids = case
    v = np.array(vals, dtype=float)
    g = np.array(sorted(ids) if sort_ids else ids, dtype=np.int64)
    got = group_sum(v, g)
    want = pd.Series(v).groupby(g, sort=True).sum()
    pd.testing.assert_series_equal(got, want, check_exact=True, check_index_type=True)
