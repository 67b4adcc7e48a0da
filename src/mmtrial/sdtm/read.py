"""Read a study folder of SDTM-style domains in CSV, Parquet, SAS XPT or CDISC Dataset-JSON.

The extension says the format (../shared/spec/data-contract.md). Reading gives the domains as
given ("raw"); :func:`mmtrial.sdtm.check.load_study` then checks and normalises them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrial.sdtm.issues import InputIssue

FORMATS = {".csv": "csv", ".parquet": "parquet", ".xpt": "xpt", ".json": "json"}
KNOWN_DOMAINS = ("dm", "ex", "lb", "ae", "ds", "cm", "rs", "pr", "tu", "tr", "mh", "vs")


def read_csv_domain(path: Path) -> pd.DataFrame:
    """CSV: every column as text; empty cells are missing (converted to types later)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")


def read_parquet_domain(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def read_xpt_domain(path: Path) -> pd.DataFrame:
    """SAS transport (v5/v8) via pyreadstat; blank character values become missing."""
    import pyreadstat

    df, _meta = pyreadstat.read_xport(str(path))
    for c in df.columns:
        if df[c].dtype == object or pd.api.types.is_string_dtype(df[c]):
            df[c] = df[c].where(df[c].astype(str).str.strip() != "", None)
    return df


def read_dataset_json_domain(path: Path) -> pd.DataFrame:
    """CDISC Dataset-JSON: version 1.1 (``columns``/``rows``) or 1.0 (``itemGroupData``)."""
    doc = json.loads(path.read_text("utf-8"))
    if "columns" in doc and "rows" in doc:
        names = [c["name"] for c in doc["columns"]]
        df = pd.DataFrame(doc["rows"], columns=names)
    else:
        data = doc.get("clinicalData") or doc.get("referenceData")
        if not data or "itemGroupData" not in data:
            raise ValueError("not CDISC Dataset-JSON: no 'columns'/'rows' (v1.1) nor 'itemGroupData' (v1.0)")
        group = next(iter(data["itemGroupData"].values()))
        names = [c["name"] for c in group["items"]]
        df = pd.DataFrame(group["itemData"], columns=names)
    drop = [c for c in df.columns if c.upper() in ("ITEMGROUPDATASEQ",)]
    return df.drop(columns=drop)


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "csv": read_csv_domain,
    "parquet": read_parquet_domain,
    "xpt": read_xpt_domain,
    "json": read_dataset_json_domain,
}


def find_domain_files(study_dir: Path) -> tuple[dict[str, Path], list[InputIssue]]:
    """Map each domain to its file; two files for one domain is an error."""
    issues: list[InputIssue] = []
    found: dict[str, Path] = {}
    for p in sorted(study_dir.iterdir()):
        if p.name.startswith(("_", ".")) or not p.is_file():
            continue
        ext = p.suffix.lower()
        stem = p.stem.lower()
        if ext not in FORMATS or stem not in KNOWN_DOMAINS:
            continue
        if stem in found:
            issues.append(InputIssue(
                domain=stem, variable="(file)", value=p.name,
                problem=f"two files for domain {stem}: {found[stem].name} and {p.name}",
                hint="Keep one file per domain.", rule="DUPLICATE_DOMAIN_FILE"))
            continue
        found[stem] = p
    return found, issues


def read_raw_domains(
    study_dir: str | Path, on_file: Callable[[str], None] | None = None
) -> tuple[dict[str, pd.DataFrame], list[InputIssue]]:
    """Read every domain file as given; unreadable files are reported, not skipped silently."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise FileNotFoundError(f"study folder not found: {study_dir}")
    files, issues = find_domain_files(study_dir)
    raw: dict[str, pd.DataFrame] = {}
    for dom, path in files.items():
        if on_file:
            on_file(dom)
        try:
            df = _READERS[FORMATS[path.suffix.lower()]](path)
        except Exception as exc:  # any parser failure becomes an input issue naming the file
            issues.append(InputIssue(
                domain=dom, variable="(file)", value=path.name,
                problem=f"cannot be read as {FORMATS[path.suffix.lower()]}: {exc}",
                rule="FILE_UNREADABLE"))
            continue
        df.columns = [str(c).upper() for c in df.columns]
        df.insert(0, "ROWNUM", np.arange(1, len(df) + 1, dtype="int64"))
        raw[dom] = df.reset_index(drop=True)
    return raw, issues


def read_study_metadata(study_dir: str | Path) -> dict:
    """``study.json`` when present (the simulator writes ``{"synthetic": true, ...}``)."""
    p = Path(study_dir) / "study.json"
    if not p.exists():
        return {}
    return json.loads(p.read_text("utf-8"))


def compute_study_checksum(study_dir: str | Path) -> str:
    """SHA-256 over the names and bytes of the domain files and study.json, in name order."""
    study_dir = Path(study_dir)
    files, _ = find_domain_files(study_dir)
    paths = sorted(files.values(), key=lambda p: p.name)
    meta = study_dir / "study.json"
    if meta.exists():
        paths.append(meta)
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
