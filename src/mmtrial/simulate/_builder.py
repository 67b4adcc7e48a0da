"""Assemble a domain from blocks of rows given as arrays (codes for strings, days for dates)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmtrial.simulate._frames import datecol, strcol


class FrameBuilder:
    """Collect blocks of rows, then build one DataFrame.

    ``add(n, COL=value, ...)``: a string scalar repeats; ``(categories, codes)`` or
    ``(categories, codes, missing)`` gives strings; a float array is numeric (NaN missing);
    for columns named in ``dates`` an array of days since 1970-01-01 (NaN missing).
    Columns not given in a block are missing there.
    """

    def __init__(self, columns: list[str], *, numeric: tuple[str, ...] = (),
                 dates: tuple[str, ...] = ()) -> None:
        self.columns = columns
        self.numeric = set(numeric)
        self.dates = set(dates)
        self.blocks: list[tuple[int, dict[str, Any]]] = []

    def add(self, n: int, **cols: Any) -> None:
        unknown = set(cols) - set(self.columns)
        if unknown:
            raise KeyError(f"FrameBuilder.add: unknown columns {sorted(unknown)}")
        if n:
            self.blocks.append((int(n), cols))

    def build(self) -> pd.DataFrame:
        total = sum(n for n, _ in self.blocks)
        out: dict[str, Any] = {}
        for c in self.columns:
            if c in self.numeric or c in self.dates:
                parts = []
                for n, cols in self.blocks:
                    v = cols.get(c)
                    parts.append(np.full(n, np.nan) if v is None else
                                 np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)))
                arr = np.concatenate(parts) if parts else np.zeros(0)
                if c in self.dates:
                    miss = np.isnan(arr)
                    out[c] = datecol(np.where(miss, 0, arr).astype(np.int64), miss)
                else:
                    out[c] = arr
                continue
            pieces: list[np.ndarray] = []
            offsets: dict[int, int] = {}  # the same category array (e.g. USUBJID) is added once
            size = 0
            codes, miss = [], []
            for n, cols in self.blocks:
                v = cols.get(c)
                if v is None:
                    codes.append(np.zeros(n, np.int64))
                    miss.append(np.ones(n, bool))
                    continue
                if isinstance(v, str):
                    v = (np.array([v], dtype=object), np.zeros(n, np.int64))
                cat_arr = v[0]
                key = id(cat_arr)
                if key not in offsets:
                    arr = np.asarray(cat_arr, dtype=object)
                    offsets[key] = size
                    pieces.append(arr)
                    size += len(arr)
                bcodes = np.broadcast_to(np.asarray(v[1], dtype=np.int64), (n,))
                bmiss = (np.broadcast_to(np.asarray(v[2], dtype=bool), (n,)) if len(v) > 2
                         else np.zeros(n, bool))
                codes.append(bcodes + offsets[key])
                miss.append(bmiss | (bcodes < 0))
            cc = np.concatenate(codes) if codes else np.zeros(0, np.int64)
            mm = np.concatenate(miss) if miss else np.zeros(0, bool)
            cats = np.concatenate(pieces) if pieces else np.array([""], dtype=object)
            out[c] = strcol(cats, np.where(mm, 0, cc), mm)
        df = pd.DataFrame(out)
        assert len(df) == total
        return df
