"""Run an R script on a data frame and read its CSV output (differential tests against R).

The same pattern as tests/stats/test_twoarm.py: skip with a reason when Rscript or an R package
is missing; fail on any other R error.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import pandas as pd
import pytest


def rscript() -> str:
    rs = shutil.which("Rscript")
    if rs is None:
        pytest.skip("R is not installed (Rscript not on PATH): differential test against R skipped")
    return rs


def run_r(tmp_path, script: str, data: pd.DataFrame, *, timeout: int = 120) -> pd.DataFrame:
    """Write ``data`` to CSV, run ``script`` with the CSV path as its first argument, and read
    the CSV the script writes to stdout."""
    rs = rscript()
    (tmp_path / "d.csv").write_text(data.to_csv(index=False))
    (tmp_path / "s.R").write_text(script)
    res = subprocess.run([rs, str(tmp_path / "s.R"), str(tmp_path / "d.csv")], capture_output=True,
                         text=True, timeout=timeout)
    if res.returncode != 0 and "there is no package called" in res.stderr:
        pytest.skip(f"an R package is not installed: {res.stderr.strip()[-200:]}")
    assert res.returncode == 0, res.stderr
    return pd.read_csv(io.StringIO(res.stdout))
