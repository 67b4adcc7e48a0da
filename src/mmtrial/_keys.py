"""Integer row keys from integer code columns, shared by sdtm/ checks and derive/ (issue 15).

:func:`pack_keys` packs columns into one order-preserving int64 when their ranges fit;
:func:`equality_keys` gives one int64 per row that is equal exactly where the rows are, packing
when it fits and factorising the rows' value tuples otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def pack_keys(cols: Sequence[np.ndarray]) -> np.ndarray | None:
    """One int64 per row whose order is the lexicographic order of ``cols`` (first = primary),
    or None when a column is not integer-valued or the ranges do not fit in 63 bits (each column
    shifted to start at 0, then mixed radix)."""
    if len(cols[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    parts: list[tuple[np.ndarray, int]] = []
    total = 1
    for c in cols:
        if c.dtype.kind == "f":
            if not (np.isfinite(c).all() and (c == np.floor(c)).all()) or np.abs(c).max() >= 2.0**53:
                return None
            c = c.astype(np.int64)
        elif c.dtype.kind not in "iu":
            return None
        lo, hi = int(c.min()), int(c.max())
        width = hi - lo + 1
        total *= width
        if total >= 2**62:
            return None
        parts.append((c.astype(np.int64) - lo, width))
    packed = np.zeros(len(cols[0]), dtype=np.int64)
    for c, width in parts:
        packed = packed * width + c
    return packed


def equality_keys(cols: Sequence[np.ndarray]) -> np.ndarray:
    """One int64 per row, equal exactly where the rows' values in every column are equal:
    :func:`pack_keys` when it fits, else the codes of the rows' value tuples."""
    packed = pack_keys(cols)
    if packed is not None:
        return packed
    return np.asarray(pd.MultiIndex.from_arrays(list(cols)).factorize()[0], dtype=np.int64)
