"""Helpers: read the submission files back and compare them with the Parquet datasets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrial.submission.spec import load_spec, with_unlisted


def _norm(v, kind: str):
    """A value in a comparable form: None for missing; dates as ISO text; numbers as float; text."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if kind == "date":
        return pd.Timestamp(v).date().isoformat()
    if kind == "text":
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        s = str(v)
        return s if s != "" else None
    return float(v)


def compare_with_parquet(name: str, parquet: Path, xpt: Path, dsjson: Path) -> int:
    """Assert the XPT and Dataset-JSON hold the Parquet's rows and values; return cells compared."""
    import pyreadstat

    pq = pd.read_parquet(parquet)
    ds = with_unlisted(load_spec().datasets[name], pq.columns)
    x, meta = pyreadstat.read_xport(str(xpt))
    doc = json.loads(dsjson.read_text("utf-8"))
    js = pd.DataFrame(doc["rows"], columns=[c["name"] for c in doc["columns"]])
    types = {c["name"]: c["dataType"] for c in doc["columns"]}
    assert len(x) == len(pq) == len(js) == doc["records"]
    assert meta.file_label == ds.label and doc["label"] == ds.label
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    n = 0
    for v in ds.variables:
        if v.name not in pq.columns:
            continue
        col = v.sas_name
        assert len(col) <= 8 and labels[col] == v.label
        kind = {"string": "text", "date": "date", "integer": "num", "double": "num"}[types[col]]
        if kind == "date":
            assert meta.original_variable_types[col] == "DATE9."
        want = [_norm(a, kind) for a in pq[v.name].astype(object)]
        got_x = [_norm(a, kind) for a in x[col].astype(object)]
        got_j = [_norm(a, kind) for a in js[col].astype(object)]
        for got, what in ((got_x, "xpt"), (got_j, "json")):
            bad = [i for i, (a, b) in enumerate(zip(want, got, strict=True))
                   if not (a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=1e-12)))]
            assert not bad, f"{name}.{v.name} ({what}) differs at rows {bad[:5]}: {[want[i] for i in bad[:3]]} vs {[got[i] for i in bad[:3]]}"
        n += len(want)
    return n
