"""Small frame helpers that behave the same on empty and on full input (issue 11).

pandas special-cases empty objects in ways a derivation does not expect: ``Series.map`` with an
empty Series as the mapping casts it to float64 (``TypeError`` for dates; float NaN for text),
and ``groupby(...).max()`` of an empty frame loses the column's dtype. These helpers keep the
values' dtype whatever the number of rows, so one code path serves 0, 1 or N subjects.
"""

from __future__ import annotations

import pandas as pd


def lookup(keys: pd.Series, values: pd.Series) -> pd.Series:
    """``values[key]`` for each key (missing where absent), indexed like ``keys``.

    Same result as ``keys.map(values)`` for a mapping with unique keys, but keeps the dtype of
    ``values`` when ``values`` is empty or no key matches (dates stay ``datetime64``, text stays
    text). Duplicate keys in ``values`` keep their first value.

    Examples
    --------
    >>> keys = pd.Series(["a", "b"])
    >>> lookup(keys, pd.Series([], dtype="datetime64[ns]")).dtype
    dtype('<M8[ns]')
    >>> lookup(keys, pd.Series({"b": 2.0})).tolist()
    [nan, 2.0]
    """
    if values.index.has_duplicates:
        values = values[~values.index.duplicated()]
    if len(values) and len(keys):
        # the index of ``values`` may hold text as ``str`` or ``string``: compare as object
        values = pd.Series(values.to_numpy(), index=values.index.astype(object), dtype=values.dtype)
    got = values.reindex(pd.Index(keys.astype(object).to_numpy(), dtype=object))
    return pd.Series(got.to_numpy(), index=keys.index, dtype=got.dtype)
