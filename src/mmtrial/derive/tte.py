"""Time-to-event parameters (ADTTE) from declarative event and censoring sources.

admiral's idea (``derive_param_tte``, ``event_source``, ``censor_source``): what makes a
parameter PFS or OS is data, not code. The sources for STORM live in the ``[tte]`` section of
``protocol/storm.toml`` and are printed in the report; :func:`derive_param_tte` applies them to
all subjects at once.

Rules (FDA Guidance for Industry, Clinical Trial Endpoints for the Approval of Cancer Drugs and
Biologics, December 2018, Table/Appendix on PFS censoring; IMWG Kumar 2016 for PD):

* an event that occurs after the start of new anti-myeloma therapy does not count: the subject
  is censored at the last adequate assessment on or before the new therapy started;
* an event that follows two or more missed assessments (gap from the last adequate assessment,
  or from the start date when there is none, greater than ``missed_visits`` x the assessment
  interval + the visit window) does not count: censored at the last adequate assessment before
  the event;
* no adequate post-baseline assessment: censored at the start date (day 1);
* an event beats a censoring; ADT is never before STARTDT; ties among events go to the
  source listed first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmtrial.sdtm.issues import InputIssue, StudyInputError

#: Special where-condition values.
PRESENT = "present"
MISSING = "missing"

#: Helper variables the engine adds before sources are evaluated (usable in ``where``/``date``).
ENGINE_VARIABLES = {
    "_EXCL": "why the first qualifying event was set aside: 'NEWTX' (after new therapy), "
    "'GAP' (after missed assessments) or '' (not set aside / no event)",
    "_LADQDT": "last adequate assessment (ADRS OVR, AVALC not NE) on or after STARTDT and on or "
    "before the cut-off (the day before the first event; the new-therapy start)",
}


@dataclass(frozen=True)
class EventSource:
    """One way a subject can have the event (admiral ``event_source``).

    ``date`` names the date variable (in the subject-level frame); ``where`` holds equality
    conditions on variables of that frame (value ``"present"``/``"missing"`` test a date).
    """

    name: str
    date: str
    evntdesc: str
    where: Mapping[str, str] = field(default_factory=dict)
    srcdom: str = "ADSL"
    srcvar: str = ""

    def __post_init__(self) -> None:
        if not self.date:
            raise ValueError(f"EventSource {self.name!r}: parameter 'date' must name a date variable")
        if not self.evntdesc:
            raise ValueError(f"EventSource {self.name!r}: parameter 'evntdesc' must not be empty")


@dataclass(frozen=True)
class CensorSource:
    """One way a subject is censored (admiral ``censor_source``); the first that applies wins."""

    name: str
    date: str
    cnsdtdsc: str
    where: Mapping[str, str] = field(default_factory=dict)
    srcdom: str = "ADSL"
    srcvar: str = ""
    censor: int = 1

    def __post_init__(self) -> None:
        if not self.date:
            raise ValueError(f"CensorSource {self.name!r}: parameter 'date' must name a date variable")
        if not self.cnsdtdsc:
            raise ValueError(f"CensorSource {self.name!r}: parameter 'cnsdtdsc' must not be empty")
        if self.censor < 1:
            raise ValueError(f"CensorSource {self.name!r}: parameter 'censor' must be >= 1; got {self.censor}")


@dataclass(frozen=True)
class TteRules:
    """Rules that set an event aside (FDA 2018): new therapy and missed assessments.

    ``new_therapy_var``: date of the first new anti-myeloma therapy (None: rule off).
    ``missed_visits``: number of missed assessments after which an event does not count
    (None: rule off); ``interval_days`` and ``window_days`` from the protocol visit schedule.
    ``add_one``: AVAL = ADT - STARTDT + 1 (day 1 is the start day; CDISC study-day convention
    and admiral ``derive_vars_duration(add_one = TRUE)``).
    """

    new_therapy_var: str | None = None
    missed_visits: int | None = None
    interval_days: int = 28
    window_days: int = 7
    add_one: bool = True

    def __post_init__(self) -> None:
        if self.missed_visits is not None and self.missed_visits < 1:
            raise ValueError(f"TteRules: parameter 'missed_visits' must be >= 1 or None; got {self.missed_visits}")
        if self.interval_days < 1 or self.window_days < 0:
            raise ValueError(
                f"TteRules: 'interval_days' must be >= 1 and 'window_days' >= 0; got {self.interval_days}, {self.window_days}"
            )

    @property
    def max_gap_days(self) -> int | None:
        if self.missed_visits is None:
            return None
        return self.missed_visits * self.interval_days + self.window_days


@dataclass(frozen=True)
class EndpointSpec:
    """A whole time-to-event parameter: origin, population, sources, rules."""

    paramcd: str
    param: str
    start: str
    events: Sequence[EventSource]
    censors: Sequence[CensorSource]
    population: Mapping[str, str] = field(default_factory=dict)
    rules: TteRules = field(default_factory=TteRules)

    def __post_init__(self) -> None:
        if not self.events:
            raise ValueError(f"EndpointSpec {self.paramcd}: at least one event source is required")
        if not self.censors:
            raise ValueError(f"EndpointSpec {self.paramcd}: at least one censor source is required")

    def rule_rows(self) -> list[dict]:
        """The rules as table rows (for the report and docs)."""

        def cond(w: Mapping[str, str]) -> str:
            return " and ".join(f"{k} {'is ' + v if v in (PRESENT, MISSING) else '= ' + repr(v)}" for k, v in w.items()) or "always"

        rows = [
            {"PARAMCD": self.paramcd, "kind": "population", "name": "", "date": self.start, "condition": cond(self.population), "description": f"origin {self.start}"}
        ]
        rows += [
            {"PARAMCD": self.paramcd, "kind": "event", "name": s.name, "date": s.date, "condition": cond(s.where), "description": s.evntdesc}
            for s in self.events
        ]
        r = self.rules
        if r.new_therapy_var:
            rows.append({"PARAMCD": self.paramcd, "kind": "rule", "name": "new_therapy", "date": r.new_therapy_var, "condition": f"event after {r.new_therapy_var}", "description": "event set aside (_EXCL = NEWTX)"})
        if r.max_gap_days is not None:
            rows.append({"PARAMCD": self.paramcd, "kind": "rule", "name": "missed_visits", "date": "_LADQDT", "condition": f"event > {r.max_gap_days} days after last adequate assessment ({r.missed_visits} x {r.interval_days} + {r.window_days})", "description": "event set aside (_EXCL = GAP)"})
        rows += [
            {"PARAMCD": self.paramcd, "kind": f"censor (CNSR={s.censor})", "name": s.name, "date": s.date, "condition": cond(s.where), "description": s.cnsdtdsc}
            for s in self.censors
        ]
        return rows


ADTTE_COLUMNS = [
    "USUBJID", "PARAMCD", "PARAM", "STARTDT", "ADT", "AVAL", "AVALU", "CNSR",
    "EVNTDESC", "CNSDTDSC", "SRCDOM", "SRCVAR",
]


def _condition(frame: pd.DataFrame, where: Mapping[str, str], who: str) -> np.ndarray:
    mask = np.ones(len(frame), dtype=bool)
    for var, val in where.items():
        if var not in frame.columns:
            raise KeyError(f"{who}: variable {var!r} in 'where' is not in the subject-level data; columns: {sorted(frame.columns)}")
        col = frame[var]
        if val == PRESENT:
            mask &= col.notna().to_numpy()
        elif val == MISSING:
            mask &= col.isna().to_numpy()
        else:
            mask &= (col.astype("string") == str(val)).fillna(False).to_numpy(dtype=bool)
    return mask


def _dates(frame: pd.DataFrame, var: str, who: str) -> pd.Series:
    if var not in frame.columns:
        raise KeyError(f"{who}: date variable {var!r} is not in the subject-level data; columns: {sorted(frame.columns)}")
    return pd.to_datetime(frame[var]).astype("datetime64[ns]")


def _last_assessment_on_or_before(
    subj: pd.Series, cutoff: pd.Series, adequate: pd.DataFrame
) -> pd.Series:
    """For each subject row, the latest adequate assessment date <= cutoff (NaT if none).

    One ``merge_asof`` over all subjects (subjects matched by integer code, so the string
    dtypes of the two frames need not agree).
    """
    big = pd.Timestamp("2262-01-01")
    ids = pd.Index(subj.astype(str).to_numpy())
    left = pd.DataFrame(
        {"_sid": np.arange(len(subj)), "_cut": cutoff.fillna(big).astype("datetime64[ns]").to_numpy(), "_pos": np.arange(len(subj))}
    ).sort_values("_cut", kind="stable")
    code = ids.get_indexer(adequate["USUBJID"].astype(str).to_numpy())
    right = pd.DataFrame({"_sid": code, "_adt": adequate["ADT"].astype("datetime64[ns]").to_numpy()})
    right = right.loc[right["_sid"] >= 0].sort_values("_adt", kind="stable")
    right["_cut"] = right["_adt"]
    m = pd.merge_asof(left, right, on="_cut", by="_sid", direction="backward", allow_exact_matches=True)
    out = np.full(len(subj), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[m["_pos"].to_numpy()] = m["_adt"].to_numpy(dtype="datetime64[ns]")
    return pd.Series(out, index=subj.index)


def derive_param_tte(
    adsl: pd.DataFrame,
    assessments: pd.DataFrame | None = None,
    *,
    spec: EndpointSpec,
) -> pd.DataFrame:
    """Derive one time-to-event parameter (one ADTTE record per subject in the population).

    Parameters
    ----------
    adsl : DataFrame
        One row per subject with USUBJID, the start variable and every variable the sources
        name.
    assessments : DataFrame, optional
        Disease assessments (ADRS PARAMCD OVR rows: USUBJID, ADT, AVALC). Needed when the
        missed-visit rule is on, or a source uses ``_LADQDT``; adequate = AVALC present and not
        NE.
    spec : EndpointSpec
        The parameter's origin, population, event and censor sources and rules.

    Returns
    -------
    DataFrame with :data:`ADTTE_COLUMNS`.

    Rule
    ----
    admiral ``derive_param_tte`` (pharmaverse/admiral R/derive_param_tte.R) with the FDA 2018
    PFS censoring rules (module docstring).

    Algorithm
    ---------
    1. Keep subjects meeting ``spec.population``; STARTDT = the start variable (must be present).
    2. Each event source gives a date where its condition holds; the earliest is the candidate
       event (ties: list order).
    3. Rules: candidate after new therapy -> ``_EXCL = "NEWTX"``; else more than
       ``missed_visits`` x interval + window days after the last adequate assessment (or start)
       -> ``_EXCL = "GAP"``. A set-aside candidate is no event.
    4. ``_LADQDT`` = last adequate assessment on/after STARTDT and on/before the cut-off (day
       before the candidate event; the new-therapy start).
    5. Subjects without an event: the first censor source (list order) whose condition holds
       and whose date is present gives ADT, CNSR and CNSDTDSC.
    6. ADT = max(ADT, STARTDT); AVAL = ADT - STARTDT (+ 1 when ``add_one``), in days.

    Examples
    --------
    >>> adsl = pd.DataFrame({"USUBJID": ["1", "2"],
    ...     "TRTSDT": pd.to_datetime(["2019-01-01", "2019-01-01"]),
    ...     "DTHDT": pd.to_datetime(["2019-01-31", None]),
    ...     "LSTALVDT": pd.to_datetime(["2019-01-31", "2019-03-01"])})
    >>> spec = EndpointSpec("OS", "Overall Survival", "TRTSDT",
    ...     events=[EventSource("death", "DTHDT", "DEATH", srcvar="DTHDT")],
    ...     censors=[CensorSource("alive", "LSTALVDT", "LAST KNOWN ALIVE", srcvar="LSTALVDT")])
    >>> derive_param_tte(adsl, spec=spec)[["USUBJID", "AVAL", "CNSR", "EVNTDESC"]]
      USUBJID  AVAL  CNSR          EVNTDESC
    0       1  31.0     0             DEATH
    1       2  60.0     1  LAST KNOWN ALIVE
    """
    who = f"derive_param_tte({spec.paramcd})"
    if "USUBJID" not in adsl.columns:
        raise KeyError(f"{who}: adsl has no USUBJID column")
    pop = adsl.loc[_condition(adsl, spec.population, who)].copy().reset_index(drop=True)
    if pop["USUBJID"].duplicated().any():
        dup = pop.loc[pop["USUBJID"].duplicated(), "USUBJID"].iloc[0]
        raise ValueError(f"{who}: adsl must have one row per subject; USUBJID {dup!r} is repeated")
    start = _dates(pop, spec.start, who)
    issues = [
        InputIssue("adsl", spec.start, f"{spec.paramcd} origin date is missing", usubjid=u, rule=who)
        for u in pop.loc[start.isna(), "USUBJID"]
    ]
    if issues:
        raise StudyInputError(issues)
    n = len(pop)
    if n == 0:
        return pd.DataFrame(columns=ADTTE_COLUMNS)
    pop["STARTDT"] = start

    # 2. earliest event among sources
    ev_dates = np.full((len(spec.events), n), np.datetime64("NaT"), dtype="datetime64[ns]")
    for k, src in enumerate(spec.events):
        d = _dates(pop, src.date, f"{who} event {src.name!r}")
        ok = _condition(pop, src.where, f"{who} event {src.name!r}")
        ev_dates[k] = np.where(ok, d.to_numpy(), np.datetime64("NaT"))
    filled = np.where(np.isnat(ev_dates), np.datetime64("2262-01-01"), ev_dates)
    which = np.argmin(filled, axis=0)
    ev_date = pd.Series(ev_dates[which, np.arange(n)], dtype="datetime64[ns]")
    has_ev = ev_date.notna()
    bad = has_ev & (ev_date < start)
    if bad.any():
        raise StudyInputError(
            [
                InputIssue(
                    "adsl",
                    spec.events[int(which[i])].date,
                    f"{spec.paramcd} event date is before the origin {spec.start} ({start[i].date()})",
                    usubjid=pop.at[i, "USUBJID"],
                    value=str(ev_date[i].date()),
                    rule=who,
                )
                for i in np.flatnonzero(bad.to_numpy())
            ]
        )

    # 3-4. rules and the last adequate assessment
    rules = spec.rules
    excl = pd.Series("", index=pop.index, dtype=object)
    need_adq = rules.max_gap_days is not None or any(
        "_LADQDT" in (s.date, *s.where) for s in spec.censors
    )
    if need_adq and assessments is None:
        raise ValueError(f"{who}: the missed-visit rule and _LADQDT need the assessments (ADRS OVR rows)")
    adequate = None
    if need_adq:
        for col in ("USUBJID", "ADT", "AVALC"):
            if col not in assessments.columns:
                raise KeyError(f"{who}: assessments must have USUBJID, ADT, AVALC; {col!r} is missing")
        a = assessments
        adequate = a.loc[a["AVALC"].notna() & (a["AVALC"].astype("string") != "NE") & a["ADT"].notna(), ["USUBJID", "ADT"]].copy()
        adequate["ADT"] = pd.to_datetime(adequate["ADT"]).astype("datetime64[ns]")
    nact = _dates(pop, rules.new_therapy_var, who) if rules.new_therapy_var else pd.Series(pd.NaT, index=pop.index, dtype="datetime64[ns]")
    if rules.new_therapy_var:
        newtx = has_ev & nact.notna() & (ev_date > nact)
        excl[newtx] = "NEWTX"
    if rules.max_gap_days is not None:
        prev = _last_assessment_on_or_before(pop["USUBJID"], ev_date - pd.Timedelta(days=1), adequate)
        prev = prev.where(prev >= start)
        ref = prev.fillna(start)
        gap = has_ev & (excl == "") & ((ev_date - ref).dt.days > rules.max_gap_days)
        excl[gap] = "GAP"
    pop["_EXCL"] = excl
    if adequate is not None:
        cut = ev_date - pd.Timedelta(days=1)
        cut = cut.where(cut.notna() & ~(nact < cut), nact)
        ladq = _last_assessment_on_or_before(pop["USUBJID"], cut, adequate)
        pop["_LADQDT"] = ladq.where(ladq >= start)
    else:
        pop["_LADQDT"] = pd.Series(pd.NaT, index=pop.index, dtype="datetime64[ns]")
    is_event = has_ev & (excl == "")

    # 5. censoring for the rest
    adt = ev_date.where(is_event)
    cnsr = np.where(is_event, 0, -1)
    evntdesc = np.array([spec.events[k].evntdesc for k in which], dtype=object)
    srcdom = np.array([spec.events[k].srcdom for k in which], dtype=object)
    srcvar = np.array([spec.events[k].srcvar or spec.events[k].date for k in which], dtype=object)
    cnsdtdsc = np.full(n, None, dtype=object)
    todo = ~is_event.to_numpy()
    for src in spec.censors:
        if not todo.any():
            break
        d = _dates(pop, src.date, f"{who} censor {src.name!r}")
        ok = todo & _condition(pop, src.where, f"{who} censor {src.name!r}") & d.notna().to_numpy()
        adt = adt.where(~ok, d)
        cnsr[ok] = src.censor
        cnsdtdsc[ok] = src.cnsdtdsc
        evntdesc[ok] = src.cnsdtdsc
        srcdom[ok] = src.srcdom
        srcvar[ok] = src.srcvar or src.date
        todo &= ~ok
    if todo.any():
        raise StudyInputError(
            [
                InputIssue(
                    "adsl",
                    ", ".join(s.date for s in spec.censors),
                    f"{spec.paramcd}: no event and no censoring source applies (every censoring date is missing)",
                    usubjid=u,
                    rule=who,
                )
                for u in pop.loc[todo, "USUBJID"]
            ]
        )
    # 6. ADT never before STARTDT; AVAL in days
    adt = adt.where(adt >= start, start)
    aval = (adt - start).dt.days.astype(float) + (1.0 if rules.add_one else 0.0)
    return pd.DataFrame(
        {
            "USUBJID": pop["USUBJID"].to_numpy(),
            "PARAMCD": spec.paramcd,
            "PARAM": spec.param,
            "STARTDT": start.to_numpy(),
            "ADT": adt.to_numpy(),
            "AVAL": aval.to_numpy(),
            "AVALU": "DAYS",
            "CNSR": cnsr.astype(int),
            "EVNTDESC": evntdesc,
            "CNSDTDSC": cnsdtdsc,
            "SRCDOM": srcdom,
            "SRCVAR": srcvar,
        },
        columns=ADTTE_COLUMNS,
    )


def derive_adtte(
    adsl: pd.DataFrame, assessments: pd.DataFrame | None, *, specs: Sequence[EndpointSpec]
) -> pd.DataFrame:
    """All parameters stacked (one :func:`derive_param_tte` call per spec)."""
    parts = [derive_param_tte(adsl, assessments, spec=s) for s in specs]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=ADTTE_COLUMNS)
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Specifications from the protocol ([tte] section)


def _source_kwargs(d: Mapping, kind: str, paramcd: str) -> dict:
    allowed = {"name", "date", "where", "srcdom", "srcvar"} | ({"evntdesc"} if kind == "event" else {"cnsdtdsc", "censor"})
    extra = set(d) - allowed
    if extra:
        raise ValueError(f"[tte.endpoints.{paramcd}] {kind} source {d.get('name')!r}: unknown keys {sorted(extra)}; allowed {sorted(allowed)}")
    out = dict(d)
    out["where"] = dict(out.get("where", {}))
    return out


def endpoint_specs_from_config(
    endpoints: Mapping[str, Mapping], *, interval_days: int, window_days: int, add_one: bool = True
) -> list[EndpointSpec]:
    """Build :class:`EndpointSpec` objects from the ``[tte.endpoints.*]`` tables of a protocol."""
    specs = []
    for paramcd, e in endpoints.items():
        known = {"param", "start", "population", "events", "censors", "new_therapy_var", "missed_visits"}
        extra = set(e) - known
        if extra:
            raise ValueError(f"[tte.endpoints.{paramcd}]: unknown keys {sorted(extra)}; allowed {sorted(known)}")
        rules = TteRules(
            new_therapy_var=e.get("new_therapy_var"),
            missed_visits=e.get("missed_visits"),
            interval_days=interval_days,
            window_days=window_days,
            add_one=add_one,
        )
        specs.append(
            EndpointSpec(
                paramcd=paramcd,
                param=e["param"],
                start=e["start"],
                population=dict(e.get("population", {})),
                events=[EventSource(**_source_kwargs(s, "event", paramcd)) for s in e["events"]],
                censors=[CensorSource(**_source_kwargs(s, "censor", paramcd)) for s in e["censors"]],
                rules=rules,
            )
        )
    return specs
