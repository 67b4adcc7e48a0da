"""Group-by on integer codes: the building blocks of the prior-therapy derivations (issue 15).

Text keys (USUBJID, CMGRPID, drug names) are factorised once into int64 codes whose order is
the text's sort order (``pandas.factorize(sort=True)``), rows are ordered with ``numpy.lexsort``
(stable, so ties keep their input order exactly as pandas' multi-key ``sort_values`` does) and
per-group values come from ``ufunc.reduceat`` over the group starts. Sorting, grouping and
merging int64 arrays avoids moving Arrow-backed strings through every step (measured: pyarrow
``take``/``factorize`` and string construction were most of the derivations' time at 20,000
subjects, docs/design.md). The results are the same values as the pandas group-bys they replace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmtrial._keys import equality_keys, pack_keys  # also the derivations' key helpers

NAT = np.iinfo(np.int64).min  # NaT as int64


def codes_of(values: pd.Series | np.ndarray) -> tuple[np.ndarray, pd.api.extensions.ExtensionArray | np.ndarray]:
    """int64 codes in the values' sort order and the sorted distinct values; missing values get
    the code ``len(uniques)`` (after every value, as ``sort_values(na_position="last")``)."""
    c, u = pd.factorize(values, sort=True)
    c = np.asarray(c, dtype=np.int64)
    c[c < 0] = len(u)
    return c, u


def decode(codes: np.ndarray, uniques: pd.api.extensions.ExtensionArray | np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The values of :func:`codes_of` codes (the missing-value code gives a missing value)."""
    codes = np.asarray(codes, dtype=np.int64)
    return pd.array(uniques).take(np.where(codes >= len(uniques), -1, codes), allow_fill=True)


def group_starts(*sorted_codes: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal keys in arrays already sorted by those keys."""
    n = len(sorted_codes[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for c in sorted_codes:
        new[1:] |= c[1:] != c[:-1]
    return np.flatnonzero(new)


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array by sort + compare (``numpy.unique`` without its
    hash table, which was measured 10 x slower on large int64 keys)."""
    s = np.sort(values)
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def group_ids(starts: np.ndarray, n: int) -> np.ndarray:
    """Group number of every row (0 .. len(starts) - 1) from the group starts."""
    g = np.zeros(n, dtype=np.int64)
    if len(starts) > 1:
        g[starts[1:]] = 1
    return np.cumsum(g)


def first_valid(valid: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Row of the first valid value of each group (-1 when the group has none); the group starts
    themselves when every value is valid, -1 everywhere when none is (issue 15: no pass)."""
    n = len(valid)
    if n and valid.all():
        return np.asarray(starts, dtype=np.int64).copy()
    if n and not valid.any():
        return np.full(len(starts), -1, dtype=np.int64)
    pos = np.where(valid, np.arange(n), n)
    out = np.minimum.reduceat(pos, starts) if n else np.zeros(0, dtype=np.int64)
    return np.where(out == n, -1, out)


def yes_flags(mask: np.ndarray) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """"Y"/"" per ``mask``, the column pandas makes of ``np.where(mask, "Y", "")`` (``str`` on an
    Arrow ``large_string`` array), taken by Arrow from the two texts: no conversion of one
    Python/numpy text per record (issue 15: ADAE's nine flags were a fifth of its time; ADEX's
    cycle flags)."""
    import pyarrow as pa

    dtype = pd.Series(["Y"]).dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return np.where(mask, "Y", "")
    codes = pa.array(np.asarray(mask, dtype=bool).view(np.int8))
    return pd.arrays.ArrowStringArray(pa.array(["", "Y"], pa.large_string()).take(codes), dtype=dtype)


def group_sum(values: np.ndarray, ids: np.ndarray) -> pd.Series:
    """``pd.Series(values).groupby(ids, sort=True).sum()`` (float ``values``, integer ``ids``), the
    same bits: when ``ids`` are sorted and ``values`` have no NaN, pandas sums each group with
    ``numpy.add.reduceat`` over the group starts, and so does this without pandas' factorising of
    ``ids`` (issue 15); otherwise (pandas' compensated sum) pandas itself."""
    values = np.asarray(values)
    ids = np.asarray(ids)
    if (len(values) and values.dtype.kind == "f" and ids.dtype.kind in "iu"
            and bool(np.all(ids[1:] >= ids[:-1])) and not np.isnan(values).any()):
        st = group_starts(ids)
        return pd.Series(np.add.reduceat(values, st), index=pd.Index(ids[st]))
    return pd.Series(values).groupby(ids, sort=True).sum()


def last_valid(valid: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Row of the last valid value of each group (-1 when the group has none)."""
    n = len(valid)
    pos = np.where(valid, np.arange(n), -1)
    return np.maximum.reduceat(pos, starts) if n else np.zeros(0, dtype=np.int64)


def take_or_na(values: pd.Series, rows: np.ndarray) -> pd.Series:
    """``values`` at ``rows`` (positions; -1 gives a missing value), keeping the dtype."""
    arr = values.array.take(rows, allow_fill=True)
    return pd.Series(arr)


def join_runs(values: np.ndarray, starts: np.ndarray, sep: str) -> np.ndarray:
    """``sep``-joined text of each run (``values``: object array of text, in run order)."""
    if len(values) == 0:
        return np.zeros(0, dtype=object)
    v = values.astype(object)
    parts = (sep + v).astype(object)
    parts[starts] = v[starts]  # no separator before the first value of a run
    return np.add.reduceat(parts, starts)


def join_runs_text(values: Any, starts: np.ndarray, sep: str) -> pd.Series:
    """:func:`join_runs` in Arrow (``binary_join`` over list offsets; no Python string per row):
    a ``string`` Series of the ``sep``-joined text of each run. ``values``: text without missing
    values (a pyarrow array, a pandas text array or Series, or an object array), in run order;
    ``starts``: the runs' start positions (the first is 0)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        arr = values.cast(pa.large_string())
    else:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    offsets = pa.array(np.r_[starts, len(arr)].astype(np.int64) if len(arr) else np.zeros(1, dtype=np.int64))
    joined = pc.binary_join(pa.LargeListArray.from_arrays(offsets, arr), pa.scalar(sep, pa.large_string()))
    return pd.Series(pd.arrays.ArrowStringArray(joined))


def datetimes_i8(s: pd.Series) -> np.ndarray:
    """Dates as int64 (NaT = int64 min), in the Series' own unit."""
    return s.to_numpy().view(np.int64)


def shared_codes(*values: Any) -> list[np.ndarray]:
    """int64 codes of several text (or other) columns in one code space: equal values get equal
    codes across the columns; missing values share the code ``len(uniques)`` (pandas' merge
    matches missing keys with missing keys, and so do these codes)."""
    arrs = [pd.Series(v).reset_index(drop=True) if not isinstance(v, pd.Series) else v.reset_index(drop=True)
            for v in values]
    c, u = pd.factorize(pd.concat(arrs, ignore_index=True) if len(arrs) > 1 else arrs[0])
    c = np.asarray(c, dtype=np.int64)
    c[c < 0] = len(u)
    cuts = np.cumsum([len(a) for a in arrs])[:-1]
    return list(np.split(c, cuts))


def same_as_prev(*cols: Any) -> np.ndarray:
    """True where a row's values in every column equal the previous row's (missing equals
    missing; the first row is False)."""
    n = len(cols[0])
    out = np.zeros(n, dtype=bool)
    if n:
        out[1:] = True
        for col in cols:
            c = np.asarray(pd.factorize(col)[0], dtype=np.int64)
            out[1:] &= c[1:] == c[:-1]
    return out


def row_lookup(left: Sequence[np.ndarray], right: Sequence[np.ndarray]) -> np.ndarray:
    """Row of ``right`` holding each row's key tuple of ``left`` (-1 when absent): a left merge on
    integer key columns that are unique on the right, as positions (``right`` need not be
    sorted). ``left`` and ``right``: the same number of integer code columns, in one code space
    per column (:func:`shared_codes` for text).

    When the right keys span a small range (at most twice the rows of both sides) and are
    unique, the rows come from a dense table indexed by the packed key (issue 15: a gather
    instead of a binary search per left row); else by a binary search over the sorted right keys
    (of equal right keys, the first row)."""
    nl = len(left[0])
    if len(right[0]) == 0:
        return np.full(nl, -1, dtype=np.int64)
    keys = equality_keys([np.concatenate([np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)])
                          for a, b in zip(left, right, strict=True)])
    lk, rk = keys[:nl], keys[nl:]
    lo, hi = int(rk.min()), int(rk.max())
    width = hi - lo + 1
    if width <= 2 * len(keys) + 1024:
        table = np.full(width, -1, dtype=np.int64)
        table[rk - lo] = np.arange(len(rk), dtype=np.int64)
        if np.count_nonzero(table >= 0) == len(rk):  # unique right keys: the table is exact
            pos = lk - lo
            inside = (pos >= 0) & (pos < width)
            return np.where(inside, table[np.where(inside, pos, 0)], -1)
    order = np.argsort(rk, kind="stable")
    srt = rk[order]
    j = np.minimum(np.searchsorted(srt, lk, side="left"), len(srt) - 1)
    return np.where(srt[j] == lk, order[j], -1)


def lex_order(cols: Sequence[np.ndarray]) -> np.ndarray:
    """``numpy.lexsort(cols[::-1])`` (``cols``: integer columns, the first primary; stable): a
    stable sort of one packed int64 key (:func:`pack_keys`), nothing when the rows are already in
    order (issue 15: one pass instead of one indirect sort per column)."""
    cols = [np.asarray(c) for c in cols]
    if is_lex_sorted(cols):
        return np.arange(len(cols[0]), dtype=np.int64)
    packed = pack_keys(cols)
    if packed is None:
        return np.lexsort(tuple(cols[::-1]))
    return np.argsort(packed, kind="stable")


def is_lex_sorted(cols: Sequence[np.ndarray]) -> bool:
    """True when the rows are in the lexicographic order of ``cols`` (the first primary; equal
    rows in any order), by comparing neighbours (boolean temporaries only)."""
    if len(cols[0]) < 2:
        return True
    ok = cols[-1][1:] >= cols[-1][:-1]
    for c in cols[-2::-1]:
        ok = (c[1:] > c[:-1]) | ((c[1:] == c[:-1]) & ok)
    return bool(ok.all())
