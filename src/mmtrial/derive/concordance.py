"""Concordance between the BOR derived from laboratory values and an assessor's BOR (rs).

When ``rs`` carries responses given by an investigator or an independent review committee, the
assessor's best overall response is set beside the derived one: a cross-table, Cohen's kappa
(unweighted and linearly weighted over the ordered categories), and a listing of the subjects
where they disagree with the laboratory values behind the derived response.

Sources: Cohen J, Educ Psychol Meas 1960;20:37-46 (kappa); Cohen J, Psychol Bull 1968;70:213-220
(weighted kappa); data conventions for rs in docs/data-contract.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mmtrial.derive.response import CATEGORIES, RANK, RANK_NAMES
from mmtrial.sdtm.issues import InputIssue, StudyInputError

#: Spellings accepted in RSSTRESC, mapped to the categories (case-insensitive).
_CANON = {c.upper(): c for c in CATEGORIES}
BOR_TESTCDS = ("BESTRSP", "BOR", "CBOR")


def extract_assessor_responses(rs: pd.DataFrame | None, subjects: pd.Index) -> tuple[pd.DataFrame, list[InputIssue]]:
    """On-study assessor responses from ``rs``: EVAL, SUBJ, DAY, RANK, KIND (``OVR`` or ``BOR``).

    Rule
    ----
    docs/data-contract.md: RSTESTCD ``OVRLRESP`` (per assessment) with RSCAT empty or ``STUDY
    TREATMENT``; RSEVAL ``INDEPENDENT ASSESSOR`` or ``INVESTIGATOR`` (empty: ``INVESTIGATOR``);
    RSSTRESC one of sCR CR VGPR PR MR SD PD NE. Rows with RSTESTCD BESTRSP/BOR/CBOR give the
    assessor's best response directly. Any other RSSTRESC is an error naming the row.
    """
    from mmtrial.derive.baseline import _to_days

    cols = ["EVAL", "SUBJ", "DAY", "RANK", "KIND", "ROWNUM"]
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    if rs is None or len(rs) == 0 or "RSTESTCD" not in rs.columns:
        return empty, []
    tc = rs["RSTESTCD"].astype("string").str.upper()
    cat = (rs["RSCAT"].astype("string").str.upper().fillna("") if "RSCAT" in rs
           else pd.Series("", index=rs.index))
    m = (tc.isin(("OVRLRESP", *BOR_TESTCDS)) & cat.isin(("", "STUDY TREATMENT"))).fillna(False)
    d = rs.loc[m.to_numpy(dtype=bool)]
    if len(d) == 0:
        return empty, []
    val = d["RSSTRESC"].astype("string").str.strip().str.upper().map(_CANON)
    rown = d["ROWNUM"].to_numpy() if "ROWNUM" in d else np.flatnonzero(m) + 1
    bad = val.isna().to_numpy(dtype=bool)
    if bad.any():
        raw = d["RSSTRESC"].to_numpy(dtype=object)
        usub = d["USUBJID"].to_numpy(dtype=object)
        raise StudyInputError([InputIssue(domain="rs", variable="RSSTRESC", row=int(rown[j]), usubjid=str(usub[j]),
                                          value=None if pd.isna(raw[j]) else str(raw[j]),
                                          problem="assessor response must be one of " + " ".join(CATEGORIES),
                                          rule="RSP_RS_VALUE") for j in np.flatnonzero(bad)[:1000]])
    ev = (d["RSEVAL"].astype("string").str.upper().fillna("INVESTIGATOR") if "RSEVAL" in d
          else pd.Series("INVESTIGATOR", index=d.index))
    out = pd.DataFrame({
        "EVAL": ev.to_numpy(dtype=object),
        "SUBJ": subjects.get_indexer(pd.Index(d["USUBJID"].to_numpy(dtype=object))),
        "DAY": _to_days(d["RSDT"]) if "RSDT" in d else np.nan,
        "RANK": val.map(RANK).to_numpy(dtype="int64"),
        "KIND": np.where(tc[m.to_numpy(dtype=bool)].isin(BOR_TESTCDS).to_numpy(dtype=bool), "BOR", "OVR"),
        "ROWNUM": rown,
    })
    issues = [InputIssue(domain="rs", variable="USUBJID", row=int(r), problem="subject not in ADSL; row not used",
                         severity="warning", rule="RSP_RS_SUBJECT") for r in out.loc[out["SUBJ"] < 0, "ROWNUM"][:1000]]
    return out[out["SUBJ"] >= 0].reset_index(drop=True), issues


def derive_assessor_bor(resp: pd.DataFrame, first_dose_day: np.ndarray, new_therapy_day: np.ndarray, *,
                        rule) -> dict[str, np.ndarray]:
    """The assessor's best overall response per evaluator: rank per subject (-1: no assessment).

    Rule
    ----
    A given best response (KIND ``BOR``) is used as is. Otherwise the assessor's per-assessment
    responses go through the same confirmation and best-response rule as the derived ones
    (:func:`mmtrial.derive.confirm.derive_best_overall_response`), so that the two are compared
    like with like.
    """
    from mmtrial.derive.confirm import derive_best_overall_response

    n = len(first_dose_day)
    out: dict[str, np.ndarray] = {}
    for ev in sorted(resp["EVAL"].unique()):  # a handful of evaluators, not subjects
        r = resp[resp["EVAL"] == ev]
        rank = np.full(n, -1, dtype="int64")
        ovr = r[(r["KIND"] == "OVR") & r["DAY"].notna()].sort_values(["SUBJ", "DAY", "ROWNUM"], kind="stable")
        if len(ovr):
            frame = pd.DataFrame({"SUBJ": ovr["SUBJ"].to_numpy(dtype="int64"), "ADT_DAY": ovr["DAY"].to_numpy(float),
                                  "RANK": ovr["RANK"].to_numpy(dtype="int64"), "NOCONF": False, "RSPROUTE": ""})
            _, subj_res = derive_best_overall_response(frame, first_dose_day, new_therapy_day, rule=rule)
            has = subj_res["HAS_OVR"].to_numpy(dtype=bool)
            rank[has] = subj_res["BORN"].to_numpy()[has]
        given = r[r["KIND"] == "BOR"].drop_duplicates("SUBJ", keep="last")
        rank[given["SUBJ"].to_numpy(dtype="int64")] = given["RANK"].to_numpy(dtype="int64")
        out[str(ev)] = rank
    return out


@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa with its observed and chance agreement."""

    kappa: float
    observed: float
    expected: float
    n: int
    weights: str


def compute_cohen_kappa(a: np.ndarray, b: np.ndarray, k: int, *,
                        weights: Literal["none", "linear", "quadratic"] = "none") -> Kappa:
    """Cohen's kappa between two ratings coded 0..k-1 (ordered for weighted kappa).

    Rule
    ----
    kappa = (p_o - p_e) / (1 - p_e) over the k x k table (Cohen 1960); weighted: disagreement
    weights |i - j| / (k - 1) (linear) or squared (quadratic) (Cohen 1968). Same definition as
    ``sklearn.metrics.cohen_kappa_score``.
    """
    a = np.asarray(a, dtype="int64")
    b = np.asarray(b, dtype="int64")
    n = len(a)
    if n == 0:
        return Kappa(float("nan"), float("nan"), float("nan"), 0, weights)
    tab = np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(float)
    exp = np.outer(tab.sum(1), tab.sum(0)) / n
    i, j = np.indices((k, k))
    if weights == "none":
        w = (i != j).astype(float)
    elif weights == "linear":
        w = np.abs(i - j) / max(k - 1, 1)
    elif weights == "quadratic":
        w = ((i - j) / max(k - 1, 1)) ** 2
    else:
        raise ValueError(f"compute_cohen_kappa: weights must be 'none', 'linear' or 'quadratic'; got {weights!r}")
    do = (w * tab).sum() / n
    de = (w * exp).sum() / n
    kappa = float("nan") if de == 0 else 1.0 - do / de
    return Kappa(kappa=kappa, observed=1.0 - do if weights == "none" else float(np.trace(tab) / n),
                 expected=1.0 - de if weights == "none" else float(np.trace(exp) / n), n=n, weights=weights)


def derive_concordance(derived_rank: np.ndarray, assessed_rank: np.ndarray, subjects: np.ndarray) -> dict:
    """Cross-table of derived vs assessed BOR (subjects having both), kappas and the disagreeing subjects.

    Returns a dict: ``table`` (DataFrame, rows derived categories best first, columns assessed),
    ``subjects`` ({(derived, assessed): [USUBJID...]}), ``kappa`` and ``weighted_kappa`` (:class:`Kappa`),
    ``n``, ``agree``, ``disagree`` (USUBJIDs).
    """
    ok = (derived_rank >= 0) & (assessed_rank >= 0)
    d, s, sub = derived_rank[ok], assessed_rank[ok], subjects[ok]
    k = len(RANK_NAMES)
    order = [RANK[c] for c in CATEGORIES]  # best first
    tab = np.bincount(d * k + s, minlength=k * k).reshape(k, k)
    table = pd.DataFrame(tab[np.ix_(order, order)], index=list(CATEGORIES), columns=list(CATEGORIES))
    cells = pd.DataFrame({"D": RANK_NAMES[d], "A": RANK_NAMES[s], "U": sub})
    by_cell = {key: list(g["U"]) for key, g in cells.groupby(["D", "A"], sort=False)}
    return {
        "table": table, "subjects": by_cell,
        "kappa": compute_cohen_kappa(d, s, k), "weighted_kappa": compute_cohen_kappa(d, s, k, weights="linear"),
        "n": int(ok.sum()), "agree": int((d == s).sum()), "disagree": list(sub[d != s]),
    }


def derive_disagreement_listing(adrs: pd.DataFrame, adsl: pd.DataFrame, baseline: pd.DataFrame,
                                assessed: pd.Series, usubjids: list[str]) -> pd.DataFrame:
    """One row per disagreeing subject with the laboratory values behind the derived response.

    Columns: USUBJID, RSPROUTE, derived BOR (date), assessed BOR, baseline SPEP/UPEP/dFLC/BMPC,
    best % change, and the assessment sequence "date category (SPEP x; UPEP y; dFLC z; IFE s/u;
    BMPC p) [PD criteria]" (so a reviewer can see why).
    """
    cols = ["USUBJID", "RSPROUTE", "BOR_DERIVED", "BOR_ASSESSED", "BL_SPEP", "BL_UPEP", "BL_DFLC", "BL_BMPC",
            "BEST_PCHG", "ASSESSMENTS"]
    if not usubjids:
        return pd.DataFrame(columns=cols)
    sel = set(usubjids)
    o = adrs[(adrs["PARAMCD"] == "OVR") & adrs["USUBJID"].isin(sel)].copy()
    for c in ("AVALC", "IFES", "IFEU", "PDCRIT", "ANL01FL", "USUBJID"):
        o[c] = o[c].astype("string")

    def f(x: pd.Series, digits: int) -> pd.Series:
        return x.map(lambda v: "" if pd.isna(v) else f"{v:.{digits}f}")

    parts = []
    for name, col, dg in (("SPEP", "SPEP", 2), ("UPEP", "UPEP", 0), ("dFLC", "DFLC", 1), ("BMPC", "BMPCCF", 0)):
        v = f(o[col], dg)
        parts.append(np.where(v == "", "", name + " " + v))
    ife = np.where(o["IFES"].notna() | o["IFEU"].notna(),
                   "IFE " + o["IFES"].fillna("-").str[:3] + "/" + o["IFEU"].fillna("-").str[:3], "")
    parts.append(ife)
    vals = pd.DataFrame(parts).T.apply(lambda r: "; ".join(x for x in r if x), axis=1) if len(o) else pd.Series(dtype=str)
    pdc = o["PDCRIT"].fillna("")
    text = (o["ADT"].dt.strftime("%Y-%m-%d") + " " + o["AVALC"] + " (" + vals.to_numpy() + ")"
            + np.where(pdc != "", " [PD: " + pdc + "]", "") + np.where(o["ANL01FL"].isna(), " {after new therapy}", ""))
    seq = text.groupby(o["USUBJID"], sort=False).agg(" | ".join)
    best = o[o["ANL01FL"] == "Y"].groupby("USUBJID")["PCHG"].min()
    s = adsl.set_index("USUBJID").loc[usubjids]
    b = baseline.set_index("USUBJID").loc[usubjids]
    out = pd.DataFrame({
        "USUBJID": usubjids, "RSPROUTE": s["RSPROUTE"].to_numpy(),
        "BOR_DERIVED": (s["BOR"].astype(str) + " (" + s["BORDT"].dt.strftime("%Y-%m-%d").fillna("-") + ")").to_numpy(),
        "BOR_ASSESSED": assessed.reindex(usubjids).to_numpy(),
        "BL_SPEP": b["BL_SPEP"].to_numpy(), "BL_UPEP": b["BL_UPEP"].to_numpy(), "BL_DFLC": b["BL_DFLC"].to_numpy(),
        "BL_BMPC": b["BL_BMPC"].to_numpy(), "BEST_PCHG": best.reindex(usubjids).to_numpy(),
        "ASSESSMENTS": seq.reindex(usubjids).fillna("no assessment").to_numpy(),
    })
    return out
