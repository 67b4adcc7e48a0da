"""Fuzz the readers and checks (issue 11): random byte mutations of each format's files and
random cell values never produce anything but input issues (no traceback), within a bounded
number of examples: 12 per test by default, the full 30 under ``pytest --sweeps``
(tests/support/sweeps.py; derandomized, so the default runs the first 12 of the 30)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmtrial.sdtm import InputIssue, load_study
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains
from support.sweeps import examples

FUZZ = settings(max_examples=examples(12, full=30), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for ext in (".csv", ".parquet", ".xpt", ".json"):
        out[ext] = write_study_folder(tmp_path_factory.mktemp("base") / ext[1:], valid_raw_domains(), ext)
    return out


def _check_outcome(folder: Path) -> None:
    study, issues = load_study(folder)
    assert all(isinstance(i, InputIssue) for i in issues)
    for i in issues:
        assert i.rule and i.domain and i.severity in ("error", "warning")
        i.message()
    if study is None:
        assert any(i.severity == "error" for i in issues)


mutation = st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]), st.floats(0, 1),
                     st.binary(min_size=1, max_size=8))


@FUZZ
@given(ext=st.sampled_from([".csv", ".parquet", ".xpt", ".json"]),
       domain=st.sampled_from(["dm", "ex", "lb", "ae", "ds", "cm"]),
       edits=st.lists(mutation, min_size=1, max_size=4))
def test_byte_mutations_never_raise(tmp_path_factory, bases, ext, domain, edits):
    folder = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(bases[ext], folder / "s")
    p = folder / "s" / f"{domain}{ext}"
    data = bytearray(p.read_bytes())
    for kind, where, blob in edits:
        i = int(where * max(len(data) - 1, 0))
        if kind == "flip" and data:
            data[i] ^= blob[0] or 1
        elif kind == "insert":
            data[i:i] = blob
        elif kind == "delete":
            del data[i:i + len(blob)]
        else:
            del data[i:]
    p.write_bytes(bytes(data))
    _check_outcome(folder / "s")


cell = st.one_of(st.none(), st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True),
                 st.integers(-10**20, 10**20), st.sampled_from(["2999-01-01", "1600-01-01", "2019-02-30", "inf",
                                                                 "=HYPERLINK(1)", "2019", "-0", "1e309"]))


@FUZZ
@given(domain=st.sampled_from(["dm", "ex", "lb", "ae", "ds", "cm"]), data=st.data(),
       ext=st.sampled_from([".csv", ".json", ".parquet"]))
def test_random_cell_values_never_raise(tmp_path_factory, domain, data, ext):
    raw = valid_raw_domains()
    df = raw[domain].astype(object)
    for _ in range(data.draw(st.integers(1, 4))):
        r = data.draw(st.integers(0, len(df) - 1))
        c = data.draw(st.sampled_from(list(df.columns)))
        df.iat[r, df.columns.get_loc(c)] = data.draw(cell)
    if ext == ".parquet":  # one Arrow type per column: mixed cells as text
        df = df.map(lambda v: v if v is None else str(v))
    raw[domain] = df
    folder = write_study_folder(tmp_path_factory.mktemp("cells") / "s", raw, ext)
    _check_outcome(folder)
