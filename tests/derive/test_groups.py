"""Integer-code group-by helpers (derive/_groups.py, issue 15) against pandas' own group-by.

Reference: pandas ``sort_values`` / ``groupby(...).first()/.last()/.agg(";".join)`` on the same
frames (the operations the helpers replace in derive/lines.py and derive/refractory.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.derive._groups import (
    codes_of,
    decode,
    equality_keys,
    first_valid,
    group_ids,
    group_starts,
    join_runs,
    join_runs_text,
    last_valid,
    pack_keys,
    row_lookup,
    same_as_prev,
    shared_codes,
    take_or_na,
)

KEYS = st.sampled_from(["S10", "S2", "S1", "A", "b", "S02"])
VALS = st.one_of(st.none(), st.sampled_from(["x", "y", "PD", ""]))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(KEYS, KEYS, VALS), min_size=1, max_size=30))
def test_codes_groups_first_last_join_match_pandas(rows):
    df = pd.DataFrame(rows, columns=["K1", "K2", "V"]).astype("string")
    c1, u1 = codes_of(df["K1"])
    c2, _ = codes_of(df["K2"])
    # codes sort like the text (pandas' stable multi-key sort)
    order = np.lexsort((c2, c1))
    expected_order = df.sort_values(["K1", "K2"], kind="stable").index.to_numpy()
    assert order.tolist() == expected_order.tolist()
    s = df.iloc[order].reset_index(drop=True)
    starts = group_starts(c1[order], c2[order])
    g = df.groupby(["K1", "K2"], sort=True)
    assert len(starts) == g.ngroups
    assert group_ids(starts, len(s)).tolist() == g.ngroup().to_numpy()[order].tolist()
    first = take_or_na(s["V"], first_valid(s["V"].notna().to_numpy(), starts))
    last = take_or_na(s["V"], last_valid(s["V"].notna().to_numpy(), starts))
    assert first.tolist() == g["V"].first().tolist()
    assert last.tolist() == g["V"].last().tolist()
    joined = join_runs(s["V"].fillna("").to_numpy(dtype=object), starts, ";")
    assert joined.tolist() == g["V"].agg(lambda v: ";".join(v.fillna(""))).tolist()
    arrow = join_runs_text(s["V"].fillna(""), starts, ";")  # the same text through Arrow
    assert arrow.tolist() == joined.tolist()
    assert str(arrow.dtype) == "string"
    assert decode(c1[order][starts], u1).tolist() == [k for k, _ in g.groups]


def test_decode_gives_missing_for_the_missing_code():
    c, u = codes_of(pd.Series(["b", None, "a"], dtype="string"))
    assert c.tolist() == [1, 2, 0]  # missing sorts last
    assert decode(c, u).tolist() == ["b", pd.NA, "a"]


KEYS_NA = st.one_of(st.none(), KEYS)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(KEYS_NA, st.integers(0, 3)), min_size=1, max_size=25),
       st.lists(st.tuples(KEYS_NA, st.integers(-1, 4)), min_size=0, max_size=25))
def test_row_lookup_on_shared_codes_is_a_left_merge(right_rows, left_rows):
    # reference: pandas' left merge on the text and integer keys (unique on the right), the
    # merges derive/exposure.py replaced
    right = pd.DataFrame(right_rows, columns=["K", "C"]).astype({"K": "str"}).drop_duplicates(["K", "C"])
    right = right.reset_index(drop=True).assign(V=lambda d: np.arange(len(d), dtype=float))
    left = pd.DataFrame(left_rows, columns=["K", "C"]).astype({"K": "str", "C": "int64"})
    expected = left.merge(right, on=["K", "C"], how="left")["V"].to_numpy(dtype=float)
    lk, rk = shared_codes(left["K"], right["K"])
    j = row_lookup([lk, left["C"].to_numpy()], [rk, right["C"].to_numpy()])
    got = np.where(j >= 0, right["V"].to_numpy()[np.maximum(j, 0)], np.nan)
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(KEYS_NA, KEYS_NA), min_size=0, max_size=25))
def test_same_as_prev_compares_every_column_with_the_previous_row(rows):
    # reference: the row-by-row definition (missing equals missing, first row False)
    df = pd.DataFrame(rows, columns=["A", "B"], dtype="str")
    got = same_as_prev(df["A"], df["B"])
    a, b = df["A"].tolist(), df["B"].tolist()

    def eq(x, y):
        return (pd.isna(x) and pd.isna(y)) or (not pd.isna(x) and not pd.isna(y) and x == y)

    expected = [i > 0 and eq(a[i], a[i - 1]) and eq(b[i], b[i - 1]) for i in range(len(rows))]
    assert got.tolist() == expected


def test_equality_keys_fall_back_when_the_packed_key_would_overflow():
    # reference: row tuples compared directly; two columns of range 2**40 do not fit in 63 bits,
    # so pack_keys declines and the tuples are factorised instead
    a = np.array([0, 2**40, 0, 2**40, 5], dtype=np.int64)
    b = np.array([2**40, 0, 2**40, 1, 5], dtype=np.int64)
    assert pack_keys([a, b]) is None
    k = equality_keys([a, b])
    tuples = list(zip(a.tolist(), b.tolist(), strict=True))
    for i in range(len(a)):
        for j in range(len(a)):
            assert (k[i] == k[j]) == (tuples[i] == tuples[j])
    # and row_lookup over such codes still finds each left row's right row
    assert row_lookup([a[:2], b[:2]], [a[2:], b[2:]]).tolist() == [0, -1]
