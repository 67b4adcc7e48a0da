"""Fixtures: the 3-subject study of tests/support/sdtm_study.py as raw frames and as a CSV folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains


@pytest.fixture
def raw_domains() -> dict[str, pd.DataFrame]:
    return valid_raw_domains()


@pytest.fixture
def study_dir(tmp_path: Path, raw_domains) -> Path:
    return write_study_folder(tmp_path / "study", raw_domains)
