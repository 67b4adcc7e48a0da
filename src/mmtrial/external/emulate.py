"""Target-trial emulation in an external cohort: eligibility at the start of every line.

Design (Hernan & Robins, Am J Epidemiol 2016;183:758-764, target trial emulation; for
external controls of single-arm myeloma trials as in LocoMMotion / MAMMOTH-style cohorts):

* **Eligibility** is the protocol's ``[eligibility]`` criteria (rule terms of
  docs/prior-therapy.md: exposure/refractoriness to drugs and classes, ``refractory:last_line``,
  ``lines>=n``, ``flag:MEASFL``) evaluated with the trial's own derivation
  (derive/eligibility.py) on the status *at the start of each line* (external/history.py).
* **Measurable disease** (``flag:MEASFL``) from the latest serum M-protein within
  ``lab_window_days`` before the line start (>= 0.5 g/dL, the IMWG threshold of
  derive/baseline.py ``MeasurableDisease``). Labs are sparse in real-world data, so
  ``measurable = "when_available"`` (default) applies the criterion only when a value exists;
  ``"require"`` excludes lines without one; ``"ignore"`` drops the criterion.
* **No study drug**: a line containing one of ``exclude_drugs`` (the trial's study drugs), or
  after any exposure to them, is not eligible (an external control never received them).
* **Index**: ``first`` eligible line per patient; ``every`` eligible line (a patient contributes
  several index lines; analyses cluster by patient); ``random``: one eligible line per patient
  drawn with ``seed``.
* **Time zero** = the index line's start (as the trial's first dose). **OS**: death (ds DEATH,
  dm DTHDTC); censored at the last date the patient is known alive (the latest of ds, cm, rs and
  lb dates). **PFS** (real-world): the first progression (rs PD) after time zero or death,
  censored likewise. ``max_followup_days`` (optional) censors administratively.

The attrition table counts patients and lines after each step, in order (CONSORT-style).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmtrial.derive.baseline import MeasurableDisease
from mmtrial.derive.drugs import DrugDictionary
from mmtrial.derive.eligibility import Criterion, EligibilityRule, derive_eligibility
from mmtrial.external.history import CohortHistory

IndexRule = Literal["first", "every", "random"]
MeasurableRule = Literal["when_available", "require", "ignore"]
HERNAN_2016 = "Hernan MA, Robins JM. Am J Epidemiol 2016;183:758-764 (target trial emulation)"


@dataclass(frozen=True)
class EmulationOptions:
    """Options of the emulation (protocol section ``[external]``, module docstring)."""

    index: IndexRule = "first"
    seed: int = 1
    measurable: MeasurableRule = "when_available"
    lab_window_days: int = 30
    exclude_drugs: tuple[str, ...] = ()
    max_followup_days: int | None = None
    source: str = HERNAN_2016

    def __post_init__(self) -> None:
        if self.index not in ("first", "every", "random"):
            raise ValueError(f"[external] index: allowed 'first', 'every', 'random'; got {self.index!r}")
        if self.measurable not in ("when_available", "require", "ignore"):
            raise ValueError("[external] measurable: allowed 'when_available', 'require', 'ignore'; "
                             f"got {self.measurable!r}")
        if self.lab_window_days < 0:
            raise ValueError(f"[external] lab_window_days: expected >= 0; got {self.lab_window_days!r}")
        object.__setattr__(self, "exclude_drugs", tuple(str(d).lower() for d in self.exclude_drugs))

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def describe(self) -> str:
        idx = {"first": "the first eligible line of each patient",
               "every": "every eligible line (patients contribute several; variances clustered by patient)",
               "random": f"one eligible line per patient drawn at random (seed {self.seed})"}[self.index]
        meas = {"when_available": f"measurable disease required when a serum M-protein exists within "
                                  f"{self.lab_window_days} days before the line start",
                "require": f"measurable disease required (a serum M-protein within {self.lab_window_days} days)",
                "ignore": "measurable disease not assessed"}[self.measurable]
        excl = f"; lines with or after {', '.join(self.exclude_drugs)} excluded" if self.exclude_drugs else ""
        return (f"Target-trial emulation ({self.source}): protocol eligibility evaluated at the start of every "
                f"line; index = {idx}; time zero = the index line's start; {meas}{excl}; OS censored at the "
                "last date known alive; real-world PFS = progression or death.")


@dataclass
class Emulation:
    """The emulated cohort: index lines with covariates and outcomes, per-line eligibility, attrition."""

    index: pd.DataFrame
    lines: pd.DataFrame
    attrition: pd.DataFrame
    options: EmulationOptions
    criteria: tuple[Criterion, ...]


def derive_measurable_at_lines(status: pd.DataFrame, lb: pd.DataFrame | None, *, window_days: int,
                               criteria: MeasurableDisease | None = None) -> pd.Series:
    """MEASFL at each line start: Y/N from the latest serum M-protein in [start - window, start];
    missing (NA) when there is none. Threshold: derive/baseline.py ``MeasurableDisease``
    (serum M-protein >= 0.5 g/dL, IMWG, Rajkumar 2011)."""
    crit = criteria or MeasurableDisease()
    out = pd.Series(pd.NA, index=status.index, dtype="string")
    if lb is None or len(lb) == 0 or "LBTESTCD" not in lb:
        return out
    m = lb.loc[lb["LBTESTCD"].astype("string").str.upper().eq("MPROTEIN").fillna(False)
               & lb.get("LBSPEC", pd.Series("SERUM", index=lb.index)).astype("string").str.upper().isin(["SERUM", "BLOOD", "SERUM OR PLASMA"]).fillna(False)]
    m = m.loc[m["LBDT"].notna() & pd.to_numeric(m["LBSTRESN"], errors="coerce").notna()]
    if len(m) == 0:
        return out
    labs = pd.DataFrame({"USUBJID": m["USUBJID"].astype("string").to_numpy(),
                         "LBDT": pd.to_datetime(m["LBDT"]).to_numpy().astype("datetime64[ns]"),
                         "VAL": pd.to_numeric(m["LBSTRESN"]).to_numpy()}).sort_values("LBDT")
    left = pd.DataFrame({"USUBJID": status["USUBJID"].astype("string").to_numpy(),
                         "LOTSTDT": pd.to_datetime(status["LOTSTDT"]).to_numpy().astype("datetime64[ns]"),
                         "_i": np.arange(len(status))})
    ok = left["LOTSTDT"].notna()
    lj = left.loc[ok].sort_values("LOTSTDT")
    j = pd.merge_asof(lj, labs, left_on="LOTSTDT", right_on="LBDT", by="USUBJID", direction="backward",
                      tolerance=pd.Timedelta(days=window_days))
    j = j.loc[j["VAL"].notna()]
    vals = np.where(j["VAL"].to_numpy() >= crit.serum_mprotein_g_dl, "Y", "N")
    out.iloc[j["_i"].to_numpy()] = vals
    return out


def derive_last_alive(frames: dict[str, pd.DataFrame]) -> pd.Series:
    """The last date each patient is known alive (or died): the latest ds, cm, rs, lb date and
    dm DTHDTC (OS censoring; docs/external.md)."""
    parts = []
    for dom, cols in (("ds", ("DSSTDT",)), ("cm", ("CMSTDT", "CMENDT")), ("rs", ("RSDT",)), ("lb", ("LBDT",)),
                      ("dm", ("DTHDT",))):
        df = frames.get(dom)
        if df is None or len(df) == 0:
            continue
        for c in cols:
            if c in df:
                parts.append(pd.DataFrame({"USUBJID": df["USUBJID"].astype("string"), "D": pd.to_datetime(df[c])}))
    if not parts:
        return pd.Series(dtype="datetime64[ns]")
    x = pd.concat(parts, ignore_index=True).dropna()
    return x.groupby("USUBJID")["D"].max()


def derive_death_dates(frames: dict[str, pd.DataFrame]) -> pd.Series:
    """Death date per patient: ds DSDECOD DEATH, else dm DTHDTC (the earliest)."""
    parts = []
    ds = frames.get("ds")
    if ds is not None and len(ds) and "DSDECOD" in ds:
        d = ds.loc[ds["DSDECOD"].astype("string").str.upper().eq("DEATH").fillna(False)]
        parts.append(pd.DataFrame({"USUBJID": d["USUBJID"].astype("string"), "D": pd.to_datetime(d["DSSTDT"])}))
    dm = frames.get("dm")
    if dm is not None and "DTHDT" in dm:
        parts.append(pd.DataFrame({"USUBJID": dm["USUBJID"].astype("string"), "D": pd.to_datetime(dm["DTHDT"])}))
    if not parts:
        return pd.Series(dtype="datetime64[ns]")
    x = pd.concat(parts, ignore_index=True).dropna()
    return x.groupby("USUBJID")["D"].min()


def _covariates(st: pd.DataFrame, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """AGE, MALE, DIAGYRS, HRCYTOFL at the line start (columns added to ``st``)."""
    dm = frames["dm"].assign(USUBJID=lambda d: d["USUBJID"].astype("string")).drop_duplicates("USUBJID").set_index("USUBJID")
    u = st["USUBJID"].astype("string")
    start = pd.to_datetime(st["LOTSTDT"])
    if "BRTHDT" in dm and dm["BRTHDT"].notna().any():
        age = (start - pd.to_datetime(u.map(dm["BRTHDT"]))).dt.days / 365.25
    else:
        age = pd.Series(np.nan, index=st.index)
    if "RFXSTDT" in dm:
        fb = u.map(dm["AGE"]).astype(float) + (start - pd.to_datetime(u.map(dm["RFXSTDT"]))).dt.days / 365.25
        age = age.fillna(fb)
    st["AGE"] = age.to_numpy()
    st["MALE"] = u.map(dm["SEX"].astype("string").str.upper().eq("M").astype(float)).to_numpy()
    mh = frames.get("mh")
    if mh is not None and len(mh) and "MHSTDT" in mh:
        x = mh
        if "MHCAT" in x:
            x = x.loc[x["MHCAT"].astype("string").str.upper().eq("PRIMARY DIAGNOSIS").fillna(False)]
        dg = pd.to_datetime(x["MHSTDT"]).groupby(x["USUBJID"].astype("string")).min()
        st["DIAGYRS"] = ((start - pd.to_datetime(u.map(dg))).dt.days / 365.25).to_numpy()
    else:
        st["DIAGYRS"] = np.nan
    lb = frames.get("lb")
    st["HRCYTOFL"] = pd.Series(pd.NA, index=st.index, dtype="string")
    if lb is not None and len(lb) and "LBCAT" in lb:
        cy = lb.loc[lb["LBCAT"].astype("string").str.upper().eq("CYTOGENETICS").fillna(False)
                    & lb["LBTESTCD"].astype("string").str.upper().isin(["DEL17P", "T414", "T1416"]).fillna(False)]
        res = cy["LBSTRESC"].astype("string").str.upper()
        cy = pd.DataFrame({"USUBJID": cy["USUBJID"].astype("string"), "D": pd.to_datetime(cy["LBDT"]),
                           "POS": res.eq("POSITIVE").fillna(False), "TESTED": res.isin(["POSITIVE", "NEGATIVE"]).fillna(False)})
        cy = cy.loc[cy["TESTED"]]
        if len(cy):
            j = st[["USUBJID", "LOTSTDT"]].reset_index().assign(USUBJID=u.to_numpy()).merge(cy, on="USUBJID", how="inner")
            j = j.loc[j["D"] <= j["LOTSTDT"]]
            agg = j.groupby("index")["POS"].any()
            st.loc[agg.index, "HRCYTOFL"] = np.where(agg.to_numpy(), "Y", "N")
    return st


def emulate_target_trial(
    history: CohortHistory,
    frames: dict[str, pd.DataFrame],
    *,
    eligibility: EligibilityRule,
    options: EmulationOptions = EmulationOptions(),
    dictionary: DrugDictionary | None = None,
) -> Emulation:
    """Apply the protocol's eligibility at every line start and pick the index lines (module docstring)."""
    dictionary = dictionary or DrugDictionary.load(None)
    st = history.status.copy()
    crits = tuple(eligibility.criteria)
    st["MEASFL"] = derive_measurable_at_lines(st, frames.get("lb"), window_days=options.lab_window_days)
    meas_known = st["MEASFL"].notna()
    ctx = st.rename(columns={"USUBJID": "_PAT"}).rename(columns={"KEY": "USUBJID"})
    ctx["NLINES"] = ctx["NPRIOR"]
    if options.measurable == "ignore" or options.measurable == "when_available":
        ctx["MEASFL"] = ctx["MEASFL"].fillna("Y") if options.measurable == "when_available" else "Y"
    for c in crits:
        for t in c.terms:
            if t.lower().startswith("flag:") and t.split(":", 1)[1].strip().upper() not in ctx:
                from mmtrial.errors import UsageError

                raise UsageError(f"[eligibility] criterion {c.id}: rule {t!r} needs a flag an external cohort "
                                 "does not have (only MEASFL and the refractory flags are derived at line starts)")
    rule = EligibilityRule(criteria=crits, label_population=(), source=eligibility.source)
    el = derive_eligibility(ctx, history.refr, dictionary=dictionary, rule=rule)
    st = st.merge(el.rename(columns={"USUBJID": "KEY"}).drop(columns=["LABELFL"]), on="KEY", how="left")
    st["MEASKNFL"] = np.where(meas_known, "Y", "N")
    # the study drug: lines containing it, or after any exposure to it
    if options.exclude_drugs:
        ex = history.exposure
        sd = ex.loc[ex["DRUG"].astype("string").str.lower().isin(options.exclude_drugs)]
        first_sd = pd.to_datetime(sd["CMSTDT"]).groupby(sd["USUBJID"].astype("string")).min()
        fs = st["USUBJID"].astype("string").map(first_sd)
        has = (pd.to_datetime(st["LOTSTDT"]) >= fs).fillna(False)
        st["NOSTUDYFL"] = np.where(has, "N", "Y")
    else:
        st["NOSTUDYFL"] = "Y"
    # outcomes from each line start
    death = derive_death_dates(frames)
    last = derive_last_alive(frames)
    u = st["USUBJID"].astype("string")
    t0 = pd.to_datetime(st["LOTSTDT"])
    dth = pd.to_datetime(u.map(death))
    lst = pd.to_datetime(u.map(last))
    end = dth.fillna(lst)
    st["OSEVENT"] = dth.notna().astype("int64").to_numpy()
    st["OSDAYS"] = (end - t0).dt.days.astype(float).to_numpy()
    rs = frames.get("rs")
    pfs_end = end.copy()
    pfs_ev = st["OSEVENT"].to_numpy().copy()
    if rs is not None and len(rs) and "RSSTRESC" in rs:
        pd_rows = rs.loc[rs["RSSTRESC"].astype("string").str.upper().eq("PD").fillna(False) & rs["RSDT"].notna()]
        pdx = pd.DataFrame({"USUBJID": pd_rows["USUBJID"].astype("string"), "PDDT": pd.to_datetime(pd_rows["RSDT"])})
        j = pd.DataFrame({"USUBJID": u, "T0": t0, "_i": np.arange(len(st))}).merge(pdx, on="USUBJID", how="inner")
        j = j.loc[j["PDDT"] > j["T0"]].groupby("_i")["PDDT"].min()
        first_pd = pd.Series(pd.NaT, index=np.arange(len(st)), dtype="datetime64[ns]")
        first_pd.loc[j.index] = j.to_numpy()
        first_pd.index = st.index
        earlier = first_pd.notna() & ((first_pd <= end) | end.isna())
        pfs_end = pfs_end.where(~earlier, first_pd)
        pfs_ev = np.where(earlier.to_numpy(), 1, pfs_ev)
    st["PFSEVENT"] = pfs_ev.astype("int64")
    st["PFSDAYS"] = (pfs_end - t0).dt.days.astype(float).to_numpy()
    if options.max_followup_days is not None:
        for p in ("OS", "PFS"):
            over = st[f"{p}DAYS"] > options.max_followup_days
            st.loc[over, f"{p}EVENT"] = 0
            st.loc[over, f"{p}DAYS"] = float(options.max_followup_days)
    st = _covariates(st, frames)

    # attrition, step by step (cumulative)
    steps: list[tuple[str, str, pd.Series]] = []
    keep = pd.Series(True, index=st.index)
    n_all = int(frames["dm"]["USUBJID"].nunique())
    rows = [{"step": 0, "criterion": "Patients in the cohort", "rule": "", "patients": n_all, "lines": None,
             "patients_excluded": None}]
    rows.append({"step": 1, "criterion": "With >= 1 line of anti-myeloma therapy", "rule": "cm",
                 "patients": int(st["USUBJID"].nunique()), "lines": len(st),
                 "patients_excluded": n_all - int(st["USUBJID"].nunique())})
    for c in crits:
        steps.append((c.label or c.id, "; ".join(c.terms), st[f"ELIG_{c.id}"].eq("Y")))
    if options.exclude_drugs:
        steps.append(("No exposure to the study drug(s) up to the line", ", ".join(options.exclude_drugs),
                      st["NOSTUDYFL"].eq("Y")))
    steps.append(("Follow-up after time zero", "last date known alive or death after the line start",
                  (st["OSDAYS"] > 0).fillna(False)))
    prev_p = int(st["USUBJID"].nunique())
    for i, (lbl, rl, ok) in enumerate(steps, start=2):
        keep &= ok.to_numpy()
        p = int(st.loc[keep, "USUBJID"].nunique())
        rows.append({"step": i, "criterion": lbl, "rule": rl, "patients": p, "lines": int(keep.sum()),
                     "patients_excluded": prev_p - p})
        prev_p = p
    st["EMULFL"] = np.where(keep, "Y", "N")
    elig = st.loc[keep]
    if options.index == "first":
        idx = elig.sort_values(["USUBJID", "LINENUM"]).drop_duplicates("USUBJID")
    elif options.index == "random":
        rng = np.random.default_rng(options.seed)
        order = elig.assign(_r=rng.random(len(elig))).sort_values(["USUBJID", "_r"])
        idx = order.drop_duplicates("USUBJID").drop(columns="_r")
    else:
        idx = elig
    idx = idx.sort_values(["USUBJID", "LINENUM"]).reset_index(drop=True)
    rows.append({"step": len(rows), "criterion": f"Index line(s): {options.index}", "rule": "EmulationOptions.index",
                 "patients": int(idx["USUBJID"].nunique()), "lines": len(idx),
                 "patients_excluded": prev_p - int(idx["USUBJID"].nunique())})
    attrition = pd.DataFrame(rows)
    attrition["lines"] = attrition["lines"].astype("Int64")
    attrition["patients_excluded"] = attrition["patients_excluded"].astype("Int64")
    return Emulation(index=idx, lines=st, attrition=attrition, options=options, criteria=crits)
