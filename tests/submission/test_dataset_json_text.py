"""Dataset-JSON rows built from each column's distinct texts (issue 15, fifth pass) are the json
module's own text.

Oracle: ``json.dumps`` (Python's json module) of the rows as Python values -- the values
:func:`column_values` gives, the conversion the writer used before. Cases are the ones where a
shortcut could differ: ``0.0`` / ``-0.0`` (equal, different texts), subnormal and large floats,
non-ASCII, quotes, backslashes and control characters, Arrow / object / categorical text, integers
beyond 2**53, missing values in every kind, and values JSON cannot hold.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.submission.datasetjson import column_json, column_values, rows_json
from mmtrial.submission.spec import Column, VariableSpec
from support.sweeps import examples


def _columns(kinds: dict[str, str]) -> list[Column]:
    return [Column(spec=VariableSpec(name=n, label=n), name=n, data_type=k, length=8) for n, k in kinds.items()]


def _oracle(frame: pd.DataFrame, columns: list[Column]) -> str:
    """``json.dumps`` of the rows as tuples of Python values (the former writer), each row followed
    by ``", "`` as :func:`rows_json` gives them."""
    values = [column_values(frame[c.name], c.data_type) for c in columns]
    rows = list(zip(*values, strict=True))
    return "".join(json.dumps([r], allow_nan=False)[1:-1] + ", " for r in rows)


def _frame() -> tuple[pd.DataFrame, list[Column]]:
    frame = pd.DataFrame({
        "T": pd.Series(["a", None, "\u00e9\"q\\\n\t\x01", "a", "", "\U0001f600"], dtype="str"),
        "O": pd.Series(["x", None, np.nan, "x", "y", "z"], dtype=object),
        "C": pd.Categorical(["Y", "N", None, "Y", "Y", "N"], categories=["N", "Y", "unused"]),
        "F": [0.0, -0.0, np.nan, 5e-324, 1e16, 0.1 + 0.2],
        "I": [2.0**53 + 2, -3.0, np.nan, 0.5, 1.5, -0.4],  # rounds half to even, as np.round
        "N": pd.array([1, None, 3, 4, 5, 2**62], dtype="Int64"),
        "D": pd.to_datetime(["2019-01-07", None, "1960-01-01", "2019-01-07", "0999-12-31", "2020-02-29"],
                            format="ISO8601", errors="coerce"),
        "BIG": [1e300, -1e300, 2.0**70, np.nan, 1.0, 2.0],
    })
    kinds = {"T": "text", "O": "text", "C": "text", "F": "float", "I": "integer", "N": "integer",
             "D": "date", "BIG": "integer"}
    return frame, _columns(kinds)


def test_rows_are_json_dumps_of_the_values():
    frame, columns = _frame()
    assert rows_json(frame, columns) == _oracle(frame, columns)
    for j in range(len(columns)):  # each column alone (first and last at once) and in pairs
        assert rows_json(frame, columns[j:j + 1]) == _oracle(frame, columns[j:j + 1])
        assert rows_json(frame, columns[j:j + 2]) == _oracle(frame, columns[j:j + 2])
    assert rows_json(frame.iloc[:0], columns) == "" and rows_json(frame, []) == ""


def test_zero_and_negative_zero_keep_their_texts():
    codes_texts = column_json(pd.Series([0.0, -0.0, 0.0]), "float")
    texts, codes = codes_texts
    assert [texts[c] for c in codes] == ["0.0", "-0.0", "0.0"]


def test_text_column_of_mixed_objects_is_written_value_by_value():
    s = pd.Series(["1", 1, 1.0, True, None], dtype=object)  # equal under hashing, not in JSON
    texts, codes = column_json(s, "text")
    assert [texts[c] for c in codes] == ['"1"', "1", "1.0", "true", "null"]


@pytest.mark.parametrize(("s", "kind"), [
    (pd.Series([1.0, np.inf]), "float"), (pd.Series(["x", "1"], dtype=object), "float"),
    (pd.Series([1.0, np.inf]), "integer"), (pd.Series(["x", 1.0], dtype=object), "integer"),
    (pd.Series(["x", "2020-01-01"], dtype=object), "date")])
@pytest.mark.filterwarnings("ignore:Could not infer format")
def test_values_json_cannot_hold_raise_as_json_dumps_does(s, kind):
    with pytest.raises((ValueError, OverflowError)):
        json.dumps(column_values(s, kind), allow_nan=False)
    with pytest.raises((ValueError, OverflowError)):
        column_json(s, kind)


_floats = st.floats(allow_nan=True, allow_infinity=False)
_texts = st.one_of(st.none(), st.text(max_size=6))


@settings(max_examples=examples(12, 300), deadline=None)
@given(st.lists(st.tuples(_texts, _floats, _floats, st.integers(-80_000, 80_000)), min_size=1, max_size=30),
       st.sampled_from(["str", "object", "category"]))
def test_rows_equal_json_dumps_property(rows, text_dtype):
    """12 examples by default (suite time), 300 under ``--sweeps``."""
    t, f, i, d = zip(*rows, strict=True)
    frame = pd.DataFrame({
        "T": pd.Series(list(t), dtype=text_dtype),
        "F": list(f),
        "I": list(i),
        "D": pd.Timestamp("2000-01-01") + pd.to_timedelta(list(d), unit="D"),
    })
    columns = _columns({"T": "text", "F": "float", "I": "integer", "D": "date"})
    assert rows_json(frame, columns) == _oracle(frame, columns)
