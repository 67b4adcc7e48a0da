"""Step ``tte``: ADTTE (OS, PFS, DOR, TTR, TTNT), Kaplan-Meier statistics, OS by response without
guarantee-time bias, ORR by subgroup, the exact binomial test, and the "efficacy-tte" section.

Reads the ``[tte]`` protocol section (:class:`TteConfig`); the method profile comes from
``a.options["profile"]``, else ``[tte] profile``, else ``[methods] profile`` (default "sas").
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mmtrial.context import Analysis
from mmtrial.derive.tte import CensorSource, EventSource, derive_adtte, endpoint_specs_from_config
from mmtrial.report.model import DeferredFigure, Figure, Section, Text
from mmtrial.stats.compare import (
    compute_landmark_comparison,
    compute_mantel_byar,
    compute_naive_comparison,
    compute_time_dependent_cox,
)
from mmtrial.stats.proportion import CI_METHOD_LABELS, compute_binomial_test, compute_proportion
from mmtrial.stats.survival import KaplanMeier, KMOptions, kaplan_meier, km_options
from mmtrial.tables.efficacy import (
    binomial_test_table,
    os_by_response_table,
    subgroup_table,
    tte_rules_table,
    tte_summary_table,
    ttr_table,
)

SECTION_ID = "efficacy-tte"
SECTION_ORDER = 45

_LABELS = {
    "OS": "Overall survival",
    "PFS": "Progression-free survival",
    "DOR": "Duration of response",
    "TTR": "Time to response",
    "TTNT": "Time to next treatment",
}


def _param_of(adtte: pd.DataFrame) -> str | None:
    """The endpoint's ADTTE PARAM (first non-missing), for labels of endpoints not in a mapping."""
    if "PARAM" not in adtte.columns:
        return None
    vals = adtte["PARAM"].dropna()
    return str(vals.iloc[0]) if len(vals) else None


class EndpointConfig(BaseModel):
    """One ``[tte.endpoints.<PARAMCD>]`` table: origin, population, event and censoring sources."""

    model_config = ConfigDict(extra="forbid")
    param: str = Field(min_length=1, description="PARAM label of the endpoint")
    start: str = Field(min_length=1, description="ADSL date variable of the origin (e.g. TRTSDT)")
    population: dict[str, str] = Field(default_factory=dict, description="ADSL flag conditions, e.g. {EFFFL = 'Y'}")
    events: list[EventSource] = Field(min_length=1, description="event sources (admiral event_source)")
    censors: list[CensorSource] = Field(min_length=1, description="censoring sources, first that applies wins")
    new_therapy_var: str | None = Field(None, description="date of new anti-myeloma therapy (events after it are set aside)")
    missed_visits: int | None = Field(None, ge=1, description="missed assessments after which an event is set aside")

    def as_table(self) -> dict[str, Any]:
        d: dict[str, Any] = {"param": self.param, "start": self.start, "population": dict(self.population),
                             "events": [dataclasses.asdict(e) for e in self.events],
                             "censors": [dataclasses.asdict(c) for c in self.censors]}
        for k in ("new_therapy_var", "missed_visits"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return d


class TteConfig(BaseModel):
    """The ``[tte]`` protocol section (see storm.toml and docs/statistics.md)."""

    model_config = ConfigDict(extra="forbid")
    profile: Literal["sas", "r"] | None = None
    ci_transform: Literal["log-log", "log", "plain", "arcsine", "logit"] | None = None
    median_rule: Literal["sas", "r"] | None = None
    level: float = Field(0.95, gt=0, lt=1)
    add_one: bool = True
    days_per_month: float = Field(30.4375, gt=0)
    quantiles: list[float] = [0.25, 0.5, 0.75]
    landmark_months: list[float] = [6.0, 12.0]
    cox_ties: Literal["breslow", "efron"] | None = None
    os_by_response_landmark_months: float = Field(2.0, gt=0)
    os_by_response_flag: str = "RSPFL"
    os_by_response_date: str = "RSPDT"
    binomial_null: float = Field(0.10, gt=0, lt=1)
    binomial_alpha: float = Field(0.025, gt=0, lt=0.5)
    binomial_alternatives: list[float] = []
    binomial_design_source: str = "protocol [tte] section"
    subgroup_nlines_cutoff: int = 7
    proportion_ci: str | None = None
    endpoints: dict[str, EndpointConfig] = Field(
        default_factory=lambda: default_endpoints(),
        description="time-to-event parameters by PARAMCD (default: STORM's single-arm PFS, OS, DOR, TTR, "
                    "TTNT definitions, storm.toml [tte.endpoints.*])")

    def endpoint_tables(self) -> dict[str, dict[str, Any]]:
        """The endpoints as plain tables (the shape :func:`endpoint_specs_from_config` reads)."""
        return {k: v.as_table() for k, v in self.endpoints.items()}


@functools.cache
def _storm_endpoints() -> dict[str, Any]:
    from importlib import resources

    text = resources.files("mmtrial.protocol").joinpath("storm.toml").read_text("utf-8")
    return tomllib.loads(text)["tte"]["endpoints"]


def default_endpoints() -> dict[str, EndpointConfig]:
    """The default ``[tte.endpoints]``: STORM's single-arm PFS, OS, DOR, TTR and TTNT definitions
    (origin TRTSDT; IMWG progression, death; FDA 2018 censoring rules), as in storm.toml."""
    return {k: EndpointConfig.model_validate(v) for k, v in _storm_endpoints().items()}


def _profile(a: Analysis, cfg: TteConfig) -> str:
    p = a.options.get("profile") or cfg.profile or a.protocol.methods.get("profile", "sas")
    if p not in ("sas", "r"):
        raise ValueError(f"tte step: method profile must be 'sas' or 'r'; got {p!r}")
    return p


#: Which step provides each ADSL variable the endpoints use (docs/adam.md), for error messages.
_PROVIDER = {
    "TRTSDT": "adsl", "DTHFL": "adsl", "DTHDT": "adsl", "LSTALVDT": "adsl",
    "EFFFL": "response", "RSPFL": "response", "RSPDT": "response", "PDDT": "response", "NACTDT": "response",
}


def _check_variables(adsl: pd.DataFrame, cfg: TteConfig) -> None:
    """Every variable the endpoint sources name must be in ADSL (engine variables excepted)."""
    need: set[str] = set()
    for e in cfg.endpoint_tables().values():
        need.add(e.get("start", ""))
        need |= set(e.get("population", {}))
        if e.get("new_therapy_var"):
            need.add(e["new_therapy_var"])
        for src in [*e.get("events", []), *e.get("censors", [])]:
            need.add(src.get("date", ""))
            need |= set(src.get("where", {}))
    need = {v for v in need if v and not v.startswith("_") and v != "STARTDT"}
    missing = sorted(need - set(adsl.columns))
    if missing:
        who = ", ".join(f"{v} (step {_PROVIDER.get(v, '?')})" for v in missing)
        raise ValueError(
            f"tte step: ADSL lacks variables that the [tte] endpoint sources use: {who}. "
            "Run the steps that derive them first (pipeline.STEPS order), or change the [tte] sources."
        )


def _rule_summary(spec) -> str:
    """One line per endpoint for the methods table (the full rules are table TTERULES)."""
    ev = ", ".join(f"{e.name} ({e.date})" for e in spec.events)
    cen = ", ".join(f"{c.name} ({c.date})" for c in spec.censors)
    extra = []
    if spec.rules.new_therapy_var:
        extra.append(f"events after {spec.rules.new_therapy_var} censored")
    if spec.rules.max_gap_days is not None:
        extra.append(f"events > {spec.rules.max_gap_days} d after last adequate assessment censored")
    tail = f"; {'; '.join(extra)}" if extra else ""
    return f"origin {spec.start}; events: {ev}; censoring (first that applies): {cen}{tail}"


_OS_BY_KEY = {"naive": "naive.cox", "landmark": "landmark.cox", "time-dependent Cox": "time_dependent_cox",
              "Mantel-Byar test": "mantel_byar"}


def _efficacy_reason(a: Analysis) -> str:
    """The response step's reason the efficacy population is empty (or a generic one)."""
    return (a.results.get("efficacy") or {}).get("reason") or "the efficacy population is empty"


def _none(v):
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)


def _km_result(km: KaplanMeier, quantiles, landmarks) -> dict:
    est, lo, hi = km.quantile(0.5)
    out = {
        "n": km.n,
        "events": km.events,
        "censored": km.censored,
        "median": est,
        "ci": [lo, hi],
        "unit": "months",
        "ci_transform": km.options.ci_transform,
        "level": km.options.level,
        "median_rule": km.options.median_rule,
        "quantiles": {f"{q:g}": {"estimate": km.quantile(q)[0], "ci": list(km.quantile(q)[1:])} for q in quantiles},
        "landmarks": [],
    }
    tab = km.survival_table(list(landmarks))
    for r in tab.itertuples():
        out["landmarks"].append(
            {"time": float(r.time), "n_risk": int(r.n_risk), "surv": _none(r.surv), "ci": [_none(r.lower), _none(r.upper)]}
        )
    return out


def tte_section(a: Analysis) -> dict[str, Any]:
    """The ``[tte]`` section; a randomised protocol without ``[tte.endpoints]`` gets the
    randomised defaults (origin RANDDT, ITT population; derive/arms.py)."""
    raw = dict(a.protocol.section("tte"))
    rnd = a.protocol.randomisation if a.protocol.is_randomised else None
    if rnd is not None and "endpoints" not in raw:
        from mmtrial.derive.arms import derive_randomised_endpoints

        raw["endpoints"] = derive_randomised_endpoints(
            _storm_endpoints(), censor_os_at_crossover=rnd.crossover.allowed and rnd.crossover.censor_os)
    return raw


def crossover_drugs(a: Analysis) -> list[str]:
    """``[randomisation.crossover] drugs``, else the experimental arm's study drug."""
    rnd = a.protocol.randomisation
    return list(rnd.crossover.drugs) or [a.protocol.regimen_for(rnd.experimental).study_drug]


def compute_os_by_response(os_rows: pd.DataFrame, origin: str, cfg: TteConfig, opts: KMOptions, ties: str):
    """OS by response (naive, landmark, Mantel-Byar, time-dependent Cox; months) on ADTTE OS rows
    merged with the responder flag and date of ``cfg``; time to response from the ``origin`` date
    column, the OS origin. Serves the pooled analysis here and the per-arm one (by_arm_displays)."""
    dpm = cfg.days_per_month
    t = os_rows["AVAL"].to_numpy(float) / dpm
    e = (os_rows["CNSR"] == 0).to_numpy()
    resp = os_rows[cfg.os_by_response_flag].astype("string").eq("Y").fillna(False).to_numpy(dtype=bool)
    rdays = (pd.to_datetime(os_rows[cfg.os_by_response_date]) - pd.to_datetime(os_rows[origin])).dt.days.astype(float)
    rt = ((rdays + (1.0 if cfg.add_one else 0.0)) / dpm).where(resp).to_numpy(float)
    naive = compute_naive_comparison(t, e, resp.astype(float), options=opts, ties=ties)
    land = compute_landmark_comparison(t, e, rt, cfg.os_by_response_landmark_months, options=opts, ties=ties,
                                       unit="months")
    return naive, land, compute_mantel_byar(t, e, rt), compute_time_dependent_cox(t, e, rt, ties=ties, level=opts.level)


def run(a: Analysis) -> None:
    cfg = TteConfig.model_validate(tte_section(a))
    profile = _profile(a, cfg)
    over = {k: v for k, v in (("ci_transform", cfg.ci_transform), ("median_rule", cfg.median_rule)) if v is not None}
    if cfg.level != 0.95:
        over["level"] = cfg.level
    opts = km_options(profile, **over)
    ties = cfg.cox_ties or ("breslow" if profile == "sas" else "efron")
    dpm = cfg.days_per_month
    ci_method = cfg.proportion_ci or a.protocol.methods.get("proportion_ci", "clopper-pearson")

    if "adsl" not in a.adam:
        raise ValueError("tte step: a.adam['adsl'] is missing; the adsl and response steps must run first")
    adsl = a.adam["adsl"]
    if not ({"EFFFL", "RSPFL", "PDDT"} & set(adsl.columns)):
        # the response step has not run at all (a pipeline configuration, not a data problem):
        # say so in the report and results instead of failing every other step's output
        reason = (
            "ADSL has none of the response step's variables (EFFFL, RSPFL, PDDT ...): "
            "the 'response' step must run before 'tte' (pipeline.STEPS)."
        )
        a.results["tte_status"] = {"run": False, "reason": reason}
        a.methods["tte"] = {"not_run": reason}
        a.sections.append(
            Section(id=SECTION_ID, title="Efficacy: time-to-event endpoints",
                    blocks=[Text(f"Time-to-event analyses not run: {reason}")], order=SECTION_ORDER)
        )
        return
    if a.protocol.is_randomised and "ARMCD" in adsl:  # CROSSFL/CROSSDT need PDDT (response step)
        from mmtrial.derive.arms import derive_vars_crossover

        adsl = derive_vars_crossover(adsl, a.study.get("cm"), control=a.protocol.randomisation.control,
                                     drugs=crossover_drugs(a))
        a.adam["adsl"] = adsl
    _check_variables(adsl, cfg)
    adrs = a.adam.get("adrs")
    ovr = None
    if adrs is not None and len(adrs):
        ovr = adrs.loc[adrs["PARAMCD"] == "OVR", ["USUBJID", "ADT", "AVALC"]]
    elif adrs is not None:
        ovr = pd.DataFrame({"USUBJID": pd.Series(dtype=str), "ADT": pd.Series(dtype="datetime64[ns]"), "AVALC": pd.Series(dtype=str)})
    specs = endpoint_specs_from_config(
        cfg.endpoint_tables(),
        interval_days=a.protocol.visits.response_assessment_days,
        window_days=a.protocol.visits.assessment_window_days,
        add_one=cfg.add_one,
    )
    adtte = derive_adtte(adsl, ovr, specs=specs)
    a.adam["adtte"] = adtte

    # -- Kaplan-Meier per parameter (months) -----------------------------------------------
    kms: dict[str, KaplanMeier] = {}
    blocks_src: dict[str, pd.DataFrame] = {}
    results_tte: dict[str, Any] = {}
    for spec in specs:
        rows = adtte.loc[adtte["PARAMCD"] == spec.paramcd].copy()
        rows["AVAL_DISPLAY"] = rows["AVAL"] / dpm
        km = kaplan_meier(rows["AVAL_DISPLAY"].to_numpy(), (rows["CNSR"] == 0).to_numpy(), options=opts)
        kms[spec.paramcd] = km
        blocks_src[spec.paramcd] = rows
        results_tte[spec.paramcd] = _km_result(km, cfg.quantiles, cfg.landmark_months)
        results_tte[spec.paramcd]["param"] = spec.param
    a.results["time_to_event"] = results_tte
    efficacy_empty = not (adsl["EFFFL"].astype("string") == "Y").fillna(False).any() if "EFFFL" in adsl else True
    for spec in specs:
        if kms[spec.paramcd].n == 0:
            if efficacy_empty:
                why = _efficacy_reason(a)
            else:
                pop = " and ".join(f"{k} = {v}" for k, v in cfg.endpoints[spec.paramcd].population.items())
                why = f"its analysis set is empty: no subject has {pop}" if pop else "its analysis set is empty"
            results_tte[spec.paramcd]["not_estimable"] = why
            if not efficacy_empty:  # else the response step's note covers every efficacy output
                a.note_not_computable(f"{_LABELS.get(spec.paramcd, spec.paramcd)} (Kaplan-Meier)", why,
                                      step="tte", key=f"time_to_event.{spec.paramcd}")

    # -- OS by response ----------------------------------------------------------------------
    blocks: list = []
    footnote_km = opts.describe()
    footnote_months = (
        f"Months = days / {dpm:g}; AVAL = ADT - STARTDT{' + 1' if cfg.add_one else ''} days."
    )
    footnote_cens = (
        "PFS and DOR: events are IMWG progression or death; an event after new anti-myeloma therapy or after two or "
        "more missed assessments is censored at the last adequate assessment before it (FDA 2018 endpoints guidance); "
        "OS is censored at the last date known alive. All rules: table TTERULES."
    )
    os_by = None
    flag, rdate = cfg.os_by_response_flag, cfg.os_by_response_date
    # time to response runs from the OS origin (ADTTE STARTDT: TRTSDT single-arm, RANDDT randomised),
    # so response time and OS share one clock; TRTSDT when ADTTE carries no STARTDT
    os_origin = "STARTDT" if "OS" in blocks_src and "STARTDT" in blocks_src["OS"].columns else "TRTSDT"
    adsl_need = {flag, rdate} | ({"TRTSDT"} if os_origin == "TRTSDT" else set())
    if "OS" in kms and adsl_need <= set(adsl.columns):
        os_rows = blocks_src["OS"].merge(adsl[["USUBJID", *sorted(adsl_need)]], on="USUBJID", how="left")
        naive, land, mb, tdc = compute_os_by_response(os_rows, os_origin, cfg, opts, ties)
        os_by = {
            "responder_flag": flag,
            "unit": "months",
            "naive": naive.as_dict(),
            "landmark": land.as_dict(),
            "mantel_byar": mb.as_dict(),
            "time_dependent_cox": tdc.as_dict(),
        }
        a.results["os_by_response"] = os_by
        for name, res in (("naive", naive.cox), ("landmark", land.cox), ("time-dependent Cox", tdc),
                          ("Mantel-Byar test", mb)):
            if res.reason and not efficacy_empty:
                what = f"OS by response: {name}" + (" hazard ratio" if hasattr(res, "hr") else "")
                a.note_not_computable(what, res.reason, step="tte", key=f"os_by_response.{_OS_BY_KEY[name]}")
    else:
        missing = sorted(adsl_need - set(adsl.columns))
        a.results["os_by_response"] = {"unavailable": f"ADSL lacks {missing}"}

    # -- subgroups and the binomial test -------------------------------------------------------
    sub_rows: list[dict] = []
    unavailable: list[str] = []
    if {"EFFFL", "RSPFL"} <= set(adsl.columns):
        eff = adsl.loc[(adsl["EFFFL"].astype("string") == "Y").fillna(False).to_numpy(dtype=bool)]
        is_r = (eff["RSPFL"].astype("string") == "Y").fillna(False).to_numpy(dtype=bool)

        def add(subgroup: str, level: str, mask: np.ndarray) -> None:
            res = compute_proportion(int((is_r & mask).sum()), int(mask.sum()), ci_method, opts.level)
            sub_rows.append(
                {"subgroup": subgroup, "level": level, "result": res,
                 "subjects": eff.loc[mask, "USUBJID"].tolist(), "responders": eff.loc[mask & is_r, "USUBJID"].tolist()}
            )

        add("All patients", "", np.ones(len(eff), dtype=bool))
        for var, name in (("PENTAFL", "Penta-refractory"), ("HRCYTOFL", "High-risk cytogenetics")):
            if var in eff.columns:
                v = eff[var].astype("string")
                add(name, "Yes", (v == "Y").fillna(False).to_numpy(dtype=bool))
                add(name, "No", (v == "N").fillna(False).to_numpy(dtype=bool))
                nmiss = int(v.isna().sum())
                if nmiss:
                    add(name, "Missing", v.isna().to_numpy(dtype=bool))
            else:
                unavailable.append(var)
        if "NLINES" in eff.columns:
            nl = pd.to_numeric(eff["NLINES"], errors="coerce")
            c = cfg.subgroup_nlines_cutoff
            add("Prior lines", f"< {c}", (nl < c).to_numpy(dtype=bool))
            add("Prior lines", f">= {c}", (nl >= c).to_numpy(dtype=bool))
            if nl.isna().any():
                add("Prior lines", "Missing", nl.isna().to_numpy(dtype=bool))
        else:
            unavailable.append("NLINES")
        a.results["subgroups"] = {
            "endpoint": "ORR (PR or better)",
            "method": ci_method,
            "level": opts.level,
            "rows": [{"subgroup": r["subgroup"], "category": r["level"], **r["result"].as_dict()} for r in sub_rows],
            "unavailable": unavailable,
        }
        if len(eff):
            bt = compute_binomial_test(
                int(is_r.sum()), len(eff), cfg.binomial_null, alpha=cfg.binomial_alpha,
                alternatives=tuple(cfg.binomial_alternatives)
            )
            a.results["binomial_test"] = {**bt.as_dict(), "design_source": cfg.binomial_design_source}
        else:
            bt = None
            why = _efficacy_reason(a)
            a.results["binomial_test"] = {"not_estimable": why}
    else:
        bt = None
        unavailable = ["EFFFL", "RSPFL"]
        a.results["subgroups"] = {"unavailable": unavailable}

    # -- methods ---------------------------------------------------------------------------------
    rule_rows = [r for s in specs for r in s.rule_rows()]
    a.methods["tte"] = {
        "profile": profile,
        "km": kms[next(iter(kms))].methods if kms else opts.describe(),
        "cox_ties": ties,
        "days_per_month": dpm,
        "add_one": cfg.add_one,
        "proportion_ci": ci_method,
        "os_by_response_landmark_months": cfg.os_by_response_landmark_months,
        "missed_visit_gap_days": {s.paramcd: s.rules.max_gap_days for s in specs if s.rules.max_gap_days is not None},
        "rules": {s.paramcd: _rule_summary(s) for s in specs},
        "rules_table": "TTERULES (section efficacy-tte)",
    }

    # -- report section ----------------------------------------------------------------------------
    from mmtrial.figures.forest import forest_svg
    from mmtrial.figures.km import km_svg, km_ylabel

    fn_common = [footnote_km, footnote_months, footnote_cens]
    main = {k: (_LABELS.get(k, k), kms[k], blocks_src[k]) for k in ("PFS", "OS", "DOR", "TTNT") if k in kms}
    if main:
        blocks.append(
            tte_summary_table(
                main,
                landmarks=cfg.landmark_months,
                quantiles=cfg.quantiles,
                footnotes=fn_common,
                population="Efficacy population (EFFFL = Y); DOR: responders (RSPFL = Y)",
            )
        )
    for code in ("PFS", "OS", "DOR"):
        if code in kms and kms[code].n:
            km = kms[code]
            alt = (
                f"Kaplan-Meier curve of {_LABELS[code].lower()} in months for {km.n} patients with {km.events} events; "
                f"median {km.median if km.median is None else round(km.median, 1)} months; number at risk below the axis."
            )
            ylabel = km_ylabel(code, _param_of(blocks_src[code]))
            blocks.append(
                DeferredFigure(  # drawn when the report reads it: replaced per arm in a randomised study (issue 15)
                    id=f"km-{code.lower()}",
                    title=f"Kaplan-Meier plot: {_LABELS[code]}",
                    alt=alt,
                    draw=lambda curves={_LABELS[code]: km}, alt=alt, ylabel=ylabel: km_svg(curves, alt, ylabel=ylabel),
                    footnotes=[footnote_km, "+ = censored."],
                )
            )
    bias_note = (
        "Guarantee-time (immortal-time) bias: patients must survive long enough to respond, so comparing survival by best "
        "response from the start of treatment (the naive row) favours responders even when response has no effect "
        "(Anderson, Cain & Gelber, J Clin Oncol 1983). The landmark analysis (only patients alive and in follow-up at the "
        "landmark, grouped by response by then, time from the landmark) and the time-dependent analyses (Mantel-Byar test; "
        "Cox model with response as a time-dependent covariate) avoid it."
    )
    if os_by is not None:
        ne_notes = [f"NE ({name}): {res.reason}." for name, res in (
            ("naive HR", naive.cox), ("naive log-rank", naive.logrank), ("landmark HR", land.cox),
            ("landmark log-rank", land.logrank), ("time-dependent HR", tdc), ("Mantel-Byar", mb)) if res.reason]
        blocks.append(
            os_by_response_table(
                [naive, land],
                mantel_byar=mb,
                td_cox=tdc,
                scale=1.0,
                footnotes=[
                    *ne_notes,
                    bias_note,
                    f"Responder: {flag} = Y (from {rdate}); landmark {cfg.os_by_response_landmark_months:g} months.",
                    f"Cox models: Wald 95% CI; ties {ties.capitalize()}. Log-rank and Mantel-Byar with the hypergeometric variance.",
                    footnote_km,
                ],
            )
        )
        alt = (
            f"Kaplan-Meier curves of overall survival from the {cfg.os_by_response_landmark_months:g}-month landmark for "
            "responders and non-responders at the landmark, with number at risk."
        )
        blocks.append(
            DeferredFigure(  # drawn when the report reads it: replaced per arm in a randomised study (issue 15)
                id="km-os-landmark",
                title=f"Overall survival by response at the {cfg.os_by_response_landmark_months:g}-month landmark",
                alt=alt,
                draw=lambda groups=land.groups, alt=alt: km_svg(groups, alt, xlabel="Months from landmark",
                                                                ylabel=km_ylabel("OS")),
                footnotes=[bias_note, footnote_km],
            )
        )
    if "TTR" in kms:
        blocks.append(ttr_table(kms["TTR"], blocks_src["TTR"], days_per_month=dpm, footnotes=[footnote_km]))
    ci_label = f"{opts.level * 100:g}% CI: {CI_METHOD_LABELS.get(ci_method, ci_method)}."
    if sub_rows:
        blocks.append(subgroup_table(sub_rows, footnotes=[ci_label, "Responder: confirmed PR or better (IMWG)."]))
        frows = [
            {"label": f"{r['subgroup']} {r['level']}".strip(), "n": r["result"].n, "x": r["result"].x,
             "estimate": r["result"].estimate, "ci": r["result"].ci}
            for r in sub_rows
        ]
        alt = "Forest plot of overall response rate with exact 95% CI by subgroup; dashed line at the overall rate."
        blocks.append(
            Figure(
                id="forest-orr",
                title="Overall response rate by subgroup",
                alt=alt,
                svg=forest_svg(frows, alt, overall=sub_rows[0]["result"].estimate),
                footnotes=[ci_label],
            )
        )
    if unavailable:
        blocks.append(Text(f"Subgroups not shown: ADSL lacks {', '.join(unavailable)} (prior-therapy or response step output)."))
    if bt is not None:
        blocks.append(binomial_test_table(bt, design_source=cfg.binomial_design_source))
    blocks.append(tte_rules_table(rule_rows))
    a.sections.append(Section(id=SECTION_ID, title="Efficacy: time-to-event endpoints", blocks=blocks, order=SECTION_ORDER))
