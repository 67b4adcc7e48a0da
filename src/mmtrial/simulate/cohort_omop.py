"""The simulated cohort as an OMOP CDM v5.4 database (a DuckDB file; synthetic data).

Tables and columns follow the CDM v5.4 specification (OHDSI CommonDataModel, v5.4 DDL):
person, observation_period, drug_exposure, condition_occurrence, measurement, death. Only the
columns the cohort fills are created, with their standard names; a ``cdm_source`` row says
"synthetic data". Concept ids come from ``data/omop_concepts.toml`` (tagged there).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def load_concepts(path: str | Path | None = None) -> dict[str, Any]:
    """The concept table (``data/omop_concepts.toml`` or the file given)."""
    if path is None:
        text = resources.files("mmtrial.data").joinpath("omop_concepts.toml").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return tomllib.loads(text)


def _dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce").dt.date


def cohort_to_omop(domains: dict[str, pd.DataFrame], concepts: dict[str, Any] | None = None,
                   label: str = "synthetic data") -> dict[str, pd.DataFrame]:
    """SDTM-style cohort frames -> OMOP CDM v5.4 tables (person_id = position in dm + 1).

    Regimens become drug_exposure rows (one per drug; drugs of one regimen share their start
    date, which is how the reader groups them again); progression events condition_occurrence
    rows with condition_source_value ``PROGRESSIVE DISEASE``; the diagnosis a condition row;
    serum M-protein and cytogenetics measurement rows; deaths the death table; the
    observation period runs from diagnosis to the last date known alive.
    """
    c = concepts or load_concepts()
    dm, cm, rs, ds, lb, mh = (domains[k] for k in ("dm", "cm", "rs", "ds", "lb", "mh"))
    pid = pd.Series(np.arange(1, len(dm) + 1), index=dm["USUBJID"].to_numpy())
    birth = pd.to_datetime(dm["BRTHDTC"])
    person = pd.DataFrame({
        "person_id": pid.to_numpy(), "gender_concept_id": dm["SEX"].map(c["gender"]).fillna(0).astype("int64"),
        "year_of_birth": birth.dt.year.astype("int64"), "month_of_birth": birth.dt.month.astype("int64"),
        "day_of_birth": birth.dt.day.astype("int64"), "birth_datetime": birth,
        "race_concept_id": 0, "ethnicity_concept_id": 0, "person_source_value": dm["USUBJID"].to_numpy(),
        "gender_source_value": dm["SEX"].to_numpy(),
    })
    drug_ids = {k.upper(): v for k, v in c["drugs"].items()}
    de = pd.DataFrame({
        "drug_exposure_id": np.arange(1, len(cm) + 1), "person_id": cm["USUBJID"].map(pid).to_numpy(),
        "drug_concept_id": cm["CMTRT"].str.upper().map(drug_ids).fillna(0).astype("int64").to_numpy(),
        "drug_exposure_start_date": _dates(cm["CMSTDTC"]), "drug_exposure_end_date": _dates(cm["CMENDTC"]),
        "drug_type_concept_id": c["type_concept"]["ehr"], "stop_reason": cm["CMRSDISC"].to_numpy(),
        "drug_source_value": cm["CMTRT"].to_numpy(),
    })
    diag_id = c["condition"]["diagnosis_concept_ids"][0]
    co = pd.concat([
        pd.DataFrame({"person_id": mh["USUBJID"].map(pid).to_numpy(), "condition_concept_id": diag_id,
                      "condition_start_date": _dates(mh["MHSTDTC"]), "condition_source_value": mh["MHTERM"].to_numpy()}),
        pd.DataFrame({"person_id": rs["USUBJID"].map(pid).to_numpy(), "condition_concept_id": 0,
                      "condition_start_date": _dates(rs["RSDTC"]),
                      "condition_source_value": "PROGRESSIVE DISEASE"}),
    ], ignore_index=True)
    co.insert(0, "condition_occurrence_id", np.arange(1, len(co) + 1))
    co["condition_type_concept_id"] = c["type_concept"]["ehr"]
    me = pd.DataFrame({
        "measurement_id": np.arange(1, len(lb) + 1), "person_id": lb["USUBJID"].map(pid).to_numpy(),
        "measurement_concept_id": 0, "measurement_date": _dates(lb["LBDTC"]),
        "measurement_type_concept_id": c["type_concept"]["ehr"],
        "value_as_number": pd.to_numeric(lb["LBSTRESN"], errors="coerce").to_numpy(),
        "unit_source_value": lb["LBSTRESU"].to_numpy(), "measurement_source_value": lb["LBTESTCD"].to_numpy(),
        "value_source_value": lb["LBSTRESC"].to_numpy(),
    })
    dd = ds.loc[ds["DSDECOD"].eq("DEATH")]
    death = pd.DataFrame({"person_id": dd["USUBJID"].map(pid).to_numpy(), "death_date": _dates(dd["DSSTDTC"]),
                          "death_type_concept_id": c["type_concept"]["ehr"]})
    last = ds.groupby("USUBJID")["DSSTDTC"].max()
    op = pd.DataFrame({
        "observation_period_id": pid.to_numpy(), "person_id": pid.to_numpy(),
        "observation_period_start_date": _dates(mh.set_index("USUBJID")["MHSTDTC"].reindex(dm["USUBJID"]).reset_index(drop=True)),
        "observation_period_end_date": _dates(last.reindex(dm["USUBJID"]).reset_index(drop=True)),
        "period_type_concept_id": c["type_concept"]["ehr"],
    })
    src = pd.DataFrame({"cdm_source_name": [f"mmtrial cohort simulator ({label})"],
                        "cdm_source_abbreviation": ["MMTRIAL-COHORT"], "cdm_version": ["v5.4"],
                        "source_description": [f"{label}: generated by mmtrial.simulate.cohort; not real patients"]})
    return {"person": person, "observation_period": op, "drug_exposure": de, "condition_occurrence": co,
            "measurement": me, "death": death, "cdm_source": src}


def write_omop(sim: Any, path: Path, concepts: dict[str, Any] | None = None) -> Path:
    """Write ``sim`` (a SimulatedCohort) as OMOP CDM v5.4 tables into a new DuckDB file."""
    import duckdb

    tables = cohort_to_omop(sim.domains, concepts, label=sim.metadata.get("label", "synthetic data"))
    con = duckdb.connect(str(path))
    try:
        for name, df in tables.items():
            con.register("_df", df)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _df")
            con.unregister("_df")
    finally:
        con.close()
    return path
