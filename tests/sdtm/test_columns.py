"""The checks' column helpers (sdtm/_columns.py, issue 15) against the pandas operations they
replace: ``Series.isin``, ``DataFrame.duplicated`` and ``drop_duplicates`` (the reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.sdtm._columns import distinct_rows, duplicated_ids, key_ids, text_index_in, text_isin

texts = st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "B", " a", "", "é", "001-1"])),
                 max_size=40)


@settings(max_examples=60, deadline=None)
@given(texts, st.lists(st.one_of(st.none(), st.sampled_from(["a", "B", "é", "x"])), max_size=5))
def test_text_isin_and_index_in_match_pandas(values, wanted):
    s = pd.Series(values, dtype="str")
    assert text_isin(s, wanted).tolist() == s.isin([w for w in wanted if w is not None]).tolist()
    distinct = list(dict.fromkeys(w for w in wanted if w is not None))
    pos = text_index_in(s, distinct)
    expect = [distinct.index(v) if isinstance(v, str) and v in distinct else -1 for v in values]
    assert pos.tolist() == expect


def test_text_isin_on_object_and_numbers():
    assert text_isin(pd.Series(["a", None, "b"], dtype=object), ["b"]).tolist() == [False, False, True]
    assert text_isin(pd.Series([1.0, np.nan]), ["1.0"]).tolist() == [True, False]
    assert text_isin(pd.Series([], dtype="str"), ["a"]).tolist() == []


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", None]), st.sampled_from([1.0, 2.0, np.nan]),
                          st.sampled_from(["x", None])), max_size=30))
def test_key_ids_and_duplicated_ids_match_dataframe_duplicated(rows):
    df = pd.DataFrame(rows, columns=["s", "f", "t"]).astype({"s": "str", "t": "str"})
    if df.empty:
        return
    ids = key_ids([df[c] for c in df.columns])
    for keep in ("first", False):
        assert duplicated_ids(ids, keep=keep).tolist() == df.duplicated(keep=keep).tolist()
    first, combo = distinct_rows([df[c] for c in df.columns])
    assert first.tolist() == np.flatnonzero(~df.duplicated().to_numpy()).tolist()
    pd.testing.assert_frame_equal(df.iloc[first[combo]].reset_index(drop=True), df.reset_index(drop=True))


def test_key_ids_compacts_instead_of_overflowing():
    # 5 columns of 20,000 distinct values: 20,000**5 > 2**62, so the ids cannot be packed (the
    # rows' value tuples are factorised instead, mmtrial._keys.equality_keys)
    n = 20_000
    rng = np.random.default_rng(1)
    cols = [pd.Series(rng.permutation(n)) for _ in range(5)]
    cols.append(cols[0].copy())
    ids = key_ids(cols)
    assert len(np.unique(ids)) == n
    both = key_ids([pd.concat([c, c], ignore_index=True) for c in cols])
    assert duplicated_ids(both).tolist() == [False] * n + [True] * n
