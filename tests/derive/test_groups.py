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
    first_valid,
    group_ids,
    group_starts,
    join_runs,
    join_runs_text,
    last_valid,
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
