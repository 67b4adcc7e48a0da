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
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmtrial._frames import lookup
from mmtrial.derive._groups import codes_of, decode
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
    resolved = [dictionary.resolve(n) for n in t.names]
    drugs = {v for k, v in resolved if k == "drug"}
    classes = {v for k, v in resolved if k == "class"}
    members = set(dictionary.drug_classes.loc[dictionary.drug_classes["CLASS"].isin(classes), "DRUG"])
    sel = status["DRUG"].isin(drugs | members)
    col = "REFFL" if t.status == "refractory" else "EXPFL"
    hit = status.loc[sel & status[col].eq("Y"), ["USUBJID", "DRUG"]].drop_duplicates()
    counts = hit.groupby("USUBJID").size()
    n = ids.map(counts).fillna(0).astype("int64")
    return (n >= t.n).set_axis(subjects.index)


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


def _key(s: pd.Series) -> np.ndarray:
    """A join key for DuckDB: integer subject codes as they are, text as text."""
    return s.to_numpy() if pd.api.types.is_integer_dtype(s.dtype) else s.astype("string").to_numpy()


def compute_progression_in_window(
    intervals: pd.DataFrame,
    events: pd.DataFrame,
    *,
    rule: RefractoryRule = DEFAULT_REFRACTORY_RULE,
) -> pd.DataFrame:
    """For each exposure interval, the first progression on it or within the window after it.

    ``intervals``: IVID (unique id), USUBJID, CMGRPID, ST, EN, STF, ENF (dates and imputation flags).
    ``events``: see :func:`derive_progression_events`.

    Returns one row per interval with a qualifying PD under the chosen ``partial_dates`` rule:
    IVID, PDDT, PDROW, PDCERT (qualifies for every consistent date), PDPOSS (for some).
    Algorithm: one DuckDB join on USUBJID (and RSGRPID when ``pd_link="regimen"``) with the
    loosest (``possible``) range condition, then the chosen condition, the first PD per interval.
    """
    import duckdb

    w = int(rule.window_days)
    iv = intervals
    stlo, sthi = compute_date_bounds(iv["ST"], iv["STF"])
    enlo, enhi = compute_date_bounds(iv["EN"], iv["ENF"])
    d = pd.DataFrame({
        "IVID": iv["IVID"].to_numpy(), "USUBJID": _key(iv["USUBJID"]),
        "GRP": iv["CMGRPID"].astype("string").to_numpy() if rule.pd_link == "regimen" else 0,
        "st": _days(iv["ST"]), "en": _days(iv["EN"]),
        "stlo": _days(stlo), "sthi": _days(sthi), "enlo": _days(enlo), "enhi": _days(enhi),
    })
    p = pd.DataFrame({
        "USUBJID": _key(events["USUBJID"]),
        "GRP": events["RSGRPID"].astype("string").to_numpy() if rule.pd_link == "regimen" else 0,
        "pd": _days(events["PDDT"]), "pdlo": _days(events["PDLO"]), "pdhi": _days(events["PDHI"]),
        "PDROW": events["PDROW"].astype("Int64").array,
    })
    link = "AND p.GRP = d.GRP" if rule.pd_link == "regimen" else ""
    after = ">=" if rule.pd_on_first_day else ">"  # PD on the drug's first day: see RefractoryRule
    cond = {
        "imputed": f"p.pd {after} d.st AND p.pd <= d.en + {w}",
        "certain": f"p.pdlo {after} d.sthi AND p.pdhi <= d.enlo + {w}",
        "possible": f"p.pdhi {after} d.stlo",
    }[rule.partial_dates]
    q = f"""
    WITH j AS (
      SELECT d.IVID, p.pd, p.PDROW,
             (p.pdlo {after} d.sthi AND p.pdhi <= d.enlo + {w}) AS cert,
             ({cond}) AS chosen
      FROM d JOIN p ON p.USUBJID = d.USUBJID {link}
        AND p.pdhi >= d.stlo AND p.pdlo <= d.enhi + {w}
    )
    SELECT IVID, arg_min(pd, pd) AS pd, arg_min(PDROW, pd) AS PDROW,
           bool_or(cert) AS PDCERT, TRUE AS PDPOSS
    FROM j WHERE chosen GROUP BY IVID
    """
    # one thread: less CPU for joins of this size (issue 15), and ties in arg_min resolved in scan order
    con = duckdb.connect(config={"threads": 1})
    try:
        con.register("d", d)
        con.register("p", p)
        res = con.sql(q).df()
        # conclusions that depend on the partial dates: possible but not certain
        amb = con.sql(f"""SELECT DISTINCT d.IVID FROM d JOIN p ON p.USUBJID = d.USUBJID {link}
              AND p.pdhi >= d.stlo AND p.pdlo <= d.enhi + {w}""").df()
    finally:
        con.close()
    res["PDDT"] = pd.to_datetime(pd.to_numeric(res["pd"]), unit="D").astype("datetime64[ns]")
    res["PDROW"] = res["PDROW"].astype("Int64")
    res["PDCERT"] = res["PDCERT"].astype("boolean").fillna(False)
    # PDPOSS on every interval with any possibly qualifying PD (for DATEIMPFL)
    out = amb.merge(res[["IVID", "PDDT", "PDROW", "PDCERT"]], on="IVID", how="left")
    out["QUALFL"] = out["PDDT"].notna()
    out["PDCERT"] = out["PDCERT"].astype("boolean").fillna(False)
    out["PDPOSS"] = True
    return out[["IVID", "QUALFL", "PDDT", "PDROW", "PDCERT", "PDPOSS"]]


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
    subj_code, subjects = codes_of(iv["USUBJID"])
    drug_code, drugs = codes_of(iv["DRUG"])
    iv = iv[["IVID", "CMGRPID", "ST", "EN", "STF", "ENF", "ROWNUM"]].assign(USUBJID=subj_code, DRUG=drug_code)
    events = events.assign(USUBJID=_encode(events["USUBJID"], subjects))
    hits = compute_progression_in_window(iv, events, rule=rule)
    iv = iv.merge(hits, on="IVID", how="left")
    iv["QUALFL"] = iv["QUALFL"].astype("boolean").fillna(False)
    iv["PDPOSS"] = iv["PDPOSS"].astype("boolean").fillna(False)
    iv["PDCERT"] = iv["PDCERT"].astype("boolean").fillna(False)
    dur = (iv["EN"] - iv["ST"]).dt.days + 1
    iv["EXPOK"] = (dur >= rule.min_exposure_days).fillna(rule.min_exposure_days == 0)
    iv["TYPE"] = pd.Series(pd.NA, index=iv.index, dtype="string")
    iv.loc[iv["QUALFL"], "TYPE"] = "PD"
    if rule.nonresponse_is_refractory:
        prs = _prior_rs(rs)
        nr = prs.loc[prs["RSSTRESC"].isin(rule.nonresponse_values).fillna(False), ["USUBJID", "RSGRPID", "RSDT", "ROWNUM"]]
        nr = nr.sort_values("RSDT").drop_duplicates(["USUBJID", "RSGRPID"])
        nr = nr.rename(columns={"RSGRPID": "CMGRPID", "RSDT": "NRDT", "ROWNUM": "NRROW"})
        nr = nr.assign(USUBJID=_encode(nr["USUBJID"], subjects))
        iv = iv.merge(nr, on=["USUBJID", "CMGRPID"], how="left")
        isnr = iv["NRDT"].notna() & ~iv["QUALFL"]
        iv.loc[isnr, "TYPE"] = "NONRESPONSE"
        iv.loc[isnr, "PDDT"] = iv.loc[isnr, "NRDT"]
        iv.loc[isnr, "PDROW"] = iv.loc[isnr, "NRROW"]
        iv["QUALFL"] = iv["QUALFL"] | isnr
    iv["REF"] = iv["QUALFL"] & iv["EXPOK"]
    iv["AMB"] = iv["PDPOSS"] & ~iv["PDCERT"]

    k = ["USUBJID", "DRUG"]
    g = iv.groupby(k, sort=False)
    out = g.agg(NEXP=("IVID", "size"), FEXPDT=("ST", "min"), LDOSEDT=("EN", "max"),
                REFN=("REF", "sum"), AMB=("AMB", "any"), EXPOKN=("EXPOK", "sum")).reset_index()
    ev = iv.loc[iv["REF"]].sort_values(["EN", "IVID"]).drop_duplicates(k, keep="last")
    ev = ev[[*k, "CMGRPID", "ST", "EN", "PDDT", "TYPE", "ROWNUM", "PDROW"]].rename(columns={
        "CMGRPID": "REFGRPID", "ST": "REFSTDT", "EN": "REFENDT", "PDDT": "REFPDDT", "TYPE": "REFTYPE",
        "ROWNUM": "REFCMROW", "PDROW": "REFRSROW"})
    out = out.merge(ev, on=k, how="left")
    out["EXPFL"] = "Y"
    out["REFFL"] = np.where(out["REFN"] > 0, "Y", "N")
    out["EXPOKFL"] = np.where(out["EXPOKN"] > 0, "Y", "N")
    out["DATEIMPFL"] = np.where(out["AMB"], "Y", "N")
    out["REFDAYS"] = (out["REFPDDT"] - out["REFENDT"]).dt.days.astype("Int64")
    w = rule.window_days
    lbl = np.where(out["REFDAYS"].fillna(1).to_numpy() <= 0, "PD ON THERAPY", f"PD WITHIN {w} DAYS OF LAST DOSE")
    out["REFTYPE"] = np.where(out["REFTYPE"].eq("PD").fillna(False), lbl, out["REFTYPE"].astype("object"))
    out.loc[out["REFFL"] == "N", "REFTYPE"] = pd.NA
    # first PD after the start of the last exposure (evidence for non-refractory drugs)
    last = iv.sort_values(["ST", "IVID"]).drop_duplicates(k, keep="last")[[*k, "ST", "EN"]]
    nx = last.merge(events[["USUBJID", "PDDT"]], on="USUBJID", how="inner")
    nx = nx.loc[nx["PDDT"] >= nx["ST"]].groupby(k)["PDDT"].min().rename("NXTPDDT").reset_index()
    out = out.merge(nx, on=k, how="left")
    out = out.merge(last.rename(columns={"EN": "_LEN"})[[*k, "_LEN"]], on=k, how="left")
    out["NXTPDDY"] = (out["NXTPDDT"] - out["_LEN"]).dt.days.astype("Int64")
    cls = dictionary.drug_classes.sort_values("CLASS").groupby("DRUG")["CLASS"].agg(list)
    cls = cls.map(";".join) if len(cls) else cls
    out["USUBJID"] = subjects.take(out["USUBJID"].to_numpy())
    drug_classes = pd.Series(drugs).map(cls).astype("string").array
    out["CLASSES"] = drug_classes.take(out["DRUG"].to_numpy())
    out["DRUG"] = drugs.take(out["DRUG"].to_numpy())
    for c in ("REFGRPID", "REFTYPE"):
        out[c] = out[c].astype("string")
    for c in ("REFCMROW", "REFRSROW"):
        out[c] = out[c].astype("Int64")
    return out.sort_values(k).reset_index(drop=True)[ADREFR_COLUMNS], issues


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
    subj_code, subjects = codes_of(iv["USUBJID"])
    iv = iv[["LINENUM", "IVID", "CMGRPID", "ST", "EN", "STF", "ENF"]].assign(USUBJID=subj_code)
    events = derive_progression_events(rs)
    hits = compute_progression_in_window(iv, events.assign(USUBJID=_encode(events["USUBJID"], subjects)),
                                         rule=rule)
    iv = iv.merge(hits.loc[hits["QUALFL"]], on="IVID", how="left")
    if rule.nonresponse_is_refractory:
        prs = _prior_rs(rs)
        nr = prs.loc[prs["RSSTRESC"].isin(rule.nonresponse_values).fillna(False), ["USUBJID", "RSGRPID", "RSDT"]]
        nr = nr.sort_values("RSDT").drop_duplicates(["USUBJID", "RSGRPID"]).rename(
            columns={"RSGRPID": "CMGRPID", "RSDT": "NRDT"})
        nr = nr.assign(USUBJID=_encode(nr["USUBJID"], subjects))
        iv = iv.merge(nr, on=["USUBJID", "CMGRPID"], how="left")
        iv["PDDT"] = iv["PDDT"].fillna(iv["NRDT"])
    q = iv.loc[iv["PDDT"].notna()].sort_values("PDDT").drop_duplicates(k)
    keys = pd.DataFrame({"LINENUM": lines["LINENUM"].to_numpy(), "USUBJID": subj_code})[k].drop_duplicates()
    out = keys.merge(q[[*k, "PDDT", "PDROW"]], on=k, how="left")
    out = out.rename(columns={"PDDT": "LOTPDDT", "PDROW": "LOTPDROW"})
    out["LOTREFFL"] = np.where(out["LOTPDDT"].notna(), "Y", "N")
    out["LOTPDROW"] = out["LOTPDROW"].astype("Int64")
    out = out.sort_values(k).reset_index(drop=True)
    out["USUBJID"] = decode(out["USUBJID"].to_numpy(), subjects)
    return out


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
    # integer subject codes (issue 15): every term counts per subject on int64 keys
    subj_code, subj_uni = codes_of(out["USUBJID"])
    status = status[["USUBJID", "DRUG", "EXPFL", "REFFL"]].assign(USUBJID=_encode(status["USUBJID"], subj_uni))
    coded = pd.Series(subj_code, index=out.index)
    for drug in rule.flag_drugs:
        kind, canon = dictionary.resolve(drug)
        if kind != "drug":
            raise ValueError(f"RefractoryRule.flag_drugs: {drug!r} is a class; list classes in flag_classes")
        code = dictionary.code_of(canon)
        for st, col in (("exposed", "EXPFL"), ("refractory", "REFFL")):
            v = compute_term(Term(kind="status", text=f"{st}:{canon}", status=st, names=(canon,)),
                             status, out[["USUBJID"]].assign(USUBJID=coded), dictionary)
            out[f"{code}{col}"] = np.where(v, "Y", "N")
    for cls in rule.flag_classes:
        kind, code = dictionary.resolve(cls)
        if kind != "class":
            raise ValueError(f"RefractoryRule.flag_classes: {cls!r} is a drug; list drugs in flag_drugs")
        pfx = dictionary.prefix_of(code)
        members = set(dictionary.drug_classes.loc[dictionary.drug_classes["CLASS"] == code, "DRUG"])
        s = status.loc[status["DRUG"].isin(members)]
        ids = coded
        for col, nm in (("EXPFL", "EXP"), ("REFFL", "REF")):
            cnt = s.loc[s[col].eq("Y")].groupby("USUBJID")["DRUG"].nunique()
            n = ids.map(cnt).fillna(0).astype("int64").to_numpy()
            out[f"{pfx}{nm}N"] = n
            out[f"{pfx}{nm}FL"] = np.where(n > 0, "Y", "N")
    for name, terms in rule.composites.items():
        out[name] = np.where(compute_terms(terms, status, out.assign(USUBJID=coded), dictionary), "Y", "N")
    conds = []
    labels = []
    for nm, lbl in (("PENTAFL", "PENTA"), ("QUADFL", "QUAD"), ("TCRFL", "TRIPLE")):
        if nm in out:
            conds.append(out[nm].eq("Y").to_numpy())
            labels.append(lbl)
    out["REFRCAT"] = np.select(conds, labels, default="NOT TRIPLE") if conds else "NOT TRIPLE"
    return out
