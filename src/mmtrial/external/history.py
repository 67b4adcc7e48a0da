"""Lines of therapy and refractory status at the start of every line of every patient.

Reuses the trial derivations unchanged (derive/drugs.py, derive/lines.py, derive/refractory.py,
derive/eligibility.py). Status at the start of line *L* is the trial's "prior therapy" status of
a patient whose first study dose is line *L*'s start: each (patient, line) becomes one
*landmark* (key ``USUBJID#L``) whose history is the drug rows of lines 1..L-1 and the
progression records dated on or before line *L*'s start (a progression is usually recorded on
the day the next line starts: it is why it starts). Everything is vectorised over landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmtrial.derive.drugs import DrugDictionary, derive_drug_exposure
from mmtrial.derive.lines import (
    DEFAULT_LINE_RULE,
    LineRule,
    derive_adlot,
    derive_lines_of_therapy,
    derive_regimens,
    derive_transplants,
)
from mmtrial.derive.refractory import (
    DEFAULT_REFRACTORY_RULE,
    RefractoryRule,
    derive_drug_refractory,
    derive_line_refractory,
    derive_refractory_flags,
)
from mmtrial.sdtm.issues import InputIssue

SEP = "#"


@dataclass
class CohortHistory:
    """Lines (one row per item), ADLOT (one per line) and the status at every line start."""

    exposure: pd.DataFrame
    lines: pd.DataFrame
    adlot: pd.DataFrame
    status: pd.DataFrame  # one row per (USUBJID, LINENUM): landmark status flags
    refr: pd.DataFrame  # ADREFR per landmark (USUBJID = landmark key)
    issues: list[InputIssue]


def landmark_key(usubjid: pd.Series, linenum: pd.Series) -> pd.Series:
    """``USUBJID#LINENUM`` (the landmark id used as a subject id in the derivations)."""
    return usubjid.astype("string") + SEP + linenum.astype("int64").astype("string")


def derive_landmark_inputs(exposure: pd.DataFrame, lines: pd.DataFrame, adlot: pd.DataFrame,
                           rs: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    """The history of every landmark: (exposure, line items, rs, start date by landmark key).

    Exposure rows and line items of lines < L, rs rows dated on or before line L's start.
    """
    starts = adlot[["USUBJID", "LINENUM", "LOTSTDT"]].copy()
    starts["KEY"] = landmark_key(starts["USUBJID"], starts["LINENUM"])
    item_line = lines[["USUBJID", "ITEMID", "LINENUM"]].rename(columns={"ITEMID": "CMGRPID", "LINENUM": "SRCLINE"})
    ex = exposure.merge(item_line, on=["USUBJID", "CMGRPID"], how="left")
    # every earlier line's rows, once per later landmark (merge on subject, then filter)
    lm = starts[["USUBJID", "LINENUM", "KEY", "LOTSTDT"]]
    ex_l = ex.merge(lm, on="USUBJID", how="inner")
    ex_l = ex_l.loc[ex_l["SRCLINE"] < ex_l["LINENUM"]]
    ex_l = ex_l.drop(columns=["LINENUM", "LOTSTDT", "SRCLINE"]).assign(USUBJID=lambda d: d["KEY"]).drop(columns="KEY")
    it_l = lines.merge(lm.rename(columns={"LINENUM": "LMLINE"}), on="USUBJID", how="inner")
    it_l = it_l.loc[it_l["LINENUM"] < it_l["LMLINE"]]
    it_l = it_l.assign(USUBJID=it_l["KEY"]).drop(columns=["KEY", "LMLINE", "LOTSTDT"])
    if rs is not None and len(rs):
        r = rs.assign(USUBJID=rs["USUBJID"].astype("string")).merge(lm, on="USUBJID", how="inner")
        r = r.loc[(pd.to_datetime(r["RSDT"]) <= r["LOTSTDT"]).fillna(False)]
        rs_l = r.assign(USUBJID=r["KEY"]).drop(columns=["KEY", "LINENUM", "LOTSTDT"])
    else:
        rs_l = rs
    trtsdt = pd.Series(pd.to_datetime(starts["LOTSTDT"]).to_numpy(), index=starts["KEY"].to_numpy())
    return ex_l.reset_index(drop=True), it_l.reset_index(drop=True), rs_l, trtsdt


def derive_cohort_history(
    frames: dict[str, pd.DataFrame],
    *,
    dictionary: DrugDictionary | None = None,
    line_rule: LineRule = DEFAULT_LINE_RULE,
    refractory_rule: RefractoryRule = DEFAULT_REFRACTORY_RULE,
) -> CohortHistory:
    """Lines of therapy (Rajkumar 2015) and refractory status (IMWG, Rajkumar 2011) at the start
    of every line of every patient (module docstring).

    ``status`` columns: USUBJID, LINENUM, LOTSTDT, LOTENDT, DRUGS, NPRIOR (= LINENUM - 1, the
    prior lines), LSTREFFL (refractory to line L-1 as of line L's start), the ADSL-style flags
    of :func:`~mmtrial.derive.refractory.derive_refractory_flags` (TCRFL, PENTAFL, QUADFL, TCEFL,
    per drug and class), and KEY (the landmark id).
    """
    dictionary = dictionary or DrugDictionary.load(None)
    exposure, issues = derive_drug_exposure(frames.get("cm"), dictionary=dictionary)
    sct = derive_transplants(frames.get("pr"), rule=line_rule)
    items = derive_regimens(exposure, sct)
    lines = derive_lines_of_therapy(items, exposure, rule=line_rule)
    adlot = derive_adlot(lines)
    rs = frames.get("rs")
    lref = derive_line_refractory(lines, rs, rule=refractory_rule)
    adlot = adlot.merge(lref, on=["USUBJID", "LINENUM"], how="left")
    ex_l, it_l, rs_l, trtsdt = derive_landmark_inputs(exposure, lines, adlot, rs)
    refr, _ = derive_drug_refractory(ex_l, rs_l, dictionary=dictionary, rule=refractory_rule, trtsdt=trtsdt)
    lr = derive_line_refractory(it_l, rs_l, rule=refractory_rule, trtsdt=trtsdt)
    st = adlot[["USUBJID", "LINENUM", "LOTSTDT", "LOTENDT", "DRUGS", "LOTRSDSC"]].copy()
    st["KEY"] = landmark_key(st["USUBJID"], st["LINENUM"])
    st["NPRIOR"] = (st["LINENUM"] - 1).astype("int64")
    # refractory to the last prior line, as known at this line's start
    if len(lr):
        lr = lr.rename(columns={"USUBJID": "KEY"})
        lr["_LM"] = lr["KEY"].str.rsplit(SEP, n=1).str[1].astype("int64")
        lastp = lr.loc[lr["LINENUM"] == lr["_LM"] - 1, ["KEY", "LOTREFFL"]]
        st = st.merge(lastp.rename(columns={"LOTREFFL": "LSTREFFL"}), on="KEY", how="left")
    else:
        st["LSTREFFL"] = pd.NA
    st["LSTREFFL"] = st["LSTREFFL"].astype("string").fillna("N")
    subj = pd.DataFrame({"USUBJID": st["KEY"], "NLINES": st["NPRIOR"], "LSTREFFL": st["LSTREFFL"]})
    flags = derive_refractory_flags(refr, subj, dictionary=dictionary, rule=refractory_rule)
    flags = flags.drop(columns=["NLINES", "LSTREFFL"]).rename(columns={"USUBJID": "KEY"})
    st = st.merge(flags, on="KEY", how="left")
    st = st.sort_values(["USUBJID", "LINENUM"]).reset_index(drop=True)
    return CohortHistory(exposure=exposure, lines=lines, adlot=adlot, status=st, refr=refr, issues=issues)


def split_key(key: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(USUBJID, LINENUM) from landmark keys."""
    parts = key.astype("string").str.rsplit(SEP, n=1)
    return parts.str[0], parts.str[1].astype("int64")


def compute_status_summary(status: pd.DataFrame) -> dict[str, int]:
    """Counts for the report: patients, lines, landmarks triple-class refractory."""
    return {"patients": int(status["USUBJID"].nunique()), "lines": len(status),
            "tcr_lines": int(status.get("TCRFL", pd.Series(dtype=str)).eq("Y").sum()),
            "tcr_patients": int(status.loc[status.get("TCRFL", pd.Series(dtype=str)).eq("Y"), "USUBJID"].nunique())
            if "TCRFL" in status else 0,
            "max_lines": int(np.nanmax(status["LINENUM"])) if len(status) else 0}
