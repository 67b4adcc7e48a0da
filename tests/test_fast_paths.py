"""The issue-15 fast paths give what the pandas code they replaced gave (demo CPU, fourth pass).

Each fast path is checked against the earlier expression, kept here verbatim as the oracle:
one group-by instead of one boolean filter per group (``tables.safety.subjects_by``), the RTF
cell texts as lists (``submission.tlf._cell_texts``), the Dataset-JSON text and float columns
in one conversion (``submission.datasetjson.column_values``), numbers as text in numpy
(``submission.spec._as_text``). The whole-output identity (every
file of the demo analysis byte for byte) is checked by ``benchmarks/bench_identical.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.submission.datasetjson import column_values
from mmtrial.submission.tlf import _cell_texts
from mmtrial.tables.safety import subjects_by
from support.sweeps import examples

KEYS = st.sampled_from(["A", "B", "C", None])


@settings(max_examples=examples(8, 100), deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["S1", "S2", "S3"]), KEYS, KEYS, st.booleans()), max_size=30))
def test_subjects_by_equals_one_filter_per_group(rows):
    """8 random frames by default, 100 under --sweeps (tests/support/sweeps.py)."""
    df = pd.DataFrame(rows, columns=["USUBJID", "SOC", "PT", "HI"]).astype(
        {"USUBJID": object, "SOC": "str", "PT": "str"})
    mask = df["HI"].to_numpy(dtype=bool)
    for by in ("SOC", ["SOC", "PT"]):
        for m in (None, mask):
            got = subjects_by(df, by, m)
            d = df if m is None else df.loc[m]
            keys = d[by].drop_duplicates().dropna()  # groups with a missing key: none
            want = {}
            for key in (keys.tolist() if isinstance(by, str) else map(tuple, keys.to_numpy().tolist())):
                sel = d["SOC"] == key if isinstance(by, str) else (d["SOC"] == key[0]) & (d["PT"] == key[1])
                want[key] = d.loc[sel, "USUBJID"].tolist()  # the former per-group filter
            assert {k: v.tolist() for k, v in got.items()} == want


def _old_cell_texts(data: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """tlf.table_rtf before issue 15's fourth pass (verbatim)."""
    text = data.astype(object).where(data.notna(), "").astype(str)
    if text.empty:
        text = pd.DataFrame({c: ["(no rows)" if i == 0 else ""] for i, c in enumerate(text.columns)})
    return [str(c) for c in text.columns], text.to_numpy().tolist()


def test_cell_texts_equal_the_pandas_conversion():
    data = pd.DataFrame({
        "Parameter": pd.array(["a", None, "µg/L {x}"], dtype="str"),
        "n": [1.0, np.nan, 2.5],
        "k": pd.array([3, None, 4], dtype="Int64"),
        "when": pd.to_datetime(["2020-01-02", None, "2021-03-04"]),
        "obj": ["x", None, 7],
        3: [True, False, True],
    })
    assert _cell_texts(data) == _old_cell_texts(data)
    assert _cell_texts(data.iloc[:0]) == _old_cell_texts(data.iloc[:0])


def _old_column_values(s: pd.Series, kind: str) -> list:
    """datasetjson.column_values before issue 15's fourth pass (verbatim, text and float)."""
    missing = s.isna().to_numpy()
    if kind == "float":
        vals = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float).astype(object)
    else:
        vals = s.astype(object).to_numpy()
    vals = np.array(vals, dtype=object)
    vals[missing] = None
    return vals.tolist()


def test_dataset_json_columns_equal_the_former_conversion():
    cases = [
        (pd.Series(["a", None, "é"], dtype="str"), "text"),
        (pd.Series(["a", None, np.nan], dtype=object), "text"),
        (pd.Series([1.5, np.nan, -0.0, 1e300]), "float"),
        (pd.Series([1, 2], dtype="int64"), "float"),
    ]
    for s, kind in cases:
        got, want = column_values(s, kind), _old_column_values(s, kind)
        assert got == want and [type(v) for v in got] == [type(v) for v in want]


def _old_numbers_as_text(s: pd.Series) -> pd.Series:
    """submission.spec._as_text's branch for numbers before issue 15's fourth pass (verbatim)."""
    num = pd.to_numeric(s, errors="coerce").astype(float)
    whole = np.isfinite(num) & (num == np.round(num))
    text = num.astype(object).map(repr)
    text[whole] = num[whole].astype("int64").astype(str)
    return text.where(num.notna(), None).astype(object)


def test_numbers_as_text_equal_the_former_conversion():
    from mmtrial.submission.spec import _as_text

    cases = [pd.Series([1.0, 2.5, np.nan, -0.0, np.inf, -np.inf, 3.0, 1e15, 0.1 + 0.2],
                       index=[5, 3, 9, 1, 2, 4, 6, 7, 8], name="ATOXGR"),
             pd.Series([np.nan] * 3), pd.Series([], dtype=float), pd.Series([1, 2, 3]),
             pd.Series([1.5, None], dtype="Float64"), pd.Series([3, None], dtype="Int64")]
    for s in cases:
        got, want = _as_text(s), _old_numbers_as_text(s)
        if isinstance(got.dtype, pd.CategoricalDtype):  # the distinct texts as codes (fifth pass)
            assert set(got.cat.categories) == set(want.dropna())
            got = got.astype(object)
        assert got.equals(want) and got.index.equals(want.index) and got.name == want.name
        assert [type(v) for v in got] == [type(v) for v in want]  # missing stays NaN, not None
