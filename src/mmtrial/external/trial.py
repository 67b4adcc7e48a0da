"""The trial arm of an external comparison: the study's own analysis (ADSL, ADTTE) as a frame
with the same covariates and outcomes as the external cohort's index lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmtrial.context import Analysis
from mmtrial.protocol.model import Protocol

TRIAL_STEPS = ("adsl", "response", "prior_therapy", "tte")


def analyse_trial(study_dir: str | Path, protocol: Protocol) -> Analysis:
    """Read, check and derive the study (the analyze steps up to ADTTE), in memory.

    Raises :class:`~mmtrial.sdtm.issues.StudyInputError` on input errors, as ``mmtrial analyze``.
    """
    from mmtrial.pipeline import _apply_cutoff, check_study_folder, run_steps
    from mmtrial.sdtm.check import load_study
    from mmtrial.sdtm.issues import StudyInputError

    path = check_study_folder(study_dir)
    study, issues = load_study(path, protocol=protocol)
    if study is None or any(i.severity == "error" for i in issues):
        raise StudyInputError(issues)
    study.metadata["issues"] = issues
    study = _apply_cutoff(study, protocol.study.data_cutoff)
    a = Analysis(study=study, protocol=protocol, issues=[i for i in issues if i.severity != "error"])
    run_steps(a, TRIAL_STEPS)
    return a


def _yn(s: pd.Series) -> pd.Series:
    v = s.astype("string").str.upper()
    return pd.Series(np.where(v.eq("Y").fillna(False), 1.0, np.where(v.eq("N").fillna(False), 0.0, np.nan)),
                     index=s.index)


def derive_trial_frame(a: Analysis) -> pd.DataFrame:
    """One row per trial subject with an OS record: ID, CLUSTER, covariates at first dose (AGE,
    MALE, NPRIOR = NLINES, PENTAFL, TCRFL, QUADFL, DIAGYRS, HRCYTOFL, LSTREFFL as 1/0) and
    OSDAYS/OSEVENT, PFSDAYS/PFSEVENT from ADTTE (AVAL days, CNSR)."""
    adsl = a.adam["adsl"].copy()
    adsl["USUBJID"] = adsl["USUBJID"].astype("string")
    out = pd.DataFrame({"ID": adsl["USUBJID"], "CLUSTER": adsl["USUBJID"]})
    out["AGE"] = pd.to_numeric(adsl.get("AGE"), errors="coerce")
    out["MALE"] = adsl["SEX"].astype("string").str.upper().map({"M": 1.0, "F": 0.0}).astype(float)
    out["NPRIOR"] = pd.to_numeric(adsl.get("NLINES"), errors="coerce")
    for c in ("PENTAFL", "TCRFL", "QUADFL", "HRCYTOFL", "LSTREFFL"):
        out[c] = _yn(adsl[c]) if c in adsl else np.nan
    out["DIAGYRS"] = pd.to_numeric(adsl.get("DIAGYRS"), errors="coerce") if "DIAGYRS" in adsl else np.nan
    adtte = a.adam.get("adtte")
    if adtte is None or len(adtte) == 0:
        raise ValueError("the study has no ADTTE: the tte step computed no endpoint")
    for p in ("OS", "PFS"):
        x = adtte.loc[adtte["PARAMCD"].eq(p)]
        if len(x) == 0:
            out[f"{p}DAYS"] = np.nan
            out[f"{p}EVENT"] = np.nan
            continue
        x = x.assign(USUBJID=x["USUBJID"].astype("string")).drop_duplicates("USUBJID").set_index("USUBJID")
        out[f"{p}DAYS"] = out["ID"].map(x["AVAL"]).astype(float).to_numpy()
        out[f"{p}EVENT"] = (1 - out["ID"].map(x["CNSR"]).astype(float)).to_numpy()
    return out.loc[out["OSDAYS"].notna()].reset_index(drop=True)


def derive_external_frame(index: pd.DataFrame) -> pd.DataFrame:
    """The emulated index lines in the trial frame's layout (ID = landmark key, CLUSTER = patient)."""
    out = pd.DataFrame({"ID": index["KEY"].astype("string"), "CLUSTER": index["USUBJID"].astype("string")})
    out["AGE"] = index["AGE"].astype(float).to_numpy()
    out["MALE"] = index["MALE"].astype(float).to_numpy()
    out["NPRIOR"] = index["NPRIOR"].astype(float).to_numpy()
    for c in ("PENTAFL", "TCRFL", "QUADFL", "HRCYTOFL", "LSTREFFL"):
        out[c] = _yn(index[c]).to_numpy() if c in index else np.nan
    out["DIAGYRS"] = index["DIAGYRS"].astype(float).to_numpy() if "DIAGYRS" in index else np.nan
    for p in ("OS", "PFS"):
        out[f"{p}DAYS"] = index[f"{p}DAYS"].astype(float).to_numpy()
        out[f"{p}EVENT"] = index[f"{p}EVENT"].astype(float).to_numpy()
    return out
