"""OMOP CDM v5.4 -> the SDTM-style cohort frames (dm, cm, rs, ds, lb, mh).

The mapping (docs/external.md, "OMOP CDM input"), table by table, standard column names only:

* person -> dm: USUBJID = person_source_value (else ``P<person_id>``); SEX from
  gender_concept_id (8507 M, 8532 F) or gender_source_value; BRTHDTC from birth_datetime, else
  year/month/day_of_birth (a partial date when month or day is missing); AGE at the first
  anti-myeloma drug exposure; RFXSTDTC = that first exposure.
* drug_exposure -> cm: only anti-myeloma drugs (drug_concept_id through
  ``data/omop_concepts.toml``, else the CONCEPT table's concept_name when the database has one,
  else drug_source_value, each through the drug dictionary); a regimen (CMGRPID) = the drugs a
  person starts on the same day (``R01``, ``R02`` ... in date order); CMSTDTC/CMENDTC =
  drug_exposure_start_date/end_date; CMRSDISC = stop_reason.
* condition_occurrence -> rs (progression: condition_source_value or concept id in the
  concept file's progression lists; RSCAT PRIOR THERAPY, RSSTRESC PD) and mh (the earliest
  multiple-myeloma diagnosis).
* measurement -> lb: serum M-protein (g/dL; unit_source_value kept, converted by the lab
  reader) and cytogenetics (value_source_value POSITIVE/NEGATIVE).
* death -> ds DEATH and dm DTHFL/DTHDTC; observation_period_end_date -> ds LAST KNOWN ALIVE.

The frames then go through the same checks as an SDTM folder (external/cohort.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial.errors import UsageError
from mmtrial.sdtm.issues import InputIssue, StudyInputError

OMOP_TABLES = ("person", "drug_exposure", "condition_occurrence", "measurement", "death", "observation_period")
CATEGORY = "PRIOR ANTI-MYELOMA THERAPY"


def _connect(source: str | Path):
    """A read-only DuckDB connection with the CDM tables visible unqualified."""
    import duckdb

    s = str(source)
    if s.startswith(("postgresql://", "postgres://")) or s.startswith("dbname="):
        con = duckdb.connect()
        try:
            con.execute("LOAD postgres")
        except Exception as exc:  # the extension is not installed (no network to install it)
            con.close()
            raise UsageError(
                "--cohort: reading OMOP from PostgreSQL needs DuckDB's postgres extension, which is not "
                f"installed here ({str(exc).splitlines()[0][:120]}); install it with "
                "`python -c \"import duckdb; duckdb.sql('INSTALL postgres')\"` on a machine with network "
                "access, or export the CDM tables to a DuckDB file") from None
        try:
            con.execute(f"ATTACH '{s}' AS cdm (TYPE postgres, READ_ONLY)")
            con.execute("USE cdm")
        except Exception as exc:
            con.close()
            raise UsageError(f"--cohort: cannot connect to PostgreSQL: {str(exc).splitlines()[0]}") from None
        return con
    p = Path(s)
    try:
        return duckdb.connect(str(p), read_only=True)
    except Exception as exc:
        raise UsageError(f"--cohort {p}: not a DuckDB database ({str(exc).splitlines()[0]})") from None


def _table(con, name: str, required: bool) -> pd.DataFrame | None:
    try:
        return con.execute(f"SELECT * FROM {name}").df()
    except Exception:
        if required:
            raise StudyInputError([InputIssue(domain=name, variable="(table)", rule="MISSING_DOMAIN",
                                              problem=f"OMOP table {name} not found",
                                              hint="The cohort needs the CDM v5.4 tables person and drug_exposure.")]) from None
        return None


def _iso(s: pd.Series) -> pd.Series:
    d = pd.to_datetime(s, errors="coerce")
    return d.dt.strftime("%Y-%m-%d").astype("string")


def _text(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().replace("", pd.NA)


def _with_rownum(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True).astype("string")
    df.insert(0, "ROWNUM", np.arange(1, len(df) + 1, dtype="int64"))
    return df


def map_omop_frames(tables: dict[str, pd.DataFrame | None], concepts: dict[str, Any],
                    concept_names: pd.Series | None = None, dictionary=None) -> tuple[dict[str, pd.DataFrame], list[InputIssue]]:
    """Map OMOP tables to raw SDTM-style text frames (module docstring); returns (raw, issues)."""
    from mmtrial.derive.drugs import DrugDictionary, compute_drug_names

    dictionary = dictionary or DrugDictionary.load(None)
    issues: list[InputIssue] = []
    person = tables["person"]
    assert person is not None
    ids = _text(person["person_source_value"]) if "person_source_value" in person else None
    pid = person["person_id"].astype("int64")
    usub = ids.fillna("P" + pid.astype("string")) if ids is not None else "P" + pid.astype("string")
    idmap = pd.Series(usub.to_numpy(), index=pid.to_numpy())
    gender = {int(v): k for k, v in concepts["gender"].items()}
    sex = person["gender_concept_id"].map(gender) if "gender_concept_id" in person else pd.Series(pd.NA, index=person.index)
    if "gender_source_value" in person:
        sex = sex.fillna(_text(person["gender_source_value"]).str.upper().str[:1])
    if "birth_datetime" in person and person["birth_datetime"].notna().any():
        brth = _iso(person["birth_datetime"])
    else:
        brth = pd.Series(pd.NA, index=person.index, dtype="string")
    y = person.get("year_of_birth")
    if y is not None:
        m = person.get("month_of_birth")
        d = person.get("day_of_birth")
        part = y.astype("Int64").astype("string")
        if m is not None:
            mm = m.astype("Int64").astype("string").str.zfill(2)
            part = part.where(mm.isna(), part + "-" + mm)
            if d is not None:
                dd = d.astype("Int64").astype("string").str.zfill(2)
                part = part.where(mm.isna() | dd.isna(), part + "-" + dd)
        brth = brth.fillna(part)

    # drugs: concept id -> name -> dictionary drug
    de = tables["drug_exposure"]
    assert de is not None
    byid = {int(v): k for k, v in concepts.get("drugs", {}).items()}
    name = de["drug_concept_id"].map(byid) if "drug_concept_id" in de else pd.Series(pd.NA, index=de.index)
    if concept_names is not None and "drug_concept_id" in de:
        name = name.fillna(de["drug_concept_id"].map(concept_names))
    if "drug_source_value" in de:
        name = name.fillna(de["drug_source_value"])
    canon = compute_drug_names(name.astype("string").fillna(""), dictionary)
    keep = canon.notna()
    if (~keep).any():
        issues.append(InputIssue(domain="drug_exposure", variable="drug_concept_id", severity="warning",
                                 rule="OMOP_NOT_ANTIMYELOMA", value=str(int((~keep).sum())),
                                 problem=f"{int((~keep).sum())} drug_exposure row(s) are not anti-myeloma drugs "
                                         "of the drug dictionary; not used as regimens",
                                 hint="Add the concept to the concept file's [drugs] or the drug dictionary."))
    x = de.loc[keep].copy()
    x["USUBJID"] = x["person_id"].astype("int64").map(idmap)
    x["CMTRT"] = canon[keep].str.upper()
    x["CMSTDTC"] = _iso(x["drug_exposure_start_date"])
    x["CMENDTC"] = _iso(x["drug_exposure_end_date"]) if "drug_exposure_end_date" in x else pd.NA
    x["CMRSDISC"] = _text(x["stop_reason"]).str.upper() if "stop_reason" in x else pd.NA
    x = x.sort_values(["USUBJID", "CMSTDTC", "CMTRT"], kind="stable")
    rank = x.groupby("USUBJID")["CMSTDTC"].rank(method="dense").astype("Int64")
    x["CMGRPID"] = "R" + rank.astype("string").str.zfill(2)
    cm = x[["USUBJID", "CMTRT", "CMGRPID", "CMSTDTC", "CMENDTC", "CMRSDISC"]].assign(CMCAT=CATEGORY)
    first = pd.to_datetime(x["CMSTDTC"]).groupby(x["USUBJID"]).min()

    # conditions: diagnosis and progression
    co = tables.get("condition_occurrence")
    ccfg = concepts["condition"]
    rs = pd.DataFrame(columns=["USUBJID", "RSCAT", "RSTESTCD", "RSSTRESC", "RSDTC"])
    mh = pd.DataFrame(columns=["USUBJID", "MHCAT", "MHTERM", "MHSTDTC"])
    if co is not None and len(co):
        src = _text(co.get("condition_source_value", pd.Series(pd.NA, index=co.index))).str.upper()
        cid = co["condition_concept_id"].astype("Int64") if "condition_concept_id" in co else pd.Series(pd.NA, index=co.index)
        prog = src.isin([s.upper() for s in ccfg["progression_source_values"]]).fillna(False) | \
            cid.isin(ccfg.get("progression_concept_ids", [])).fillna(False)
        diag = (cid.isin(ccfg["diagnosis_concept_ids"]).fillna(False)
                | src.isin([s.upper() for s in ccfg["diagnosis_source_values"]]).fillna(False)) & ~prog
        u = co["person_id"].astype("int64").map(idmap)
        rs = pd.DataFrame({"USUBJID": u[prog], "RSCAT": "PRIOR THERAPY", "RSTESTCD": "OVRLRESP", "RSSTRESC": "PD",
                           "RSDTC": _iso(co.loc[prog, "condition_start_date"])}).sort_values(["USUBJID", "RSDTC"], kind="stable")
        dg = pd.DataFrame({"USUBJID": u[diag], "MHSTDTC": _iso(co.loc[diag, "condition_start_date"])})
        dg = dg.sort_values(["USUBJID", "MHSTDTC"]).drop_duplicates("USUBJID")
        mh = dg.assign(MHCAT="PRIMARY DIAGNOSIS", MHTERM="MULTIPLE MYELOMA")[["USUBJID", "MHCAT", "MHTERM", "MHSTDTC"]]

    # measurements
    me = tables.get("measurement")
    mcfg = concepts["measurement"]
    lb = pd.DataFrame(columns=["USUBJID", "LBCAT", "LBTESTCD", "LBSPEC", "LBSTRESN", "LBSTRESC", "LBSTRESU", "LBDTC"])
    if me is not None and len(me):
        msrc = _text(me.get("measurement_source_value", pd.Series(pd.NA, index=me.index))).str.upper()
        mid = me["measurement_concept_id"].astype("Int64") if "measurement_concept_id" in me else pd.Series(pd.NA, index=me.index)
        isM = msrc.isin([s.upper() for s in mcfg["mprotein_source_values"]]).fillna(False) | \
            mid.isin(mcfg.get("mprotein_concept_ids", [])).fillna(False)
        isC = msrc.isin([s.upper() for s in mcfg["cytogenetic_source_values"]]).fillna(False)
        u = me["person_id"].astype("int64").map(idmap)
        unit = _text(me["unit_source_value"]) if "unit_source_value" in me else pd.Series(pd.NA, index=me.index, dtype="string")
        vnum = pd.to_numeric(me.get("value_as_number"), errors="coerce")
        vsrc = _text(me["value_source_value"]).str.upper() if "value_source_value" in me else pd.Series(pd.NA, index=me.index)
        mp = pd.DataFrame({"USUBJID": u[isM], "LBCAT": "CHEMISTRY", "LBTESTCD": "MPROTEIN", "LBSPEC": "SERUM",
                           "LBSTRESN": vnum[isM].map(lambda v: f"{v:.10g}" if pd.notna(v) else pd.NA),
                           "LBSTRESC": pd.NA, "LBSTRESU": unit[isM].fillna("g/dL"),
                           "LBDTC": _iso(me.loc[isM, "measurement_date"])})
        cy = pd.DataFrame({"USUBJID": u[isC], "LBCAT": "CYTOGENETICS", "LBTESTCD": msrc[isC], "LBSPEC": "BONE MARROW",
                           "LBSTRESN": pd.NA, "LBSTRESC": vsrc[isC], "LBSTRESU": pd.NA,
                           "LBDTC": _iso(me.loc[isC, "measurement_date"])})
        lb = pd.concat([mp, cy], ignore_index=True).sort_values(["USUBJID", "LBDTC"], kind="stable")

    # deaths and follow-up
    dt = tables.get("death")
    death = pd.Series(dtype="string")
    if dt is not None and len(dt):
        death = _iso(dt["death_date"]).groupby(dt["person_id"].astype("int64").map(idmap)).min()
    op = tables.get("observation_period")
    last = pd.Series(dtype="string")
    if op is not None and len(op):
        last = _iso(op["observation_period_end_date"]).groupby(op["person_id"].astype("int64").map(idmap)).max()
    alive = last[~last.index.isin(death.index)]
    ds = pd.concat([
        pd.DataFrame({"USUBJID": death.index, "DSCAT": "DISPOSITION EVENT", "DSDECOD": "DEATH", "DSTERM": "DEATH",
                      "DSSTDTC": death.to_numpy()}),
        pd.DataFrame({"USUBJID": alive.index, "DSCAT": "OTHER EVENT", "DSDECOD": "LAST KNOWN ALIVE",
                      "DSTERM": "LAST KNOWN ALIVE", "DSSTDTC": alive.to_numpy()}),
    ], ignore_index=True).sort_values("USUBJID", kind="stable")

    fst = usub.map(first)
    # AGE at the first anti-myeloma drug; without any, at diagnosis (as the simulator's dm.AGE)
    if len(mh):
        fst = fst.fillna(usub.map(pd.to_datetime(mh.set_index("USUBJID")["MHSTDTC"])))
    bd = pd.to_datetime(brth, errors="coerce")
    age = np.floor((pd.to_datetime(fst) - bd).dt.days / 365.25)
    dm = pd.DataFrame({
        "USUBJID": usub.to_numpy(), "AGE": age.astype("Int64").astype("string").to_numpy(),
        "SEX": sex.astype("string").to_numpy(), "BRTHDTC": brth.to_numpy(),
        "RFXSTDTC": pd.to_datetime(usub.map(first)).dt.strftime("%Y-%m-%d").astype("string").to_numpy(),
        "DTHFL": np.where(usub.isin(death.index), "Y", None),
        "DTHDTC": usub.map(death).astype("string").to_numpy(),
    })
    raw = {"dm": dm, "cm": cm, "rs": rs, "ds": ds, "lb": lb, "mh": mh}
    return {k: _with_rownum(v) for k, v in raw.items()}, issues


def read_cohort_omop(source: str | Path, *, concepts: str | Path | None = None,
                     metadata_dir: Path | None = None):
    """Read an OMOP CDM v5.4 database (DuckDB file or PostgreSQL) as a checked :class:`Cohort`."""
    from mmtrial.external.cohort import Cohort, check_cohort_domains
    from mmtrial.simulate.cohort_omop import load_concepts

    conc = load_concepts(concepts)
    con = _connect(source)
    try:
        tables = {t: _table(con, t, required=t in ("person", "drug_exposure")) for t in OMOP_TABLES}
        cn = _table(con, "concept", required=False)
        src = _table(con, "cdm_source", required=False)
    finally:
        con.close()
    names = cn.set_index("concept_id")["concept_name"] if cn is not None and "concept_name" in cn else None
    raw, issues = map_omop_frames(tables, conc, names)
    frames, found = check_cohort_domains(raw, label=str(source))
    issues += found
    if any(i.severity == "error" for i in issues):
        raise StudyInputError(issues)
    meta: dict[str, Any] = {}
    if metadata_dir is not None and (metadata_dir / "study.json").is_file():
        try:
            meta = json.loads((metadata_dir / "study.json").read_text("utf-8"))
        except (OSError, ValueError):
            meta = {}
    synthetic = bool(meta.get("synthetic", False))
    if src is not None and len(src) and "source_description" in src:
        synthetic = synthetic or "synthetic data" in str(src["source_description"].iloc[0]).lower()
    return Cohort(frames=frames, source=str(source), kind="omop", synthetic=synthetic, metadata=meta, issues=issues)
