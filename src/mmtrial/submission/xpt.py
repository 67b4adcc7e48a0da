"""ADaM datasets as SAS transport (XPORT) version 5 files, through pyreadstat.

Version 5 is what regulators accept (FDA Study Data Technical Conformance Guide, section 3.3):
names <= 8 characters, labels <= 40, character values <= 200 bytes. Dates are SAS dates
(days since 1960-01-01) with the ``DATE9.`` format; text missing values are blank (SAS has no
missing character value). The file appears only when complete (written to a temporary file,
then moved into place), so a failure never leaves a 0-byte file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from mmtrial._io import atomic_write_bytes
from mmtrial.submission.spec import Column, DatasetSpec

SAS_EPOCH = pd.Timestamp("1960-01-01")


def sas_date(s: pd.Series) -> pd.Series:
    """Days since 1960-01-01 (the SAS date origin), NaN for missing."""
    ts = pd.to_datetime(s, errors="coerce").dt.normalize()
    return ((ts - SAS_EPOCH) / pd.Timedelta(days=1)).astype(float)


def xpt_frame(frame: pd.DataFrame, columns: list[Column]) -> pd.DataFrame:
    """Values as pyreadstat writes them: dates as SAS day numbers, text with blanks for missing."""
    out = {}
    for col in columns:
        s = frame[col.name]
        if col.data_type == "date":
            out[col.name] = sas_date(s)
        elif col.data_type == "text":
            # object dtype: pyreadstat writes pandas' ``str`` dtype several times slower
            out[col.name] = s.astype(object).where(s.notna(), "").astype(object)
        else:
            out[col.name] = s.astype(float)
    return pd.DataFrame(out)


def write_xpt(frame: pd.DataFrame, columns: list[Column], ds: DatasetSpec, path: Path) -> Path:
    """Write one dataset as ``path`` (SAS transport v5), labelled from the specification."""
    import pyreadstat

    data = xpt_frame(frame, columns)
    fmt = {c.name: c.display_format for c in columns if c.display_format}
    fd, tmp = tempfile.mkstemp(suffix=".xpt")
    os.close(fd)
    try:
        pyreadstat.write_xport(data, tmp, file_format_version=5, table_name=ds.name.upper()[:8],
                               file_label=ds.label, column_labels=[c.spec.label for c in columns],
                               variable_format=fmt)
        atomic_write_bytes(path, Path(tmp).read_bytes())
    finally:
        os.unlink(tmp)
    return path
