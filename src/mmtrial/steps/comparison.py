"""Step ``comparison``: experimental vs control in a randomised two-arm trial.

Writes ``results["comparison"]`` (data contract v2) through :func:`mmtrial.stats.twoarm.compare_arms`:
PFS and OS hazard ratios (stratified Cox, ties of the method profile: sas -> Breslow, r -> Efron)
and stratified log-rank p (two-sided; also one-sided when ``[randomisation] sided = 1``), the
unstratified variants, KM medians, event-free rates at the ``[tte] landmark_months`` with their
difference (Greenwood SE, Wald CI), ORR per arm (exact CI) with the stratified Miettinen-Nurminen
difference and the CMH odds ratio; ``comparison.subgroups_PFS`` (PFS hazard ratio by subgroup
with the interaction p, for the forest plot; subgroups from the protocol's ``[forest]``, their
definitions in ``comparison.subgroups_PFS_note``); ``comparison.OS_rpsftm`` (OS adjusted for
crossover, a sensitivity analysis) when ``[randomisation.crossover] allowed`` and ``rpsftm``.

A single-arm protocol: the step does nothing (results unchanged).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
from pydantic import Field

from mmtrial.context import Analysis

if TYPE_CHECKING:  # pragma: no cover
    from mmtrial.protocol.model import Protocol


@dataclass(frozen=True)
class ComparisonOptions:
    """Subgroups of the PFS forest plot (protocol section ``[forest]``; BOSTON, Grosicki 2020, Figure 2 style).

    Options
    -------
    age_cutoff : age subgroups < cut-off vs >= cut-off years (default 65, BOSTON's Figure 2).
    nlines_cutoff : prior-lines subgroups < cut-off vs >= cut-off (default 2: one prior line vs
        more, BOSTON's stratification factor).
    cytogenetic_var : the ADSL high-risk cytogenetics flag shown as a subgroup (default HRCYTOFL).
    refractory_vars : the ADSL refractory flags shown as subgroups (default LENREFFL, PIREFFL).
    """

    age_cutoff: Annotated[int, Field(ge=1, le=120)] = 65
    nlines_cutoff: Annotated[int, Field(ge=2, le=20)] = 2
    cytogenetic_var: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,7}$")] = "HRCYTOFL"
    refractory_vars: tuple[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,7}$")], ...] = ("LENREFFL", "PIREFFL")


def forest_options(p: Protocol) -> ComparisonOptions:
    """The forest-plot subgroup options of the protocol's ``[forest]`` section (defaults when absent)."""
    from pydantic import TypeAdapter

    raw = dict(p.section("forest"))
    opts = TypeAdapter(ComparisonOptions).validate_python(raw)
    return dataclasses.replace(opts, cytogenetic_var=opts.cytogenetic_var.upper(),
                               refractory_vars=tuple(v.upper() for v in opts.refractory_vars))


def forest_footnote(opts: ComparisonOptions) -> str:
    """The subgroup definitions in words, for the forest plot's footnote."""
    refr = ", ".join(opts.refractory_vars) or "none"
    return (f"Subgroups ([forest] of the protocol): age < {opts.age_cutoff} vs >= {opts.age_cutoff} years; "
            f"prior lines < {opts.nlines_cutoff} vs >= {opts.nlines_cutoff}; cytogenetic risk from "
            f"{opts.cytogenetic_var}; refractory flags {refr}; and the randomisation strata and sex.")


_REFRACTORY_LABELS = {"LENREFFL": "Lenalidomide-refractory", "PIREFFL": "PI-refractory",
                      "BTZREFFL": "Bortezomib-refractory", "C38REFFL": "Anti-CD38-refractory",
                      "TCRFL": "Triple-class refractory", "PENTAFL": "Penta-refractory"}


def _same_partition(a: pd.Series, b: pd.Series) -> bool:
    """True when two level series split the subjects into the same groups (labels aside, missing
    as a group of its own): a derived subgroup that only repeats a stratum is shown once."""
    ca = pd.factorize(a.astype(object).fillna("\0"))[0]
    cb = pd.factorize(b.astype(object).fillna("\0"))[0]
    return bool(len(ca) == len(cb) and (ca.max(initial=-1) == cb.max(initial=-1))
                and len(set(zip(ca.tolist(), cb.tolist(), strict=True))) == ca.max(initial=-1) + 1)


def compute_subgroup_levels(adsl: pd.DataFrame, strata: list[str], opts: ComparisonOptions,
                            labels: dict[str, str] | None = None) -> list[tuple[str, str, pd.Series]]:
    """(ADSL variable, subgroup name, level per subject) for every forest-plot subgroup ADSL can give;
    a stratum is named by its suppdm QLABEL (``labels``) when known. The prior-lines subgroup is
    left out when it splits the subjects exactly as a stratum does (BOSTON's "1 vs > 1 prior
    lines" stratum and prior lines < 2 vs >= 2 are one subgroup, Grosicki 2020 Figure 2)."""
    labels = labels or {}
    out: list[tuple[str, str, pd.Series]] = [(s, labels.get(s, s), adsl[s].astype("string")) for s in strata if s in adsl]
    n_strata = len(out)
    if "AGE" in adsl:
        age = pd.to_numeric(adsl["AGE"], errors="coerce")
        c = opts.age_cutoff
        out.append(("AGE", "Age", pd.Series(np.where(age < c, f"<{c}", f">={c}"), index=adsl.index,
                                     dtype="string").where(age.notna())))
    if "SEX" in adsl:
        out.append(("SEX", "Sex", adsl["SEX"].astype("string")))
    if opts.cytogenetic_var in adsl:
        v = adsl[opts.cytogenetic_var].astype("string")
        out.append((opts.cytogenetic_var, "Cytogenetic risk", v.map({"Y": "High", "N": "Standard"}).astype("string")))
    if "NLINES" in adsl:
        nl = pd.to_numeric(adsl["NLINES"], errors="coerce")
        c = opts.nlines_cutoff
        lines = pd.Series(np.where(nl < c, f"<{c}", f">={c}"), index=adsl.index, dtype="string").where(nl.notna())
        if not any(_same_partition(lines, lv) for _, _, lv in out[:n_strata]):
            out.append(("NLINES", "Prior lines", lines))
    for var in opts.refractory_vars:
        if var in adsl:
            v = adsl[var].astype("string")
            out.append((var, _REFRACTORY_LABELS.get(var, var), v.map({"Y": "Yes", "N": "No"}).astype("string")))
    return out


def compute_subgroups_pfs(adsl: pd.DataFrame, adtte: pd.DataFrame, *, experimental: str, strata: list[str],
                          ties: str, level: float, opts: ComparisonOptions,
                          labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """PFS hazard ratio (experimental vs control) by subgroup, with the interaction p
    (:func:`mmtrial.stats.twoarm.compute_subgroup_hazard_ratios`), ITT population."""
    from mmtrial.stats.twoarm import compute_subgroup_hazard_ratios

    pfs = adtte.loc[adtte["PARAMCD"] == "PFS", ["USUBJID", "AVAL", "CNSR"]]
    itt = adsl.loc[adsl["ITTFL"].eq("Y").to_numpy()]
    d = itt.merge(pfs, on="USUBJID", how="inner")
    if d.empty:
        return []
    t = d["AVAL"].to_numpy(float)
    e = (d["CNSR"].to_numpy() == 0).astype(float)
    g = (d["ARMCD"].astype("string").str.upper() == experimental.upper()).fillna(False).to_numpy(dtype=int)
    rows: list[dict[str, Any]] = []
    for var, name, lv in compute_subgroup_levels(d, strata, opts, labels):  # a handful of subgroups
        if lv.dropna().nunique() < 1:
            continue
        levels = lv.astype(object).where(lv.notna(), None).to_numpy()
        with warnings.catch_warnings():  # a level with no events in one arm: reported as not estimable
            warnings.simplefilter("ignore")
            tab, p_int = compute_subgroup_hazard_ratios(t, e, g, levels, ties=ties, level=level)  # type: ignore[arg-type]
        for r in tab.itertuples(index=False):
            m = (levels == r.LEVEL)
            ev = (int(e[m & (g == 1)].sum()), int(e[m & (g == 0)].sum()))
            row = {"subgroup": name, "variable": var, "level": str(r.LEVEL), "n": int(r.N), "events": int(r.EVENTS),
                   "events_by_arm": list(ev), "hr": float(r.HR), "hr_ci": [float(r.LCL), float(r.UCL)],
                   "p_interaction": float(p_int)}
            if min(ev) == 0:  # the Cox estimate diverges (monotone likelihood): no hazard ratio
                row.update(hr=float("nan"), hr_ci=[float("nan"), float("nan")],
                           not_estimable="no events in one arm within this level")
            elif r.REASON:  # e.g. monotone likelihood: every event of one arm after the other arm left
                row.update(hr=float("nan"), hr_ci=[float("nan"), float("nan")], not_estimable=str(r.REASON))
            rows.append(row)
    return rows


def compute_rpsftm_inputs(adsl: pd.DataFrame, adtte: pd.DataFrame, *, experimental: str,
                          cutoff: pd.Timestamp | None, add_one: bool) -> pd.DataFrame:
    """Per ITT subject with an OS record: time, event, arm, time on the experimental drug and the
    administrative censoring time (days), for :func:`mmtrial.stats.rpsftm.fit_rpsftm`.

    Time on treatment ("treatment group" definition, NICE DSU TSD 16): the whole follow-up in the
    experimental arm; from the crossover date (CROSSDT) to the end of follow-up for a control
    switcher; 0 otherwise. Administrative censoring time: randomisation to the data cut-off
    (the cut-off in force, else the last OS date of the study).
    """
    os_ = adtte.loc[adtte["PARAMCD"] == "OS", ["USUBJID", "AVAL", "CNSR", "ADT", "STARTDT"]]
    cols = ["USUBJID", "ARMCD", "CROSSDT"] if "CROSSDT" in adsl else ["USUBJID", "ARMCD"]
    d = adsl.loc[adsl["ITTFL"].eq("Y").to_numpy(), cols].merge(os_, on="USUBJID", how="inner")
    arm = (d["ARMCD"].astype("string").str.upper() == experimental.upper()).fillna(False).to_numpy(dtype=int)
    t = d["AVAL"].to_numpy(float)
    adt = pd.to_datetime(d["ADT"])
    cross = pd.to_datetime(d["CROSSDT"]) if "CROSSDT" in d else pd.Series(pd.NaT, index=d.index)
    after = (adt - cross).dt.days.to_numpy(float) + (1.0 if add_one else 0.0)
    on = np.where(arm == 1, t, np.where(np.isfinite(after), np.clip(after, 0.0, t), 0.0))
    cut = cutoff if cutoff is not None else adt.max()
    cens = (pd.Timestamp(cut) - pd.to_datetime(d["STARTDT"])).dt.days.to_numpy(float) + (1.0 if add_one else 0.0)
    return pd.DataFrame({"USUBJID": d["USUBJID"].to_numpy(), "time": t, "event": (d["CNSR"].to_numpy() == 0).astype(int),
                         "arm": arm, "on_time": on, "censor_time": np.maximum(cens, t)})


def stratum_labels(suppdm: pd.DataFrame | None) -> dict[str, str]:
    """QNAM -> QLABEL of suppdm (first label per factor)."""
    if suppdm is None or not {"QNAM", "QLABEL"} <= set(suppdm.columns):
        return {}
    first = suppdm.dropna(subset=["QLABEL"]).drop_duplicates("QNAM")
    return dict(zip(first["QNAM"].astype(str).str.upper(), first["QLABEL"].astype(str), strict=True))


def run(a: Analysis) -> None:
    if not a.protocol.is_randomised:
        return
    rnd = a.protocol.randomisation
    adsl = a.adam.get("adsl")
    adtte = a.adam.get("adtte")
    if adsl is None or "ARMCD" not in adsl:
        return
    from mmtrial.stats.proportion import compute_proportion
    from mmtrial.stats.survival import kaplan_meier, km_options
    from mmtrial.stats.twoarm import (
        compare_arms,
        compute_km_rate_difference,
        compute_logrank_one_sided,
    )
    from mmtrial.steps.tte import TteConfig, _profile, tte_section

    cfg = TteConfig.model_validate(tte_section(a))
    profile = _profile(a, cfg)
    ties = cfg.cox_ties or ("breslow" if profile == "sas" else "efron")
    level, dpm = cfg.level, cfg.days_per_month
    exp_, ctl = rnd.experimental, rnd.control
    strata = list(rnd.strata)
    if adtte is None:
        adtte = pd.DataFrame({"USUBJID": pd.Series(dtype=str), "PARAMCD": pd.Series(dtype=str),
                              "AVAL": pd.Series(dtype=float), "CNSR": pd.Series(dtype=int)})
    comp = compare_arms(adsl, adtte, experimental=exp_, control=ctl, strata=strata, ties=ties,  # type: ignore[arg-type]
                        km_profile=profile, level=level, days_per_month=dpm)
    comp["sided"] = rnd.sided
    comp["labels"] = {exp_: a.protocol.arm_label(exp_), ctl: a.protocol.arm_label(ctl)}
    itt = adsl.loc[adsl["ITTFL"].eq("Y").to_numpy()]
    kmo = km_options(profile, **({"level": level} if level != 0.95 else {}))
    for p in ("PFS", "OS"):
        if "hr" not in comp.get(p, {}):
            continue
        d = itt[["USUBJID", "ARMCD", *strata]].merge(adtte.loc[adtte["PARAMCD"] == p], on="USUBJID")
        t = d["AVAL"].to_numpy(float)
        e = (d["CNSR"].to_numpy() == 0).astype(int)
        g = (d["ARMCD"].astype("string").str.upper() == exp_.upper()).fillna(False).to_numpy(dtype=int)
        from mmtrial.stats.twoarm import combine_strata

        s = combine_strata(*(d[c].astype("string").fillna("<missing>").to_numpy() for c in strata)) if strata else None
        if rnd.sided == 1:
            comp[p]["p_logrank_one_sided"] = compute_logrank_one_sided(t, e, g, s)
            comp[p]["unstratified"]["p_logrank_one_sided"] = compute_logrank_one_sided(t, e, g, None)
        km1 = kaplan_meier(t[g == 1] / dpm, e[g == 1], options=kmo)
        km0 = kaplan_meier(t[g == 0] / dpm, e[g == 0], options=kmo)
        comp[p]["landmarks"] = [r.as_dict() | {"unit": "months"} for r in
                                compute_km_rate_difference(km1, km0, cfg.landmark_months, level=level)]
    if "x" in comp.get("ORR", {}):
        ci_method = cfg.proportion_ci or a.protocol.methods.get("proportion_ci", "clopper-pearson")
        comp["ORR"]["rate"] = {}
        for arm in (exp_, ctl):
            pr = compute_proportion(comp["ORR"]["x"][arm], comp["ORR"]["n"][arm], ci_method, level)
            comp["ORR"]["rate"][arm] = {"estimate": pr.estimate, "ci": list(pr.ci), "method": ci_method}
    forest = forest_options(a.protocol)
    if "PFS" in set(adtte["PARAMCD"]):
        comp["subgroups_PFS"] = compute_subgroups_pfs(adsl, adtte, experimental=exp_, strata=strata, ties=ties,
                                                      level=level, opts=forest,
                                                      labels=stratum_labels(a.study.get("suppdm")))
        comp["subgroups_PFS_note"] = forest_footnote(forest)
    if rnd.crossover.allowed and rnd.crossover.rpsftm and "OS" in set(adtte["PARAMCD"]):
        comp["OS_rpsftm"] = _rpsftm(a, adsl, adtte, exp_, strata, ties, level, cfg.add_one)
    a.results["comparison"] = comp
    a.methods["comparison"] = {
        "experimental": exp_, "control": ctl, "strata": strata, "population": "ITT (ITTFL = Y), as randomised",
        "hazard_ratio": f"Cox proportional hazards stratified by {', '.join(strata) or 'nothing'}; ties {ties}; Wald CI",
        "logrank": "stratified log-rank, hypergeometric variance; p two-sided"
                   + ("; one-sided p (benefit of the experimental arm) also given" if rnd.sided == 1 else ""),
        "landmark_rates": "difference of Kaplan-Meier estimates, Greenwood SE, Wald CI",
        "orr": "stratified Miettinen-Nurminen difference (Mantel-Haenszel weights); Mantel-Haenszel odds ratio "
               "(Robins-Breslow-Greenland CI); CMH test without continuity correction",
        "subgroups": "unstratified Cox HR within each level; interaction: Wald test of arm x subgroup",
        "subgroup_definitions": dataclasses.asdict(forest),
        "crossover": {"allowed": rnd.crossover.allowed, "drugs": list(rnd.crossover.drugs),
                      "censor_os": rnd.crossover.censor_os, "rpsftm": rnd.crossover.rpsftm,
                      "recensor": rnd.crossover.recensor},
    }


def _rpsftm(a: Analysis, adsl: pd.DataFrame, adtte: pd.DataFrame, experimental: str, strata: list[str],
            ties: str, level: float, add_one: bool) -> dict[str, Any]:
    from mmtrial.stats.rpsftm import fit_rpsftm
    from mmtrial.stats.twoarm import combine_strata
    from mmtrial.submission import data_cutoff

    cut = data_cutoff(a)
    d = compute_rpsftm_inputs(adsl, adtte, experimental=experimental,
                              cutoff=pd.Timestamp(cut) if cut is not None else None, add_one=add_one)
    s = None
    if strata:
        st = adsl.set_index("USUBJID").loc[d["USUBJID"], strata]
        s = combine_strata(*(st[c].astype("string").fillna("<missing>").to_numpy() for c in strata))
    rnd = a.protocol.randomisation
    res = fit_rpsftm(d["time"], d["event"], d["arm"], d["on_time"], d["censor_time"], strata=s,
                     recensor=rnd.crossover.recensor, level=level, ties=ties,
                     treatment_time="experimental arm: whole follow-up; control switchers: from the crossover date")
    out = res.as_dict()
    out["hr"], out["hr_ci"] = res.hr_adjusted, list(res.hr_adjusted_ci)
    out["label"] = "sensitivity analysis: OS adjusted for crossover (RPSFTM)"
    out["cutoff"] = cut.isoformat() if cut is not None else "last OS date in the data"
    return out
