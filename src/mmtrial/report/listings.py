"""The listing appendix: one row per subject with best response, dates, refractory status, dose levels.

This is where every traceability link of the report lands: each row carries the anchor
``id="subj-<USUBJID>"`` (``Listing.anchor_column = "USUBJID"``), so a count in the best-response
or adverse-event tables leads to the subjects behind it (ONCL01 "Individual efficacy data",
../shared/reference/tlg-catalog.md section 6).

Columns are data (:data:`SUBJECT_LISTING_COLUMNS`); a column whose variable the analysis did not
derive is left out and named in the listing's footnote, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from mmtrial.report.model import Listing, Section, Text

if TYPE_CHECKING:  # pragma: no cover
    from mmtrial.context import Analysis
    from mmtrial.protocol.model import DoseLadder

#: Section order of the listing appendix (after the published-vs-computed appendix at 95).
LISTINGS_ORDER = 99
#: Id of the per-subject listing; its rows own the ``subj-<USUBJID>`` anchors.
SUBJECT_LISTING_ID = "subject-listing"

ColumnKind = Literal["text", "date", "flag", "int"]


@dataclass(frozen=True)
class ListingColumn:
    """One listing column read from an ADaM dataset (``dataset`` lower-case, e.g. ``adsl``)."""

    label: str
    dataset: str
    variable: str
    kind: ColumnKind = "text"


#: The per-subject listing (ONCL01-style), in display order. Variables: docs/adam.md.
SUBJECT_LISTING_COLUMNS: tuple[ListingColumn, ...] = (
    ListingColumn("Site", "adsl", "SITEID"),
    ListingColumn("Age", "adsl", "AGE", "int"),
    ListingColumn("Sex", "adsl", "SEX"),
    ListingColumn("Safety", "adsl", "SAFFL", "flag"),
    ListingColumn("mITT", "adsl", "EFFFL", "flag"),
    ListingColumn("Prior lines", "adsl", "NLINES", "int"),
    ListingColumn("First dose", "adsl", "TRTSDT", "date"),
    ListingColumn("Last dose", "adsl", "TRTEDT", "date"),
    ListingColumn("BOR", "adsl", "BOR"),
    ListingColumn("BOR date", "adsl", "BORDT", "date"),
    ListingColumn("First response (>=PR)", "adsl", "RSPDT", "date"),
    ListingColumn("Progression", "adsl", "PDDT", "date"),
    ListingColumn("Death", "adsl", "DTHDT", "date"),
)

#: Refractory categories, most to least extensive; the first flag equal to "Y" names the status.
#: Definitions: domain.md sections 2.6-2.7 (penta = refractory to bortezomib, carfilzomib,
#: lenalidomide, pomalidomide and daratumumab; triple-class = a PI, an IMiD and an anti-CD38).
REFRACTORY_FLAGS: tuple[tuple[str, str], ...] = (
    ("PENTAFL", "Penta-refractory"),
    ("QUADFL", "Quad-refractory"),
    ("TCRFL", "Triple-class refractory"),
)

#: Administrations per week for the EXDOSFRQ values of docs/data-contract.md (CDISC CT FREQ).
DOSES_PER_WEEK: dict[str, float] = {"BIW": 2.0, "QW": 1.0, "QD": 7.0, "TIW": 3.0, "Q2W": 0.5}


def _fmt_dates(s: pd.Series) -> pd.Series:
    d = pd.to_datetime(s, errors="coerce")
    return d.dt.strftime("%Y-%m-%d").fillna("")


def _fmt_column(s: pd.Series, kind: ColumnKind) -> pd.Series:
    if kind == "date":
        return _fmt_dates(s)
    if kind == "flag":
        return s.astype("string").str.upper().fillna("").replace({"Y": "Y", "N": "N"})
    if kind == "int":
        num = pd.to_numeric(s, errors="coerce").astype(float)
        exact = (num.abs() < 2.0**53).fillna(False).to_numpy(dtype=bool)  # integers a float holds exactly
        out = pd.Series("", index=s.index, dtype="string")
        out[exact] = num[exact].round().astype("int64").astype("string")
        odd = num.notna().to_numpy() & ~exact  # +-inf or a huge value: NE / scientific (tables/format.py)
        if odd.any():
            from mmtrial.tables.format import fmt_num

            out[odd] = [fmt_num(v, 0) for v in num[odd]]
        return out
    return s.astype("string").fillna("")


def derive_refractory_status(adsl: pd.DataFrame) -> pd.Series | None:
    """Name each subject's most extensive refractory category.

    Rule
    ----
    :data:`REFRACTORY_FLAGS` in order (penta before quad before triple-class); ``"No"`` when a
    flag is present and none is ``Y``; ``None`` when ADSL carries none of the flags.
    """
    present = [(v, lab) for v, lab in REFRACTORY_FLAGS if v in adsl.columns]
    if not present:
        return None
    out = pd.Series("No", index=adsl.index, dtype="string")
    for var, label in reversed(present):  # least extensive first, so the most extensive wins
        out = out.mask(adsl[var].astype("string").str.upper().eq("Y").fillna(False), label)
    return out


def derive_dose_level_sequence(
    ex: pd.DataFrame, ladder: DoseLadder, *, study_drug: str
) -> pd.DataFrame:
    """Each subject's sequence of study-drug dose levels, in time order.

    Parameters
    ----------
    ex
        Normalised ``ex`` (USUBJID, EXTRT, EXDOSE, EXDOSFRQ, EXSTDT; docs/data-contract.md:
        one row per constant-dose interval).
    ladder
        The protocol's dose ladder (``[dose_ladder]`` of the protocol file).
    study_drug
        The EXTRT value the ladder applies to.

    Returns
    -------
    DataFrame
        USUBJID and DOSELVLS, e.g. ``"160 -> 100 mg/wk (levels 0 -> -1)"``; a weekly dose not on
        the ladder shows ``?`` as its level.

    Rule
    ----
    Weekly dose = EXDOSE x administrations per week (:data:`DOSES_PER_WEEK`); the level is the
    ladder step with that weekly dose (XPOVIO label Table 1 for STORM). Consecutive intervals at
    the same weekly dose are one step; zero-dose intervals (interruptions) are not levels.
    """
    cols = ["USUBJID", "DOSELVLS"]
    if ex is None or ex.empty or not {"USUBJID", "EXTRT", "EXDOSE"} <= set(ex.columns):
        return pd.DataFrame(columns=cols)
    e = ex[ex["EXTRT"].astype("string").str.upper().eq(study_drug.upper()).fillna(False)]
    e = e[pd.to_numeric(e["EXDOSE"], errors="coerce") > 0]
    if e.empty:
        return pd.DataFrame(columns=cols)
    if "EXDOSFRQ" in e.columns:
        per_week = e["EXDOSFRQ"].astype("string").str.upper().map(DOSES_PER_WEEK).astype(float)
    else:
        per_week = pd.Series(np.nan, index=e.index)
    weekly = pd.to_numeric(e["EXDOSE"], errors="coerce").astype(float) * per_week
    order_cols = ["USUBJID"] + [c for c in ("EXSTDT", "ROWNUM") if c in e.columns]
    e = e.assign(_W=weekly.to_numpy()).sort_values(order_cols, kind="mergesort")
    same_subj = e["USUBJID"].eq(e["USUBJID"].shift())
    same_dose = e["_W"].eq(e["_W"].shift()) | (e["_W"].isna() & e["_W"].shift().isna())
    e = e[~(same_subj & same_dose)]
    lv_w = np.array([lv.weekly_mg for lv in ladder.levels], dtype=float)
    lv_n = np.array([str(lv.level) for lv in ladder.levels], dtype=object)
    w = e["_W"].to_numpy(dtype=float)
    hit = np.isclose(w[:, None], lv_w[None, :])
    level = np.where(hit.any(axis=1), lv_n[hit.argmax(axis=1)], "?")
    return _level_sequence_text(e.assign(_LV=level))


def derive_dose_level_sequence_from_intervals(adexlvl: pd.DataFrame, *, study_drug: str) -> pd.DataFrame:
    """Each subject's sequence of study-drug dose levels from the exposure derivation's intervals
    (ADEXLVL: WKDOSE and DOSELVL, measured against the subject's own arm regimen and ladder,
    derive/exposure.py), so any schedule (once weekly, daily, phases, mg/m2) gets its weekly dose;
    same text and rules as :func:`derive_dose_level_sequence`."""
    cols = ["USUBJID", "DOSELVLS"]
    need = {"USUBJID", "EXTRT", "WKDOSE", "DOSELVL", "ASTDT"}
    if adexlvl is None or adexlvl.empty or not need <= set(adexlvl.columns):
        return pd.DataFrame(columns=cols)
    e = adexlvl[adexlvl["EXTRT"].astype("string").str.upper().eq(study_drug.upper()).fillna(False)]
    e = e[pd.to_numeric(e["WKDOSE"], errors="coerce") > 0]
    if e.empty:
        return pd.DataFrame(columns=cols)
    e = e.assign(_W=e["WKDOSE"].to_numpy(dtype=float)).sort_values(
        ["USUBJID", "ASTDT"] + (["ROWNUM"] if "ROWNUM" in e.columns else []), kind="mergesort")
    same = e["USUBJID"].eq(e["USUBJID"].shift()) & e["_W"].eq(e["_W"].shift())
    e = e[~same]
    lvl = e["DOSELVL"].to_numpy(dtype=float)
    level = np.where(np.isnan(lvl), "?", np.char.mod("%d", np.nan_to_num(lvl).astype(np.int64))).astype(object)
    return _level_sequence_text(e.assign(_LV=level))


def _level_sequence_text(e: pd.DataFrame) -> pd.DataFrame:
    """``"160 -> 100 mg/wk (levels 0 -> -1)"`` per subject from time-ordered steps (_W, _LV)."""
    w = e["_W"].to_numpy(dtype=float)
    wtxt = pd.Series(w, index=e.index).map(lambda v: "?" if np.isnan(v) else f"{v:g}")
    e = e.assign(_WT=wtxt)
    g = e.groupby("USUBJID", sort=True)
    out = pd.DataFrame(
        {
            "w": g["_WT"].agg(" -> ".join),
            "l": g["_LV"].agg(" -> ".join),
        }
    )
    out["DOSELVLS"] = out["w"] + " mg/wk (levels " + out["l"] + ")"
    return out.reset_index()[["USUBJID", "DOSELVLS"]]


def build_subject_listing(a: Analysis) -> Listing | None:
    """The per-subject listing (BOR with dates, refractory status, dose levels) from ``a.adam``.

    ``None`` when the analysis has no ADSL (nothing to list).
    """
    adsl = a.adam.get("adsl")
    if adsl is None or "USUBJID" not in adsl.columns:
        return None
    adsl = adsl.sort_values("USUBJID", kind="mergesort").reset_index(drop=True)
    data: dict[str, pd.Series] = {"USUBJID": adsl["USUBJID"].astype("string")}
    missing: list[str] = []
    for col in SUBJECT_LISTING_COLUMNS:
        frame = adsl if col.dataset == "adsl" else a.adam.get(col.dataset)
        where = f"{col.label} ({col.dataset.upper()}.{col.variable})"
        if frame is None or col.variable not in frame.columns:
            missing.append(where)
            continue
        if frame is adsl:
            src = adsl
        elif frame["USUBJID"].duplicated().any():
            missing.append(where + " has several rows per subject")
            continue
        else:
            src = adsl[["USUBJID"]].merge(frame, on="USUBJID", how="left")
        data[col.label] = _fmt_column(src[col.variable], col.kind)
    status = derive_refractory_status(adsl)
    if status is None:
        missing.append("Refractory status (ADSL." + "/".join(v for v, _ in REFRACTORY_FLAGS) + ")")
    else:
        data["Refractory status"] = status
    ex = a.study.get("ex") if a.study is not None else None
    adexlvl = a.adam.get("adexlvl")
    drug = a.protocol.regimen.study_drug
    seq = (derive_dose_level_sequence_from_intervals(adexlvl, study_drug=drug) if adexlvl is not None
           else derive_dose_level_sequence(ex, a.protocol.dose_ladder, study_drug=drug) if ex is not None
           else None)
    if seq is not None:
        merged = adsl[["USUBJID"]].merge(seq, on="USUBJID", how="left")
        data["Dose levels"] = merged["DOSELVLS"].astype("string").fillna("")
    else:
        missing.append("Dose levels (ex)")
    frame = pd.DataFrame(data)
    notes = [
        "BOR: confirmed best overall response (IMWG); dates are ISO 8601 (YYYY-MM-DD).",
        "Refractory status: the most extensive of penta-, quad- and triple-class refractory "
        "(ADSL flags PENTAFL, QUADFL, TCRFL).",
        f"Dose levels: study drug ({drug}) weekly dose in time order and its step on the protocol "
        f"dose ladder ({a.protocol.dose_ladder.source}); weekly dose and level from the exposure "
        "intervals measured against the subject's arm regimen (ADEXLVL); blank: no dose of the study drug.",
    ]
    if missing:
        notes.append("Not derived in this analysis, so not shown: " + "; ".join(missing) + ".")
    return Listing(
        id=SUBJECT_LISTING_ID,
        title="Listing of subjects: best overall response with dates, refractory status and dose levels",
        data=frame,
        footnotes=notes,
        population="All subjects in ADSL",
        source="ADSL; ADEXLVL (ex with the regimen and dose ladder)",
        stub="USUBJID",
        anchor_column="USUBJID",
    )


def build_listings_section(a: Analysis, extra: list[Listing] | None = None) -> Section:
    """The listing appendix (order :data:`LISTINGS_ORDER`)."""
    blocks: list = []
    listing = build_subject_listing(a)
    if listing is None:
        blocks.append(Text("No subject-level dataset (ADSL) was derived, so there is no listing."))
    else:
        blocks.append(
            Text(
                "One row per subject. Counts in the tables link here: a count opens the list of "
                "subjects behind it, and each subject opens its row below."
            )
        )
        blocks.append(listing)
    blocks.extend(extra or [])
    return Section(
        id="listings", title="Appendix: subject listings", blocks=blocks, order=LISTINGS_ORDER
    )
