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
* ``UNKNOWN_SUBJECT``: a USUBJID absent from dm;
* plausibility (``data/plausibility.toml``): ``DATE_OUT_OF_RANGE``, ``NUMBER_NOT_FINITE``,
  ``AGE_RANGE``, ``EXDOSE_RANGE``, ``AFTER_DEATH``, ``LAB_RANGE``, ``NEAR_MISS``;
* ``EMPTY_DOMAIN`` (dm without rows: error; other domains: warning), ``DUPLICATE_ROW`` (warning);
* reading (``sdtm/read.py``): ``NOT_REGULAR_FILE``, ``FILE_EMPTY``, ``FILE_UNREADABLE``,
  ``ENCODING``, ``CSV_DELIMITER``, ``CSV_FIELDS``, ``DUPLICATE_COLUMN``, ``VALUE_NOT_SCALAR``,
  ``COLUMN_UNNAMED``, ``RESERVED_COLUMN``, ``STUDY_JSON``;
* randomised protocols only (``sdtm/randomisation.py``): ``ARM_UNKNOWN``, ``ACTARM_UNKNOWN``,
  ``RANDOMIZED_MISSING``, ``RANDOMIZED_REPEATED``, ``TREATED_BEFORE_RANDOMISATION``,
  ``STRATUM_MISSING``.

A missing required variable is reported once and the checks that need it are skipped (a
missing key variable never turns into thousands of duplicate-key errors).

The schema is data (``data/sdtm_schema.toml``, ``data/plausibility.toml``); this module is the
one engine that applies it.
All checks are column operations over whole domains; issue records are built only for the rows
at fault.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmtrial.context import Study
from mmtrial.sdtm._columns import (
    TextCodes,
    distinct_rows,
    duplicated_both,
    encode_text,
    is_arrow_text,
    key_ids,
    register_codes,
    shared_codes,
    text_codes,
    text_isin,
    text_lookup,
    text_not_in,
)
from mmtrial.sdtm.dates import DateImputation, date_column_names, is_end_date, parse_iso_dates_coded
from mmtrial.sdtm.issues import InputIssue, StudyInputError
from mmtrial.sdtm.read import (
    compute_study_checksum,
    load_study_metadata,
    read_raw_domains,
)
from mmtrial.sdtm.units import UnitTable, convert_lab_units

if TYPE_CHECKING:
    from mmtrial.protocol.model import Protocol

MAX_ISSUES_PER_RULE = 10_000  # beyond this, one summary issue says how many more rows failed


@dataclass(frozen=True)
class ReadOptions:
    """Options for reading a study.

    ``imputation``: partial-date imputation (``sdtm/dates.py``). ``encoding``: the text encoding
    of CSV files (and of XPT character data) when it is not UTF-8; mmtrial never guesses it.
    ``date_min``/``date_max``: the plausible date window (``DATE_OUT_OF_RANGE``); default
    ``data/plausibility.toml``: 1900-01-01 to one year after today.
    """

    imputation: DateImputation = field(default_factory=DateImputation)
    encoding: str = "utf-8"
    date_min: _dt.date | None = None
    date_max: _dt.date | None = None

    def date_window(self) -> tuple[_dt.date, _dt.date]:
        cfg = load_plausibility()["dates"]
        lo = self.date_min or _dt.date.fromisoformat(cfg["min"])
        if self.date_max is not None:
            hi = self.date_max
        else:
            today = _dt.date.today()
            years = int(cfg["max_years_ahead"])
            try:
                hi = today.replace(year=today.year + years)
            except ValueError:  # 29 February
                hi = today.replace(year=today.year + years, day=28)
        return lo, hi


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    text = resources.files("mmtrial.data").joinpath("sdtm_schema.toml").read_text("utf-8")
    return tomllib.loads(text)


@lru_cache(maxsize=1)
def load_plausibility() -> dict[str, Any]:
    """The plausibility rules (``data/plausibility.toml``): limits, severities and rationale."""
    text = resources.files("mmtrial.data").joinpath("plausibility.toml").read_text("utf-8")
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
    return pd.Series(_trimmed_text(s), index=s.index, name=s.name)


def _trimmed_text(s: pd.Series, upper: bool = False) -> pd.api.extensions.ExtensionArray:
    """The text of ``s`` stripped of white space (Arrow ``utf8_trim_whitespace``, what pandas'
    ``str.strip`` calls), empty text missing, upper-cased (``utf8_upper``, as ``str.upper``)
    when ``upper``: one Arrow pass per operation, without pandas' per-call overhead (issue 15)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from mmtrial.sdtm._columns import arrow_text

    arr = pc.utf8_trim_whitespace(arrow_text(s))
    empty = pc.equal(arr, "")
    if pc.any(empty).as_py():
        arr = pc.if_else(empty, pa.scalar(None, arr.type), arr)
    if upper:
        arr = pc.utf8_upper(arr)
    return pd.array(arr, dtype="str")


def _is_text_dictionary(s: pd.Series) -> bool:
    """A text column read dictionary-encoded (``sdtm/read.py``: Parquet text), as pandas'
    ``ArrowDtype`` of an Arrow dictionary."""
    import pyarrow as pa

    if not isinstance(s.dtype, pd.ArrowDtype) or not pa.types.is_dictionary(s.dtype.pyarrow_dtype):
        return False
    t = s.dtype.pyarrow_dtype.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _decoded(s: pd.Series) -> pd.Series:
    """A dictionary-encoded text column as plain text (the column as the file holds it)."""
    if not _is_text_dictionary(s):
        return s
    arr = s.array.__arrow_array__()
    out = arr.cast(arr.type.value_type).to_pandas()
    out.index, out.name = s.index, s.name
    return out


def _trimmed_dictionary(s: pd.Series, upper: bool = False) -> tuple[pd.api.extensions.ExtensionArray, TextCodes]:
    """:func:`_trimmed_text` of a dictionary-encoded text column, computed on its distinct
    values and expanded to the rows once; with the column's :class:`TextCodes`.

    The chunks' dictionaries (one per Parquet row group, shared by its batches) are typed
    together, in chunk order, and each chunk's indices are taken to the typed codes directly
    into one small-integer array (no unified copy of the dictionaries, no int32 copy of the
    indices; issue 15). The codes, dictionary order and text are those of unifying the
    dictionaries first (``tests/sdtm/test_columns.py`` checks them against that oracle).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = s.array.__arrow_array__()
    chunks = list(arr.chunks) if isinstance(arr, pa.ChunkedArray) else [arr]
    dicts: list[Any] = []  # the distinct dictionaries, in order of first use
    which: list[int] = []  # per chunk, its dictionary's position in ``dicts``
    seen: dict[tuple[int, ...], int] = {}
    for c in chunks:
        d = c.dictionary
        ident = (d.offset, len(d), *(0 if b is None else b.address for b in d.buffers()))
        if ident not in seen:
            seen[ident] = len(dicts)
            dicts.append(d.cast(pa.large_string()) if not pa.types.is_large_string(d.type) else d)
        which.append(seen[ident])
    values = pa.concat_arrays(dicts) if dicts else pa.array([], type=pa.large_string())
    start = np.cumsum([0, *(len(d) for d in dicts)])
    values = pc.utf8_trim_whitespace(values)
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)
    if upper:
        values = pc.utf8_upper(values)
    distinct = encode_text(values)  # trimming and upper-casing may make two values equal
    entry_code = distinct.codes  # per entry of every dictionary, its typed code (-1: missing)
    codes = np.empty(len(s), dtype=np.min_scalar_type(-max(len(distinct.dictionary), 1)))
    missing = False
    pos = 0
    for c, j in zip(chunks, which, strict=True):
        n = len(c)
        remap = entry_code[start[j]:start[j + 1]]
        if c.null_count:  # a missing row takes the extra last entry, -1
            raw = np.asarray(c.indices.fill_null(len(remap)).to_numpy(zero_copy_only=False))
            codes[pos:pos + n] = np.append(remap, -1)[raw]
            missing = True
        elif np.array_equal(remap, np.arange(len(remap))):
            codes[pos:pos + n] = c.indices.to_numpy(zero_copy_only=False)
        else:
            codes[pos:pos + n] = remap[c.indices.to_numpy(zero_copy_only=False)]
            missing = missing or bool((remap < 0).any())
        pos += n
    mask = codes < 0 if missing else None
    indices = pa.array(codes, mask=mask) if mask is not None and mask.any() else pa.array(codes)
    text = pc.take(distinct.dictionary, indices, boundscheck=len(distinct.dictionary) == 0)
    return pd.array(text, dtype="str"), TextCodes(distinct.dictionary, codes)


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


def missing_variables(raw: dict[str, pd.DataFrame], schema: dict[str, Any]) -> dict[str, set[str]]:
    """Per domain read, the required variables it lacks (the checks that need them are skipped)."""
    return {dom: set(schema["domains"][dom]["required"]) - set(df.columns) for dom, df in raw.items()}


def _to_number(orig: pd.Series) -> pd.Series:
    """Text or numbers to float; text that is not a number becomes NaN (reported as TYPE)."""
    if pd.api.types.is_bool_dtype(orig):
        return orig.astype(float)
    if pd.api.types.is_numeric_dtype(orig):
        return orig.astype(float)
    txt = orig.astype("str").str.strip()
    # pandas would read "1,5" as NaN and "0x10" as NaN already; keep its parser for the rest
    return pd.to_numeric(txt.where(orig.notna()), errors="coerce").astype(float)


#: Character variables compared with controlled or known terms: upper-cased when read.
UPPER_CASE = frozenset({
    "LBTESTCD", "LBSPEC", "LBCAT", "LBSCAT", "LBSTRESC", "CMCAT", "RSCAT", "RSEVAL", "RSTESTCD", "DSCAT",
    "DSSCAT", "DSDECOD", "EXTRT", "CMTRT", "AEDECOD", "AEBODSYS", "AEACN", "AEOUT", "PRTRT", "TUSTRESC",
    "TRTESTCD", "MHCAT", "MHTERM", "AESER", "AEREL", "DTHFL", "SEX", "EXDOSFRQ"})


def normalise_types(dom: str, df: pd.DataFrame, spec: dict[str, Any]) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Numeric variables to float (TYPE errors for text; NUMBER_NOT_FINITE errors for inf,
    -inf and magnitudes beyond ``data/plausibility.toml`` ``numbers.max_abs``, set to NaN),
    character variables to text."""
    issues: list[InputIssue] = []
    # every column is typed into ``typed`` and the frame is built once at the end (no copy of the
    # values, no frame update per column; issue 15)
    typed: dict[str, pd.Series] = {}
    numeric = set(spec.get("numeric", []))
    max_abs = float(load_plausibility()["numbers"]["max_abs"])
    for c in df.columns:
        col = df[c]
        if c == "ROWNUM":
            typed[c] = col
            continue
        if c in numeric:
            orig = _decoded(col)
            num = _to_number(orig)
            def shown(c: str = c, orig: pd.Series = orig) -> pd.DataFrame:
                # what the issues read (ROWNUM, USUBJID as typed so far, the column as read);
                # built only when a row fails (issue 15)
                now = {k: typed[k] if k in typed else df[k] for k in ("ROWNUM", "USUBJID") if k in df.columns}
                now[c] = _as_text(orig) if not pd.api.types.is_numeric_dtype(orig) else orig
                return pd.DataFrame(now, index=df.index)
            if not pd.api.types.is_numeric_dtype(orig):
                txt = orig.astype("str").str.strip()
                bad = num.isna() & orig.notna() & (txt != "")
                decimal_comma = txt.str.fullmatch(r"[-+]?[0-9]+,[0-9]+").fillna(False)
                hint = ("Numeric variables hold numbers only; a decimal comma ('1,5') must be a point ('1.5')."
                        if bool((bad & decimal_comma).any()) else "Numeric variables hold numbers only.")
                if bool(bad.any()):
                    issues += _issues_for_rows(shown(), bad, domain=dom, variable=c, problem="not a number",
                                               rule="TYPE", hint=hint)
            arr = num.to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                absurd = np.abs(arr) >= max_abs  # NaN compares False; inf is absurd (one pass less; issue 15)
            if absurd.any():
                issues += _issues_for_rows(shown(), absurd, domain=dom, variable=c, rule="NUMBER_NOT_FINITE",
                                           problem=f"not a finite number of plausible size (|x| < {max_abs:g})",
                                           hint="An overflow, a sentinel code or a unit error: give the "
                                                "measured value.")
            typed[c] = num.where(~absurd) if absurd.any() else num
        elif pd.api.types.is_float_dtype(col) or pd.api.types.is_integer_dtype(col):
            text = _as_text(col)
            typed[c] = text.str.upper() if c in UPPER_CASE else text
        elif _is_text_dictionary(col):
            text, codes = _trimmed_dictionary(col, upper=c in UPPER_CASE)
            typed[c] = pd.Series(text, index=df.index, name=c)
            register_codes(typed[c], codes)
        else:
            typed[c] = pd.Series(_trimmed_text(col, upper=c in UPPER_CASE), index=df.index, name=c)
    out = pd.DataFrame(typed, index=df.index, columns=df.columns, copy=False) if typed else df.copy(deep=False)
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
        none = np.ones(len(df), dtype=bool)
        for v in ("LBSTRESN", "LBSTRESC"):  # numpy's &, not pandas' (numexpr's threads; issue 15)
            if v in df:
                none &= df[v].isna().to_numpy()
        issues += _issues_for_rows(df, none, domain=dom, variable="LBSTRESN", severity="warning",
                                   problem="no result (LBSTRESN and LBSTRESC empty); kept as not done",
                                   rule="MISSING_VALUE")
    return issues


def derive_dates(dom: str, df: pd.DataFrame, imputation: DateImputation,
                 window: tuple[_dt.date, _dt.date] | None = None) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Add ``--DT``/``--DTF`` for every ``--DTC`` (DATE_INVALID and DATE_OUT_OF_RANGE errors,
    DATE_IMPUTED warnings). Dates are parsed as calendar days and never overflow: a date outside
    the plausible ``window`` is an error, and one beyond pandas' nanosecond range is NaT."""
    issues: list[InputIssue] = []
    out = df
    cfg = load_plausibility()["dates"]
    exempt = set(cfg.get("exempt", []))
    for c in [c for c in df.columns if c.endswith("DTC")]:
        dt, flag = date_column_names(c)
        rule = imputation.end if is_end_date(c) else imputation.start
        checked = window is not None and c not in exempt
        # parsed per distinct text; a rule's per-row mask is built only when one of the
        # distinct texts fails it (issue 15); the same issues as compute_iso_dates' masks
        parsed = parse_iso_dates_coded(df[c], rule)
        codes = parsed.codes
        # copy=False: the arrays are new (pandas 3 copies a numpy array by default; issue 15)
        out[dt] = pd.Series(parsed.dates[codes], index=df.index, copy=False)
        out[flag] = pd.Series(_flags_of_rows(parsed.flags, codes), index=df.index, dtype=object, copy=False)
        if parsed.invalid.any():
            issues += _issues_for_rows(df, parsed.invalid[codes], domain=dom, variable=c, rule="DATE_INVALID",
                                       problem="not an ISO 8601 date (YYYY-MM-DD, YYYY-MM or YYYY)")
        outside = np.zeros(len(parsed.days), dtype=bool)
        if checked:
            outside = parsed.outside(window)
            if outside.any():
                issues += _issues_for_rows(df, outside[codes], domain=dom, variable=c, rule=cfg["rule"],
                                           severity=cfg["severity"],
                                           problem=f"outside the plausible dates {window[0]} to {window[1]}",
                                           hint="A typing error in the year? (ReadOptions date_min/date_max "
                                                "widen the window.)")
        unrepresentable = parsed.out_of_range & ~outside
        if unrepresentable.any():
            issues += _issues_for_rows(df, unrepresentable[codes], domain=dom, variable=c,
                                       rule=cfg["rule"], severity=cfg["severity"],
                                       problem="outside the dates mmtrial can represent (1678-2261)")
        imputed = parsed.imputed
        n = int(np.count_nonzero(imputed[codes])) if imputed.any() else 0
        if n:
            issues.append(InputIssue(domain=dom, variable=c, severity="warning", rule="DATE_IMPUTED",
                                     problem=f"{n} partial date(s) imputed ('{rule}' of the period); "
                                             f"flagged in {flag}"))
    return out, issues


def _flags_of_rows(flags: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The ``--DTF`` flag of each row (object: ``""``, ``"D"``, ``"M"``) from the flags of the
    distinct texts; without a gather when no date is partial (issue 15)."""
    if (flags == "").all():
        out = np.empty(len(codes), dtype=object)
        out.fill("")
        return out
    return flags[codes]


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
        elif is_arrow_text(col):
            # on the column's distinct values, taken back to the rows by their codes (issue 15)
            tc = text_codes(col)
            wrong = ~_upper_isin(tc.dictionary, {str(v).upper() for v in t["values"]})
            bad = np.append(wrong, False)[tc.codes] if wrong.any() else np.zeros(len(col), dtype=bool)
        else:
            allowed_u = {str(v).upper() for v in t["values"]}
            bad = col.notna() & ~col.astype(str).str.upper().isin(allowed_u)
        bad = np.asarray(bad, dtype=bool)
        if "where" in t:
            w = t["where"]
            if w["variable"] not in df:
                continue
            wcol = df[w["variable"]]
            wanted = [v.upper() for v in w["values"]]
            if bad.any():  # else nothing to restrict (issue 15)
                bad = bad & (text_isin(wcol, wanted) if is_arrow_text(wcol) else wcol.isin(wanted).to_numpy(dtype=bool))
        issues += _issues_for_rows(df, bad, domain=t["domain"], variable=t["variable"], rule="CONTROLLED_TERM",
                                   severity=t.get("severity", "error"),
                                   problem=f"not a controlled term; expected one of {', '.join(t['values'])}")
    return issues


def _upper_isin(texts: Any, allowed: set[str]) -> np.ndarray:
    """Whether each text, upper-cased, is one of ``allowed`` (Arrow; a bool array)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.is_in(pc.utf8_upper(texts), value_set=pa.array(sorted(allowed), type=texts.type))
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)


def check_duplicates(dom: str, df: pd.DataFrame, spec: dict[str, Any]) -> list[InputIssue]:
    """DUPLICATE_KEY on the natural key (skipped when a required key variable is missing: that
    is one MISSING_VARIABLE error, not one duplicate per row), then DUPLICATE_ROW (warning) for
    rows identical to an earlier one that the key check did not report."""
    keys = [k for k in spec.get("keys", []) if k in df.columns]
    required_keys = set(spec.get("keys", [])) & set(spec.get("required", []))
    issues: list[InputIssue] = []
    key_dup = np.zeros(len(df), dtype=bool)
    # rows equal on every column are equal on the key (or on USUBJID): only rows whose key
    # repeats can repeat a whole row, so the all-column test runs on those rows alone (issue 15)
    some_keys = keys or [k for k in ("USUBJID",) if k in df.columns]
    candidates = None
    first_dup = key_dup
    if some_keys and len(df):
        first_dup, any_dup = duplicated_both(key_ids([df[k] for k in some_keys]))
        candidates = np.flatnonzero(any_dup)
    if keys and required_keys <= set(df.columns):
        key_dup = first_dup
        where = spec.get("keys_where")
        if where and where["variable"] in df:
            key_dup = key_dup & df[where["variable"]].isin(where["values"]).to_numpy()
        issues += _issues_for_rows(df, key_dup, domain=dom, variable="+".join(keys), rule="DUPLICATE_KEY",
                                   severity=spec.get("keys_severity", "error"), value_col="USUBJID",
                                   problem="duplicate key: an earlier row has the same " + ", ".join(keys))
    cols = [c for c in df.columns if c != "ROWNUM"]
    if cols and len(df):
        if candidates is None:
            row_dup = np.array(df.duplicated(subset=cols, keep="first"), dtype=bool)
        else:
            row_dup = np.zeros(len(df), dtype=bool)
            if len(candidates):
                row_dup[candidates] = df.iloc[candidates].duplicated(subset=cols, keep="first").to_numpy()
        row_dup &= ~key_dup
        issues += _issues_for_rows(df, row_dup, domain=dom, variable="(row)", rule="DUPLICATE_ROW",
                                   severity="warning", value_col="USUBJID",
                                   problem="the row repeats an earlier row exactly; both are kept")
    return issues


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
    known = dm["USUBJID"].dropna().unique()
    issues: list[InputIssue] = []
    for dom, df in domains.items():
        if dom == "dm" or "USUBJID" not in df:
            continue
        # Arrow's hash lookup: pandas' isin on the str dtype builds a Python object per subject
        # of dm for every domain (issue 15)
        bad = text_not_in(df["USUBJID"], known)
        issues += _issues_for_rows(df, bad, domain=dom, variable="USUBJID", rule="UNKNOWN_SUBJECT",
                                   problem="subject not in dm")
    return issues


#: A domain whose file could not be read at all: the study is withheld.
UNREAD_RULES = frozenset({"FILE_UNREADABLE", "FILE_EMPTY", "ENCODING", "CSV_FIELDS", "NOT_REGULAR_FILE",
                          "VALUE_NOT_SCALAR"})


def check_empty(dom: str, df: pd.DataFrame) -> list[InputIssue]:
    """EMPTY_DOMAIN: a header-only file. dm without rows is an error (no subject to analyse);
    another domain without rows is a warning (the analyses that need it report "not evaluable")."""
    if len(df):
        return []
    severity = "error" if dom == "dm" else "warning"
    return [InputIssue(domain=dom, variable="(file)", rule="EMPTY_DOMAIN", severity=severity,  # type: ignore[arg-type]
                       problem="the file has a header but no rows" + ("; no subject to analyse" if dom == "dm" else ""))]


def check_age(dm: pd.DataFrame) -> list[InputIssue]:
    """AGE_RANGE: error outside [error_min, error_max], warning outside [warning_min, warning_max]."""
    if "AGE" not in dm:
        return []
    cfg = load_plausibility()["age"]
    age = dm["AGE"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        err = (age < cfg["error_min"]) | (age > cfg["error_max"])
        warn = ~err & ((age < cfg["warning_min"]) | (age > cfg["warning_max"]))
    return (_issues_for_rows(dm, err, domain="dm", variable="AGE", rule=cfg["rule"],
                             problem=f"not a human age in years ({cfg['error_min']}-{cfg['error_max']})")
            + _issues_for_rows(dm, warn, domain="dm", variable="AGE", rule=cfg["rule"], severity="warning",
                               problem=f"outside the adult range {cfg['warning_min']}-{cfg['warning_max']} "
                                       "years; kept"))


def _regimens(protocol: Protocol | None) -> list[Any]:
    """The protocol's regimen(s): ``Protocol.regimen`` and, when present, each arm's regimen."""
    if protocol is None:
        return []
    out = [protocol.regimen] if getattr(protocol, "regimen", None) is not None else []
    arms = getattr(protocol, "arms", None) or {}
    if isinstance(arms, dict):
        from pydantic import ValidationError

        from mmtrial.protocol.regimen import Regimen

        for arm in arms.values():
            reg = getattr(arm, "regimen", None) or (arm.get("regimen") if isinstance(arm, dict) else None)
            if isinstance(reg, dict):
                try:
                    reg = Regimen.model_validate(reg)
                except ValidationError:  # the protocol loader reports it; no dose check here
                    reg = None
            if reg is not None and hasattr(reg, "effective_phases"):
                out.append(reg)
    return out


def compute_max_planned_mg(protocol: Protocol | None) -> dict[str, float]:
    """Largest planned dose per administration in mg, per drug (upper-case name), over every
    phase and step-up dose; mg/m2 and mg/kg doses for a large participant
    (``data/plausibility.toml`` ``exdose.max_bsa_m2`` / ``max_weight_kg``)."""
    cfg = load_plausibility()["exdose"]
    per_unit = {"mg": 1.0, "mg/m2": float(cfg["max_bsa_m2"]), "mg/kg": float(cfg["max_weight_kg"])}
    out: dict[str, float] = {}
    for reg in _regimens(protocol):
        for ph in reg.effective_phases():
            for d in ph.drugs:
                doses = [d.dose, *(s.dose for s in d.step_up)]
                mg = max(doses) * per_unit.get(d.unit, float(cfg["max_weight_kg"]))
                out[d.name.upper()] = max(out.get(d.name.upper(), 0.0), mg)
    return out


def check_exdose(ex: pd.DataFrame, protocol: Protocol | None) -> list[InputIssue]:
    """EXDOSE_RANGE: negative, or above max_factor x the regimen's largest planned dose in mg
    (a drug outside the regimen: above max_any_mg). EXDOSE = 0 (placebo, withheld) is kept."""
    if not {"EXDOSE", "EXTRT"} <= set(ex.columns):
        return []
    cfg = load_plausibility()["exdose"]
    dose = ex["EXDOSE"].to_numpy(dtype=float)
    planned = compute_max_planned_mg(protocol)
    # the limit and the unit test per distinct (upper-cased) text, taken to the rows by code (issue 15)
    limits = {k: v * float(cfg["max_factor"]) for k, v in planned.items()}
    drugs = _upper_distinct(ex["EXTRT"])
    limit = np.append([limits.get(d, np.nan) for d in drugs.dictionary.to_pylist()], np.nan)[drugs.codes]
    limit = np.where(np.isnan(limit), float(cfg["max_any_mg"]), limit)
    if "EXDOSU" in ex:
        units = _upper_distinct(ex["EXDOSU"])
        mg = np.append([u == "MG" for u in units.dictionary.to_pylist()], False).astype(bool)[units.codes]
    else:
        mg = np.ones(len(ex), bool)
    with np.errstate(invalid="ignore"):
        neg = dose < 0
        high = mg & (dose > limit)
    issues = _issues_for_rows(ex, neg, domain="ex", variable="EXDOSE", rule=cfg["rule"], severity=cfg["severity"],
                              problem="a dose cannot be negative")
    if high.any():
        drug = ex["EXTRT"].astype("str").str.upper()
        lim = pd.Series(limit, index=ex.index)
        for lv in np.unique(limit[high]):
            sel = high & (lim.to_numpy() == lv)
            names = ", ".join(sorted(set(drug[sel])))
            src = (f"{cfg['max_factor']:g} x the protocol's largest planned dose in mg"
                   if any(n in planned for n in drug[sel]) else "the limit for a drug not in the regimen")
            issues += _issues_for_rows(ex, sel, domain="ex", variable="EXDOSE", rule=cfg["rule"],
                                       severity=cfg["severity"],
                                       problem=f"above {lv:g} mg per administration for {names} ({src})",
                                       hint="A unit or typing error? EXDOSE is the dose given, in EXDOSU.")
    return issues


def _upper_distinct(s: pd.Series) -> TextCodes:
    """The column's distinct texts upper-cased (``str.upper``, Arrow's ``utf8_upper``) with
    each row's code (-1 = missing); two texts equal once upper-cased keep separate codes."""
    import pyarrow.compute as pc

    tc = text_codes(s)
    return TextCodes(pc.utf8_upper(tc.dictionary), tc.codes)


def compute_death_dates(domains: dict[str, pd.DataFrame]) -> pd.Series:
    """Per subject, the death date used by AFTER_DEATH: the later of dm DTHDTC and ds DSSTDTC
    where DSDECOD = DEATH, complete dates only (an imputed partial date is not evidence)."""
    parts = []
    dm = domains.get("dm")
    if dm is not None and {"USUBJID", "DTHDT"} <= set(dm.columns):
        ok = dm["DTHDT"].notna() & (dm.get("DTHDTF", pd.Series("", index=dm.index)).fillna("") == "")
        parts.append(dm.loc[ok, ["USUBJID", "DTHDT"]].rename(columns={"DTHDT": "DEATH"}))
    ds = domains.get("ds")
    if ds is not None and {"USUBJID", "DSDECOD", "DSSTDT"} <= set(ds.columns):
        ok = (ds["DSDECOD"] == "DEATH") & ds["DSSTDT"].notna() & (ds.get("DSSTDTF", "") == "")
        parts.append(ds.loc[ok, ["USUBJID", "DSSTDT"]].rename(columns={"DSSTDT": "DEATH"}))
    if not parts:
        return pd.Series(dtype="datetime64[ns]")
    allp = pd.concat(parts, ignore_index=True)
    return allp.groupby("USUBJID")["DEATH"].max()


def check_after_death(domains: dict[str, pd.DataFrame]) -> list[InputIssue]:
    """AFTER_DEATH: records dated after the subject's death (severity per domain and variable,
    ``data/plausibility.toml``); records on the day of death are accepted."""
    death = compute_death_dates(domains)
    if death.empty:
        return []
    death_subjects = death.index.array  # one per subject (a group-by's keys)
    death_days = death.to_numpy()
    issues: list[InputIssue] = []
    death_of: dict[str, np.ndarray] = {}  # per domain, each row's subject's death date (NaT: alive)
    for r in load_plausibility()["after_death"]:
        df = domains.get(r["domain"])
        dt, flag = date_column_names(r["variable"])
        if df is None or dt not in df or "USUBJID" not in df:
            continue
        if r["domain"] not in death_of:
            death_of[r["domain"]] = text_lookup(df["USUBJID"], death_subjects, death_days, np.datetime64("NaT"))
        d = death_of[r["domain"]]
        with np.errstate(invalid="ignore"):
            bad = df[dt].to_numpy() > d  # NaT compares False
        rows = np.flatnonzero(bad)
        if len(rows) and flag in df:  # "" = a complete date (missing counts as complete, as before)
            f = df[flag].to_numpy()[rows]
            bad[rows[~((f == "") | pd.isna(f))]] = False  # an imputed date is not evidence
        if r["domain"] == "ds" and "DSDECOD" in df:
            bad &= (df["DSDECOD"] != "DEATH").to_numpy()
        if not bad.any():
            continue
        issues += _issues_for_rows(df, bad, domain=r["domain"], variable=r["variable"], rule="AFTER_DEATH",
                                   severity=r["severity"],
                                   problem="dated after the subject's death (dm DTHDTC / ds DEATH)"
                                           + ("" if r["severity"] == "error" else "; kept"),
                                   hint="Check this date and the death date.")
    return issues


def check_lab_ranges(lb: pd.DataFrame) -> list[InputIssue]:
    """LAB_RANGE: results outside physiological bounds, in the default unit after conversion."""
    needed = {"LBTESTCD", "LBSTRESN", "LBSTRESU"}
    if not needed <= set(lb.columns) or lb.empty:
        return []
    table = UnitTable.load().default_units()
    unit_of = {(t, sp): u for t, sp, u in table[["LBTESTCD", "LBSPEC", "UNIT_DEFAULT"]].itertuples(index=False)}
    issues: list[InputIssue] = []
    spec = lb["LBSPEC"] if "LBSPEC" in lb else pd.Series(None, index=lb.index, dtype="str")
    value = lb["LBSTRESN"].to_numpy(dtype=float)
    raw_v = lb["LBSTRESN_RAW"] if "LBSTRESN_RAW" in lb else lb["LBSTRESN"]
    raw_u = lb["LBSTRESU_RAW"] if "LBSTRESU_RAW" in lb else lb["LBSTRESU"]

    def shown(bad: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        # the failing rows with their value as read ("value unit"): built for those rows only,
        # not as a text column over every lab row (issue 15)
        rows = np.flatnonzero(bad)
        sub = lb.iloc[rows]
        text = _as_text(raw_v.iloc[rows].astype(float)).fillna("") + " " + raw_u.iloc[rows].fillna("").astype("str")
        return sub.assign(_VALUE=text), np.ones(len(rows), dtype=bool)

    # each rule selects rows by (test, unit, specimen): tested once per distinct combination,
    # then taken to the rows by the combination's number (issue 15)
    first, combo = _lab_combinations(lb, spec)
    keys = pd.DataFrame({"t": lb["LBTESTCD"].iloc[first].to_numpy(), "u": lb["LBSTRESU"].iloc[first].to_numpy(),
                         "s": spec.iloc[first].to_numpy()})
    rules = load_plausibility()["lab_range"]
    sel: list[np.ndarray] = []
    for r in rules:
        units = {u for (t, sp), u in unit_of.items() if t == r["testcd"] and (not r["spec"] or sp == r["spec"])}
        ok = (keys["t"] == r["testcd"]) & keys["u"].isin(units)
        if r["spec"]:
            ok &= keys["s"] == r["spec"]
        sel.append(ok.to_numpy(dtype=bool) if units else np.zeros(len(keys), dtype=bool))
    # the rows are tested against every rule at once: per combination, the bounds of the rule
    # that applies to it (a combination that two rules select gets a second "layer"), so each
    # lab row is read a few times, not 4 times per rule (issue 15)
    lo_b = np.array([float(r["min"]) for r in rules])
    hi_b = np.array([float(r["max"]) for r in rules])
    depth = np.zeros(len(keys), dtype=np.int64)
    layers: list[np.ndarray] = []
    for ri, ok in enumerate(sel):
        idx = np.flatnonzero(ok)
        for lyr in np.unique(depth[idx]):
            while len(layers) <= lyr:
                layers.append(np.full(len(keys), -1, dtype=np.int64))
            layers[lyr][idx[depth[idx] == lyr]] = ri
        depth[idx] += 1
    failing: list[tuple[np.ndarray, np.ndarray]] = []  # (rule, row) of every failing row
    for rule_c in layers:
        has = rule_c >= 0
        lo_c = np.where(has, lo_b[np.maximum(rule_c, 0)], np.nan)
        hi_c = np.where(has, hi_b[np.maximum(rule_c, 0)], np.nan)
        with np.errstate(invalid="ignore"):
            rows = np.flatnonzero((value < lo_c[combo]) | (value > hi_c[combo]))
        failing.append((rule_c[combo[rows]], rows))
    for ri, r in enumerate(rules):
        rows = np.unique(np.concatenate([rw[rl == ri] for rl, rw in failing])) if failing else np.zeros(0, np.int64)
        if not len(rows):
            continue
        units = {u for (t, sp), u in unit_of.items() if t == r["testcd"] and (not r["spec"] or sp == r["spec"])}
        unit = sorted(units)[0]
        bad = np.zeros(len(lb), dtype=bool)
        bad[rows] = True
        issues += _issues_for_rows(*shown(bad), domain="lb", variable="LBSTRESN", rule="LAB_RANGE", value_col="_VALUE",
                                   problem=f"{r['testcd']}{' ' + r['spec'] if r['spec'] else ''} outside "
                                           f"{r['min']:g}-{r['max']:g} {unit} after conversion: {r['why']}",
                                   hint="A sign, unit or typing error?")
    return issues


def _lab_combinations(lb: pd.DataFrame, spec: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """:func:`distinct_rows` of (LBTESTCD, unit, specimen) for the lab-range rules.

    After unit conversion the combinations of the unit as given (LBSTRESU_RAW), which unit
    conversion has already found (shared within ``load_study``), are used when the converted
    LBSTRESU is the same on every row of each of them (as conversion makes it: a function of
    the combination); the rules then select the same rows (issue 15). Else the combinations
    of LBSTRESU itself.
    """
    unit = lb["LBSTRESU"]
    if "LBSTRESU_RAW" in lb and is_arrow_text(unit) and is_arrow_text(lb["LBSTRESU_RAW"]):
        first, combo = distinct_rows([lb["LBTESTCD"], spec, lb["LBSTRESU_RAW"]])
        codes = text_codes(unit).codes
        if np.array_equal(codes[first][combo], codes):
            return first, combo
    return distinct_rows([lb["LBTESTCD"], unit, spec])


def _known_values(kind: str, protocol: Protocol | None) -> list[str]:
    if kind == "lab_tests":
        return sorted(set(UnitTable.load().frame["LBTESTCD"]) | {"IFE", "BMCLONAL"})
    if kind == "regimen":
        return sorted({n.upper() for reg in _regimens(protocol) for n in reg.drug_names()})
    return []


def check_near_misses(domains: dict[str, pd.DataFrame], protocol: Protocol | None) -> list[InputIssue]:
    """NEAR_MISS: an unknown value close to a known one ("MPROTIEN: did you mean MPROTEIN?");
    one issue per distinct value, with its first row, subject and the number of rows."""
    issues: list[InputIssue] = []
    for r in load_plausibility()["near_miss"]:
        df = domains.get(r["domain"])
        known = _known_values(r["known"], protocol)
        var = r["variable"]
        if df is None or var not in df or not known:
            continue
        vals = df[var]
        if is_arrow_text(vals):  # on the column's distinct values (issue 15)
            cand = text_not_in(vals, [*known, *r.get("allow", [])])
        else:
            cand = (vals.notna() & ~vals.isin(known) & ~vals.isin(r.get("allow", []))).to_numpy()
        if r.get("skip_lbcat") and "LBCAT" in df:
            lbcat = df["LBCAT"]
            cand &= ~(text_isin(lbcat, r["skip_lbcat"]) if is_arrow_text(lbcat)
                      else lbcat.isin(r["skip_lbcat"]).to_numpy(dtype=bool))
        if not cand.any():
            continue
        sub = df.loc[cand]
        first = sub.drop_duplicates(var)
        counts = sub.groupby(var).agg(rows=("ROWNUM", "size"), subjects=("USUBJID", "nunique")) \
            if "USUBJID" in sub else sub.groupby(var).agg(rows=("ROWNUM", "size"))
        for row in first.itertuples(index=False):  # one per distinct unknown value
            v = getattr(row, var)
            match = difflib.get_close_matches(str(v), known, n=1, cutoff=float(r["cutoff"]))
            if not match:
                continue
            err_for = r.get("error_for", [])
            severity = "error" if not err_for or match[0] in err_for else "warning"
            c = counts.loc[v]
            who = f", {int(c['subjects'])} subject(s)" if "subjects" in c else ""
            issues.append(InputIssue(
                domain=r["domain"], variable=var, value=str(v), row=int(row.ROWNUM), severity=severity,  # type: ignore[arg-type]
                usubjid=None if "USUBJID" not in sub or pd.isna(row.USUBJID) else str(row.USUBJID),
                rule="NEAR_MISS",
                problem=f"unknown {var} ({int(c['rows'])} row(s){who}); did you mean {match[0]}?",
                hint=f"Correct the code to {match[0]}, or keep it and ignore this if it is another test."
                     if severity == "warning" else f"Correct the value to {match[0]}."))
    return issues


def check_plausibility(domains: dict[str, pd.DataFrame], missing: dict[str, set[str]],
                       protocol: Protocol | None = None) -> list[InputIssue]:
    """The plausibility rules of ``data/plausibility.toml`` (each skipped where a variable it
    needs is missing: that is reported once, as MISSING_VARIABLE)."""
    issues: list[InputIssue] = []
    if "dm" in domains and "AGE" not in missing.get("dm", set()):
        issues += check_age(domains["dm"])
    if "ex" in domains and not {"EXDOSE", "EXTRT"} & missing.get("ex", set()):
        issues += check_exdose(domains["ex"], protocol)
    issues += check_after_death(domains)
    if "lb" in domains and not {"LBTESTCD", "LBSTRESU"} & missing.get("lb", set()):
        issues += check_lab_ranges(domains["lb"])
    issues += check_near_misses(domains, protocol)
    return issues


def check_domains(raw: dict[str, pd.DataFrame], schema: dict[str, Any],
                  options: ReadOptions, *, consume: bool = False) -> tuple[dict[str, pd.DataFrame], list[InputIssue]]:
    """Each domain typed, its key variables non-missing, its dates derived (the options'
    imputation and window), duplicates and emptiness checked: the frames and every issue.
    Shared by the study reader (:func:`load_study`) and the external-cohort reader.

    ``consume``: remove each frame from ``raw`` once it is typed, so the frames as read and as
    typed are not all held at once (peak memory, issue 15); ``raw`` is empty afterwards.
    """
    with shared_codes():
        return _check_domains(raw, schema, options, consume)


def _check_domains(raw: dict[str, pd.DataFrame], schema: dict[str, Any], options: ReadOptions,
                   consume: bool) -> tuple[dict[str, pd.DataFrame], list[InputIssue]]:
    issues: list[InputIssue] = []
    domains: dict[str, pd.DataFrame] = {}
    for dom in list(raw):
        df = raw.pop(dom) if consume else raw[dom]
        spec = schema["domains"][dom]
        df, found = normalise_types(dom, df, spec)
        issues += found
        issues += check_nonmissing(dom, df, spec)
        df, found = derive_dates(dom, df, options.imputation, options.date_window())
        issues += found
        issues += check_duplicates(dom, df, spec)
        issues += check_empty(dom, df)
        domains[dom] = df
    return domains, issues


def load_study(
    study_dir: str | Path,
    options: ReadOptions | None = None,
    on_stage: Callable[[str], None] | None = None,
    protocol: Protocol | None = None,
) -> tuple[Study | None, list[InputIssue]]:
    """Read, check and normalise a study. Returns the study (None if a domain could not be
    read or lacks required variables) and every issue found (errors and warnings).

    ``protocol``: when given, EXDOSE is checked against its regimen's doses and EXTRT near its
    drug names (``data/plausibility.toml``); without it, only the regimen-free limits apply.
    Raises :class:`~mmtrial.sdtm.read.StudyFolderError` (a usage error) for a missing folder.
    """
    with shared_codes():  # each text column's codes computed once for all the checks (issue 15)
        return _load_study(study_dir, options, on_stage, protocol)


def _load_study(study_dir: str | Path, options: ReadOptions | None, on_stage: Callable[[str], None] | None,
                protocol: Protocol | None) -> tuple[Study | None, list[InputIssue]]:
    options = options or ReadOptions()
    schema = load_schema()
    raw, issues = read_raw_domains(study_dir, on_file=(lambda d: on_stage(f"read {d}")) if on_stage else None,
                                   encoding=options.encoding)
    structural = check_structure(raw, schema)
    issues += structural
    missing = missing_variables(raw, schema)
    # A missing file or variable does not stop the other checks: every problem is reported at
    # once (each check below skips what is absent); the study is withheld at the end.
    if on_stage:
        on_stage("check")
    domains, found = check_domains(raw, schema, options, consume=True)
    issues += found
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
    issues += check_plausibility(domains, missing, protocol)
    if protocol is not None and getattr(protocol, "is_randomised", False):  # two-arm trials only
        from mmtrial.sdtm.randomisation import check_randomised_study

        issues += check_randomised_study(domains, protocol)
    meta, found = load_study_metadata(study_dir)
    issues += found
    if any(i.severity == "error" for i in structural) or any(i.rule in UNREAD_RULES for i in issues):
        return None, issues
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
