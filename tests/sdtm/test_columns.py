"""The checks' column helpers (sdtm/_columns.py, issue 15) against the pandas operations they
replace: ``Series.isin``, ``DataFrame.duplicated`` and ``drop_duplicates`` (the reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.sdtm._columns import (
    distinct_rows,
    duplicated_ids,
    key_ids,
    text_index_in,
    text_isin,
    text_lookup,
    text_not_in,
)

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


@settings(max_examples=60, deadline=None)
@given(texts, st.lists(st.one_of(st.none(), st.sampled_from(["a", "B", "é", "x"])), max_size=5), st.booleans())
def test_text_not_in_and_lookup_match_pandas(values, wanted, as_object):
    """``text_not_in`` is ``s.notna() & ~s.isin(...)`` and ``text_lookup`` is a ``Series.map``
    of a {text: value} dict with a default (pandas as the reference), on Arrow text and on
    object columns."""
    s = pd.Series(values, dtype=object if as_object else "str")
    allowed = [w for w in wanted if w is not None]
    assert text_not_in(s, wanted).tolist() == (s.notna() & ~s.isin(allowed)).tolist()
    keys = list(dict.fromkeys(allowed))
    days = np.array([f"2019-01-{i + 1:02d}" for i in range(len(keys))], dtype="datetime64[ns]")
    got = text_lookup(s, pd.array(keys, dtype="str"), days, np.datetime64("NaT"))
    expect = s.map(dict(zip(keys, days, strict=True))).astype("datetime64[ns]")
    assert got.dtype == np.dtype("datetime64[ns]")
    assert pd.Series(got).equals(expect)


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
    from mmtrial.sdtm._columns import duplicated_both

    assert [a.tolist() for a in duplicated_both(ids)] == [df.duplicated(keep=k).tolist() for k in ("first", False)]
    text = [df["s"], df["t"]]  # text columns only: their codes packed directly
    for keep in ("first", False):
        assert duplicated_ids(key_ids(text), keep=keep).tolist() == df[["s", "t"]].duplicated(keep=keep).tolist()


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


def test_shared_codes_are_computed_once_per_column_and_renewed_when_it_is_replaced():
    from mmtrial.sdtm._columns import shared_codes, text_codes

    df = pd.DataFrame({"A": pd.array(["x", None, "y", "x"], dtype="str")})
    assert text_codes(df["A"]) is not text_codes(df["A"])  # outside the block: nothing kept
    with shared_codes():
        first = text_codes(df["A"])
        assert text_codes(df["A"]) is first  # the same column (same Arrow array): the same codes
        assert [first.dictionary.to_pylist()[c] if c >= 0 else None for c in first.codes] == ["x", None, "y", "x"]
        df["A"] = pd.array(["y", "y", None, "z"], dtype="str")  # replaced: new codes
        again = text_codes(df["A"])
        assert again is not first
        assert [again.dictionary.to_pylist()[c] if c >= 0 else None for c in again.codes] == ["y", "y", None, "z"]
    assert text_codes(df["A"]) is not again


def test_text_index_in_takes_arrow_backed_values_without_python_objects():
    s = pd.Series(["b", None, "a", "c"], dtype="str")
    values = pd.Series(["a", None, "b"], dtype="str").array  # what Series.unique() gives
    assert text_index_in(s, values).tolist() == [1, -1, 0, -1]  # the reference: positions in values


def test_distinct_rows_with_keys_too_wide_for_a_table_match_drop_duplicates():
    # 3 columns of 500 distinct values: 500**3 packed keys, far more than the rows, so the
    # combinations are factorised (the other branch of distinct_rows)
    rng = np.random.default_rng(3)
    df = pd.DataFrame({c: pd.array(rng.integers(0, 500, 2_000).astype(str), dtype="str") for c in "abc"})
    df = pd.concat([df, df.iloc[::7]], ignore_index=True)
    first, combo = distinct_rows([df[c] for c in df.columns])
    assert first.tolist() == np.flatnonzero(~df.duplicated().to_numpy()).tolist()
    pd.testing.assert_frame_equal(df.iloc[first[combo]].reset_index(drop=True), df)


@settings(max_examples=60, deadline=None)
@given(texts, st.booleans(), st.integers(1, 5))
def test_dictionary_encoded_text_is_typed_like_plain_text(values, upper, chunk):
    """A Parquet text column read dictionary-encoded (one dictionary per row group) is typed
    exactly as the same column read as plain text (``_trimmed_text``, the reference), and its
    codes name each row's typed value."""
    import pyarrow as pa

    from mmtrial.sdtm.check import _trimmed_dictionary, _trimmed_text

    arr = pa.chunked_array([pa.array(values[i:i + chunk], pa.large_string()).dictionary_encode()
                            for i in range(0, len(values), chunk)] or [pa.array([], pa.large_string()).dictionary_encode()])
    text, codes = _trimmed_dictionary(pd.Series(pd.arrays.ArrowExtensionArray(arr)), upper=upper)
    expect = _trimmed_text(pd.Series(values, dtype="str"), upper=upper)
    pd.testing.assert_extension_array_equal(text, expect)
    named = [codes.dictionary.to_pylist()[c] if c >= 0 else None for c in codes.codes]
    assert named == [None if pd.isna(v) else v for v in expect]


def _trimmed_dictionary_8f7c1b5(s: pd.Series, upper: bool = False):
    """The former ``check._trimmed_dictionary`` (commit 8f7c1b5), frozen as the oracle: the
    chunks' dictionaries unified by Arrow, then typed and expanded."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from mmtrial.sdtm._columns import TextCodes, encode_text, small_codes

    arr = s.array.__arrow_array__()
    if not isinstance(arr, pa.ChunkedArray):
        arr = pa.chunked_array([arr])
    if arr.num_chunks == 0:
        arr = pa.chunked_array([pa.array([], type=arr.type)])
    arr = arr.unify_dictionaries()
    values = arr.chunk(0).dictionary
    if pa.types.is_string(values.type):
        values = values.cast(pa.large_string())
    codes = np.concatenate([np.asarray(c.indices.fill_null(-1).to_numpy(zero_copy_only=False)) for c in arr.chunks])
    values = pc.utf8_trim_whitespace(values)
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)
    if upper:
        values = pc.utf8_upper(values)
    distinct = encode_text(values)
    if not np.array_equal(distinct.codes, np.arange(len(values))):
        codes = np.append(distinct.codes, -1)[codes]
    codes = small_codes(codes, len(distinct.dictionary))
    missing = codes < 0
    text = distinct.dictionary.take(pa.array(codes, mask=missing) if missing.any() else pa.array(codes))
    return pd.array(text, dtype="str"), TextCodes(distinct.dictionary, codes)


@settings(max_examples=80, deadline=None)
@given(st.lists(texts, max_size=4), st.booleans(), st.integers(1, 4), st.booleans())
def test_dictionary_typing_matches_unifying_first(groups, upper, batch, small_type):
    """``_trimmed_dictionary`` (dictionaries typed together, indices taken straight to codes)
    gives the text, codes, code type and dictionary order of the former implementation, which
    unified the chunks' dictionaries first (oracle: ``_trimmed_dictionary_8f7c1b5``). Chunks as
    Parquet gives them: one dictionary per row group shared by that group's batches; also
    ``string`` dictionaries and int8 indices (Parquet dictionaries hold no missing value)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from mmtrial.sdtm.check import _trimmed_dictionary

    chunks = []
    for values in groups:  # a "row group": one dictionary, split into batches of ``batch`` rows
        typ = pa.string() if small_type else pa.large_string()
        enc = pc.dictionary_encode(pa.array(values, typ))
        if small_type:
            enc = pa.DictionaryArray.from_arrays(enc.indices.cast(pa.int8()), enc.dictionary)
        chunks += [enc.slice(i, batch) for i in range(0, len(values), batch)]
    typ = pa.dictionary(pa.int8() if small_type else pa.int32(), pa.string() if small_type else pa.large_string())
    col = pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array(chunks, type=typ)))
    text, codes = _trimmed_dictionary(col, upper=upper)
    want_text, want_codes = _trimmed_dictionary_8f7c1b5(col, upper=upper)
    pd.testing.assert_extension_array_equal(text, want_text)
    assert codes.dictionary.equals(want_codes.dictionary)
    assert codes.codes.dtype == want_codes.codes.dtype and codes.codes.tolist() == want_codes.codes.tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(texts, texts, texts), min_size=1, max_size=1), st.integers(1, 3))
def test_key_ids_of_text_columns_match_the_former_packing(cols, k):
    """The packed row keys of text columns are the former loop's values exactly (commit
    8f7c1b5: ``packed = packed * width + code + 1`` per column, frozen here): the lab-range and
    unit checks' table of combinations is indexed by them."""
    from mmtrial.sdtm._columns import shared_codes, text_codes

    n = min(len(c) for c in cols[0])
    frame = [pd.Series(c[:n], dtype="str") for c in cols[0]][:k]
    with shared_codes():
        got = key_ids(frame)
        packed = np.zeros(n, dtype=np.int64)
        for s in frame:
            tc = text_codes(s)
            packed = packed * (len(tc.dictionary) + 1) + tc.codes + 1
    assert got.tolist() == packed.tolist()
