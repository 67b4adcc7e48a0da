"""Confirmation of IMWG responses and the confirmed best overall response (ADRS ``BOR``).

Works on the per-assessment categories of :func:`mmtrial.derive.response.derive_overall_response`,
vectorised over all subjects (rows sorted by subject then date; "next assessment" is a shift).

Sources: Durie BGM et al., Leukemia 2006;20:1467-1473 (Table footnote: "All response categories
require two consecutive assessments made at any time before the institution of any new therapy",
domain.md 2.3, tag C); Kumar S et al., Lancet Oncol 2016 (marrow needs no confirmation; the first
date of the confirming pair is the response date; domain.md 2.3, tag U).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmtrial.derive.response import RANK, RANK_NAMES


@dataclass(frozen=True)
class ConfirmationRule:
    """How a per-assessment category becomes a confirmed one.

    Options
    -------
    consecutive : 2
        Assessments needed: 2 (confirmation, IMWG) or 1 (no confirmation, for sensitivity runs).
    confirm_pd : True
        PD also needs the next assessment to be PD, except PD by a new lesion or plasmacytoma
        growth (Kumar 2016).
    accept_unconfirmed_last_pd : False
        A lone PD at a subject's last assessment before new therapy (nothing could confirm it)
        counts as PD. IMWG asks for two consecutive assessments, so the default is ``False``
        (the assessment then gives NE for the best response); some SAPs accept it.
    ne_breaks_confirmation : True
        An NE assessment between two responses breaks "consecutive"; ``False`` skips NE
        assessments when looking for the confirming one.
    marrow_route_needs_confirmation : False
        Marrow-route PR (on marrow plasma cells alone) needs no repeat (Kumar 2016: marrow
        assessments need not be confirmed).
    sd_min_days : 0
        Minimum days from first dose for an SD (IMWG sets none; some SAPs use e.g. 42).
    new_therapy_same_day_counts : True
        An assessment on the day new anti-myeloma therapy starts still counts (taken before dosing).
    """

    consecutive: int = 2
    confirm_pd: bool = True
    accept_unconfirmed_last_pd: bool = False
    ne_breaks_confirmation: bool = True
    marrow_route_needs_confirmation: bool = False
    sd_min_days: int = 0
    new_therapy_same_day_counts: bool = True
    source: str = "Durie 2006 (Leukemia 20:1467) Table footnote; Kumar 2016 (Lancet Oncol 17:e328)"

    def __post_init__(self) -> None:
        if self.consecutive not in (1, 2):
            raise ValueError(f"ConfirmationRule: consecutive must be 1 or 2; got {self.consecutive!r}")
        if not isinstance(self.sd_min_days, int) or self.sd_min_days < 0:
            raise ValueError(f"ConfirmationRule: sd_min_days must be an integer >= 0; got {self.sd_min_days!r}")

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def compute_confirmed_rank(subj: np.ndarray, rank: np.ndarray, noconf: np.ndarray, marrow_route: np.ndarray,
                           days_from_first_dose: np.ndarray, *,
                           rule: ConfirmationRule = ConfirmationRule()) -> np.ndarray:
    """Confirmed category rank at each assessment (rows sorted by subject then date).

    Parameters
    ----------
    subj, rank
        Subject code and unconfirmed rank (0 NE, 1 PD, 2 SD, 3 MR, 4 PR, 5 VGPR, 6 CR, 7 sCR).
    noconf
        PD by new lesion or plasmacytoma growth (needs no confirmation).
    marrow_route
        The subject's route is MARROW.
    days_from_first_dose
        ADT minus first-dose date (for ``sd_min_days``).

    Returns
    -------
    ndarray
        The confirmed rank: a response at assessment *i* is confirmed at the lower of its own
        category and the next assessment's (both must be MR or better for a response; an SD next
        gives SD); an unconfirmed response still satisfies SD (SD needs no confirmation). A PD is
        confirmed by a PD at the next assessment; otherwise it gives NE (0) for the best response.

    Rule
    ----
    Durie 2006 Table footnote (two consecutive assessments, domain.md 2.3, tag C); Kumar 2016
    (each category except SD unconfirmed until the confirmation test; PD by new lesions and
    marrow need no repeat; tag U).
    """
    n = len(rank)
    out = np.zeros(n, dtype="int64")
    if n == 0:
        return out
    sel = np.arange(n) if rule.ne_breaks_confirmation else np.flatnonzero(rank != RANK["NE"])
    s, r = subj[sel], rank[sel]
    nc, mr = noconf[sel], marrow_route[sel]
    nxt_exists = np.r_[s[1:] == s[:-1], False]
    nxt = np.r_[r[1:], RANK["NE"]]
    nxt = np.where(nxt_exists, nxt, RANK["NE"])
    conf = np.zeros(len(r), dtype="int64")
    resp = r >= RANK["MR"]
    if rule.consecutive == 1:
        conf = r.copy()
    else:
        no_repeat = mr & ~rule.marrow_route_needs_confirmation & (r <= RANK["PR"])
        paired = np.where(nxt >= RANK["SD"], np.minimum(r, nxt), RANK["SD"])
        conf = np.where(resp, np.where(no_repeat, r, paired), conf)
        conf = np.where(r == RANK["SD"], RANK["SD"], conf)
        pd_ok = nc | ~np.bool_(rule.confirm_pd) | (nxt_exists & (nxt == RANK["PD"]))
        pd_ok |= ~nxt_exists & rule.accept_unconfirmed_last_pd
        conf = np.where(r == RANK["PD"], np.where(pd_ok, RANK["PD"], RANK["NE"]), conf)
    if rule.sd_min_days > 0:
        too_early = (conf == RANK["SD"]) & (days_from_first_dose[sel] < rule.sd_min_days)
        conf = np.where(too_early, RANK["NE"], conf)
    out[sel] = conf
    return out


def _group_reduce(ufunc: np.ufunc, n: int, init: float, idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
    out = np.full(n, init, dtype=float)
    if len(idx):
        ufunc.at(out, idx, vals.astype(float))
    return out


def derive_best_overall_response(ovr: pd.DataFrame, first_dose_day: np.ndarray, new_therapy_day: np.ndarray, *,
                                 rule: ConfirmationRule = ConfirmationRule()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Confirmed categories per assessment and, per subject, the confirmed BOR and its dates.

    Parameters
    ----------
    ovr
        Per-assessment frame (SUBJ, ADT_DAY, RANK, NOCONF, RSPROUTE), sorted by SUBJ then ADT_DAY.
    first_dose_day, new_therapy_day
        Per subject position: first dose and start of the first subsequent anti-myeloma therapy
        (float days since 1970-01-01; NaN: none).

    Returns
    -------
    (ovr, subjects)
        ``ovr`` with ANL01FL (``Y`` before new therapy), CRANK/CAVALC (confirmed category among
        the assessments before new therapy) and CONFFL (``Y`` when a response or PD is confirmed
        at its own level). ``subjects`` has one row per subject position with BORN (rank), BOR,
        BORDT, RSPDT, MRDT, PDDT, LSTADQDT (float days; NaN when none).

    Rule
    ----
    Best overall response = the best confirmed category among assessments before new therapy,
    up to and including the first confirmed PD (Durie 2006; Kumar 2016). Its date is the first
    assessment of the confirming pair (Kumar 2016). RSPDT/MRDT: first confirmed PR-or-better /
    MR-or-better. PDDT: first confirmed PD over all assessments (also after new therapy; the
    time-to-event step decides what new therapy does). LSTADQDT: last assessment not NE, before
    new therapy, up to PDDT.
    """
    nsub = len(first_dose_day)
    subj = ovr["SUBJ"].to_numpy(dtype="int64")
    day = ovr["ADT_DAY"].to_numpy().astype(float)
    rank = ovr["RANK"].to_numpy(dtype="int64")
    noconf = ovr["NOCONF"].to_numpy(dtype=bool)
    marrow = (ovr["RSPROUTE"] == "MARROW").to_numpy(dtype=bool)
    dfd = day - first_dose_day[subj]
    nact = new_therapy_day[subj]
    pre = np.isnan(nact) | ((day <= nact) if rule.new_therapy_same_day_counts else (day < nact))
    ipre = np.flatnonzero(pre)
    crank_pre = compute_confirmed_rank(subj[ipre], rank[ipre], noconf[ipre], marrow[ipre], dfd[ipre], rule=rule)
    crank_all = compute_confirmed_rank(subj, rank, noconf, marrow, dfd, rule=rule)
    sp, dp = subj[ipre], day[ipre]
    pd_pre = _group_reduce(np.minimum, nsub, np.inf, sp[crank_pre == RANK["PD"]], dp[crank_pre == RANK["PD"]])
    elig = dp <= pd_pre[sp]
    bor = _group_reduce(np.maximum, nsub, -1, sp[elig], crank_pre[elig])
    at_best = elig & (crank_pre == bor[sp]) & (crank_pre > RANK["NE"])
    bordt = _group_reduce(np.minimum, nsub, np.inf, sp[at_best], dp[at_best])
    m = elig & (crank_pre >= RANK["PR"])
    rspdt = _group_reduce(np.minimum, nsub, np.inf, sp[m], dp[m])
    m = elig & (crank_pre >= RANK["MR"])
    mrdt = _group_reduce(np.minimum, nsub, np.inf, sp[m], dp[m])
    m = crank_all == RANK["PD"]
    pddt = _group_reduce(np.minimum, nsub, np.inf, subj[m], day[m])
    m = pre & (rank != RANK["NE"]) & (day <= pddt[subj])
    lstadq = _group_reduce(np.maximum, nsub, -np.inf, subj[m], day[m])
    has_rows = _group_reduce(np.maximum, nsub, 0, subj, np.ones(len(subj))) > 0

    def nan_inf(x: np.ndarray) -> np.ndarray:
        return np.where(np.isinf(x), np.nan, x)

    born = np.where(bor < 0, RANK["NE"], bor).astype("int64")
    subjects = pd.DataFrame({
        "HAS_OVR": has_rows, "BORN": born, "BOR": RANK_NAMES[born], "BORDT": nan_inf(bordt),
        "RSPDT": nan_inf(rspdt), "MRDT": nan_inf(mrdt), "PDDT": nan_inf(pddt), "LSTADQDT": nan_inf(lstadq),
    })
    out = ovr.copy(deep=False)  # copy-on-write: adding columns leaves the caller's frame alone
    out["ANL01FL"] = pd.Categorical.from_codes(np.where(pre, 0, -1), ["Y"])
    crank = np.full(len(out), -1, dtype="int64")
    crank[ipre] = crank_pre
    out["CRANK"] = np.where(crank >= 0, crank, np.nan)
    out["CAVALC"] = pd.Categorical.from_codes(crank, list(RANK_NAMES))
    judged = (crank >= 0) & (rank != RANK["NE"]) & (rank != RANK["SD"])
    out["CONFFL"] = pd.Categorical.from_codes(np.where(judged, np.where(crank == rank, 0, 1), -1), ["Y", "N"])
    return out, subjects
