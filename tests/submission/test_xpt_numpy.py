"""The numpy SAS transport v5 writer (submission/xpt.py, issue 15) against pyreadstat (ReadStat).

Oracles: IBM System/370 doubles worked by hand from the format's definition (value = 0.F x
16^(E-64); IBM's own example -118.625 = C276A000...; SAS TS-140 for missing ``.`` = 2E00...),
and the file pyreadstat writes for the same data, byte for byte apart from the creation time.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmtrial.submission import SUBMISSION_DATASETS
from mmtrial.submission.spec import submission_frame
from mmtrial.submission.xpt import ibm_double, write_xpt, write_xpt_pyreadstat

_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")


def test_ibm_double_hand_worked():
    got = ibm_double(np.array([1.0, -118.625, 0.1, 0.0, np.nan, 16.0, 0.5])).tobytes().hex()
    want = ["4110000000000000",  # 1 = 0.1 (hex) x 16^1
            "c276a00000000000",  # IBM's example: -118.625 = -0.76A (hex) x 16^2
            "401999999999999a",  # IEEE 0x3FB999999999999A shifted 3 bits: exact
            "0000000000000000", "2e00000000000000", "4210000000000000", "4080000000000000"]
    assert [got[i:i + 16] for i in range(0, len(got), 16)] == want


def test_ibm_double_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="IBM"):
        ibm_double(np.array([np.inf]))


def _same_as_pyreadstat(tmp_path: Path, name: str, df: pd.DataFrame) -> None:
    frame, cols, ds = submission_frame(name, df, "STUDY1")
    a = write_xpt_pyreadstat(frame, cols, ds, tmp_path / f"{name}_ref.xpt").read_bytes()
    b = write_xpt(frame, cols, ds, tmp_path / f"{name}.xpt").read_bytes()
    assert len(a) == len(b)
    assert _STAMP.sub(b"T", a) == _STAMP.sub(b"T", b), name


@pytest.mark.parametrize("chunk", [2, 50_000])
def test_small_frames_byte_identical_to_pyreadstat(tmp_path: Path, monkeypatch, chunk):
    import mmtrial.submission.xpt as xpt

    monkeypatch.setattr(xpt, "ROWS_PER_CHUNK", chunk)  # several chunks, and one
    monkeypatch.setattr(xpt, "_ROW_BLOCK", 2 if chunk > 2 else 2048)  # one chunk in blocks of 2 rows
    df = pd.DataFrame({
        "USUBJID": pd.array(["001-1", "001-2", "002-3"], dtype="string"),
        "AGE": [64.0, 75.5, np.nan], "SEX": ["F", None, "M"],
        "TRTSDT": pd.to_datetime(["2019-01-07", "1960-01-01", None]),
        "DCTREAS": ["Caf\u00e9 au lait, 10\u00b5g", "", None], "NLINES": [7, -3, 10**9],
    })
    _same_as_pyreadstat(tmp_path, "adsl", df)
    _same_as_pyreadstat(tmp_path, "adsl", df.iloc[:0])
    _same_as_pyreadstat(tmp_path, "adsl", df.assign(SEX=None))


def test_demo_datasets_byte_identical_to_pyreadstat(demo, tmp_path: Path):
    for name in SUBMISSION_DATASETS:
        _same_as_pyreadstat(tmp_path, name, demo.output.analysis.adam[name])
