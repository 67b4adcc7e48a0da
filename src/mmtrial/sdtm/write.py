"""Write SDTM-style domains in the four formats mmtrial reads (used by tests and the simulator)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrial._io import atomic_write_bytes

DATASET_JSON_VERSION = "1.1.0"


def _json_value(v):
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(v).date().isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return v


def write_dataset_json(df: pd.DataFrame, path: Path, name: str) -> None:
    """CDISC Dataset-JSON v1.1: ``columns`` metadata and ``rows`` arrays."""
    cols = []
    for c in df.columns:
        numeric = pd.api.types.is_numeric_dtype(df[c])
        kind = "date" if pd.api.types.is_datetime64_any_dtype(df[c]) else "double" if numeric else "string"
        cols.append({"itemOID": f"IT.{name.upper()}.{c}", "name": c, "label": c, "dataType": kind})
    rows = [[_json_value(v) for v in r] for r in df.itertuples(index=False, name=None)]
    doc = {"datasetJSONCreationDateTime": "1970-01-01T00:00:00", "datasetJSONVersion": DATASET_JSON_VERSION,
           "itemGroupOID": f"IG.{name.upper()}", "name": name.upper(), "label": name.upper(),
           "records": len(rows), "columns": cols, "rows": rows}
    atomic_write_bytes(path, json.dumps(doc).encode("utf-8"))


def write_domain(df: pd.DataFrame, path: str | Path) -> Path:
    """Write one domain; the extension (.csv, .parquet, .xpt, .json) chooses the format."""
    path = Path(path)
    name = path.stem
    ext = path.suffix.lower()
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".parquet":
        df.to_parquet(path, index=False)
    elif ext == ".xpt":
        import pyreadstat

        long = [str(c) for c in df.columns if len(str(c)) > 8]
        if long:
            raise ValueError(f"write_domain: SAS transport v5 names have at most 8 characters; "
                             f"{path.name} has {', '.join(long)}")
        out = df.copy()
        for c in out.columns:
            if not pd.api.types.is_numeric_dtype(out[c]):
                out[c] = out[c].astype(object).where(out[c].notna(), "").astype(str)
        fd, tmp = tempfile.mkstemp(suffix=".xpt")
        os.close(fd)
        try:
            pyreadstat.write_xport(out, tmp, file_format_version=5, table_name=name.upper()[:8])
            atomic_write_bytes(path, Path(tmp).read_bytes())
        finally:
            os.unlink(tmp)
    elif ext == ".json":
        write_dataset_json(df, path, name)
    else:
        raise ValueError(f"write_domain: extension must be .csv, .parquet, .xpt or .json; got {ext!r}")
    return path


def write_study_folder(folder: str | Path, domains: dict[str, pd.DataFrame], ext: str = ".csv") -> Path:
    """Write every domain of a study into ``folder`` with one extension (format)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in domains.items():
        write_domain(df, folder / f"{name}{ext}")
    return folder
