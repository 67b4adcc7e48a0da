"""Read a study folder of SDTM-style domains in CSV, Parquet, SAS XPT or CDISC Dataset-JSON.

The extension says the format (../shared/spec/data-contract.md). Reading gives the domains as
given ("raw"); :func:`mmtrial.sdtm.check.load_study` then checks and normalises them.

Reading never raises for a problem in a file: each becomes an :class:`InputIssue` naming the
file (rules ``NOT_REGULAR_FILE``, ``FILE_EMPTY``, ``FILE_UNREADABLE``, ``ENCODING``,
``CSV_DELIMITER``, ``CSV_FIELDS``, ``DUPLICATE_COLUMN``, ``VALUE_NOT_SCALAR``, ``STUDY_JSON``;
docs/input-checks.md). Decisions:

* a domain path that is not a regular file (a folder, a FIFO, a socket, a broken link) is an
  error; it is never opened (opening a FIFO for reading would block);
* CSV and Dataset-JSON are UTF-8 (a byte-order mark is accepted; UTF-16 with its BOM too). Any
  other encoding is an error naming the line and byte, unless the user names the encoding
  (``ReadOptions(encoding="latin-1")``): mmtrial never guesses an encoding;
* the CSV delimiter is ``,``; a header without a comma but with ``;``, tab or ``|`` is read
  with that delimiter and a warning says so;
* a CSV record with more or fewer fields than the header is an error naming its line;
* two columns whose names differ only in case (``AGE``/``age``) are an error; the first is kept.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrial.errors import UsageError
from mmtrial.sdtm.issues import InputIssue

FORMATS = {".csv": "csv", ".parquet": "parquet", ".xpt": "xpt", ".json": "json"}
KNOWN_DOMAINS = ("dm", "ex", "lb", "ae", "ds", "cm", "rs", "pr", "tu", "tr", "mh", "vs", "suppdm", "dv")
DELIMITERS = (",", ";", "\t", "|")
MAX_ROW_ISSUES = 20  # malformed CSV records listed per file (then one line with the count)


class StudyFolderError(UsageError, FileNotFoundError):
    """The study folder does not exist or is not a folder (a usage error, exit 2)."""


class DomainReadError(Exception):
    """A file that cannot be read as its format: carries the issue to report."""

    def __init__(self, rule: str, problem: str, *, hint: str = "", row: int | None = None,
                 value: str | None = None, variable: str = "(file)"):
        super().__init__(problem)
        self.rule, self.problem, self.hint, self.row, self.value = rule, problem, hint, row, value
        self.variable = variable


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def regular_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file (``None`` when it is); never opens it."""
    try:
        st = path.stat()  # follows a symbolic link: a link to a regular file is fine
    except OSError as exc:
        return f"cannot be accessed ({exc.strerror or exc}); a broken link?"
    if not stat.S_ISREG(st.st_mode):
        return f"is {_file_kind(st.st_mode)}, not a regular file"
    return None


# --- text decoding ---------------------------------------------------------------------------
def decode_text(data: bytes, encoding: str, what: str) -> str:
    """Bytes to text: a BOM decides (UTF-8, UTF-16); else ``encoding``; errors name the line."""
    if data.startswith(codecs.BOM_UTF8):
        data, encoding = data[len(codecs.BOM_UTF8):], "utf-8"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        bad = data[exc.start:exc.start + 4]
        raise DomainReadError(
            "ENCODING", f"{what} is not valid {encoding}: byte {bad[:1].hex(' ')} at line {line} "
                        f"(byte offset {exc.start})",
            hint="Save the file as UTF-8, or name its encoding (ReadOptions(encoding='latin-1')).",
            value=bad[:1].hex()) from None
    except LookupError:
        raise DomainReadError("ENCODING", f"unknown encoding {encoding!r}") from None
    if "\x00" in text:
        raise DomainReadError("FILE_UNREADABLE", f"{what} contains NUL bytes: a binary file, not text")
    return text


# --- CSV -------------------------------------------------------------------------------------
def detect_delimiter(header_line: str) -> str:
    """``,`` when the header has a comma; else the one of ``; tab |`` it has most of."""
    if "," in header_line:
        return ","
    counts = {d: header_line.count(d) for d in DELIMITERS[1:]}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _csv_shape_errors(text: str, delimiter: str, n_fields: int) -> list[tuple[int, int, int]]:
    """(data row, line, fields) of every record whose field count differs from the header."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    out: list[tuple[int, int, int]] = []
    next(reader, None)
    row = 0
    for rec in reader:
        if not rec:
            continue  # blank line
        row += 1
        if len(rec) != n_fields:
            out.append((row, reader.line_num, len(rec)))
    return out


def read_csv_domain(path: Path, encoding: str = "utf-8",
                    warnings: list[InputIssue] | None = None) -> pd.DataFrame:
    """CSV: every column as text; empty cells are missing (converted to types later)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text = decode_text(path.read_bytes(), encoding, path.name)
    if not text.strip():
        raise DomainReadError("FILE_EMPTY", "the file is empty (no header, no rows)",
                              hint="A domain file needs a header row naming its variables.")
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    delim = detect_delimiter(first_line)
    if delim != "," and warnings is not None:
        warnings.append(InputIssue(
            domain=path.stem.lower(), variable="(file)", value=path.name, severity="warning",
            rule="CSV_DELIMITER", problem=f"no comma in the header; read with {delim!r} as the delimiter"))
    try:
        header = next(csv.reader(io.StringIO(text.lstrip("\r\n"), newline=""), delimiter=delim))
    except csv.Error as exc:
        raise DomainReadError("CSV_FIELDS", f"the header cannot be parsed: {exc}") from None
    n = len(header)
    names = [f"f{i}" for i in range(n)]
    bad_rows: list[str] = []

    def on_bad(row) -> str:
        bad_rows.append(row.text)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=0, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True,
                                             invalid_row_handler=on_bad),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                 strings_can_be_null=True, null_values=[""],
                                                 quoted_strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0]
        raise DomainReadError("CSV_FIELDS", f"not a well-formed CSV file: {msg}",
                              hint="Check quotes: a quote that is opened must be closed.") from None
    if bad_rows:
        shape = _csv_shape_errors(text.lstrip("\r\n"), delim, n)
        first = shape[0] if shape else None
        where = (f"data row {first[0]} (line {first[1]}) has {first[2]} fields" if first
                 else f"record {bad_rows[0][:60]!r} has a wrong number of fields")
        raise DomainReadError(
            "CSV_FIELDS",
            f"{len(bad_rows)} record(s) do not have the header's {n} fields; first: {where}",
            hint="A value with a delimiter or a line break must be quoted.",
            row=first[0] if first else None)
    df = table.to_pandas()
    df = df.iloc[1:].reset_index(drop=True)  # row 0 is the header as parsed
    df.columns = [h.strip() for h in header]
    return df


# --- Parquet, XPT, Dataset-JSON --------------------------------------------------------------
def _is_text(t) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _arrow_to_frame(table, name: str, warnings: list[InputIssue] | None) -> pd.DataFrame:
    """Arrow table to pandas with dates as ISO text and no nested values (never overflows).

    Dictionary-encoded text stays encoded (pandas' ``ArrowDtype`` of an Arrow dictionary, which
    :func:`mmtrial.sdtm.check.normalise_types` types on its distinct values); other columns
    are plain pandas columns.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = {}
    for fld, col in zip(table.schema, table.columns, strict=True):
        t = fld.type
        if pa.types.is_dictionary(t) and _is_text(t.value_type):
            cols[str(fld.name)] = col  # text kept dictionary-encoded (issue 15)
            continue
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_nested(t):
            raise DomainReadError("VALUE_NOT_SCALAR", f"column {fld.name} holds {t} values, not single values",
                                  variable=str(fld.name).upper(), hint="Each cell holds one number or text.")
        if pa.types.is_timestamp(t):
            col = pc.strftime(col, format="%Y-%m-%dT%H:%M:%S")
        elif pa.types.is_date(t) or pa.types.is_time(t):
            col = col.cast(pa.string())
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            try:
                col = col.cast(pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise DomainReadError("ENCODING", f"column {fld.name} holds bytes that are not UTF-8 text",
                                      variable=str(fld.name).upper()) from None
        elif pa.types.is_decimal(t) or pa.types.is_null(t):
            col = col.cast(pa.float64())
        elif pa.types.is_duration(t):
            col = col.cast(pa.int64()).cast(pa.float64())
        cols[str(fld.name)] = col
    if len(set(cols)) != len(table.schema):
        names = [str(f.name) for f in table.schema]
        dup = sorted({c for c in names if names.count(c) > 1})
        raise DomainReadError("DUPLICATE_COLUMN", f"columns named twice: {', '.join(dup)}",
                              variable=dup[0].upper())
    # copy=False: the columns are not consolidated into 2-D blocks (a copy of every number column;
    # typing replaces each column anyway; issue 15)
    return pd.DataFrame({k: _column(v) for k, v in cols.items()}, index=pd.RangeIndex(table.num_rows),
                        copy=False)


def _column(col) -> pd.Series | pd.api.extensions.ExtensionArray:
    """One Arrow column for pandas: dictionary-encoded text as is (pandas' ``ArrowDtype``, no
    copy; typing expands it), anything else converted by Arrow."""
    import pyarrow as pa

    if pa.types.is_dictionary(col.type):
        return pd.arrays.ArrowExtensionArray(col)
    return col.to_pandas()


def read_parquet_domain(path: Path, encoding: str = "utf-8",
                        warnings: list[InputIssue] | None = None) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = path.stat().st_size
    if size == 0:
        raise DomainReadError("FILE_EMPTY", "the file is empty (0 bytes)")
    with path.open("rb") as f:
        head = f.read(4)
        f.seek(max(size - 4, 0))
        tail = f.read(4)
    if head != b"PAR1" or tail != b"PAR1":
        raise DomainReadError("FILE_UNREADABLE",
                              "not a complete Parquet file (the PAR1 marker is missing at the "
                              + ("start" if head != b"PAR1" else "end: truncated?") + ")")
    # text columns as read from the file's dictionary pages, not expanded into one text per
    # row: typing works on the distinct values and expands them once (issue 15)
    try:
        text = [f.name for f in pq.read_schema(path) if _is_text(f.type)]
    except (pa.ArrowException, OSError, ValueError):
        text = []  # read_table below reports the problem
    try:
        table = pq.read_table(path, read_dictionary=text or None)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DomainReadError("FILE_UNREADABLE", f"cannot be read as Parquet: {str(exc).splitlines()[0]}") from None
    return _arrow_to_frame(table, path.name, warnings)


def read_xpt_domain(path: Path, encoding: str = "utf-8",
                    warnings: list[InputIssue] | None = None) -> pd.DataFrame:
    """SAS transport (v5/v8) via pyreadstat; blank character values become missing.

    Character data are decoded as ``encoding`` when the user names one other than UTF-8
    (SAS files are often WLATIN1); otherwise pyreadstat's default applies.
    """
    import pyreadstat

    if path.stat().st_size == 0:
        raise DomainReadError("FILE_EMPTY", "the file is empty (0 bytes)")
    kw = {} if encoding.lower().replace("-", "") in ("utf8",) else {"encoding": encoding}
    try:
        df, _meta = pyreadstat.read_xport(str(path), **kw)
    except UnicodeDecodeError:
        raise DomainReadError("ENCODING", "character data are not valid UTF-8",
                              hint="Name the file's encoding (ReadOptions(encoding='latin-1')).") from None
    except Exception as exc:  # pyreadstat raises its own ReadstatError/PyreadstatError types
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DomainReadError("FILE_UNREADABLE", f"cannot be read as SAS transport (XPT): {msg}") from None
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            df[c] = s.dt.strftime("%Y-%m-%dT%H:%M:%S").where(s.notna())
        elif s.dtype == object or pd.api.types.is_string_dtype(s):
            txt = s.astype("str")
            df[c] = s.where(s.isna() | (txt.str.strip() != ""), None)
    return df


def _json_column(values: list, name: str):
    """One Dataset-JSON column as an Arrow array: scalars only (numbers, text, booleans, null)."""
    import pyarrow as pa

    nested = False
    try:
        arr = pa.array(values, from_pandas=True)
        nested = pa.types.is_nested(arr.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # mixed numbers and text: keep each value's text; a TYPE check reports the text later
        nested = any(isinstance(v, (list, dict)) for v in values)
        if not nested:
            arr = pa.array([None if v is None else (json.dumps(v) if isinstance(v, bool) else str(v))
                            for v in values], type=pa.string())
    if nested:
        raise DomainReadError("VALUE_NOT_SCALAR", f"column {name} holds arrays or objects, not single values",
                              variable=name.upper(), hint="Each cell holds one number or text.")
    return arr


def read_dataset_json_domain(path: Path, encoding: str = "utf-8",
                             warnings: list[InputIssue] | None = None) -> pd.DataFrame:
    """CDISC Dataset-JSON: version 1.1 (``columns``/``rows``) or 1.0 (``itemGroupData``)."""
    import pyarrow as pa

    text = decode_text(path.read_bytes(), "utf-8", path.name)  # Dataset-JSON is UTF-8 (JSON, RFC 8259)
    if not text.strip():
        raise DomainReadError("FILE_EMPTY", "the file is empty")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DomainReadError("FILE_UNREADABLE", f"not valid JSON: {exc.msg} at line {exc.lineno} "
                                                 f"column {exc.colno}") from None
    except RecursionError:
        raise DomainReadError("FILE_UNREADABLE", "not valid Dataset-JSON: nested too deeply") from None
    what = "not CDISC Dataset-JSON"
    if not isinstance(doc, dict):
        raise DomainReadError("FILE_UNREADABLE", f"{what}: the top level is a JSON {type(doc).__name__}, "
                                                 "not an object")
    if "columns" in doc and "rows" in doc:
        columns, rows = doc["columns"], doc["rows"]
    else:
        data = doc.get("clinicalData") or doc.get("referenceData")
        if not isinstance(data, dict) or not isinstance(data.get("itemGroupData"), dict) \
                or not data["itemGroupData"]:
            raise DomainReadError("FILE_UNREADABLE", f"{what}: no 'columns'/'rows' (v1.1) nor "
                                                     "'itemGroupData' (v1.0)")
        group = next(iter(data["itemGroupData"].values()))
        if not isinstance(group, dict):
            raise DomainReadError("FILE_UNREADABLE", f"{what}: itemGroupData holds no item group")
        columns, rows = group.get("items"), group.get("itemData")
    if not isinstance(columns, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                and c["name"].strip() for c in columns):
        raise DomainReadError("FILE_UNREADABLE", f"{what}: 'columns' must be a list of objects, each "
                                                 "with a 'name'")
    if not isinstance(rows, list):
        raise DomainReadError("FILE_UNREADABLE", f"{what}: 'rows' must be a list of arrays")
    names = [c["name"] for c in columns]
    n = len(names)
    for i, r in enumerate(rows, start=1):
        if not isinstance(r, list) or len(r) != n:
            got = f"{len(r)} values" if isinstance(r, list) else f"a JSON {type(r).__name__}"
            raise DomainReadError("FILE_UNREADABLE", f"{what}: row {i} has {got}; the columns are {n}",
                                  row=i)
    if len({x.upper() for x in names}) != n:
        dup = sorted({x for x in names if [y.upper() for y in names].count(x.upper()) > 1})
        raise DomainReadError("DUPLICATE_COLUMN", f"columns named twice (ignoring case): {', '.join(dup)}",
                              variable=dup[0].upper())
    arrays = [_json_column([r[j] for r in rows], names[j]) for j in range(n)]
    table = pa.table(arrays, names=names) if n else pa.table({})
    df = _arrow_to_frame(table, path.name, warnings)
    drop = [c for c in df.columns if c.upper() in ("ITEMGROUPDATASEQ",)]
    return df.drop(columns=drop)


_READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "csv": read_csv_domain,
    "parquet": read_parquet_domain,
    "xpt": read_xpt_domain,
    "json": read_dataset_json_domain,
}


def find_domain_files(study_dir: Path) -> tuple[dict[str, Path], list[InputIssue]]:
    """Map each domain to its file; two files for one domain, or a domain path that is not a
    regular file (a folder, a FIFO), is an error."""
    issues: list[InputIssue] = []
    found: dict[str, Path] = {}
    for p in sorted(study_dir.iterdir()):
        if p.name.startswith(("_", ".")):
            continue
        ext = p.suffix.lower()
        stem = p.stem.lower()
        if ext not in FORMATS or stem not in KNOWN_DOMAINS:
            continue
        problem = regular_file_problem(p)
        if problem is not None:
            issues.append(InputIssue(
                domain=stem, variable="(file)", value=p.name, rule="NOT_REGULAR_FILE",
                problem=f"the domain path {problem}; it is not read",
                hint=f"Replace it with a {FORMATS[ext].upper()} file, or remove it."))
            continue
        if stem in found:
            issues.append(InputIssue(
                domain=stem, variable="(file)", value=p.name,
                problem=f"two files for domain {stem}: {found[stem].name} and {p.name}",
                hint="Keep one file per domain.", rule="DUPLICATE_DOMAIN_FILE"))
            continue
        found[stem] = p
    return found, issues


def _unique_columns(df: pd.DataFrame, dom: str, name: str) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Upper-case names; two columns equal but for case are an error (the first is kept)."""
    issues: list[InputIssue] = []
    orig = [str(c) for c in df.columns]
    upper = [c.strip().upper() for c in orig]
    keep = np.ones(len(orig), dtype=bool)
    seen: dict[str, str] = {}
    for i, (o, u) in enumerate(zip(orig, upper, strict=True)):
        if u == "":
            keep[i] = False
            if df.iloc[:, i].notna().any():
                issues.append(InputIssue(domain=dom, variable=f"(column {i + 1})", value=name,
                                         severity="warning", rule="COLUMN_UNNAMED",
                                         problem="a column without a name holds values; it is ignored"))
            continue
        if u == "ROWNUM":
            keep[i] = False
            issues.append(InputIssue(domain=dom, variable=u, value=name, severity="warning", rule="RESERVED_COLUMN",
                                     problem="ROWNUM is mmtrial's own row number (the 1-based data row); "
                                             "the file's ROWNUM column is ignored"))
            continue
        if u in seen:
            keep[i] = False
            issues.append(InputIssue(
                domain=dom, variable=u, value=f"{seen[u]}, {o}", rule="DUPLICATE_COLUMN",
                problem="two columns with the same name (ignoring case); the first is kept",
                hint="Variable names are case-insensitive in SDTM: keep one of them."))
            continue
        seen[u] = o
    # without a copy of the values (copy-on-write: the new frame shares them; issue 15)
    out = df.loc[:, keep] if not keep.all() else df
    out = out.set_axis([u for u, k in zip(upper, keep, strict=True) if k], axis=1)
    return out, issues


def read_raw_domains(
    study_dir: str | Path, on_file: Callable[[str], None] | None = None, *, encoding: str = "utf-8",
) -> tuple[dict[str, pd.DataFrame], list[InputIssue]]:
    """Read every domain file as given; unreadable files are reported, not skipped silently.

    Raises :class:`StudyFolderError` (a usage error) when ``study_dir`` is not a folder.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise StudyFolderError(f"study folder not found: {study_dir}")
    files, issues = find_domain_files(study_dir)
    raw: dict[str, pd.DataFrame] = {}
    for dom, path in files.items():
        if on_file:
            on_file(dom)
        fmt = FORMATS[path.suffix.lower()]
        warnings: list[InputIssue] = []
        try:
            df = _READERS[fmt](path, encoding, warnings)
        except DomainReadError as exc:
            issues.append(InputIssue(domain=dom, variable=exc.variable, value=exc.value or path.name,
                                     row=exc.row, problem=f"{path.name}: {exc.problem}", hint=exc.hint,
                                     rule=exc.rule))
            continue
        except Exception as exc:  # any other parser failure still names the file, never a traceback
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            issues.append(InputIssue(
                domain=dom, variable="(file)", value=path.name,
                problem=f"cannot be read as {fmt}: {msg}", rule="FILE_UNREADABLE"))
            continue
        issues += warnings
        df, found = _unique_columns(df, dom, path.name)
        issues += found
        df.insert(0, "ROWNUM", np.arange(1, len(df) + 1, dtype="int64"))
        raw[dom] = df.reset_index(drop=True)
    return raw, issues


def load_study_metadata(study_dir: str | Path) -> tuple[dict, list[InputIssue]]:
    """``study.json`` when present (the simulator writes ``{"synthetic": true, ...}``).

    It must be a JSON object; ``synthetic``, when given, must be ``true`` or ``false``. Anything
    else is a ``STUDY_JSON`` error (the flag decides whether outputs say "synthetic data").
    """
    p = Path(study_dir) / "study.json"
    if not p.exists() and not p.is_symlink():
        return {}, []

    def issue(problem: str) -> tuple[dict, list[InputIssue]]:
        return {}, [InputIssue(domain="study", variable="study.json", problem=problem, rule="STUDY_JSON",
                               hint="study.json is a JSON object such as {\"synthetic\": false}; "
                                    "or remove it.")]

    problem = regular_file_problem(p)
    if problem is not None:
        return issue(f"study.json {problem}")
    try:
        text = decode_text(p.read_bytes(), "utf-8", "study.json")
        meta = json.loads(text)
    except DomainReadError as exc:
        return issue(exc.problem)
    except (json.JSONDecodeError, RecursionError) as exc:
        return issue(f"not valid JSON: {getattr(exc, 'msg', exc)}")
    if not isinstance(meta, dict):
        return issue(f"the top level is a JSON {type(meta).__name__}, not an object")
    if "synthetic" in meta and not isinstance(meta["synthetic"], bool):
        return issue(f"'synthetic' must be true or false; got {meta['synthetic']!r}")
    return meta, []


def read_study_metadata(study_dir: str | Path) -> dict:
    """``study.json`` as a dict (``{}`` when absent or unusable; see :func:`load_study_metadata`)."""
    return load_study_metadata(study_dir)[0]


def compute_study_checksum(study_dir: str | Path) -> str:
    """SHA-256 over the names and bytes of the domain files and study.json, in name order."""
    study_dir = Path(study_dir)
    files, _ = find_domain_files(study_dir)
    paths = sorted(files.values(), key=lambda p: p.name)
    meta = study_dir / "study.json"
    if regular_file_problem(meta) is None:
        paths.append(meta)
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


__all__ = ["DomainReadError", "StudyFolderError", "compute_study_checksum", "find_domain_files",
           "load_study_metadata", "read_raw_domains", "read_study_metadata", "regular_file_problem"]
