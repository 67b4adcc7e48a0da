"""An external (real-world) cohort as input: an SDTM-style folder or an OMOP CDM v5.4 database.

Both paths end in the same checked frames (dm, cm, rs, ds, lb, mh and pr when present), read and
checked by the study reader's own functions (sdtm/read.py, sdtm/check.py: types, partial-date
imputation, duplicate keys, controlled terms, unknown subjects), with a cohort schema: a cohort
has no study treatment, so ex and ae are not required and dm needs no RFXSTDTC. Every regimen is
recorded in cm with CMCAT ``PRIOR ANTI-MYELOMA THERAPY`` and every progression in rs with RSCAT
``PRIOR THERAPY`` (data-contract.md), as for a trial's prior therapy: in a cohort the whole
history is "prior" to the index line chosen later (docs/external.md).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mmtrial.errors import UsageError
from mmtrial.sdtm.issues import InputIssue, StudyInputError

#: Domains a cohort may hold; dm and cm are required.
COHORT_DOMAINS = ("dm", "cm", "rs", "ds", "lb", "mh", "pr")


@dataclass
class Cohort:
    """A checked external cohort: SDTM-style frames, where it came from and its issues."""

    frames: dict[str, pd.DataFrame]
    source: str
    kind: str  # "sdtm" or "omop"
    synthetic: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    issues: list[InputIssue] = field(default_factory=list)

    def get(self, name: str) -> pd.DataFrame | None:
        return self.frames.get(name)


def cohort_schema() -> dict[str, Any]:
    """The SDTM schema (data/sdtm_schema.toml) as it applies to a cohort: only dm and cm are
    mandatory domains, and dm needs no RFXSTDTC (there is no study treatment)."""
    from mmtrial.sdtm.check import load_schema

    schema = copy.deepcopy(load_schema())
    for dom, spec in schema["domains"].items():
        spec["mandatory_domain"] = dom in ("dm", "cm")
    dm = schema["domains"]["dm"]
    dm["required"] = [v for v in dm["required"] if v != "RFXSTDTC"]
    dm["optional"] = [*dm["optional"], "RFXSTDTC", "BRTHDTC"]
    return schema


def check_cohort_domains(raw: dict[str, pd.DataFrame], *, label: str) -> tuple[dict[str, pd.DataFrame], list[InputIssue]]:
    """Type, check and normalise raw cohort frames with the study reader's checks (sdtm/check.py).

    ``raw``: text columns as read (or as mapped from OMOP) plus ROWNUM. Returns the frames
    (with ``--DT``/``--DTF`` date columns, lab units converted) and every issue.
    """
    from mmtrial.sdtm.check import (
        ReadOptions,
        check_date_order,
        check_domains,
        check_structure,
        check_subjects,
        check_terms,
        convert_lab_units,
    )

    options = ReadOptions()
    schema = cohort_schema()
    raw = {k: v for k, v in raw.items() if k in schema["domains"]}
    issues = check_structure(raw, schema)
    domains, found = check_domains(raw, schema, options)
    issues += found
    if "lb" in domains and len(domains["lb"]):
        lb = domains["lb"]
        for c in ("LBSTRESN", "LBSTNRLO", "LBSTNRHI"):
            if c not in lb:
                lb[c] = float("nan")
        for c in ("LBSPEC", "LBSTRESC", "LBCAT"):
            if c not in lb:
                lb[c] = None
        domains["lb"], found = convert_lab_units(lb)
        issues += found
    issues += check_terms(domains, schema)
    issues += check_date_order(domains, schema)
    issues += check_subjects(domains)
    for dom in ("dm", "cm"):
        if dom not in domains:
            issues.append(InputIssue(domain=dom, variable="(file)", rule="MISSING_DOMAIN",
                                     problem=f"the cohort {label} has no {dom}",
                                     hint="A cohort needs dm (patients) and cm (regimens with dates)."))
    return domains, issues


def read_cohort_sdtm(folder: str | Path) -> Cohort:
    """Read and check an SDTM-style cohort folder (sdtm/read.py readers: CSV, Parquet, XPT, JSON).

    Raises :class:`StudyInputError` when any error is found (every issue listed).
    """
    from mmtrial.sdtm.read import read_raw_domains

    folder = Path(folder)
    raw, issues = read_raw_domains(folder)
    frames, found = check_cohort_domains(raw, label=str(folder))
    issues += found
    if any(i.severity == "error" for i in issues):
        raise StudyInputError(issues)
    meta: dict[str, Any] = {}
    sj = folder / "study.json"
    if sj.is_file():
        try:
            meta = json.loads(sj.read_text("utf-8"))
        except (OSError, ValueError):
            meta = {}
    return Cohort(frames=frames, source=str(folder), kind="sdtm", synthetic=bool(meta.get("synthetic", False)),
                  metadata=meta, issues=issues)


def read_cohort(source: str | Path, *, concepts: str | Path | None = None) -> Cohort:
    """An external cohort from a folder (SDTM-style), a DuckDB file (OMOP CDM v5.4) or a
    PostgreSQL connection string (``postgresql://...``, OMOP CDM v5.4; needs DuckDB's postgres
    extension). A path that is none of these is a :class:`UsageError`."""
    s = str(source)
    if s.startswith(("postgresql://", "postgres://")) or s.startswith("dbname="):
        from mmtrial.external.omop import read_cohort_omop

        return read_cohort_omop(s, concepts=concepts)
    p = Path(s)
    if p.is_dir():
        if (p / "cdm.duckdb").is_file() and not any((p / f"{d}.csv").exists() for d in ("dm", "cm")):
            from mmtrial.external.omop import read_cohort_omop

            return read_cohort_omop(p / "cdm.duckdb", concepts=concepts, metadata_dir=p)
        return read_cohort_sdtm(p)
    if p.is_file():
        from mmtrial.external.omop import read_cohort_omop

        return read_cohort_omop(p, concepts=concepts)
    raise UsageError(f"--cohort {s}: not found; give an SDTM-style cohort folder, an OMOP CDM DuckDB file "
                     "or a postgresql:// connection string")
