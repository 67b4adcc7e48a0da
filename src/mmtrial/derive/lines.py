"""Lines of therapy (Rajkumar, Richardson, San Miguel, Blood 2015;126:921-922).

Regimens (cm PRIOR ANTI-MYELOMA THERAPY rows grouped by CMGRPID) and stem-cell transplants
(pr) are ordered in time per subject; each item either starts a new line or continues the
current one. The decision for every item looks only at the item before it (and, for
transplants, at the subject's earlier transplants), so the whole derivation is a handful of
vectorised column operations and one cumulative sum per subject.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mmtrial.derive._groups import (
    NAT,
    codes_of,
    datetimes_i8,
    first_valid,
    group_ids,
    group_starts,
    join_runs_text,
    last_valid,
    take_or_na,
    unique_sorted,
)
from mmtrial.sdtm.issues import InputIssue

RAJKUMAR_2015 = "Rajkumar SV, Richardson P, San Miguel JF. Blood 2015;126(7):921-922"


@dataclass(frozen=True)
class LineRule:
    """Options for counting lines of therapy (protocol section ``[lines]``).

    Parameters
    ----------
    same_regimen_gap_days : int, default 30
        A regimen whose drugs are a subset of the previous regimen's (a drug dropped, a dose
        changed, the same regimen recorded in two pieces) continues the previous line when it
        starts at most this many days after the previous regimen ended and the previous one did
        not stop for progression. Longer gaps are a "planned period of observation off therapy
        interrupted by a need for additional treatment" (Rajkumar 2011): a new line.
    planned_gap_days : int, default 120
        Longest gap between a planned step of a sequential program (induction -> transplant ->
        consolidation -> maintenance) and the next one when the plan is inferred from phases
        or reasons rather than declared by CMLNKGRP/PRLNKGRP.
    infer_planned : bool, default True
        Infer planned continuation without a link group when the previous item stopped with a
        reason in ``planned_reasons``, or the item's phase (CMSCAT) is in ``continuation_phases``,
        or the item is a transplant following an ``INDUCTION`` regimen; and the previous item did
        not stop for a reason in ``unplanned_reasons``. ``False``: only link groups declare plans.
    tandem_max_days : int, default 180
        Longest interval between two transplants for the second to be a planned tandem (the
        letter gives "e.g. 3 months" as a predefined interval; 180 days allows for delays).
    tandem_requires_link : bool, default False
        Also require both transplants to share a PRLNKGRP to count as a tandem.
    planned_reasons, unplanned_reasons, progression_reasons, continuation_phases,
    transplant_terms : tuple of str
        Controlled terms (upper case) for CMRSDISC, CMSCAT and PRTRT.
    """

    same_regimen_gap_days: int = 30
    planned_gap_days: int = 120
    infer_planned: bool = True
    tandem_max_days: int = 180
    tandem_requires_link: bool = False
    planned_reasons: tuple[str, ...] = ("PLANNED", "PLANNED TRANSPLANT")
    progression_reasons: tuple[str, ...] = (
        "PROGRESSIVE DISEASE", "DISEASE PROGRESSION", "PROGRESSION", "RELAPSE",
        "INADEQUATE RESPONSE", "LACK OF EFFICACY", "REFRACTORY",
    )
    unplanned_reasons: tuple[str, ...] = (
        "PROGRESSIVE DISEASE", "DISEASE PROGRESSION", "PROGRESSION", "RELAPSE",
        "INADEQUATE RESPONSE", "LACK OF EFFICACY", "REFRACTORY", "TOXICITY", "ADVERSE EVENT",
        "INTOLERANCE",
    )
    continuation_phases: tuple[str, ...] = ("CONSOLIDATION", "MAINTENANCE")
    transplant_terms: tuple[str, ...] = (
        "AUTOLOGOUS STEM CELL TRANSPLANT", "ALLOGENEIC STEM CELL TRANSPLANT",
    )
    source: str = RAJKUMAR_2015

    def __post_init__(self) -> None:
        for name in ("same_regimen_gap_days", "planned_gap_days", "tandem_max_days"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"LineRule.{name}: expected an integer >= 0; got {v!r}")
        for name in ("planned_reasons", "progression_reasons", "unplanned_reasons",
                     "continuation_phases", "transplant_terms"):
            object.__setattr__(self, name, tuple(str(s).upper().strip() for s in getattr(self, name)))

    @classmethod
    def from_protocol(cls, section: dict[str, Any]) -> LineRule:
        """Build from the protocol's ``[lines]`` table; unknown keys are an error."""
        allowed = set(cls.__dataclass_fields__)
        unknown = set(section) - allowed
        if unknown:
            raise ValueError(f"[lines]: unknown option(s) {sorted(unknown)}; allowed {sorted(allowed)}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
        return cls(**kw)

    def describe(self) -> str:
        return (f"Lines of therapy per {self.source}: a new line when a regimen stops and a different one "
                f"starts, a drug is added or substituted unplanned, or a transplant follows an earlier one "
                f"(except a planned tandem within {self.tandem_max_days} days); planned induction, "
                f"transplant, consolidation and maintenance are one line (declared by CMLNKGRP/PRLNKGRP"
                + (f", or inferred from phase/reason within {self.planned_gap_days} days" if self.infer_planned else "")
                + f"); a regimen restarted or reduced within {self.same_regimen_gap_days} days continues its line.")

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


DEFAULT_LINE_RULE = LineRule()

ITEM_COLUMNS = [
    "USUBJID", "ITEMID", "ITEMTYPE", "STDT", "ENDT", "STDTF", "ENDTF", "REASON", "PHASE",
    "LNKGRP", "DRUGS", "NDRUGS", "SRCDOM", "SRCROWS",
]


def _string_agg(df: pd.DataFrame, keys: list[str], value: str, order: str, out: str,
                distinct: bool = False, sep: str = ";") -> pd.DataFrame:
    """``sep``-joined values per key group, in ``order`` (sorted frame + ``np.add.reduceat``:
    one C-level pass over the rows, no Python loop per group)."""
    cols = list(dict.fromkeys([*keys, value, order]))
    x = df[cols]
    if distinct:
        x = x.drop_duplicates([*keys, value])
    x = x.sort_values(list(dict.fromkeys([*keys, order])), kind="stable")
    if len(x) == 0:
        res = x[keys].copy()
        res[out] = pd.Series(dtype="string")
        return res.reset_index(drop=True)
    new = np.zeros(len(x), dtype=bool)
    new[0] = True
    for c in keys:
        arr = x[c].to_numpy(dtype=object)
        new[1:] |= arr[1:] != arr[:-1]
    starts = np.flatnonzero(new)
    vals = (sep + x[value].astype("string").fillna("").astype(object)).to_numpy(dtype=object)
    joined = np.add.reduceat(vals, starts)
    res = x.iloc[starts][keys].reset_index(drop=True)
    res[out] = pd.Series(joined, dtype="string").str.slice(len(sep))
    return res


def derive_transplants(pr: pd.DataFrame | None, *, rule: LineRule = DEFAULT_LINE_RULE) -> pd.DataFrame:
    """Stem-cell transplants from pr: USUBJID, ROWNUM, PRTRT, PRSTDT, PRSTDTF, PRLNKGRP, SCTTYPE.

    Rule: data-contract.md pr: PRTRT ``AUTOLOGOUS STEM CELL TRANSPLANT`` or ``ALLOGENEIC STEM
    CELL TRANSPLANT`` (``LineRule.transplant_terms``); other procedures are not therapy lines.
    """
    cols = ["USUBJID", "ROWNUM", "PRTRT", "PRSTDT", "PRSTDTF", "PRLNKGRP", "SCTTYPE"]
    if pr is None or len(pr) == 0 or "PRTRT" not in pr:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    x = pr.copy()
    trt = x["PRTRT"].astype("string").str.upper().str.strip()
    x = x.loc[trt.isin(rule.transplant_terms).fillna(False)].copy()
    x["PRTRT"] = x["PRTRT"].astype("string").str.upper().str.strip()
    if "ROWNUM" not in x:
        x["ROWNUM"] = np.arange(1, len(x) + 1)
    for c in ("PRLNKGRP", "PRSTDTF"):
        if c not in x:
            x[c] = pd.NA
    if "PRSTDT" not in x:
        x["PRSTDT"] = pd.NaT
    x["PRSTDT"] = pd.to_datetime(x["PRSTDT"])
    x["PRSTDTF"] = x["PRSTDTF"].astype("string").fillna("")
    x["PRLNKGRP"] = x["PRLNKGRP"].astype("string").str.strip().replace("", pd.NA)
    x["SCTTYPE"] = np.where(x["PRTRT"].str.startswith("ALLO"), "ALLOGENEIC", "AUTOLOGOUS")
    x["USUBJID"] = x["USUBJID"].astype("string")
    return x[cols].reset_index(drop=True)


def derive_regimens(exposure: pd.DataFrame, transplants: pd.DataFrame) -> pd.DataFrame:
    """Therapy items per subject: one row per regimen (CMGRPID) and one per transplant.

    A regimen starts at its earliest drug start and ends at its latest drug end (all its drugs
    stopped: Rajkumar 2015, "a regimen is discontinued only when all drugs are stopped");
    its reason (CMRSDISC) is the one recorded on the drug that ended last; its phase (CMSCAT)
    and link group (CMLNKGRP) the first recorded. A transplant is an item that starts and ends
    on PRSTDT. Columns: see ``ITEM_COLUMNS``.
    """
    reg = _regimen_rows(exposure)
    reg = reg.rename(columns={"CMGRPID": "ITEMID"})
    reg["ITEMTYPE"] = "REGIMEN"
    reg["SRCDOM"] = "cm"
    t = transplants
    sct = pd.DataFrame({
        "USUBJID": t["USUBJID"].astype("string"),
        "ITEMID": "SCT" + t["ROWNUM"].astype("string"),
        "ITEMTYPE": "SCT",
        "STDT": pd.to_datetime(t["PRSTDT"]),
        "ENDT": pd.to_datetime(t["PRSTDT"]),
        "STDTF": t["PRSTDTF"].astype("string"),
        "ENDTF": t["PRSTDTF"].astype("string"),
        "REASON": pd.Series(pd.NA, index=t.index, dtype="string"),
        "PHASE": pd.Series(pd.NA, index=t.index, dtype="string"),
        "LNKGRP": t["PRLNKGRP"].astype("string"),
        "DRUGS": t["SCTTYPE"].astype("string").str.lower() + " sct",
        "NDRUGS": 0,
        "SRCDOM": "pr",
        "SRCROWS": t["ROWNUM"].astype("string"),
    })
    items = pd.concat([reg[ITEM_COLUMNS], sct[ITEM_COLUMNS]], ignore_index=True)
    items["USUBJID"] = items["USUBJID"].astype("string")
    for c in ("REASON", "PHASE", "LNKGRP", "STDTF", "ENDTF"):
        items[c] = items[c].astype("string")
    items["STDTF"] = items["STDTF"].fillna("")
    items["ENDTF"] = items["ENDTF"].fillna("")
    items["NDRUGS"] = items["NDRUGS"].astype("int64")
    items["STDT"] = pd.to_datetime(items["STDT"])
    items["ENDT"] = pd.to_datetime(items["ENDT"])
    return items


def _regimen_rows(exposure: pd.DataFrame) -> pd.DataFrame:
    """One row per (USUBJID, CMGRPID), in key order: STDT, ENDT, REASON, PHASE, LNKGRP, NDRUGS,
    STDTF, ENDTF, DRUGS, SRCROWS (see :func:`derive_regimens`), on integer codes (issue 15).

    Rows are ordered by subject, regimen and end date (missing first; stable), as the pandas
    group-by this replaces. The start's (end's) imputation flag is that of the row that a
    quicksort of the dated rows by start (end) date puts first (last) in the regimen -- the
    pandas ``sort_values`` + ``drop_duplicates`` of the first release, kept for identical output.
    """
    e = exposure.loc[exposure["USUBJID"].notna()] if exposure["USUBJID"].isna().any() else exposure
    n = len(e)
    if n == 0:
        out = pd.DataFrame({c: pd.Series(dtype="object") for c in (
            "USUBJID", "CMGRPID", "STDT", "ENDT", "REASON", "PHASE", "LNKGRP", "STDTF", "ENDTF")})
        out["NDRUGS"] = pd.Series(dtype="int64")
        out["DRUGS"] = pd.Series(dtype="string")
        out["SRCROWS"] = pd.Series(dtype="string")
        return out
    scode, suni = codes_of(e["USUBJID"])
    gcode, guni = codes_of(e["CMGRPID"])
    en_all = datetimes_i8(e["CMENDT"])
    order = np.lexsort((en_all, gcode, scode))  # text columns are read only at the rows chosen
    S, G = scode[order], gcode[order]
    starts = group_starts(S, G)
    gid = group_ids(starts, n)
    ng = len(starts)
    st = datetimes_i8(e["CMSTDT"])[order]
    en = en_all[order]
    big = np.iinfo(np.int64).max
    stmin = np.minimum.reduceat(np.where(st == NAT, big, st), starts)
    stmin = np.where(stmin == big, NAT, stmin)
    ends = np.r_[starts[1:], n] - 1
    # the regimen's end: its latest drug end, unknown when any drug has no end (NaT sorts first)
    enmax = np.where(en[starts] == NAT, NAT, en[ends])

    def pick(col: str, rows: np.ndarray) -> pd.Series:  # rows: sorted positions, -1 = none
        return take_or_na(e[col], np.where(rows < 0, -1, order[rows]))

    def valid(col: str) -> np.ndarray:
        return e[col].notna().to_numpy()[order]

    reg = pd.DataFrame({
        "USUBJID": pd.Series(suni.take(S[starts])),
        "CMGRPID": pd.Series(guni.take(G[starts])),
        "STDT": stmin.view(e["CMSTDT"].dtype),
        "ENDT": enmax.view(e["CMENDT"].dtype),
        "REASON": pick("CMRSDISC", last_valid(valid("CMRSDISC"), starts)),
        "PHASE": pick("CMSCAT", first_valid(valid("CMSCAT"), starts)),
        "LNKGRP": pick("CMLNKGRP", first_valid(valid("CMLNKGRP"), starts)),
    })
    dcode, duni = codes_of(e["DRUG"])
    nd = len(duni) + 1
    pairs = np.sort(gid * nd + dcode[order])
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]  # distinct (regimen, drug), in that order
    pg, pdr = pairs // nd, pairs % nd
    reg["NDRUGS"] = np.bincount(pg[pdr < len(duni)], minlength=ng).astype("int64")
    for col, flag, first in (("CMSTDT", "STDTF", True), ("CMENDT", "ENDTF", False)):
        vals = st if first else en
        dated = np.flatnonzero(vals != NAT)
        perm = dated[pd.Series(vals[dated].view(e[col].dtype)).sort_values().index.to_numpy()]
        gp = gid[perm]
        o = np.argsort(gp, kind="stable")
        b = group_starts(gp[o])
        at = b if first else np.r_[b[1:], len(o)] - 1
        rows = np.full(ng, -1, dtype=np.int64)
        if len(o):  # (no dated row at all: every flag missing)
            rows[gp[o[at]]] = perm[o[at]]
        reg[flag] = pick(col + "F", rows)
    names = pa.array(np.append(np.asarray(duni, dtype=object), ""), type=pa.large_string())  # a missing drug: ""
    reg["DRUGS"] = join_runs_text(names.take(pdr), group_starts(pg), ";")
    rownum = e["ROWNUM"].to_numpy()[order]
    o2 = np.lexsort((rownum, gid))
    rows = pa.array(e["ROWNUM"].astype("string").fillna(""), type=pa.large_string())
    reg["SRCROWS"] = join_runs_text(rows.take(order[o2]), starts, ",")
    return reg


def derive_lines_of_therapy(
    items: pd.DataFrame,
    exposure: pd.DataFrame,
    *,
    rule: LineRule = DEFAULT_LINE_RULE,
) -> pd.DataFrame:
    """Assign a line number to every therapy item (regimen or transplant).

    Rule
    ----
    Rajkumar, Richardson, San Miguel. Blood 2015;126:921-922 (domain.md 2.7): a line is one or
    more complete cycles of a single agent, a combination, or a planned sequential therapy
    (induction -> SCT -> consolidation -> maintenance = 1 line). A new line starts when
    (1) a regimen is discontinued (all its drugs stopped) and a different regimen is started;
    (2) one or more drugs are added or substituted, unplanned; (3) each SCT in a patient with
    more than one SCT, except a planned tandem with a predefined interval.

    Algorithm
    ---------
    Items are sorted per subject by start date (missing last), regimens before transplants on
    the same day, then item id. Item *i* continues the line of item *i-1* (its predecessor) when
    any of these hold, else it starts a new line:

    a. same start date as the predecessor (one combination recorded as two regimens);
    b. same non-missing link group (CMLNKGRP / PRLNKGRP: a declared planned program);
    c. continuation: both regimens, *i*'s drugs a subset of *i-1*'s, *i-1* did not stop for
       progression, and *i* starts <= ``same_regimen_gap_days`` after *i-1* ended;
    d. inferred plan (``infer_planned``): *i-1* stopped with a planned reason, or *i*'s phase is
       consolidation/maintenance, or *i* is an SCT after an induction regimen; *i-1* did not
       stop for progression or toxicity; gap <= ``planned_gap_days``.

    A transplant after an earlier transplant of the same subject overrides a-d: it continues
    the line only as a planned tandem (<= ``tandem_max_days`` after the previous transplant,
    sharing its link group when ``tandem_requires_link``). The first item is line 1.

    Returns
    -------
    The items with ``ITEMSEQ`` (order within subject), ``NEWLNFL`` ("Y" when the item starts a
    line), ``LNRULE`` (which condition joined it: ``SAME START``, ``LINKED``, ``CONTINUATION``,
    ``PLANNED``, ``TANDEM``; ``NEW`` for line starts) and ``LINENUM``.

    Examples
    --------
    Rd stopped for inadequate response, then bortezomib added (RVd): 2 lines (Rajkumar 2015).
    """
    if len(items) == 0:
        out = items.copy()
        for c in ("ITEMSEQ", "LINENUM"):
            out[c] = pd.Series(dtype="int64")
        out["NEWLNFL"] = pd.Series(dtype="string")
        out["LNRULE"] = pd.Series(dtype="string")
        return out
    if items["USUBJID"].isna().any():  # rows without a subject: the pandas version (they are dropped by its group-bys)
        return _lines_of_therapy_pandas(items, exposure, rule)
    return _lines_of_therapy_codes(items, exposure, rule)


def _isin_codes(values: pd.Series, terms: tuple[str, ...]) -> np.ndarray:
    """``values.isin(terms)`` (missing: False), tested on the distinct values only."""
    codes, uniques = pd.factorize(values)
    hit = np.append(pd.Index(uniques, dtype=object).isin(terms), False)
    return hit[codes]


def _last_before(mark: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """Per row, the last earlier row of its group with ``mark`` (-1 if none); rows sorted by group."""
    n = len(mark)
    idx = np.maximum.accumulate(np.where(mark, np.arange(n), -1)) if n else np.zeros(0, dtype=np.int64)
    prev = np.r_[-1, idx[:-1]]
    return np.where(prev >= group_start, prev, -1)


def _lines_of_therapy_codes(items: pd.DataFrame, exposure: pd.DataFrame, rule: LineRule) -> pd.DataFrame:
    """:func:`derive_lines_of_therapy` on integer codes and numpy arrays (issue 15).

    Same sort (subject, missing start last, start, regimens before transplants, item id; stable),
    the same predecessor tests and the same output as the pandas version
    (:func:`_lines_of_therapy_pandas`), without pandas group-bys, shifts and merges.
    """
    n = len(items)
    # subjects of the items and of the exposure rows in one code space (text order)
    both, _ = codes_of(pd.concat([items["USUBJID"], exposure["USUBJID"]], ignore_index=True))
    scode, e_subj = both[:n], both[n:]
    is_sct_in = items["ITEMTYPE"].eq("SCT").to_numpy(dtype=bool, na_value=False)
    st_in = items["STDT"].to_numpy().astype("datetime64[ns]").view(np.int64)
    icode, _ = codes_of(items["ITEMID"])
    order = np.lexsort((icode, is_sct_in, st_in, st_in == NAT, scode))
    x = items.take(order).reset_index(drop=True)
    S = scode[order]
    sct = is_sct_in[order]
    st = st_in[order]
    en = x["ENDT"].to_numpy().astype("datetime64[ns]").view(np.int64)
    starts = group_starts(S)
    gid = group_ids(starts, n)
    gstart = starts[gid]  # first row of each row's subject
    first = np.arange(n) == gstart
    p = np.maximum(np.arange(n) - 1, 0)  # the predecessor (valid where not first)
    day = 86_400_000_000_000

    def within(a: np.ndarray, b: np.ndarray, ok: np.ndarray, days: int) -> np.ndarray:
        """(a - b) in whole days (floor) <= days, where both dates exist and ``ok``."""
        valid = ok & (a != NAT) & (b != NAT)
        out = np.zeros(n, dtype=bool)
        out[valid] = (a[valid] - b[valid]) // day <= days
        return out

    has_prev = ~first
    same_start = has_prev & (st != NAT) & (st == st[p])
    lnk, _ = pd.factorize(x["LNKGRP"])
    linked = has_prev & (lnk >= 0) & (lnk == lnk[p])
    reason = {name: _isin_codes(x["REASON"], terms) for name, terms in (
        ("progression", rule.progression_reasons), ("planned", rule.planned_reasons),
        ("unplanned", rule.unplanned_reasons))}
    phase = x["PHASE"]

    # c. continuation: i's drugs a subset of i-1's: distinct (item, drug) pairs of the regimens,
    # and whether the predecessor has the same drug (regimen ids and drugs as integer codes)
    reg_ids, _ = pd.factorize(pd.concat([exposure["CMGRPID"], x["ITEMID"]], ignore_index=True))
    ne = len(exposure)
    nr = int(reg_ids.max()) + 2 if len(reg_ids) else 1
    reg_rows = np.flatnonzero(~sct)
    item_key = S[reg_rows] * nr + (reg_ids[ne:][reg_rows] + 1)
    ko = np.argsort(item_key, kind="stable")
    e_key = e_subj * nr + (reg_ids[:ne] + 1)
    pos = np.searchsorted(item_key[ko], e_key).clip(0, max(len(ko) - 1, 0))
    found = (item_key[ko][pos] == e_key) if len(ko) else np.zeros(ne, dtype=bool)  # (a missing subject: no item)
    e_item = reg_rows[ko[pos[found]]] if len(ko) else np.zeros(0, dtype=np.int64)
    dcode, duni = pd.factorize(exposure["DRUG"])
    nd = len(duni) + 1
    pairs = unique_sorted(e_item * nd + (dcode[found] + 1))  # distinct (item row, drug); a missing drug is a code
    pr_item, pr_drug = pairs // nd, pairs % nd
    in_prev = np.isin((pr_item - 1) * nd + pr_drug, pairs) & ~first[pr_item]
    nmatch = np.bincount(pr_item[in_prev], minlength=n)
    ndrugs = x["NDRUGS"].to_numpy(dtype=np.int64)
    subset = (ndrugs > 0) & (nmatch == ndrugs)
    both_reg = has_prev & ~sct & ~sct[p]
    not_pd = ~(has_prev & reason["progression"][p])
    continuation = both_reg & subset & not_pd & within(st, en[p], has_prev, rule.same_regimen_gap_days)

    # d. inferred planned continuation
    cue = (has_prev & reason["planned"][p]) | _isin_codes(phase, rule.continuation_phases) \
        | (sct & has_prev & _isin_codes(phase, ("INDUCTION",))[p])
    not_unplanned = ~(has_prev & reason["unplanned"][p])
    planned = cue & not_unplanned & within(st, en[p], has_prev, rule.planned_gap_days)
    if not rule.infer_planned:
        planned = np.zeros(n, dtype=bool)

    # transplants after an earlier transplant: only a planned tandem continues the line
    last_sct = _last_before(sct & (st != NAT), gstart)  # the latest earlier dated transplant
    later_sct = sct & (_last_before(sct, gstart) >= 0)
    tandem = within(st, st[last_sct.clip(0)], last_sct >= 0, rule.tandem_max_days)
    if rule.tandem_requires_link:
        last_link = _last_before(sct & (lnk >= 0), gstart)
        tandem &= (last_link >= 0) & (lnk >= 0) & (lnk == lnk[last_link.clip(0)])

    rule_lbl = np.select(
        [first, later_sct & tandem, later_sct, same_start, linked, planned, continuation],
        ["NEW", "TANDEM", "NEW", "SAME START", "LINKED", "PLANNED", "CONTINUATION"],
        default="NEW",
    )
    new = rule_lbl == "NEW"
    x["ITEMSEQ"] = (np.arange(n) - gstart + 1).astype("int64")
    x["LNRULE"] = pd.Series(rule_lbl, index=x.index, dtype="string")
    x["NEWLNFL"] = np.where(new, "Y", "N")
    cs = np.cumsum(new)
    x["LINENUM"] = (cs - (cs[gstart] - new[gstart])).astype("int64")
    return x


def _lines_of_therapy_pandas(items: pd.DataFrame, exposure: pd.DataFrame, rule: LineRule) -> pd.DataFrame:
    """The pandas version of :func:`derive_lines_of_therapy` (kept for items without a subject)."""
    x = items.copy()
    exposure = exposure[["USUBJID", "CMGRPID", "DRUG"]]
    subjects = None
    if x["USUBJID"].notna().all():  # integer subject codes in text order (issue 15): same sorts and groups
        code, subjects = codes_of(x["USUBJID"])
        x["USUBJID"] = code
        exposure = exposure.assign(USUBJID=pd.Index(subjects).get_indexer(exposure["USUBJID"]))
    x["_isSCT"] = x["ITEMTYPE"].eq("SCT")
    x["_nodate"] = x["STDT"].isna()
    x = x.sort_values(["USUBJID", "_nodate", "STDT", "_isSCT", "ITEMID"], kind="mergesort").reset_index(drop=True)
    g = x.groupby("USUBJID", sort=False)
    x["ITEMSEQ"] = g.cumcount() + 1
    first = x["ITEMSEQ"].eq(1)
    prev = g[["STDT", "ENDT", "REASON", "PHASE", "LNKGRP", "_isSCT", "NDRUGS"]].shift(1)
    gap = (x["STDT"] - prev["ENDT"]).dt.days
    prev_reason = prev["REASON"].astype("string")
    same_start = (x["STDT"] == prev["STDT"]).fillna(False)
    linked = (x["LNKGRP"].notna() & (x["LNKGRP"] == prev["LNKGRP"].astype("string"))).fillna(False)

    # c. continuation: i's drugs a subset of i-1's (vectorised by a merge on the shifted sequence)
    # (regimen ids and drugs as integer codes: only equality matters here)
    reg_ids, _ = pd.factorize(pd.concat([exposure["CMGRPID"], x["ITEMID"]], ignore_index=True))
    dr = pd.DataFrame({"USUBJID": exposure["USUBJID"].to_numpy(), "CMGRPID": reg_ids[:len(exposure)],
                       "DRUG": pd.factorize(exposure["DRUG"])[0]}).drop_duplicates()
    seq = pd.DataFrame({"USUBJID": x["USUBJID"].to_numpy(), "CMGRPID": reg_ids[len(exposure):],
                        "ITEMSEQ": x["ITEMSEQ"].to_numpy()}).loc[~x["_isSCT"].to_numpy()]
    dseq = dr.merge(seq, on=["USUBJID", "CMGRPID"], how="inner")[["USUBJID", "ITEMSEQ", "DRUG"]]
    prevd = dseq.assign(ITEMSEQ=dseq["ITEMSEQ"] + 1)
    match = dseq.merge(prevd, on=["USUBJID", "ITEMSEQ", "DRUG"], how="inner")
    nmatch = match.groupby(["USUBJID", "ITEMSEQ"]).size().rename("_nmatch").reset_index()
    x = x.merge(nmatch, on=["USUBJID", "ITEMSEQ"], how="left")
    x["_nmatch"] = x["_nmatch"].fillna(0).astype("int64")
    subset = (x["NDRUGS"] > 0) & (x["_nmatch"] == x["NDRUGS"])
    both_reg = ~x["_isSCT"] & ~prev["_isSCT"].astype("boolean").fillna(True)
    not_pd = ~prev_reason.isin(rule.progression_reasons).fillna(False)
    continuation = (both_reg & subset & not_pd & (gap <= rule.same_regimen_gap_days)).fillna(False)

    # d. inferred planned continuation
    cue = (prev_reason.isin(rule.planned_reasons).fillna(False)
           | x["PHASE"].isin(rule.continuation_phases).fillna(False)
           | (x["_isSCT"] & prev["PHASE"].astype("string").eq("INDUCTION").fillna(False)))
    not_unplanned = ~prev_reason.isin(rule.unplanned_reasons).fillna(False)
    planned = (cue & not_unplanned & (gap <= rule.planned_gap_days)).fillna(False)
    if not rule.infer_planned:
        planned = pd.Series(False, index=x.index)

    # transplants after an earlier transplant: only a planned tandem continues the line
    sct_date = x["STDT"].where(x["_isSCT"])
    sct_link = x["LNKGRP"].where(x["_isSCT"])
    last_sct = sct_date.groupby(x["USUBJID"]).shift(1)
    last_sct = last_sct.groupby(x["USUBJID"]).ffill()
    last_link = sct_link.groupby(x["USUBJID"]).shift(1).astype("string")
    last_link = last_link.groupby(x["USUBJID"]).ffill()
    n_prev_sct = x["_isSCT"].astype("int64").groupby(x["USUBJID"]).cumsum() - x["_isSCT"].astype("int64")
    later_sct = x["_isSCT"] & (n_prev_sct > 0)
    tandem = ((x["STDT"] - last_sct).dt.days <= rule.tandem_max_days).fillna(False)
    if rule.tandem_requires_link:
        tandem = tandem & (x["LNKGRP"] == last_link).fillna(False)

    rule_lbl = np.select(
        [first, later_sct & tandem, later_sct, same_start, linked, planned, continuation],
        ["NEW", "TANDEM", "NEW", "SAME START", "LINKED", "PLANNED", "CONTINUATION"],
        default="NEW",
    )
    x["LNRULE"] = pd.Series(rule_lbl, index=x.index, dtype="string")
    x["NEWLNFL"] = np.where(x["LNRULE"].eq("NEW"), "Y", "N")
    x["LINENUM"] = x["NEWLNFL"].eq("Y").astype("int64").groupby(x["USUBJID"]).cumsum()
    if subjects is not None:
        x["USUBJID"] = subjects.take(x["USUBJID"].to_numpy())
    return x.drop(columns=["_isSCT", "_nodate", "_nmatch"])


ADLOT_COLUMNS = [
    "USUBJID", "LINENUM", "LOTSTDT", "LOTENDT", "REGIMENS", "DRUGS", "NITEMS", "NSCT",
    "LOTRSDSC", "LNRULES",
]


def derive_adlot(lines: pd.DataFrame) -> pd.DataFrame:
    """ADLOT: one row per subject per line (start, end, regimens, drugs, transplants, reason ended).

    ``LOTENDT`` is the latest end of its items (NaT when any item's end is unknown); ``LOTRSDSC``
    the reason recorded on the item that ended last; ``REGIMENS`` the item ids in order
    (transplants as ``SCT<pr row>``); ``LNRULES`` why each item joined the line.
    """
    if len(lines) == 0:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in ADLOT_COLUMNS})
    import pyarrow.compute as pc

    x = lines
    n = len(x)
    scode, suni = codes_of(x["USUBJID"])
    line = x["LINENUM"].to_numpy(dtype=np.int64)
    seq = x["ITEMSEQ"].to_numpy(dtype=np.int64)
    en = datetimes_i8(x["ENDT"])
    # rows by subject, line, end (missing first) and item order: the line's last item ends it
    order = np.lexsort((seq, en, line, scode))
    S, L = scode[order], line[order]
    starts = group_starts(S, L)
    gid = group_ids(starts, n)
    ends = np.r_[starts[1:], n] - 1
    st = datetimes_i8(x["STDT"])[order]
    big = np.iinfo(np.int64).max
    stmin = np.minimum.reduceat(np.where(st == NAT, big, st), starts)
    ens = en[order]
    lot = pd.DataFrame({
        "USUBJID": pd.Series(suni.take(S[starts])),
        "LINENUM": L[starts],
        "LOTSTDT": np.where(stmin == big, NAT, stmin).view(x["STDT"].dtype),
        "LOTENDT": np.where(ens[starts] == NAT, NAT, ens[ends]).view(x["ENDT"].dtype),  # unknown if any is
    })
    # item order within the line (ITEMSEQ), for the joined item ids and rules
    o2 = order[np.lexsort((seq[order], gid))]
    for col, out in (("ITEMID", "REGIMENS"), ("LNRULE", "LNRULES")):
        vals = pa.array(x[col].astype("string").fillna(""), type=pa.large_string())
        lot[out] = join_runs_text(vals.take(o2), starts, ";")
    lot["NITEMS"] = np.diff(np.r_[starts, n]).astype("int64")
    lot["NSCT"] = np.add.reduceat(x["ITEMTYPE"].eq("SCT").to_numpy(dtype=bool)[order].astype(np.int64),
                                  starts).astype("int64")
    # distinct drugs of the line, alphabetical (the items' ';'-joined DRUGS split in Arrow)
    parts = pc.split_pattern(pa.array(x["DRUGS"].astype("string"), type=pa.string()), ";")
    flat = pc.list_flatten(parts)
    owner = np.empty(n, dtype=np.int64)
    owner[order] = gid
    dg = owner[np.asarray(pc.list_parent_indices(parts))]
    keep = ~np.asarray(pc.fill_null(pc.ends_with(flat, " sct"), True))
    dcode, duni = codes_of(pd.Series(pd.arrays.ArrowStringArray(flat.filter(pa.array(keep)))))
    dg = dg[keep]
    nd = len(duni) + 1
    pairs = np.sort(dg * nd + dcode)
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
    pg = pairs // nd
    joined = pd.Series(pd.NA, index=lot.index, dtype="string")
    if len(pairs):
        b = group_starts(pg)
        names = pa.array(np.asarray(duni, dtype=object), type=pa.large_string())
        joined.iloc[pg[b]] = join_runs_text(names.take(pairs % nd), b, ";").array
    lot["DRUGS"] = joined
    lot["LOTRSDSC"] = take_or_na(x["REASON"], order[ends]).astype("string")
    return lot[ADLOT_COLUMNS]


def compute_line_issues(lines: pd.DataFrame) -> list[InputIssue]:
    """Warnings for items whose dates make the line order uncertain (start after end)."""
    bad = lines.loc[(lines["ENDT"] < lines["STDT"]).fillna(False)]
    return [
        InputIssue(domain=str(d), variable="CMENDTC" if d == "cm" else "PRSTDTC",
                   problem=f"regimen {i} ends before it starts", severity="warning", usubjid=str(u),
                   row=int(str(r).split(",")[0]), value=str(e.date()),
                   hint="Check the regimen's start and end dates.", rule="lines of therapy")
        for u, i, d, r, e in zip(bad["USUBJID"], bad["ITEMID"], bad["SRCDOM"], bad["SRCROWS"], bad["ENDT"],
                                 strict=True)
    ]
