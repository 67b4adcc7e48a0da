"""ADSL: one row per subject with treatment dates, populations, death and disposition.

Rules: CDISC ADaM IG 1.3 ADSL variables (TRTSDT, TRTEDT, SAFFL, DTHFL, DTHDT, LSTALVDT,
EOTSTT/DCTREAS, EOSSTT/DCSREAS); the safety population is every subject with at least one dose
of study drug (STORM: "all patients who received at least one dose", NEJM 2019).
Each function takes frames and returns a new frame; none mutates its input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrial._frames import lookup

DM_VARS = ["STUDYID", "USUBJID", "SITEID", "AGE", "SEX", "RACE", "ARM"]


def derive_adsl_base(dm: pd.DataFrame) -> pd.DataFrame:
    """One row per dm subject with the demographic variables present."""
    cols = [c for c in DM_VARS if c in dm.columns]
    return dm[cols].copy().reset_index(drop=True)


def compute_last_dose_dates(ex: pd.DataFrame) -> pd.Series:
    """The last dosing day of each ex interval.

    An interval with a weekly schedule (EXDOSFRQ ``BIW`` = days 1 and 3, ``QW`` = day 1 of each
    week from EXSTDT; docs/data-contract.md) ends on its last scheduled dosing day, which may be
    before EXENDT (the end of the dosing week); other intervals end on EXENDT, else EXSTDT.
    """
    from mmtrial.derive.exposure import ExposureOptions, compute_last_dose_offset

    start = ex["EXSTDT"]
    end = ex["EXENDT"].fillna(start) if "EXENDT" in ex else start
    last = end.copy()
    if "EXDOSFRQ" in ex:
        ndays = ((end - start).dt.days + 1).to_numpy()
        for code, days in ExposureOptions().frequencies.items():
            m = (ex["EXDOSFRQ"] == code).fillna(False).to_numpy() & ~np.isnan(ndays.astype(float))
            if m.any():
                off = compute_last_dose_offset(ndays[m].astype(np.int64), tuple(days))
                last.loc[m] = start[m] + pd.to_timedelta(off, unit="D")
    return last


def derive_vars_trt_dates(adsl: pd.DataFrame, ex: pd.DataFrame, dm: pd.DataFrame | None = None) -> pd.DataFrame:
    """TRTSDT/TRTEDT: first and last dose date over ex records with EXDOSE > 0.

    Rule: ADaM IG TRTEDT is the date of the last exposure; for a weekly schedule that is the
    interval's last dosing day (:func:`compute_last_dose_dates`), not the end of its dosing week.
    Falls back to dm RFXSTDTC/RFXENDTC when a subject has no dosed ex record but dm has dates.
    """
    dosed = ex.loc[ex["EXDOSE"].fillna(0) > 0]
    end = compute_last_dose_dates(dosed)
    g = pd.DataFrame({"USUBJID": dosed["USUBJID"], "S": dosed["EXSTDT"], "E": end}).groupby("USUBJID")
    dates = pd.DataFrame({"TRTSDT": g["S"].min(), "TRTEDT": g["E"].max()}).reset_index()
    out = adsl.merge(dates, on="USUBJID", how="left")
    if dm is not None:
        fb = dm.set_index("USUBJID")
        for var, src in (("TRTSDT", "RFXSTDT"), ("TRTEDT", "RFXENDT")):
            if src in fb:
                out[var] = out[var].fillna(lookup(out["USUBJID"], fb[src]))
    return out


def derive_var_saffl(adsl: pd.DataFrame, ex: pd.DataFrame) -> pd.DataFrame:
    """SAFFL = Y when the subject has an ex record with EXDOSE > 0 (at least one dose)."""
    dosed = ex.loc[ex["EXDOSE"].fillna(0) > 0, "USUBJID"].unique()
    out = adsl.copy()
    out["SAFFL"] = out["USUBJID"].isin(dosed).map({True: "Y", False: "N"})
    return out


def derive_vars_death(adsl: pd.DataFrame, dm: pd.DataFrame, ds: pd.DataFrame | None, ae: pd.DataFrame | None) -> pd.DataFrame:
    """DTHFL, DTHDT and DTHCAUS.

    DTHDT is dm DTHDTC, else the ds record with DSDECOD = DEATH. DTHCAUS: ``ADVERSE EVENT`` when
    an AE has AEOUT = FATAL; otherwise the ds death record's DSTERM (upper case) when present;
    otherwise ``UNKNOWN``.
    """
    out = adsl.copy()
    d = dm.set_index("USUBJID")
    dthdt = (lookup(out["USUBJID"], d["DTHDT"]) if "DTHDT" in d
             else pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]"))
    term = pd.Series(None, index=out.index, dtype=object)
    deaths = ds.loc[ds["DSDECOD"] == "DEATH"] if ds is not None and len(ds) else None
    if deaths is not None and len(deaths):  # mapping an empty datetime Series fails in pandas 3.1
        deaths = deaths.sort_values("DSSTDT").drop_duplicates("USUBJID")
        dd = deaths.set_index("USUBJID")
        dthdt = dthdt.fillna(lookup(out["USUBJID"], dd["DSSTDT"]))
        if "DSTERM" in dd:
            term = lookup(out["USUBJID"], dd["DSTERM"].astype("string").str.upper()).astype(object)
    fatal_ae = pd.Index([])
    if ae is not None and "AEOUT" in ae:
        fatal_ae = pd.Index(ae.loc[ae["AEOUT"] == "FATAL", "USUBJID"].unique())
    dthfl = dthdt.notna()
    if "DTHFL" in d:
        dthfl |= lookup(out["USUBJID"], d["DTHFL"].astype("string")).eq("Y").fillna(False)
    out["DTHFL"] = dthfl.map({True: "Y", False: "N"})
    out["DTHDT"] = dthdt.astype("datetime64[ns]")
    caus = term.fillna("UNKNOWN")
    caus = caus.where(~out["USUBJID"].isin(fatal_ae), "ADVERSE EVENT")
    out["DTHCAUS"] = caus.where(dthfl, None)
    return out


def derive_var_lstalvdt(adsl: pd.DataFrame, domains: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """LSTALVDT: the latest date the subject is known alive.

    Rule (admiral ``derive_vars_extreme_event`` LSTALVDT example): the latest complete date over
    ex start/end, lb, ae start/end, ds (any record other than death), rs and dm first dose; for
    subjects who died, the death date. Imputed (partial) dates are not used (``--DTF`` empty).
    """
    sources = [("ex", "EXSTDT"), ("ex", "EXENDT"), ("lb", "LBDT"), ("ae", "AESTDT"), ("ae", "AEENDT"),
               ("ds", "DSSTDT"), ("rs", "RSDT"), ("dm", "RFXSTDT")]
    parts = []
    for dom, var in sources:
        df = domains.get(dom)
        if df is None or var not in df:
            continue
        keep = df[var].notna()
        flag = var + "F"
        if flag in df:
            keep &= df[flag].fillna("") == ""
        if dom == "ds":
            keep &= df["DSDECOD"] != "DEATH"
        parts.append(pd.DataFrame({"USUBJID": df.loc[keep, "USUBJID"], "D": df.loc[keep, var]}))
    out = adsl.copy()
    if parts:
        alive = pd.concat(parts).groupby("USUBJID")["D"].max()
        out["LSTALVDT"] = lookup(out["USUBJID"], alive).astype("datetime64[ns]")
    else:
        out["LSTALVDT"] = pd.NaT
    if "DTHDT" in out:
        out["LSTALVDT"] = out["DTHDT"].where(out["DTHDT"].notna(), out["LSTALVDT"])
    return out


def derive_vars_disposition(adsl: pd.DataFrame, ds: pd.DataFrame | None) -> pd.DataFrame:
    """EOTSTT/DCTREAS (ds END OF TREATMENT) and EOSSTT/DCSREAS (ds END OF STUDY).

    No end-of-treatment record means ``ONGOING``; a record with DSDECOD = COMPLETED means
    ``COMPLETED``; any other reason means ``DISCONTINUED`` with the reason in DCTREAS/DCSREAS.
    When ds has no DSSCAT the records cannot be told apart, so the status is missing (not
    ``ONGOING``): :func:`compute_disposition_not_derivable` says why.
    """
    out = adsl.copy()
    for scat, stt, reas in (("END OF TREATMENT", "EOTSTT", "DCTREAS"), ("END OF STUDY", "EOSSTT", "DCSREAS")):
        if ds is None or "DSSCAT" not in ds:
            out[stt], out[reas] = None, None
            continue
        rec = ds.loc[ds["DSSCAT"] == scat].sort_values("DSSTDT").drop_duplicates("USUBJID", keep="last")
        reason = lookup(out["USUBJID"], rec.set_index("USUBJID")["DSDECOD"].astype("string"))
        completed = reason.eq("COMPLETED").fillna(False).to_numpy(dtype=bool)
        out[stt] = np.where(reason.isna().to_numpy(), "ONGOING", np.where(completed, "COMPLETED", "DISCONTINUED"))
        out[reas] = reason.astype(object).where(~completed & reason.notna().to_numpy(), None)
    return out


def compute_disposition_not_derivable(ds: pd.DataFrame | None) -> str:
    """Why end-of-treatment / end-of-study status cannot be derived from ds ("" when it can)."""
    if ds is None:
        return "there is no ds domain"
    if "DSSCAT" not in ds:
        return ("ds has no DSSCAT, so end-of-treatment and end-of-study records (DSSCAT END OF TREATMENT / "
                "END OF STUDY) cannot be told apart")
    return ""


def derive_adsl(domains: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The base ADSL of the adsl step (other steps add their variables)."""
    dm = domains["dm"]
    adsl = derive_adsl_base(dm)
    adsl = derive_vars_trt_dates(adsl, domains["ex"], dm)
    adsl = derive_var_saffl(adsl, domains["ex"])
    adsl = derive_vars_death(adsl, dm, domains.get("ds"), domains.get("ae"))
    adsl = derive_var_lstalvdt(adsl, domains)
    adsl = derive_vars_disposition(adsl, domains.get("ds"))
    return adsl
