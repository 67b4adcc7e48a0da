"""Unit conversion of laboratory results to the data contract's default units.

Rules are data: ``data/units.toml`` lists each test's default unit and accepted alternatives
with their factors. A known test in a unit that is not listed is an error naming the subject,
test, unit and row (data contract: "never guessed"); tests not in the table (biomarkers,
cytogenetics) are kept as given.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from mmtrial.sdtm._columns import TextCodes, distinct_rows, register_codes, small_codes
from mmtrial.sdtm.issues import InputIssue


def pa_array(values: pd.api.extensions.ExtensionArray):
    """Distinct texts (a pandas array without missing values) as an Arrow array."""
    import pyarrow as pa

    arr = pa.array(values)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def normalise_unit(u: pd.Series) -> pd.Series:
    """Canonical spelling for comparison: upper case, no spaces, ``^`` for ``*``/``E`` powers."""
    s = u.astype("string").str.upper().str.replace(" ", "", regex=False)
    s = s.str.replace("X10", "10", regex=False).str.replace("10*", "10^", regex=False)
    s = s.str.replace(r"10E(\d)", r"10^\1", regex=True).str.replace("µ", "U", regex=False)
    s = s.str.replace("MCL", "UL", regex=False).str.replace("/D", "/24H", regex=False)
    return s


@dataclass(frozen=True)
class UnitTable:
    """Default units and conversion factors per (LBTESTCD, LBSPEC)."""

    frame: pd.DataFrame  # LBTESTCD, LBSPEC, UNIT_DEFAULT, UNIT_KEY, FACTOR
    version: str

    @classmethod
    def load(cls) -> UnitTable:
        return _load_units()

    def default_units(self) -> pd.DataFrame:
        return self.frame.loc[self.frame["FACTOR"] == 1.0].drop_duplicates(["LBTESTCD", "LBSPEC"])


@lru_cache(maxsize=1)
def _load_units() -> UnitTable:
    text = resources.files("mmtrial.data").joinpath("units.toml").read_text("utf-8")
    data = tomllib.loads(text)
    rows = []
    for t in data["test"]:
        rows.append((t["testcd"], t["spec"], t["unit"], t["unit"], 1.0))
        for alt, f in t["alternatives"].items():
            rows.append((t["testcd"], t["spec"], t["unit"], alt, float(f)))
    frame = pd.DataFrame(rows, columns=["LBTESTCD", "LBSPEC", "UNIT_DEFAULT", "UNIT", "FACTOR"])
    frame["UNIT_KEY"] = normalise_unit(frame["UNIT"])
    frame = frame.drop_duplicates(["LBTESTCD", "LBSPEC", "UNIT_KEY"])
    return UnitTable(frame=frame, version=str(data.get("version", "")))


def _expand(values: pd.api.extensions.ExtensionArray, codes: np.ndarray, dtype: Any) -> pd.api.extensions.ExtensionArray:
    """``values.take(codes)`` with -1 missing (pandas' ``take(allow_fill=True)``) as text of
    ``dtype``: Arrow's take with the small codes, not an int64 index per row (issue 15)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = codes < 0
    indices = pa.array(codes, mask=missing) if missing.any() else pa.array(codes)
    return pd.array(pc.take(pa_array(values), indices), dtype=dtype)


def convert_lab_units(lb: pd.DataFrame, table: UnitTable | None = None) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Convert LBSTRESN (and LBSTNRLO/LBSTNRHI) of known tests to the default unit.

    Keeps the values as given in ``LBSTRESN_RAW`` / ``LBSTRESU_RAW``. Rows of a known test whose
    unit is unknown are reported (error) and left unconverted; nothing is dropped.
    Matching on LBSPEC is used when the test is known for the record's specimen; a test known
    for one specimen only (e.g. PLAT/BLOOD) matches whatever LBSPEC says.
    """
    table = table or UnitTable.load()
    out = lb.copy(deep=False)  # copy-on-write: new columns only, not a second copy of lb (issue 15)
    out["LBSTRESN_RAW"] = out["LBSTRESN"]
    out["LBSTRESU_RAW"] = out["LBSTRESU"]
    t = table.frame
    # every rule below is a function of the row's (LBTESTCD, LBSPEC, LBSTRESU): it runs on the
    # distinct combinations (a few hundred) and goes back to the rows by their combination's
    # number, with no text work per lab row (issue 15)
    first, combo = distinct_rows([out["LBTESTCD"], out["LBSPEC"], out["LBSTRESU"]])
    u = out.iloc[first][["LBTESTCD", "LBSPEC", "LBSTRESU"]].reset_index(drop=True)
    spec_count = t.drop_duplicates(["LBTESTCD", "LBSPEC"]).groupby("LBTESTCD").size()
    single = spec_count[spec_count == 1].index
    spec_key = u["LBSPEC"].where(~u["LBTESTCD"].isin(single))
    single_spec = t.drop_duplicates("LBTESTCD").set_index("LBTESTCD")["LBSPEC"]
    spec_key = spec_key.fillna(u["LBTESTCD"].map(single_spec))
    key_u = pd.DataFrame({"LBTESTCD": u["LBTESTCD"], "LBSPEC": spec_key, "UNIT_KEY": normalise_unit(u["LBSTRESU"])})
    merged_u = key_u.merge(t[["LBTESTCD", "LBSPEC", "UNIT_KEY", "UNIT_DEFAULT", "FACTOR"]],
                           on=["LBTESTCD", "LBSPEC", "UNIT_KEY"], how="left")
    known_u = np.asarray(pd.MultiIndex.from_frame(key_u[["LBTESTCD", "LBSPEC"]].astype(object)).isin(
        pd.MultiIndex.from_frame(t[["LBTESTCD", "LBSPEC"]].drop_duplicates().astype(object))))
    factor_u = merged_u["FACTOR"].to_numpy(dtype=float)
    conv_u = known_u & ~np.isnan(factor_u)
    # per combination first, then one gather to the rows (issue 15)
    unknown_u = known_u & np.isnan(factor_u)  # a known test in a unit without a factor
    bad = (unknown_u[combo] & out["LBSTRESN"].notna().to_numpy()) if unknown_u.any() \
        else np.zeros(len(out), dtype=bool)
    scaled = conv_u & (factor_u != 1.0)  # a factor of 1 leaves the value as it is (issue 15)
    f = np.where(scaled, factor_u, 1.0)[combo] if scaled.any() else None
    for col in ("LBSTRESN", "LBSTNRLO", "LBSTNRHI"):
        if col in out:
            # numpy's product, not pandas' (numexpr's threads for a large column; the same values)
            out[col] = pd.Series(out[col].to_numpy(dtype=float) * f, index=out.index, copy=False) \
                if f is not None else out[col].astype(float)
    if conv_u.any():
        unit_u = u["LBSTRESU"].astype(object).where(~conv_u, merged_u["UNIT_DEFAULT"].astype(object))
        given = u["LBSTRESU"].astype(object)
        same = (unit_u == given) | (unit_u.isna() & given.isna())
        if not bool(same.all()):  # a unit renamed to its default: the column is rebuilt
            distinct = pd.array(unit_u.to_numpy(), dtype=out["LBSTRESU"].dtype)
            unit_codes, unit_values = pd.factorize(distinct)  # the new column's codes, for the checks after
            codes = small_codes(np.asarray(unit_codes, dtype=np.int64), len(unit_values))[combo]
            out["LBSTRESU"] = pd.Series(_expand(unit_values, codes, out["LBSTRESU"].dtype), index=out.index,
                                        name="LBSTRESU")
            register_codes(out["LBSTRESU"], TextCodes(pa_array(unit_values), codes))
    key = key_u.iloc[combo[bad]] if bad.any() else key_u.iloc[:0]
    issues: list[InputIssue] = []
    if bad.any():
        sub = out.loc[bad]
        defaults = key
        expected = t.groupby(["LBTESTCD", "LBSPEC"])["UNIT"].agg(lambda s: ", ".join(s))
        for r, (_, row) in zip(defaults.itertuples(index=False), sub.iterrows(), strict=True):
            exp = expected.get((r.LBTESTCD, r.LBSPEC), "")
            issues.append(InputIssue(
                domain="lb", variable="LBSTRESU", row=int(row["ROWNUM"]), usubjid=row["USUBJID"],
                value=None if pd.isna(row["LBSTRESU"]) else str(row["LBSTRESU"]),
                problem=f"unit unknown for {row['LBTESTCD']} {row.get('LBSPEC', '')}; expected one of: {exp}",
                hint="Fix LBSTRESU or add the unit with its factor to data/units.toml.",
                rule="UNIT_UNKNOWN"))
    return out, issues
