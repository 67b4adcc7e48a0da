"""ADAE: treatment-emergent adverse events with grades, actions and worst-grade flags.

Rule
----
Treatment-emergent (FDA STF IG 2025 section 2.2; ICH E9 / ADaM OCCDS TRTEMFL): an AE whose onset
is on or after the first dose and no later than the last dose plus the protocol's window
(default 30 days). Grades are the investigator's CTCAE v5.0 grades (AETOXGR). Actions taken use
CDISC CT for AEACN (`DOSE REDUCED`, `DRUG INTERRUPTED`, `DRUG WITHDRAWN` ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mmtrial.derive._groups import yes_flags as _y
from mmtrial.sdtm.issues import InputIssue, StudyInputError

AEACN_CT = frozenset(
    {"DOSE NOT CHANGED", "DOSE REDUCED", "DRUG INTERRUPTED", "DRUG WITHDRAWN", "NOT APPLICABLE",
     "UNKNOWN", "DOSE INCREASED", "DOSE RATE REDUCED", "DRUG WITHDRAWN AND DOSE REDUCED"}
)


@dataclass(frozen=True)
class TeaeOptions:
    """How treatment emergence is decided.

    Options
    -------
    window_days : days after the last dose during which a new AE is still treatment-emergent
        (default 30; protocol ``[safety] teae_window_days``).
    missing_onset : ``"emergent"`` (default; an AE with no usable onset date is counted as
        treatment-emergent, the conservative convention) or ``"not_emergent"``.
    """

    window_days: int = 30
    missing_onset: Literal["emergent", "not_emergent"] = "emergent"

    def __post_init__(self) -> None:
        if self.window_days < 0:
            raise ValueError(f"TeaeOptions.window_days: allowed >= 0; got {self.window_days}")
        if self.missing_onset not in ("emergent", "not_emergent"):
            raise ValueError(
                "TeaeOptions.missing_onset: allowed 'emergent', 'not_emergent'; "
                f"got {self.missing_onset!r}"
            )


def check_ae(ae: pd.DataFrame) -> list[InputIssue]:
    """Problems in ae that the safety derivations cannot work around (each names its row)."""
    issues: list[InputIssue] = []
    rown = ae["ROWNUM"] if "ROWNUM" in ae else pd.Series(np.arange(1, len(ae) + 1), index=ae.index)
    g = pd.to_numeric(ae["AETOXGR"], errors="coerce") if "AETOXGR" in ae else None
    for col in ("USUBJID", "AEDECOD"):
        if col not in ae:
            issues.append(InputIssue(domain="ae", variable=col, problem="required variable missing"))
    if issues:
        return issues
    bad_dec = ae["AEDECOD"].isna()
    for i in np.flatnonzero(bad_dec.to_numpy())[:200]:
        issues.append(InputIssue(domain="ae", variable="AEDECOD", row=int(rown.iat[i]),
                                 usubjid=str(ae["USUBJID"].iat[i]), value=None,
                                 problem="preferred term missing",
                                 hint="Code the AE to a MedDRA preferred term."))
    if g is not None:
        bad = g.notna() & ~g.isin([1, 2, 3, 4, 5])
        for i in np.flatnonzero(bad.to_numpy())[:200]:
            issues.append(InputIssue(domain="ae", variable="AETOXGR", row=int(rown.iat[i]),
                                     usubjid=str(ae["USUBJID"].iat[i]), value=str(ae["AETOXGR"].iat[i]),
                                     problem="CTCAE grade must be 1-5",
                                     rule="CTCAE v5.0"))
    if "AEACN" in ae:
        acn = ae["AEACN"].astype("string").str.upper()
        bad = acn.notna() & ~acn.isin(list(AEACN_CT))
        for i in np.flatnonzero(bad.to_numpy())[:200]:
            issues.append(InputIssue(domain="ae", variable="AEACN", row=int(rown.iat[i]),
                                     usubjid=str(ae["USUBJID"].iat[i]), value=str(ae["AEACN"].iat[i]),
                                     problem="not a CDISC CT action taken",
                                     hint="Use DOSE NOT CHANGED, DOSE REDUCED, DRUG INTERRUPTED, "
                                     "DRUG WITHDRAWN or NOT APPLICABLE."))
    return issues


def _col(df: pd.DataFrame, name: str, default=pd.NA) -> pd.Series:
    if name in df:
        return df[name]
    return pd.Series([default] * len(df), index=df.index, dtype="object")


def derive_adae(ae: pd.DataFrame, adsl: pd.DataFrame, *, options: TeaeOptions = TeaeOptions()) -> pd.DataFrame:
    """ADAE from normalised ae and ADSL.

    Rule
    ----
    TRTEMFL = "Y" when TRTSDT <= ASTDT <= TRTEDT + ``window_days`` (subjects with a first dose
    only). ATOXGR = AETOXGR. AWGRPTFL flags, per subject and preferred term, the treatment-
    emergent record with the highest grade (earliest onset on ties), the record AET04 counts.

    Algorithm
    ---------
    1. Check ae (:func:`check_ae`); raise :class:`StudyInputError` listing every problem.
    2. ASTDT = AESTDT (partial dates already imputed by the reader), AENDT = AEENDT.
    3. TRTEMFL by the window; missing onset per ``missing_onset``.
    4. Flags: AESERFL, AERELFL, AEFATFL (AEOUT FATAL or AESDTH Y), ARDFL (DOSE REDUCED),
       AINTFL (DRUG INTERRUPTED), AWDFL (DRUG WITHDRAWN).
    5. Worst grade per subject and PT (AWGRPTFL) and per subject and SOC (AWGRSOFL).
    """
    issues = check_ae(ae)
    if any(i.severity == "error" for i in issues):
        raise StudyInputError(issues)
    n = len(ae)
    out = pd.DataFrame(
        {
            "USUBJID": _text(ae["USUBJID"], None, lambda c: c.to_numpy()),
            "AETERM": _text(_col(ae, "AETERM"), None, lambda c: c.to_numpy()),
            "AEDECOD": _text(ae["AEDECOD"], "strip", lambda c: c.astype("string").str.strip().to_numpy()),
            "AEBODSYS": _text(_col(ae, "AEBODSYS"), None, lambda c: c.astype("string").to_numpy()),
            "ASTDT": pd.to_datetime(_col(ae, "AESTDT", pd.NaT)).to_numpy(dtype="datetime64[ns]"),
            "AENDT": pd.to_datetime(_col(ae, "AEENDT", pd.NaT)).to_numpy(dtype="datetime64[ns]"),
            "ATOXGR": pd.to_numeric(_col(ae, "AETOXGR"), errors="coerce").to_numpy(dtype=float),
            **{name: _text(_col(ae, name), "upper", lambda c: c.astype("string").str.upper().to_numpy())
               for name in ("AESER", "AEREL", "AEACN", "AEOUT")},
            "SRCDOM": "AE",
            "SRCSEQ": _col(ae, "AESEQ", np.nan).to_numpy(),
            "ROWNUM": _col(ae, "ROWNUM", np.nan).to_numpy() if "ROWNUM" in ae else np.arange(1, n + 1),
        }
    )
    sdtm_dth = _up(_col(ae, "AESDTH"))
    trt = adsl[["USUBJID", "TRTSDT", "TRTEDT"]].drop_duplicates("USUBJID")
    out = out.merge(trt, on="USUBJID", how="left", validate="many_to_one")
    ast = out["ASTDT"].to_numpy(dtype="datetime64[D]")
    sdt = out["TRTSDT"].to_numpy(dtype="datetime64[D]")
    edt = out["TRTEDT"].to_numpy(dtype="datetime64[D]")
    win = np.timedelta64(options.window_days, "D")
    treated = ~np.isnat(sdt)
    in_win = treated & ~np.isnat(ast) & (ast >= sdt) & (np.isnat(edt) | (ast <= edt + win))
    miss = treated & np.isnat(ast)
    te = in_win | (miss & (options.missing_onset == "emergent"))
    out["TRTEMFL"] = _y(te)
    out["ASTDY"] = np.where(~np.isnat(ast) & treated,
                            (ast - sdt).astype("int64") + (ast >= sdt), np.nan)
    out["AESERFL"] = _y(_up(out["AESER"]) == "Y")
    out["AERELFL"] = _y(_up(out["AEREL"]) == "Y")
    fatal = (_up(out["AEOUT"]) == "FATAL") | (sdtm_dth == "Y") | (out["ATOXGR"].to_numpy() == 5)
    out["AEFATFL"] = _y(fatal)
    acn = _up(out["AEACN"])
    out["ARDFL"] = _y(np.isin(acn, ["DOSE REDUCED", "DRUG WITHDRAWN AND DOSE REDUCED"]))
    out["AINTFL"] = _y(acn == "DRUG INTERRUPTED")
    out["AWDFL"] = _y(np.isin(acn, ["DRUG WITHDRAWN", "DRUG WITHDRAWN AND DOSE REDUCED"]))
    for name, by in (("AWGRPTFL", "AEDECOD"), ("AWGRSOFL", "AEBODSYS")):
        w = _worst_flag(out, te, by)
        out[name] = _y(w == "Y") if len(w) else w  # no records: an object column, as before
    return out


def _text(col: pd.Series, how: str | None, general) -> pd.Series | np.ndarray:
    """A text variable of ADAE: ``col`` itself (``how`` None) or its ``.str.<how>()`` when it is
    pandas' text dtype already (``str`` on Arrow), else ``general(col)`` -- the object array the
    frame infers back to ``str``, as before; the same column either way, without a Python object
    per record and back (issue 15). No text at all (no records, or all missing): the object
    array, as before (pandas leaves it object)."""
    if isinstance(col.dtype, pd.StringDtype) and col.dtype == pd.Series(["x"]).dtype and col.count():
        col = col.reset_index(drop=True)
        return col if how is None else getattr(col.str, how)()
    return general(col)


def _up(s: pd.Series) -> np.ndarray:
    """Upper-case strings as a numpy object array with "" for missing (safe to compare)."""
    return s.astype("string").str.upper().fillna("").to_numpy(dtype=object)


def _worst_flag(out: pd.DataFrame, te: np.ndarray, by: str) -> np.ndarray:
    if len(out) == 0:
        return np.array([], dtype=object)
    s, _ = pd.factorize(out["USUBJID"])
    p, pu = pd.factorize(out[by].fillna(""))
    key = s.astype(np.int64) * max(len(pu), 1) + p
    g = np.nan_to_num(out["ATOXGR"].to_numpy(dtype=float), nan=0.0)
    d = out["ASTDT"].to_numpy(dtype="datetime64[D]").astype("int64")
    d = np.where(d == np.iinfo(np.int64).min, np.iinfo(np.int64).max // 4, d)
    idx = np.flatnonzero(te)
    flag = np.full(len(out), "", dtype=object)
    if idx.size == 0:
        return flag
    o = np.lexsort((d[idx], -g[idx], key[idx]))
    srt = idx[o]
    k = key[srt]
    first = np.ones(srt.size, dtype=bool)
    first[1:] = k[1:] != k[:-1]
    flag[srt[first]] = "Y"
    return flag
