"""The ADaM specification (``data/adam_spec.toml``) and the submission view of a dataset.

The specification names, per dataset, every variable with its label, type, codelist, origin
and derivation; the XPT, Dataset-JSON and Define-XML writers all read it, so the three files
describe one thing. :func:`submission_frame` turns an analysis dataset (Parquet) into the
frame the submission files hold: variables in specification order, SAS-valid names (the
``xpt`` mapping for longer names), typed values (dates as dates, the character ``ATOXGR`` of
the ADaM IG), and the metadata each writer needs (:class:`Column`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

import numpy as np
import pandas as pd

DataType = Literal["text", "integer", "float", "date"]
SAS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$")
XPT_TEXT_MAX = 200  # SAS transport v5: character variables hold at most 200 bytes
LABEL_MAX = 40  # SAS transport v5 variable and dataset labels


@dataclass(frozen=True)
class VariableSpec:
    name: str
    label: str
    xpt: str | None = None
    type: DataType | None = None
    codelist: str | None = None
    origin: str = "Derived"
    source: str | None = None
    method: str | None = None

    @property
    def sas_name(self) -> str:
        """The name in the submission files (<= 8 characters)."""
        return self.xpt or self.name


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    label: str
    klass: str
    structure: str
    keys: tuple[str, ...]
    variables: tuple[VariableSpec, ...]

    def variable(self, name: str) -> VariableSpec | None:
        return next((v for v in self.variables if v.name == name), None)


@dataclass(frozen=True)
class Codelist:
    oid: str
    name: str
    values: tuple[Any, ...]
    decodes: tuple[str, ...] | None = None
    extensible: bool = False

    @property
    def data_type(self) -> DataType:
        return "integer" if all(isinstance(v, int) for v in self.values) else "text"


@dataclass(frozen=True)
class AdamSpec:
    datasets: dict[str, DatasetSpec]
    codelists: dict[str, Codelist] = field(default_factory=dict)


@cache
def load_spec() -> AdamSpec:
    """The shipped specification, checked: names valid for SAS transport, labels <= 40 characters."""
    raw = tomllib.loads(resources.files("mmtrial.data").joinpath("adam_spec.toml").read_text("utf-8"))
    codelists = {k: Codelist(oid=k, name=v["name"], values=tuple(v["values"]),
                             decodes=tuple(v["decodes"]) if "decodes" in v else None,
                             extensible=bool(v.get("extensible", False)))
                 for k, v in raw.pop("codelists", {}).items()}
    datasets = {}
    for name, d in raw.items():
        variables = tuple(VariableSpec(**v) for v in d["variables"])
        datasets[name] = DatasetSpec(name=name, label=d["label"], klass=d["class"], structure=d["structure"],
                                     keys=tuple(d.get("keys", ())), variables=variables)
    spec = AdamSpec(datasets=datasets, codelists=codelists)
    check_spec(spec)
    return spec


def check_spec(spec: AdamSpec) -> None:
    """Raise ``ValueError`` naming every variable whose name, label or codelist breaks the rules."""
    problems = []
    for ds in spec.datasets.values():
        if len(ds.label) > LABEL_MAX:
            problems.append(f"{ds.name}: dataset label longer than {LABEL_MAX} characters")
        seen: set[str] = set()
        for v in ds.variables:
            if not SAS_NAME.match(v.sas_name):
                problems.append(f"{ds.name}.{v.name}: {v.sas_name!r} is not a SAS transport v5 name")
            if v.sas_name.upper() in seen:
                problems.append(f"{ds.name}.{v.name}: duplicate submission name {v.sas_name}")
            seen.add(v.sas_name.upper())
            if len(v.label) > LABEL_MAX:
                problems.append(f"{ds.name}.{v.name}: label longer than {LABEL_MAX} characters")
            if v.codelist and v.codelist not in spec.codelists:
                problems.append(f"{ds.name}.{v.name}: unknown codelist {v.codelist}")
    if problems:
        raise ValueError("adam_spec.toml: " + "; ".join(problems))


@dataclass(frozen=True)
class Column:
    """One variable as written: its spec, submission name, data type and length."""

    spec: VariableSpec
    name: str
    data_type: DataType
    length: int
    display_format: str | None = None


def _infer_type(s: pd.Series) -> DataType:
    """The type from the dtype; a variable without any value is text (pandas makes it float)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return "date"
    if s.isna().all():
        return "text"
    if pd.api.types.is_bool_dtype(s):
        return "integer"
    if pd.api.types.is_integer_dtype(s):
        return "integer"
    if pd.api.types.is_float_dtype(s):
        return "float"
    return "text"


def _as_text(s: pd.Series) -> pd.Series:
    """Text values: pandas ``str``/``string`` columns as they are (missing NA); numbers, Python
    ``str`` objects and categoricals of ``str`` as a categorical of their distinct texts (missing
    NaN), else object (``None`` for missing); whole-number floats print without ``.0`` (grades)."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        num = pd.to_numeric(s, errors="coerce").astype(float)
        # each distinct value written once and shared by its rows (issue 15: ATOXGR of 2.7 M lab
        # records made 2.7 M text objects, 140 MB and 2 s)
        codes, uniq = pd.factorize(num)  # missing -> code -1: the last value, a NaN, below
        u = pd.Series(np.append(np.asarray(uniq, dtype=float), np.nan))
        whole = np.isfinite(u) & (u == np.round(u))
        text = u.astype(object).map(repr)
        text[whole] = u[whole].astype("int64").astype(str)
        texts = text.to_numpy(dtype=object)[:-1]
        if len(set(texts.tolist())) == len(texts):  # as codes of the distinct texts (issue 15, fifth pass)
            return pd.Series(pd.Categorical.from_codes(codes, pd.Index(texts, dtype=object)), index=s.index,
                             name=s.name)
        text = text.where(u.notna(), None).astype(object)  # two values print alike (0.0, -0.0)
        return pd.Series(text.to_numpy(dtype=object)[codes], index=s.index, name=s.name, dtype=object)
    if pd.api.types.is_string_dtype(s) and s.dtype != object and not isinstance(s.dtype, pd.CategoricalDtype):
        return s  # pandas str/string, kept Arrow-backed: the writers convert a chunk at a time (issue 15)
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        if all(type(c) is str for c in cats):
            return s  # its categories are the texts: kept as codes, the writers convert each once (issue 15)
    elif s.dtype == object:
        codes, uniq = pd.factorize(s.to_numpy(), use_na_sentinel=True)
        if all(type(u) is str for u in uniq.tolist()):  # text: as codes of its distinct values (issue 15)
            return pd.Series(pd.Categorical.from_codes(codes, pd.Index(uniq, dtype=object)), index=s.index,
                             name=s.name)
    obj = s.astype(object).where(s.notna(), None)
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        if pd.api.types.is_string_dtype(cats) or all(isinstance(c, str) for c in cats):
            return obj
    if pd.api.types.is_string_dtype(s) and s.dtype != object:  # pandas str/string: values are str already
        return obj
    if pd.api.types.infer_dtype(obj, skipna=True) in ("string", "empty"):
        return obj
    return obj.map(str, na_action="ignore").astype(object)


def text_length(values: pd.Series) -> int:
    """The longest value in bytes (UTF-8), 0 when all are missing (pyarrow compute, no Python loop)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values.dtype, pd.CategoricalDtype):  # the categories that occur
        codes = values.cat.codes.to_numpy()
        used = values.cat.categories[np.unique(codes[codes >= 0])]
        return text_length(pd.Series(np.asarray(used, dtype=object), dtype=object))
    if values.dtype == object:
        arr = pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    elif hasattr(values.array, "__arrow_array__"):  # pandas str/string on Arrow: its data as it is
        arr = pa.array(values.array)  # (no Python text object per value, issue 15)
    else:  # pandas str/string held as Python objects
        arr = pa.array(values.astype(object).where(values.notna(), None).to_numpy(), type=pa.string())
    longest = pc.max(pc.binary_length(arr)).as_py()
    return int(longest or 0)


def _typed(s: pd.Series, kind: DataType) -> pd.Series:
    if kind == "date":
        if s.dtype == np.dtype("datetime64[ns]"):
            return s  # already the value: shared, not copied (issue 15: 3 x 100 MB of ADLB dates at 100,000 subjects)
        return pd.to_datetime(s, errors="coerce").astype("datetime64[ns]")
    if kind == "text":
        return _as_text(s)
    if s.dtype == np.float64:
        return s  # already the value (copy-on-write: shared, never modified); issue 15
    if (pd.api.types.is_integer_dtype(s) or pd.api.types.is_float_dtype(s)) and not pd.api.types.is_bool_dtype(s):
        # numbers (numpy or nullable) as they are, shared: the writers take them as float a chunk
        # at a time (``pd.to_numeric(...).to_numpy(float)``, missing NaN), so the frame holds no
        # float copy of every integer and nullable column (issue 15: about 100 MB for the adlb of
        # 20,000 subjects while its files are written)
        return s
    return pd.to_numeric(s.astype(object).where(s.notna(), np.nan), errors="coerce").astype(float)


def unlisted(ds: DatasetSpec, columns: Any) -> list[str]:
    """Variables of the data that the specification does not name."""
    return [str(c) for c in columns if ds.variable(str(c)) is None]


def with_unlisted(ds: DatasetSpec, columns: Any) -> DatasetSpec:
    """``ds`` extended by the data's unlisted variables: label = name, a unique SAS name.

    A name longer than 8 characters (or not a SAS name) becomes its first 6 valid characters
    and a 2-digit number (``ELIG_EXP_BTZ`` -> ``ELIG_E01``), unique within the dataset.
    """
    extra = unlisted(ds, columns)
    if not extra:
        return ds
    taken = {v.sas_name.upper() for v in ds.variables}
    added = []
    for c in extra:
        short = None
        if not SAS_NAME.match(c) or c.upper() in taken:
            stem = re.sub(r"[^A-Za-z0-9_]", "_", c)[:6]
            stem = stem if re.match(r"^[A-Za-z_]", stem) else "V" + stem[:5]
            short = next(f"{stem}{i:02d}" for i in range(1, 100) if f"{stem}{i:02d}".upper() not in taken)
        taken.add((short or c).upper())
        added.append(VariableSpec(name=c, label=c[:LABEL_MAX], xpt=short,
                                  method="Not described in adam_spec.toml"))
    return DatasetSpec(name=ds.name, label=ds.label, klass=ds.klass, structure=ds.structure, keys=ds.keys,
                       variables=ds.variables + tuple(added))


def submission_frame(name: str, df: pd.DataFrame, study_id: str, spec: AdamSpec | None = None,
                     ) -> tuple[pd.DataFrame, list[Column], DatasetSpec]:
    """The dataset as the submission files hold it, and its column metadata.

    Variables follow the specification's order; a variable of the specification that the data
    lack is left out, except ``STUDYID`` (filled with the protocol's study id, a predecessor
    of DM.STUDYID). A variable the specification does not name is still written, labelled
    with its name (:func:`with_unlisted`); the specification test on the demo study keeps the
    shipped metadata complete.
    Values: dates as ``datetime64`` (the writers turn them into SAS dates or ISO 8601 text),
    numbers as float or as the data hold them (integer, nullable: the writers take them as float
    a chunk at a time, missing NaN), text as ``str`` with missing as ``None`` (pandas ``str``/``string`` columns stay
    as they are, missing NA: the writers convert them a chunk at a time, issue 15; text held as
    Python ``str`` objects or as a categorical of ``str`` becomes a categorical, missing NaN, so
    that the writers convert each distinct value once).
    """
    spec = spec or load_spec()
    ds = with_unlisted(spec.datasets[name], df.columns)
    out: dict[str, pd.Series] = {}
    columns: list[Column] = []
    for v in ds.variables:
        if v.name in df.columns:
            raw = df[v.name]
        elif v.name == "STUDYID":
            raw = pd.Series(study_id, index=df.index, dtype=object)
        else:
            continue
        kind = v.type or _infer_type(raw)
        values = _typed(raw.reset_index(drop=True), kind)
        if kind == "text":
            length = max(text_length(values), 1)
            if length > XPT_TEXT_MAX:
                raise ValueError(f"{name}.{v.name}: a value of {length} bytes exceeds the SAS transport v5 "
                                 f"limit of {XPT_TEXT_MAX}")
        else:
            length = 8
        columns.append(Column(spec=v, name=v.sas_name, data_type=kind, length=length,
                              display_format="DATE9." if kind == "date" else None))
        out[v.sas_name] = values
    return pd.DataFrame(out, copy=False), columns, ds  # columns as typed above, not copied again (issue 15)
