"""Column helpers of the checks: text through Arrow compute, rows as integer keys (issue 15).

The checks of ``sdtm/check.py`` run over every row of every domain (millions of lab rows at
20,000 subjects). pandas' ``Series.isin`` on its Arrow-backed ``str`` dtype builds one Python
Arrow scalar per value of the *set* (measured: 20,000 subjects' USUBJIDs x 10 domains took 3 s of
the study's read + check), and a transformation of a column (strip, parse, normalise) repeats the
same work for every repeated value. These helpers hand the column to Arrow as is (no copy for the
``str`` dtype), and turn rows into one int64 key each (the columns' factorised codes) so that
duplicates and distinct combinations are found on integers.

Within :func:`shared_codes` (``load_study`` runs every check inside it) the codes of a text
column are computed once and reused by every check that reads the column (duplicates, units,
lab ranges, unknown subjects, deaths, dates), as long as the column is not replaced; the
typing step hands over the codes it already has from a Parquet file's dictionary.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmtrial._keys import equality_keys


def arrow_text(s: pd.Series) -> Any:
    """The column as an Arrow text array or chunked array (zero-copy for pandas' Arrow-backed
    ``str`` dtype; other dtypes are converted with ``astype("str")`` first, as the checks read
    them)."""
    import pyarrow as pa

    if not (pd.api.types.is_string_dtype(s) and s.dtype != object):
        s = s.astype("str")
    arr = pa.array(s.array, from_pandas=True) if not hasattr(s.array, "__arrow_array__") else s.array.__arrow_array__()
    if pa.types.is_string(arr.type):
        return arr
    if not (pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type)):
        arr = arr.cast(pa.large_string())
    return arr


@dataclass(frozen=True)
class TextCodes:
    """A text column as its distinct values and one code per row.

    ``dictionary``: the distinct values (an Arrow text array without missing values, in no
    particular order); ``codes``: per row, the position of its value in ``dictionary``
    (-1 = missing), in the smallest integer type that holds them.
    """

    dictionary: Any
    codes: np.ndarray


#: id(Arrow array of a column) -> (weak reference to that array, its codes); active only
#: inside :func:`shared_codes`
_SHARED: dict[int, tuple[weakref.ref, TextCodes]] | None = None
#: sorted ids of the Arrow arrays of some columns -> (weak references, :func:`distinct_rows`)
_SHARED_ROWS: dict[tuple[int, ...], tuple[tuple[weakref.ref, ...], tuple[np.ndarray, np.ndarray]]] = {}


@contextmanager
def shared_codes() -> Iterator[None]:
    """Within this block, :func:`text_codes` computes a text column's codes once and reuses
    them while the column's values are the same Arrow array (a column that is replaced gets
    new codes: the entry is found by the array's identity, checked through a weak reference).
    The codes are dropped when the outermost block ends."""
    global _SHARED
    outer = _SHARED is None
    if outer:
        _SHARED = {}
    try:
        yield
    finally:
        if outer:
            _SHARED = None
            _SHARED_ROWS.clear()


def _column_array(s: pd.Series) -> Any:
    """The Arrow array holding an Arrow-backed text column (the same object while the column
    is unchanged), else None."""
    if isinstance(s.dtype, pd.StringDtype) and hasattr(s.array, "__arrow_array__"):
        arr = s.array.__arrow_array__()
        return arr if hasattr(arr, "num_chunks") else None
    return None


def is_arrow_text(s: pd.Series) -> bool:
    """An Arrow-backed text column (pandas' ``str`` dtype): :func:`text_codes` reuses its codes."""
    return _column_array(s) is not None


def small_codes(codes: np.ndarray, n_values: int) -> np.ndarray:
    """``codes`` (-1 = missing) in the smallest signed integer type holding ``n_values``."""
    return codes.astype(np.min_scalar_type(-max(n_values, 1)), copy=False)


def encode_text(arr: Any) -> TextCodes:
    """Arrow text (array or chunked array) to :class:`TextCodes` (Arrow's hash kernel)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(arr)
    if isinstance(enc, pa.ChunkedArray):  # one dictionary for every chunk
        if enc.num_chunks == 0:
            return TextCodes(pa.array([], type=arr.type), np.zeros(0, dtype=np.int8))
        enc = enc.unify_dictionaries()
        dictionary = enc.chunk(0).dictionary
        indices = pa.chunked_array([c.indices for c in enc.chunks], type=enc.type.index_type)
    else:
        dictionary, indices = enc.dictionary, enc.indices
    codes = np.asarray(pc.fill_null(indices, -1).to_numpy(zero_copy_only=False))
    return TextCodes(dictionary, small_codes(codes, len(dictionary)))


def text_codes(s: pd.Series) -> TextCodes:
    """The column's :class:`TextCodes` (shared within :func:`shared_codes`)."""
    arr = _column_array(s)
    if _SHARED is not None and arr is not None:
        hit = _SHARED.get(id(arr))
        if hit is not None and hit[0]() is arr:
            return hit[1]
    out = encode_text(arrow_text(s) if arr is None else arr)
    if _SHARED is not None and arr is not None:
        _SHARED[id(arr)] = (weakref.ref(arr), out)
    return out


def register_codes(s: pd.Series, codes: TextCodes) -> None:
    """Within :func:`shared_codes`, remember ``codes`` as the codes of the column ``s`` (the
    caller guarantees they describe its values)."""
    arr = _column_array(s)
    if _SHARED is not None and arr is not None:
        _SHARED[id(arr)] = (weakref.ref(arr), codes)


def _value_array(values: Iterable[Any], typ: Any) -> Any:
    """The texts of ``values`` as an Arrow array of type ``typ`` (missing values dropped),
    without a Python object per value when ``values`` is Arrow-backed."""
    import pyarrow as pa

    if hasattr(values, "__arrow_array__") and pd.api.types.is_string_dtype(getattr(values, "dtype", None)):
        arr = values.__arrow_array__()  # type: ignore[union-attr]
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        return arr.drop_null().cast(typ)
    return pa.array([v for v in values if isinstance(v, str)], type=typ)


def text_index_in(s: pd.Series, values: Iterable[Any]) -> np.ndarray:
    """Position in ``values`` of each row's text (int64; -1 where absent or missing).

    ``values``: distinct texts (the first position is returned for a repeated one); missing
    values in it never match. The lookup is done on the column's distinct values
    (:func:`text_codes`), then taken back to the rows.
    """
    import pyarrow.compute as pc

    if len(s) == 0:
        return np.zeros(0, dtype=np.int64)
    tc = text_codes(s)
    vals = _value_array(values, tc.dictionary.type)
    pos = np.asarray(pc.fill_null(pc.index_in(tc.dictionary, value_set=vals), -1).to_numpy(zero_copy_only=False),
                     dtype=np.int64)
    return np.append(pos, -1)[tc.codes]


def text_lookup(s: pd.Series, keys: Iterable[Any], values: np.ndarray, default: Any) -> np.ndarray:
    """Per row, ``values[i]`` where the row's text is ``keys[i]`` (distinct texts), ``default``
    where it is none of them or missing: ``values[text_index_in(s, keys)]`` with ``default``
    at -1, looked up on the column's distinct values and gathered to the rows once (issue 15)."""
    import pyarrow.compute as pc

    per_key = np.append(values, default)  # position -1: the default
    if len(s) == 0:
        return per_key[:0]
    tc = text_codes(s)
    vals = _value_array(keys, tc.dictionary.type)
    pos = np.asarray(pc.fill_null(pc.index_in(tc.dictionary, value_set=vals), -1).to_numpy(zero_copy_only=False),
                     dtype=np.int64)
    return np.append(per_key[pos], per_key[-1:])[tc.codes]


def text_isin(s: pd.Series, values: Iterable[Any]) -> np.ndarray:
    """``s.isin(values)`` for text: a bool array (missing values never match)."""
    found, codes = _distinct_isin(s, values)
    return np.append(found, False)[codes] if found.any() else np.zeros(len(codes), dtype=bool)


def text_not_in(s: pd.Series, values: Iterable[Any]) -> np.ndarray:
    """``s.notna() & ~s.isin(values)`` for text: a bool array (a missing value is False)."""
    found, codes = _distinct_isin(s, values)
    return np.append(~found, False)[codes] if not found.all() else np.zeros(len(codes), dtype=bool)


def _distinct_isin(s: pd.Series, values: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Whether each distinct text of ``s`` is one of ``values``, and each row's code (-1 =
    missing, the extra last entry): tested on the distinct values and taken back to the rows
    as one bool per row, not an int64 position (issue 15)."""
    import pyarrow.compute as pc

    if len(s) == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int8)
    tc = text_codes(s)
    found = pc.is_in(tc.dictionary, value_set=_value_array(values, tc.dictionary.type))
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool), tc.codes


def key_ids(cols: list[pd.Series]) -> np.ndarray:
    """One int64 per row, equal exactly where the rows are equal in every column (missing equals
    missing, as in ``DataFrame.duplicated``): :func:`mmtrial._keys.equality_keys` of the columns'
    factorised codes (missing values get a code of their own)."""
    if cols and all(_column_array(c) is not None for c in cols):
        # text columns: their codes (-1 = missing) packed with the known widths, in place
        codes = [text_codes(c) for c in cols]
        widths = [len(tc.dictionary) + 1 for tc in codes]
        if float(np.prod(widths, dtype=float)) < 2.0**62:
            # sum of (code + 1) x the widths after it: the codes packed first, the constant sum of
            # the "+ 1"s added once at the end (two passes per column, not three; issue 15)
            packed = codes[0].codes.astype(np.int64)
            offset = 1
            for tc, width in zip(codes[1:], widths[1:], strict=True):
                packed *= width
                packed += tc.codes
                offset = offset * width + 1
            packed += offset
            return packed
    return equality_keys([_row_codes(col) for col in cols])


def _row_codes(col: pd.Series) -> np.ndarray:
    """Integer codes equal exactly where the values are (missing has a code of its own)."""
    if _column_array(col) is not None:
        return text_codes(col).codes
    return np.asarray(pd.factorize(col, use_na_sentinel=False)[0], dtype=np.int64)


def duplicated_both(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`duplicated_ids` with ``keep="first"`` and with ``keep=False``, from one sort."""
    first = np.zeros(len(ids), dtype=bool)
    every = np.zeros(len(ids), dtype=bool)
    if len(ids) < 2:
        return first, every
    srt = np.sort(ids)  # values alone: cheaper than the stable argsort below (issue 15)
    if not (srt[1:] == srt[:-1]).any():
        return first, every  # no key repeats (the usual case): no argsort needed
    order = np.argsort(ids, kind="stable")
    srt = ids[order]
    same = srt[1:] == srt[:-1]
    first[order[1:][same]] = True
    every[order[1:][same]] = True
    every[order[:-1][same]] = True
    return first, every


def duplicated_ids(ids: np.ndarray, keep: str | bool = "first") -> np.ndarray:
    """``pandas.Series.duplicated`` of int64 row keys by a stable sort (``keep="first"``: every
    row whose key an earlier row has; ``keep=False``: every row whose key another row has)."""
    out = np.zeros(len(ids), dtype=bool)
    if len(ids) < 2:
        return out
    order = np.argsort(ids, kind="stable")
    srt = ids[order]
    same = srt[1:] == srt[:-1]
    out[order[1:][same]] = True  # not the first of its run (the stable sort keeps row order)
    if keep is False:
        out[order[:-1][same]] = True
    return out


def distinct_rows(cols: list[pd.Series]) -> tuple[np.ndarray, np.ndarray]:
    """The first row of each distinct combination of the columns' values (in order of first
    appearance) and, for every row, the number of its combination (missing equals missing).

    Within :func:`shared_codes`, the result for the same Arrow text columns (in any order: it
    does not depend on the order) is computed once (unit conversion and lab ranges; issue 15).
    """
    arrays = [_column_array(c) for c in cols]
    key = None
    if _SHARED is not None and cols and all(a is not None for a in arrays):
        key = tuple(sorted(id(a) for a in arrays))
        hit = _SHARED_ROWS.get(key)
        if hit is not None and sorted(id(r()) for r in hit[0]) == list(key):
            return hit[1]
    out = _distinct_rows(cols)
    if key is not None:
        _SHARED_ROWS[key] = (tuple(weakref.ref(a) for a in arrays), out)
    return out


def _distinct_rows(cols: list[pd.Series]) -> tuple[np.ndarray, np.ndarray]:
    ids = key_ids(cols)
    n = len(ids)
    if n and ids.min() >= 0 and ids.max() < 2 * n + 65536:
        # few possible keys (codes of a few columns packed): a table indexed by the key, no hashing
        first_of = np.full(int(ids.max()) + 1, n, dtype=np.int64)
        first_of[ids[::-1]] = np.arange(n - 1, -1, -1)  # the last write is the first row
        present = np.flatnonzero(first_of < n)
        present = present[np.argsort(first_of[present], kind="stable")]  # order of first appearance
        number = np.empty(len(first_of), dtype=np.int64)
        number[present] = np.arange(len(present))
        return first_of[present], number[ids]
    codes, uniques = pd.factorize(ids)
    codes = np.asarray(codes, dtype=np.int64)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write is the first row
    return first, codes
