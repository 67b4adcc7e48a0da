"""ADEX: exposure, dose intensity and dose modifications from constant-dose ex intervals.

Input convention (docs/data-contract.md, ex): one row per constant-dose interval,
EXSTDTC..EXENDTC inclusive, EXDOSE mg per administration, EXDOSFRQ ``BIW`` (days 1 and 3 of each
week) or ``QW`` (day 1); a gap between consecutive intervals of one drug is an interruption; a
change of weekly dose is a modification; EXADJ is the reason for the change from the previous
interval.

Rule
----
Dose levels: the protocol's ladder (XPOVIO label Table 1, Xd: 160 -> 100 -> 80 -> 60 mg/week ->
discontinue; ../shared/reference/domain.md 1.10, tag C). Relative dose intensity = actual dose
intensity / planned dose intensity, where dose intensity = cumulative dose / duration of
treatment (FDA STF IG 2025 section 2.1.6 suggests DI and RDI for oncology exposure tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from mmtrial.protocol.model import DoseLadder, Regimen
from mmtrial.sdtm.issues import InputIssue, StudyInputError

DEFAULT_FREQUENCIES: Mapping[str, tuple[int, ...]] = {
    "BIW": (1, 3),
    "QW": (1,),
    "QD": (1, 2, 3, 4, 5, 6, 7),
}


@dataclass(frozen=True)
class ExposureOptions:
    """Exposure derivation options (protocol section ``[exposure]``).

    Options
    -------
    frequencies : EXDOSFRQ -> dosing days of each week, counted from the interval's first day
        (day 1 = EXSTDT). Default BIW = days 1 and 3, QW = day 1, QD = every day (data contract).
    duration_end : ``"dose_period"`` (default): treatment ends on the last day covered by the
        last dose (the day before the next scheduled dose: last dose + 6 days for QW; + 4 after a
        day-3 dose, + 1 after a day-1 dose for BIW), so the result is the same whether EXENDT is
        recorded as the last dose day or as the end of the dosing week; ``"interval_end"``: on the
        last interval's EXENDT; ``"last_dose"``: on the last dosing day.
    min_interruption_days : a gap of at least this many days between intervals is an
        interruption (default 1: any day without an interval).
    cycle_length_days : length of a cycle for "cycles started" (protocol regimen; 28 in STORM).
    """

    frequencies: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: dict(DEFAULT_FREQUENCIES))
    duration_end: Literal["dose_period", "interval_end", "last_dose"] = "dose_period"
    min_interruption_days: int = 1
    cycle_length_days: int = 28

    def __post_init__(self) -> None:
        if self.duration_end not in ("dose_period", "interval_end", "last_dose"):
            raise ValueError(
                "ExposureOptions.duration_end: allowed 'dose_period', 'interval_end', 'last_dose'; "
                f"got {self.duration_end!r}"
            )
        if self.min_interruption_days < 1:
            raise ValueError(
                f"ExposureOptions.min_interruption_days: allowed >= 1; got {self.min_interruption_days}"
            )
        if self.cycle_length_days < 1:
            raise ValueError(f"ExposureOptions.cycle_length_days: allowed >= 1; got {self.cycle_length_days}")
        for k, days in self.frequencies.items():
            if not days or any(d < 1 or d > 7 for d in days) or sorted(set(days)) != list(days):
                raise ValueError(
                    f"ExposureOptions.frequencies[{k!r}]: allowed ascending distinct days 1-7; got {days}"
                )


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
    if "EXENDT" in ex:
        en = ex["EXENDT"].to_numpy(dtype="datetime64[D]")
        add(~np.isnat(en) & ~np.isnat(st) & (en < st), "EXENDTC",
            ex.get("EXENDTC", ex["EXENDT"]).to_numpy(), "end date before start date")
    if "EXDOSFRQ" in ex:
        frq = ex["EXDOSFRQ"].astype("string").str.upper()
        bad = (frq.isna() | ~frq.isin(list(options.frequencies))).to_numpy(dtype=bool) & (dose > 0)
        add(bad, "EXDOSFRQ", ex["EXDOSFRQ"].to_numpy(), "dosing frequency not known",
            f"Use one of {sorted(options.frequencies)} or add it to [exposure] frequencies.")
    return issues


def derive_exposure_intervals(
    ex: pd.DataFrame,
    *,
    ladder: DoseLadder,
    regimen: Regimen,
    options: ExposureOptions = ExposureOptions(),
    end_fallback: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Dose level over time: one row per dosing interval (the ``adexlvl`` dataset).

    Rule
    ----
    Doses in an interval: dosing days of each week (EXDOSFRQ) counted from EXSTDT up to EXENDT
    inclusive. Weekly dose = EXDOSE x dosing days per week. The study drug's dose level is the
    ladder level with that weekly dose and dose per administration (NaN when off the ladder).
    Each interval's dose period ends the day before the next scheduled dose after its last dose
    (PERENDT). Consecutive intervals of one drug: >= ``min_interruption_days`` days between the
    previous dose period and the next start is an interruption;
    a lower weekly dose a reduction, a higher one an escalation (docs/data-contract.md, ex).

    Algorithm
    ---------
    1. Check ex (:func:`check_ex`); overlapping intervals of one drug are errors.
    2. Missing EXENDT: the subject's last dose date from ``end_fallback`` (USUBJID, TRTEDT) when
       later than EXSTDT, else EXSTDT (AENDTF = "Y"; a warning issue is returned in ``attrs``).
    3. Zero-dose rows are not dosing intervals: they become interruptions, and their EXADJ is
       the reason of that interruption.
    4. Count doses, cumulative dose, weekly dose, level, gap before, change type.
    """
    issues = check_ex(ex, options)
    if any(i.severity == "error" for i in issues):
        raise StudyInputError(issues)
    n = len(ex)
    df = pd.DataFrame(
        {
            "USUBJID": ex["USUBJID"].to_numpy(),
            "EXTRT": ex["EXTRT"].astype("string").str.upper().to_numpy(),
            "EXDOSE": pd.to_numeric(ex["EXDOSE"]).to_numpy(dtype=float),
            "EXDOSU": ex["EXDOSU"].to_numpy() if "EXDOSU" in ex else np.full(n, "mg"),
            "EXDOSFRQ": (ex["EXDOSFRQ"].astype("string").str.upper().to_numpy()
                         if "EXDOSFRQ" in ex else np.full(n, "QW")),
            "ASTDT": ex["EXSTDT"].to_numpy(dtype="datetime64[D]"),
            "AENDT": (ex["EXENDT"].to_numpy(dtype="datetime64[D]") if "EXENDT" in ex
                      else np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")),
            "EXADJ": (ex["EXADJ"].astype("string").str.upper().to_numpy() if "EXADJ" in ex
                      else pd.array([pd.NA] * n, dtype="string")),
            "ROWNUM": ex["ROWNUM"].to_numpy() if "ROWNUM" in ex else np.arange(1, n + 1),
        }
    )
    warn: list[InputIssue] = []
    miss_end = np.isnat(df["AENDT"].to_numpy())
    df["AENDTF"] = np.where(miss_end, "Y", "")
    if miss_end.any():
        fb = df["ASTDT"].to_numpy()
        if end_fallback is not None:
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
    grp = (df["USUBJID"].astype(str) + "\x00" + df["EXTRT"].astype(str)).to_numpy()
    same_prev = np.zeros(len(df), dtype=bool)
    same_prev[1:] = grp[1:] == grp[:-1]
    prev_en = np.full(len(df), np.datetime64("NaT"), dtype="datetime64[D]")
    prev_en[1:] = en[:-1]
    overlap = same_prev & (st <= prev_en)
    if overlap.any():
        errs = [
            InputIssue(domain="ex", variable="EXSTDTC", row=int(df["ROWNUM"].iat[i]),
                       usubjid=str(df["USUBJID"].iat[i]), value=str(st[i]),
                       problem=f"interval of {df['EXTRT'].iat[i]} overlaps the previous one "
                       f"(ending {prev_en[i]})", hint="ex rows of one drug must not overlap.")
            for i in np.flatnonzero(overlap)[:200]
        ]
        raise StudyInputError(errs)
    # zero-dose rows -> reasons for the following interruption
    zero = df["EXDOSE"].to_numpy() == 0
    zero_reason = pd.Series(np.where(zero, df["EXADJ"].to_numpy(dtype=object), None))
    prev_zero_reason = zero_reason.shift(1).where(same_prev & np.roll(zero, 1), None)
    df["ZRREAS"] = prev_zero_reason.to_numpy()
    df = df.loc[~zero].reset_index(drop=True)

    st = df["ASTDT"].to_numpy(dtype="datetime64[D]")
    en = df["AENDT"].to_numpy(dtype="datetime64[D]")
    ndays = (en - st).astype("int64") + 1
    doses = np.zeros(len(df), dtype=np.int64)
    per_week = np.zeros(len(df), dtype=np.int64)
    last_off = np.zeros(len(df), dtype=np.int64)
    cover = np.ones(len(df), dtype=np.int64)
    frq = df["EXDOSFRQ"].to_numpy(dtype=object)
    for code, days in options.frequencies.items():
        m = frq == code
        if m.any():
            doses[m] = compute_doses_in_interval(ndays[m], tuple(days))
            last_off[m] = compute_last_dose_offset(ndays[m], tuple(days))
            cover[m] = compute_dose_cover_days(last_off[m], tuple(days))
            per_week[m] = len(days)
    df["NDAYS"] = ndays
    df["NDOSES"] = doses
    df["INTDOSE"] = df["EXDOSE"].to_numpy() * doses
    df["WKDOSE"] = df["EXDOSE"].to_numpy() * per_week
    df["LDOSEDT"] = st + last_off.astype("timedelta64[D]")
    # end of the period the last dose covers (day before the next scheduled dose)
    df["PERENDT"] = df["LDOSEDT"].to_numpy(dtype="datetime64[D]") + (cover - 1).astype("timedelta64[D]")
    # ladder level of the study drug
    study = regimen.study_drug.upper()
    lv = pd.DataFrame(
        [(lvl.level, lvl.label, float(lvl.weekly_mg), float(lvl.dose_mg)) for lvl in ladder.levels],
        columns=["DOSELVL", "DOSELVLC", "WKDOSE", "EXDOSE"],
    )
    is_study = (df["EXTRT"] == study).to_numpy()
    m = df[["WKDOSE", "EXDOSE"]].merge(lv, on=["WKDOSE", "EXDOSE"], how="left")
    df["DOSELVL"] = np.where(is_study, m["DOSELVL"].to_numpy(dtype=float), np.nan)
    df["DOSELVLC"] = np.where(is_study, m["DOSELVLC"].to_numpy(dtype=object), None)
    df["ONLADDFL"] = np.where(is_study & ~np.isnan(df["DOSELVL"].to_numpy()), "Y",
                              np.where(is_study, "N", ""))
    # sequence within subject x drug
    grp = (df["USUBJID"].astype(str) + "\x00" + df["EXTRT"].astype(str)).to_numpy()
    same_prev = np.zeros(len(df), dtype=bool)
    same_prev[1:] = grp[1:] == grp[:-1]
    per = df["PERENDT"].to_numpy(dtype="datetime64[D]")
    prev_en = np.full(len(df), np.datetime64("NaT"), dtype="datetime64[D]")
    prev_en[1:] = per[:-1]
    prev_wk = np.full(len(df), np.nan)
    prev_wk[1:] = df["WKDOSE"].to_numpy()[:-1]
    # interruption: days between the end of the previous dose period and the next start
    gap = np.where(same_prev, np.maximum((st - prev_en).astype("int64") - 1, 0), 0)
    df["GAPDAYS"] = gap
    restart = same_prev & (gap >= options.min_interruption_days)
    wk = df["WKDOSE"].to_numpy()
    chg = np.where(~same_prev, "START",
                   np.where(wk < prev_wk, "REDUCTION", np.where(wk > prev_wk, "ESCALATION", "SAME")))
    df["CHGTYPE"] = chg
    df["RESTFL"] = np.where(restart, "Y", "")
    reason = df["EXADJ"].to_numpy(dtype=object)
    zr = df["ZRREAS"].to_numpy(dtype=object)
    df["INTRREAS"] = np.where(restart, np.where(pd.isna(zr), reason, zr), None)
    df["CHGREAS"] = np.where(chg != "START", np.where(chg == "SAME", None, reason), None)
    df["INTSEQ"] = df.groupby(["USUBJID", "EXTRT"], sort=False).cumcount() + 1
    df["CUMDOSE"] = df.groupby(["USUBJID", "EXTRT"], sort=False)["INTDOSE"].cumsum()
    df = df.drop(columns=["ZRREAS"])
    df.attrs["issues"] = warn
    return df


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
    = days / 7 (STORM reports median weeks, "9.0 weeks (range 1-60)", domain.md 1.4).
    Cycles started = distinct ``cycle_length_days`` cycles from the drug's first dose in which at
    least one dose was given. Planned weekly dose = the protocol's starting level (ladder level 0
    for the study drug, regimen dose x days for others). Actual weekly dose (dose intensity) =
    cumulative dose / duration in weeks; RDI = actual / planned. Time to first reduction = days
    from first dose to the start of the first interval with a lower weekly dose.

    Algorithm
    ---------
    Group the intervals by subject and drug with vectorised aggregations; add AE-derived
    actions (TEAEs with AEACN DOSE REDUCED / DRUG INTERRUPTED / DRUG WITHDRAWN) from ``adae``.
    """
    lv = adexlvl
    key = ["USUBJID", "EXTRT"]
    st = lv["ASTDT"].to_numpy(dtype="datetime64[D]")
    end_col = {"dose_period": "PERENDT", "interval_end": "AENDT", "last_dose": "LDOSEDT"}[options.duration_end]
    en = lv[end_col].to_numpy(dtype="datetime64[D]")
    first = lv.groupby(key, sort=False)["ASTDT"].transform("min").to_numpy(dtype="datetime64[D]")
    cl = options.cycle_length_days
    c0 = (st - first).astype("int64") // cl
    c1 = (lv["LDOSEDT"].to_numpy(dtype="datetime64[D]") - first).astype("int64") // cl
    same_prev = np.zeros(len(lv), dtype=bool)
    if len(lv):
        g = (lv["USUBJID"].astype(str) + "\x00" + lv["EXTRT"].astype(str)).to_numpy()
        same_prev[1:] = g[1:] == g[:-1]
    prev_c1 = np.full(len(lv), -1, dtype=np.int64)
    prev_c1[1:] = c1[:-1]
    overlap_c = np.where(same_prev, np.maximum(0, prev_c1 - c0 + 1), 0)
    work = lv.assign(
        _END=en,
        _CYC=c1 - c0 + 1 - overlap_c,
        _RED=(lv["CHGTYPE"] == "REDUCTION").astype(int),
        _ESC=(lv["CHGTYPE"] == "ESCALATION").astype(int),
        _INT=(lv["RESTFL"] == "Y").astype(int),
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
        CYCLES=("_CYC", "sum"),
        NREDUC=("_RED", "sum"),
        NESCAL=("_ESC", "sum"),
        NINTERR=("_INT", "sum"),
        INTRDAYS=("GAPDAYS", "sum"),
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
    planned = {d.name.upper(): d.weekly_dose_mg for d in regimen.drugs}
    start_level = [lvl for lvl in ladder.levels if lvl.level == 0]
    if start_level:
        planned[regimen.study_drug.upper()] = float(start_level[0].weekly_mg)
    agg["PLNWKDOS"] = agg["EXTRT"].map(planned).astype(float)
    agg["ACTWKDOS"] = agg["CUMDOSE"] / agg["TRTDURW"]
    agg["RDI"] = agg["ACTWKDOS"] / agg["PLNWKDOS"]
    frd = agg["FRSTREDT"].to_numpy(dtype="datetime64[D]")
    agg["TTFRED"] = np.where(np.isnat(frd), np.nan, (frd - sdt).astype("int64"))
    agg["REDFL"] = np.where(agg["NREDUC"] > 0, "Y", "N")
    agg["INTFL"] = np.where(agg["NINTERR"] > 0, "Y", "N")
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
