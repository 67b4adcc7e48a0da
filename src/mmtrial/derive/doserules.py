"""Protocol dose-rule check: the label's dose-modification table applied to labs and AEs.

Rule
----
XPOVIO (selinexor) prescribing information, Table 2 (dose modifications for adverse reactions,
Xd) and Table 1 (dose reduction steps): ../shared/reference/domain.md section 1.10. The table
is data (``data/dose_rules.toml``; other drugs' tables beside it, e.g. POMALYST's); each rule
carries a tag and its ``source``: C (verified in a retrieved copy of the label: the
thrombocytopenia, neutropenia, anaemia and hyponatraemia rows) or U (from memory of the label,
not applied unless the protocol's ``[dose_rules] include_unverified`` is true).

For each subject and each on-treatment lab record or treatment-emergent AE that meets a rule,
the rule gives the action due (maintain, reduce 1 level, interrupt then restart 1 level lower);
the dose actually given next (from the ex intervals, ``adexlvl``) is compared with it.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

Action = Literal["maintain", "reduce", "interrupt"]
SEVERITY = {"maintain": 0, "reduce": 1, "interrupt": 2}


@dataclass(frozen=True)
class DoseRule:
    """One row of the label's dose-modification table (see data/dose_rules.toml header)."""

    id: str
    reaction: str
    label_text: str
    tag: Literal["C", "U"]
    kind: Literal["lab", "ae"]
    action: Action
    levels: int = 1
    paramcd: str | None = None
    lower: float | None = None
    lower_inclusive: bool = True
    upper: float | None = None
    upper_inclusive: bool = False
    unit: str | None = None
    with_ae_terms: tuple[str, ...] = ()
    ae_terms: tuple[str, ...] = ()
    exclude_terms: tuple[str, ...] = ()
    exclude_soc: tuple[str, ...] = ()
    min_grade: int = 1
    max_grade: int = 5
    min_duration_days: int | None = None
    resume_paramcd: str | None = None
    resume_op: Literal[">=", ">"] | None = None
    resume_value: float | None = None
    source: str = ""  # where the row was verified (tag C) or why it is not (tag U)

    def __post_init__(self) -> None:
        if self.action not in SEVERITY:
            raise ValueError(f"DoseRule {self.id}: action allowed {sorted(SEVERITY)}; got {self.action!r}")
        if self.kind not in ("lab", "ae"):
            raise ValueError(f"DoseRule {self.id}: kind allowed 'lab', 'ae'; got {self.kind!r}")
        if self.tag not in ("C", "U"):
            raise ValueError(f"DoseRule {self.id}: tag allowed 'C', 'U'; got {self.tag!r}")
        if self.kind == "lab" and (self.paramcd is None or (self.lower is None and self.upper is None)):
            raise ValueError(f"DoseRule {self.id}: a lab rule needs paramcd and lower and/or upper")
        if self.kind == "ae" and not self.ae_terms:
            raise ValueError(f"DoseRule {self.id}: an ae rule needs ae_terms")
        if self.resume_op not in (None, ">=", ">"):
            raise ValueError(f"DoseRule {self.id}: resume_op allowed '>=', '>'; got {self.resume_op!r}")
        if not 1 <= self.min_grade <= self.max_grade <= 5:
            raise ValueError(f"DoseRule {self.id}: need 1 <= min_grade <= max_grade <= 5")

    def lab_hit(self, aval: np.ndarray) -> np.ndarray:
        """Whether each value meets the rule's lab condition (NaN never does)."""
        v = np.asarray(aval, dtype=float)
        hit = ~np.isnan(v)
        with np.errstate(invalid="ignore"):
            if self.lower is not None:
                hit &= (v >= self.lower) if self.lower_inclusive else (v > self.lower)
            if self.upper is not None:
                hit &= (v <= self.upper) if self.upper_inclusive else (v < self.upper)
        return hit

    def condition_text(self) -> str:
        if self.kind == "ae":
            terms = "any PT" if self.ae_terms == ("*",) else "/".join(t.title() for t in self.ae_terms)
            g = f"grade {self.min_grade}" if self.min_grade == self.max_grade else (
                f"grade {self.min_grade}-{self.max_grade}")
            dur = f" > {self.min_duration_days} days" if self.min_duration_days else ""
            return f"{terms} {g}{dur}"
        parts = []
        if self.lower is not None:
            parts.append(f"{'>=' if self.lower_inclusive else '>'} {self.lower:g}")
        if self.upper is not None:
            parts.append(f"{'<=' if self.upper_inclusive else '<'} {self.upper:g}")
        bleed = " with concurrent bleeding" if self.with_ae_terms else ""
        return f"{self.paramcd} {' and '.join(parts)} {self.unit or ''}{bleed}".strip()


@dataclass(frozen=True)
class DoseRuleSet:
    """The label's table as loaded from TOML."""

    version: str
    source: str
    rules: tuple[DoseRule, ...]

    @classmethod
    def load(cls, path: str | Path | None = None) -> DoseRuleSet:
        if path is None:
            text = resources.files("mmtrial.data").joinpath("dose_rules.toml").read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        data = tomllib.loads(text)
        rules = []
        tuple_fields = ("with_ae_terms", "ae_terms", "exclude_terms", "exclude_soc")
        for r in data["rule"]:
            kw = dict(r)
            for f in tuple_fields:
                if f in kw:
                    kw[f] = tuple(str(x).upper() for x in kw[f])
            rules.append(DoseRule(**kw))
        ids = [r.id for r in rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"dose rules: duplicate ids {sorted({i for i in ids if ids.count(i) > 1})}")
        return cls(version=data.get("version", ""), source=data.get("source", ""), rules=tuple(rules))


@dataclass(frozen=True)
class DoseRuleOptions:
    """How rules are applied (protocol section ``[dose_rules]``).

    Options
    -------
    action_window_days : the dose in force this many days after the event is the action taken
        (default 7: the weekly lab schedule; a change within the window counts as the response).
    trigger : ``"onset"`` (default): a lab rule fires when its condition starts (met now, not at
        the subject's previous value of the test); ``"every"``: at every record meeting it.
    check_recovery : flag restarts made while the last value of the rule's resume test before
        the restart still fails the recovery condition (default True).
    """

    action_window_days: int = 7
    trigger: Literal["onset", "every"] = "onset"
    check_recovery: bool = True

    def __post_init__(self) -> None:
        if self.action_window_days < 0:
            raise ValueError(f"DoseRuleOptions.action_window_days: allowed >= 0; got {self.action_window_days}")
        if self.trigger not in ("onset", "every"):
            raise ValueError(f"DoseRuleOptions.trigger: allowed 'onset', 'every'; got {self.trigger!r}")


EVENT_COLUMNS = ["USUBJID", "ADT", "RULEID", "REACTION", "TAG", "REQACT", "LEVELS", "SRCDOM",
                 "SRCROW", "FINDING"]


def derive_rule_events(
    adlb: pd.DataFrame,
    adae: pd.DataFrame,
    rules: DoseRuleSet,
    *,
    options: DoseRuleOptions = DoseRuleOptions(),
) -> pd.DataFrame:
    """Every on-treatment lab record and TEAE that meets a rule, with the action it calls for.

    Algorithm
    ---------
    1. Lab rules: records of the rule's test sorted by subject and date; hit = value within the
       bounds (and, with ``with_ae_terms``, an AE of those terms ongoing that day); with trigger
       ``onset`` only hits whose previous record (baseline included) was not a hit. Only records
       after the first dose (ADT > TRTSDT) become events.
    2. AE rules: treatment-emergent AEs whose PT and grade fit (and duration when the rule says),
       dated at onset.
    """
    frames: list[pd.DataFrame] = []
    need = sorted({r.paramcd for r in rules.rules if r.kind == "lab"})
    keep = (adlb["PARAMCD"].isin(need) & adlb["ADT"].notna() & adlb["AVAL"].notna()).to_numpy(dtype=bool)
    cols = ["USUBJID", "PARAMCD", "ADT", "AVAL", "ROWNUM", "TRTSDT"]
    # the records of the rules' tests sorted by test, subject, date, source row: the sort keys are
    # read for those records, then the records copied once, in order (issue 15: the selected
    # records were copied twice and their tests made one Python text object each)
    pos = np.flatnonzero(keep)
    scode, _ = pd.factorize(adlb["USUBJID"].take(pos))
    pcode, puniq = pd.factorize(adlb["PARAMCD"].take(pos))
    order = np.lexsort((adlb["ROWNUM"].to_numpy()[pos],
                        adlb["ADT"].to_numpy(dtype="datetime64[ns]")[pos].astype("int64"), scode, pcode))
    lb = adlb[cols].take(pos[order]).reset_index(drop=True)
    del pos
    lb_pc = pcode[order]
    bounds = {}
    if len(lb):
        chg = np.flatnonzero(np.r_[True, lb_pc[1:] != lb_pc[:-1], True])
        bounds = {puniq[lb_pc[a]]: (a, b) for a, b in itertools.pairwise(chg)}
    lb_s = scode[order]
    te = adae.loc[adae["TRTEMFL"] == "Y"] if len(adae) else adae
    for r in rules.rules:
        if r.kind == "lab":
            if r.paramcd not in bounds:
                continue
            a0, a1 = bounds[r.paramcd]
            sub = lb.iloc[a0:a1]
            hit = r.lab_hit(sub["AVAL"].to_numpy())
            if r.with_ae_terms:
                hit = hit & _ae_ongoing(sub, te, r.with_ae_terms)
            subj = lb_s[a0:a1]
            same = np.zeros(len(sub), dtype=bool)
            same[1:] = subj[1:] == subj[:-1]
            prev = np.zeros(len(sub), dtype=bool)
            prev[1:] = hit[:-1]
            fire = hit & ~(same & prev) if options.trigger == "onset" else hit
            post = (sub["ADT"] > sub["TRTSDT"]).to_numpy(dtype=bool)
            ev = sub.loc[fire & post]
            if ev.empty:
                continue
            frames.append(pd.DataFrame({
                "USUBJID": ev["USUBJID"].to_numpy(), "ADT": ev["ADT"].to_numpy(),
                "RULEID": r.id, "REACTION": r.reaction, "TAG": r.tag, "REQACT": r.action,
                "LEVELS": r.levels, "SRCDOM": "LB", "SRCROW": ev["ROWNUM"].to_numpy(),
                "FINDING": (ev["PARAMCD"].astype(str) + " " + _num_str(ev["AVAL"].to_numpy())).to_numpy(),
            }))
        else:
            if te is None or len(te) == 0:
                continue
            dec = te["AEDECOD"].astype("string").str.upper()
            m = pd.Series(True, index=te.index) if r.ae_terms == ("*",) else dec.isin(list(r.ae_terms))
            if r.exclude_terms:
                m &= ~dec.isin(list(r.exclude_terms))
            if r.exclude_soc:
                m &= ~te["AEBODSYS"].astype("string").str.upper().isin(list(r.exclude_soc)).fillna(False)
            g = te["ATOXGR"]
            m &= (g >= r.min_grade) & (g <= r.max_grade)
            if r.min_duration_days is not None:
                dur = (te["AENDT"] - te["ASTDT"]).dt.days + 1
                m &= dur.isna() | (dur > r.min_duration_days)
            m = m.fillna(False).to_numpy(dtype=bool)
            ev = te.loc[m & te["ASTDT"].notna().to_numpy()]
            frames.append(pd.DataFrame({
                "USUBJID": ev["USUBJID"].to_numpy(), "ADT": ev["ASTDT"].to_numpy(),
                "RULEID": r.id, "REACTION": r.reaction, "TAG": r.tag, "REQACT": r.action,
                "LEVELS": r.levels, "SRCDOM": "AE", "SRCROW": ev["ROWNUM"].to_numpy(),
                "FINDING": (ev["AEDECOD"].astype(str) + " grade "
                            + _num_str(ev["ATOXGR"].to_numpy(dtype=float), missing="?")).to_numpy(),
            }))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS}).assign(
            ADT=pd.Series(dtype="datetime64[ns]"))
    out = pd.concat(frames, ignore_index=True)
    out["ADT"] = pd.to_datetime(out["ADT"])
    return out.sort_values(["USUBJID", "ADT", "RULEID"], kind="stable").reset_index(drop=True)


def _ae_ongoing(lbsub: pd.DataFrame, ae: pd.DataFrame, terms: tuple[str, ...]) -> np.ndarray:
    """For each lab row: is an AE with one of ``terms`` ongoing on its date (onset <= date <= end)?"""
    out = np.zeros(len(lbsub), dtype=bool)
    if ae is None or len(ae) == 0:
        return out
    a = ae.loc[ae["AEDECOD"].astype("string").str.upper().isin(list(terms)), ["USUBJID", "ASTDT", "AENDT"]]
    if a.empty:
        return out
    left = pd.DataFrame({"USUBJID": lbsub["USUBJID"].to_numpy(), "ADT": lbsub["ADT"].to_numpy(),
                         "_I": np.arange(len(lbsub))})
    left = left.loc[left["USUBJID"].isin(a["USUBJID"].unique())]
    j = left.merge(a, on="USUBJID")
    ok = (j["ASTDT"] <= j["ADT"]) & (j["AENDT"].isna() | (j["ADT"] <= j["AENDT"]))
    out[j.loc[ok, "_I"].to_numpy(dtype=np.int64)] = True
    return out


CHECK_COLUMNS = [
    *EVENT_COLUMNS,
    "GOVFL", "CURLVL", "CURWK", "INTSEQ", "ACTACT", "NEWLVL", "NEWWK", "NEWDT", "EXPLVL",
    "DEVFL", "DEVTYPE", "DEVTEXT",
]


def derive_rule_checks(
    events: pd.DataFrame,
    adexlvl: pd.DataFrame,
    adlb: pd.DataFrame,
    rules: DoseRuleSet,
    *,
    study_drug: str,
    ladder_levels: list[int],
    options: DoseRuleOptions = DoseRuleOptions(),
) -> pd.DataFrame:
    """Compare the action each rule calls for with the dose actually given.

    Rule
    ----
    Label Table 2: "reduce by 1 dose level"; "interrupt ... restart at 1 dose level lower";
    Table 1: a reduction below the last level means permanent discontinuation.

    Algorithm
    ---------
    1. Per subject and date keep the most severe action due (GOVFL = "Y"; interrupt > reduce >
       maintain); events before the first or after the last study-drug interval are not checked.
    2. The interval in force on the event date (as-of join on interval start); the actual action:
       MAINTAINED when that interval's dose period (PERENDT) still runs ``action_window_days``
       after the event (or the
       next interval follows without a gap at the same or a higher weekly dose), REDUCED (next
       interval contiguous and lower), INTERRUPTED (gap before the next interval), DISCONTINUED
       (no next interval).
    3. Expected level = current level - rule levels (DISCONTINUE below the ladder).
       Deviations: reduce due but dose kept (DOSE KEPT); interrupt due but dosing continued
       (NOT INTERRUPTED); interrupt due but reduced without a gap (NO INTERRUPTION); restart or
       new dose above the expected level (WRONG LEVEL); treatment continued when discontinuation
       was due (NOT DISCONTINUED); restart while the last value of the rule's resume test still
       failed the recovery condition (BEFORE RECOVERY).
    """
    rule_by_id = {r.id: r for r in rules.rules}
    iv = adexlvl.loc[adexlvl["EXTRT"] == study_drug.upper(),
                     ["USUBJID", "ASTDT", "PERENDT", "DOSELVL", "WKDOSE", "INTSEQ", "GAPDAYS"]].copy()
    iv["USUBJID"] = iv["USUBJID"].astype(str)
    iv = iv.sort_values(["USUBJID", "ASTDT"], kind="stable").reset_index(drop=True)
    subj = iv["USUBJID"].to_numpy()
    nxt_same = np.zeros(len(iv), dtype=bool)
    nxt_same[:-1] = subj[:-1] == subj[1:]
    for c in ("ASTDT", "DOSELVL", "WKDOSE", "GAPDAYS"):
        iv["NXT_" + c] = iv[c].shift(-1).where(nxt_same)
    iv["NXT_ASTDT"] = pd.to_datetime(iv["NXT_ASTDT"])
    last_end = iv.groupby("USUBJID")["PERENDT"].max().rename("_LASTEND")

    ev = events.copy()
    if ev.empty:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    ev["USUBJID"] = ev["USUBJID"].astype(str)
    ev["_SEV"] = ev["REQACT"].map(SEVERITY)
    ev = ev.sort_values(["USUBJID", "ADT", "_SEV", "RULEID"], ascending=[True, True, False, True],
                        kind="stable").reset_index(drop=True)
    k = ev["USUBJID"].astype(str) + "\x00" + ev["ADT"].astype(str)
    ev["GOVFL"] = np.where(~k.duplicated(), "Y", "")
    ev = ev.sort_values("ADT", kind="stable")
    ivs = iv.sort_values("ASTDT", kind="stable")
    ev["ADT"] = ev["ADT"].astype("datetime64[ns]")
    ivs = ivs.assign(ASTDT=ivs["ASTDT"].astype("datetime64[ns]"))
    j = pd.merge_asof(ev, ivs, left_on="ADT", right_on="ASTDT", by="USUBJID", direction="backward")
    j = j.merge(last_end, left_on="USUBJID", right_index=True, how="left")
    j = j.sort_values(["USUBJID", "ADT", "_SEV"], ascending=[True, True, False], kind="stable")
    on_trt = j["ASTDT"].notna() & (j["ADT"] <= j["_LASTEND"])
    j = j.loc[on_trt].reset_index(drop=True)

    adt = j["ADT"].to_numpy(dtype="datetime64[D]")
    cur_end = j["PERENDT"].to_numpy(dtype="datetime64[D]")
    in_iv = adt <= cur_end
    win = np.timedelta64(options.action_window_days, "D")
    has_next = j["NXT_ASTDT"].notna().to_numpy()
    gap_next = j["NXT_GAPDAYS"].to_numpy(dtype=float)
    cur_wk = j["WKDOSE"].to_numpy(dtype=float)
    nxt_wk = j["NXT_WKDOSE"].to_numpy(dtype=float)
    runs_on = in_iv & (cur_end >= adt + win)
    interrupted = has_next & ((gap_next > 0) | ~in_iv)
    actual = np.select(
        [runs_on, ~has_next, interrupted, nxt_wk < cur_wk],
        ["MAINTAINED", "DISCONTINUED", "INTERRUPTED", "REDUCED"],
        default="MAINTAINED",
    )
    j["ACTACT"] = actual
    j["CURLVL"] = j["DOSELVL"]
    j["CURWK"] = cur_wk
    changed = np.isin(actual, ["REDUCED", "INTERRUPTED"])
    j["NEWLVL"] = np.where(changed, j["NXT_DOSELVL"].to_numpy(dtype=float), np.nan)
    j["NEWWK"] = np.where(changed, nxt_wk, np.nan)
    j["NEWDT"] = j["NXT_ASTDT"].where(changed)
    lvl_min = min(ladder_levels) if ladder_levels else 0
    levels = j["LEVELS"].to_numpy(dtype=float)
    cur_lvl = j["CURLVL"].to_numpy(dtype=float)
    exp_lvl = cur_lvl - levels
    req = j["REQACT"].to_numpy(dtype=object)
    must_stop = np.isin(req, ["reduce", "interrupt"]) & (exp_lvl < lvl_min)
    j["EXPLVL"] = np.where(must_stop, np.nan, exp_lvl)
    new_lvl = j["NEWLVL"].to_numpy(dtype=float)
    new_wk = j["NEWWK"].to_numpy(dtype=float)
    # new dose at or below expected: by level when both are on the ladder, else by weekly dose
    too_high = np.where(
        ~np.isnan(exp_lvl) & ~np.isnan(new_lvl), new_lvl > exp_lvl, ~(new_wk < cur_wk)
    )
    gov = (j["GOVFL"] == "Y").to_numpy()
    dev = np.full(len(j), "", dtype=object)
    act = actual
    c_stop = gov & must_stop & (act != "DISCONTINUED")
    c_keep = gov & ~must_stop & (req == "reduce") & (act == "MAINTAINED")
    c_noint = gov & ~must_stop & (req == "interrupt") & (act == "MAINTAINED")
    c_noint2 = gov & ~must_stop & (req == "interrupt") & (act == "REDUCED")
    c_lvl = gov & ~must_stop & np.isin(req, ["reduce", "interrupt"]) & changed & too_high
    dev = np.where(c_lvl, "WRONG LEVEL", dev)
    dev = np.where(c_noint2 & ~c_lvl, "NO INTERRUPTION", dev)
    dev = np.where(c_noint, "NOT INTERRUPTED", dev)
    dev = np.where(c_keep, "DOSE KEPT", dev)
    dev = np.where(c_stop, "NOT DISCONTINUED", dev)
    # restart before recovery
    if options.check_recovery:
        resume = j["RULEID"].map({i: r.resume_paramcd for i, r in rule_by_id.items()})
        cand = gov & (act == "INTERRUPTED") & resume.notna().to_numpy() & (dev == "")
        if cand.any():
            before = _before_recovery(j.loc[cand], adlb, rule_by_id)
            idx = np.flatnonzero(cand)
            dev[idx[before]] = "BEFORE RECOVERY"
    j["DEVTYPE"] = dev
    j["DEVFL"] = np.where(dev != "", "Y", "")
    text = np.full(len(j), "", dtype=object)
    has = dev != ""
    if has.any():
        text[has] = _deviation_text(j.loc[has], dev[has])
    j["DEVTEXT"] = text
    return j[[*CHECK_COLUMNS, "PERENDT"]].rename(columns={"PERENDT": "CURENDT"})


def _before_recovery(rows: pd.DataFrame, adlb: pd.DataFrame, rule_by_id: dict[str, DoseRule]) -> np.ndarray:
    """For interrupted events: did the last resume-test value after the event and on or before
    the restart fail the recovery condition? (No value in that span: not flagged.)"""
    r = rows.reset_index(drop=True).assign(
        _P=rows["RULEID"].map({i: x.resume_paramcd for i, x in rule_by_id.items()}).to_numpy(),
        _OP=rows["RULEID"].map({i: x.resume_op for i, x in rule_by_id.items()}).to_numpy(),
        _V=rows["RULEID"].map({i: x.resume_value for i, x in rule_by_id.items()}).to_numpy(dtype=float),
        _I=np.arange(len(rows)),
    )
    left = r.assign(NEWDT=pd.to_datetime(r["NEWDT"]).astype("datetime64[ns]")).sort_values("NEWDT")
    left = left.loc[left["NEWDT"].notna()].astype({"USUBJID": str, "_P": str})
    # the lab records with a date and a value, in the order sorting them by date gives (ties as
    # that sort leaves them), then only those of the events' subjects and resume tests: the only
    # ones the merge (by subject and test) can match, in the same order. No copy of every ADLB
    # record (issue 15: 2.6 M records at 20,000 subjects for a few hundred events).
    usable = np.flatnonzero((adlb["ADT"].notna() & adlb["AVAL"].notna()).to_numpy(dtype=bool))
    labdt = pd.Series(adlb["ADT"].to_numpy(dtype="datetime64[ns]")[usable])
    order = usable[labdt.sort_values().index.to_numpy()]
    del labdt
    match = (adlb["USUBJID"].astype(str).isin(set(left["USUBJID"]))
             & adlb["PARAMCD"].astype(str).isin(set(left["_P"]))).to_numpy(dtype=bool)
    order = order[match[order]]
    lab = adlb[["USUBJID", "PARAMCD", "ADT", "AVAL"]].take(order)
    lab = lab.rename(columns={"PARAMCD": "_P", "ADT": "LABDT"}).astype(
        {"LABDT": "datetime64[ns]", "USUBJID": str, "_P": str})
    j = pd.merge_asof(left, lab, left_on="NEWDT", right_on="LABDT",  # lab: sorted by date above
                      by=["USUBJID", "_P"], direction="backward")
    ok_span = j["LABDT"].notna() & (j["LABDT"] > j["ADT"])
    val = j["AVAL"].to_numpy(dtype=float)
    thr = j["_V"].to_numpy(dtype=float)
    recovered = np.where(j["_OP"].to_numpy() == ">", val > thr, val >= thr)
    fail = ok_span.to_numpy() & ~recovered
    out = np.zeros(len(r), dtype=bool)
    out[j["_I"].to_numpy(dtype=np.int64)[fail]] = True
    return out


def _num_str(x: np.ndarray, missing: str = "") -> np.ndarray:
    """Vectorised compact number strings (``75``, ``74.9``); ``missing`` for NaN."""
    v = np.asarray(x, dtype=float)
    r = np.round(np.where(np.isnan(v), 0.0, v), 4)
    whole = r == np.floor(r)
    s = np.where(whole, r.astype(np.int64).astype(str), r.astype(str)).astype(object)
    s[np.isnan(v)] = missing
    return s


def _deviation_text(j: pd.DataFrame, dev: np.ndarray) -> np.ndarray:
    cur = _num_str(j["CURLVL"].to_numpy(dtype=float), "off-ladder")
    e = j["EXPLVL"].to_numpy(dtype=float)
    exp = np.where(np.isnan(e), "discontinue", "<= " + _num_str(e).astype(str)).astype(object)
    new = _num_str(j["NEWLVL"].to_numpy(dtype=float), "off-ladder")
    w = j["NEWWK"].to_numpy(dtype=float)
    wk = np.where(np.isnan(w), "", " (" + _num_str(w).astype(str) + " mg/week)").astype(object)
    texts = {
        "DOSE KEPT": "dose kept at level " + cur + " when a reduction was due",
        "NOT INTERRUPTED": "dosing continued at level " + cur + " when an interruption was due",
        "NO INTERRUPTION": "dose reduced without the interruption the rule calls for",
        "WRONG LEVEL": "restart/new dose at level " + new + wk + "; expected level " + exp,
        "NOT DISCONTINUED": "treatment continued when permanent discontinuation was due (below the last level)",
        "BEFORE RECOVERY": "restarted before the recovery the rule requires",
    }
    out = np.full(len(j), "", dtype=object)
    for k, v in texts.items():
        m = dev == k
        out[m] = v[m] if isinstance(v, np.ndarray) else v
    return out
