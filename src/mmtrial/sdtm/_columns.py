"""Column helpers of the checks: text through Arrow compute, rows as integer keys (issue 15).

The checks of ``sdtm/check.py`` run over every row of every domain (millions of lab rows at
20,000 subjects). pandas' ``Series.isin`` on its Arrow-backed ``str`` dtype builds one Python
Arrow scalar per value of the *set* (measured: 20,000 subjects' USUBJIDs x 10 domains took 3 s of
the study's read + check), and a transformation of a column (strip, parse, normalise) repeats the
same work for every repeated value. These helpers hand the column to Arrow as is (no copy for the
``str`` dtype), and turn rows into one int64 key each (the columns' factorised codes) so that
duplicates and distinct combinations are found on integers.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def text_index_in(s: pd.Series, values: Iterable[Any]) -> np.ndarray:
    """Position in ``values`` of each row's text (int64; -1 where absent or missing).

    ``values``: distinct texts (the first position is returned for a repeated one); missing
    values in it never match.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = arrow_text(s)
    vals = pa.array([v for v in values if isinstance(v, str)], type=arr.type)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    pos = pc.index_in(arr, value_set=vals)
    return np.asarray(pc.fill_null(pos, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def text_isin(s: pd.Series, values: Iterable[Any]) -> np.ndarray:
    """``s.isin(values)`` for text: a bool array (missing values never match)."""
    return text_index_in(s, values) >= 0


def key_ids(cols: list[pd.Series]) -> np.ndarray:
    """One int64 per row, equal exactly where the rows are equal in every column (missing equals
    missing, as in ``DataFrame.duplicated``): :func:`mmtrial._keys.equality_keys` of the columns'
    factorised codes (missing values get a code of their own)."""
    return equality_keys([np.asarray(pd.factorize(col, use_na_sentinel=False)[0], dtype=np.int64) for col in cols])


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
    appearance) and, for every row, the number of its combination (missing equals missing)."""
    codes, uniques = pd.factorize(key_ids(cols))
    codes = np.asarray(codes, dtype=np.int64)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write is the first row
    return first, codes
