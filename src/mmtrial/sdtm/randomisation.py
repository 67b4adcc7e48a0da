"""Input checks of a randomised two-arm study (data contract v2, "Randomised two-arm trials").

Run by :func:`mmtrial.sdtm.check.load_study` only when the protocol is randomised
(``protocol.is_randomised``); single-arm studies are not affected. Rules (``InputIssue.rule``;
docs/input-checks.md and docs/randomised.md):

* ``ARM_UNKNOWN``: dm ARMCD of a randomised subject (one with a ds RANDOMIZED record) is not an
  arm of the protocol's ``[arms]``; a subject with an arm of the protocol and no ds RANDOMIZED
  record is ``RANDOMIZED_MISSING``. ARMCD ``SCRNFAIL`` / ``NOTASSGN`` (SDTM IG 3.4, 5.2: screen
  failure, not assigned) and a blank ARMCD mark subjects who were not randomised.
* ``ACTARM_UNKNOWN``: dm ACTARMCD is neither an arm of the protocol nor one of the SDTM IG null
  codes ``NOTTRT`` (not treated), ``UNPLAN`` (unplanned treatment), ``SCRNFAIL``, ``NOTASSGN``.
  A study without ACTARMCD gets one warning: the actual arm is taken to be the planned one.
* ``RANDOMIZED_MISSING`` / ``RANDOMIZED_REPEATED``: each randomised subject has exactly one ds
  record with DSDECOD = RANDOMIZED (its DSSTDTC is the randomisation date, ADSL RANDDT).
* ``TREATED_BEFORE_RANDOMISATION``: a dose (ex, EXDOSE > 0) dated before the randomisation date.
* dv (with ``[randomisation] per_protocol_exclude``): ``MISSING_DOMAIN`` (warning), dv without
  DVCAT and DVDECOD (``MISSING_VARIABLE``), ``DEVIATION_CATEGORY_UNUSED`` (warning: an excluding
  category no dv record has).
* ``STRATUM_MISSING``: a stratification factor the protocol names (``[randomisation] strata``,
  suppdm QNAM) has no non-blank QVAL for a randomised subject (or suppdm is absent).

All checks are column operations; issue records are built only for the rows at fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mmtrial.sdtm.issues import InputIssue

if TYPE_CHECKING:
    from mmtrial.protocol.model import Protocol

#: ARMCD / ACTARMCD null codes of the SDTM IG (3.4, section 5.2 DM assumptions).
NOT_RANDOMISED_CODES = ("SCRNFAIL", "NOTASSGN")
ACTUAL_NULL_CODES = ("NOTTRT", "UNPLAN", "SCRNFAIL", "NOTASSGN")
RANDOMIZED = "RANDOMIZED"


def _rows(df: pd.DataFrame, mask: np.ndarray, **kw) -> list[InputIssue]:
    from mmtrial.sdtm.check import _issues_for_rows

    return _issues_for_rows(df, mask, **kw)


def compute_randomisation_records(ds: pd.DataFrame | None) -> pd.DataFrame:
    """The ds RANDOMIZED records (DSDECOD = RANDOMIZED), with their row numbers and dates."""
    if ds is None or "DSDECOD" not in ds:
        return pd.DataFrame({"USUBJID": pd.Series(dtype="str"), "ROWNUM": pd.Series(dtype="int64"),
                             "DSSTDT": pd.Series(dtype="datetime64[ns]")})
    rec = ds.loc[(ds["DSDECOD"].astype("string").str.upper() == RANDOMIZED).fillna(False).to_numpy(dtype=bool)]
    cols = [c for c in ("USUBJID", "ROWNUM", "DSSTDT", "DSSTDTC") if c in rec]
    return rec[cols]


def check_arms(dm: pd.DataFrame, rand: pd.DataFrame, arms: list[str]) -> list[InputIssue]:
    """ARM_UNKNOWN, ACTARM_UNKNOWN (and the ACTARMCD-absent warning); see the module docstring."""
    issues: list[InputIssue] = []
    known = {a.upper() for a in arms}
    if "ARMCD" not in dm:
        return [InputIssue(domain="dm", variable="ARMCD", rule="MISSING_VARIABLE",
                           problem="required variable missing: a randomised protocol needs the planned arm "
                                   "(ARMCD) of every subject",
                           hint=f"ARMCD values are the protocol's [arms] codes: {', '.join(arms)}.")]
    code = dm["ARMCD"].astype("string").str.upper()
    randomised = dm["USUBJID"].isin(rand["USUBJID"]).to_numpy()
    unknown = ~code.isin(known).fillna(False).to_numpy(dtype=bool)
    not_rand_code = (code.isna() | code.isin(NOT_RANDOMISED_CODES)).fillna(True).to_numpy(dtype=bool)
    bad = (randomised & unknown) | (~randomised & unknown & ~not_rand_code)
    issues += _rows(dm, bad, domain="dm", variable="ARMCD", rule="ARM_UNKNOWN",
                    problem=f"not an arm of the protocol ({', '.join(arms)})",
                    hint="ARMCD is the planned arm as the protocol's [arms] names it; a subject who was not "
                         "randomised has ARMCD SCRNFAIL or NOTASSGN and no ds RANDOMIZED record.")
    if "ACTARMCD" not in dm:
        issues.append(InputIssue(domain="dm", variable="ACTARMCD", rule="MISSING_VARIABLE", severity="warning",
                                 problem="no actual arm (ACTARMCD): each treated subject is taken to have "
                                         "received the planned arm (ARMCD)"))
        return issues
    act = dm["ACTARMCD"].astype("string").str.upper()
    ok = act.isin(known | set(ACTUAL_NULL_CODES)).fillna(False).to_numpy(dtype=bool)
    blank_ok = act.isna().to_numpy() & ~randomised
    issues += _rows(dm, ~ok & ~blank_ok, domain="dm", variable="ACTARMCD", rule="ACTARM_UNKNOWN",
                    problem=f"not an arm of the protocol ({', '.join(arms)}) nor an SDTM null code "
                            f"({', '.join(ACTUAL_NULL_CODES)})",
                    hint="ACTARMCD is the arm actually received; NOTTRT for a randomised subject never treated.")
    return issues


def check_randomisation_dates(dm: pd.DataFrame, ds: pd.DataFrame | None, rand: pd.DataFrame,
                              arms: list[str]) -> list[InputIssue]:
    """RANDOMIZED_MISSING and RANDOMIZED_REPEATED: one ds RANDOMIZED record per randomised subject."""
    issues: list[InputIssue] = []
    if "ARMCD" in dm:
        assigned = dm["ARMCD"].astype("string").str.upper().isin({a.upper() for a in arms}).fillna(False)
        missing = assigned.to_numpy(dtype=bool) & ~dm["USUBJID"].isin(rand["USUBJID"]).to_numpy()
        issues += _rows(dm, missing, domain="ds", variable="DSDECOD", rule="RANDOMIZED_MISSING",
                        value_col="ARMCD",
                        problem="the subject has an arm (dm ARMCD, the value shown; row = dm row) but no ds "
                                "record with DSDECOD = RANDOMIZED (the randomisation date)",
                        hint="Add the ds record DSCAT = PROTOCOL MILESTONE, DSDECOD = RANDOMIZED, DSSTDTC = "
                             "randomisation date.")
    if len(rand) and ds is not None:
        again = rand["USUBJID"].duplicated(keep="first").to_numpy()
        shown = rand.assign(_V=rand.get("DSSTDTC"))
        issues += _rows(shown, again, domain="ds", variable="DSSTDTC", rule="RANDOMIZED_REPEATED", value_col="_V",
                        problem="a second ds RANDOMIZED record for the subject: each subject is randomised once")
    return issues


def check_treated_before_randomisation(ex: pd.DataFrame | None, rand: pd.DataFrame) -> list[InputIssue]:
    """TREATED_BEFORE_RANDOMISATION: a dose (EXDOSE > 0) dated before the randomisation date."""
    if ex is None or not {"USUBJID", "EXSTDT"} <= set(ex.columns) or "DSSTDT" not in rand or not len(rand):
        return []
    first = rand.drop_duplicates("USUBJID").set_index("USUBJID")["DSSTDT"]
    rdt = ex["USUBJID"].map(first)
    dosed = (ex["EXDOSE"].fillna(0) > 0) if "EXDOSE" in ex else pd.Series(True, index=ex.index)
    bad = ((ex["EXSTDT"] < rdt) & dosed).fillna(False).to_numpy(dtype=bool)
    return _rows(ex, bad, domain="ex", variable="EXSTDTC", rule="TREATED_BEFORE_RANDOMISATION",
                 problem="a dose before the subject's randomisation date (ds RANDOMIZED DSSTDTC)",
                 hint="Treatment starts on or after randomisation: check this date and the randomisation date.")


def check_strata(dm: pd.DataFrame, suppdm: pd.DataFrame | None, rand: pd.DataFrame,
                 strata: list[str]) -> list[InputIssue]:
    """STRATUM_MISSING: every randomised subject has a non-blank QVAL for each stratum QNAM."""
    if not strata:
        return []
    subj = dm.loc[dm["USUBJID"].isin(rand["USUBJID"]).to_numpy()]
    if suppdm is None:
        return [InputIssue(domain="suppdm", variable="(file)", rule="MISSING_DOMAIN",
                           problem=f"the protocol stratifies by {', '.join(strata)} (suppdm QNAM) but the study "
                                   "has no suppdm domain",
                           hint="Add suppdm.csv (.parquet, .xpt, .json): STUDYID, RDOMAIN = DM, USUBJID, QNAM, "
                                "QLABEL, QVAL, one record per subject and factor.")]
    if not {"USUBJID", "QNAM", "QVAL"} <= set(suppdm.columns):
        return []  # MISSING_VARIABLE is reported by the structure check
    sp = suppdm
    if "RDOMAIN" in sp:
        rd = sp["RDOMAIN"].astype("string").str.upper()
        sp = sp.loc[(rd.isna() | (rd == "DM")).to_numpy()]
    have = sp.loc[sp["QVAL"].notna().to_numpy(), ["USUBJID", "QNAM"]]
    have_key = have["USUBJID"].astype(str) + "\x1f" + have["QNAM"].astype(str).str.upper()
    issues: list[InputIssue] = []
    for q in strata:  # a handful of factors
        key = subj["USUBJID"].astype(str) + "\x1f" + q.upper()
        miss = ~key.isin(set(have_key)).to_numpy()
        shown = subj.assign(_V=q)
        issues += _rows(shown, miss, domain="suppdm", variable=q, rule="STRATUM_MISSING", value_col="_V",
                        problem=f"no suppdm record with QNAM = {q} and a value (QVAL) for this randomised subject "
                                "(row = the subject's dm row)",
                        hint=f"The protocol's [randomisation] strata name {q}: add the subject's stratum value.")
    blank = (sp["QNAM"].astype("string").str.upper().isin([s.upper() for s in strata]).fillna(False)
             & sp["QVAL"].isna()).to_numpy(dtype=bool)
    issues += _rows(sp, blank, domain="suppdm", variable="QVAL", rule="STRATUM_MISSING", value_col="QNAM",
                    problem="a stratification factor record without a value (QVAL blank)")
    return issues


def check_deviations(dv: pd.DataFrame | None, exclude: list[str]) -> list[InputIssue]:
    """DV checks when the protocol's ``[randomisation] per_protocol_exclude`` names deviation
    categories: dv absent (warning: no subject is excluded), dv without DVCAT and DVDECOD (error:
    the rule cannot be applied), an excluding value that no dv record has (warning: a typo would
    silently exclude nobody)."""
    if not exclude:
        return []
    named = ", ".join(exclude)
    if dv is None:
        return [InputIssue(domain="dv", variable="(file)", rule="MISSING_DOMAIN", severity="warning",
                           problem=f"the protocol excludes subjects with deviations {named} from the per-protocol "
                                   "population but the study has no dv domain: no subject is excluded for a "
                                   "deviation",
                           hint="Add dv.csv (USUBJID, DVCAT and/or DVDECOD, DVTERM, DVSTDTC).")]
    cols = [c for c in ("DVCAT", "DVDECOD") if c in dv.columns]
    if not cols:
        return [InputIssue(domain="dv", variable="DVCAT", rule="MISSING_VARIABLE",
                           problem="dv has neither DVCAT nor DVDECOD: the per-protocol exclusion "
                                   f"({named}) cannot be applied",
                           hint="Add DVCAT (deviation category, e.g. MAJOR) or DVDECOD to dv.")]
    seen = set()
    for c in cols:  # two columns at most
        seen |= set(dv[c].dropna().astype(str).str.strip().str.upper())
    unmatched = [x for x in exclude if str(x).strip().upper() not in seen]
    if not unmatched:
        return []
    return [InputIssue(domain="dv", variable="/".join(cols), rule="DEVIATION_CATEGORY_UNUSED", severity="warning",
                       value=", ".join(unmatched),
                       problem="the protocol's [randomisation] per_protocol_exclude names a deviation category "
                               f"that no dv record has ({', '.join(unmatched)}): it excludes nobody",
                       hint="Check the spelling against dv DVCAT / DVDECOD.")]


def check_randomised_study(domains: dict[str, pd.DataFrame], protocol: Protocol) -> list[InputIssue]:
    """Every randomisation check above (nothing for a single-arm protocol)."""
    if protocol is None or not getattr(protocol, "is_randomised", False):
        return []
    dm = domains.get("dm")
    if dm is None or "USUBJID" not in dm:
        return []
    rnd = protocol.randomisation
    arms = list(protocol.arms)
    rand = compute_randomisation_records(domains.get("ds"))
    issues = check_arms(dm, rand, arms)
    issues += check_randomisation_dates(dm, domains.get("ds"), rand, arms)
    issues += check_treated_before_randomisation(domains.get("ex"), rand)
    issues += check_strata(dm, domains.get("suppdm"), rand, list(rnd.strata) if rnd is not None else [])
    if rnd is not None and rnd.per_protocol:
        issues += check_deviations(domains.get("dv"), list(rnd.per_protocol_exclude))
    return issues


__all__ = ["ACTUAL_NULL_CODES", "NOT_RANDOMISED_CODES", "check_deviations", "check_randomised_study",
           "compute_randomisation_records"]
