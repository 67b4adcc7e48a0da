"""Fast construction of SDTM-style columns from integer codes (no per-record Python work).

String columns are built as Arrow dictionary look-ups (``take``) and handed to pandas as its
default ``str`` dtype, so a 20-million-row lab domain costs a fraction of a second per column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

_STR = pd.StringDtype("pyarrow", na_value=np.nan)


def strcol(categories: Sequence[str] | np.ndarray, codes: np.ndarray,
           missing: np.ndarray | None = None) -> pd.Series:
    """A ``str`` column whose row ``i`` is ``categories[codes[i]]`` (NA where ``missing``)."""
    cats = pa.array(np.asarray(categories, dtype=object), type=pa.large_string())
    if missing is not None and not missing.any():
        missing = None
    idx = pa.array(np.asarray(codes, dtype=np.int64), mask=missing)
    return pd.Series(pd.array(cats.take(idx), dtype=_STR))


def constcol(value: str, n: int) -> pd.Series:
    """A ``str`` column of ``n`` copies of ``value``."""
    return strcol([value], np.zeros(n, dtype=np.int64))


def datecol(days: np.ndarray, missing: np.ndarray | None = None) -> pd.Series:
    """ISO 8601 dates (``YYYY-MM-DD``) from days since 1970-01-01 (NA where ``missing``)."""
    days = np.asarray(days, dtype=np.int64)
    if missing is None:
        missing = np.zeros(len(days), dtype=bool)
    if len(days) == 0 or missing.all():
        return strcol(["1970-01-01"], np.zeros(len(days), dtype=np.int64), np.ones(len(days), bool))
    lo = int(days[~missing].min())
    hi = int(days[~missing].max())
    labels = np.datetime_as_string(np.arange(lo, hi + 1).astype("datetime64[D]"))
    codes = np.where(missing, 0, days - lo)
    return strcol(labels, codes, missing)


def numcol(values: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """A float64 column (NaN where ``missing``)."""
    out = np.asarray(values, dtype=np.float64).copy()
    if missing is not None:
        out[missing] = np.nan
    return out


def explode_index(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-owner ``counts``: (owner index, position within owner) of each child row."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(owner)) - starts[owner]
    return owner, pos
