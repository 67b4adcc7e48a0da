"""ADSL variables of a randomised two-arm trial: arms, treatment, randomisation, populations,
strata and crossover.

Rules: CDISC ADaM Implementation Guide v1.3, section 3.2 (ADSL variables): planned and actual
arm ARMCD/ARM/ACTARMCD/ACTARM copied from DM; treatment variables TRTxxP ("Planned Treatment for
Period xx", the arm the subject was randomised to) with its numeric TRTxxPN, and TRTxxA / TRTxxAN
(the treatment actually received); the randomisation date RANDDT; population indicators ITTFL
("Y" when randomised), SAFFL ("Y" when any study treatment was received; the safety analysis
groups by TRTxxA) and PPROTFL. Data contract v2 ("Randomised two-arm trials") fixes TRT01PN /
TRT01AN = 1 for the experimental arm and 2 for the control arm, the strata as ADSL columns named
by their suppdm QNAM, and the crossover flags CROSSFL / CROSSDT.

Each function takes frames and returns a new frame; none mutates its input; all are vectorised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mmtrial._frames import lookup

#: dm ACTARMCD codes (SDTM IG 3.4, 5.2) meaning "no study treatment received as an arm".
NOT_TREATED_CODES = ("NOTTRT", "SCRNFAIL", "NOTASSGN")
NOT_TREATED_LABEL = "Not Treated"
SUBSEQUENT_CATEGORY = "SUBSEQUENT ANTI-MYELOMA THERAPY"


def _text(s: pd.Series) -> pd.Series:
    t = s.astype("string").str.strip()
    return t.where(t != "")


def derive_vars_arm(adsl: pd.DataFrame, dm: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """ARMCD, ARM, ACTARMCD and ACTARM from dm (ADaMIG v1.3 section 3.2: copied from DM).

    ARMCD and ACTARMCD are upper case; ARM / ACTARM are dm's text, else the protocol's arm label
    (``labels``: ARMCD -> label); ACTARMCD ``NOTTRT`` reads "Not Treated" (SDTM IG). Without dm
    ACTARMCD the actual arm is the planned arm for subjects with a dose (SAFFL = Y) and
    ``NOTTRT`` otherwise.

    Examples
    --------
    >>> adsl = pd.DataFrame({"USUBJID": ["1", "2"], "SAFFL": ["Y", "N"]})
    >>> dm = pd.DataFrame({"USUBJID": ["1", "2"], "ARMCD": ["svd", "VD"]})
    >>> derive_vars_arm(adsl, dm, {"SVD": "S+V+d", "VD": "V+d"})[["ARMCD", "ARM", "ACTARMCD", "ACTARM"]].values.tolist()
    [['SVD', 'S+V+d', 'SVD', 'S+V+d'], ['VD', 'V+d', 'NOTTRT', 'Not Treated']]
    """
    out = adsl.copy()
    first = dm.drop_duplicates("USUBJID").set_index("USUBJID")
    up = {k.upper(): v for k, v in labels.items()}
    armcd = lookup(out["USUBJID"], _text(first["ARMCD"]).str.upper())
    arm = lookup(out["USUBJID"], _text(first["ARM"])) if "ARM" in first else pd.Series(pd.NA, index=out.index)
    arm = arm.astype("string").fillna(armcd.map(up).astype("string"))
    if "ACTARMCD" in first:
        act = lookup(out["USUBJID"], _text(first["ACTARMCD"]).str.upper())
    else:
        dosed = out["SAFFL"].eq("Y") if "SAFFL" in out else pd.Series(True, index=out.index)
        act = armcd.where(dosed.to_numpy(), "NOTTRT")
    actarm = (lookup(out["USUBJID"], _text(first["ACTARM"])) if "ACTARM" in first
              else pd.Series(pd.NA, index=out.index, dtype="string"))
    fallback = act.map(up).astype("string").where(~act.isin(["NOTTRT"]).fillna(False), NOT_TREATED_LABEL)
    actarm = actarm.astype("string").fillna(fallback)
    out["ARMCD"] = armcd.astype(object).where(armcd.notna(), None)
    out["ARM"] = arm.astype(object).where(arm.notna(), None)
    out["ACTARMCD"] = act.astype(object).where(act.notna(), None)
    out["ACTARM"] = actarm.astype(object).where(actarm.notna(), None)
    return out


def derive_var_randdt(adsl: pd.DataFrame, ds: pd.DataFrame | None) -> pd.DataFrame:
    """RANDDT: the date of the ds record with DSDECOD = RANDOMIZED (ADaMIG v1.3 section 3.2,
    "Date of Randomization"; the input checks ensure one such record per randomised subject)."""
    out = adsl.copy()
    if ds is None or "DSDECOD" not in ds or "DSSTDT" not in ds:
        out["RANDDT"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
        return out
    rec = ds.loc[(ds["DSDECOD"].astype("string").str.upper() == "RANDOMIZED").fillna(False).to_numpy(dtype=bool)]
    first = rec.sort_values("DSSTDT").drop_duplicates("USUBJID").set_index("USUBJID")["DSSTDT"]
    out["RANDDT"] = lookup(out["USUBJID"], first).astype("datetime64[ns]")
    return out


def derive_vars_trt01_arms(adsl: pd.DataFrame, experimental: str, control: str) -> pd.DataFrame:
    """TRT01P/TRT01PN (planned: the randomised arm, ARM) and TRT01A/TRT01AN (actual: ACTARM for
    subjects with SAFFL = Y, else missing); N = 1 experimental, 2 control (data contract v2;
    ADaMIG v1.3 section 3.2 treatment variables). A treated subject whose actual arm is neither
    arm (ACTARMCD UNPLAN) keeps TRT01A = ACTARM with TRT01AN missing."""
    out = adsl.copy()
    num = {experimental.upper(): 1, control.upper(): 2}
    code = out["ARMCD"].astype("string").str.upper()
    out["TRT01P"] = out["ARM"].astype(object)
    out["TRT01PN"] = code.map(num).astype("Int64")
    treated = out["SAFFL"].eq("Y").to_numpy() if "SAFFL" in out else np.ones(len(out), dtype=bool)
    act = out["ACTARMCD"].astype("string").str.upper()
    out["TRT01A"] = out["ACTARM"].astype(object).where(treated, None)
    out["TRT01AN"] = act.map(num).astype("Int64").where(treated, pd.NA)
    return out


def derive_var_ittfl(adsl: pd.DataFrame, arms: Sequence[str]) -> pd.DataFrame:
    """ITTFL = "Y" for every randomised subject (RANDDT present and ARMCD an arm of the
    protocol), else "N" (ADaMIG v1.3 section 3.2 population indicators; ICH E9 "full analysis
    set": all randomised subjects, analysed as randomised)."""
    out = adsl.copy()
    rand = out["RANDDT"].notna() & out["ARMCD"].astype("string").str.upper().isin([a.upper() for a in arms]).fillna(False)
    out["ITTFL"] = np.where(rand.to_numpy(dtype=bool), "Y", "N")
    return out


def derive_var_saffl_arms(adsl: pd.DataFrame) -> pd.DataFrame:
    """SAFFL = "Y" when the subject received any study treatment (a dose, as single-arm SAFFL)
    and the actual arm is not a no-treatment code (NOTTRT, SCRNFAIL, NOTASSGN); safety tables
    group by TRT01A (ADaMIG v1.3 section 3.2; data contract v2)."""
    out = adsl.copy()
    dosed = out["SAFFL"].eq("Y") if "SAFFL" in out else pd.Series(True, index=out.index)
    none = out["ACTARMCD"].astype("string").isin(NOT_TREATED_CODES).fillna(False)
    out["SAFFL"] = np.where((dosed & ~none).to_numpy(dtype=bool), "Y", "N")
    return out


def derive_var_pprotfl(adsl: pd.DataFrame, dv: pd.DataFrame | None = None,
                       exclude: Sequence[str] = ()) -> pd.DataFrame:
    """PPROTFL = "Y" for randomised (ITTFL = Y), treated (SAFFL = Y) subjects whose actual arm is
    the randomised arm (ACTARMCD = ARMCD) and who have no protocol deviation (SDTM dv) whose DVCAT
    or DVDECOD is one of ``exclude`` (case-insensitive; the protocol's
    ``[randomisation] per_protocol_exclude``, e.g. the major-deviation category). ICH E9 section
    5.2.2: the per-protocol set excludes subjects with major protocol violations. With no
    ``exclude`` (or no dv domain) deviations exclude nobody."""
    out = adsl.copy()
    same = out["ACTARMCD"].astype("string").eq(out["ARMCD"].astype("string")).fillna(False)
    ok = out["ITTFL"].eq("Y") & out["SAFFL"].eq("Y") & same
    if exclude and dv is not None and len(dv):
        want = {str(x).strip().upper() for x in exclude}
        hit = pd.Series(False, index=dv.index)
        for col in ("DVCAT", "DVDECOD"):  # two columns at most
            if col in dv.columns:
                hit |= dv[col].astype("string").str.strip().str.upper().isin(want).fillna(False)
        excluded = set(dv.loc[hit.to_numpy(dtype=bool), "USUBJID"].astype(str))
        ok &= ~out["USUBJID"].astype(str).isin(excluded)
    out["PPROTFL"] = np.where(ok.to_numpy(dtype=bool), "Y", "N")
    return out


def derive_vars_strata(adsl: pd.DataFrame, suppdm: pd.DataFrame | None, strata: Sequence[str]) -> pd.DataFrame:
    """One ADSL column per stratification factor, named by its suppdm QNAM, holding QVAL
    (records with RDOMAIN DM or blank; data contract v2). A subject without the record gets a
    missing value (the input checks report it for randomised subjects)."""
    out = adsl.copy()
    for q in strata:
        out[q] = None
    if suppdm is None or not len(strata) or not {"USUBJID", "QNAM", "QVAL"} <= set(suppdm.columns):
        return out
    sp = suppdm
    if "RDOMAIN" in sp:
        rd = sp["RDOMAIN"].astype("string").str.upper()
        sp = sp.loc[(rd.isna() | (rd == "DM")).to_numpy()]
    qn = sp["QNAM"].astype("string").str.upper()
    for q in strata:  # a handful of factors
        rec = sp.loc[(qn == q.upper()).fillna(False).to_numpy(dtype=bool) & sp["QVAL"].notna().to_numpy()]
        val = rec.drop_duplicates("USUBJID").set_index("USUBJID")["QVAL"].astype(object)
        out[q] = lookup(out["USUBJID"], val).astype(object)
        out[q] = out[q].where(out[q].notna(), None)
    return out


def derive_vars_crossover(adsl: pd.DataFrame, cm: pd.DataFrame | None, *, control: str,
                          drugs: Sequence[str], progression_var: str = "PDDT") -> pd.DataFrame:
    """CROSSFL and CROSSDT: control-arm crossover to the experimental drug after progression.

    Rule (data contract v2, ``[randomisation.crossover]``): a crossover is a control-arm
    subject's first subsequent-therapy record (cm CMCAT = SUBSEQUENT ANTI-MYELOMA THERAPY)
    whose CMTRT is one of ``drugs``, started on or after progression (``progression_var``,
    ADSL PDDT from the IMWG derivation). CROSSFL = "Y"/"N" for control-arm subjects (ARMCD),
    "" for the experimental arm; CROSSDT = that record's start date (CMSTDT).

    Examples
    --------
    >>> adsl = pd.DataFrame({"USUBJID": ["1", "2", "3"], "ARMCD": ["VD", "VD", "SVD"],
    ...                      "PDDT": pd.to_datetime(["2020-01-01", "2020-03-01", "2020-01-01"])})
    >>> cm = pd.DataFrame({"USUBJID": ["1", "2", "3"], "CMCAT": ["SUBSEQUENT ANTI-MYELOMA THERAPY"] * 3,
    ...                    "CMTRT": ["SELINEXOR"] * 3, "CMSTDT": pd.to_datetime(["2020-02-01", "2020-02-01", "2020-02-01"])})
    >>> derive_vars_crossover(adsl, cm, control="VD", drugs=["SELINEXOR"])[["CROSSFL", "CROSSDT"]].astype(str).values.tolist()
    [['Y', '2020-02-01'], ['N', 'NaT'], ['', 'NaT']]
    """
    out = adsl.copy()
    is_ctl = out["ARMCD"].astype("string").str.upper().eq(control.upper()).fillna(False).to_numpy(dtype=bool)
    crossdt = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
    if cm is not None and {"USUBJID", "CMCAT", "CMTRT", "CMSTDT"} <= set(cm.columns) and drugs \
            and progression_var in out:
        names = {d.upper() for d in drugs}
        sub = cm.loc[(cm["CMCAT"].astype("string").str.upper() == SUBSEQUENT_CATEGORY).fillna(False).to_numpy(dtype=bool)
                     & cm["CMTRT"].astype("string").str.upper().isin(names).fillna(False).to_numpy(dtype=bool)
                     & cm["CMSTDT"].notna().to_numpy(), ["USUBJID", "CMSTDT"]]
        pddt = lookup(sub["USUBJID"], out.drop_duplicates("USUBJID").set_index("USUBJID")[progression_var])
        after = (sub["CMSTDT"].to_numpy() >= pd.to_datetime(pddt).to_numpy()) & pddt.notna().to_numpy()
        first = sub.loc[after].groupby("USUBJID")["CMSTDT"].min()
        crossdt = lookup(out["USUBJID"], first).astype("datetime64[ns]")
    crossdt = crossdt.where(is_ctl)
    out["CROSSFL"] = np.where(is_ctl, np.where(crossdt.notna().to_numpy(), "Y", "N"), "")
    out["CROSSDT"] = crossdt.astype("datetime64[ns]")
    return out


def derive_adsl_arms(adsl: pd.DataFrame, domains: Mapping[str, pd.DataFrame], *, labels: Mapping[str, str],
                     experimental: str, control: str, strata: Sequence[str],
                     per_protocol: bool = False, per_protocol_exclude: Sequence[str] = ()) -> pd.DataFrame:
    """The two-arm ADSL variables above, in order (crossover is added later, once PDDT exists)."""
    dm = domains["dm"]
    out = derive_vars_arm(adsl, dm, labels)
    out = derive_var_randdt(out, domains.get("ds"))
    out = derive_var_saffl_arms(out)
    out = derive_vars_trt01_arms(out, experimental, control)
    out = derive_var_ittfl(out, list(labels))
    if per_protocol:
        out = derive_var_pprotfl(out, domains.get("dv"), per_protocol_exclude)
    return derive_vars_strata(out, domains.get("suppdm"), strata)


__all__ = ["derive_adsl_arms", "derive_randomised_endpoints", "derive_var_ittfl", "derive_var_pprotfl", "derive_var_randdt",
           "derive_var_saffl_arms", "derive_vars_arm", "derive_vars_crossover", "derive_vars_strata",
           "derive_vars_trt01_arms"]


def derive_randomised_endpoints(single_arm: Mapping[str, Mapping], *, censor_os_at_crossover: bool = False,
                                origin: str = "RANDDT", population: str = "ITTFL") -> dict[str, dict]:
    """The default ``[tte.endpoints]`` of a randomised protocol from the single-arm defaults.

    Rule (data contract v2): the ITT endpoints start at the randomisation date (``origin``) for
    every randomised subject (``population`` = "Y"), with the same event and censoring sources as
    the single-arm defaults; DOR keeps its origin (the response date) among responders. With
    ``censor_os_at_crossover`` ([randomisation.crossover] censor_os), a death after the crossover
    date is set aside and OS is censored at CROSSDT (CNSDTDSC "CROSSOVER TO EXPERIMENTAL
    TREATMENT"); by default OS is analysed by intention to treat.

    Examples
    --------
    >>> base = {"OS": {"param": "Overall Survival", "start": "TRTSDT", "population": {"EFFFL": "Y"},
    ...                "events": [], "censors": [{"name": "c", "date": "STARTDT", "srcvar": "TRTSDT"}]}}
    >>> e = derive_randomised_endpoints(base)["OS"]
    >>> e["start"], e["population"], e["censors"][0]["srcvar"]
    ('RANDDT', {'ITTFL': 'Y'}, 'RANDDT')
    """
    import copy

    out: dict[str, dict] = {}
    for code, e in single_arm.items():
        d = copy.deepcopy(dict(e))
        if d.get("start") == "TRTSDT":
            d["start"] = origin
        pop = {(population if k == "EFFFL" else k): v for k, v in dict(d.get("population", {})).items()}
        d["population"] = pop or {population: "Y"}
        for src in d.get("censors", []):
            if src.get("date") == "STARTDT" and src.get("srcvar") == "TRTSDT":
                src["srcvar"] = origin
        out[code] = d
    if censor_os_at_crossover and "OS" in out:
        os_ = out["OS"]
        os_["new_therapy_var"] = "CROSSDT"
        os_["censors"] = [
            {"name": "crossover_before_death", "date": "CROSSDT", "where": {"_EXCL": "NEWTX"},
             "cnsdtdsc": "CROSSOVER TO EXPERIMENTAL TREATMENT", "srcdom": "ADSL", "srcvar": "CROSSDT"},
            {"name": "crossover", "date": "CROSSDT", "where": {"CROSSFL": "Y"},
             "cnsdtdsc": "CROSSOVER TO EXPERIMENTAL TREATMENT", "srcdom": "ADSL", "srcvar": "CROSSDT"},
            *os_["censors"],
        ]
    return out
