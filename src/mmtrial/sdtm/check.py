"""Check and normalise a study: every problem is collected before anything is derived.

Rules (each has an id carried in ``InputIssue.rule``; docs/input-checks.md lists them):

* ``MISSING_DOMAIN``, ``MISSING_VARIABLE``: the data contract's required domains and variables;
* ``MISSING_VALUE``: a value the derivations cannot do without (``nonmissing`` in the schema);
* ``TYPE``: a numeric variable holding text;
* ``DATE_INVALID``: not ISO 8601 or not a calendar date; ``DATE_IMPUTED`` (warning): a partial
  date completed by the documented imputation (``sdtm/dates.py``);
* ``CONTROLLED_TERM``: a value outside the controlled terms of ``data/sdtm_schema.toml``;
* ``UNIT_UNKNOWN``: a known lab test in a unit with no conversion (``data/units.toml``);
* ``DUPLICATE_KEY``: two rows with the same natural key;
* ``DATE_ORDER``: an end before its start, or a death before the first dose;
* ``UNKNOWN_SUBJECT``: a USUBJID absent from dm.

The schema is data (``data/sdtm_schema.toml``); this module is the one engine that applies it.
All checks are column operations over whole domains; issue records are built only for the rows
at fault.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial.context import Study
from mmtrial.sdtm.dates import DateImputation, compute_iso_dates, date_column_names, is_end_date
from mmtrial.sdtm.issues import InputIssue, StudyInputError
from mmtrial.sdtm.read import (
    compute_study_checksum,
    read_raw_domains,
    read_study_metadata,
)
from mmtrial.sdtm.units import convert_lab_units

MAX_ISSUES_PER_RULE = 10_000  # beyond this, one summary issue says how many more rows failed


@dataclass(frozen=True)
class ReadOptions:
    """Options for reading a study: date imputation and whether warnings are kept."""

    imputation: DateImputation = field(default_factory=DateImputation)


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    text = resources.files("mmtrial.data").joinpath("sdtm_schema.toml").read_text("utf-8")
    return tomllib.loads(text)


def _issues_for_rows(
    df: pd.DataFrame, mask: pd.Series | np.ndarray, *, domain: str, variable: str, problem: str,
    rule: str, severity: str = "error", hint: str = "", value_col: str | None = None,
) -> list[InputIssue]:
    """One InputIssue per row where ``mask`` is true (capped per rule, with a summary)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    sub = df.loc[mask]
    n = len(sub)
    sub = sub.iloc[:MAX_ISSUES_PER_RULE]
    col = value_col or variable
    values = sub[col] if col in sub else pd.Series([None] * len(sub), index=sub.index)
    subj = sub["USUBJID"] if "USUBJID" in sub else pd.Series([None] * len(sub), index=sub.index)
    out = [
        InputIssue(domain=domain, variable=variable, problem=problem, severity=severity,  # type: ignore[arg-type]
                   usubjid=None if pd.isna(u) else str(u), row=int(r),
                   value=None if pd.isna(v) else str(v), hint=hint, rule=rule)
        for u, r, v in zip(subj, sub["ROWNUM"], values, strict=True)
    ]
    if n > MAX_ISSUES_PER_RULE:
        out.append(InputIssue(domain=domain, variable=variable, severity=severity,  # type: ignore[arg-type]
                              problem=f"{n - MAX_ISSUES_PER_RULE} more rows fail this rule", rule=rule))
    return out


def _as_text(s: pd.Series) -> pd.Series:
    """Character variable as pandas text (``str`` dtype), stripped; empty and missing are NA.

    Numbers from Parquet/XPT character columns become their text (``3.0`` -> ``"3"``).
    """
    if pd.api.types.is_float_dtype(s) or pd.api.types.is_integer_dtype(s):
        f = s.astype(float)
        whole = f.notna() & (f == np.floor(f.fillna(0)))
        txt = f.astype(str).where(~whole, f.fillna(0).astype("int64").astype(str))
        return txt.where(f.notna()).astype("str")
    t = s if pd.api.types.is_string_dtype(s) and s.dtype != object else s.astype("str")
    t = t.str.strip()
    return t.where(t != "")


def check_structure(raw: dict[str, pd.DataFrame], schema: dict[str, Any]) -> list[InputIssue]:
    """Required domains and variables (MISSING_DOMAIN, MISSING_VARIABLE)."""
    issues: list[InputIssue] = []
    for dom, spec in schema["domains"].items():
        if dom not in raw:
            if spec.get("mandatory_domain", False):
                issues.append(InputIssue(domain=dom, variable="(file)", rule="MISSING_DOMAIN",
                                         problem=f"required domain {dom} not found",
                                         hint=f"Add {dom}.csv, .parquet, .xpt or .json to the study folder."))
            continue
        cols = set(raw[dom].columns)
        for var in spec["required"]:
            if var not in cols:
                issues.append(InputIssue(domain=dom, variable=var, rule="MISSING_VARIABLE",
                                         problem="required variable missing",
                                         hint="See docs/data-contract.md."))
        for group in spec.get("one_of", []):
            if not cols.intersection(group):
                issues.append(InputIssue(domain=dom, variable=" or ".join(group), rule="MISSING_VARIABLE",
                                         problem="one of these variables is required"))
    return issues


def normalise_types(dom: str, df: pd.DataFrame, spec: dict[str, Any]) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Numeric variables to float (TYPE errors for text), character variables to text."""
    issues: list[InputIssue] = []
    out = df.copy()
    numeric = set(spec.get("numeric", []))
    for c in out.columns:
        if c == "ROWNUM":
            continue
        if c in numeric:
            orig = out[c]
            if pd.api.types.is_numeric_dtype(orig):
                out[c] = orig.astype(float)
                continue
            num = pd.to_numeric(orig, errors="coerce")
            txt = orig.astype("string").str.strip()
            bad = num.isna() & orig.notna() & (txt != "")
            issues += _issues_for_rows(out.assign(**{c: orig}), bad, domain=dom, variable=c,
                                       problem="not a number", rule="TYPE",
                                       hint="Numeric variables hold numbers only.")
            out[c] = num.astype(float)
        else:
            out[c] = _as_text(out[c])
    for c in ("LBTESTCD", "LBSPEC", "LBCAT", "LBSCAT", "LBSTRESC", "CMCAT", "RSCAT", "RSEVAL", "RSTESTCD",
              "DSCAT", "DSSCAT", "DSDECOD", "EXTRT", "CMTRT", "AEDECOD", "AEBODSYS", "AEACN", "AEOUT",
              "PRTRT", "TUSTRESC", "TRTESTCD", "MHCAT", "MHTERM", "AESER", "AEREL", "DTHFL", "SEX", "EXDOSFRQ"):
        if c in out.columns:
            out[c] = out[c].str.upper()
    if dom == "rs" and "RSSTRESC" in out:
        out["RSSTRESC"] = out["RSSTRESC"].replace({"SCR": "sCR"})
    return out, issues


def check_nonmissing(dom: str, df: pd.DataFrame, spec: dict[str, Any]) -> list[InputIssue]:
    issues: list[InputIssue] = []
    for var in spec.get("nonmissing", []):
        if var in df:
            issues += _issues_for_rows(df, df[var].isna(), domain=dom, variable=var,
                                       problem="missing value", rule="MISSING_VALUE")
    if dom == "lb" and {"LBSTRESN", "LBSTRESC"} & set(df.columns):
        n = df["LBSTRESN"].isna() if "LBSTRESN" in df else pd.Series(True, index=df.index)
        c = df["LBSTRESC"].isna() if "LBSTRESC" in df else pd.Series(True, index=df.index)
        issues += _issues_for_rows(df, n & c, domain=dom, variable="LBSTRESN", severity="warning",
                                   problem="no result (LBSTRESN and LBSTRESC empty); kept as not done",
                                   rule="MISSING_VALUE")
    return issues


def derive_dates(dom: str, df: pd.DataFrame, imputation: DateImputation) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Add ``--DT``/``--DTF`` for every ``--DTC`` (DATE_INVALID errors, DATE_IMPUTED warnings)."""
    issues: list[InputIssue] = []
    out = df
    for c in [c for c in df.columns if c.endswith("DTC")]:
        dt, flag = date_column_names(c)
        rule = imputation.end if is_end_date(c) else imputation.start
        parsed = compute_iso_dates(df[c], rule)
        out[dt] = parsed.dates
        out[flag] = parsed.flags
        issues += _issues_for_rows(df, parsed.invalid, domain=dom, variable=c, rule="DATE_INVALID",
                                   problem="not an ISO 8601 date (YYYY-MM-DD, YYYY-MM or YYYY)")
        imputed = (parsed.flags != "").to_numpy()
        if imputed.any():
            n = int(imputed.sum())
            issues.append(InputIssue(domain=dom, variable=c, severity="warning", rule="DATE_IMPUTED",
                                     problem=f"{n} partial date(s) imputed ('{rule}' of the period); "
                                             f"flagged in {flag}"))
    return out, issues


def check_terms(domains: dict[str, pd.DataFrame], schema: dict[str, Any]) -> list[InputIssue]:
    issues: list[InputIssue] = []
    for t in schema.get("terms", []):
        df = domains.get(t["domain"])
        if df is None or t["variable"] not in df:
            continue
        col = df[t["variable"]]
        numeric = t["variable"] in schema["domains"][t["domain"]].get("numeric", [])
        if numeric:
            allowed = {float(v) for v in t["values"]}
            bad = col.notna() & ~col.isin(allowed)
        else:
            allowed_u = {str(v).upper() for v in t["values"]}
            bad = col.notna() & ~col.astype(str).str.upper().isin(allowed_u)
        if "where" in t:
            w = t["where"]
            if w["variable"] not in df:
                continue
            bad &= df[w["variable"]].isin([v.upper() for v in w["values"]])
        issues += _issues_for_rows(df, bad, domain=t["domain"], variable=t["variable"], rule="CONTROLLED_TERM",
                                   severity=t.get("severity", "error"),
                                   problem=f"not a controlled term; expected one of {', '.join(t['values'])}")
    return issues


def check_duplicates(dom: str, df: pd.DataFrame, spec: dict[str, Any]) -> list[InputIssue]:
    keys = [k for k in spec.get("keys", []) if k in df.columns]
    if not keys:
        return []
    dup = df.duplicated(subset=keys, keep="first")
    return _issues_for_rows(df, dup, domain=dom, variable="+".join(keys), rule="DUPLICATE_KEY",
                            severity=spec.get("keys_severity", "error"), value_col="USUBJID",
                            problem="duplicate key: an earlier row has the same " + ", ".join(keys))


def check_date_order(domains: dict[str, pd.DataFrame], schema: dict[str, Any]) -> list[InputIssue]:
    issues: list[InputIssue] = []
    for dom, spec in schema["domains"].items():
        df = domains.get(dom)
        if df is None:
            continue
        for start, end in spec.get("date_order", []):
            s, e = date_column_names(start)[0], date_column_names(end)[0]
            if s in df and e in df:
                bad = (df[e] < df[s]).fillna(False)
                issues += _issues_for_rows(df, bad, domain=dom, variable=end, rule="DATE_ORDER",
                                           problem=f"{end} is before {start}")
    dm = domains.get("dm")
    if dm is not None and {"DTHDT", "RFXSTDT"} <= set(dm.columns):
        bad = (dm["DTHDT"] < dm["RFXSTDT"]).fillna(False)
        issues += _issues_for_rows(dm, bad, domain="dm", variable="DTHDTC", rule="DATE_ORDER",
                                   problem="death date is before the first dose (RFXSTDTC)")
    return issues


def check_subjects(domains: dict[str, pd.DataFrame]) -> list[InputIssue]:
    dm = domains.get("dm")
    if dm is None or "USUBJID" not in dm:
        return []
    known = pd.Index(dm["USUBJID"].dropna().unique())
    issues: list[InputIssue] = []
    for dom, df in domains.items():
        if dom == "dm" or "USUBJID" not in df:
            continue
        bad = df["USUBJID"].notna() & ~df["USUBJID"].isin(known)
        issues += _issues_for_rows(df, bad, domain=dom, variable="USUBJID", rule="UNKNOWN_SUBJECT",
                                   problem="subject not in dm")
    return issues


def load_study(
    study_dir: str | Path,
    options: ReadOptions | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[Study | None, list[InputIssue]]:
    """Read, check and normalise a study. Returns the study (None if a domain could not be
    read or lacks required variables) and every issue found (errors and warnings)."""
    options = options or ReadOptions()
    schema = load_schema()
    raw, issues = read_raw_domains(study_dir, on_file=(lambda d: on_stage(f"read {d}")) if on_stage else None)
    structural = check_structure(raw, schema)
    issues += structural
    # A missing file or variable does not stop the other checks: every problem is reported at
    # once (each check below skips what is absent); the study is withheld at the end.
    if on_stage:
        on_stage("check")
    domains: dict[str, pd.DataFrame] = {}
    for dom, df in raw.items():
        spec = schema["domains"][dom]
        df, found = normalise_types(dom, df, spec)
        issues += found
        issues += check_nonmissing(dom, df, spec)
        df, found = derive_dates(dom, df, options.imputation)
        issues += found
        issues += check_duplicates(dom, df, spec)
        domains[dom] = df
    if "lb" in domains and {"USUBJID", "LBTESTCD", "LBSTRESU"} <= set(domains["lb"].columns):
        for c in ("LBSTRESN", "LBSTNRLO", "LBSTNRHI"):
            if c not in domains["lb"]:
                domains["lb"][c] = np.nan
        for c in ("LBSPEC", "LBSTRESC", "LBCAT"):
            if c not in domains["lb"]:
                domains["lb"][c] = None
        domains["lb"], found = convert_lab_units(domains["lb"])
        issues += found
    issues += check_terms(domains, schema)
    issues += check_date_order(domains, schema)
    issues += check_subjects(domains)
    if any(i.severity == "error" for i in structural) or any(i.rule == "FILE_UNREADABLE" for i in issues):
        return None, issues
    meta = read_study_metadata(study_dir)
    study = Study(domains=domains, path=Path(study_dir), synthetic=bool(meta.get("synthetic", False)),
                  metadata=meta, checksum=compute_study_checksum(study_dir))
    return study, issues


def read_study(study_dir: str | Path, options: ReadOptions | None = None) -> Study:
    """Read, check and normalise a study folder; raise :class:`StudyInputError` on any error.

    Warnings (e.g. imputed partial dates) are kept in ``study.metadata["issues"]``.
    """
    study, issues = load_study(study_dir, options)
    if study is None or any(i.severity == "error" for i in issues):
        raise StudyInputError(issues)
    study.metadata["issues"] = issues
    return study
