"""ADEX: exposure, dose intensity and dose modifications from ex, against the protocol's regimen.

Input convention (docs/data-contract.md, ex): a row is either a **run** of administrations,
EXSTDTC..EXENDTC inclusive with EXDOSFRQ ``QD`` (every day), ``BIW`` (days 1 and 3 of each week
counted from EXSTDT), ``QW`` (day 1 of each week) or another weekly pattern of ``[exposure]
frequencies``, or a **dose day**: EXDOSFRQ ``ONCE`` (or empty on a one-day row). EXDOSE is mg
per administration. Both forms give the same administration days and so the same results.

Rule
----
The regimen (``Regimen.schedule``) gives, per drug and cycle, the planned administrations, the
planned dose and the cycle length. Cycles are those ex names (EXCYCLE, or VISIT "CYCLE n" /
"CnDm") or, without them, inferred from dosing: cycle 1 starts at the subject's first dose; a new
cycle starts at the first dose (of any drug) on or after the planned length of the current cycle
since its start; a later start is a delay of that cycle. Each administration covers the days up
to the next planned administration of its drug (its "dose period"): the next planned day of the
cycle, or the end of the cycle after its last planned day, so the planned rest belongs to the
last dose; a weekly-pattern run covers at least up to the next day of its own pattern (a
reduced once-weekly level covers 7 days). Days not covered between two administrations of a drug
are an interruption, except the part that delays a cycle start (a delay, counted separately,
unless ``delay_is_interruption``) and the days of a cycle before the drug's first planned day.
Dose intensity = cumulative dose / duration (FDA STF IG 2025 section 2.1.6 suggests DI and RDI
for oncology exposure tables); RDI = actual / planned dose intensity, the planned intensity being
the planned dose of the cycles the subject took the drug in, over their planned length. Dose
levels: the protocol's ladder (XPOVIO label Table 1 for STORM's Xd: 160 -> 100 -> 80 -> 60
mg/week; ../shared/reference/domain.md 1.10, tag C); a reduction is a dose lower than the
previous one relative to the plan in force (so a planned step-up or a change of phase is none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmtrial._frames import lookup
from mmtrial.derive._groups import (
    codes_of,
    datetimes_i8,
    equality_keys,
    row_lookup,
    same_as_prev,
    shared_codes,
)
from mmtrial.derive.bodysize import derive_body_size, lookup_body_size
from mmtrial.protocol.model import DoseLadder, Regimen
from mmtrial.sdtm.issues import InputIssue, StudyInputError

DEFAULT_FREQUENCIES: Mapping[str, tuple[int, ...]] = {
    "BIW": (1, 3),
    "QW": (1,),
    "QD": (1, 2, 3, 4, 5, 6, 7),
}

#: EXDOSFRQ values whose administrations follow the protocol's planned days (their dose period
#: comes from the schedule, so a run of daily doses before a planned rest is not interrupted)
SCHEDULE_CODES = ("QD", "ONCE")


@dataclass(frozen=True)
class ExposureOptions:
    """Exposure derivation options (protocol section ``[exposure]``).

    Options
    -------
    frequencies : EXDOSFRQ -> dosing days of each week, counted from the row's first day
        (day 1 = EXSTDT). Default BIW = days 1 and 3, QW = day 1; QD (every day) and ONCE (one
        dose on EXSTDT) are always known.
    duration_end : ``"dose_period"`` (default): treatment ends on the last day covered by the
        last dose (the day before the next planned dose: for a drug on days 1-14 of 21 the end of
        the cycle; + 6 days for QW; + 4 after a day-3 dose, + 1 after a day-1 dose for BIW), so the
        result is the same whether EXENDT is recorded as the last dose day or the end of the dosing
        week; ``"interval_end"``: the last row's EXENDT; ``"last_dose"``: the last dosing day.
    min_interruption_days : at least this many uncovered days in dosing windows make an
        interruption (default 1).
    cycle_length_days : kept for compatibility; cycle lengths come from the regimen.
    cycle_source : ``"auto"`` (default): ex EXCYCLE, else VISIT ("CYCLE 3 DAY 1", "C3D1") when
        every dosing row has one, else inferred from dosing; ``"ex"``: EXCYCLE/VISIT required;
        ``"infer"``: always inferred.
    delay_is_interruption : count the days that delay a cycle start as interruption days too
        (default False: a delay is reported separately).
    min_delay_days : a cycle starting at least this many days late is delayed (default 1).
    dose_change_tolerance : a dose differing from the previous one by more than this fraction
        (relative to the plan in force) is a reduction or an escalation (default 0.10, so a
        body-size dose recomputed for a small weight change is no modification).
    planned_last_cycle : how much of the drug's last cycle the planned dose covers.
        ``"treated_days"`` (default): the planned doses of its days up to the end of treatment,
        over those days (a subject who stops on day 7 of a 28-day cycle is compared with the doses
        planned for days 1-7; full adherence is RDI 100% wherever treatment stops);
        ``"whole_cycle"``: the whole cycle, averaged over its planned length (the first release).
    """

    frequencies: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_FREQUENCIES))
    duration_end: Literal["dose_period", "interval_end", "last_dose"] = "dose_period"
    min_interruption_days: int = 1
    cycle_length_days: int = 28
    cycle_source: Literal["auto", "ex", "infer"] = "auto"
    delay_is_interruption: bool = False
    min_delay_days: int = 1
    dose_change_tolerance: float = 0.10
    planned_last_cycle: Literal["treated_days", "whole_cycle"] = "treated_days"

    def __post_init__(self) -> None:
        if self.duration_end not in ("dose_period", "interval_end", "last_dose"):
            raise ValueError(
                "ExposureOptions.duration_end: allowed 'dose_period', 'interval_end', 'last_dose'; "
                f"got {self.duration_end!r}"
            )
        if self.planned_last_cycle not in ("treated_days", "whole_cycle"):
            raise ValueError("ExposureOptions.planned_last_cycle: allowed 'treated_days', 'whole_cycle'; "
                             f"got {self.planned_last_cycle!r}")
        if self.cycle_source not in ("auto", "ex", "infer"):
            raise ValueError(f"ExposureOptions.cycle_source: allowed 'auto', 'ex', 'infer'; got {self.cycle_source!r}")
        if self.min_interruption_days < 1:
            raise ValueError(
                f"ExposureOptions.min_interruption_days: allowed >= 1; got {self.min_interruption_days}"
            )
        if self.min_delay_days < 1:
            raise ValueError(f"ExposureOptions.min_delay_days: allowed >= 1; got {self.min_delay_days}")
        if not 0 <= self.dose_change_tolerance < 1:
            raise ValueError(
                f"ExposureOptions.dose_change_tolerance: allowed [0, 1); got {self.dose_change_tolerance}")
        if self.cycle_length_days < 1:
            raise ValueError(f"ExposureOptions.cycle_length_days: allowed >= 1; got {self.cycle_length_days}")
        for k, days in self.frequencies.items():
            if not days or any(d < 1 or d > 7 for d in days) or sorted(set(days)) != list(days):
                raise ValueError(
                    f"ExposureOptions.frequencies[{k!r}]: allowed ascending distinct days 1-7; got {days}"
                )

    def weekly_codes(self) -> dict[str, tuple[int, ...]]:
        """The weekly-pattern EXDOSFRQ codes (QD and ONCE excluded: they follow the schedule)."""
        return {k.upper(): tuple(v) for k, v in self.frequencies.items() if k.upper() not in SCHEDULE_CODES}

    def known_codes(self) -> list[str]:
        return sorted({*self.weekly_codes(), *SCHEDULE_CODES})
def compute_doses_in_interval(ndays: np.ndarray, days_of_week: tuple[int, ...]) -> np.ndarray:
    """Number of dosing days in intervals of ``ndays`` days starting on day 1 of a dosing week.

    Examples
    --------
    >>> compute_doses_in_interval(np.array([1, 2, 3, 7, 8, 10, 14]), (1, 3))
    array([1, 1, 2, 2, 3, 4, 4])
    """
    nd = np.asarray(ndays, dtype=np.int64)
    full, rem = np.divmod(nd, 7)
    out = full * len(days_of_week)
    for d in days_of_week:
        out += (rem >= d).astype(np.int64)
    return out


def compute_last_dose_offset(ndays: np.ndarray, days_of_week: tuple[int, ...]) -> np.ndarray:
    """Days from an interval's first day to its last dosing day (0 = the first day).

    Examples
    --------
    >>> compute_last_dose_offset(np.array([1, 2, 3, 7, 8]), (1, 3))
    array([0, 0, 2, 2, 7])
    """
    nd = np.asarray(ndays, dtype=np.int64)
    full, rem = np.divmod(nd, 7)
    last_in_rem = np.full(nd.shape, -1, dtype=np.int64)
    for d in days_of_week:
        last_in_rem = np.where(rem >= d, d - 1, last_in_rem)
    return np.where(last_in_rem >= 0, full * 7 + last_in_rem, (full - 1) * 7 + days_of_week[-1] - 1)


def compute_dose_cover_days(last_offset: np.ndarray, days_of_week: tuple[int, ...]) -> np.ndarray:
    """Days covered by the last dose of an interval: from it to the day before the next scheduled
    dose of the weekly pattern (``last_offset`` from :func:`compute_last_dose_offset`).

    Examples
    --------
    >>> compute_dose_cover_days(np.array([0, 2, 7, 9]), (1, 3))
    array([2, 5, 2, 5])
    >>> compute_dose_cover_days(np.array([0, 21]), (1,))
    array([7, 7])
    """
    dow = np.asarray(last_offset, dtype=np.int64) % 7 + 1
    nxt = [*days_of_week[1:], days_of_week[0] + 7]
    out = np.full(dow.shape, 7, dtype=np.int64)
    for d, n in zip(days_of_week, nxt, strict=True):
        out = np.where(dow == d, n - d, out)
    return out


def check_ex(ex: pd.DataFrame, options: ExposureOptions) -> list[InputIssue]:
    """Problems in ex that exposure cannot work around; each names subject, row and value."""
    issues: list[InputIssue] = []
    for col in ("USUBJID", "EXTRT", "EXDOSE", "EXSTDT"):
        if col not in ex:
            issues.append(InputIssue(domain="ex", variable=col, problem="required variable missing"))
    if issues:
        return issues
    rown = ex["ROWNUM"].to_numpy() if "ROWNUM" in ex else np.arange(1, len(ex) + 1)
    subj = ex["USUBJID"].to_numpy()

    def add(mask: np.ndarray, var: str, values, problem: str, hint: str = "") -> None:
        for i in np.flatnonzero(mask)[:200]:
            v = values[i]
            issues.append(InputIssue(domain="ex", variable=var, row=int(rown[i]), usubjid=str(subj[i]),
                                     value=None if pd.isna(v) else str(v), problem=problem, hint=hint))

    st = ex["EXSTDT"].to_numpy(dtype="datetime64[D]")
    add(np.isnat(st), "EXSTDTC", ex.get("EXSTDTC", ex["EXSTDT"]).to_numpy(), "start date missing or invalid")
    dose = pd.to_numeric(ex["EXDOSE"], errors="coerce").to_numpy(dtype=float)
    add(np.isnan(dose) | (dose < 0), "EXDOSE", ex["EXDOSE"].to_numpy(), "dose missing or negative")
    en = (ex["EXENDT"].to_numpy(dtype="datetime64[D]") if "EXENDT" in ex
          else np.full(len(ex), np.datetime64("NaT"), dtype="datetime64[D]"))
    add(~np.isnat(en) & ~np.isnat(st) & (en < st), "EXENDTC",
        ex.get("EXENDTC", ex.get("EXENDT", pd.Series([None] * len(ex)))).to_numpy(), "end date before start date")
    one_day = np.isnat(en) | (en == st)
    if "EXDOSFRQ" in ex:
        frq = ex["EXDOSFRQ"].astype("string").str.upper().str.strip()
        missing = frq.isna().to_numpy(dtype=bool) | (frq == "").fillna(False).to_numpy(dtype=bool)
        unknown = ~missing & ~frq.isin(options.known_codes()).fillna(False).to_numpy(dtype=bool)
        add(unknown & (dose > 0), "EXDOSFRQ", ex["EXDOSFRQ"].to_numpy(), "dosing frequency not known",
            f"Use one of {options.known_codes()} or add it to [exposure] frequencies.")
        add(missing & ~one_day & (dose > 0), "EXDOSFRQ", ex["EXDOSFRQ"].to_numpy(),
            "dosing frequency missing on a row of several days",
            "Give EXDOSFRQ (QD, BIW, QW, ...) or one row per dose day.")
    else:
        add(~one_day & (dose > 0), "EXDOSFRQ", np.full(len(ex), None),
            "dosing frequency missing on a row of several days",
            "Give EXDOSFRQ (QD, BIW, QW, ...) or one row per dose day.")
    return issues


def _ex_rows(ex: pd.DataFrame, options: ExposureOptions, end_fallback: pd.DataFrame | None):
    """ex as typed rows (sorted), with missing ends filled and their warnings."""
    issues = check_ex(ex, options)
    if any(i.severity == "error" for i in issues):
        raise StudyInputError(issues)
    n = len(ex)
    frq = (ex["EXDOSFRQ"].astype("string").str.upper().str.strip() if "EXDOSFRQ" in ex
           else pd.Series(pd.NA, index=ex.index, dtype="string"))
    frq = frq.where(frq.notna() & (frq != ""), "ONCE")
    excyc = (pd.to_numeric(ex["EXCYCLE"], errors="coerce").to_numpy(dtype=float) if "EXCYCLE" in ex
             else np.full(n, np.nan))
    if "VISIT" in ex:
        vis = ex["VISIT"].astype("string").str.upper().str.extract(r"^\s*(?:CYCLE\s*|C)(\d+)")[0]
        viscyc = pd.to_numeric(vis, errors="coerce").to_numpy(dtype=float)
    else:
        viscyc = np.full(n, np.nan)
    df = pd.DataFrame(
        {
            "USUBJID": ex["USUBJID"].to_numpy(),
            "EXTRT": ex["EXTRT"].astype("string").str.upper().to_numpy(),
            "EXDOSE": pd.to_numeric(ex["EXDOSE"]).to_numpy(dtype=float),
            "EXDOSU": ex["EXDOSU"].to_numpy() if "EXDOSU" in ex else np.full(n, "mg"),
            "EXDOSFRQ": frq.to_numpy(dtype=object),
            "ASTDT": ex["EXSTDT"].to_numpy(dtype="datetime64[D]"),
            "AENDT": (ex["EXENDT"].to_numpy(dtype="datetime64[D]") if "EXENDT" in ex
                      else np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")),
            "EXADJ": (ex["EXADJ"].astype("string").str.upper().to_numpy() if "EXADJ" in ex
                      else pd.array([pd.NA] * n, dtype="string")),
            "ROWNUM": ex["ROWNUM"].to_numpy() if "ROWNUM" in ex else np.arange(1, n + 1),
            "EXCYCLE": excyc,
            "VISCYC": viscyc,
        }
    )
    warn: list[InputIssue] = []
    miss_end = np.isnat(df["AENDT"].to_numpy())
    once = (df["EXDOSFRQ"] == "ONCE").to_numpy()
    df.loc[miss_end & once, "AENDT"] = df.loc[miss_end & once, "ASTDT"]
    miss_end &= ~once
    df["AENDTF"] = np.where(miss_end, "Y", "")
    if miss_end.any():
        fb = df["ASTDT"].to_numpy(dtype="datetime64[D]")
        if end_fallback is not None and "TRTEDT" in end_fallback:
            m = df[["USUBJID"]].merge(end_fallback[["USUBJID", "TRTEDT"]].drop_duplicates("USUBJID"),
                                      on="USUBJID", how="left")
            t = m["TRTEDT"].to_numpy(dtype="datetime64[D]")
            fb = np.where(~np.isnat(t) & (t > fb), t, fb)
        df.loc[miss_end, "AENDT"] = fb[miss_end]
        for i in np.flatnonzero(miss_end)[:200]:
            warn.append(InputIssue(domain="ex", variable="EXENDTC", severity="warning",
                                   row=int(df["ROWNUM"].iat[i]), usubjid=str(df["USUBJID"].iat[i]),
                                   value=None, problem="end date missing; interval ends on the "
                                   "subject's last dose date (TRTEDT) or its start date"))
    df = df.sort_values(["USUBJID", "EXTRT", "ASTDT", "ROWNUM"], kind="stable").reset_index(drop=True)
    st = df["ASTDT"].to_numpy(dtype="datetime64[D]")
    en = df["AENDT"].to_numpy(dtype="datetime64[D]")
    same = same_as_prev(df["USUBJID"], df["EXTRT"])
    prev_en = np.full(len(df), np.datetime64("NaT"), dtype="datetime64[D]")
    prev_en[1:] = en[:-1]
    overlap = same & (st <= prev_en)
    if overlap.any():
        errs = [
            InputIssue(domain="ex", variable="EXSTDTC", row=int(df["ROWNUM"].iat[i]),
                       usubjid=str(df["USUBJID"].iat[i]), value=str(st[i]),
                       problem=f"interval of {df['EXTRT'].iat[i]} overlaps the previous one "
                       f"(ending {prev_en[i]})", hint="ex rows of one drug must not overlap.")
            for i in np.flatnonzero(overlap)[:200]
        ]
        raise StudyInputError(errs)
    return df, warn


def expand_administrations(rows: pd.DataFrame, options: ExposureOptions) -> pd.DataFrame:
    """One row per administration day from typed ex rows (run-form or day-form), vectorised.

    Rule
    ----
    ``ONCE``: EXSTDT; ``QD``: every day EXSTDT..EXENDT; a weekly code: its days of each week
    counted from EXSTDT (docs/data-contract.md, ex). Zero-dose rows give no administration.
    ROWCOV = days the administration covers by the row's own weekly pattern (NaN for QD/ONCE).
    """
    r = rows.loc[rows["EXDOSE"].to_numpy() > 0].reset_index(drop=True)
    st = r["ASTDT"].to_numpy(dtype="datetime64[D]")
    nd = (r["AENDT"].to_numpy(dtype="datetime64[D]") - st).astype("int64") + 1
    frq = r["EXDOSFRQ"].to_numpy(dtype=object)
    nd = np.where(frq == "ONCE", 1, nd)
    idx = np.repeat(np.arange(len(r)), nd)
    starts = np.repeat(np.cumsum(nd) - nd, nd)
    off = np.arange(int(nd.sum()), dtype=np.int64) - starts
    # frequency tests on the rows, then spread to the administrations (the same booleans as
    # testing every administration's code: fewer object comparisons, issue 15)
    keep = np.isin(frq, SCHEDULE_CODES)[idx]
    cover = np.full(len(off), np.nan)
    perwk = np.full(len(off), np.nan)
    for c, days in options.weekly_codes().items():
        m_row = frq == c
        m = m_row[idx] if m_row.any() else np.zeros(len(off), dtype=bool)
        if m.any():
            keep |= m & np.isin(off % 7 + 1, days)
            cover[m] = compute_dose_cover_days(off[m], days)
            perwk[m] = len(days)
    idx, off = idx[keep], off[keep]
    adm = r.iloc[idx][["USUBJID", "EXTRT", "EXDOSE", "EXDOSU", "EXDOSFRQ", "EXADJ", "ROWNUM", "AENDT",
                       "EXCYCLE", "VISCYC"]].reset_index(drop=True)
    adm = adm.rename(columns={"AENDT": "ROWENDT"})
    adm.insert(2, "ADT", st[idx] + off.astype("timedelta64[D]"))
    adm["ROWCOV"] = cover[keep]
    adm["PERWK"] = perwk[keep]
    adm["ROWID"] = idx
    # stable order by subject, drug and date on integer codes (codes in the text's sort order,
    # missing last: the order of pandas' stable sort_values, without sorting text)
    subj, _ = codes_of(r["USUBJID"])
    drug, _ = codes_of(r["EXTRT"])
    order = np.lexsort((datetimes_i8(adm["ADT"]), drug[idx], subj[idx]))
    if np.array_equal(order, np.arange(len(order))):
        return adm.reset_index(drop=True)
    return adm.take(order).reset_index(drop=True)


def compute_cycle_lengths(regimen: Regimen, n_cycles: int) -> np.ndarray:
    """Planned length of cycles 1..``n_cycles`` (index 0 = cycle 1) from the regimen's phases."""
    out = np.zeros(n_cycles, dtype=np.int64)
    phases = regimen.effective_phases()
    for ph in phases:
        a, b = ph.cycles[0], min(ph.cycles[1], n_cycles)
        if a <= n_cycles:
            out[a - 1:b] = ph.cycle_length_days
    last = phases[-1]
    if last.cycles[1] < n_cycles:
        out[last.cycles[1]:] = last.cycle_length_days
    return out


def infer_cycle_starts(subj: np.ndarray, day: np.ndarray, lengths: np.ndarray,
                       first_day: np.ndarray | None = None) -> pd.DataFrame:
    """Cycle starts inferred from dosing days (vectorised over subjects, one pass per cycle).

    Rule: cycle 1 starts at the subject's first dose; cycle k + 1 starts at the first dose on or
    after (start of cycle k + planned length of cycle k). When no drug is planned on day 1 of a
    cycle (``first_day`` = the first planned day of each cycle, index 0 = cycle 1), the cycle
    starts that many days minus one before its first dose. ``subj`` are integer codes, ``day``
    integer days; both sorted by subject then day. Returns SID, CYCLE, START (day).
    """
    fday = np.ones(len(lengths), dtype=np.int64) if first_day is None else np.asarray(first_day, np.int64)
    if len(subj) == 0:
        return pd.DataFrame({"SID": np.array([], np.int64), "CYCLE": np.array([], np.int64),
                             "START": np.array([], np.int64)})
    span = int(day.max() - day.min()) + 2
    base = int(day.min())
    first = np.r_[True, subj[1:] != subj[:-1]]
    sid = subj[first].astype(np.int64)
    cur = day[first].astype(np.int64) - (fday[0] - 1)
    base -= int(fday.max())
    span += int(fday.max()) + 1
    key = subj.astype(np.int64) * span + (day - base)
    out_s, out_c, out_d = [sid], [np.ones(len(sid), np.int64)], [cur]
    k = 1
    while len(sid):
        ln = lengths[min(k, len(lengths)) - 1]
        off = fday[min(k + 1, len(fday)) - 1] - 1
        target = sid * span + (cur + ln + off - base)
        j = np.searchsorted(key, target, side="left")
        ok = j < len(key)
        ok[ok] = subj[j[ok]] == sid[ok]
        sid, cur = sid[ok], day[j[ok]].astype(np.int64) - off
        k += 1
        out_s.append(sid)
        out_c.append(np.full(len(sid), k, np.int64))
        out_d.append(cur)
    return pd.DataFrame({"SID": np.concatenate(out_s), "CYCLE": np.concatenate(out_c),
                         "START": np.concatenate(out_d)})


def _days(s: pd.Series | np.ndarray) -> np.ndarray:
    """Dates as integer days since 1970-01-01."""
    return np.asarray(s).astype("datetime64[D]").astype(np.int64)


def _date(d: np.ndarray) -> np.ndarray:
    return np.asarray(d, dtype=np.int64).astype("datetime64[D]")


def derive_cycles(adm: pd.DataFrame, regimen: Regimen, options: ExposureOptions) -> tuple[pd.DataFrame, str]:
    """Cycles per subject: one row per cycle (started or missed) and the administration's CYCLE.

    Returns the cycles table (USUBJID, CYCLE, CYCSTDT, PLNSTDT, CYCLEN, DELAYD, DELAYFL, MISSFL,
    CYCSRC) and the source used (``"EXCYCLE"``, ``"VISIT"`` or ``"INFERRED"``); ``adm`` gets CYCLE.

    Rule
    ----
    From ex (EXCYCLE or VISIT): cycle k starts on its first administration, less (the
    administered drug's first planned day in cycle k - 1) when that is not day 1; a cycle number
    skipped between two given ones is a missed cycle (planned start = previous start + planned
    length). Inferred: :func:`infer_cycle_starts`. The planned start of a cycle is the previous
    cycle's start + its planned length; DELAYD = start - planned start (>= 0).
    """
    day = _days(adm["ADT"])
    src = "INFERRED"
    if len(adm) == 0:
        adm["CYCLE"] = np.array([], dtype=np.int64)
        nat = np.array([], dtype="datetime64[D]")
        return pd.DataFrame({"USUBJID": np.array([], dtype=object), "CYCLE": np.array([], np.int64),
                             "CYCSTDT": nat, "PLNSTDT": nat, "CYCLEN": np.array([], np.int64),
                             "DELAYD": np.array([], np.int64), "DELAYFL": np.array([], dtype=object),
                             "MISSFL": np.array([], dtype=object), "CYCSRC": np.array([], dtype=object)}), src
    if options.cycle_source != "infer" and len(adm):
        if np.isfinite(adm["EXCYCLE"].to_numpy(dtype=float)).all():
            src = "EXCYCLE"
        elif np.isfinite(adm["VISCYC"].to_numpy(dtype=float)).all():
            src = "VISIT"
    if options.cycle_source == "ex" and src == "INFERRED" and len(adm):
        bad = ~np.isfinite(adm["EXCYCLE"].to_numpy(dtype=float))
        raise StudyInputError([
            InputIssue(domain="ex", variable="EXCYCLE", row=int(adm["ROWNUM"].iat[i]),
                       usubjid=str(adm["USUBJID"].iat[i]), value=None,
                       problem="cycle number missing (EXCYCLE, or VISIT 'CYCLE n')",
                       hint="[exposure] cycle_source = \"ex\" needs a cycle on every dosing row; "
                            "use \"auto\" to infer cycles from dosing.")
            for i in np.flatnonzero(bad)[:200]])
    subj_codes, subj_names = pd.factorize(adm["USUBJID"].astype(str), sort=True)
    max_span = int(day.max() - day.min()) + 1 if len(day) else 1
    min_len = min(ph.cycle_length_days for ph in regimen.effective_phases())
    n_len = max_span // min_len + 3
    if src != "INFERRED":
        given = adm["EXCYCLE" if src == "EXCYCLE" else "VISCYC"].to_numpy(dtype=float).astype(np.int64)
        n_len = max(n_len, int(given.max()) + 2)
    lengths = compute_cycle_lengths(regimen, n_len)
    if src == "INFERRED":
        order = np.lexsort((day, subj_codes))
        sch = regimen.schedule(min(n_len, max(ph.cycles[0] for ph in regimen.effective_phases()) + 1))
        fd = sch.groupby("CYCLE")["CYCLEDY"].min()
        first_day = fd.reindex(np.arange(1, n_len + 1)).ffill().fillna(1).to_numpy(dtype=np.int64)
        starts = infer_cycle_starts(subj_codes[order], day[order], lengths, first_day)
        starts["MISSFL"] = ""
    else:
        # a cycle starts (first planned day of the drug in that cycle - 1) days before the drug's
        # first administration in it (the same rule as for inferred cycles, per drug)
        sch = regimen.schedule(int(given.max()))
        fdy = sch.assign(DRUG=sch["DRUG"].astype(str).str.upper()).groupby(["DRUG", "CYCLE"])["CYCLEDY"].min()
        off = pd.DataFrame({"DRUG": adm["EXTRT"].astype(str).str.upper().to_numpy(), "CYCLE": given}).merge(
            fdy.rename("FDY").reset_index(), on=["DRUG", "CYCLE"], how="left")["FDY"].to_numpy(dtype=float)
        off = np.where(np.isnan(off), 0, off - 1).astype(np.int64)
        g = pd.DataFrame({"SID": subj_codes, "CYCLE": given, "START": day - off})
        present = g.groupby(["SID", "CYCLE"], sort=True)["START"].min().reset_index()
        lo = present.groupby("SID")["CYCLE"].transform("min")
        hi = present.groupby("SID")["CYCLE"].transform("max")
        rng = present.loc[present["CYCLE"] == lo, ["SID", "CYCLE"]].merge(
            present.loc[present["CYCLE"] == hi, ["SID", "CYCLE"]], on="SID", suffixes=("", "_HI"))
        cnt = (rng["CYCLE_HI"] - rng["CYCLE"] + 1).to_numpy()
        grid = pd.DataFrame({"SID": np.repeat(rng["SID"].to_numpy(), cnt),
                             "CYCLE": np.repeat(rng["CYCLE"].to_numpy(), cnt)
                             + np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)})
        starts = grid.merge(present, on=["SID", "CYCLE"], how="left")
        starts["MISSFL"] = np.where(starts["START"].isna(), "Y", "")
    starts = starts.sort_values(["SID", "CYCLE"], kind="stable").reset_index(drop=True)
    cyc = starts["CYCLE"].to_numpy(dtype=np.int64)
    ln = lengths[np.minimum(cyc, len(lengths)) - 1]
    cum = np.r_[0, np.cumsum(lengths)]  # planned offset of cycle k from cycle 1 = cum[k - 1]
    # planned start: last present cycle's start + planned lengths since
    sid = starts["SID"].to_numpy()
    st = starts["START"].to_numpy(dtype=float)
    same = np.r_[False, sid[1:] == sid[:-1]]
    last_st = pd.Series(np.r_[np.nan, st[:-1]]).where(same).groupby(sid).ffill().to_numpy()
    last_c = pd.Series(np.r_[np.nan, np.where(np.isnan(st), np.nan, cyc)[:-1]]).where(same).groupby(sid).ffill()
    last_c = last_c.to_numpy()
    ok = same & ~np.isnan(last_st)
    lc = np.where(ok, last_c, 1).astype(np.int64)
    pln = np.where(ok, last_st + cum[cyc - 1] - cum[lc - 1], np.nan)
    pln = np.where(same, pln, st)
    st = np.where(np.isnan(st), pln, st)  # missed cycle: its planned start
    delay = np.where(same & (starts["MISSFL"] == "").to_numpy(), np.maximum(st - pln, 0), 0).astype(np.int64)
    out = pd.DataFrame({
        "USUBJID": np.asarray(subj_names)[sid],
        "CYCLE": cyc,
        "CYCSTDT": _date(st.astype(np.int64)),
        "PLNSTDT": _date(pln.astype(np.int64)),
        "CYCLEN": ln,
        "DELAYD": delay,
        "DELAYFL": np.where(delay >= options.min_delay_days, "Y", ""),
        "MISSFL": starts["MISSFL"].to_numpy(),
        "CYCSRC": src,
    })
    if src == "INFERRED":
        a = pd.DataFrame({"SID": subj_codes, "D": day, "_I": np.arange(len(adm))}).sort_values("D", kind="stable")
        c = starts[["SID", "CYCLE", "START"]].sort_values("START", kind="stable")
        m = pd.merge_asof(a, c, left_on="D", right_on="START", by="SID", direction="backward")
        adm["CYCLE"] = m.sort_values("_I")["CYCLE"].to_numpy(dtype=np.int64)
    else:
        adm["CYCLE"] = given
    return out, src


def _drug_cycle_plan(regimen: Regimen, n_cycles: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The schedule of cycles 1..n and, per drug and cycle, UNIT, TARGET dose (non-step-up),
    NPL (planned non-step-up administrations), FIRSTDY."""
    sch = regimen.schedule(n_cycles)
    sch = sch.assign(DRUG=sch["DRUG"].astype(str).str.upper(), CYCLE=sch["CYCLE"].astype(np.int64),
                     CYCLEDY=sch["CYCLEDY"].astype(np.int64))
    reg = sch.loc[sch["STEPUP"] != "Y"]
    g = reg.groupby(["DRUG", "CYCLE"], sort=False)
    info = pd.DataFrame({"TARGET": g["DOSE"].first(), "NPL": g["DOSE"].size()}).reset_index()
    g2 = sch.groupby(["DRUG", "CYCLE"], sort=False)
    info2 = pd.DataFrame({"UNIT": g2["UNIT"].first(), "FIRSTDY": g2["CYCLEDY"].min(),
                          "PLNCYLEN": g2["CYCLEN"].first(),
                          "TARGET0": g2["DOSE"].first()}).reset_index()
    info = info2.merge(info, on=["DRUG", "CYCLE"], how="left")
    info["TARGET"] = info["TARGET"].fillna(info["TARGET0"])
    info["NPL"] = info["NPL"].fillna(0).astype(np.int64)
    return sch, info.drop(columns=["TARGET0"])


def _body_factor(unit: np.ndarray, bsa: np.ndarray, weight: np.ndarray) -> np.ndarray:
    u = np.asarray(unit, dtype=object)
    return np.select([u == "mg/m2", u == "mg/kg"], [bsa, weight], default=1.0)


#: adexlvl columns and dtypes (an empty adexlvl has them too)
LVL_COLUMNS: dict[str, str] = {
    "USUBJID": "object", "EXTRT": "object", "EXDOSE": "float64", "EXDOSU": "object", "EXDOSFRQ": "object",
    "ASTDT": "datetime64[ns]", "AENDT": "datetime64[ns]", "EXADJ": "object", "ROWNUM": "int64",
    "NDOSES": "int64", "INTDOSE": "float64", "INTDOSEU": "float64", "WKDOSE": "float64", "DOSERAT": "float64",
    "LDOSEDT": "datetime64[ns]", "PERENDT": "datetime64[ns]", "GAPDAYS": "int64", "CYCLE": "int64",
    "UNIT": "object", "AENDTF": "object", "NDAYS": "int64", "CHGTYPE": "object", "RESTFL": "object",
    "INTRREAS": "object", "CHGREAS": "object", "DOSELVL": "float64", "DOSELVLC": "object",
    "ONLADDFL": "object", "INTSEQ": "int64", "CUMDOSE": "float64",
}


def derive_exposure_intervals(
    ex: pd.DataFrame,
    *,
    ladder: DoseLadder,
    regimen: Regimen,
    options: ExposureOptions = ExposureOptions(),
    end_fallback: pd.DataFrame | None = None,
    vs: pd.DataFrame | None = None,
    ladder_for: Callable[[str, int], Sequence[Any]] | None = None,
) -> pd.DataFrame:
    """Dose level over time: one row per run of administrations (the ``adexlvl`` dataset).

    Rule
    ----
    Administrations from ex (:func:`expand_administrations`), cycles (:func:`derive_cycles`),
    each joined to the regimen's schedule for its cycle and day. A run is a sequence of
    administrations of one drug at one dose and frequency with no interruption (a run-form row
    with a weekly pattern is its own run, as in the first release). Per run: NDOSES, INTDOSE
    (mg), WKDOSE (mg/week: EXDOSE x days per week for a weekly pattern, EXDOSE x planned days per
    cycle x 7 / cycle length for QD and ONCE), DOSERAT (dose relative to the plan in force:
    step-up doses and phases included), the ladder level (DOSELVL; NaN when off the ladder),
    PERENDT (end of the last dose's dose period), GAPDAYS (interruption days before it), CHGTYPE
    (START / REDUCTION / ESCALATION / SAME: DOSERAT lower / higher than the previous run's by more
    than ``dose_change_tolerance``), RESTFL, INTRREAS (EXADJ of a zero-dose row in the gap, else
    of the run), CHGREAS, CUMDOSE.

    The administration table, the cycles and the per-drug planned doses are in
    ``attrs["exposure"]`` for :func:`derive_adex`; warnings in ``attrs["issues"]``.
    """
    rows, warn = _ex_rows(ex, options, end_fallback)
    body, vs_issues = derive_body_size(vs)
    if any(i.severity == "error" for i in vs_issues):
        raise StudyInputError(vs_issues)
    adm = expand_administrations(rows, options)
    cycles, cyc_src = derive_cycles(adm, regimen, options)
    if adm.empty:  # no dose given at all: no runs
        lv = pd.DataFrame({c: pd.Series(dtype=t) for c, t in LVL_COLUMNS.items()})
        lv.attrs["issues"] = [*warn, *vs_issues]
        lv.attrs["exposure"] = {"cycles": cycles, "drug": None, "cycle_source": cyc_src}
        return lv
    n_cyc = int(cycles["CYCLE"].max()) + 1 if len(cycles) else 2
    sch, info = _drug_cycle_plan(regimen, n_cyc)
    # --- administrations joined to their cycle and the schedule -------------------------------
    adm = adm.merge(cycles[["USUBJID", "CYCLE", "CYCSTDT", "CYCLEN"]], on=["USUBJID", "CYCLE"], how="left")
    adm["CYCLEDY"] = (_days(adm["ADT"]) - _days(adm["CYCSTDT"]) + 1).astype(np.int64)
    adm = adm.merge(info.rename(columns={"DRUG": "EXTRT"}), on=["EXTRT", "CYCLE"], how="left")
    plan_day = sch[["DRUG", "CYCLE", "CYCLEDY", "DOSE"]].rename(columns={"DRUG": "EXTRT", "DOSE": "PLNDAYDS"})
    plan_day = plan_day.drop_duplicates(["EXTRT", "CYCLE", "CYCLEDY"])
    adm = adm.merge(plan_day, on=["EXTRT", "CYCLE", "CYCLEDY"], how="left")
    in_reg = adm["UNIT"].notna().to_numpy()
    bs = lookup_body_size(adm[["USUBJID", "ADT"]], body, regimen.bsa_formula)
    adm["BSA"] = bs["BSA"].to_numpy()
    adm["WEIGHT"] = bs["WEIGHT"].to_numpy()
    unit = adm["UNIT"].fillna("mg").to_numpy(dtype=object)
    fac = _body_factor(unit, adm["BSA"].to_numpy(), adm["WEIGHT"].to_numpy())
    adm["BODYFAC"] = fac
    dose = adm["EXDOSE"].to_numpy(dtype=float)
    adm["DOSEU"] = dose / fac  # in the regimen's unit (mg/m2, mg/kg or mg)
    # next planned day of the drug in the same cycle -> the schedule's dose period
    nxt = sch[["DRUG", "CYCLE", "CYCLEDY"]].rename(columns={"DRUG": "EXTRT", "CYCLEDY": "NEXTDY"})
    nxt = nxt.drop_duplicates().sort_values("NEXTDY", kind="stable")
    left = adm[["EXTRT", "CYCLE", "CYCLEDY"]].assign(_I=np.arange(len(adm))).sort_values("CYCLEDY", kind="stable")
    left["EXTRT"] = left["EXTRT"].astype(object)
    nxt["EXTRT"] = nxt["EXTRT"].astype(object)
    m = pd.merge_asof(left, nxt, left_on="CYCLEDY", right_on="NEXTDY", by=["EXTRT", "CYCLE"],
                      direction="forward", allow_exact_matches=False).sort_values("_I")
    nextdy = m["NEXTDY"].to_numpy(dtype=float)
    cdy = adm["CYCLEDY"].to_numpy(dtype=float)
    clen = adm["CYCLEN"].to_numpy(dtype=float)
    sched_cov = np.where(np.isnan(nextdy), clen - cdy + 1, nextdy - cdy)
    sched_cov = np.maximum(sched_cov, 1)
    rowcov = adm["ROWCOV"].to_numpy(dtype=float)
    weekly = ~np.isnan(rowcov)
    cover = np.where(weekly, np.where(in_reg & np.isnan(nextdy), np.maximum(rowcov, sched_cov), rowcov),
                     np.where(in_reg, sched_cov, 1.0)).astype(np.int64)
    adm["COVER"] = cover
    adm["PERENDT"] = _date(_days(adm["ADT"]) + cover - 1)
    # dose relative to the plan in force
    npl = adm["NPL"].to_numpy(dtype=float)
    target = adm["TARGET"].to_numpy(dtype=float)
    perwk = adm["PERWK"].to_numpy(dtype=float)
    plan_wk = target * npl * 7.0 / clen * fac
    plan_adm = np.where(np.isnan(adm["PLNDAYDS"].to_numpy(dtype=float)), target,
                        adm["PLNDAYDS"].to_numpy(dtype=float)) * fac
    adm["WKDOSE"] = np.where(weekly, dose * perwk, np.where(in_reg, dose * npl * 7.0 / clen, np.nan))
    ratio = np.where(weekly, dose * perwk / plan_wk, dose / plan_adm)
    raw = np.where(weekly, dose * perwk, dose)
    adm["DOSERAT"] = ratio
    cmp_ = np.where(np.isfinite(ratio), ratio, raw)
    adm["_CMP"] = cmp_
    # --- gaps: interruption days between consecutive administrations of a drug ----------------
    same = same_as_prev(adm["USUBJID"], adm["EXTRT"])
    d = _days(adm["ADT"])
    pend = d + cover - 1
    prev_end = np.r_[0, pend[:-1]]
    u0, u1 = prev_end + 1, d - 1
    ulen = np.where(same, np.maximum(u1 - u0 + 1, 0), 0)
    cyc = adm["CYCLE"].to_numpy(dtype=np.int64)
    prev_c = np.r_[0, cyc[:-1]]
    crossed = same & (cyc > prev_c)
    cy = cycles[["USUBJID", "CYCLE"]].copy()
    cs = _days(cycles["CYCSTDT"])
    ce = cs + cycles["CYCLEN"].to_numpy(dtype=np.int64) - 1
    # subject and drug as integer codes shared by adm, cycles and the drug grid (lookups on
    # integer keys instead of merges on text: the same rows, issue 15)
    s_adm, s_cy = shared_codes(adm["USUBJID"], cycles["USUBJID"])
    csame = np.r_[False, s_cy[1:] == s_cy[:-1]] if len(s_cy) else np.zeros(0, dtype=bool)
    gap_before = np.where(csame, np.maximum(cs - np.r_[0, ce[:-1]] - 1, 0), 0)
    cy["S"], cy["E"] = cs, ce
    # cumulative days that delayed cycle starts, within a subject
    cy["CD"] = pd.Series(gap_before).groupby(s_cy).cumsum().to_numpy()
    cy_cyc = cy["CYCLE"].to_numpy(dtype=np.int64)

    def at(j: np.ndarray, col: str) -> np.ndarray:
        return np.where(j >= 0, cy[col].to_numpy(dtype=float)[j], np.nan)

    j_p, j_p1, j_c = (row_lookup([s_adm, c], [s_cy, cy_cyc]) for c in (prev_c, prev_c + 1, cyc))
    e_p, s_p1 = at(j_p, "E"), at(j_p1, "S")
    cd_p1, cd_c, s_c = at(j_p1, "CD"), at(j_c, "CD"), at(j_c, "S")
    ov1 = np.maximum(np.minimum(u1, s_p1 - 1) - np.maximum(u0, e_p + 1) + 1, 0)
    delay_in_gap = np.where(crossed, np.nan_to_num(ov1) + np.nan_to_num(cd_c - cd_p1), 0)
    first_dy = adm["FIRSTDY"].to_numpy(dtype=float)
    pw = np.where(crossed & ~np.isnan(first_dy),
                  np.maximum(np.minimum(u1, s_c + first_dy - 2) - np.maximum(u0, s_c) + 1, 0), 0)
    # cycles passed over entirely: days outside the drug's dosing window (the whole cycle when the
    # drug is not planned in it, else the days before its first planned day) are not interruptions
    pairs = adm[["USUBJID", "EXTRT"]].drop_duplicates()
    grid = cycles[["USUBJID", "CYCLE", "CYCLEN"]].merge(pairs, on="USUBJID").merge(
        info.rename(columns={"DRUG": "EXTRT"})[["EXTRT", "CYCLE", "FIRSTDY"]], on=["EXTRT", "CYCLE"], how="left")
    in_regimen = grid["EXTRT"].isin(set(info["DRUG"])).to_numpy()
    fd = grid["FIRSTDY"].to_numpy(dtype=float)
    grid["NW"] = np.where(~in_regimen, 0, np.where(np.isnan(fd), grid["CYCLEN"].to_numpy(dtype=float), fd - 1))
    grid = grid.sort_values(["USUBJID", "EXTRT", "CYCLE"], kind="stable")
    grid["CNW"] = grid.groupby(["USUBJID", "EXTRT"], sort=False)["NW"].cumsum()
    g_s = shared_codes(adm["USUBJID"], grid["USUBJID"])
    g_d = shared_codes(adm["EXTRT"], grid["EXTRT"])
    g_c = grid["CYCLE"].to_numpy(dtype=np.int64)
    cnw = grid["CNW"].to_numpy(dtype=float)

    def at_drug(c: np.ndarray) -> np.ndarray:
        j = row_lookup([g_s[0], g_d[0], c], [g_s[1], g_d[1], g_c])
        return np.where(j >= 0, cnw[j], np.nan)

    skipped = np.where(crossed & (cyc - 1 > prev_c), np.nan_to_num(at_drug(cyc - 1) - at_drug(prev_c)), 0)
    intdays = (ulen - np.nan_to_num(pw) - skipped
               - (0 if options.delay_is_interruption else delay_in_gap))
    intdays = np.where(same, np.maximum(intdays, 0), 0).astype(np.int64)
    adm["GAPDAYS"] = intdays
    intr = same & (intdays >= options.min_interruption_days)
    adm["INTRFL"] = np.where(intr, "Y", "")
    # --- runs ------------------------------------------------------------------------------------
    code = np.where(weekly, adm["EXDOSFRQ"].to_numpy(dtype=object), "SCHEDULE")
    rowid = adm["ROWID"].to_numpy()
    prev_cmp = np.r_[np.nan, cmp_[:-1]]
    tol = options.dose_change_tolerance
    new_run = (~same | intr | (code != np.r_[None, code[:-1]])
               | (weekly & (rowid != np.r_[-1, rowid[:-1]]))
               | (dose != np.r_[np.nan, dose[:-1]])
               | (np.abs(cmp_ / prev_cmp - 1) > tol + 1e-9))
    adm["RUN"] = np.cumsum(new_run)
    adm["_D"] = d
    g = adm.groupby("RUN", sort=True)
    lv = pd.DataFrame({
        "USUBJID": g["USUBJID"].first(), "EXTRT": g["EXTRT"].first(), "EXDOSE": g["EXDOSE"].first(),
        "EXDOSU": g["EXDOSU"].first(), "EXDOSFRQ": g["EXDOSFRQ"].first(), "ASTDT": g["ADT"].first(),
        "AENDT": g["ROWENDT"].max(), "EXADJ": g["EXADJ"].first(), "ROWNUM": g["ROWNUM"].first(),
        "NDOSES": g["ADT"].size(), "INTDOSE": g["EXDOSE"].sum(), "INTDOSEU": g["DOSEU"].sum(),
        "WKDOSE": g["WKDOSE"].first(), "DOSERAT": g["DOSERAT"].first(), "_CMP": g["_CMP"].first(),
        "LDOSEDT": g["ADT"].last(), "PERENDT": g["PERENDT"].last(), "GAPDAYS": g["GAPDAYS"].first(),
        "_INT": g["INTRFL"].first(), "CYCLE": g["CYCLE"].first(), "UNIT": g["UNIT"].first(),
        "_D0": g["_D"].first(), "_FAC": g["BODYFAC"].first(),
    }).reset_index(drop=True)
    for c in ("ASTDT", "AENDT", "LDOSEDT", "PERENDT"):
        lv[c] = pd.to_datetime(lv[c].to_numpy(dtype="datetime64[D]"))
    lv["AENDTF"] = ""
    if len(rows):
        fl = rows.loc[rows["AENDTF"] == "Y", ["ROWNUM"]].assign(AENDTF="Y")
        lv = lv.drop(columns="AENDTF").merge(fl, on="ROWNUM", how="left")
        lv["AENDTF"] = lv["AENDTF"].fillna("")
    lv["NDAYS"] = (_days(lv["AENDT"]) - _days(lv["ASTDT"])).astype(np.int64) + 1
    sp = same_as_prev(lv["USUBJID"], lv["EXTRT"])
    prev = np.r_[np.nan, lv["_CMP"].to_numpy(dtype=float)[:-1]]
    cur = lv["_CMP"].to_numpy(dtype=float)
    rel = cur / prev - 1
    chg = np.where(~sp, "START", np.where(rel < -tol - 1e-9, "REDUCTION",
                                          np.where(rel > tol + 1e-9, "ESCALATION", "SAME")))
    lv["CHGTYPE"] = chg
    restart = sp & (lv["_INT"] == "Y").to_numpy()
    lv["RESTFL"] = np.where(restart, "Y", "")
    # reason of an interruption: EXADJ of a zero-dose row in the gap, else of the new run
    zero = rows.loc[rows["EXDOSE"].to_numpy() == 0, ["USUBJID", "EXTRT", "ASTDT", "EXADJ"]]
    reason = lv["EXADJ"].to_numpy(dtype=object)
    zr = np.full(len(lv), None, dtype=object)
    if len(zero) and restart.any():
        zs, ls = shared_codes(zero["USUBJID"], lv["USUBJID"])
        zd, ld = shared_codes(zero["EXTRT"], lv["EXTRT"])
        zk, lk = np.split(equality_keys([np.r_[zs, ls], np.r_[zd, ld]]), [len(zs)])
        z = pd.DataFrame({"K": zk, "ZD": _days(zero["ASTDT"]),
                          "ZR": zero["EXADJ"].to_numpy(dtype=object)}).sort_values("ZD", kind="stable")
        prev_per = np.r_[0, _days(lv["PERENDT"])[:-1]]
        q = pd.DataFrame({"K": lk, "QD": lv["_D0"].to_numpy() - 1,
                          "P": prev_per, "_I": np.arange(len(lv))}).sort_values("QD", kind="stable")
        j = pd.merge_asof(q, z, left_on="QD", right_on="ZD", by="K", direction="backward").sort_values("_I")
        hit = (j["ZD"].to_numpy(dtype=float) > j["P"].to_numpy(dtype=float) - 1e-9) & restart
        zr = np.where(hit & j["ZR"].notna().to_numpy(), j["ZR"].to_numpy(dtype=object), None)
    lv["INTRREAS"] = np.where(restart, np.where(pd.isna(zr), reason, zr), None)
    lv["CHGREAS"] = np.where((chg != "START") & (chg != "SAME"), reason, None)
    lv = _ladder_levels(lv, regimen, ladder, ladder_for, options)
    lv["INTSEQ"] = lv.groupby(["USUBJID", "EXTRT"], sort=False).cumcount() + 1
    lv["CUMDOSE"] = lv.groupby(["USUBJID", "EXTRT"], sort=False)["INTDOSE"].cumsum()
    lv = lv.drop(columns=["_CMP", "_INT", "_D0", "_FAC"])
    summary, plan_issues = _drug_summary(adm, cycles, sch, body, regimen, options)
    lv.attrs["issues"] = [*warn, *vs_issues, *plan_issues]
    lv.attrs["exposure"] = {"cycles": cycles, "drug": summary, "cycle_source": cyc_src}
    return lv


def _ladder_levels(lv: pd.DataFrame, regimen: Regimen, ladder: DoseLadder,
                   ladder_for: Callable[[str, int], Sequence[Any]] | None, options: ExposureOptions) -> pd.DataFrame:
    """DOSELVL/DOSELVLC/ONLADDFL: the ladder level with this weekly dose and dose per administration.

    Rule
    ----
    The levels are ``ladder_for(drug, cycle)`` of the run's first cycle (per-drug ladders,
    ``Protocol.ladder_for``), else ``ladder`` for the study drug only. A level matches when the
    run's dose and weekly dose, in the drug's unit (mg; mg/m2 or mg/kg divided by the body size
    of the run's first dose), equal the level's within 0.1% (mg) or half the
    ``dose_change_tolerance`` (body-size units, whose mg doses are rounded). No match: NaN level,
    ONLADDFL = N; a drug without a ladder: ONLADDFL empty.
    """
    n = len(lv)
    lvl = np.full(n, np.nan)
    lab = np.full(n, None, dtype=object)
    has = np.zeros(n, dtype=bool)
    fac = lv["_FAC"].to_numpy(dtype=float)
    wk = lv["WKDOSE"].to_numpy(dtype=float) / fac
    ds = lv["EXDOSE"].to_numpy(dtype=float) / fac
    unit = lv["UNIT"].fillna("mg").to_numpy(dtype=object)
    rtol = np.where(unit == "mg", 1e-3, options.dose_change_tolerance / 2)
    drug = lv["EXTRT"].to_numpy(dtype=object)
    cyc = lv["CYCLE"].to_numpy(dtype=np.int64)
    phase_first = np.array([regimen.phase_of(int(c)).cycles[0] for c in range(1, int(cyc.max(initial=1)) + 1)])
    pf = phase_first[np.clip(cyc, 1, None) - 1] if n else cyc
    study = regimen.study_drug.upper()
    for d, c in {(str(x), int(y)) for x, y in zip(drug, pf, strict=True)}:
        if ladder_for is not None:
            levels = list(ladder_for(d, c))
            if len(levels) <= 1 and d != study:
                continue  # no ladder written for this drug
        elif d == study:
            levels = list(ladder.levels)
        else:
            continue
        m = (drug == d) & (pf == c)
        if not levels:
            continue
        has |= m
        lw = np.array([x.weekly_mg for x in levels], dtype=float)
        ld = np.array([x.dose_mg for x in levels], dtype=float)
        tol = rtol[m, None]
        hit = (np.abs(wk[m, None] - lw[None, :]) <= tol * lw[None, :]) & (
            np.abs(ds[m, None] - ld[None, :]) <= tol * ld[None, :])
        anyhit = hit.any(axis=1)
        first = hit.argmax(axis=1)
        lvl[m] = np.where(anyhit, np.array([x.level for x in levels], dtype=float)[first], np.nan)
        lab[m] = np.where(anyhit, np.array([x.label for x in levels], dtype=object)[first], None)
    lv["DOSELVL"] = lvl
    lv["DOSELVLC"] = lab
    lv["ONLADDFL"] = np.where(has & ~np.isnan(lvl), "Y", np.where(has, "N", ""))
    return lv


def _drug_summary(adm: pd.DataFrame, cycles: pd.DataFrame, sch: pd.DataFrame, body: pd.DataFrame,
                  regimen: Regimen, options: ExposureOptions) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Per subject and drug: cycles with a dose, planned dose over those cycles, delays.

    Rule
    ----
    The drug's cycles run from its first to its last cycle with a dose (missed cycles between
    included). Planned dose = the schedule's doses of those cycles (step-up doses included), in
    mg from the subject's body size on each planned day; planned days = their planned lengths.
    The last cycle counts only up to the end of treatment when that comes first
    (``planned_last_cycle = "treated_days"``: its planned doses on those days, over those days).
    PLNWKDOS = planned dose / planned days x 7 (4 mg on days 1-14 of 21: 4 x 14 x 7 / 21 = 18.67
    mg/week; stopping after the day-7 dose: 4 x 7 x 7 / 7 = 28 mg/week). Delays: cycle starts after the drug's first cycle, up to its last, started at least
    ``min_delay_days`` late.
    """
    key = ["USUBJID", "EXTRT"]
    end_col = {"dose_period": "PERENDT", "interval_end": "ROWENDT", "last_dose": "ADT"}[options.duration_end]
    g = adm.groupby(key, sort=True)
    s = pd.DataFrame({"FCYCLE": g["CYCLE"].min(), "LCYCLE": g["CYCLE"].max(), "CYCLES": g["CYCLE"].nunique(),
                      "CUMDOSEU": g["DOSEU"].sum(), "DOSEUNIT": g["UNIT"].first(),
                      "FCYCSTDT": g["CYCSTDT"].min(), "_TEND": g[end_col].max()}).reset_index()
    s["DOSEUNIT"] = s["DOSEUNIT"].fillna("mg")
    # planned administrations of every subject's cycles
    c = cycles[["USUBJID", "CYCLE", "CYCSTDT", "CYCLEN", "DELAYFL", "DELAYD", "MISSFL"]]
    rng = s[["USUBJID", "EXTRT", "FCYCLE", "LCYCLE", "_TEND"]]
    cr = c.merge(rng, on="USUBJID")
    cr = cr.loc[(cr["CYCLE"] >= cr["FCYCLE"]) & (cr["CYCLE"] <= cr["LCYCLE"])].copy()
    # the last cycle counts up to the end of treatment when that comes before its planned end
    # (planned_last_cycle = "treated_days"): a subject who stops mid-cycle is compared with the
    # doses planned for the days on treatment, not with the cycle's average
    clen = cr["CYCLEN"].to_numpy(dtype=np.int64)
    if options.planned_last_cycle == "treated_days":
        treated = _days(cr["_TEND"]) - _days(cr["CYCSTDT"]) + 1
        last = (cr["CYCLE"] == cr["LCYCLE"]).to_numpy()
        clen = np.where(last, np.clip(treated, 1, clen), clen)
    cr["_PLNLEN"] = clen
    p = cr[["USUBJID", "EXTRT", "CYCLE", "CYCSTDT", "_PLNLEN"]].merge(
        sch[["DRUG", "CYCLE", "CYCLEDY", "DOSE", "UNIT"]].rename(columns={"DRUG": "EXTRT"}),
        on=["EXTRT", "CYCLE"], how="inner")
    p = p.loc[p["CYCLEDY"].to_numpy() <= p["_PLNLEN"].to_numpy()]
    p["ADT"] = _date(_days(p["CYCSTDT"]) + p["CYCLEDY"].to_numpy(dtype=np.int64) - 1)
    bs = lookup_body_size(p[["USUBJID", "ADT"]], body, regimen.bsa_formula)
    fac = _body_factor(p["UNIT"].to_numpy(dtype=object), bs["BSA"].to_numpy(), bs["WEIGHT"].to_numpy())
    p["PLNMG"] = p["DOSE"].to_numpy(dtype=float) * fac
    p["_NAN"] = np.isnan(p["PLNMG"].to_numpy(dtype=float))
    pg = p.groupby(key, sort=True)
    pl = pd.DataFrame({"PLNCUM": pg["PLNMG"].sum(), "PLNCUMU": pg["DOSE"].sum(),
                       "_NAN": pg["_NAN"].max()}).reset_index()
    dl = ((cr["DELAYFL"] == "Y") & (cr["CYCLE"] > cr["FCYCLE"])).to_numpy()
    cr = cr.assign(_DL=dl.astype(np.int64), _DD=np.where(dl, cr["DELAYD"].to_numpy(), 0),
                   _MS=(cr["MISSFL"] == "Y").to_numpy().astype(np.int64))
    cg = cr.groupby(key, sort=True)
    cd = pd.DataFrame({"PLNDAYS": cg["_PLNLEN"].sum(), "NDELAY": cg["_DL"].sum(), "DELAYD": cg["_DD"].sum(),
                       "NMISSCYC": cg["_MS"].sum()}).reset_index()
    s = s.merge(pl, on=key, how="left").merge(cd, on=key, how="left")
    nan = s["_NAN"].fillna(False).astype(bool).to_numpy()
    s.loc[nan, "PLNCUM"] = np.nan
    issues = [InputIssue(domain="vs", variable="HEIGHT/WEIGHT", severity="warning", usubjid=str(r.USUBJID),
                         value=None, problem=f"no height/weight for the body-size dose of {r.EXTRT}; "
                         "planned dose and RDI not computed")
              for r in s.loc[nan].head(200).itertuples()]
    return s.drop(columns=["_NAN", "_TEND"]), issues

def _concat_unique(df: pd.DataFrame, key: list[str], col: str) -> pd.DataFrame:
    """Distinct non-empty values of ``col`` per key, joined with "; " (vectorised, no group loop)."""
    d = df.loc[df[col].notna(), [*key, col]].copy()
    d[col] = d[col].astype(str)
    d = d.loc[d[col] != ""].drop_duplicates().sort_values([*key, col], kind="stable")
    if d.empty:
        return pd.DataFrame(columns=[*key, col])
    vals = d[col].to_numpy(dtype=object)
    kk_s = d[key[0]].astype(str)
    for k in key[1:]:
        kk_s = kk_s + "\x00" + d[k].astype(str)
    kk = kk_s.to_numpy()
    start = np.ones(len(d), dtype=bool)
    start[1:] = kk[1:] != kk[:-1]
    sep = np.where(np.roll(start, -1) | (np.arange(len(d)) == len(d) - 1), "", "; ").astype(object)
    joined = np.add.reduceat(vals + sep, np.flatnonzero(start))
    out = d.loc[start, key].reset_index(drop=True)
    out[col] = joined
    return out




def derive_adex(
    adexlvl: pd.DataFrame,
    adsl: pd.DataFrame,
    *,
    regimen: Regimen,
    ladder: DoseLadder,
    adae: pd.DataFrame | None = None,
    options: ExposureOptions = ExposureOptions(),
) -> pd.DataFrame:
    """ADEX: one row per subject and drug with duration, dose, intensity and modifications.

    Rule
    ----
    Duration (days) = treatment end - first dose + 1, treatment end per ``duration_end``; weeks
    = days / 7 (STORM reports median weeks, "9.0 weeks (range 1-60)", domain.md 1.4). Cycles
    started (CYCLES) = cycles (:func:`derive_cycles`) with at least one dose of the drug.
    Planned weekly dose (PLNWKDOS, mg) = planned dose of the drug's cycles / their planned weeks
    (:func:`_drug_summary`); actual weekly dose (ACTWKDOS, dose intensity) = cumulative dose /
    DIDURD weeks, DIDURD = days from the start of the drug's first cycle (its first dose when
    earlier) to the treatment end; RDI = actual / planned. For a body-size drug the same in its unit:
    CUMDOSEU, PLNWKDU, ACTWKDU (DOSEUNIT mg/m2 or mg/kg). NDELAY/DELAYD: delayed cycle starts;
    NMISSCYC: missed cycles (cycles from ex only). Time to first reduction = days from first dose
    to the start of the first reduced run.

    Algorithm
    ---------
    Group the runs by subject and drug with vectorised aggregations; join the per-drug summary
    of :func:`derive_exposure_intervals` (``adexlvl.attrs["exposure"]``); add AE-derived actions
    (TEAEs with AEACN DOSE REDUCED / DRUG INTERRUPTED / DRUG WITHDRAWN) from ``adae``.
    """
    exposure_info = adexlvl.attrs.get("exposure", {})
    # the runs without their attrs: pandas deep-copies ``attrs`` (here frames of cycles and plans)
    # into the result of every operation on the frame (issue 15: 60% of this function's CPU)
    lv = adexlvl.copy(deep=False)
    lv.attrs = {}
    key = ["USUBJID", "EXTRT"]
    st = lv["ASTDT"].to_numpy(dtype="datetime64[D]")
    end_col = {"dose_period": "PERENDT", "interval_end": "AENDT", "last_dose": "LDOSEDT"}[options.duration_end]
    work = lv.assign(
        _END=lv[end_col],
        _RED=(lv["CHGTYPE"] == "REDUCTION").astype(int),
        _ESC=(lv["CHGTYPE"] == "ESCALATION").astype(int),
        _INT=(lv["RESTFL"] == "Y").astype(int),
        _GAP=np.where(lv["RESTFL"] == "Y", lv["GAPDAYS"], 0),
        _REDDT=np.where(lv["CHGTYPE"].to_numpy() == "REDUCTION", st, np.datetime64("NaT")),
        _REDREAS=np.where(lv["CHGTYPE"].to_numpy() == "REDUCTION", lv["CHGREAS"].to_numpy(dtype=object), None),
    )
    agg = work.groupby(key, sort=True).agg(
        TRTSDT=("ASTDT", "min"),
        TRTEDT=("_END", "max"),
        LDOSEDT=("LDOSEDT", "max"),
        NINTV=("INTSEQ", "size"),
        NDOSES=("NDOSES", "sum"),
        CUMDOSE=("INTDOSE", "sum"),
        NREDUC=("_RED", "sum"),
        NESCAL=("_ESC", "sum"),
        NINTERR=("_INT", "sum"),
        INTRDAYS=("_GAP", "sum"),
        FRSTREDT=("_REDDT", "min"),
        MINLVL=("DOSELVL", "min"),
        STARTLVL=("DOSELVL", "first"),
        LASTLVL=("DOSELVL", "last"),
    ).reset_index()
    for col, src in (("REDREAS", "_REDREAS"), ("INTRREAS", "INTRREAS")):
        j = _concat_unique(work.rename(columns={src: col}), key, col)
        agg = agg.merge(j, on=key, how="left")
        agg[col] = agg[col].fillna("")
    sdt = agg["TRTSDT"].to_numpy(dtype="datetime64[D]")
    edt = agg["TRTEDT"].to_numpy(dtype="datetime64[D]")
    agg["TRTDURD"] = (edt - sdt).astype("int64") + 1
    agg["TRTDURW"] = agg["TRTDURD"] / 7.0
    info = exposure_info.get("drug")
    if info is None:
        info = pd.DataFrame({c: pd.Series(dtype=object) for c in [
            *key, "CYCLES", "FCYCLE", "LCYCLE", "CUMDOSEU", "DOSEUNIT", "FCYCSTDT", "PLNCUM", "PLNCUMU", "PLNDAYS",
            "NDELAY", "DELAYD", "NMISSCYC"]})
    agg = agg.merge(info, on=key, how="left")
    plndays = agg["PLNDAYS"].to_numpy(dtype=float)
    agg["PLNWKDOS"] = agg["PLNCUM"].to_numpy(dtype=float) / plndays * 7.0
    agg["PLNWKDU"] = agg["PLNCUMU"].to_numpy(dtype=float) / plndays * 7.0
    # dose intensity over the drug's cycles: from the start of its first cycle (= first dose for a
    # drug dosed from day 1; a drug first planned on day 8 is not credited 7 extra days)
    fcs = pd.to_datetime(agg["FCYCSTDT"]).to_numpy(dtype="datetime64[D]")
    dist = np.where(np.isnat(fcs) | (fcs > sdt), sdt, fcs)
    agg["DIDURD"] = (edt - dist).astype("int64") + 1
    agg["ACTWKDOS"] = agg["CUMDOSE"] / (agg["DIDURD"] / 7.0)
    agg["ACTWKDU"] = agg["CUMDOSEU"].astype(float) / (agg["DIDURD"] / 7.0)
    agg["RDI"] = agg["ACTWKDOS"] / agg["PLNWKDOS"]
    for c in ("CYCLES", "NDELAY", "DELAYD", "NMISSCYC"):
        agg[c] = agg[c].fillna(0).astype(np.int64)
    frd = agg["FRSTREDT"].to_numpy(dtype="datetime64[D]")
    agg["TTFRED"] = np.where(np.isnat(frd), np.nan, (frd - sdt).astype("int64"))
    agg["REDFL"] = np.where(agg["NREDUC"] > 0, "Y", "N")
    agg["INTFL"] = np.where(agg["NINTERR"] > 0, "Y", "N")
    agg["DELAYFL"] = np.where(agg["NDELAY"] > 0, "Y", "N")
    agg["STUDYDFL"] = np.where(agg["EXTRT"] == regimen.study_drug.upper(), "Y", "")
    if adae is not None and len(adae):
        te = adae.loc[adae["TRTEMFL"] == "Y"]
        flags = pd.DataFrame({
            "USUBJID": te["USUBJID"].to_numpy(),
            "NAERED": (te["ARDFL"] == "Y").to_numpy(dtype=int),
            "NAEINT": (te["AINTFL"] == "Y").to_numpy(dtype=int),
            "NAEWD": (te["AWDFL"] == "Y").to_numpy(dtype=int),
        }).groupby("USUBJID", sort=False).sum().reset_index()
        agg = agg.merge(flags, on="USUBJID", how="left")
        for c in ("NAERED", "NAEINT", "NAEWD"):
            agg[c] = agg[c].fillna(0).astype(int)
    else:
        agg["NAERED"] = 0
        agg["NAEINT"] = 0
        agg["NAEWD"] = 0
    agg["AEDISFL"] = np.where(agg["NAEWD"] > 0, "Y", "N")
    if "DCTREAS" in adsl:
        d = adsl[["USUBJID", "DCTREAS"]].drop_duplicates("USUBJID")
        agg = agg.merge(d, on="USUBJID", how="left")
    return agg


def derive_exposure_by_arm(
    ex: pd.DataFrame,
    adsl: pd.DataFrame,
    *,
    arm_of: pd.Series,
    regimens: Mapping[str, Regimen],
    ladders: Mapping[str, DoseLadder],
    ladder_fors: Mapping[str, Callable[[str, int], Sequence[Any]] | None],
    options: ExposureOptions = ExposureOptions(),
    vs: pd.DataFrame | None = None,
    adae: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ADEXLVL and ADEX of a randomised trial: each subject against its own arm's regimen.

    Rule
    ----
    Data contract v2: exposure, dose intensity and modifications are measured against the
    regimen of the arm the subject received (``arm_of``: USUBJID -> arm code, normally ACTARMCD,
    else ARMCD). Vectorised by arm: ex is split into one frame per arm (two) and each goes
    through :func:`derive_exposure_intervals` and :func:`derive_adex` with that arm's regimen and
    ladder; the results are stacked (ADEX gains ``ARMCD`` = the regimen's arm). The cycles and
    per-drug plans of ``attrs["exposure"]`` are stacked too; ``cycle_source`` is the first arm's.
    """
    code = lookup(ex["USUBJID"], arm_of).astype("string").str.upper()
    up = {k.upper(): k for k in regimens}
    lv_parts, adex_parts, issues, cycles, drug = [], [], [], [], []
    cyc_src = ""
    for key, arm in up.items():  # one pass per arm (two)
        sub = ex.loc[(code == key).fillna(False).to_numpy(dtype=bool)]
        if sub.empty:
            continue
        lv = derive_exposure_intervals(sub, ladder=ladders[arm], regimen=regimens[arm], options=options,
                                       end_fallback=adsl, vs=vs, ladder_for=ladder_fors.get(arm))
        ad = derive_adex(lv, adsl, regimen=regimens[arm], ladder=ladders[arm], adae=adae, options=options)
        ad.insert(1, "ARMCD", arm)
        info = lv.attrs.get("exposure", {})
        issues += lv.attrs.get("issues", [])
        if info.get("cycles") is not None:
            cycles.append(info["cycles"])
        if info.get("drug") is not None:
            drug.append(info["drug"])
        cyc_src = cyc_src or str(info.get("cycle_source", ""))
        lv.attrs = {}
        lv_parts.append(lv)
        adex_parts.append(ad)
    if not lv_parts:  # no dose in any arm: the single-regimen path gives the empty frames
        first = next(iter(up.values()))
        lv = derive_exposure_intervals(ex.iloc[:0], ladder=ladders[first], regimen=regimens[first], options=options,
                                       end_fallback=adsl, vs=vs, ladder_for=ladder_fors.get(first))
        return lv, derive_adex(lv, adsl, regimen=regimens[first], ladder=ladders[first], adae=adae, options=options)
    lvl = pd.concat(lv_parts, ignore_index=True)
    adex = pd.concat(adex_parts, ignore_index=True).sort_values(["USUBJID", "EXTRT"], kind="stable").reset_index(drop=True)
    lvl.attrs["issues"] = issues
    lvl.attrs["exposure"] = {"cycles": pd.concat(cycles, ignore_index=True) if cycles else None,
                             "drug": pd.concat(drug, ignore_index=True) if drug else None,
                             "cycle_source": cyc_src or "INFERRED"}
    return lvl, adex
