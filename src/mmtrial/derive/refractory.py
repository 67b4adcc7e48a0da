"""Drug-, class- and line-refractory status from prior therapy (IMWG; Rajkumar 2011).

Refractory to a drug: progression while on the drug or within ``window_days`` (60) of its last
dose, after at least ``min_exposure_days`` of exposure (domain.md 2.6). Progression dates come
from the prior-therapy ``rs`` rows (RSCAT ``PRIOR THERAPY``, RSSTRESC ``PD``, RSDT); exposure
from the cm drug rows (CMSTDT..CMENDT). Composite labels (triple-class refractory, penta-,
quad-refractory, triple-class exposed) are rules as data: lists of terms such as
``"refractory:PI"``, ``"refractory:bortezomib"``, ``"exposed:ANTI-CD38"``,
``"refractory:PI+IMID>=3"`` evaluated over all subjects at once.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmtrial._frames import lookup
from mmtrial.derive._groups import (
    NAT,
    codes_of,
    decode,
    group_ids,
    group_starts,
    take_or_na,
    unique_sorted,
)
from mmtrial.derive.drugs import DrugDictionary
from mmtrial.sdtm.issues import InputIssue

RAJKUMAR_2011 = "Rajkumar SV et al. (IMWG), Blood 2011;117:4691-4695; Kumar S et al., Lancet Oncol 2016"

PartialDateRule = Literal["imputed", "certain", "possible"]
PdLink = Literal["any", "regimen"]

DEFAULT_COMPOSITES: dict[str, tuple[str, ...]] = {
    # domain.md 2.6 (tag C): triple-class refractory = refractory to >= 1 PI, >= 1 IMiD and an anti-CD38 mAb
    "TCRFL": ("refractory:PI", "refractory:IMID", "refractory:ANTI-CD38"),
    # domain.md 1.9 / 2.6: penta-refractory = bortezomib, carfilzomib, lenalidomide, pomalidomide and
    # an anti-CD38 mAb (the STORM/FDA subgroup; all anti-CD38 exposure in STORM was daratumumab)
    "PENTAFL": ("refractory:bortezomib", "refractory:carfilzomib", "refractory:lenalidomide",
                "refractory:pomalidomide", "refractory:ANTI-CD38"),
    # MAMMOTH (Gandhi, Leukemia 2019) "quad-refractory": an anti-CD38 mAb plus 3 of the PI/IMiD drugs
    # (2 PIs + 1 IMiD or 1 PI + 2 IMiDs); here "at least quad", so PENTAFL implies QUADFL
    "QUADFL": ("refractory:ANTI-CD38", "refractory:PI", "refractory:IMID", "refractory:PI+IMID>=3"),
    # triple-class exposed (LocoMMotion, MajesTEC-1): >= 1 PI, >= 1 IMiD and an anti-CD38 mAb received
    "TCEFL": ("exposed:PI", "exposed:IMID", "exposed:ANTI-CD38"),
}


@dataclass(frozen=True)
class RefractoryRule:
    """Options for refractoriness (protocol section ``[refractory]``).

    Parameters
    ----------
    window_days : int, default 60
        Progression within this many days after the last dose (inclusive) makes the drug
        refractory (IMWG, Rajkumar 2011: "progression within 60 days of the last dose").
    min_exposure_days : int, default 0
        Minimum exposure (last dose - first dose + 1, in days) for the exposure to count toward
        refractoriness; 0 = any exposure. MAMMOTH used 28 (>= 4 weeks).
    pd_link : {"any", "regimen"}, default "any"
        ``any``: any prior-therapy PD of the subject within the window counts (the IMWG wording is
        about timing only); ``regimen``: only PD rows whose RSGRPID is the exposure's CMGRPID.
    partial_dates : {"imputed", "certain", "possible"}, default "imputed"
        ``imputed``: compare the imputed dates (the study's imputation rule, sdtm/dates.py).
        ``certain``: refractory only if the PD lies in the window for every date consistent with
        the partial dates. ``possible``: refractory if it does for some consistent date.
        Whichever is chosen, ``DATEIMPFL = "Y"`` marks a conclusion that depends on imputation.
    nonresponse_is_refractory : bool, default False
        Also count "nonresponsive while on therapy" (best response in ``nonresponse_values`` for
        the regimen; Rajkumar 2011 wording, failure to achieve MR). Off by default: trial
        eligibility usually reads "progression on or within 60 days".
    nonresponse_values : tuple of str, default ("SD",)
    pd_on_first_day : bool, default False
        Whether a progression dated on the drug's first day counts as progression "on" it. Off
        by default: a progression is usually recorded on the day the next regimen starts (it is
        why that regimen starts), and with ``pd_link = "any"`` counting it would make the new
        regimen's drugs refractory from their first dose.
    missing_end : {"ongoing", "exclude"}, default "ongoing"
        A prior drug without an end date is taken as ongoing until the day before first study
        dose (``ongoing``) or does not count toward refractoriness (``exclude``); either way a
        warning names the row.
    composites : dict
        ADSL flag name -> tuple of terms that must all hold (see module docstring).
    flag_drugs, flag_classes : tuple of str
        Drugs and classes that get their own ADSL exposure/refractory variables.
    """

    window_days: int = 60
    min_exposure_days: int = 0
    pd_link: PdLink = "any"
    partial_dates: PartialDateRule = "imputed"
    nonresponse_is_refractory: bool = False
    nonresponse_values: tuple[str, ...] = ("SD",)
    pd_on_first_day: bool = False
    missing_end: Literal["ongoing", "exclude"] = "ongoing"
    composites: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_COMPOSITES))
    flag_drugs: tuple[str, ...] = ("bortezomib", "carfilzomib", "lenalidomide", "pomalidomide", "daratumumab")
    flag_classes: tuple[str, ...] = ("PI", "IMID", "ANTI-CD38", "ALKYLATOR", "GLUCOCORTICOID")
    source: str = RAJKUMAR_2011

    def __post_init__(self) -> None:
        for name in ("window_days", "min_exposure_days"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"RefractoryRule.{name}: expected an integer >= 0; got {v!r}")
        if self.pd_link not in ("any", "regimen"):
            raise ValueError(f"RefractoryRule.pd_link: allowed 'any', 'regimen'; got {self.pd_link!r}")
        if self.partial_dates not in ("imputed", "certain", "possible"):
            raise ValueError("RefractoryRule.partial_dates: allowed 'imputed', 'certain', 'possible'; "
                             f"got {self.partial_dates!r}")
        if self.missing_end not in ("ongoing", "exclude"):
            raise ValueError(f"RefractoryRule.missing_end: allowed 'ongoing', 'exclude'; got {self.missing_end!r}")
        object.__setattr__(self, "composites", {k: tuple(v) for k, v in self.composites.items()})
        for name, terms in self.composites.items():
            for t in terms:
                parse_term(t)  # raises with the term named
            if not re.fullmatch(r"[A-Z][A-Z0-9]{0,7}", name):
                raise ValueError(f"RefractoryRule.composites: flag name {name!r} must be an ADaM name "
                                 "(upper case, <= 8 characters)")
        object.__setattr__(self, "nonresponse_values", tuple(s.upper() for s in self.nonresponse_values))
        object.__setattr__(self, "flag_drugs", tuple(self.flag_drugs))
        object.__setattr__(self, "flag_classes", tuple(self.flag_classes))

    @classmethod
    def from_protocol(cls, section: dict[str, Any]) -> RefractoryRule:
        allowed = set(cls.__dataclass_fields__)
        unknown = set(section) - allowed
        if unknown:
            raise ValueError(f"[refractory]: unknown option(s) {sorted(unknown)}; allowed {sorted(allowed)}")
        kw: dict[str, Any] = {}
        for k, v in section.items():
            if k == "composites":
                kw[k] = {n: tuple(t) for n, t in v.items()}
            elif isinstance(v, list):
                kw[k] = tuple(v)
            else:
                kw[k] = v
        return cls(**kw)

    def describe(self) -> str:
        link = "any prior-therapy progression" if self.pd_link == "any" else "progression recorded for the same regimen"
        nr = "; or best response SD (no MR) on the regimen" if self.nonresponse_is_refractory else ""
        mx = f" after >= {self.min_exposure_days} days of exposure" if self.min_exposure_days else ""
        return (f"Refractory ({self.source}): {link} while on the drug or within {self.window_days} days "
                f"of its last dose{mx}{nr}; partial dates: {self.partial_dates}.")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


# --------------------------------------------------------------------------- terms (rules as data)

_TERM = re.compile(r"^\s*(exposed|refractory)\s*:\s*([^<>=]+?)\s*(?:>=\s*(\d+))?\s*$", re.I)
_LINES = re.compile(r"^\s*lines\s*>=\s*(\d+)\s*$", re.I)
_FLAG = re.compile(r"^\s*flag\s*:\s*([A-Za-z][A-Za-z0-9]*)\s*$", re.I)


@dataclass(frozen=True)
class Term:
    """One parsed criterion term.

    kind: ``status`` (exposed/refractory to a drug, class or union of classes, >= n distinct
    drugs), ``last_line`` (refractory to the last line), ``lines`` (>= n prior lines), ``flag``
    (an ADSL flag equals "Y").
    """

    kind: str
    text: str
    status: str = ""
    names: tuple[str, ...] = ()
    n: int = 1
    var: str = ""


def parse_term(text: str) -> Term:
    """Parse a rule term; raises ``ValueError`` naming the term and the grammar.

    Grammar: ``exposed:<drug|class>[+<class>...][>=n]``, ``refractory:<...>[>=n]``,
    ``refractory:last_line``, ``lines>=n``, ``flag:<ADSLVAR>``.
    """
    m = _LINES.match(text)
    if m:
        return Term(kind="lines", text=text, n=int(m.group(1)))
    m = _FLAG.match(text)
    if m:
        return Term(kind="flag", text=text, var=m.group(1).upper())
    m = _TERM.match(text)
    if not m:
        raise ValueError(f"rule term {text!r} not understood; expected 'exposed:<drug or class>[>=n]', "
                         "'refractory:<drug or class>[>=n]', 'refractory:last_line', 'lines>=n' or 'flag:VAR'")
    status = m.group(1).lower()
    target = m.group(2).strip()
    if target.lower() == "last_line":
        if status != "refractory":
            raise ValueError(f"rule term {text!r}: last_line only with 'refractory'")
        return Term(kind="last_line", text=text, status=status)
    names = tuple(p.strip() for p in target.split("+"))
    return Term(kind="status", text=text, status=status, names=names, n=int(m.group(3) or 1))


def compute_term(
    term: Term | str,
    status: pd.DataFrame,
    subjects: pd.DataFrame,
    dictionary: DrugDictionary,
) -> pd.Series:
    """Evaluate one term for every subject (boolean Series indexed like ``subjects``).

    ``status``: the per subject-drug table (USUBJID, DRUG, EXPFL, REFFL); ``subjects``: one row
    per subject with USUBJID and, for ``lines``/``last_line``/``flag`` terms, NLINES, LSTREFFL or
    the flag. A drug term counts that drug; a class term counts distinct drugs of the class; a
    union ``PI+IMID`` counts distinct drugs in any of the classes.
    """
    t = parse_term(term) if isinstance(term, str) else term
    ids = subjects["USUBJID"]
    if not pd.api.types.is_integer_dtype(ids.dtype):  # integer subject codes are used as they are
        ids = ids.astype("string")
    if t.kind == "lines":
        return (subjects["NLINES"].fillna(0).astype("int64") >= t.n).set_axis(subjects.index)
    if t.kind == "last_line":
        return subjects["LSTREFFL"].eq("Y").fillna(False).set_axis(subjects.index)
    if t.kind == "flag":
        if t.var not in subjects:
            raise KeyError(f"rule term {t.text!r}: ADSL has no variable {t.var}")
        return subjects[t.var].eq("Y").fillna(False).set_axis(subjects.index)
    sel = status["DRUG"].isin(term_drugs(t, dictionary))
    col = "REFFL" if t.status == "refractory" else "EXPFL"
    hit = status.loc[sel & status[col].eq("Y"), ["USUBJID", "DRUG"]].drop_duplicates()
    counts = hit.groupby("USUBJID").size()
    n = ids.map(counts).fillna(0).astype("int64")
    return (n >= t.n).set_axis(subjects.index)


def term_drugs(term: Term, dictionary: DrugDictionary) -> set[str]:
    """The drugs a ``status`` term counts: its named drugs and the members of its named classes."""
    resolved = [dictionary.resolve(n) for n in term.names]
    drugs = {v for k, v in resolved if k == "drug"}
    classes = {v for k, v in resolved if k == "class"}
    return drugs | set(dictionary.drug_classes.loc[dictionary.drug_classes["CLASS"].isin(classes), "DRUG"])


def compute_terms(
    terms: tuple[str, ...] | list[str],
    status: pd.DataFrame,
    subjects: pd.DataFrame,
    dictionary: DrugDictionary,
) -> pd.Series:
    """All terms hold (logical AND over ``terms``)."""
    out = pd.Series(True, index=subjects.index)
    for t in terms:
        out &= compute_term(t, status, subjects, dictionary)
    return out


DEFAULT_REFRACTORY_RULE = RefractoryRule()


def _encode(values: pd.Series, uniques: Any) -> np.ndarray:
    """Codes of ``values`` among ``uniques`` (from :func:`codes_of`); -1 for values not there."""
    return pd.Index(uniques).get_indexer(values.astype(object) if len(values) == 0 else values)


# --------------------------------------------------------------------------- dates and intervals

_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _days(s: pd.Series) -> pd.arrays.IntegerArray:
    """Dates as nullable integer days since 1970-01-01 (floor), from the int64 values directly."""
    v = pd.to_datetime(s).to_numpy()
    i8 = v.view(np.int64)
    missing = np.isnat(v)
    per_day = _PER_DAY[np.datetime_data(v.dtype)[0]]
    return pd.arrays.IntegerArray(np.where(missing, 0, i8 // per_day), missing)


def compute_date_bounds(dates: pd.Series, flags: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Earliest and latest true date consistent with an imputed date and its flag.

    Flag ``""``: the date itself; ``"D"`` (day imputed): the whole month; ``"M"`` (month and day
    imputed): the whole year (imputation flags of sdtm/dates.py, context.py). Works whatever
    imputation rule produced the date, because it only uses the date's month or year.
    """
    d = pd.to_datetime(dates)
    f = flags.astype("string").fillna("").str.upper().to_numpy()
    lo = d.copy()
    hi = d.copy()
    mon = f == "D"
    yr = f == "M"
    if mon.any():
        p = d[mon].dt.to_period("M")
        lo[mon] = p.dt.start_time.dt.normalize().to_numpy()
        hi[mon] = p.dt.end_time.dt.normalize().to_numpy()
    if yr.any():
        p = d[yr].dt.to_period("Y")
        lo[yr] = p.dt.start_time.dt.normalize().to_numpy()
        hi[yr] = p.dt.end_time.dt.normalize().to_numpy()
    return lo, hi


def derive_progression_events(rs: pd.DataFrame | None) -> pd.DataFrame:
    """Prior-therapy progression events: rs RSCAT PRIOR THERAPY, RSTESTCD OVRLRESP, RSSTRESC PD.

    Columns USUBJID, RSGRPID, PDDT, PDDTF, PDROW (rs ROWNUM), PDLO, PDHI (date bounds).
    """
    cols = ["USUBJID", "RSGRPID", "PDDT", "PDDTF", "PDROW", "PDLO", "PDHI"]
    pr = _prior_rs(rs)
    x = pr.loc[pr["RSSTRESC"].eq("PD").fillna(False) & pr["RSDT"].notna()].copy()
    x = x.rename(columns={"RSDT": "PDDT", "RSDTF": "PDDTF", "ROWNUM": "PDROW"})
    x["PDLO"], x["PDHI"] = compute_date_bounds(x["PDDT"], x["PDDTF"])
    return x[cols].reset_index(drop=True)


def _prior_rs(rs: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["USUBJID", "RSGRPID", "RSSTRESC", "RSDT", "RSDTF", "ROWNUM"]
    if rs is None or len(rs) == 0 or "RSCAT" not in rs:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols}).astype({"RSDT": "datetime64[ns]"})
    x = rs.loc[rs["RSCAT"].astype("string").str.upper().eq("PRIOR THERAPY").fillna(False)].copy()
    if "RSTESTCD" in x:
        x = x.loc[x["RSTESTCD"].astype("string").str.upper().eq("OVRLRESP").fillna(False)]
    for c in ("RSGRPID", "RSDTF"):
        if c not in x:
            x[c] = pd.NA
    if "ROWNUM" not in x:
        x["ROWNUM"] = np.arange(1, len(x) + 1)
    if "RSDT" not in x:
        x["RSDT"] = pd.NaT
    x["RSDT"] = pd.to_datetime(x["RSDT"])
    x["RSSTRESC"] = x["RSSTRESC"].astype("string").str.upper().str.strip()
    x["RSDTF"] = x["RSDTF"].astype("string").fillna("")
    x["USUBJID"] = x["USUBJID"].astype("string")
    x["RSGRPID"] = x["RSGRPID"].astype("string")
    return x[cols]


def _day_bounds(dates: pd.Series, flags: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Days since 1970-01-01 (floor) of ``dates`` and of their bounds, and the missing mask.

    The bounds are those of :func:`compute_date_bounds` (flag ``D``: the month, ``M``: the
    year, else the date itself), computed on numpy day numbers; missing dates give 0.
    """
    v = pd.to_datetime(dates).to_numpy()
    missing = np.isnat(v)
    day = v.astype("datetime64[D]")  # floor, as the days of a date with a time of day
    d = np.where(missing, 0, day.view(np.int64))
    lo, hi = d.copy(), d.copy()
    codes, uniques = pd.factorize(flags)  # the flags' distinct values only (missing: -1)
    up = pd.Series(uniques, dtype="object").astype("string").str.upper().to_numpy(dtype=object)
    for flag, unit in (("D", "M"), ("M", "Y")):
        sel = np.isin(codes, np.flatnonzero(up == flag)) & ~missing
        if sel.any():
            per = day[sel].astype(f"datetime64[{unit}]")
            lo[sel] = per.astype("datetime64[D]").view(np.int64)
            hi[sel] = (per + 1).astype("datetime64[D]").view(np.int64) - 1
    return d, lo, hi, missing


_PAIRS_PER_CHUNK = 1 << 22  # interval-event pairs held at once (memory bound of the window join)


@dataclass(frozen=True)
class _WindowHits:
    """Per interval: a qualifying PD (``qual``), its day and event position (valid where ``qual``),
    whether a qualifying PD qualifies for every consistent date (``cert``) and whether any PD
    might qualify for some consistent date (``poss``)."""

    qual: np.ndarray
    day: np.ndarray
    event: np.ndarray
    cert: np.ndarray
    poss: np.ndarray


def _window_hits(
    iv_subj: np.ndarray, iv_grp: pd.Series | None, st: pd.Series, en: pd.Series, stf: pd.Series, enf: pd.Series,
    ev_subj: np.ndarray, ev_grp: pd.Series | None, events: pd.DataFrame, rule: RefractoryRule,
) -> _WindowHits:
    """The first progression on each interval or within the window after it (numpy range join).

    Intervals and events are matched on their integer subject codes (and regimen id when
    ``iv_grp``/``ev_grp`` are given, ``pd_link = "regimen"``; a missing id never matches).
    Candidate events of an interval are found by binary search on (subject, earliest PD day):
    a PD may qualify only if its earliest day is at most the window's end and at least the
    interval's earliest start minus the widest PD date range; every candidate pair is then
    tested with the loose (``possible``) condition, the chosen ``partial_dates`` condition and
    the ``certain`` one. Per interval, the first qualifying PD day is kept; among PDs on that
    day, the one recorded last (the DuckDB join this replaces kept that one, by scan order).
    Pairs are formed for a bounded number at a time (``_PAIRS_PER_CHUNK``).
    """
    n = len(iv_subj)
    w = int(rule.window_days)
    s_day, s_lo, s_hi, s_miss = _day_bounds(st, stf)
    e_day, e_lo, e_hi, e_miss = _day_bounds(en, enf)
    p_day, p_lo, p_hi, p_miss = _day_bounds(events["PDDT"], events["PDDTF"])
    ki = np.asarray(iv_subj, dtype=np.int64)
    ke = np.asarray(ev_subj, dtype=np.int64)
    if iv_grp is not None and ev_grp is not None:  # regimen link: the key is (subject, regimen id)
        g, _ = pd.factorize(pd.concat([iv_grp.astype("string"), ev_grp.astype("string")], ignore_index=True))
        gi, ge = g[:n], g[n:]
        ng = int(g.max()) + 1 if len(g) else 1
        ki = np.where((gi >= 0) & (ki >= 0), ki * ng + gi, -1)
        ke = np.where((ge >= 0) & (ke >= 0), ke * ng + ge, -1)
    out = _WindowHits(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int64),
                      np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
    ev_ok = (ke >= 0) & ~p_miss
    if n == 0 or not ev_ok.any():
        return out
    ev_keys = unique_sorted(ke[ev_ok])  # dense keys: key * M + day fits int64
    ke = np.where(ev_ok, np.searchsorted(ev_keys, ke), -1)
    pos = np.searchsorted(ev_keys, ki).clip(0, len(ev_keys) - 1)
    ki = np.where((ki >= 0) & (ev_keys[pos] == ki) & ~s_miss & ~e_miss, pos, -1)
    base = int(p_lo[ev_ok].min())
    m = int(p_lo[ev_ok].max()) - base + 1
    span = int((p_hi - p_lo)[ev_ok].max())  # widest PD date range (a year for a month-imputed PD)
    valid_ev = np.flatnonzero(ev_ok)
    order = valid_ev[np.lexsort((p_lo[valid_ev], ke[valid_ev]))]
    sorted_key = ke[order] * m + (p_lo[order] - base)
    lo_rel = np.clip(s_lo - span - base, 0, m)
    hi_rel = np.clip(e_hi + w - base, -1, m - 1)
    a = np.searchsorted(sorted_key, ki * m + lo_rel, side="left")
    b = np.searchsorted(sorted_key, ki * m + hi_rel, side="right")
    cnt = np.where((ki >= 0) & (hi_rel >= lo_rel), b - a, 0).clip(0)
    csum = np.cumsum(cnt)
    total = int(csum[-1])
    cuts = np.searchsorted(csum, np.arange(_PAIRS_PER_CHUNK, total, _PAIRS_PER_CHUNK), side="right")
    bounds = np.unique(np.r_[0, cuts, n])
    after = np.greater_equal if rule.pd_on_first_day else np.greater  # see RefractoryRule.pd_on_first_day
    for c0, c1 in pairwise(bounds.tolist()):
        c = cnt[c0:c1]
        tot = int(c.sum())
        if tot == 0:
            continue
        ii = np.repeat(np.arange(c0, c1), c)
        jj = order[np.repeat(a[c0:c1] - (np.cumsum(c) - c), c) + np.arange(tot)]
        loose = p_hi[jj] >= s_lo[ii]  # (p_lo <= window end holds by the search)
        ii, jj = ii[loose], jj[loose]
        out.poss[ii] = True
        cert = after(p_lo[jj], s_hi[ii]) & (p_hi[jj] <= e_lo[ii] + w)
        if rule.partial_dates == "imputed":
            chosen = after(p_day[jj], s_day[ii]) & (p_day[jj] <= e_day[ii] + w)
        elif rule.partial_dates == "certain":
            chosen = cert
        else:
            chosen = after(p_hi[jj], s_lo[ii])
        out.cert[ii[chosen & cert]] = True
        ii, jj = ii[chosen], jj[chosen]
        if len(ii) == 0:
            continue
        o = np.lexsort((-jj, p_day[jj], ii))  # per interval: first day, then the last recorded
        first = o[np.r_[True, ii[o][1:] != ii[o][:-1]]]
        at = ii[first]
        out.qual[at] = True
        out.day[at] = p_day[jj[first]]
        out.event[at] = jj[first]
    return out


def _days_to_ns(days: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Day numbers as datetime64[ns] (NaT where not ``valid``)."""
    return np.where(valid, days * 86_400_000_000_000, np.iinfo(np.int64).min).view("datetime64[ns]")


def compute_progression_in_window(
    intervals: pd.DataFrame,
    events: pd.DataFrame,
    *,
    rule: RefractoryRule = DEFAULT_REFRACTORY_RULE,
) -> pd.DataFrame:
    """For each exposure interval, the first progression on it or within the window after it.

    ``intervals``: IVID (unique id), USUBJID, CMGRPID, ST, EN, STF, ENF (dates and imputation flags).
    ``events``: see :func:`derive_progression_events`.

    Returns one row per interval with any progression that qualifies for some consistent date
    (PDPOSS): IVID, QUALFL (a PD qualifies under the chosen ``partial_dates`` rule), PDDT and
    PDROW (the first such PD; among PDs on one day the one recorded last), PDCERT (qualifies
    for every consistent date), PDPOSS. Algorithm: :func:`_window_hits` on integer subject codes.
    """
    s_code, subjects = codes_of(pd.concat([intervals["USUBJID"], events["USUBJID"]], ignore_index=True))
    s_code = np.where(s_code == len(subjects), -1, s_code)  # a missing subject matches nothing
    link = rule.pd_link == "regimen"
    h = _window_hits(s_code[:len(intervals)], intervals["CMGRPID"] if link else None, intervals["ST"],
                     intervals["EN"], intervals["STF"], intervals["ENF"], s_code[len(intervals):],
                     events["RSGRPID"] if link else None, events, rule)
    sel = np.flatnonzero(h.poss)
    rows = events["PDROW"].astype("Int64").array.take(np.where(h.qual[sel], h.event[sel], -1), allow_fill=True)
    return pd.DataFrame({
        "IVID": intervals["IVID"].to_numpy()[sel], "QUALFL": h.qual[sel],
        "PDDT": _days_to_ns(h.day[sel], h.qual[sel]), "PDROW": rows,
        "PDCERT": pd.array(h.cert[sel], dtype="boolean"), "PDPOSS": True,
    })


def _exposure_intervals(
    exposure: pd.DataFrame, trtsdt: pd.Series | None, rule: RefractoryRule
) -> tuple[pd.DataFrame, list[InputIssue]]:
    """Drug rows as intervals; missing end handled per ``rule.missing_end`` (with warnings)."""
    x = exposure[["USUBJID", "DRUG", "CMGRPID", "CMSTDT", "CMENDT", "CMSTDTF", "CMENDTF", "ROWNUM"]]
    x = x.reset_index(drop=True)  # a copy of the columns used
    x["IVID"] = np.arange(len(x), dtype="int64")
    x["ST"] = pd.to_datetime(x["CMSTDT"])
    x["EN"] = pd.to_datetime(x["CMENDT"])
    x["STF"] = x["CMSTDTF"].astype("string").fillna("")
    x["ENF"] = x["CMENDTF"].astype("string").fillna("")
    noend = x["EN"].isna() & x["ST"].notna()
    issues: list[InputIssue] = []
    if noend.any():
        if rule.missing_end == "ongoing" and trtsdt is not None:
            ref = lookup(x.loc[noend, "USUBJID"], trtsdt) - pd.Timedelta(days=1)
            x.loc[noend, "EN"] = pd.to_datetime(ref).to_numpy()
            x.loc[noend, "ENF"] = ""
            what = "taken as ongoing until the day before the first study dose"
        else:
            what = "not counted toward refractoriness"
        b = x.loc[noend]
        issues = [
            InputIssue(domain="cm", variable="CMENDTC", problem=f"prior-therapy end date missing; {what}",
                       severity="warning", usubjid=str(u), row=int(r), value=None,
                       hint="Give the last dose date (a partial date is accepted).",
                       rule="refractory (missing_end)")
            for u, r in zip(b["USUBJID"], b["ROWNUM"], strict=True)
        ]
    return x, issues


ADREFR_COLUMNS = [
    "USUBJID", "DRUG", "CLASSES", "EXPFL", "REFFL", "NEXP", "FEXPDT", "LDOSEDT", "REFGRPID",
    "REFSTDT", "REFENDT", "REFPDDT", "REFDAYS", "REFTYPE", "REFCMROW", "REFRSROW", "DATEIMPFL",
    "NXTPDDT", "NXTPDDY", "EXPOKFL",
]


def derive_drug_refractory(
    exposure: pd.DataFrame,
    rs: pd.DataFrame | None,
    *,
    dictionary: DrugDictionary,
    rule: RefractoryRule = DEFAULT_REFRACTORY_RULE,
    trtsdt: pd.Series | None = None,
) -> tuple[pd.DataFrame, list[InputIssue]]:
    """ADREFR: refractory status and its evidence, one row per subject per drug received.

    Rule
    ----
    IMWG (Rajkumar 2011, reused by Kumar 2016; domain.md 2.6, tag C): refractory = progression
    on therapy or within 60 days of the last dose ("nonresponsive while on therapy" optionally,
    see ``RefractoryRule.nonresponse_is_refractory``); in trials the drug must have been given
    for a minimum time (MAMMOTH: >= 4 weeks; ``min_exposure_days``).

    Algorithm
    ---------
    1. Each cm drug row is an exposure interval [CMSTDT, CMENDT] (missing end: ``missing_end``).
    2. A PD date qualifies when CMSTDT <= PD <= CMENDT + ``window_days`` (``partial_dates`` rule),
       and the exposure lasted >= ``min_exposure_days``. PD before the drug started never counts.
    3. Per subject and drug: REFFL = any qualifying exposure; the evidence kept is the latest
       qualifying exposure (REFGRPID, its dates, the first qualifying PD REFPDDT, REFDAYS = PD -
       last dose, negative or 0 = on therapy). For drugs not refractory, NXTPDDT/NXTPDDY give the
       first PD after the last exposure started (why it failed the window).

    Parameters
    ----------
    trtsdt : Series, optional
        First study dose per USUBJID (index), for ``missing_end = "ongoing"``.
    """
    if len(exposure) == 0:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in ADREFR_COLUMNS}), []
    iv, issues = _exposure_intervals(exposure, trtsdt, rule)
    events = derive_progression_events(rs)
    # integer subject and drug codes in text order (issue 15): the same groups, sorts and joins
    subj, subjects = codes_of(iv["USUBJID"])
    drug, drugs = codes_of(iv["DRUG"])
    ev_subj = _encode(events["USUBJID"], subjects)
    link = rule.pd_link == "regimen"
    h = _window_hits(subj, iv["CMGRPID"] if link else None, iv["ST"], iv["EN"], iv["STF"], iv["ENF"],
                     ev_subj, events["RSGRPID"] if link else None, events, rule)
    n = len(iv)
    st_dt, en_dt = iv["ST"].to_numpy(), iv["EN"].to_numpy()
    st, en = st_dt.view(np.int64), en_dt.view(np.int64)
    dated = (st != NAT) & (en != NAT)
    # exposure days (floor, as Timedelta.days); an undated exposure has no duration and does not
    # count as long enough, whatever min_exposure_days (as the first release: NaN >= n is False)
    span = (en_dt - st_dt)[dated] // np.timedelta64(1, "D")
    expok = np.zeros(n, dtype=bool)
    expok[dated] = span + 1 >= rule.min_exposure_days
    qual = h.qual
    kind = qual.astype(np.int8)  # 1 = PD, 2 = nonresponse
    pd_ns = _days_to_ns(h.day, qual)
    pdrow = events["PDROW"].astype("Int64").array.take(np.where(qual, h.event, -1), allow_fill=True)
    if rule.nonresponse_is_refractory:
        prs = _prior_rs(rs)
        nr = prs.loc[prs["RSSTRESC"].isin(rule.nonresponse_values).fillna(False), ["USUBJID", "RSGRPID", "RSDT", "ROWNUM"]]
        nr = nr.sort_values("RSDT").drop_duplicates(["USUBJID", "RSGRPID"])
        nr = nr.rename(columns={"RSGRPID": "CMGRPID", "RSDT": "NRDT", "ROWNUM": "NRROW"})
        nr = nr.assign(USUBJID=_encode(nr["USUBJID"], subjects))
        m = pd.DataFrame({"USUBJID": subj, "CMGRPID": iv["CMGRPID"]}).merge(nr, on=["USUBJID", "CMGRPID"], how="left")
        isnr = m["NRDT"].notna().to_numpy() & ~qual
        kind[isnr] = 2
        pd_ns = np.where(isnr, m["NRDT"].to_numpy().astype("datetime64[ns]"), pd_ns)
        pdrow[isnr] = m["NRROW"].astype("Int64").array[isnr]
        qual = qual | isnr
    ref = qual & expok
    amb = h.poss & ~h.cert

    # one row per (subject, drug): groups of rows ordered by start (missing last), then row
    nd = len(drugs) + 1
    g = subj * nd + drug
    big = np.iinfo(np.int64).max
    st_up = np.where(st == NAT, big, st)
    order = np.lexsort((np.arange(n), st_up, g))
    gs = g[order]
    starts = group_starts(gs)
    ng = len(starts)
    gid = np.empty(n, dtype=np.int64)
    gid[order] = group_ids(starts, n)
    last = order[np.r_[starts[1:], n] - 1]  # the exposure that started last
    fexp = np.minimum.reduceat(st_up[order], starts)
    refany = np.logical_or.reduceat(ref[order], starts)
    # evidence: of the refractory exposures, the one that ended last (missing end last), then the later row
    r = np.flatnonzero(ref)
    o = r[np.lexsort((r, np.where(en[r] == NAT, big, en[r]), g[r]))]
    evrow = np.full(ng, -1, dtype=np.int64)
    if len(o):
        o = o[np.r_[group_starts(g[o])[1:], len(o)] - 1]  # the last of each group
        evrow[gid[o]] = o
    has = evrow >= 0

    def at(values: np.ndarray, rows: np.ndarray) -> np.ndarray:  # int64 values at rows, NaT at -1
        return np.where(rows >= 0, values[rows], NAT)

    out = pd.DataFrame({
        "USUBJID": decode(gs[starts] // nd, subjects),
        "DRUG": gs[starts] % nd,
        "NEXP": np.diff(np.r_[starts, n]).astype("int64"),
        "FEXPDT": np.where(fexp == big, NAT, fexp).view(st_dt.dtype),
        "LDOSEDT": np.maximum.reduceat(en[order], starts).view(en_dt.dtype),
        "REFGRPID": take_or_na(iv["CMGRPID"], evrow).astype("string"),
        "REFSTDT": at(st, evrow).view(st_dt.dtype),
        "REFENDT": at(en, evrow).view(en_dt.dtype),
        "REFPDDT": at(pd_ns.view(np.int64), evrow).view("datetime64[ns]"),
        "REFCMROW": iv["ROWNUM"].astype("Int64").array.take(evrow, allow_fill=True),
        "REFRSROW": pdrow.take(evrow, allow_fill=True),
    })
    out["EXPFL"] = "Y"
    out["REFFL"] = np.where(refany, "Y", "N")
    out["EXPOKFL"] = np.where(np.logical_or.reduceat(expok[order], starts), "Y", "N")
    out["DATEIMPFL"] = np.where(np.logical_or.reduceat(amb[order], starts), "Y", "N")
    out["REFDAYS"] = (out["REFPDDT"] - out["REFENDT"]).dt.days.astype("Int64")
    w = rule.window_days
    on = out["REFDAYS"].fillna(1).to_numpy() <= 0
    k_ev = np.where(has, kind[np.where(has, evrow, 0)], 0)
    reftype = np.select([k_ev == 2, (k_ev == 1) & on, k_ev == 1],
                        ["NONRESPONSE", "PD ON THERAPY", f"PD WITHIN {w} DAYS OF LAST DOSE"], "")
    out["REFTYPE"] = pd.Series(np.where(refany & (k_ev > 0), reftype, None), dtype="string")
    # first PD after the start of the last exposure (evidence for non-refractory drugs)
    ev_dt = events["PDDT"].to_numpy()
    nxt = np.full(ng, NAT, dtype=np.int64)
    q_ns = st_dt[last].astype("datetime64[ns]").view(np.int64)
    qv = np.flatnonzero(q_ns != NAT)
    ok = np.flatnonzero(ev_subj >= 0)
    if len(ok) and len(qv):
        e_ns = ev_dt[ok].astype("datetime64[ns]").view(np.int64)
        uniq, inv = np.unique(np.r_[e_ns, q_ns[qv]], return_inverse=True)
        nr_ = len(uniq)
        ek = ev_subj[ok] * nr_ + inv[:len(ok)]
        eo = np.argsort(ek, kind="stable")
        qs = subj[last[qv]]
        p = np.searchsorted(ek[eo], qs * nr_ + inv[len(ok):], side="left")
        hit = p < len(eo)
        hit[hit] = ek[eo][p[hit]] // nr_ == qs[hit]
        nxt[qv[hit]] = ev_dt.view(np.int64)[ok[eo[p[hit]]]]
    out["NXTPDDT"] = nxt.view(ev_dt.dtype)
    out["NXTPDDY"] = (out["NXTPDDT"] - pd.Series(en_dt[last])).dt.days.astype("Int64")
    cls = dictionary.drug_classes.sort_values("CLASS").groupby("DRUG")["CLASS"].agg(list)
    cls = cls.map(";".join) if len(cls) else cls
    out["CLASSES"] = decode(out["DRUG"].to_numpy(), pd.Series(drugs).map(cls).astype("string").array)
    out["DRUG"] = decode(out["DRUG"].to_numpy(), drugs)
    return out[ADREFR_COLUMNS], issues


def derive_line_refractory(
    lines: pd.DataFrame,
    rs: pd.DataFrame | None,
    *,
    rule: RefractoryRule = DEFAULT_REFRACTORY_RULE,
    trtsdt: pd.Series | None = None,
) -> pd.DataFrame:
    """Progression evidence per line: LOTREFFL, LOTPDDT, LOTPDROW (one row per subject-line).

    A line is refractory when any of its items (regimens; a transplant counts as a one-day
    exposure) has a qualifying progression as in :func:`derive_drug_refractory` (Rajkumar 2011:
    "refractory to the last line" = progression on or within 60 days of the end of that line).
    PD between planned steps but > 60 days after the previous step is relapse, not refractoriness.
    """
    k = ["USUBJID", "LINENUM"]
    if len(lines) == 0:
        return pd.DataFrame({"USUBJID": pd.Series(dtype="string"), "LINENUM": pd.Series(dtype="int64"),
                             "LOTREFFL": pd.Series(dtype="string"), "LOTPDDT": pd.Series(dtype="datetime64[ns]"),
                             "LOTPDROW": pd.Series(dtype="Int64")})
    iv = lines[[*k, "ITEMID", "STDT", "ENDT", "STDTF", "ENDTF"]].reset_index(drop=True)
    iv = iv.assign(IVID=np.arange(len(iv)), CMGRPID=iv["ITEMID"], ST=iv["STDT"], EN=iv["ENDT"],
                   STF=iv["STDTF"], ENF=iv["ENDTF"])
    if rule.missing_end == "ongoing" and trtsdt is not None:  # as for drugs: ongoing until first dose
        noend = iv["EN"].isna() & iv["ST"].notna()
        iv.loc[noend, "EN"] = pd.to_datetime(lookup(iv.loc[noend, "USUBJID"], trtsdt)
                                             - pd.Timedelta(days=1)).to_numpy()
        iv.loc[noend, "ENF"] = ""
    # integer subject codes in text order (issue 15): the same joins, sorts and duplicates
    subj, subjects = codes_of(iv["USUBJID"])
    events = derive_progression_events(rs)
    link = rule.pd_link == "regimen"
    h = _window_hits(subj, iv["CMGRPID"] if link else None, iv["ST"], iv["EN"], iv["STF"], iv["ENF"],
                     _encode(events["USUBJID"], subjects), events["RSGRPID"] if link else None, events, rule)
    pddt = pd.Series(_days_to_ns(h.day, h.qual))
    pdrow = events["PDROW"].astype("Int64").array.take(np.where(h.qual, h.event, -1), allow_fill=True)
    if rule.nonresponse_is_refractory:
        prs = _prior_rs(rs)
        nr = prs.loc[prs["RSSTRESC"].isin(rule.nonresponse_values).fillna(False), ["USUBJID", "RSGRPID", "RSDT"]]
        nr = nr.sort_values("RSDT").drop_duplicates(["USUBJID", "RSGRPID"]).rename(
            columns={"RSGRPID": "CMGRPID", "RSDT": "NRDT"})
        nr = nr.assign(USUBJID=_encode(nr["USUBJID"], subjects))
        m = pd.DataFrame({"USUBJID": subj, "CMGRPID": iv["CMGRPID"]}).merge(nr, on=["USUBJID", "CMGRPID"], how="left")
        pddt = pddt.fillna(m["NRDT"])
    # per line the first PD: the rows with a PD in the order pandas' default sort_values puts them
    # (the first release's sort + drop_duplicates, kept for identical LOTPDROW when PD dates tie)
    line = lines["LINENUM"].to_numpy(dtype=np.int64)
    nl = int(line.max()) + 1 if len(line) else 1
    key = subj * nl + line  # (subject, line) in that order (LINENUM >= 0)
    with_pd = np.flatnonzero(pddt.notna().to_numpy())
    q = with_pd[pddt.iloc[with_pd].reset_index(drop=True).sort_values().index.to_numpy()]
    keys, first = np.unique(key[q], return_index=True)  # first occurrence in that order
    allkeys = unique_sorted(key)
    row = np.full(len(allkeys), -1, dtype=np.int64)
    row[np.searchsorted(allkeys, keys)] = q[first]
    out = pd.DataFrame({
        "USUBJID": decode(allkeys // nl, subjects),
        "LINENUM": (allkeys % nl).astype("int64"),
        "LOTPDDT": np.where(row >= 0, pddt.to_numpy()[row.clip(0)] if len(pddt) else None, np.datetime64("NaT")),
        "LOTPDROW": pdrow.take(row, allow_fill=True),
    })
    out["LOTREFFL"] = np.where(row >= 0, "Y", "N")
    return out


class StatusTerms:
    """Terms evaluated for every row of ``subjects`` with the status table encoded once (issue 15).

    :meth:`holds` gives :func:`compute_term` of a term as a boolean array. Integer subject and
    drug codes: every ``status`` term is a count of distinct (subject, drug) pairs among the
    status rows of its drugs (one ``bincount``), the drugs of a term resolved once; other kinds
    of terms go to :func:`compute_term`.
    """

    def __init__(self, status: pd.DataFrame, subjects: pd.DataFrame, dictionary: DrugDictionary) -> None:
        self.status, self.subjects, self.dictionary = status, subjects, dictionary
        ids = subjects["USUBJID"]
        if not pd.api.types.is_integer_dtype(ids.dtype):  # as compute_term: integer codes as they are
            ids = ids.astype("string")
        self._subj_code, subj_uni = codes_of(ids)
        self._nsubj = len(subj_uni)
        s_code = _encode(status["USUBJID"], subj_uni)
        d_code, d_uni = pd.factorize(status["DRUG"])
        self._names = pd.Index(d_uni, dtype=object)
        nd = len(d_uni) + 1
        known = (s_code >= 0) & (d_code >= 0)
        pairs, inv = np.unique(s_code[known] * nd + d_code[known], return_inverse=True)  # distinct (subject, drug)
        self._p_subj, self._p_drug = pairs // nd, pairs % nd
        self._marked = {c: np.bincount(inv, weights=status[c].eq("Y").fillna(False).to_numpy(dtype=bool)[known],
                                       minlength=len(pairs)) > 0 for c in ("EXPFL", "REFFL")}
        self._drugs: dict[tuple[str, ...], set[str]] = {}

    def count(self, drugs: set[str], col: str) -> np.ndarray:
        """Distinct drugs of ``drugs`` with ``col`` = "Y", per row of ``subjects``."""
        sel = self._marked[col] & np.asarray(self._names.isin(drugs))[self._p_drug]
        return np.bincount(self._p_subj[sel], minlength=self._nsubj + 1)[self._subj_code].astype("int64")

    def holds(self, t: Term) -> np.ndarray:
        """Whether ``t`` holds, per row of ``subjects``."""
        if t.kind != "status":
            return compute_term(t, self.status, self.subjects, self.dictionary).to_numpy(dtype=bool)
        if t.names not in self._drugs:
            self._drugs[t.names] = term_drugs(t, self.dictionary)
        return self.count(self._drugs[t.names], "REFFL" if t.status == "refractory" else "EXPFL") >= t.n


def derive_refractory_flags(
    status: pd.DataFrame,
    subjects: pd.DataFrame,
    *,
    dictionary: DrugDictionary,
    rule: RefractoryRule = DEFAULT_REFRACTORY_RULE,
) -> pd.DataFrame:
    """Per-subject exposure/refractory variables for ADSL.

    Adds to ``subjects`` (USUBJID, NLINES, LSTREFFL): per flagged drug ``<CODE>EXPFL``,
    ``<CODE>REFFL`` (e.g. BTZREFFL); per flagged class ``<PFX>EXPN``, ``<PFX>REFN`` (distinct
    drugs of the class exposed / refractory) and ``<PFX>EXPFL``, ``<PFX>REFFL`` (e.g. PIREFN,
    C38REFFL); each composite flag (TCRFL, PENTAFL, QUADFL, TCEFL); REFRCAT, the mutually
    exclusive MAMMOTH-style category (``PENTA``, ``QUAD``, ``TRIPLE``, ``NOT TRIPLE``).
    """
    out = subjects.copy()
    encoded = StatusTerms(status, out, dictionary)
    holds, count = encoded.holds, encoded.count

    for drug in rule.flag_drugs:
        kind, canon = dictionary.resolve(drug)
        if kind != "drug":
            raise ValueError(f"RefractoryRule.flag_drugs: {drug!r} is a class; list classes in flag_classes")
        code = dictionary.code_of(canon)
        for st, col in (("exposed", "EXPFL"), ("refractory", "REFFL")):
            v = holds(Term(kind="status", text=f"{st}:{canon}", status=st, names=(canon,)))
            out[f"{code}{col}"] = np.where(v, "Y", "N")
    for cls in rule.flag_classes:
        kind, code = dictionary.resolve(cls)
        if kind != "class":
            raise ValueError(f"RefractoryRule.flag_classes: {cls!r} is a drug; list drugs in flag_drugs")
        pfx = dictionary.prefix_of(code)
        members = set(dictionary.drug_classes.loc[dictionary.drug_classes["CLASS"] == code, "DRUG"])
        for col, nm in (("EXPFL", "EXP"), ("REFFL", "REF")):
            n = count(members, col)
            out[f"{pfx}{nm}N"] = n
            out[f"{pfx}{nm}FL"] = np.where(n > 0, "Y", "N")
    for name, terms in rule.composites.items():
        ok = np.ones(len(out), dtype=bool)
        for t in terms:
            ok &= holds(parse_term(t))
        out[name] = np.where(ok, "Y", "N")
    conds = []
    labels = []
    for nm, lbl in (("PENTAFL", "PENTA"), ("QUADFL", "QUAD"), ("TCRFL", "TRIPLE")):
        if nm in out:
            conds.append(out[nm].eq("Y").to_numpy())
            labels.append(lbl)
    out["REFRCAT"] = np.select(conds, labels, default="NOT TRIPLE") if conds else "NOT TRIPLE"
    return out
