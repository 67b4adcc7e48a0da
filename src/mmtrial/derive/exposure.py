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
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmtrial._frames import lookup
from mmtrial.derive._groups import (
    codes_of,
    equality_keys,
    first_valid,
    group_ids,
    group_starts,
    group_sum,
    is_lex_sorted,
    lex_order,
    row_lookup,
    same_as_prev,
    shared_codes,
    take_or_na,
    unique_sorted,
    yes_flags,
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


def _expand(rows: pd.DataFrame, options: ExposureOptions) -> tuple[pd.DataFrame, np.ndarray, np.ndarray,
                                                                   np.ndarray, np.ndarray]:
    """The administrations of :func:`expand_administrations` as arrays, without a row of text each.

    Returns ``r`` (the dosing rows, EXDOSE > 0) and, per administration ordered by subject, drug
    and date: its row of ``r`` (ROWID), its date as integer days, ROWCOV and PERWK (issue 15: the
    row's text is taken per run, not per administration)."""
    r = rows.loc[rows["EXDOSE"].to_numpy() > 0].reset_index(drop=True)
    st = _days(r["ASTDT"])
    nd = _days(r["AENDT"]) - st + 1
    frq = r["EXDOSFRQ"].to_numpy(dtype=object)
    # administrations per row, counted without listing the row's days (issue 15): every day
    # (QD), one (ONCE), or a weekly pattern's days in the row's days (compute_doses_in_interval)
    per_row = np.where(frq == "ONCE", 1, np.where(np.isin(frq, SCHEDULE_CODES), nd, 0))
    pattern = np.full(len(r), -1, dtype=np.int64)
    codes = list(options.weekly_codes().items())
    for k, (c, days) in enumerate(codes):
        m_row = frq == c
        if m_row.any():
            pattern[m_row] = k
            per_row[m_row] = compute_doses_in_interval(nd[m_row], days)
    per_row = np.maximum(per_row, 0)
    idx = np.repeat(np.arange(len(r)), per_row)
    i_in_row = np.arange(int(per_row.sum()), dtype=np.int64) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    off = i_in_row  # QD: the row's i-th day; ONCE: its first
    cover = np.full(len(idx), np.nan)
    perwk = np.full(len(idx), np.nan)
    if (pattern >= 0).any():
        pat = pattern[idx]
        for k, (_c, days) in enumerate(codes):
            m = pat == k
            if m.any():
                # the i-th dose of a weekly pattern: week i // len(days), that week's (i % len(days))-th day
                o = i_in_row[m] // len(days) * 7 + np.asarray(days, dtype=np.int64)[i_in_row[m] % len(days)] - 1
                off[m] = o
                cover[m] = compute_dose_cover_days(o, days)
                perwk[m] = len(days)
        del pat
    day = st[idx] + off
    del off, i_in_row
    # stable order by subject, drug and date on integer codes (codes in the text's sort order,
    # missing last: the order of pandas' stable sort_values, without sorting text)
    subj, _ = codes_of(r["USUBJID"])
    drug, _ = codes_of(r["EXTRT"])
    if len(idx) > 1:
        s_i, d_i = subj[idx], drug[idx]
        in_order = bool(np.all((s_i[1:] > s_i[:-1]) | ((s_i[1:] == s_i[:-1]) & (
            (d_i[1:] > d_i[:-1]) | ((d_i[1:] == d_i[:-1]) & (day[1:] >= day[:-1]))))))
        if not in_order:
            order = np.lexsort((day, d_i, s_i))
            idx, day, cover, perwk = idx[order], day[order], cover[order], perwk[order]
    return r, idx, day, cover, perwk


def expand_administrations(rows: pd.DataFrame, options: ExposureOptions) -> pd.DataFrame:
    """One row per administration day from typed ex rows (run-form or day-form), vectorised.

    Rule
    ----
    ``ONCE``: EXSTDT; ``QD``: every day EXSTDT..EXENDT; a weekly code: its days of each week
    counted from EXSTDT (docs/data-contract.md, ex). Zero-dose rows give no administration.
    ROWCOV = days the administration covers by the row's own weekly pattern (NaN for QD/ONCE).
    """
    r, idx, day, cover, perwk = _expand(rows, options)
    adm = r.iloc[idx][["USUBJID", "EXTRT", "EXDOSE", "EXDOSU", "EXDOSFRQ", "EXADJ", "ROWNUM", "AENDT",
                       "EXCYCLE", "VISCYC"]].reset_index(drop=True)
    adm = adm.rename(columns={"AENDT": "ROWENDT"})
    adm.insert(2, "ADT", _date(day))
    adm["ROWCOV"] = cover
    adm["PERWK"] = perwk
    adm["ROWID"] = idx
    return adm


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
    subj, subj_names = codes_of(adm["USUBJID"].astype(str))
    drug, drug_names = codes_of(adm["EXTRT"])
    out, src, cyc, _, _ = _cycles(
        _days(adm["ADT"]), subj, np.asarray(subj_names, dtype=object), drug, np.asarray(drug_names, dtype=object),
        adm["EXCYCLE"].to_numpy(dtype=float), adm["VISCYC"].to_numpy(dtype=float),
        lambda i: (int(adm["ROWNUM"].iat[i]), str(adm["USUBJID"].iat[i])), regimen, options)
    adm["CYCLE"] = cyc
    return out, src


def _cycles(day: np.ndarray, subj_codes: np.ndarray, subj_names: np.ndarray, drug: np.ndarray,
            drug_names: np.ndarray, excyc: np.ndarray, viscyc: np.ndarray,
            row_of: Callable[[int], tuple[int, str]], regimen: Regimen,
            options: ExposureOptions) -> tuple[pd.DataFrame, str, np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`derive_cycles` on arrays: administrations' days, subject codes (in the names' sort
    order; ``subj_names[code]``), drug codes (``drug_names[code]``; missing = ``len(drug_names)``),
    EXCYCLE and VISIT cycles. Returns the cycles table, the source, each administration's CYCLE,
    each cycle row's subject code and, for inferred cycles, each administration's row of the
    cycles table (None for cycles from ex: looked up by the caller)."""
    src = "INFERRED"
    if len(day) == 0:
        nat = np.array([], dtype="datetime64[D]")
        return pd.DataFrame({"USUBJID": np.array([], dtype=object), "CYCLE": np.array([], np.int64),
                             "CYCSTDT": nat, "PLNSTDT": nat, "CYCLEN": np.array([], np.int64),
                             "DELAYD": np.array([], np.int64), "DELAYFL": np.array([], dtype=object),
                             "MISSFL": np.array([], dtype=object), "CYCSRC": np.array([], dtype=object)}), src, \
            np.array([], dtype=np.int64), np.array([], dtype=np.int64), None
    if options.cycle_source != "infer":
        if np.isfinite(excyc).all():
            src = "EXCYCLE"
        elif np.isfinite(viscyc).all():
            src = "VISIT"
    if options.cycle_source == "ex" and src == "INFERRED":
        bad = ~np.isfinite(excyc)
        raise StudyInputError([
            InputIssue(domain="ex", variable="EXCYCLE", row=row_of(i)[0], usubjid=row_of(i)[1], value=None,
                       problem="cycle number missing (EXCYCLE, or VISIT 'CYCLE n')",
                       hint="[exposure] cycle_source = \"ex\" needs a cycle on every dosing row; "
                            "use \"auto\" to infer cycles from dosing.")
            for i in np.flatnonzero(bad)[:200]])
    max_span = int(day.max() - day.min()) + 1
    min_len = min(ph.cycle_length_days for ph in regimen.effective_phases())
    n_len = max_span // min_len + 3
    if src != "INFERRED":
        given = (excyc if src == "EXCYCLE" else viscyc).astype(np.int64)
        n_len = max(n_len, int(given.max()) + 2)
    lengths = compute_cycle_lengths(regimen, n_len)
    if src == "INFERRED":
        s_o, d_o = subj_codes, day  # in (subject, day) order already when a subject has one drug
        if not is_lex_sorted([subj_codes, day]):
            order = lex_order([subj_codes, day])
            s_o, d_o = subj_codes[order], day[order]
        sch = regimen.schedule(min(n_len, max(ph.cycles[0] for ph in regimen.effective_phases()) + 1))
        fd = sch.groupby("CYCLE")["CYCLEDY"].min()
        first_day = fd.reindex(np.arange(1, n_len + 1)).ffill().fillna(1).to_numpy(dtype=np.int64)
        starts = infer_cycle_starts(s_o, d_o, lengths, first_day)
        del s_o, d_o
        starts["MISSFL"] = ""
    else:
        # a cycle starts (first planned day of the drug in that cycle - 1) days before the drug's
        # first administration in it (the same rule as for inferred cycles, per drug)
        sch = regimen.schedule(int(given.max()))
        fdy = sch.assign(DRUG=sch["DRUG"].astype(str).str.upper()).groupby(["DRUG", "CYCLE"])["CYCLEDY"].min()
        fdy = fdy.rename("FDY").reset_index()
        # the drugs' names as ex gives them (upper case), matched to the schedule's per drug code
        names_up = pd.Series(np.r_[drug_names, [None]]).astype(str).str.upper()
        dmap = pd.Index(fdy["DRUG"].drop_duplicates()).get_indexer(names_up)
        fcode = pd.Index(fdy["DRUG"].drop_duplicates()).get_indexer(fdy["DRUG"])
        j = row_lookup([dmap[drug], given], [fcode, fdy["CYCLE"].to_numpy(dtype=np.int64)])
        off = np.where(j >= 0, fdy["FDY"].to_numpy(dtype=float)[j], np.nan)
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
        "USUBJID": subj_names[sid],
        "CYCLE": cyc,
        "CYCSTDT": _date(st.astype(np.int64)),
        "PLNSTDT": _date(pln.astype(np.int64)),
        "CYCLEN": ln,
        "DELAYD": delay,
        "DELAYFL": yes_flags(delay >= options.min_delay_days),
        "MISSFL": yes_flags((starts["MISSFL"] == "Y").to_numpy(dtype=bool)),
        "CYCSRC": src,
    })
    if src == "INFERRED":
        # each administration's cycle: the last start on or before its day within its subject
        # (merge_asof backward by subject) as a binary search on one integer key per row
        lo_d = int(min(day.min(), st.min())) - 1
        span = int(max(day.max(), st.max())) - lo_d + 2
        ckey = sid.astype(np.int64) * span + (st.astype(np.int64) - lo_d)
        corder = np.argsort(ckey, kind="stable")
        j = np.searchsorted(ckey[corder], subj_codes.astype(np.int64) * span + (day - lo_d), side="right") - 1
        adm_row = corder[j]
        adm_cyc = cyc[adm_row]
    else:
        adm_cyc, adm_row = given, None
    return out, src, adm_cyc, sid.astype(np.int64), adm_row


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


def _unit_kind(unit: pd.Series) -> np.ndarray:
    """0 = a dose in mg (or no unit), 1 = mg/m2 (x BSA), 2 = mg/kg (x weight)."""
    u = unit.to_numpy(dtype=object)
    return np.select([u == "mg/m2", u == "mg/kg"], [1, 2], default=0).astype(np.int64)


def _body_fac(kind: np.ndarray, subj_names: np.ndarray, subj: np.ndarray, day: np.ndarray, body: pd.DataFrame,
              formula: Any) -> np.ndarray:
    """mg per unit of dose on each day (:func:`_unit_kind` codes): 1 for mg; the subject's BSA or
    weight on that day (:func:`lookup_body_size`) for mg/m2 or mg/kg, looked up only for those."""
    fac = np.ones(len(kind))
    need = kind > 0
    if need.any():
        bs = lookup_body_size(pd.DataFrame({"USUBJID": subj_names[subj[need]], "ADT": _date(day[need])}),
                              body, formula)
        fac[need] = np.where(kind[need] == 1, bs["BSA"].to_numpy(dtype=float), bs["WEIGHT"].to_numpy(dtype=float))
    return fac


def _next_planned_day(sch: pd.DataFrame, drugs: pd.Index, drug: np.ndarray, cyc: np.ndarray,
                      cdy: np.ndarray) -> np.ndarray:
    """The drug's next planned day after ``cdy`` in the same cycle (NaN: none, or a drug not in
    ``drugs``): a forward as-of lookup on one integer key (drug, cycle, day) per planned day."""
    out = np.full(len(cdy), np.nan)
    nx = sch[["DRUG", "CYCLE", "CYCLEDY"]].drop_duplicates()
    if len(nx) == 0 or len(cdy) == 0:
        return out
    n_dc = drugs.get_indexer(nx["DRUG"]).astype(np.int64)
    n_c = nx["CYCLE"].to_numpy(dtype=np.int64)
    n_dy = nx["CYCLEDY"].to_numpy(dtype=np.int64)
    dmin, dmax = int(n_dy.min()), int(n_dy.max())
    w = dmax - dmin + 3
    wc = int(max(n_c.max(), cyc.max())) + 2
    sk = (n_dc * wc + n_c) * w + (n_dy - dmin + 1)
    o = np.argsort(sk, kind="stable")
    sk, sdy = sk[o], n_dy[o]
    ok = drug >= 0
    g = drug * wc + cyc
    q = g * w + (np.clip(cdy, dmin - 1, dmax + 1) - dmin + 1)
    pos = np.minimum(np.searchsorted(sk, q, side="right"), len(sk) - 1)
    hit = ok & (sk[pos] // w == g) & (sk[pos] > q)
    return np.where(hit, sdy[pos].astype(float), np.nan)


def _cum_outside_window(subj: np.ndarray, drug: np.ndarray, c_hi: np.ndarray, c_lo: np.ndarray,
                        dmap: np.ndarray, cy_sid: np.ndarray, cy_cyc: np.ndarray, cy_len: np.ndarray,
                        info: pd.DataFrame, i_dc: np.ndarray) -> np.ndarray:
    """Days outside the drug's dosing windows in the subject's cycles after ``c_lo`` up to
    ``c_hi`` (NaN when either cycle is not the subject's): per cycle the whole cycle when the drug
    is not in the regimen, its length when not planned in that cycle, else the days before its
    first planned day; cumulated over the subject's cycles in order."""
    w = int(drug.max()) + 2
    upk, inv = np.unique(subj * w + drug, return_inverse=True)
    ps, pd_ = upk // w, upk % w
    lo = np.searchsorted(cy_sid, ps, side="left")
    cnt = np.searchsorted(cy_sid, ps, side="right") - lo
    gpair = np.repeat(np.arange(len(upk)), cnt)
    pstart = np.cumsum(cnt) - cnt
    grow = np.repeat(lo, cnt) + np.arange(int(cnt.sum())) - np.repeat(pstart, cnt)
    g_cyc = cy_cyc[grow]
    g_di = dmap[pd_[gpair]]
    j = row_lookup([g_di, g_cyc], [i_dc, info["CYCLE"].to_numpy(dtype=np.int64)])
    fd = np.where(j >= 0, info["FIRSTDY"].to_numpy(dtype=float)[j], np.nan)
    nw = np.where(g_di < 0, 0, np.where(np.isnan(fd), cy_len[grow].astype(float), fd - 1))
    csum = np.cumsum(nw)
    cnw = csum - np.repeat(np.r_[0.0, csum][pstart], cnt)

    def at(c: np.ndarray) -> np.ndarray:
        k = row_lookup([inv, c], [gpair, g_cyc])
        return np.where(k >= 0, cnw[k], np.nan)

    return at(c_hi) - at(c_lo)


def _plan_day_rows(j_info: np.ndarray, cdy: np.ndarray, p_info: np.ndarray, p_dy: np.ndarray,
                   n_info: int) -> np.ndarray:
    """Row of the planned days (drug, cycle, cycle day; unique) for each administration (-1:
    none): a table (drug and cycle's row of the plan ``info`` x cycle day) read at each
    administration's ``info`` row ``j_info`` (-1: none) and cycle day ``cdy``; ``p_info``, ``p_dy``:
    each planned day's ``info`` row and cycle day (issue 15: a lookup of two small integers
    instead of packing three administration-sized key columns)."""
    out = np.full(len(cdy), -1, dtype=np.int64)
    if len(p_dy) == 0 or len(cdy) == 0:
        return out
    lo, hi = int(p_dy.min()), int(p_dy.max())
    table = np.full((n_info, hi - lo + 1), -1, dtype=np.int64)
    known = p_info >= 0  # every planned day's drug and cycle is a row of info (both from the schedule)
    table[p_info[known], p_dy[known] - lo] = np.flatnonzero(known)
    ok = (j_info >= 0) & (cdy >= lo) & (cdy <= hi)
    out[ok] = table[j_info[ok], cdy[ok] - lo]
    return out


def _ex_row_of(r: pd.DataFrame, idx: np.ndarray, i: int) -> tuple[int, str]:
    """ROWNUM and USUBJID of administration ``i`` (its ex row ``idx[i]``), for messages."""
    return int(r["ROWNUM"].iat[idx[i]]), str(r["USUBJID"].iat[idx[i]])


def _at(values: pd.Series, j: np.ndarray) -> np.ndarray:
    """``values`` (as floats) at rows ``j``; NaN where ``j`` is -1 (not found)."""
    return np.where(j >= 0, values.to_numpy(dtype=float)[j], np.nan)


def _first_rows(valid_rows: np.ndarray, idx: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Row of ``r`` of each run's first administration whose ex row has a value (-1: none):
    pandas' ``first()`` (first non-missing) per run; ``idx``: each administration's row."""
    if valid_rows.all():  # issue 15: no administration-sized pass when every row has a value
        return idx[starts]
    if not valid_rows.any():
        return np.full(len(starts), -1, dtype=np.int64)
    pos = first_valid(valid_rows[idx], starts)
    return np.where(pos >= 0, idx[np.maximum(pos, 0)], -1)


def _first_num(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """First non-NaN value of each run (NaN: none), as pandas' ``first()``."""
    pos = first_valid(~np.isnan(values), starts)
    return np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)


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
    r, idx, day, rowcov, perwk = _expand(rows, options)
    # subject and drug as integer codes in their text's sort order (issue 15: the administrations
    # carry codes and their ex row, not text; text is taken per run)
    r_s, s_names = codes_of(r["USUBJID"])
    r_d, d_names = codes_of(r["EXTRT"])
    s_names = np.asarray(s_names, dtype=object)
    d_names = np.asarray(d_names, dtype=object)
    a_s, a_d = r_s[idx], r_d[idx]
    cycles, cyc_src, cyc, cy_sid, j_cy = _cycles(
        day, a_s, s_names, a_d, d_names, r["EXCYCLE"].to_numpy(dtype=float)[idx],
        r["VISCYC"].to_numpy(dtype=float)[idx],
        partial(_ex_row_of, r, idx), regimen, options)
    if len(idx) == 0:  # no dose given at all: no runs
        lv = pd.DataFrame({c: pd.Series(dtype=t) for c, t in LVL_COLUMNS.items()})
        lv.attrs["issues"] = [*warn, *vs_issues]
        lv.attrs["exposure"] = {"cycles": cycles, "drug": None, "cycle_source": cyc_src}
        return lv
    n_cyc = int(cycles["CYCLE"].max()) + 1 if len(cycles) else 2
    sch, info = _drug_cycle_plan(regimen, n_cyc)
    # --- administrations joined to their cycle and the schedule (lookups on integer keys) ------
    cy_cyc = cycles["CYCLE"].to_numpy(dtype=np.int64)
    cs = _days(cycles["CYCSTDT"])
    cy_len = cycles["CYCLEN"].to_numpy(dtype=np.int64)
    if j_cy is None:  # cycles from ex; inferred cycles come with each administration's row
        j_cy = row_lookup([a_s, cyc], [cy_sid, cy_cyc])  # every administration's cycle is in cycles
    a_cs = cs[j_cy]
    cdy = (day - a_cs + 1).astype(np.int64)
    clen = cy_len[j_cy].astype(float)
    del j_cy
    # drugs of the regimen: ex's drug codes -> the plan's (-1: not in the regimen)
    i_drugs = pd.Index(info["DRUG"].drop_duplicates())
    dmap = i_drugs.get_indexer(pd.Index(np.r_[d_names, [None]].astype(object)))
    a_di = dmap[a_d]
    i_dc = i_drugs.get_indexer(info["DRUG"])
    j_i = row_lookup([a_di, cyc], [i_dc, info["CYCLE"].to_numpy(dtype=np.int64)])
    has_i = j_i >= 0

    i_unit_ok = info["UNIT"].notna().to_numpy()
    in_reg = has_i & i_unit_ok[j_i]
    plan_day = sch.drop_duplicates(["DRUG", "CYCLE", "CYCLEDY"])
    j_pd = _plan_day_rows(j_i, cdy, row_lookup([i_drugs.get_indexer(plan_day["DRUG"]),
                                                plan_day["CYCLE"].to_numpy(dtype=np.int64)],
                                               [i_dc, info["CYCLE"].to_numpy(dtype=np.int64)]),
                          plan_day["CYCLEDY"].to_numpy(dtype=np.int64), len(info))
    plndayds = np.where(j_pd >= 0, plan_day["DOSE"].to_numpy(dtype=float)[j_pd], np.nan)
    del j_pd
    kind = np.where(has_i, _unit_kind(info["UNIT"])[j_i], 0)
    fac = _body_fac(kind, s_names, a_s, day, body, regimen.bsa_formula)
    del kind
    dose = r["EXDOSE"].to_numpy(dtype=float)[idx]
    doseu = dose / fac  # in the regimen's unit (mg/m2, mg/kg or mg)
    # next planned day of the drug in the same cycle -> the schedule's dose period
    nextdy = _next_planned_day(sch, i_drugs, a_di, cyc, cdy)
    sched_cov = np.where(np.isnan(nextdy), clen - cdy + 1, nextdy - cdy)
    sched_cov = np.maximum(sched_cov, 1)
    weekly = ~np.isnan(rowcov)
    cover = np.where(weekly, np.where(in_reg & np.isnan(nextdy), np.maximum(rowcov, sched_cov), rowcov),
                     np.where(in_reg, sched_cov, 1.0)).astype(np.int64)
    del sched_cov, nextdy
    perend = day + cover - 1
    # dose relative to the plan in force
    npl = _at(info["NPL"], j_i)
    target = _at(info["TARGET"], j_i)
    plan_wk = target * npl * 7.0 / clen * fac
    plan_adm = np.where(np.isnan(plndayds), target, plndayds) * fac
    wkdose = np.where(weekly, dose * perwk, np.where(in_reg, dose * npl * 7.0 / clen, np.nan))
    ratio = np.where(weekly, dose * perwk / plan_wk, dose / plan_adm)
    raw = np.where(weekly, dose * perwk, dose)
    cmp_ = np.where(np.isfinite(ratio), ratio, raw)
    del plan_wk, plan_adm, raw, npl, target, plndayds
    # --- gaps: interruption days between consecutive administrations of a drug ----------------
    n = len(idx)
    same = np.zeros(n, dtype=bool)
    same[1:] = (a_s[1:] == a_s[:-1]) & (a_d[1:] == a_d[:-1])
    prev_end = np.r_[0, perend[:-1]]
    u0, u1 = prev_end + 1, day - 1
    del prev_end
    ulen = np.where(same, np.maximum(u1 - u0 + 1, 0), 0)
    prev_c = np.r_[0, cyc[:-1]]
    crossed = same & (cyc > prev_c)
    ce = cs + cy_len - 1
    csame = np.r_[False, cy_sid[1:] == cy_sid[:-1]] if len(cy_sid) else np.zeros(0, dtype=bool)
    gap_before = np.where(csame, np.maximum(cs - np.r_[0, ce[:-1]] - 1, 0), 0)
    # cumulative days that delayed cycle starts, within a subject
    cum_delay = pd.Series(gap_before).groupby(cy_sid).cumsum().to_numpy()
    # only the administrations that start a new cycle of their drug need the cycle lookups
    x = np.flatnonzero(crossed)
    xs, xc, xp = a_s[x], cyc[x], prev_c[x]

    def at(j: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.where(j >= 0, values.astype(float)[j], np.nan)

    j_p, j_p1, j_c = (row_lookup([xs, c], [cy_sid, cy_cyc]) for c in (xp, xp + 1, xc))
    e_p, s_p1 = at(j_p, ce), at(j_p1, cs)
    cd_p1, cd_c, s_c = at(j_p1, cum_delay), at(j_c, cum_delay), at(j_c, cs)
    xu0, xu1 = u0[x], u1[x]
    ov1 = np.maximum(np.minimum(xu1, s_p1 - 1) - np.maximum(xu0, e_p + 1) + 1, 0)
    delay_in_gap = np.zeros(n)
    delay_in_gap[x] = np.nan_to_num(ov1) + np.nan_to_num(cd_c - cd_p1)
    first_dy = _at(info["FIRSTDY"], j_i[x])
    pw = np.zeros(n)
    pw[x] = np.where(~np.isnan(first_dy),
                     np.maximum(np.minimum(xu1, s_c + first_dy - 2) - np.maximum(xu0, s_c) + 1, 0), 0)
    # cycles passed over entirely: days outside the drug's dosing window (the whole cycle when the
    # drug is not planned in it, else the days before its first planned day) are not interruptions
    skipped = np.zeros(n)
    m2 = xc - 1 > xp
    if m2.any():
        x2 = x[m2]
        cnw = _cum_outside_window(a_s[x2], a_d[x2], xc[m2] - 1, xp[m2], dmap, cy_sid, cy_cyc, cy_len, info, i_dc)
        skipped[x2] = np.nan_to_num(cnw)
    intdays = (ulen - np.nan_to_num(pw) - skipped
               - (0 if options.delay_is_interruption else delay_in_gap))
    intdays = np.where(same, np.maximum(intdays, 0), 0).astype(np.int64)
    del u0, u1, ulen, pw, skipped, delay_in_gap
    intr = same & (intdays >= options.min_interruption_days)
    # --- runs ------------------------------------------------------------------------------------
    frq_code = np.asarray(pd.factorize(r["EXDOSFRQ"])[0], dtype=np.int64)
    code = np.where(weekly, frq_code[idx], -1)
    prev_cmp = np.r_[np.nan, cmp_[:-1]]
    tol = options.dose_change_tolerance
    with np.errstate(divide="ignore", invalid="ignore"):
        big_change = np.abs(cmp_ / prev_cmp - 1) > tol + 1e-9
    new_run = (~same | intr | (code != np.r_[-2, code[:-1]])
               | (weekly & (idx != np.r_[-1, idx[:-1]]))
               | (dose != np.r_[np.nan, dose[:-1]])
               | big_change)
    del prev_cmp, big_change, code
    starts = np.flatnonzero(new_run)
    last = np.r_[starts[1:], n] - 1
    run_id = np.cumsum(new_run) - 1
    del new_run

    def first_text(col: str, r: pd.DataFrame = r, idx: np.ndarray = idx, starts: np.ndarray = starts) -> pd.Series:
        return take_or_na(r[col], _first_rows(r[col].notna().to_numpy(), idx, starts))

    # pandas' group sums, one column at a time as before: pandas picks its algorithm per column
    # (``ufunc.reduceat`` for sorted groups without NaN, else a compensated sum), so the bits match
    intdose = group_sum(dose, run_id).to_numpy()
    intdoseu = group_sum(doseu, run_id).to_numpy()
    unit_pos = first_valid(in_reg, starts)
    unit_row = np.where(unit_pos >= 0, j_i[np.maximum(unit_pos, 0)], -1)
    lv = pd.DataFrame({
        "USUBJID": first_text("USUBJID"), "EXTRT": first_text("EXTRT"), "EXDOSE": dose[starts],
        "EXDOSU": first_text("EXDOSU"), "EXDOSFRQ": first_text("EXDOSFRQ"),
        "ASTDT": pd.to_datetime(_date(day[starts])),
        "AENDT": pd.to_datetime(_date(np.maximum.reduceat(_days(r["AENDT"])[idx], starts))),
        "EXADJ": first_text("EXADJ"), "ROWNUM": r["ROWNUM"].to_numpy()[idx[starts]],
        "NDOSES": (last - starts + 1).astype(np.int64), "INTDOSE": intdose,
        "INTDOSEU": intdoseu, "WKDOSE": _first_num(wkdose, starts), "DOSERAT": _first_num(ratio, starts),
        "_CMP": _first_num(cmp_, starts), "LDOSEDT": pd.to_datetime(_date(day[last])),
        "PERENDT": pd.to_datetime(_date(perend[last])), "GAPDAYS": intdays[starts],
        "_INT": intr[starts], "CYCLE": cyc[starts], "UNIT": take_or_na(info["UNIT"], unit_row),
        "_D0": day[starts], "_FAC": _first_num(fac, starts),
    })
    del intdose, intdoseu, wkdose, ratio, intdays, run_id
    # the per-drug summary next, once the other administration-level arrays are freed (issue 15:
    # its planned administrations then reuse their memory)
    if options.duration_end == "dose_period":
        end = perend
    elif options.duration_end == "interval_end":
        end = _days(r["AENDT"])[idx]
    else:
        end = day
    per_adm = {"S": a_s, "D": a_d, "CYCLE": cyc, "DOSEU": doseu, "UROW": np.where(in_reg, j_i, -1), "CS": a_cs,
               "END": end}
    del a_s, a_d, cyc, doseu, a_cs, end, perend, day, idx, dose, fac, cmp_, intr, in_reg, j_i, has_i, same, weekly
    del rowcov, perwk, cover, clen, cdy, a_di, prev_c, crossed, starts, last
    summary, plan_issues = _drug_summary(per_adm, s_names, d_names, info["UNIT"], cycles, cy_sid, sch, i_drugs, dmap,
                                         body, regimen, options)
    del per_adm
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
    restart = sp & lv["_INT"].to_numpy(dtype=bool)
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
    # the distinct (drug, phase) pairs of the runs, from integer codes (was a Python set over every
    # run, issue 15); each pair's rows are disjoint, so their order does not matter
    dcode, duni = pd.factorize(drug)
    width = int(pf.max(initial=0)) + 1
    pairs = unique_sorted(dcode[dcode >= 0].astype(np.int64) * width + pf[dcode >= 0])
    for k in pairs:
        d, c = str(duni[k // width]), int(k % width)
        if ladder_for is not None:
            levels = list(ladder_for(d, c))
            if len(levels) <= 1 and d != study:
                continue  # no ladder written for this drug
        elif d == study:
            levels = list(ladder.levels)
        else:
            continue
        m = (dcode == k // width) & (pf == c)
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


def _drug_summary(a: Mapping[str, np.ndarray], s_names: np.ndarray, d_names: np.ndarray, unit_of: pd.Series,
                  cycles: pd.DataFrame, cy_sid: np.ndarray, sch: pd.DataFrame, drugs: pd.Index, dmap: np.ndarray,
                  body: pd.DataFrame, regimen: Regimen, options: ExposureOptions) -> tuple[pd.DataFrame, list[InputIssue]]:
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

    Algorithm
    ---------
    ``a``: the administrations in subject, drug, date order as arrays (S, D subject and drug
    codes; CYCLE; DOSEU; UROW the plan row of their unit, -1 none; CS cycle start and END the
    treatment end of ``duration_end``, days). The planned administrations are one array row per
    planned dose (each subject's cycles x the schedule's days of the drug in that cycle), built
    by ``numpy.repeat``; the sums are pandas' group sums over them in the order of the former
    merges (cycle, then schedule order), so PLNCUM keeps its bits (issue 15).
    """
    s_all, d_all = a["S"], a["D"]
    n = len(s_all)
    pst = group_starts(s_all, d_all)
    pair = group_ids(pst, n)
    ps, pdr = s_all[pst], d_all[pst]
    cyc = a["CYCLE"]
    fcyc = np.minimum.reduceat(cyc, pst)
    lcyc = np.maximum.reduceat(cyc, pst)
    wc = int(cyc.max()) + 2
    ukeys = unique_sorted(pair * wc + cyc)
    ncyc = np.bincount(ukeys // wc, minlength=len(pst)).astype(np.int64)
    cumdoseu = group_sum(a["DOSEU"], pair).to_numpy()
    upos = first_valid(a["UROW"] >= 0, pst)
    unit = take_or_na(unit_of, np.where(upos >= 0, a["UROW"][np.maximum(upos, 0)], -1)).fillna("mg")
    fcs = np.minimum.reduceat(a["CS"], pst)
    tend = np.maximum.reduceat(a["END"], pst)
    # the pairs' cycles: the subject's cycles from the drug's first to its last with a dose
    cy_cyc = cycles["CYCLE"].to_numpy(dtype=np.int64)
    w = int(max(cy_cyc.max(), lcyc.max())) + 2
    ckey = cy_sid * w + cy_cyc
    if not np.all(ckey[1:] >= ckey[:-1]):  # pragma: no cover - derive_cycles returns them sorted
        raise AssertionError("cycles not sorted by subject and cycle")
    lo = np.searchsorted(ckey, ps * w + fcyc, side="left")
    cnt = np.searchsorted(ckey, ps * w + lcyc, side="right") - lo
    cpair = np.repeat(np.arange(len(pst)), cnt)
    cstart = np.cumsum(cnt) - cnt
    crow = np.repeat(lo, cnt) + np.arange(int(cnt.sum())) - np.repeat(cstart, cnt)
    c_cyc = cy_cyc[crow]
    c_cs = _days(cycles["CYCSTDT"])[crow]
    # the last cycle counts up to the end of treatment when that comes before its planned end
    # (planned_last_cycle = "treated_days"): a subject who stops mid-cycle is compared with the
    # doses planned for the days on treatment, not with the cycle's average
    clen = cycles["CYCLEN"].to_numpy(dtype=np.int64)[crow]
    if options.planned_last_cycle == "treated_days":
        treated = tend[cpair] - c_cs + 1
        clen = np.where(c_cyc == lcyc[cpair], np.clip(treated, 1, clen), clen)
    # planned administrations: the schedule's rows of the drug and cycle, in schedule order
    sch_dc = drugs.get_indexer(sch["DRUG"]).astype(np.int64)
    sch_cyc = sch["CYCLE"].to_numpy(dtype=np.int64)
    so = np.lexsort((sch_cyc, sch_dc))
    wk = int(max(sch_cyc.max(initial=0), c_cyc.max(initial=0))) + 2
    skey = (sch_dc * wk + sch_cyc)[so]
    c_di = dmap[pdr[cpair]]
    q = c_di * wk + c_cyc
    s_lo = np.searchsorted(skey, q, side="left")
    s_cnt = np.where(c_di >= 0, np.searchsorted(skey, q, side="right") - s_lo, 0)
    prow = np.repeat(np.arange(len(crow)), s_cnt)
    srow = so[np.repeat(s_lo, s_cnt) + np.arange(int(s_cnt.sum())) - np.repeat(np.cumsum(s_cnt) - s_cnt, s_cnt)]
    p_dy = sch["CYCLEDY"].to_numpy(dtype=np.int64)[srow]
    keep = p_dy <= clen[prow]
    prow, srow, p_dy = prow[keep], srow[keep], p_dy[keep]
    p_pair = cpair[prow]
    fac = _body_fac(_unit_kind(sch["UNIT"])[srow], s_names, ps[p_pair], c_cs[prow] + p_dy - 1, body,
                    regimen.bsa_formula)
    p_dose = sch["DOSE"].to_numpy(dtype=float)[srow]
    plnmg = p_dose * fac
    # the sums over the planned doses in the former merges' row order (subject, cycle, drug,
    # schedule): pandas picks its summation by that order (``ufunc.reduceat`` when each
    # subject-drug's rows are contiguous, else a compensated sum) and by the column's NaN, so the
    # same order and one column at a time give the same bits
    if len(ps) < 2 or bool(np.all(ps[1:] != ps[:-1])):  # one drug per subject: already in that order
        o_plnmg, o_dose, g_o = plnmg, p_dose, p_pair
    else:
        o = lex_order([ps[p_pair], c_cyc[prow], pdr[p_pair], srow])
        o_plnmg, o_dose, g_o = plnmg[o], p_dose[o], p_pair[o]
    pl = pd.DataFrame({"PLNCUM": group_sum(o_plnmg, g_o), "PLNCUMU": group_sum(o_dose, g_o),
                       "_NAN": pd.Series(np.isnan(plnmg)).groupby(p_pair, sort=True).max()})
    pl = pl.reindex(np.arange(len(pst)))
    # delays, missed cycles and planned days per subject and drug
    dl = (cycles["DELAYFL"].to_numpy(dtype=object)[crow] == "Y") & (c_cyc > fcyc[cpair])
    dd = np.where(dl, cycles["DELAYD"].to_numpy()[crow], 0)
    ms = (cycles["MISSFL"].to_numpy(dtype=object)[crow] == "Y").astype(np.int64)
    s = pd.DataFrame({
        "USUBJID": s_names[ps], "EXTRT": np.r_[d_names, [None]].astype(object)[pdr],
        "FCYCLE": fcyc, "LCYCLE": lcyc, "CYCLES": ncyc, "CUMDOSEU": cumdoseu, "DOSEUNIT": unit,
        "FCYCSTDT": _date(fcs), "PLNCUM": pl["PLNCUM"].to_numpy(), "PLNCUMU": pl["PLNCUMU"].to_numpy(),
        "PLNDAYS": np.add.reduceat(clen, cstart), "NDELAY": np.add.reduceat(dl.astype(np.int64), cstart),
        "DELAYD": np.add.reduceat(dd, cstart), "NMISSCYC": np.add.reduceat(ms, cstart),
    })
    s = s.loc[pdr < len(d_names)].reset_index(drop=True)  # no missing drug (pandas' group-by drops it)
    nan = pl["_NAN"].fillna(False).astype(bool).to_numpy()[pdr < len(d_names)]
    s.loc[nan, "PLNCUM"] = np.nan
    issues = [InputIssue(domain="vs", variable="HEIGHT/WEIGHT", severity="warning", usubjid=str(r.USUBJID),
                         value=None, problem=f"no height/weight for the body-size dose of {r.EXTRT}; "
                         "planned dose and RDI not computed")
              for r in s.loc[nan].head(200).itertuples()]
    return s, issues


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
