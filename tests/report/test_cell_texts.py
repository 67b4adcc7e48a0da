"""Table cells as text, one vectorised missing-value test per column (issue 15, report render)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrial.report.render import LONG_TEXT, NUMERIC_CELL, _cell_texts, _text


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "float": [1.0, np.nan, 0.1 + 0.2, 1e20, -3.25],
        "int": [1, 2, 3, 4, 5],
        "nullable": pd.array([1, None, 3, 4, None], dtype="Int64"),
        "date": pd.to_datetime(["2019-01-07", None, "2019-02-01", "2020-12-31", "2018-08-20"]),
        "text": pd.array(["PR", None, "  Grade >=3", "a long free-text adverse event verbatim term", ""],
                         dtype="string"),
        "obj": ["12 (9.9%)", None, "NE", "0.54 (0.32, 0.91)", "\u2265 3"],
        "cat": pd.Categorical(["sCR", "CR", None, "VGPR", "PR"]),
        "bool": [True, False, True, True, False],
    })


def test_cell_texts_equal_per_cell_text():
    # oracle: the per-cell conversion the renderer used before (render._text on each cell)
    df = _frame()
    values = df.to_numpy(dtype=object)
    want = [[_text(values[r, c]) for r in range(len(df))] for c in range(df.shape[1])]
    assert _cell_texts(df) == want


def test_numeric_and_long_columns_as_the_pandas_string_test_decided():
    # oracle: the pandas string-accessor test the renderer used before (astype("string"),
    # strip, match NUMERIC_CELL; longest stripped cell > LONG_TEXT)
    import re

    df = _frame()
    texts = _cell_texts(df)
    numeric = re.compile(NUMERIC_CELL)
    for ci, col in enumerate(df.columns):
        cells = df[col].astype("string").fillna("").str.strip()
        old_text = not cells.str.match(NUMERIC_CELL).fillna(True).all()
        old_long = old_text and int(cells.str.len().max()) > LONG_TEXT
        stripped = [v.strip() for v in texts[ci]]
        new_text = not all(numeric.match(v) for v in stripped)
        new_long = new_text and max(map(len, stripped)) > LONG_TEXT
        assert (new_text, new_long) == (old_text, old_long), col
