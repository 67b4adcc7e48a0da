"""IMWG response at each disease assessment (ADRS PARAMCD ``OVR``), from laboratory values.

Pipeline of small pure steps, vectorised over all subjects and assessments (no per-subject loop):

1. :func:`mmtrial.derive.baseline.extract_disease_labs` and :func:`extract_lesion_events` give a
   long table of marker values (SUBJ, KEY, DAY, VAL, ROWNUM);
2. :func:`mmtrial.derive.baseline.derive_baseline` / ``derive_measurable_disease``: baseline and route;
3. :func:`derive_assessments`: post-baseline values grouped into assessments (visits) by date;
4. :func:`derive_overall_response`: nadirs, percent changes, PD criteria and the IMWG category of
   each assessment (unconfirmed);
5. ``mmtrial.derive.confirm``: confirmation, best overall response and the dates for time to event.

Sources: Kumar S et al., Lancet Oncol 2016;17:e328-e346; Rajkumar SV et al., Blood
2011;117:4691-4695; Durie BGM et al., Leukemia 2006;20:1467-1473 (domain.md section 2).
Every rule and option: ``docs/imwg-response.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmtrial.derive.baseline import MARKER_KEYS, MeasurableDisease

#: Response categories, best first, and their ranks (NE 0 ... sCR 7) used for "best" and "deeper".
CATEGORIES: tuple[str, ...] = ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE")
RANK: dict[str, int] = {"NE": 0, "PD": 1, "SD": 2, "MR": 3, "PR": 4, "VGPR": 5, "CR": 6, "sCR": 7}
RANK_NAMES: np.ndarray = np.array(["NE", "PD", "SD", "MR", "PR", "VGPR", "CR", "sCR"], dtype=object)

#: Keys of the long table beyond the lab markers: plasmacytoma SPD (tr) and new lesions (tu).
EVENT_KEYS: tuple[str, ...] = ("SPD", "NEWLES")
ALL_KEYS: tuple[str, ...] = MARKER_KEYS + EVENT_KEYS
K: dict[str, int] = {k: i for i, k in enumerate(ALL_KEYS)}

#: PD criteria bits (ADRS PDCRIT lists the names of the bits set).
PD_BITS: tuple[str, ...] = ("SERUM", "URINE", "DFLC", "MARROW", "PLASMACYTOMA", "NEW LESION")

ROUTES_ORDER: tuple[str, ...] = ("M-PROTEIN", "FLC", "MARROW", "NONE")
PCHG_MARKERS: tuple[str, ...] = ("SPEP", "UPEP", "DFLC", "BMPC")

EPS = 1e-9  # comparisons "at least x%" are inclusive; this absorbs binary floating-point error


@dataclass(frozen=True)
class ImwgThresholds:
    """The numeric IMWG thresholds, as data (each with its source in ``docs/imwg-response.md``).

    Reductions are fractions of baseline (0.5 = a 50% reduction); PD increases are relative to the
    nadir. Inclusive (``>=``) unless the name says ``_gt``.
    """

    # Response (Durie 2006 Table / Kumar 2016 Table 1; domain.md 2.1, tag C unless noted)
    pr_serum_reduction: float = 0.50
    pr_urine_reduction: float = 0.90
    pr_urine_below_mg: float = 200.0  # strict "< 200 mg/24h"
    vgpr_serum_reduction: float = 0.90
    vgpr_urine_below_mg: float = 100.0  # strict "< 100 mg/24h"
    mr_serum_reduction: float = 0.25
    mr_urine_reduction: float = 0.50
    flc_pr_reduction: float = 0.50
    flc_vgpr_reduction: float = 0.90  # Kumar 2016 footnote (tag U)
    marrow_pr_reduction: float = 0.50
    cr_marrow_below_pct: float = 5.0  # strict "< 5%"
    plasmacytoma_pr_reduction: float = 0.50
    plasmacytoma_mr_reduction: float = 0.25  # Rajkumar 2011 (tag U for 2016)
    # Progression (Kumar 2016; domain.md 2.2, tag C)
    pd_relative_increase: float = 0.25
    pd_serum_abs_g_dl: float = 0.5
    pd_serum_high_nadir_g_dl: float = 5.0
    pd_serum_high_nadir_abs_g_dl: float = 1.0
    pd_urine_abs_mg: float = 200.0
    pd_dflc_abs_gt_mg_dl: float = 10.0  # strict "> 10 mg/dL"
    pd_marrow_abs_points: float = 10.0
    pd_plasmacytoma_increase: float = 0.50

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if not (isinstance(v, int | float) and v >= 0):
                raise ValueError(f"ImwgThresholds: {k} must be a non-negative number; got {v!r}")
        for k in ("pr_serum_reduction", "pr_urine_reduction", "vgpr_serum_reduction", "mr_serum_reduction",
                  "mr_urine_reduction", "flc_pr_reduction", "flc_vgpr_reduction", "marrow_pr_reduction"):
            if not 0 < getattr(self, k) <= 1:
                raise ValueError(f"ImwgThresholds: {k} must be a fraction in (0, 1]; got {getattr(self, k)!r}")


NadirBasis = Literal["all", "confirmed"]
MissingMarker = Literal["ne", "use_available"]


@dataclass(frozen=True)
class ResponseOptions:
    """Method choices for the per-assessment IMWG response (defaults documented in the docs page).

    Options
    -------
    measurable : MeasurableDisease()
        Baseline thresholds and route (serum M-protein 0.5 g/dL by default).
    thresholds : ImwgThresholds()
        The numeric criteria.
    visit_window_days : 3
        Post-baseline disease results whose dates are at most this many days apart (chained) form
        one assessment (serum, urine, FLC, immunofixation often come on neighbouring days).
    assessment_date : "last"
        Date of an assessment: the ``last`` date of its results (when all values are available,
        the default) or the ``first``.
    nadir_basis : "all"
        The "lowest response value" for PD: over ``all`` prior values including baseline (Kumar
        2016 footnote, Rajkumar 2011) or over ``confirmed`` values only (Kumar 2016 table text:
        "lowest confirmed response value"; each earlier value counts as the higher of it and the
        next value, i.e. a level held at two assessments in a row; see
        :func:`compute_prior_nadir`). domain.md 2.2 recommends ``all``.
    missing_marker : "ne"
        When a marker measurable at baseline is missing at an assessment (and no PD is shown):
        ``ne`` makes the assessment NE (never a guess); ``use_available`` judges the response on
        the measurable markers present (at least one needed).
    pd_from_non_route_mprotein : True
        Serum/urine M-protein PD criteria also apply to FLC- and marrow-route subjects (new
        M-protein rising by the absolute minimums). ``False``: only the route's markers.
    flc_cr_requires_normal_ratio : True
        FLC route: CR also needs a normal kappa/lambda ratio (Kumar 2016 footnote, tag U).
    flc_vgpr : True
        FLC route: VGPR = >= 90% decrease in dFLC (Kumar 2016 footnote, tag U).
    marrow_carry_forward : True
        Marrow results (plasma cells %, clonality) and plasmacytoma size are carried forward to
        later assessments: a marrow need not be repeated (Kumar 2016).
    """

    measurable: MeasurableDisease = field(default_factory=MeasurableDisease)
    thresholds: ImwgThresholds = field(default_factory=ImwgThresholds)
    visit_window_days: int = 3
    assessment_date: Literal["last", "first"] = "last"
    nadir_basis: NadirBasis = "all"
    missing_marker: MissingMarker = "ne"
    pd_from_non_route_mprotein: bool = True
    flc_cr_requires_normal_ratio: bool = True
    flc_vgpr: bool = True
    marrow_carry_forward: bool = True
    criteria: str = "IMWG 2016 (Kumar S et al., Lancet Oncol 2016;17:e328-e346)"

    def __post_init__(self) -> None:
        if not isinstance(self.visit_window_days, int) or self.visit_window_days < 0:
            raise ValueError(f"ResponseOptions: visit_window_days must be an integer >= 0; got {self.visit_window_days!r}")
        _check_choice("assessment_date", self.assessment_date, ("last", "first"))
        _check_choice("nadir_basis", self.nadir_basis, ("all", "confirmed"))
        _check_choice("missing_marker", self.missing_marker, ("ne", "use_available"))

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"ResponseOptions: {name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


# --------------------------------------------------------------------------------------------
# tu / tr events


def extract_lesion_events(tu: pd.DataFrame | None, tr: pd.DataFrame | None,
                          subjects: pd.Index) -> tuple[pd.DataFrame, list]:
    """New lesions (tu) and plasmacytoma SPD (tr) as rows of the long marker table.

    Returns (events, issues): SUBJ, KEY (``NEWLES`` or ``SPD``), DAY, VAL, ROWNUM; rows without a
    date or value are reported as warnings and not used.

    Rule
    ----
    Data conventions (docs/data-contract.md): tu TUTESTCD ``TUMIDENT`` / TUSTRESC ``NEW LESION``
    with TUDTC; tr TRTESTCD ``SPD`` (mm^2) with TRSTRESN and TRDTC.
    """
    from mmtrial.derive.baseline import _to_days
    from mmtrial.sdtm.issues import InputIssue

    parts = []
    issues: list[InputIssue] = []
    specs = (("tu", tu, "TUSTRESC", "NEW LESION", "TUDT", K["NEWLES"]), ("tr", tr, "TRTESTCD", "SPD", "TRDT", K["SPD"]))
    for dom, df, var, val, dtcol, key in specs:
        if df is None or len(df) == 0 or var not in df.columns:
            continue
        m = (df[var].astype("string").str.upper().str.strip() == val).fillna(False).to_numpy(dtype=bool)
        d = df.loc[m]
        if len(d) == 0:
            continue
        day = _to_days(d[dtcol]) if dtcol in d else np.full(len(d), np.nan)
        if key == K["SPD"]:
            v = pd.to_numeric(d["TRSTRESN"], errors="coerce").to_numpy(dtype=float) if "TRSTRESN" in d else np.full(len(d), np.nan)
        else:
            v = np.ones(len(d))
        subj = subjects.get_indexer(pd.Index(d["USUBJID"].to_numpy(dtype=object)))
        rown = d["ROWNUM"].to_numpy(dtype="int64") if "ROWNUM" in d else np.flatnonzero(m) + 1
        bad = np.isnan(day) | np.isnan(v) | (subj < 0)
        for j in np.flatnonzero(bad)[:1000]:
            issues.append(InputIssue(domain=dom, variable=dtcol + "C" if np.isnan(day[j]) else var, row=int(rown[j]),
                                     usubjid=str(d["USUBJID"].iloc[j]), problem="date, value or subject missing; row not used "
                                     "for response", severity="warning", rule="RSP_EVENT_INCOMPLETE"))
        ok = ~bad
        parts.append(pd.DataFrame({"SUBJ": subj[ok].astype("int64"), "KEY": np.full(ok.sum(), key, dtype="int64"),
                                   "DAY": day[ok], "VAL": v[ok], "ROWNUM": rown[ok]}))
    if not parts:
        return pd.DataFrame({"SUBJ": pd.Series(dtype="int64"), "KEY": pd.Series(dtype="int64"),
                             "DAY": pd.Series(dtype=float), "VAL": pd.Series(dtype=float),
                             "ROWNUM": pd.Series(dtype="int64")}), issues
    return pd.concat(parts, ignore_index=True), issues


def derive_spd_baseline(events: pd.DataFrame, first_dose_day: np.ndarray) -> np.ndarray:
    """Baseline plasmacytoma SPD per subject: the last tr SPD on or before first dose (NaN if none)."""
    n = len(first_dose_day)
    out = np.full(n, np.nan)
    e = events[events["KEY"] == K["SPD"]]
    if len(e):
        e = e[e["DAY"].to_numpy() <= first_dose_day[e["SUBJ"].to_numpy()]]
        e = e.sort_values(["SUBJ", "DAY", "ROWNUM"], kind="stable").drop_duplicates("SUBJ", keep="last")
        out[e["SUBJ"].to_numpy()] = e["VAL"].to_numpy()
    return out


# --------------------------------------------------------------------------------------------
# assessments


@dataclass
class Assessments:
    """Post-baseline results grouped into assessments (one element per visit cluster).

    ``subj``/``day``/``first_day``: int arrays sorted by subject then date; ``val``/``row``:
    (n_visits, len(ALL_KEYS)) arrays of the value and lb/tu/tr ROWNUM of each key (NaN if absent).
    """

    subj: np.ndarray
    day: np.ndarray
    first_day: np.ndarray
    val: np.ndarray
    row: np.ndarray


def derive_assessments(values: pd.DataFrame, first_dose_day: np.ndarray, *,
                       options: ResponseOptions = ResponseOptions()) -> Assessments:
    """Group post-baseline marker values into assessments.

    Rule
    ----
    A post-baseline result is one dated after the first-dose day (the first-dose day itself is
    baseline). Results of one subject whose dates follow each other by at most
    ``visit_window_days`` form one assessment; within it, the latest result of each test is used
    (ties: the later source row). The assessment date is the last (default) or first date.
    """
    v = values
    fd = first_dose_day[v["SUBJ"].to_numpy()] if len(v) else np.array([])
    v = v.loc[v["DAY"].to_numpy() > fd]
    nk = len(ALL_KEYS)
    if len(v) == 0:
        z = np.zeros(0, dtype="int64")
        return Assessments(z, z, z, np.zeros((0, nk)), np.zeros((0, nk)))
    subj = v["SUBJ"].to_numpy(dtype="int64")
    day = v["DAY"].to_numpy().astype("int64")
    key = v["KEY"].to_numpy(dtype="int64")
    # sort by (subject, day, key, source row): one composite integer key, stable over source-row order
    by_row = np.argsort(v["ROWNUM"].to_numpy(), kind="stable")
    d0 = day.min()
    composite = (subj * (int(day.max() - d0) + 1) + (day - d0)) * 16 + key
    order = by_row[np.argsort(composite[by_row], kind="stable")]
    subj, day, key = subj[order], day[order], key[order]
    val = v["VAL"].to_numpy()[order]
    rown = v["ROWNUM"].to_numpy()[order].astype(float)
    # visit clusters: new when the subject changes or the gap to the previous date exceeds the window
    new = np.ones(len(subj), dtype=bool)
    new[1:] = (subj[1:] != subj[:-1]) | (day[1:] - day[:-1] > options.visit_window_days)
    cid = np.cumsum(new) - 1
    nv = int(cid[-1]) + 1
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(subj)] - 1
    wide = np.full((nv, nk), np.nan)
    wrow = np.full((nv, nk), np.nan)
    # rows sorted by (subject, day, key, rownum): the last assignment per (cluster, key) wins, i.e.
    # the latest date, then the later source row
    wide[cid, key] = val  # numpy fancy assignment: later duplicates overwrite earlier ones
    wrow[cid, key] = rown
    a_day = day[ends] if options.assessment_date == "last" else day[starts]
    return Assessments(subj=subj[starts], day=a_day, first_day=day[starts], val=wide, row=wrow)


# --------------------------------------------------------------------------------------------
# vectorised helpers


def _group_starts(subj: np.ndarray) -> np.ndarray:
    new = np.ones(len(subj), dtype=bool)
    new[1:] = subj[1:] != subj[:-1]
    return new


def compute_ffill(subj: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Carry the last non-missing value forward within each subject (rows sorted by subject).

    Returns the filled values and the position of the source row (-1 where none).
    """
    n = len(x)
    pos = np.where(~np.isnan(x), np.arange(n), -1)
    starts = _group_starts(subj)
    # reset at subject boundaries: a group's first row can only see itself
    gstart = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    last = np.maximum.accumulate(pos)
    last = np.where(last >= gstart, last, -1)
    out = np.where(last >= 0, x[np.clip(last, 0, None)], np.nan)
    return out, last


def compute_prior_nadir(subj: np.ndarray, x: np.ndarray, baseline: np.ndarray, *,
                        basis: NadirBasis = "all") -> np.ndarray:
    """The nadir before each row: min of baseline and the subject's earlier values.

    Parameters
    ----------
    subj, x
        Subject code and value per row, rows sorted by subject then date; NaN = not measured.
    baseline
        Baseline value per row (NaN: none).
    basis
        ``all``: every earlier value counts. ``confirmed``: an earlier value counts only as the
        larger of two consecutive measured values (the level held at two assessments in a row).

    Rule
    ----
    PD is an increase from "the lowest response value" (Kumar 2016; domain.md 2.2). Baseline is
    included: a rise straight from baseline is measured from baseline.
    """
    n = len(x)
    present = ~np.isnan(x)
    idx = np.flatnonzero(present)
    cs, cv = subj[idx], x[idx]
    if basis == "all":
        m = cv
    else:
        nxt = np.r_[cv[1:], np.inf]
        same = np.r_[cs[1:] == cs[:-1], False]
        m = np.where(same, np.maximum(cv, nxt), np.inf)
    cm = pd.Series(m).groupby(cs, sort=False).cummin().to_numpy() if len(m) else m
    before = np.cumsum(present) - present  # number of measured values strictly before each row
    k = before - 1 if basis == "all" else before - 2
    ok = k >= 0
    kk = np.clip(k, 0, None)
    if len(cs):
        ok &= cs[np.minimum(kk, len(cs) - 1)] == subj
        prior = np.where(ok, cm[np.minimum(kk, len(cs) - 1)], np.inf)
    else:
        prior = np.full(n, np.inf)
    b = np.where(np.isnan(baseline), np.inf, baseline)
    nad = np.minimum(b, prior)
    return np.where(np.isinf(nad), np.nan, nad)


def compute_percent_change(x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Percent change from baseline, ``100 * (x - base) / base``; NaN where base is missing or 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(base > 0, 100.0 * (x - base) / base, np.nan)


def _le(x: np.ndarray, limit: np.ndarray | float) -> np.ndarray:
    """x <= limit with a floating-point tolerance; False where either is NaN."""
    with np.errstate(invalid="ignore"):
        return x <= limit + EPS * np.maximum(1.0, np.abs(limit))


def _ge(x: np.ndarray, limit: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return x >= limit - EPS * np.maximum(1.0, np.abs(limit))


def _lt(x: np.ndarray, limit: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return x < limit - EPS * max(1.0, abs(limit))


def _gt(x: np.ndarray, limit: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return x > limit + EPS * np.maximum(1.0, np.abs(limit))


def compute_pd_increase(x: np.ndarray, nadir: np.ndarray, *, relative: float, absolute: float,
                        strict_absolute: bool = False) -> np.ndarray:
    """PD by a marker: ``x - nadir >= relative * nadir`` and ``x - nadir >= absolute`` (``>`` if strict).

    Rule
    ----
    Kumar 2016 (domain.md 2.2): increase of >= 25% from the lowest response value, with an
    absolute minimum per marker. False where the value or nadir is missing.
    """
    rise = x - nadir
    rel = _ge(rise, relative * nadir)
    ab = _gt(rise, absolute) if strict_absolute else _ge(rise, absolute)
    return rel & ab & ~np.isnan(x) & ~np.isnan(nadir)


def compute_serum_pd(x: np.ndarray, nadir: np.ndarray, t: ImwgThresholds) -> np.ndarray:
    """PD by serum M-protein: +25% and +0.5 g/dL from nadir; +1 g/dL when the nadir was >= 5 g/dL.

    Rule
    ----
    Kumar 2016 (domain.md 2.2, tag C): "serum M-protein (absolute increase must be >= 0.5 g/dL);
    serum M-protein increase >= 1 g/dL if the lowest M component was >= 5 g/dL".
    """
    low = compute_pd_increase(x, nadir, relative=t.pd_relative_increase, absolute=t.pd_serum_abs_g_dl)
    high_nadir = _ge(nadir, t.pd_serum_high_nadir_g_dl)
    high = _ge(x - nadir, t.pd_serum_high_nadir_abs_g_dl) & ~np.isnan(x)
    return np.where(high_nadir, high | low, low)


# --------------------------------------------------------------------------------------------
# per-assessment response


def derive_overall_response(assess: Assessments, base: pd.DataFrame, *,
                            options: ResponseOptions = ResponseOptions()) -> pd.DataFrame:
    """IMWG category at each assessment (unconfirmed), with the values and criteria behind it.

    Parameters
    ----------
    assess
        Output of :func:`derive_assessments`.
    base
        Output of :func:`mmtrial.derive.baseline.derive_measurable_disease`, one row per subject
        position, plus ``BL_SPD`` (baseline plasmacytoma SPD).

    Returns
    -------
    DataFrame
        One row per assessment of a subject with a route (M-PROTEIN, FLC, MARROW): SUBJ, ADT_DAY,
        ADT_FIRST_DAY, RANK (0 NE ... 7 sCR), AVALC, NOCONF (PD by new lesion or plasmacytoma
        growth: no confirmation needed), marker values, nadirs, percent changes,
        PDBITS/PDCRIT and source rows.

    Rule
    ----
    Kumar 2016 Table 1 / Durie 2006 (domain.md 2.1-2.2), by route:

    * M-PROTEIN: PR >= 50% serum reduction and urine reduction >= 90% or to < 200 mg/24h (each
      required when measurable at baseline); VGPR >= 90% serum reduction (or serum undetectable)
      and urine < 100 mg/24h; MR 25-49% serum and 50-89% urine reduction; plasmacytomas present
      at baseline must shrink >= 50% (PR/VGPR) or >= 25% (MR) when measured.
    * FLC: PR >= 50% / VGPR >= 90% decrease in dFLC (involved - uninvolved).
    * MARROW: PR >= 50% reduction of marrow plasma cells.
    * CR (all routes): negative serum and urine immunofixation, < 5% marrow plasma cells,
      disappearance of plasmacytomas (when present at baseline); FLC route also a normal ratio.
      sCR: CR plus a normal FLC ratio and no clonal plasma cells in the marrow.
    * PD (any route, overrides): >= 25% increase from nadir with serum +0.5 g/dL (+1 g/dL when the
      nadir was >= 5 g/dL), urine +200 mg/24h, dFLC > 10 mg/dL (FLC route), marrow +10 points
      (marrow route); plasmacytoma SPD +50% from nadir; any new lesion.
    * SD: none of the above with the route's markers present; otherwise NE (never a guess).
    """
    o = options
    t = o.thresholds
    lo_ratio, hi_ratio = o.measurable.flc_ratio_normal
    subj = assess.subj
    n = len(subj)
    V = assess.val

    def col(k: str) -> np.ndarray:
        return V[:, K[k]]

    def b(name: str) -> np.ndarray:
        return base[name].to_numpy()[subj]

    route_codes = pd.Categorical(base["RSPROUTE"], categories=list(ROUTES_ORDER)).codes[subj]
    r_m, r_f, r_b = route_codes == 0, route_codes == 1, route_codes == 2
    meas_s, meas_u = b("MEAS_S").astype(bool), b("MEAS_U").astype(bool)
    bl_s, bl_u, bl_d, bl_bm, bl_spd = b("BL_SPEP"), b("BL_UPEP"), b("BL_DFLC"), b("BL_BMPC"), b("BL_SPD")
    s, u, kap, lam, bm = col("SPEP"), col("UPEP"), col("KAPPA"), col("LAMBDA"), col("BMPC")
    ifes, ifeu, newles = col("IFES"), col("IFEU"), col("NEWLES")
    inv_kappa = (base["BL_INVOLVED"] == "KAPPA").fillna(False).to_numpy(dtype=bool)[subj]
    inv_lambda = (base["BL_INVOLVED"] == "LAMBDA").fillna(False).to_numpy(dtype=bool)[subj]
    dflc = np.where(inv_kappa, kap - lam, np.where(inv_lambda, lam - kap, np.nan))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(lam > 0, kap / lam, np.nan)
    ratio_normal = _ge(ratio, lo_ratio) & _le(ratio, hi_ratio)
    # carried forward (marrow need not be repeated; plasmacytoma imaging is periodic)
    if o.marrow_carry_forward:
        bm_cf, bm_src = compute_ffill(subj, bm)
        clon_cf, clon_src = compute_ffill(subj, col("BMCLON"))
        spd_cf, spd_src = compute_ffill(subj, col("SPD"))
    else:
        bm_cf, clon_cf, spd_cf = bm, col("BMCLON"), col("SPD")
        bm_src = clon_src = spd_src = np.where(np.isnan(bm), -1, np.arange(n))
    # nadirs (before each assessment, baseline included)
    nad_s = compute_prior_nadir(subj, s, bl_s, basis=o.nadir_basis)
    nad_u = compute_prior_nadir(subj, u, bl_u, basis=o.nadir_basis)
    nad_d = compute_prior_nadir(subj, dflc, bl_d, basis=o.nadir_basis)
    nad_bm = compute_prior_nadir(subj, bm, bl_bm, basis=o.nadir_basis)
    nad_spd = compute_prior_nadir(subj, col("SPD"), bl_spd, basis=o.nadir_basis)
    # ---- progression
    mprot_pd_ok = r_m | o.pd_from_non_route_mprotein
    pd_s = compute_serum_pd(s, nad_s, t) & mprot_pd_ok
    pd_u = compute_pd_increase(u, nad_u, relative=t.pd_relative_increase, absolute=t.pd_urine_abs_mg) & mprot_pd_ok
    pd_d = compute_pd_increase(dflc, nad_d, relative=t.pd_relative_increase, absolute=t.pd_dflc_abs_gt_mg_dl,
                               strict_absolute=True) & r_f
    pd_bm = compute_pd_increase(bm, nad_bm, relative=t.pd_relative_increase, absolute=t.pd_marrow_abs_points) & r_b
    spd_now = col("SPD")
    pd_spd = _ge(spd_now, (1 + t.pd_plasmacytoma_increase) * nad_spd) & _gt(spd_now, 0.0) & ~np.isnan(nad_spd)
    pd_new = newles >= 1
    bits = (pd_s * 1 + pd_u * 2 + pd_d * 4 + pd_bm * 8 + pd_spd * 16 + pd_new * 32).astype("int64")
    pd_any = bits > 0
    # ---- response by route
    use_avail = o.missing_marker == "use_available"
    has_s, has_u = ~np.isnan(s), ~np.isnan(u)
    if use_avail:
        have_m = (meas_s & has_s) | (meas_u & has_u)
        s_skip = ~meas_s | ~has_s
        u_skip = ~meas_u | ~has_u
    else:
        have_m = (~meas_s | has_s) & (~meas_u | has_u)
        s_skip, u_skip = ~meas_s, ~meas_u
    rs = np.where(bl_s > 0, s / np.where(bl_s > 0, bl_s, 1.0), np.nan)  # fraction of baseline left
    ru = np.where(bl_u > 0, u / np.where(bl_u > 0, bl_u, 1.0), np.nan)
    rd = np.where(bl_d > 0, dflc / np.where(bl_d > 0, bl_d, 1.0), np.nan)
    rbm = np.where(bl_bm > 0, bm / np.where(bl_bm > 0, bl_bm, 1.0), np.nan)
    spd_base = bl_spd > 0
    spd_meas = ~np.isnan(spd_cf)
    with np.errstate(divide="ignore", invalid="ignore"):
        rspd = np.where(spd_base, spd_cf / np.where(spd_base, bl_spd, 1.0), np.nan)
    spd_pr = ~spd_base | ~spd_meas | _le(rspd, 1 - t.plasmacytoma_pr_reduction)
    spd_mr = ~spd_base | ~spd_meas | _le(rspd, 1 - t.plasmacytoma_mr_reduction)
    spd_cr = ~spd_base | (spd_meas & (spd_cf == 0))

    s_pr = s_skip | _le(rs, 1 - t.pr_serum_reduction)
    u_pr = u_skip | _le(ru, 1 - t.pr_urine_reduction) | _lt(u, t.pr_urine_below_mg)
    s_mr = s_skip | _le(rs, 1 - t.mr_serum_reduction)
    u_mr = u_skip | _le(ru, 1 - t.mr_urine_reduction)
    s_vg = s_skip | _le(rs, 1 - t.vgpr_serum_reduction) | (s == 0)
    u_vg = _lt(u, t.vgpr_urine_below_mg) | (~has_u & ~meas_u)
    m_pr = r_m & have_m & s_pr & u_pr & spd_pr
    m_vg = m_pr & s_vg & u_vg
    m_mr = r_m & have_m & s_mr & u_mr & spd_mr
    have_f = ~np.isnan(dflc)
    f_pr = r_f & have_f & _le(rd, 1 - t.flc_pr_reduction) & spd_pr
    f_vg = f_pr & _le(rd, 1 - t.flc_vgpr_reduction) if o.flc_vgpr else np.zeros(n, dtype=bool)
    have_b = ~np.isnan(bm)
    b_pr = r_b & have_b & _le(rbm, 1 - t.marrow_pr_reduction) & spd_pr
    cr = (ifes == 0) & (ifeu == 0) & _lt(bm_cf, t.cr_marrow_below_pct) & spd_cr & (r_m | r_f | r_b)
    if o.flc_cr_requires_normal_ratio:
        cr &= ~r_f | ratio_normal
    scr = cr & ratio_normal & (clon_cf == 0)
    have = np.where(r_m, have_m, np.where(r_f, have_f, np.where(r_b, have_b, False)))
    rank = np.select(
        [pd_any, scr, cr, m_vg | f_vg, m_pr | f_pr | b_pr, m_mr, have],
        [RANK["PD"], RANK["sCR"], RANK["CR"], RANK["VGPR"], RANK["PR"], RANK["MR"], RANK["SD"]],
        default=RANK["NE"],
    ).astype("int64")
    # marker used for the waterfall / PCHG: serum if measurable, else urine, else dFLC, else marrow
    pchg_s = compute_percent_change(s, bl_s)
    pchg_u = compute_percent_change(u, bl_u)
    pchg_d = compute_percent_change(dflc, bl_d)
    pchg_bm = compute_percent_change(bm, bl_bm)
    marker = np.select([r_m & meas_s, r_m & meas_u, r_f, r_b], ["SPEP", "UPEP", "DFLC", "BMPC"], default="")
    pchg = np.select([marker == "SPEP", marker == "UPEP", marker == "DFLC", marker == "BMPC"],
                     [pchg_s, pchg_u, pchg_d, pchg_bm], default=np.nan)
    # PD by a new lesion or plasmacytoma growth needs no confirmation (Kumar 2016)
    noconf = pd_any & ((bits & (16 | 32)) > 0)
    route_marker = np.where(r_m, has_s | has_u, np.where(r_f, ~np.isnan(kap) | ~np.isnan(lam),
                                                           np.where(r_b, have_b, False)))
    keep = (r_m | r_f | r_b) & (route_marker | pd_spd | pd_new)

    def src_row(src: np.ndarray, key: str) -> np.ndarray:
        r = assess.row[:, K[key]]
        return np.where(src >= 0, r[np.clip(src, 0, None)], np.nan)

    def qual(x: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(np.where(x == 1, 1, np.where(x == 0, 0, -1)), ["NEGATIVE", "POSITIVE"])

    marker_code = np.select([marker == m for m in PCHG_MARKERS], list(range(len(PCHG_MARKERS))), default=-1)

    k = np.flatnonzero(keep)  # select rows first, then build the frame once (no large copies)
    floats = {
        "SPEP": s, "UPEP": u, "KAPPA": kap, "LAMBDA": lam, "FLCRATIO": ratio, "DFLC": dflc,
        "BMPC": bm, "BMPCCF": bm_cf, "SPD": spd_cf,
        "NADIR_SPEP": nad_s, "NADIR_UPEP": nad_u, "NADIR_DFLC": nad_d, "NADIR_BMPC": nad_bm,
        "NADIR_SPD": nad_spd,
        "PCHG_SPEP": pchg_s, "PCHG_UPEP": pchg_u, "PCHG_DFLC": pchg_d, "PCHG_BMPC": pchg_bm, "PCHG": pchg,
        "SPEPROW": assess.row[:, K["SPEP"]], "UPEPROW": assess.row[:, K["UPEP"]],
        "KAPPAROW": assess.row[:, K["KAPPA"]], "LAMBDAROW": assess.row[:, K["LAMBDA"]],
        "IFESROW": assess.row[:, K["IFES"]], "IFEUROW": assess.row[:, K["IFEU"]],
        "BMPCROW": src_row(bm_src, "BMPC"), "BMCLONROW": src_row(clon_src, "BMCLON"),
        "TRROW": src_row(spd_src, "SPD"), "TUROW": assess.row[:, K["NEWLES"]],
    }
    block = np.empty((len(k), len(floats)), dtype=float, order="F")
    for j, v in enumerate(floats.values()):
        block[:, j] = v[k]
    rank_k = rank[k]
    head = pd.DataFrame({
        "SUBJ": subj[k], "ADT_DAY": assess.day[k], "ADT_FIRST_DAY": assess.first_day[k],
        "RSPROUTE": pd.Categorical.from_codes(route_codes[k], list(ROUTES_ORDER)), "RANK": rank_k,
        "AVALC": pd.Categorical.from_codes(rank_k, list(RANK_NAMES)), "NOCONF": noconf[k], "PDBITS": bits[k],
        "PDCRIT": compute_pdcrit(bits[k]),
        "IFES": qual(ifes[k]), "IFEU": qual(ifeu[k]), "BMCLONAL": qual(clon_cf[k]),
        "NEWLES": pd.Categorical.from_codes(np.where(pd_new[k], 0, -1), ["Y"]),
        "PCHGPARM": pd.Categorical.from_codes(marker_code[k], list(PCHG_MARKERS)),
    })
    return pd.concat([head, pd.DataFrame(block, columns=list(floats), copy=False)], axis=1)


def compute_pdcrit(bits: np.ndarray) -> pd.Categorical:
    """Names of the PD criteria met ("SERUM; URINE") from the PDBITS integer; missing where none."""
    uniq, inv = np.unique(bits, return_inverse=True)
    names = ["; ".join(nm for i, nm in enumerate(PD_BITS) if int(b_) >> i & 1) for b_ in uniq]
    cats = sorted({x for x in names if x})
    code_of = np.array([cats.index(x) if x else -1 for x in names], dtype="int64")
    return pd.Categorical.from_codes(code_of[inv] if len(bits) else np.zeros(0, dtype="int64"), cats)


# --------------------------------------------------------------------------------------------
# orchestration: SDTM + ADSL -> ADRS and the ADSL response variables


def _days_to_dates(x: np.ndarray) -> pd.Series:
    """Float days since 1970-01-01 (NaN = missing) as a datetime64[ns] Series."""
    x = np.asarray(x, dtype=float)
    out = np.full(len(x), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = ~np.isnan(x)
    out[ok] = x[ok].astype("int64").astype("datetime64[D]").astype("datetime64[ns]")
    return pd.Series(out)


def derive_new_therapy_day(cm: pd.DataFrame | None, subjects: pd.Index,
                           first_dose_day: np.ndarray) -> tuple[np.ndarray, list]:
    """Start of the first subsequent anti-myeloma therapy per subject (float days; NaN: none).

    Rule
    ----
    Data contract: cm rows with CMCAT ``SUBSEQUENT ANTI-MYELOMA THERAPY`` and CMSTDTC. Rows dated
    on or before the first dose cannot be subsequent therapy: they are reported (warning) and
    not used.
    """
    from mmtrial.derive.baseline import _to_days
    from mmtrial.sdtm.issues import InputIssue

    out = np.full(len(subjects), np.nan)
    issues: list[InputIssue] = []
    if cm is None or len(cm) == 0 or "CMCAT" not in cm.columns:
        return out, issues
    m = (cm["CMCAT"].astype("string").str.upper().str.strip() == "SUBSEQUENT ANTI-MYELOMA THERAPY").fillna(False)
    d = cm.loc[m.to_numpy(dtype=bool)]
    if len(d) == 0:
        return out, issues
    day = _to_days(d["CMSTDT"]) if "CMSTDT" in d else np.full(len(d), np.nan)
    subj = subjects.get_indexer(pd.Index(d["USUBJID"].to_numpy(dtype=object)))
    rown = d["ROWNUM"].to_numpy() if "ROWNUM" in d else np.arange(1, len(d) + 1)
    fd = np.where(subj >= 0, first_dose_day[np.clip(subj, 0, None)], np.nan)
    bad = np.isnan(day) | (subj < 0) | (day <= fd)
    for j in np.flatnonzero(bad)[:1000]:
        issues.append(InputIssue(domain="cm", variable="CMSTDTC", row=int(rown[j]), usubjid=str(d["USUBJID"].iloc[j]),
                                 value=None if np.isnan(day[j]) else str(_days_to_dates(day[j:j + 1]).iloc[0].date()),
                                 problem="subsequent anti-myeloma therapy without a start date after first dose "
                                 "(or subject unknown); not used to end response assessment",
                                 severity="warning", rule="RSP_NACT_DATE"))
    ok = ~bad
    if ok.any():
        first = np.full(len(subjects), np.inf)
        np.minimum.at(first, subj[ok], day[ok])
        out = np.where(np.isinf(first), np.nan, first)
    return out, issues


@dataclass
class ResponseDerivation:
    """Everything the response step derives (see :func:`derive_adrs`)."""

    adrs: pd.DataFrame
    adsl: pd.DataFrame
    baseline: pd.DataFrame
    issues: list


OVR_PARAM = "Overall Response by Assessment (IMWG, derived from laboratory values)"
BOR_PARAM = "Best Confirmed Overall Response (IMWG, derived from laboratory values)"


def derive_adrs(domains: dict[str, pd.DataFrame], adsl: pd.DataFrame, *,
                options: ResponseOptions = ResponseOptions(), rule: Any = None,
                efficacy_requires_measurable: bool = True) -> ResponseDerivation:
    """ADRS (OVR per assessment, BOR per efficacy subject) and the ADSL response variables.

    Parameters
    ----------
    domains
        Normalised SDTM frames (``lb`` required for any response; ``cm``, ``tu``, ``tr`` used when
        present).
    adsl
        ADSL with USUBJID, TRTSDT and SAFFL.
    options, rule
        :class:`ResponseOptions` and :class:`mmtrial.derive.confirm.ConfirmationRule`.
    efficacy_requires_measurable
        EFFFL = SAFFL = Y and, when True, MEASFL = Y (protocol ``populations``).

    Returns
    -------
    ResponseDerivation
        ``adrs``: USUBJID, PARAMCD (OVR, BOR), PARAM, AVALC, AVAL (rank 0 NE ... 7 sCR), ADT, ADY,
        the values, nadirs, percent changes, PD criteria, confirmation columns and source rows.
        ``adsl``: the input with MEASFL, RSPROUTE, EFFFL, BOR, BORDT, RSPFL, CBRFL, VGPRFL, RSPDT,
        MRDT, PDDT, LSTADQDT, NACTDT added (docs/adam.md). ``baseline``: per-subject baseline.
    """
    from mmtrial.derive.baseline import (
        _to_days,
        derive_baseline,
        derive_measurable_disease,
        extract_disease_labs,
    )
    from mmtrial.derive.confirm import ConfirmationRule, derive_best_overall_response

    rule = rule if rule is not None else ConfirmationRule()
    subjects = pd.Index(adsl["USUBJID"].astype(str).to_numpy(dtype=object))
    if subjects.has_duplicates:
        raise ValueError("derive_adrs: ADSL has duplicate USUBJID values: "
                         f"{', '.join(map(str, subjects[subjects.duplicated()][:5]))}")
    fd = _to_days(adsl["TRTSDT"]) if "TRTSDT" in adsl else np.full(len(adsl), np.nan)
    labs, issues = extract_disease_labs(domains.get("lb"), subjects)
    events, iss2 = extract_lesion_events(domains.get("tu"), domains.get("tr"), subjects)
    nact, iss3 = derive_new_therapy_day(domains.get("cm"), subjects, fd)
    issues = issues + iss2 + iss3
    base = derive_measurable_disease(derive_baseline(labs, fd, criteria=options.measurable), criteria=options.measurable)
    base["BL_SPD"] = derive_spd_baseline(events, fd)
    values = pd.concat([labs, events], ignore_index=True) if len(events) else labs
    assess = derive_assessments(values, fd, options=options)
    ovr = derive_overall_response(assess, base, options=options)
    ovr, res = derive_best_overall_response(ovr, fd, nact, rule=rule)

    # ---- ADSL variables
    out = adsl.copy()
    saffl = (out["SAFFL"].astype("string") == "Y").fillna(False).to_numpy(dtype=bool) if "SAFFL" in out else ~np.isnan(fd)
    route = base["RSPROUTE"].to_numpy(dtype=object)
    out["MEASFL"] = base["MEASFL"].to_numpy()
    out["RSPROUTE"] = route
    eff = saffl & ((base["MEASFL"].to_numpy() == "Y") if efficacy_requires_measurable else True)
    out["EFFFL"] = np.where(eff, "Y", "N")
    born = np.where(route == "NONE", RANK["NE"], res["BORN"].to_numpy())
    # BOR for subjects with a route, and NE for efficacy subjects without one (when the protocol
    # does not require measurable disease); missing otherwise
    has_bor = (saffl & (route != "NONE")) | eff
    out["BOR"] = pd.array(np.where(has_bor, RANK_NAMES[born], None), dtype="string")
    out["BORDT"] = _days_to_dates(np.where(has_bor, res["BORDT"].to_numpy(), np.nan)).to_numpy()
    for flag, lo in (("RSPFL", RANK["PR"]), ("CBRFL", RANK["MR"]), ("VGPRFL", RANK["VGPR"])):
        out[flag] = pd.array(np.where(has_bor, np.where(born >= lo, "Y", "N"), None), dtype="string")
    for v in ("RSPDT", "MRDT", "PDDT", "LSTADQDT"):
        out[v] = _days_to_dates(res[v].to_numpy()).to_numpy()
    out["NACTDT"] = _days_to_dates(nact).to_numpy()

    # ---- ADRS (low-cardinality text as categoricals: 2 million rows stay cheap)
    usub = subjects.to_numpy(dtype=object)
    sid = adsl["STUDYID"] if "STUDYID" in adsl else pd.Series(pd.NA, index=adsl.index, dtype="string")
    st_codes, st_uniq = pd.factorize(sid)
    st_cats = [str(x) for x in st_uniq]
    route_cat = pd.Categorical(route, categories=list(ROUTES_ORDER))
    o_subj = ovr["SUBJ"].to_numpy(dtype="int64")
    adt = ovr["ADT_DAY"].to_numpy(dtype=float)
    n_o = len(ovr)

    def cat(codes: np.ndarray, cats: list[str]) -> pd.Categorical:
        return pd.Categorical.from_codes(np.asarray(codes, dtype="int64"), cats)

    ovr_rows = ovr.drop(columns=["SUBJ", "ADT_DAY", "ADT_FIRST_DAY", "RANK", "PDBITS"])  # copy-on-write: no copy
    lead = {
        "STUDYID": cat(st_codes[o_subj], st_cats), "USUBJID": pd.array(usub[o_subj], dtype="string"),
        "PARAMCD": cat(np.zeros(n_o), ["OVR", "BOR"]), "PARAM": cat(np.zeros(n_o), [OVR_PARAM, BOR_PARAM]),
        "AVALC": ovr["AVALC"], "AVAL": ovr["RANK"].to_numpy(dtype=float),
        "ADT": _days_to_dates(adt).to_numpy(), "ADY": adt - fd[o_subj] + 1,
        "ADTFIRST": _days_to_dates(ovr["ADT_FIRST_DAY"].to_numpy(dtype=float)).to_numpy(),
    }
    ovr_rows = ovr_rows.drop(columns=["AVALC"])
    for j, (name, values) in enumerate(lead.items()):
        ovr_rows.insert(j, name, values)
    tu_only = (ovr_rows["TUROW"].notna() & ovr_rows["SPEPROW"].isna() & ovr_rows["UPEPROW"].isna()
               & ovr_rows["KAPPAROW"].isna() & ovr_rows["BMPCROW"].isna()).to_numpy()
    ovr_rows["SRCDOM"] = cat(np.where(tu_only, 1, 0), ["LB", "TU", "ADRS"])
    b_idx = np.flatnonzero(eff)
    nb = len(b_idx)
    bdt = res["BORDT"].to_numpy()[b_idx]
    bor_rows = pd.DataFrame({
        "STUDYID": cat(st_codes[b_idx], st_cats), "USUBJID": pd.array(usub[b_idx], dtype="string"),
        "PARAMCD": cat(np.ones(nb), ["OVR", "BOR"]), "PARAM": cat(np.ones(nb), [OVR_PARAM, BOR_PARAM]),
        "AVALC": cat(born[b_idx], list(RANK_NAMES)), "AVAL": born[b_idx].astype(float),
        "ADT": _days_to_dates(bdt).to_numpy(), "ADY": bdt - fd[b_idx] + 1,
        "RSPROUTE": pd.Categorical.from_codes(route_cat.codes[b_idx], list(ROUTES_ORDER)),
        "ANL01FL": cat(np.zeros(nb), ["Y"]), "SRCDOM": cat(np.full(nb, 2), ["LB", "TU", "ADRS"]),
    })
    adrs = pd.concat([ovr_rows, bor_rows], ignore_index=True)
    baseline = base.copy()
    baseline.insert(0, "USUBJID", usub)
    return ResponseDerivation(adrs=adrs, adsl=out, baseline=baseline, issues=issues)
