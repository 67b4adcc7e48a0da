"""A corpus of bad inputs (issue 11): each case builds the valid 3-subject study of
tests/support/sdtm_study.py, applies one corruption, and asserts the exact outcome: the issue
(rule, domain, 1-based data row, USUBJID, variable, severity) or a completed read with its
warning. Nothing may raise but a documented error. Expected values come from the rule
definitions in data/plausibility.toml, data/sdtm_schema.toml and sdtm/read.py (docs/input-checks.md).

Base study (rows are 1-based data rows): dm S-001 (died 2019-06-30), S-002, S-003; ex rows
1-2 S-001, row 3 S-002; lb rows 1-2 S-001 MPROTEIN, 3 S-002 MPROTEIN (g/L), 4 S-002 HGB (g/L),
5 S-002 IFE; ae row 1 S-001, row 2 S-002; ds row 2 is S-001's DEATH; cm rows 1-2 S-001.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmtrial.protocol.model import Protocol
from mmtrial.sdtm import ReadOptions, load_study
from mmtrial.sdtm.write import write_study_folder
from support.sdtm_study import valid_raw_domains

ANY = object()
Frames = dict[str, pd.DataFrame]


@dataclass
class Case:
    id: str
    frames: Callable[[Frames], None] | None = None
    files: Callable[[Path], None] | None = None
    rule: str | None = None  # None: the read completes without errors
    domain: object = ANY
    row: object = ANY
    usubjid: object = ANY
    variable: object = ANY
    severity: str = "error"
    value: object = ANY
    ext: str = ".csv"
    options: ReadOptions | None = None
    protocol: bool = False
    absent: tuple[str, ...] = field(default_factory=tuple)  # rules that must not fire


def setv(dom: str, row: int, col: str, value) -> Callable[[Frames], None]:
    """Set one cell (row is the 1-based data row)."""
    def f(d: Frames) -> None:
        if col in d[dom] and value is not None and not isinstance(value, type(d[dom][col].iloc[0])):
            d[dom][col] = d[dom][col].astype(object)
        d[dom].loc[row - 1, col] = value
    return f


def seq(*fs: Callable[[Frames], None]) -> Callable[[Frames], None]:
    def f(d: Frames) -> None:
        for g in fs:
            g(d)
    return f


def add_lab(testcd: str, value, unit, spec: str = "BLOOD", subj: str = "S-002",
            date: str = "2019-03-11", cat: str = "HEMATOLOGY") -> Callable[[Frames], None]:
    """Append one lab row (data row 6)."""
    def f(d: Frames) -> None:
        row = {"USUBJID": subj, "LBTESTCD": testcd, "LBSPEC": spec, "LBCAT": cat, "LBSTRESN": value,
               "LBSTRESC": None, "LBSTRESU": unit, "LBSTNRLO": None, "LBSTNRHI": None, "LBDTC": date}
        d["lb"] = pd.concat([d["lb"], pd.DataFrame([row])], ignore_index=True)
    return f


def drop(dom: str, col: str) -> Callable[[Frames], None]:
    def f(d: Frames) -> None:
        d[dom] = d[dom].drop(columns=[col])
    return f


def add_domain(name: str, frame: pd.DataFrame) -> Callable[[Frames], None]:
    def f(d: Frames) -> None:
        d[name] = frame
    return f


def text(name: str, content: str | bytes) -> Callable[[Path], None]:
    def f(folder: Path) -> None:
        p = folder / name
        if p.exists():
            p.unlink()
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, "utf-8")
    return f


def edit(name: str, fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def f(folder: Path) -> None:
        p = folder / name
        p.write_bytes(fn(p.read_bytes()))
    return f


def replace_file(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    def f(folder: Path) -> None:
        p = folder / name
        if p.exists() or p.is_symlink():
            p.unlink()
        make(p)
    return f


def parquet_with(dom: str, transform: Callable[[pd.DataFrame], pa.Table]) -> Callable[[Path], None]:
    def f(folder: Path) -> None:
        df = pd.read_parquet(folder / f"{dom}.parquet")
        pq.write_table(transform(df), folder / f"{dom}.parquet")
    return f


def json_doc(dom: str, fn: Callable[[dict], object]) -> Callable[[Path], None]:
    def f(folder: Path) -> None:
        p = folder / f"{dom}.json"
        p.write_text(json.dumps(fn(json.loads(p.read_text("utf-8")))), "utf-8")
    return f


def _set_json_cell(doc: dict, col: str, row: int, value) -> dict:
    j = [c["name"] for c in doc["columns"]].index(col)
    doc["rows"][row - 1][j] = value
    return doc


def csv_swap(name: str, old: str, new: str) -> Callable[[Path], None]:
    return edit(name, lambda b: b.replace(old.encode(), new.encode(), 1))


TODAY_PLUS_2Y = (dt.date.today() + dt.timedelta(days=800)).isoformat()
DM_HEADER = "STUDYID,USUBJID,AGE,SEX,RFXSTDTC,DTHFL,DTHDTC\n"
RS = pd.DataFrame({"USUBJID": ["S-001"], "RSTESTCD": ["OVRLRESP"], "RSSTRESC": ["PR"],
                   "RSDTC": ["2019-07-15"], "RSCAT": [None]})
MH = pd.DataFrame({"USUBJID": ["S-001", "S-001"], "MHTERM": ["HYPERTENSION"] * 2, "MHSTDTC": ["2010-01-01"] * 2})


CASES: list[Case] = [
    # --- dates: window, overflow, format, partial, order ------------------------------------
    Case("date-2999", setv("ex", 1, "EXSTDTC", "2999-01-07"), rule="DATE_OUT_OF_RANGE", domain="ex", row=1,
         usubjid="S-001", variable="EXSTDTC", value="2999-01-07"),
    Case("date-1890-lab", setv("lb", 2, "LBDTC", "1890-02-04"), rule="DATE_OUT_OF_RANGE", domain="lb", row=2,
         usubjid="S-001", variable="LBDTC"),
    Case("date-death-2099", setv("dm", 1, "DTHDTC", "2099-06-30"), rule="DATE_OUT_OF_RANGE", domain="dm",
         row=1, usubjid="S-001", variable="DTHDTC"),
    Case("date-year-3000-end", setv("ae", 1, "AEENDTC", "3000-01-01"), rule="DATE_OUT_OF_RANGE", domain="ae",
         row=1, usubjid="S-001", variable="AEENDTC"),
    Case("date-year-0001", setv("ae", 2, "AESTDTC", "0001-01-01"), rule="DATE_OUT_OF_RANGE", domain="ae",
         row=2, usubjid="S-002", variable="AESTDTC"),
    Case("date-partial-1066", setv("cm", 3, "CMSTDTC", "1066"), rule="DATE_OUT_OF_RANGE", domain="cm", row=3,
         usubjid="S-002", variable="CMSTDTC"),
    Case("date-just-past-ns-range", setv("ds", 3, "DSSTDTC", "2262-04-12"), rule="DATE_OUT_OF_RANGE",
         domain="ds", row=3, usubjid="S-002", variable="DSSTDTC"),
    Case("date-9999-12-31", setv("lb", 5, "LBDTC", "9999-12-31"), rule="DATE_OUT_OF_RANGE", domain="lb", row=5,
         usubjid="S-002", variable="LBDTC"),
    Case("date-two-years-ahead", setv("ae", 2, "AESTDTC", TODAY_PLUS_2Y), rule="DATE_OUT_OF_RANGE", domain="ae",
         row=2, usubjid="S-002", variable="AESTDTC"),
    Case("date-window-widened", setv("lb", 2, "LBDTC", "1890-02-04"), rule=None,
         options=ReadOptions(date_min=dt.date(1850, 1, 1)), absent=("DATE_OUT_OF_RANGE",)),
    Case("date-feb-30", setv("lb", 4, "LBDTC", "2019-02-30"), rule="DATE_INVALID", domain="lb", row=4,
         usubjid="S-002", variable="LBDTC"),
    Case("date-month-13", setv("ae", 1, "AESTDTC", "2019-13-01"), rule="DATE_INVALID", domain="ae", row=1,
         usubjid="S-001", variable="AESTDTC"),
    Case("date-basic-format", setv("ex", 3, "EXSTDTC", "20190204"), rule="DATE_INVALID", domain="ex", row=3,
         usubjid="S-002", variable="EXSTDTC"),
    Case("date-unpadded", setv("ex", 2, "EXENDTC", "2019-3-31"), rule="DATE_INVALID", domain="ex", row=2,
         usubjid="S-001", variable="EXENDTC"),
    Case("date-sas-format", setv("dm", 2, "RFXSTDTC", "04FEB2019"), rule="DATE_INVALID", domain="dm", row=2,
         usubjid="S-002", variable="RFXSTDTC"),
    Case("date-unk", setv("cm", 3, "CMENDTC", "UNK"), rule="DATE_INVALID", domain="cm", row=3,
         usubjid="S-002", variable="CMENDTC"),
    Case("date-day-00", setv("ds", 1, "DSSTDTC", "2019-03-00"), rule="DATE_INVALID", domain="ds", row=1,
         usubjid="S-001", variable="DSSTDTC"),
    Case("date-us-slashes", setv("ae", 2, "AESTDTC", "02/10/2019"), rule="DATE_INVALID", domain="ae", row=2,
         usubjid="S-002", variable="AESTDTC"),
    Case("date-partial-month-start", setv("ae", 2, "AESTDTC", "2019-02"), rule="DATE_IMPUTED", domain="ae",
         variable="AESTDTC", severity="warning"),
    Case("date-partial-year-end", setv("ae", 1, "AEENDTC", "2019"), rule="DATE_IMPUTED", domain="ae",
         variable="AEENDTC", severity="warning", absent=("DATE_ORDER",)),
    Case("date-order-ae", setv("ae", 1, "AEENDTC", "2019-01-20"), rule="DATE_ORDER", domain="ae", row=1,
         usubjid="S-001", variable="AEENDTC"),
    Case("date-order-cm", setv("cm", 3, "CMENDTC", "2017-01-01"), rule="DATE_ORDER", domain="cm", row=3,
         usubjid="S-002", variable="CMENDTC"),
    Case("date-order-ex", setv("ex", 1, "EXENDTC", "2019-01-01"), rule="DATE_ORDER", domain="ex", row=1,
         usubjid="S-001", variable="EXENDTC"),
    Case("date-death-before-dose", setv("dm", 1, "DTHDTC", "2018-12-01"), rule="DATE_ORDER", domain="dm", row=1,
         usubjid="S-001", variable="DTHDTC"),
    # --- records after death (S-001 died 2019-06-30) -----------------------------------------
    Case("dose-after-death", seq(setv("ex", 2, "EXSTDTC", "2019-07-02"), setv("ex", 2, "EXENDTC", "2019-07-20")),
         rule="AFTER_DEATH", domain="ex", row=2, usubjid="S-001", variable="EXSTDTC"),
    Case("dose-interval-ends-after-death", setv("ex", 2, "EXENDTC", "2019-07-20"), rule="AFTER_DEATH",
         domain="ex", row=2, usubjid="S-001", variable="EXENDTC", severity="warning"),
    Case("ae-after-death", seq(setv("ae", 1, "AESTDTC", "2019-07-01"), setv("ae", 1, "AEENDTC", "2019-07-05")),
         rule="AFTER_DEATH", domain="ae", row=1, usubjid="S-001", variable="AESTDTC"),
    Case("ae-ends-after-death", setv("ae", 1, "AEENDTC", "2019-07-15"), rule="AFTER_DEATH", domain="ae", row=1,
         usubjid="S-001", variable="AEENDTC", severity="warning"),
    Case("lab-after-death", setv("lb", 2, "LBDTC", "2019-08-01"), rule="AFTER_DEATH", domain="lb", row=2,
         usubjid="S-001", variable="LBDTC"),
    Case("response-after-death", add_domain("rs", RS), rule="AFTER_DEATH", domain="rs", row=1, usubjid="S-001",
         variable="RSDTC"),
    Case("therapy-after-death", setv("cm", 2, "CMSTDTC", "2019-09-01"), rule="AFTER_DEATH", domain="cm", row=2,
         usubjid="S-001", variable="CMSTDTC"),
    Case("death-from-ds-only", seq(setv("dm", 1, "DTHDTC", None), setv("lb", 1, "LBDTC", "2019-07-03"),
                                   setv("lb", 1, "LBDTC", "2019-07-03")),
         rule="AFTER_DEATH", domain="lb", row=1, usubjid="S-001", variable="LBDTC"),
    Case("record-on-day-of-death", setv("lb", 2, "LBDTC", "2019-06-30"), rule=None, absent=("AFTER_DEATH",)),
    Case("partial-date-after-death-not-evidence", setv("lb", 2, "LBDTC", "2019-06"), rule="DATE_IMPUTED",
         domain="lb", severity="warning", absent=("AFTER_DEATH",)),
    Case("disposition-after-death", setv("ds", 1, "DSSTDTC", "2019-07-31"), rule="AFTER_DEATH", domain="ds",
         row=1, usubjid="S-001", variable="DSSTDTC", severity="warning"),
    # --- physiological lab ranges (after unit conversion) ------------------------------------
    Case("hgb-negative", seq(setv("lb", 4, "LBSTRESN", -39.7), setv("lb", 4, "LBSTRESU", "g/dL")),
         rule="LAB_RANGE", domain="lb", row=4, usubjid="S-002", variable="LBSTRESN", value="-39.7 g/dL"),
    Case("hgb-g-per-l-labelled-g-per-dl", setv("lb", 4, "LBSTRESU", "g/dL"), rule="LAB_RANGE", domain="lb", row=4,
         usubjid="S-002", variable="LBSTRESN", value="95 g/dL"),
    Case("hgb-mmol-absurd", seq(setv("lb", 4, "LBSTRESN", 20.0), setv("lb", 4, "LBSTRESU", "mmol/L")),
         rule="LAB_RANGE", domain="lb", row=4, usubjid="S-002", variable="LBSTRESN"),
    Case("hgb-mmol-plausible", seq(setv("lb", 4, "LBSTRESN", 6.0), setv("lb", 4, "LBSTRESU", "mmol/L")),
         rule=None, absent=("LAB_RANGE", "UNIT_UNKNOWN")),
    Case("platelets-negative", add_lab("PLAT", -5.0, "10^9/L"), rule="LAB_RANGE", domain="lb", row=6,
         usubjid="S-002", variable="LBSTRESN"),
    Case("platelets-per-ul-huge", add_lab("PLAT", 9e6, "/uL"), rule="LAB_RANGE", domain="lb", row=6,
         usubjid="S-002", variable="LBSTRESN"),
    Case("sodium-1e4", add_lab("SODIUM", 1e4, "mmol/L", spec="SERUM", cat="CHEMISTRY"), rule="LAB_RANGE",
         domain="lb", row=6, usubjid="S-002", variable="LBSTRESN"),
    Case("neutrophils-600", add_lab("NEUT", 600.0, "10^9/L"), rule="LAB_RANGE", domain="lb", row=6,
         usubjid="S-002", variable="LBSTRESN"),
    Case("wbc-negative", add_lab("WBC", -0.1, "10^9/L"), rule="LAB_RANGE", domain="lb", row=6, usubjid="S-002",
         variable="LBSTRESN"),
    Case("creatinine-zero", add_lab("CREAT", 0.0, "mg/dL", spec="SERUM", cat="CHEMISTRY"), rule="LAB_RANGE",
         domain="lb", row=6, usubjid="S-002", variable="LBSTRESN"),
    Case("calcium-absurd", add_lab("CACORR", 95.0, "mg/dL", spec="SERUM", cat="CHEMISTRY"), rule="LAB_RANGE",
         domain="lb", row=6, usubjid="S-002", variable="LBSTRESN"),
    Case("mprotein-negative", setv("lb", 1, "LBSTRESN", -1.0), rule="LAB_RANGE", domain="lb", row=1,
         usubjid="S-001", variable="LBSTRESN"),
    Case("mprotein-250-g-per-l", setv("lb", 3, "LBSTRESN", 250.0), rule="LAB_RANGE", domain="lb", row=3,
         usubjid="S-002", variable="LBSTRESN", value="250 g/L"),
    Case("kappa-negative", add_lab("KAPPAFLC", -3.0, "mg/L", spec="SERUM", cat="DISEASE ASSESSMENT"),
         rule="LAB_RANGE", domain="lb", row=6, usubjid="S-002", variable="LBSTRESN"),
    Case("bmpc-150-percent", add_lab("BMPC", 150.0, "%", spec="BONE MARROW", cat="DISEASE ASSESSMENT"),
         rule="LAB_RANGE", domain="lb", row=6, usubjid="S-002", variable="LBSTRESN"),
    Case("urine-mprotein-negative", add_lab("MPROTEIN", -10.0, "mg/24h", spec="URINE", cat="DISEASE ASSESSMENT"),
         rule="LAB_RANGE", domain="lb", row=6, usubjid="S-002", variable="LBSTRESN"),
    # --- non-finite and absurd numbers --------------------------------------------------------
    Case("lab-inf", setv("lb", 1, "LBSTRESN", "inf"), rule="NUMBER_NOT_FINITE", domain="lb", row=1,
         usubjid="S-001", variable="LBSTRESN"),
    Case("lab-minus-inf", setv("lb", 2, "LBSTRESN", "-inf"), rule="NUMBER_NOT_FINITE", domain="lb", row=2,
         usubjid="S-001", variable="LBSTRESN"),
    Case("lab-1e300", setv("lb", 3, "LBSTRESN", 1e300), rule="NUMBER_NOT_FINITE", domain="lb", row=3,
         usubjid="S-002", variable="LBSTRESN"),
    Case("lab-infinity-word", setv("lb", 1, "LBSTRESN", "Infinity"), rule="NUMBER_NOT_FINITE", domain="lb",
         row=1, usubjid="S-001", variable="LBSTRESN"),
    Case("normal-range-1e20", setv("lb", 4, "LBSTNRHI", 1e20), rule="NUMBER_NOT_FINITE", domain="lb", row=4,
         usubjid="S-002", variable="LBSTNRHI"),
    Case("age-inf", setv("dm", 1, "AGE", "inf"), rule="NUMBER_NOT_FINITE", domain="dm", row=1, usubjid="S-001",
         variable="AGE"),
    Case("exdose-inf", setv("ex", 1, "EXDOSE", "inf"), rule="NUMBER_NOT_FINITE", domain="ex", row=1,
         usubjid="S-001", variable="EXDOSE"),
    Case("grade-inf", setv("ae", 2, "AETOXGR", "inf"), rule="NUMBER_NOT_FINITE", domain="ae", row=2,
         usubjid="S-002", variable="AETOXGR"),
    Case("cmdose-1e300", seq(setv("cm", 1, "CMDOSE", 1e300)), rule="NUMBER_NOT_FINITE", domain="cm", row=1,
         usubjid="S-001", variable="CMDOSE"),
    Case("nan-text-is-not-missing", setv("dm", 2, "AGE", "NaN"), rule="TYPE", domain="dm", row=2,
         usubjid="S-002", variable="AGE"),
    # --- AGE ----------------------------------------------------------------------------------
    Case("age-negative", setv("dm", 1, "AGE", -5), rule="AGE_RANGE", domain="dm", row=1, usubjid="S-001",
         variable="AGE"),
    Case("age-1e9", setv("dm", 2, "AGE", 1e9), rule="AGE_RANGE", domain="dm", row=2, usubjid="S-002",
         variable="AGE"),
    Case("age-131", setv("dm", 3, "AGE", 131), rule="AGE_RANGE", domain="dm", row=3, usubjid="S-003",
         variable="AGE"),
    Case("age-16-warning", setv("dm", 3, "AGE", 16), rule="AGE_RANGE", domain="dm", row=3, usubjid="S-003",
         variable="AGE", severity="warning"),
    Case("age-125-warning", setv("dm", 2, "AGE", 125), rule="AGE_RANGE", domain="dm", row=2, usubjid="S-002",
         variable="AGE", severity="warning"),
    Case("age-text", setv("dm", 3, "AGE", "sixty"), rule="TYPE", domain="dm", row=3, usubjid="S-003",
         variable="AGE", value="sixty"),
    # --- EXDOSE -------------------------------------------------------------------------------
    Case("exdose-1e12", setv("ex", 1, "EXDOSE", 1e12), rule="EXDOSE_RANGE", domain="ex", row=1, usubjid="S-001",
         variable="EXDOSE"),
    Case("exdose-negative", setv("ex", 3, "EXDOSE", -80.0), rule="EXDOSE_RANGE", domain="ex", row=3,
         usubjid="S-002", variable="EXDOSE"),
    Case("exdose-ten-times-protocol", setv("ex", 2, "EXDOSE", 1000.0), rule="EXDOSE_RANGE", domain="ex", row=2,
         usubjid="S-001", variable="EXDOSE", protocol=True),
    Case("exdose-nine-times-protocol-ok", setv("ex", 2, "EXDOSE", 720.0), rule=None, protocol=True,
         absent=("EXDOSE_RANGE",)),
    Case("exdose-zero-placebo-ok", setv("ex", 2, "EXDOSE", 0.0), rule=None, absent=("EXDOSE_RANGE",)),
    Case("exdose-text-with-unit", setv("ex", 1, "EXDOSE", "80mg"), rule="TYPE", domain="ex", row=1,
         usubjid="S-001", variable="EXDOSE", value="80mg"),
    # --- near misses --------------------------------------------------------------------------
    Case("testcd-mprotien", setv("lb", 1, "LBTESTCD", "MPROTIEN"), rule="NEAR_MISS", domain="lb", row=1,
         usubjid="S-001", variable="LBTESTCD", value="MPROTIEN"),
    Case("testcd-kappafcl", add_lab("KAPPAFCL", 3.0, "mg/L", spec="SERUM", cat="DISEASE ASSESSMENT"),
         rule="NEAR_MISS", domain="lb", row=6, usubjid="S-002", variable="LBTESTCD"),
    Case("testcd-plate-warning", add_lab("PLATE", 150.0, "10^9/L"), rule="NEAR_MISS", domain="lb", row=6,
         usubjid="S-002", variable="LBTESTCD", severity="warning"),
    Case("testcd-neutsg-allowed", add_lab("NEUTSG", 3.0, "10^9/L"), rule=None, absent=("NEAR_MISS",)),
    Case("testcd-biomarker-free", add_lab("MPROTEINX", 3.0, "ng/mL", spec="PLASMA", cat="BIOMARKER"),
         rule=None, absent=("NEAR_MISS",)),
    Case("extrt-selinexr", setv("ex", 3, "EXTRT", "SELINEXR"), rule="NEAR_MISS", domain="ex", row=3,
         usubjid="S-002", variable="EXTRT", protocol=True),
    # --- missing variables: one error, no cascade ---------------------------------------------
    Case("cm-without-cmcat", drop("cm", "CMCAT"), rule="MISSING_VARIABLE", domain="cm", variable="CMCAT",
         absent=("DUPLICATE_KEY",)),
    Case("lb-without-lbtestcd", drop("lb", "LBTESTCD"), rule="MISSING_VARIABLE", domain="lb",
         variable="LBTESTCD", absent=("DUPLICATE_KEY", "LAB_RANGE", "UNIT_UNKNOWN")),
    Case("dm-without-usubjid", drop("dm", "USUBJID"), rule="MISSING_VARIABLE", domain="dm", variable="USUBJID"),
    Case("ex-without-extrt", drop("ex", "EXTRT"), rule="MISSING_VARIABLE", domain="ex", variable="EXTRT",
         absent=("DUPLICATE_KEY",)),
    Case("lb-without-unit", drop("lb", "LBSTRESU"), rule="MISSING_VARIABLE", domain="lb", variable="LBSTRESU"),
    Case("ae-without-usubjid", drop("ae", "USUBJID"), rule="MISSING_VARIABLE", domain="ae", variable="USUBJID"),
    Case("dm-without-age", drop("dm", "AGE"), rule="MISSING_VARIABLE", domain="dm", variable="AGE",
         absent=("AGE_RANGE",)),
    Case("ds-without-dsdecod", drop("ds", "DSDECOD"), rule="MISSING_VARIABLE", domain="ds", variable="DSDECOD"),
    # --- columns ------------------------------------------------------------------------------
    Case("age-and-age-lower", files=csv_swap("dm.csv", "AGE,SEX", "AGE,age"), rule="DUPLICATE_COLUMN",
         domain="dm", variable="AGE", value="AGE, age"),
    Case("same-name-twice", files=csv_swap("dm.csv", "AGE,SEX", "SEX,SEX"), rule="DUPLICATE_COLUMN",
         domain="dm", variable="SEX"),
    Case("case-duplicate-parquet", ext=".parquet",
         files=parquet_with("dm", lambda df: pa.Table.from_pandas(df.assign(age=df["AGE"]), preserve_index=False)),
         rule="DUPLICATE_COLUMN", domain="dm", variable="AGE"),
    Case("case-duplicate-json", ext=".json",
         files=json_doc("dm", lambda d: {**d, "columns": d["columns"] + [{**d["columns"][2], "name": "age"}],
                                         "rows": [[*r, r[2]] for r in d["rows"]]}),
         rule="DUPLICATE_COLUMN", domain="dm", variable="AGE"),
    Case("lower-case-names-ok", files=edit("ae.csv", lambda b: b.split(b"\n", 1)[0].lower() + b"\n"
                                           + b.split(b"\n", 1)[1]), rule=None),
    Case("header-longer-than-rows", files=edit("ae.csv", lambda b: b.replace(b"\n", b",ROWNUM\n", 1).replace(
        b"\r", b"")), rule="CSV_FIELDS", domain="ae"),
    Case("rownum-column-complete", frames=lambda d: d["ae"].insert(0, "ROWNUM", [7, 8]), rule="RESERVED_COLUMN",
         domain="ae", variable="ROWNUM", severity="warning"),
    Case("unnamed-column-with-values", frames=lambda d: d["ae"].insert(1, "", ["x", "y"]),
         rule="COLUMN_UNNAMED", domain="ae", severity="warning"),
    Case("trailing-empty-column", files=edit("ae.csv", lambda b: b.replace(b"\n", b",\n")), rule=None,
         absent=("COLUMN_UNNAMED",)),
    # --- file kinds ---------------------------------------------------------------------------
    Case("lb-is-a-folder", files=replace_file("lb.csv", lambda p: p.mkdir()), rule="NOT_REGULAR_FILE",
         domain="lb", variable="(file)", value="lb.csv"),
    Case("lb-is-a-fifo", files=replace_file("lb.csv", lambda p: os.mkfifo(p)), rule="NOT_REGULAR_FILE",
         domain="lb", variable="(file)", value="lb.csv"),
    Case("dm-broken-link", files=replace_file("dm.csv", lambda p: p.symlink_to(p.parent / "nowhere.csv")),
         rule="NOT_REGULAR_FILE", domain="dm"),
    Case("dm-link-to-file-ok", files=lambda f: ((f / "real_dm.data").write_bytes((f / "dm.csv").read_bytes()),
                                               (f / "dm.csv").unlink(), (f / "dm.csv").symlink_to(f / "real_dm.data")),
         rule=None),
    Case("study-json-malformed", files=text("study.json", "{synthetic: true"), rule="STUDY_JSON", domain="study"),
    Case("study-json-list", files=text("study.json", "[1, 2]"), rule="STUDY_JSON", domain="study"),
    Case("study-json-synthetic-text", files=text("study.json", '{"synthetic": "yes"}'), rule="STUDY_JSON",
         domain="study"),
    Case("study-json-folder", files=replace_file("study.json", lambda p: p.mkdir()), rule="STUDY_JSON",
         domain="study"),
    Case("study-json-fifo", files=replace_file("study.json", lambda p: os.mkfifo(p)), rule="STUDY_JSON",
         domain="study"),
    Case("study-json-latin1", files=text("study.json", '{"name": "\xe9tude"}'.encode("latin-1")),
         rule="STUDY_JSON", domain="study"),
    Case("study-json-empty", files=text("study.json", ""), rule="STUDY_JSON", domain="study"),
    # --- encodings and CSV dialects -----------------------------------------------------------
    Case("utf8-bom", files=edit("dm.csv", lambda b: codecs.BOM_UTF8 + b), rule=None),
    Case("utf16-bom", files=edit("dm.csv", lambda b: b.decode().encode("utf-16")), rule=None),
    Case("latin1-undeclared", files=edit("ae.csv", lambda b: b.replace(b"NAUSEA", "NAUS\xc9A".encode("latin-1"))),
         rule="ENCODING", domain="ae"),
    Case("latin1-declared", files=edit("ae.csv", lambda b: b.replace(b"DOSE REDUCED", "DOSE R\xc9DUCED".encode(
        "latin-1"))), options=ReadOptions(encoding="latin-1"), rule="CONTROLLED_TERM", domain="ae", row=1,
         variable="AEACN", severity="warning", value="DOSE RÉDUCED"),
    Case("binary-garbage-csv", files=text("ae.csv", bytes(range(256)) * 4), rule="ENCODING", domain="ae"),
    Case("nul-bytes", files=edit("ae.csv", lambda b: b.replace(b"NAUSEA", b"NAU\x00SEA")), rule="FILE_UNREADABLE",
         domain="ae"),
    Case("crlf", files=edit("lb.csv", lambda b: b.replace(b"\n", b"\r\n")), rule=None),
    Case("semicolon", files=edit("ex.csv", lambda b: b.replace(b",", b";")), rule="CSV_DELIMITER", domain="ex",
         severity="warning"),
    Case("tab", files=edit("ex.csv", lambda b: b.replace(b",", b"\t")), rule="CSV_DELIMITER", domain="ex",
         severity="warning"),
    Case("pipe", files=edit("ds.csv", lambda b: b.replace(b",", b"|")), rule="CSV_DELIMITER", domain="ds",
         severity="warning"),
    Case("decimal-comma", files=edit("ex.csv", lambda b: b.replace(b",", b";").replace(b"80.0", b"80,5", 1)),
         rule="TYPE", domain="ex", row=1, usubjid="S-001", variable="EXDOSE", value="80,5"),
    Case("quoted-newline-keeps-row-numbers",
         frames=seq(setv("ae", 1, "AEACN", "DOSE\nREDUCED"), setv("ae", 2, "AESER", "MAYBE")),
         rule="CONTROLLED_TERM", domain="ae", row=2, usubjid="S-002", variable="AESER"),
    Case("extra-field", files=edit("ae.csv", lambda b: b.replace(b"NAUSEA,", b"NAUSEA,,", 1)), rule="CSV_FIELDS",
         domain="ae", row=2),
    Case("missing-field", files=edit("ds.csv", lambda b: b.replace(b"NAUSEA,", b"", 1)), rule="CSV_FIELDS",
         domain="ds", row=3),
    Case("unquoted-newline", files=edit("ae.csv", lambda b: b.replace(b"NAUSEA", b"NAU\nSEA", 1)),
         rule="CSV_FIELDS", domain="ae"),
    Case("unterminated-quote", files=edit("ae.csv", lambda b: b.replace(b"NAUSEA", b'"NAUSEA', 1)),
         rule="CSV_FIELDS", domain="ae"),
    Case("empty-file", files=text("ae.csv", b""), rule="FILE_EMPTY", domain="ae"),
    Case("blank-lines-only", files=text("ae.csv", "\r\n\n  \n"), rule="FILE_EMPTY", domain="ae"),
    Case("blank-lines-between-rows", files=edit("ds.csv", lambda b: b.replace(b"\n", b"\n\n")), rule=None),
    Case("header-only-dm", files=text("dm.csv", DM_HEADER), rule="EMPTY_DOMAIN", domain="dm"),
    Case("header-only-ae", files=edit("ae.csv", lambda b: b.split(b"\n", 1)[0] + b"\n"), rule="EMPTY_DOMAIN",
         domain="ae", severity="warning"),
    Case("whitespace-around-values", files=edit("dm.csv", lambda b: b.replace(b",M,", b", M ,")), rule=None),
    Case("lower-case-terms", setv("dm", 1, "SEX", "m"), rule=None, absent=("CONTROLLED_TERM",)),
    # --- duplicates ---------------------------------------------------------------------------
    Case("duplicate-lab-row", lambda d: d.__setitem__("lb", pd.concat([d["lb"], d["lb"].iloc[[1]]],
                                                                     ignore_index=True)),
         rule="DUPLICATE_KEY", domain="lb", row=6, usubjid="S-001"),
    Case("duplicate-dm-subject", lambda d: d.__setitem__("dm", pd.concat([d["dm"], d["dm"].iloc[[2]]],
                                                                     ignore_index=True)),
         rule="DUPLICATE_KEY", domain="dm", row=4, usubjid="S-003"),
    Case("duplicate-ae-row", lambda d: d.__setitem__("ae", pd.concat([d["ae"], d["ae"].iloc[[0]]],
                                                                     ignore_index=True)),
         rule="DUPLICATE_KEY", domain="ae", row=3, usubjid="S-001", severity="warning"),
    Case("duplicate-row-without-keys", add_domain("mh", MH), rule="DUPLICATE_ROW", domain="mh", row=2,
         usubjid="S-001", severity="warning"),
    Case("two-files-one-domain", files=lambda f: pd.read_csv(f / "dm.csv").to_parquet(f / "dm.parquet"),
         rule="DUPLICATE_DOMAIN_FILE", domain="dm"),
    Case("missing-domain", lambda d: d.pop("ae"), rule="MISSING_DOMAIN", domain="ae"),
    # --- controlled terms and subjects --------------------------------------------------------
    Case("sex-x", setv("dm", 2, "SEX", "X"), rule="CONTROLLED_TERM", domain="dm", row=2, usubjid="S-002",
         variable="SEX"),
    Case("aeser-yes", setv("ae", 1, "AESER", "YES"), rule="CONTROLLED_TERM", domain="ae", row=1,
         usubjid="S-001", variable="AESER"),
    Case("cmcat-unknown", setv("cm", 3, "CMCAT", "PRIOR THERAPY"), rule="CONTROLLED_TERM", domain="cm", row=3,
         usubjid="S-002", variable="CMCAT"),
    Case("exdosu-ug", setv("ex", 2, "EXDOSU", "ug"), rule="CONTROLLED_TERM", domain="ex", row=2,
         usubjid="S-001", variable="EXDOSU"),
    Case("aerel-probable-warning", setv("ae", 1, "AEREL", "PROBABLE"), rule="CONTROLLED_TERM", domain="ae",
         row=1, usubjid="S-001", variable="AEREL", severity="warning"),
    Case("grade-6", setv("ae", 2, "AETOXGR", 6), rule="CONTROLLED_TERM", domain="ae", row=2, usubjid="S-002",
         variable="AETOXGR"),
    Case("lab-subject-not-in-dm", setv("lb", 5, "USUBJID", "S-404"), rule="UNKNOWN_SUBJECT", domain="lb", row=5,
         usubjid="S-404", variable="USUBJID"),
    Case("ex-subject-not-in-dm", setv("ex", 3, "USUBJID", "S-777"), rule="UNKNOWN_SUBJECT", domain="ex", row=3,
         usubjid="S-777", variable="USUBJID"),
    Case("cm-subject-not-in-dm", setv("cm", 1, "USUBJID", "s-001"), rule="UNKNOWN_SUBJECT", domain="cm", row=1,
         usubjid="s-001", variable="USUBJID"),
    Case("unit-unknown", setv("lb", 1, "LBSTRESU", "mg/mL"), rule="UNIT_UNKNOWN", domain="lb", row=1,
         usubjid="S-001", variable="LBSTRESU", absent=("LAB_RANGE",)),
    Case("missing-value", setv("ae", 2, "AEDECOD", None), rule="MISSING_VALUE", domain="ae", row=2,
         usubjid="S-002", variable="AEDECOD"),
    # --- Parquet ------------------------------------------------------------------------------
    Case("parquet-truncated", ext=".parquet", files=edit("lb.parquet", lambda b: b[: len(b) // 2]),
         rule="FILE_UNREADABLE", domain="lb"),
    Case("parquet-garbage", ext=".parquet", files=text("lb.parquet", b"PAR1" + b"\x00garbage" * 50 + b"PAR1"),
         rule="FILE_UNREADABLE", domain="lb"),
    Case("parquet-empty", ext=".parquet", files=text("ae.parquet", b""), rule="FILE_EMPTY", domain="ae"),
    Case("parquet-csv-inside", ext=".parquet", files=text("ae.parquet", "USUBJID\nS-001\n"),
         rule="FILE_UNREADABLE", domain="ae"),
    Case("parquet-nested-column", ext=".parquet",
         files=parquet_with("ae", lambda df: pa.Table.from_pandas(df.assign(AETERM=[[1, 2], [3]]),
                                                                  preserve_index=False)),
         rule="VALUE_NOT_SCALAR", domain="ae", variable="AETERM"),
    Case("parquet-timestamp-dates", ext=".parquet",
         files=parquet_with("lb", lambda df: pa.Table.from_pandas(df.assign(LBDTC=pd.to_datetime(df["LBDTC"])),
                                                                  preserve_index=False)), rule=None),
    Case("parquet-date32-dates", ext=".parquet",
         files=parquet_with("ae", lambda df: pa.Table.from_pandas(df.assign(
             AESTDTC=pd.to_datetime(df["AESTDTC"]).dt.date), preserve_index=False)), rule=None),
    Case("parquet-timestamp-2999", ext=".parquet",
         files=parquet_with("ae", lambda df: pa.table({
             **{c: pa.array(df[c]) for c in df.columns if c != "AESTDTC"},
             "AESTDTC": pa.array([dt.datetime(2999, 1, 1), dt.datetime(2019, 2, 10)], pa.timestamp("us"))})),
         rule="DATE_OUT_OF_RANGE", domain="ae", row=1, usubjid="S-001", variable="AESTDTC"),
    Case("parquet-age-inf", ext=".parquet",
         files=parquet_with("dm", lambda df: pa.Table.from_pandas(df.assign(AGE=[np.inf, 70.0, 58.0]),
                                                                  preserve_index=False)),
         rule="NUMBER_NOT_FINITE", domain="dm", row=1, usubjid="S-001", variable="AGE"),
    Case("parquet-dictionary-column", ext=".parquet",
         files=parquet_with("dm", lambda df: pa.Table.from_pandas(df.assign(SEX=df["SEX"].astype("category")),
                                                                  preserve_index=False)), rule=None),
    # --- SAS transport ------------------------------------------------------------------------
    Case("xpt-garbage", ext=".xpt", files=text("ae.xpt", b"HEADER RECORD" + b"\x01" * 300), rule="FILE_UNREADABLE",
         domain="ae"),
    Case("xpt-truncated", ext=".xpt", files=edit("lb.xpt", lambda b: b[:200]), rule="FILE_UNREADABLE", domain="lb"),
    Case("xpt-empty", ext=".xpt", files=text("ae.xpt", b""), rule="FILE_EMPTY", domain="ae"),
    Case("xpt-is-csv", ext=".xpt", files=text("ae.xpt", "USUBJID,AEDECOD\nS-001,NAUSEA\n"), rule="FILE_UNREADABLE",
         domain="ae"),
    # --- Dataset-JSON -------------------------------------------------------------------------
    Case("json-syntax", ext=".json", files=text("ae.json", '{"columns": ['), rule="FILE_UNREADABLE", domain="ae"),
    Case("json-top-level-list", ext=".json", files=text("ae.json", "[]"), rule="FILE_UNREADABLE", domain="ae"),
    Case("json-no-rows", ext=".json", files=json_doc("ae", lambda d: {k: v for k, v in d.items() if k != "rows"}),
         rule="FILE_UNREADABLE", domain="ae"),
    Case("json-short-row", ext=".json", files=json_doc("ae", lambda d: {**d, "rows": [d["rows"][0],
                                                                                      d["rows"][1][:-1]]}),
         rule="FILE_UNREADABLE", domain="ae", row=2),
    Case("json-row-object", ext=".json", files=json_doc("ae", lambda d: {**d, "rows": [{"a": 1}]}),
         rule="FILE_UNREADABLE", domain="ae", row=1),
    Case("json-columns-not-list", ext=".json", files=json_doc("ae", lambda d: {**d, "columns": "USUBJID"}),
         rule="FILE_UNREADABLE", domain="ae"),
    Case("json-column-without-name", ext=".json",
         files=json_doc("ae", lambda d: {**d, "columns": [{"label": "x"}, *d["columns"][1:]]}),
         rule="FILE_UNREADABLE", domain="ae"),
    Case("json-nested-cell", ext=".json", files=json_doc("ae", lambda d: _set_json_cell(d, "AEDECOD", 1, [1, 2])),
         rule="VALUE_NOT_SCALAR", domain="ae", variable="AEDECOD"),
    Case("json-mixed-age", ext=".json", files=json_doc("dm", lambda d: _set_json_cell(d, "AGE", 2, "sixty")),
         rule="TYPE", domain="dm", row=2, usubjid="S-002", variable="AGE", value="sixty"),
    Case("json-infinity", ext=".json",
         files=json_doc("lb", lambda d: _set_json_cell(d, "LBSTRESN", 1, float("inf"))),
         rule="NUMBER_NOT_FINITE", domain="lb", row=1, usubjid="S-001", variable="LBSTRESN"),
    Case("json-1e400", ext=".json",
         files=edit("dm.json", lambda b: b.replace(b"65", b"1e400", 1)),
         rule="NUMBER_NOT_FINITE", domain="dm", row=1, usubjid="S-001", variable="AGE"),
    Case("json-v10-empty-group", ext=".json", files=text("ae.json", '{"clinicalData": {"itemGroupData": {}}}'),
         rule="FILE_UNREADABLE", domain="ae"),
    Case("json-empty", ext=".json", files=text("ae.json", ""), rule="FILE_EMPTY", domain="ae"),
    Case("json-not-utf8", ext=".json", files=edit("ae.json", lambda b: b.replace(b"NAUSEA", b"NAUS\xc9A")),
         rule="ENCODING", domain="ae"),
    Case("json-deep-nesting", ext=".json", files=text("ae.json", "[" * 100000 + "]" * 100000),
         rule="FILE_UNREADABLE", domain="ae"),
    Case("json-v10-valid", ext=".json", files=lambda f: _as_v10(f / "ae.json"), rule=None),
]


def _as_v10(p: Path) -> None:
    d = json.loads(p.read_text("utf-8"))
    items = [{"OID": c["itemOID"], "name": c["name"], "type": c["dataType"]} for c in d["columns"]]
    doc = {"clinicalData": {"itemGroupData": {"IG.AE": {"items": [{"OID": "ITEMGROUPDATASEQ", "name": "ITEMGROUPDATASEQ"}, *items],
                                                         "itemData": [[i + 1, *r] for i, r in enumerate(d["rows"])]}}}}
    p.write_text(json.dumps(doc), "utf-8")


def _alarm(signum, frame):  # a FIFO opened for reading would block: fail instead of hanging
    raise TimeoutError("reading blocked (a FIFO was opened?)")


@pytest.fixture(scope="module")
def storm() -> Protocol:
    return Protocol.load(None)


def _matches(issue, case: Case) -> bool:
    want = {"rule": case.rule, "domain": case.domain, "row": case.row, "usubjid": case.usubjid,
            "variable": case.variable, "severity": case.severity, "value": case.value}
    return all(v is ANY or getattr(issue, k) == v for k, v in want.items())


@pytest.mark.slow  # ~170 small studies read: tens of seconds on 2 cores
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_the_exact_issue(tmp_path, case: Case, storm):
    raw = valid_raw_domains()
    if case.frames is not None:
        case.frames(raw)
    folder = tmp_path / "study"
    write_study_folder(folder, raw, case.ext)
    if case.files is not None:
        case.files(folder)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        study, issues = load_study(folder, case.options, protocol=storm if case.protocol else None)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    seen = [(i.rule, i.domain, i.row, i.usubjid, i.variable, i.severity, i.value) for i in issues]
    for rule in case.absent:
        assert not any(i.rule == rule for i in issues), f"{rule} fired: {seen}"
    errors = [i for i in issues if i.severity == "error"]
    if case.rule is None:
        assert study is not None and not errors, f"expected a clean read; got {seen}"
        return
    assert any(_matches(i, case) for i in issues), f"no {case.rule} as expected; got {seen}"
    hit = next(i for i in issues if _matches(i, case))
    assert hit.message()  # every issue renders as one line naming domain and variable
    assert hit.domain in hit.message() and hit.variable in hit.message()
    if case.severity == "warning":
        assert study is not None and not errors, f"expected a completed read with a warning; got {seen}"
    else:
        assert errors


def test_corpus_has_at_least_100_kinds():
    assert len({c.id for c in CASES}) == len(CASES) >= 100


def test_no_date_overflows_into_another_date(tmp_path):
    # pandas' nanosecond range ends in 2262: 2999-01-01 used to become 1829-11-23
    raw = valid_raw_domains()
    raw["ae"].loc[0, "AEENDTC"] = "2999-01-01"
    study, issues = load_study(write_study_folder(tmp_path / "s", raw),
                               ReadOptions(date_max=dt.date(9999, 12, 31)))
    assert study is not None
    assert pd.isna(study["ae"].loc[0, "AEENDT"])
    assert any(i.rule == "DATE_OUT_OF_RANGE" and i.variable == "AEENDTC" and i.row == 1 for i in issues)


def test_a_missing_key_variable_is_one_error_not_a_cascade(tmp_path):
    # CDISC pilot shape: cm without CMCAT gave one duplicate-key error per row
    raw = valid_raw_domains()
    raw["cm"] = pd.concat([raw["cm"]] * 50, ignore_index=True).drop(columns=["CMCAT"])
    _, issues = load_study(write_study_folder(tmp_path / "s", raw))
    cm_errors = [i for i in issues if i.domain == "cm" and i.severity == "error"]
    assert [(i.rule, i.variable) for i in cm_errors] == [("MISSING_VARIABLE", "CMCAT")]


def test_near_miss_is_one_issue_per_value_with_counts(tmp_path):
    raw = valid_raw_domains()
    raw["lb"]["LBTESTCD"] = raw["lb"]["LBTESTCD"].replace({"MPROTEIN": "MPROTIEN"})
    _, issues = load_study(write_study_folder(tmp_path / "s", raw))
    (hit,) = [i for i in issues if i.rule == "NEAR_MISS"]
    assert "did you mean MPROTEIN?" in hit.problem and "3 row(s), 2 subject(s)" in hit.problem
    assert (hit.row, hit.usubjid, hit.severity) == (1, "S-001", "error")


def test_missing_study_folder_is_a_usage_error(tmp_path):
    from mmtrial.errors import UsageError

    with pytest.raises(UsageError, match="study folder not found"):
        load_study(tmp_path / "nope")


def test_fifo_domain_is_never_opened(tmp_path):
    folder = write_study_folder(tmp_path / "s", valid_raw_domains())
    (folder / "rs.csv").unlink(missing_ok=True)
    os.mkfifo(folder / "rs.csv")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        study, issues = load_study(folder)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert study is None
    assert [(i.rule, i.domain) for i in issues if i.severity == "error"] == [("NOT_REGULAR_FILE", "rs")]
