"""Myeloma disease markers: extraction from ``lb``, baseline values, measurable disease and route.

The IMWG response of a subject is judged on the marker(s) that were *measurable* at baseline
(the "route"): serum and/or urine M-protein, else the serum free light chains (dFLC), else the
bone-marrow plasma-cell percentage. This module turns the normalised ``lb`` domain into a compact
long table of disease-marker values and derives, per subject, the baseline of each marker, the
measurable-disease flag ``MEASFL`` and the route ``RSPROUTE``.

Sources: Kumar S et al., Lancet Oncol 2016;17:e328-e346 (IMWG consensus criteria);
Rajkumar SV et al., Blood 2011;117:4691-4695; Durie BGM et al., Leukemia 2006;20:1467-1473.
Rules and confidence tags: ``../shared/reference/domain.md`` section 2; implemented rules and
options: ``docs/imwg-response.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmtrial.sdtm.issues import InputIssue, StudyInputError

#: Disease-marker keys in the order used by every wide array in the response derivation.
#: (key, LBTESTCD, accepted LBSPEC values, kind). ``num`` values are LBSTRESN in the contract's
#: default unit; ``qual`` values are LBSTRESC POSITIVE/NEGATIVE, coded 1.0 / 0.0.
MARKERS: tuple[tuple[str, str, tuple[str | None, ...], str], ...] = (
    ("SPEP", "MPROTEIN", ("SERUM",), "num"),  # serum M-protein, g/dL
    ("UPEP", "MPROTEIN", ("URINE",), "num"),  # 24-h urine M-protein, mg/24h
    ("KAPPA", "KAPPAFLC", ("SERUM", None), "num"),  # serum free kappa, mg/dL
    ("LAMBDA", "LAMBDFLC", ("SERUM", None), "num"),  # serum free lambda, mg/dL
    ("BMPC", "BMPC", ("BONE MARROW", None), "num"),  # marrow plasma cells, %
    ("IFES", "IFE", ("SERUM",), "qual"),  # serum immunofixation
    ("IFEU", "IFE", ("URINE",), "qual"),  # urine immunofixation
    ("BMCLON", "BMCLONAL", ("BONE MARROW", None), "qual"),  # clonal plasma cells in marrow
)
MARKER_KEYS: tuple[str, ...] = tuple(m[0] for m in MARKERS)
KEY_INDEX: dict[str, int] = {k: i for i, k in enumerate(MARKER_KEYS)}

#: Default unit per numeric marker (../shared/spec/data-contract.md, "Default laboratory test codes").
DEFAULT_UNITS: dict[str, str] = {
    "SPEP": "g/dL", "UPEP": "mg/24h", "KAPPA": "mg/dL", "LAMBDA": "mg/dL", "BMPC": "%",
}

ROUTES: tuple[str, ...] = ("M-PROTEIN", "FLC", "MARROW", "NONE")


@dataclass(frozen=True)
class MeasurableDisease:
    """Thresholds for measurable disease at baseline and the choice of response route.

    Options
    -------
    serum_mprotein_g_dl : 0.5
        Serum M-protein at or above which serum is measurable. 0.5 g/dL is the threshold of
        relapsed/refractory trials such as STORM; IMWG 2016 (Kumar 2016; domain.md 2.4, tag U)
        uses 1.0 g/dL.
    urine_mprotein_mg_24h : 200
        Urine M-protein (24 h) at or above which urine is measurable (IMWG).
    involved_flc_mg_dl : 10
        Involved serum FLC at or above which FLC is measurable, with an abnormal ratio (IMWG).
    flc_ratio_normal : (0.26, 1.65)
        Normal kappa/lambda ratio range, inclusive (IMWG; Kumar 2016 footnote).
    marrow_pc_pct : 30
        Baseline marrow plasma cells at or above which the marrow route applies when neither
        M-protein nor FLC is measurable (Durie 2006 / domain.md 2.1, tag C).
    marrow_counts_as_measurable : False
        Whether a marrow-route subject has ``MEASFL = Y``. IMWG's measurable disease is defined by
        serum, urine and FLC only (domain.md 2.4), so the default is ``False``: marrow-route
        subjects get a response but leave an efficacy population that requires measurable disease.
    baseline_window_days : None
        If set, a baseline value must be at most this many days before first dose (``None``: any
        value on or before the first dose day).
    """

    serum_mprotein_g_dl: float = 0.5
    urine_mprotein_mg_24h: float = 200.0
    involved_flc_mg_dl: float = 10.0
    flc_ratio_normal: tuple[float, float] = (0.26, 1.65)
    marrow_pc_pct: float = 30.0
    marrow_counts_as_measurable: bool = False
    baseline_window_days: int | None = None

    def __post_init__(self) -> None:
        for name in ("serum_mprotein_g_dl", "urine_mprotein_mg_24h", "involved_flc_mg_dl", "marrow_pc_pct"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v > 0):
                raise ValueError(f"MeasurableDisease: {name} must be a positive number; got {v!r}")
        lo, hi = self.flc_ratio_normal
        if not 0 < lo < hi:
            raise ValueError(f"MeasurableDisease: flc_ratio_normal must be (low, high) with 0 < low < high; got {self.flc_ratio_normal!r}")
        if self.baseline_window_days is not None and self.baseline_window_days < 0:
            raise ValueError(f"MeasurableDisease: baseline_window_days must be >= 0 or None; got {self.baseline_window_days!r}")

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def _unit_factors() -> dict[tuple[str, str], float]:
    """(marker key, normalised unit) -> factor to the default unit, from ``data/units.toml``."""
    from mmtrial.sdtm.units import UnitTable, normalise_unit

    t = UnitTable.load().frame
    out: dict[tuple[str, str], float] = {}
    for key, testcd, specs, kind in MARKERS:
        if kind != "num":
            continue
        spec = specs[0]
        rows = t[(t["LBTESTCD"] == testcd) & (t["LBSPEC"] == spec)]
        for unit, f in zip(rows["UNIT_KEY"], rows["FACTOR"], strict=True):
            out[(key, unit)] = float(f)
        out[(key, str(normalise_unit(pd.Series([DEFAULT_UNITS[key]])).iloc[0]))] = 1.0
    return out


def _to_days(s: pd.Series) -> np.ndarray:
    """Dates as float days since 1970-01-01 (NaN for NaT)."""
    v = pd.to_datetime(s).to_numpy().astype("datetime64[D]")
    out = v.astype("int64").astype(float)
    out[np.isnat(v)] = np.nan
    return out


class _Lazy:
    """Element access to a factorised column (uniques[codes[j]]) without materialising it."""

    def __init__(self, uniques: np.ndarray, codes: np.ndarray):
        self.uniques, self.codes = uniques, codes

    def __getitem__(self, j: int) -> object:
        c = self.codes[j]
        return None if c < 0 else self.uniques[c]


def _factorize_upper(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes and upper-cased, stripped distinct values of a string column (code -1 = missing)."""
    codes, uniq = pd.factorize(s)
    up = np.array([str(u).upper().strip() for u in np.asarray(uniq, dtype=object)], dtype=object)
    # distinct raw spellings may coincide once upper-cased: re-factorise the upper-cased values
    uu, inv = np.unique(up, return_inverse=True) if len(up) else (up, np.zeros(0, dtype="int64"))
    codes = np.where(codes >= 0, inv[np.clip(codes, 0, None)] if len(inv) else -1, -1)
    return codes.astype("int64"), uu.astype(object)


def extract_disease_labs(lb: pd.DataFrame, subjects: pd.Index) -> tuple[pd.DataFrame, list[InputIssue]]:
    """The disease-marker rows of ``lb`` as a compact long table.

    Parameters
    ----------
    lb
        Normalised ``lb`` (see ``mmtrial.context``): USUBJID, LBTESTCD, LBSPEC, LBSTRESN,
        LBSTRESC, LBSTRESU, LBDT, ROWNUM.
    subjects
        The USUBJIDs of ADSL; the integer code of a subject is its position here.

    Returns
    -------
    (labs, issues)
        ``labs`` has SUBJ (int position in ``subjects``), KEY (int, index in :data:`MARKER_KEYS`),
        DAY (float days since 1970-01-01), VAL (float; qualitative results 1.0 positive, 0.0
        negative), ROWNUM. ``issues`` lists warnings for rows left out (missing date or value,
        subject not in ADSL); errors (unknown unit, invalid qualitative result, negative value)
        raise :class:`~mmtrial.sdtm.issues.StudyInputError` naming row, subject, variable, value.

    Rule
    ----
    Test codes and default units: data contract, "Default laboratory test codes". A value in an
    accepted alternative unit (g/L, mg/L, g/24h ...) is converted with ``data/units.toml`` when the
    reader has not already done so; an unknown unit is never guessed.
    """
    empty = pd.DataFrame({"SUBJ": pd.Series(dtype="int64"), "KEY": pd.Series(dtype="int64"),
                          "DAY": pd.Series(dtype=float), "VAL": pd.Series(dtype=float),
                          "ROWNUM": pd.Series(dtype="int64")})
    if lb is None or len(lb) == 0:
        return empty, []
    for col in ("USUBJID", "LBTESTCD", "LBDT"):
        if col not in lb.columns:
            raise StudyInputError([InputIssue(domain="lb", variable=col, problem="required variable missing",
                                              hint="lb must be normalised by mmtrial.sdtm.read_study")])
    # string columns are factorised once and compared on their (few) distinct values
    tcode, tuniq = _factorize_upper(lb["LBTESTCD"])
    rel_codes = np.flatnonzero(np.isin(tuniq, [m[1] for m in MARKERS]))
    relevant = np.isin(tcode, rel_codes)
    if not relevant.any():
        return empty, []
    ridx = np.flatnonzero(relevant)
    n = len(ridx)

    every = n == len(lb)

    def column(name: str) -> pd.Series | None:
        if name not in lb.columns:
            return None
        return lb[name] if every else lb[name].iloc[ridx]

    tcr = tcode[ridx]
    spc = column("LBSPEC")
    if spc is not None:
        scode, suniq = _factorize_upper(spc)
    else:
        scode, suniq = np.full(n, -1, dtype="int64"), np.array([], dtype=object)
    spec_o = _Lazy(suniq, scode)
    rownum = (column("ROWNUM").to_numpy(dtype="int64") if "ROWNUM" in lb.columns else ridx + 1)
    ucode_s, uuniq_s = pd.factorize(column("USUBJID"))
    usubjid_u = np.asarray(uuniq_s, dtype=object)
    usubjid = _Lazy(usubjid_u, ucode_s)
    # marker key from a (test code, specimen) lookup table: last row/column = missing
    table = np.full((len(tuniq) + 1, len(suniq) + 1), -1, dtype="int64")
    for i, (_k, code, specs, _kind) in enumerate(MARKERS):
        for ti in np.flatnonzero(tuniq == code):
            for sp in specs:
                if sp is None:
                    table[ti, len(suniq)] = i
                else:
                    table[ti, np.flatnonzero(suniq == sp)] = i
    key = table[tcr, np.where(scode >= 0, scode, len(suniq))]
    issues: list[InputIssue] = []
    errors: list[InputIssue] = []

    def _issue(mask: np.ndarray, variable: str, values, problem: str, hint: str, rule: str,
               severity: str = "error", limit: int = 1000) -> None:
        idx = np.flatnonzero(mask)
        target = errors if severity == "error" else issues
        for j in idx[:limit]:
            v = values[j]
            target.append(InputIssue(domain="lb", variable=variable, row=int(rownum[j]), usubjid=str(usubjid[j]),
                                     value=None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v),
                                     problem=problem, hint=hint, rule=rule, severity=severity))  # type: ignore[arg-type]
        if len(idx) > limit:
            target.append(InputIssue(domain="lb", variable=variable, problem=f"{len(idx) - limit} more rows: {problem}",
                                     rule=rule, severity=severity))  # type: ignore[arg-type]

    _issue(key < 0, "LBSPEC", spec_o, "specimen not recognised for this disease test",
           "MPROTEIN and IFE need LBSPEC SERUM or URINE; BMPC/BMCLONAL BONE MARROW; FLC SERUM",
           "RSP_SPEC_UNKNOWN")
    # numeric values and units
    valn = (pd.to_numeric(column("LBSTRESN"), errors="coerce").to_numpy(dtype=float, copy=True)
            if "LBSTRESN" in lb.columns else np.full(n, np.nan))
    if "LBSTRESC" in lb.columns:
        ccode, cuniq = _factorize_upper(column("LBSTRESC"))
    else:
        ccode, cuniq = np.full(n, -1), np.array([], dtype=object)
    valc = _Lazy(cuniq, ccode)
    is_num = np.isin(key, [KEY_INDEX[k] for k, _, _, kind in MARKERS if kind == "num"])
    is_qual = np.isin(key, [KEY_INDEX[k] for k, _, _, kind in MARKERS if kind == "qual"])
    # numeric result given only as text (e.g. "0.4") -> use it
    need = is_num & np.isnan(valn) & (ccode >= 0)
    if need.any():
        num_u = pd.to_numeric(pd.Series(cuniq, dtype=object), errors="coerce").to_numpy(dtype=float)
        valn[need] = num_u[ccode[need]]
    if "LBSTRESU" in lb.columns and is_num.any():
        from mmtrial.sdtm.units import normalise_unit

        factors = _unit_factors()
        ucode, uniques = pd.factorize(column("LBSTRESU"))
        ukeys = normalise_unit(pd.Series(np.asarray(uniques, dtype=object), dtype="string")).to_numpy(
            dtype=object, na_value=None)
        lookup = np.full((len(MARKER_KEYS) + 1, len(uniques) + 1), np.nan)  # last row/col: unknown/NA
        for (k, unit), f in factors.items():
            for j in np.flatnonzero(ukeys == unit):
                lookup[KEY_INDEX[k], j] = f
        fac = lookup[np.where(key >= 0, key, len(MARKER_KEYS)), np.where(ucode >= 0, ucode, len(uniques))]
        bad = is_num & ~np.isnan(valn) & np.isnan(fac)
        raw_u = _Lazy(np.asarray(uniques, dtype=object), ucode)
        _issue(bad, "LBSTRESU", raw_u, "unit unknown for a disease marker; expected g/dL (serum M-protein), "
               "mg/24h (urine M-protein), mg/dL (FLC) or % (marrow), or an alternative listed in data/units.toml",
               "Fix LBSTRESU or add the unit with its factor to data/units.toml.", "RSP_UNIT_UNKNOWN")
        valn = np.where(is_num & ~np.isnan(fac), valn * fac, valn)
    neg = is_num & (valn < 0)
    _issue(neg, "LBSTRESN", valn, "negative value for a disease marker", "Marker values cannot be negative.",
           "RSP_NEGATIVE")
    qmap = np.full(len(cuniq) + 1, np.nan)
    qmap[:len(cuniq)][cuniq == "POSITIVE"] = 1.0
    qmap[:len(cuniq)][cuniq == "NEGATIVE"] = 0.0
    qual = qmap[np.where(ccode >= 0, ccode, len(cuniq))]
    badq = is_qual & (ccode >= 0) & np.isnan(qual)
    _issue(badq, "LBSTRESC", valc, "immunofixation / clonality result must be POSITIVE or NEGATIVE",
           "Recode LBSTRESC to POSITIVE or NEGATIVE (data contract).", "RSP_QUAL_VALUE")
    if errors:
        raise StudyInputError(errors)
    val = np.where(is_qual, qual, valn)
    day = _to_days(column("LBDT"))
    subj_u = subjects.get_indexer(pd.Index(usubjid_u))
    subj = np.where(ucode_s >= 0, subj_u[np.clip(ucode_s, 0, None)] if len(subj_u) else -1, -1)
    missing_val = (key >= 0) & np.isnan(val)
    _issue(missing_val, "LBSTRESN", valc, "disease-marker result missing; row not used",
           "", "RSP_VALUE_MISSING", severity="warning")
    missing_day = (key >= 0) & ~np.isnan(val) & np.isnan(day)
    _issue(missing_day, "LBDTC", np.full(n, None, dtype=object), "disease-marker date missing; row not used",
           "Give LBDTC (partial dates are imputed by the reader).", "RSP_DATE_MISSING", severity="warning")
    no_subj = (key >= 0) & (subj < 0)
    _issue(no_subj, "USUBJID", usubjid, "subject not in dm/ADSL; row not used", "", "RSP_SUBJECT_UNKNOWN",
           severity="warning")
    keep = (key >= 0) & ~np.isnan(val) & ~np.isnan(day) & (subj >= 0)
    out = pd.DataFrame({"SUBJ": subj[keep].astype("int64"), "KEY": key[keep], "DAY": day[keep],
                        "VAL": val[keep], "ROWNUM": rownum[keep].astype("int64")})
    return out, issues


def derive_baseline(labs: pd.DataFrame, first_dose_day: np.ndarray, *,
                    criteria: MeasurableDisease = MeasurableDisease()) -> pd.DataFrame:
    """Baseline value of each disease marker: the last valid value on or before the first dose.

    Parameters
    ----------
    labs
        Output of :func:`extract_disease_labs`.
    first_dose_day
        Per subject (position = SUBJ), first dose as float days since 1970-01-01 (NaN: not dosed).

    Returns
    -------
    DataFrame
        One row per subject position (index 0..n-1): ``BL_<KEY>`` value, ``BL_<KEY>_DAY`` and
        ``BL_<KEY>_ROW`` (lb ROWNUM) for each marker key.

    Rule
    ----
    Baseline is the last non-missing value per test on or before the day of first dose (the
    conventional ADaM baseline; IMWG measures response "from baseline"). Duplicates on the same
    day: the later source row wins. With ``baseline_window_days`` the value must also be no more
    than that many days before first dose.
    """
    n = len(first_dose_day)
    out: dict[str, np.ndarray] = {}
    fd = first_dose_day[labs["SUBJ"].to_numpy()] if len(labs) else np.array([])
    day = labs["DAY"].to_numpy()
    ok = day <= fd
    if criteria.baseline_window_days is not None:
        ok &= day >= fd - criteria.baseline_window_days
    b = labs.loc[ok].sort_values(["SUBJ", "KEY", "DAY", "ROWNUM"], kind="stable")
    b = b.drop_duplicates(["SUBJ", "KEY"], keep="last")
    for i, k in enumerate(MARKER_KEYS):
        v = np.full(n, np.nan)
        dd = np.full(n, np.nan)
        rr = np.full(n, np.nan)
        sel = b[b["KEY"] == i]
        s = sel["SUBJ"].to_numpy()
        v[s] = sel["VAL"].to_numpy()
        dd[s] = sel["DAY"].to_numpy()
        rr[s] = sel["ROWNUM"].to_numpy()
        out[f"BL_{k}"] = v
        out[f"BL_{k}_DAY"] = dd
        out[f"BL_{k}_ROW"] = rr
    return pd.DataFrame(out)


def derive_measurable_disease(baseline: pd.DataFrame, *,
                              criteria: MeasurableDisease = MeasurableDisease()) -> pd.DataFrame:
    """Measurable disease and the IMWG response route per subject.

    Parameters
    ----------
    baseline
        Output of :func:`derive_baseline`.

    Returns
    -------
    DataFrame
        ``baseline`` with MEAS_S, MEAS_U, MEAS_FLC (bool), BL_RATIO (kappa/lambda), BL_INVOLVED
        (``KAPPA``/``LAMBDA``/NA), BL_DFLC (involved - uninvolved, mg/dL), RSPROUTE
        (``M-PROTEIN``/``FLC``/``MARROW``/``NONE``) and MEASFL (``Y``/``N``).

    Rule
    ----
    Measurable disease (Rajkumar 2011 / Kumar 2016; domain.md 2.4): serum M-protein >= threshold
    (default 0.5 g/dL, IMWG 1 g/dL), or urine M-protein >= 200 mg/24 h, or involved FLC >= 10 mg/dL
    with an abnormal kappa/lambda ratio. Route hierarchy (Durie 2006; domain.md 2.1): M-protein
    (serum and/or urine) when measurable; else FLC (dFLC) when measurable; else marrow when
    baseline plasma cells >= 30%; else none.
    """
    c = criteria
    out = baseline.copy()
    s = out["BL_SPEP"].to_numpy()
    u = out["BL_UPEP"].to_numpy()
    k = out["BL_KAPPA"].to_numpy()
    lam = out["BL_LAMBDA"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(lam > 0, k / lam, np.where((k > 0) & (lam == 0), np.inf, np.nan))
    lo, hi = c.flc_ratio_normal
    kappa_inv = ratio > hi
    lambda_inv = ratio < lo
    involved = np.where(kappa_inv, k, np.where(lambda_inv, lam, np.nan))
    uninvolved = np.where(kappa_inv, lam, np.where(lambda_inv, k, np.nan))
    meas_s = s >= c.serum_mprotein_g_dl
    meas_u = u >= c.urine_mprotein_mg_24h
    meas_flc = (involved >= c.involved_flc_mg_dl) & (kappa_inv | lambda_inv)
    marrow = out["BL_BMPC"].to_numpy() >= c.marrow_pc_pct
    route = np.where(meas_s | meas_u, "M-PROTEIN", np.where(meas_flc, "FLC", np.where(marrow, "MARROW", "NONE")))
    out["MEAS_S"] = meas_s
    out["MEAS_U"] = meas_u
    out["MEAS_FLC"] = meas_flc
    out["BL_RATIO"] = ratio
    out["BL_INVOLVED"] = pd.array(np.where(kappa_inv, "KAPPA", np.where(lambda_inv, "LAMBDA", None)), dtype="string")
    out["BL_DFLC"] = involved - uninvolved
    out["RSPROUTE"] = route
    measurable = meas_s | meas_u | meas_flc
    if c.marrow_counts_as_measurable:
        measurable = measurable | (route == "MARROW")
    out["MEASFL"] = np.where(measurable, "Y", "N")
    return out
