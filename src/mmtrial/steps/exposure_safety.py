"""Step ``exposure_safety`` (issue 6): ADEX, ADLB CTCAE grades, ADAE, dose-rule checks, and
the disposition, exposure and safety sections of the report.

Protocol sections read: ``[exposure]``, ``[safety]``, ``[dose_rules]`` (docs/safety.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mmtrial.context import Analysis
from mmtrial.derive.adae import TeaeOptions, derive_adae
from mmtrial.derive.doserules import (
    DoseRule,
    DoseRuleOptions,
    DoseRuleSet,
    derive_rule_checks,
    derive_rule_events,
)
from mmtrial.derive.exposure import ExposureOptions, derive_adex, derive_exposure_intervals
from mmtrial.derive.toxgrade import AdlbOptions, GradingCriteria, GradingPolicy, derive_adlb
from mmtrial.figures.swimmer import compute_swimmer_data, plot_swimmer
from mmtrial.protocol.model import Protocol
from mmtrial.report.model import DeferredFigure, Section, Text
from mmtrial.tables import exposure as tx
from mmtrial.tables import safety as ts


@dataclass(frozen=True)
class SafetyOptions:
    """Protocol ``[safety]`` section.

    Options
    -------
    teae_window_days : TEAE window after the last dose (default 30).
    missing_onset : AE without onset date: ``"emergent"`` (default) or ``"not_emergent"``.
    common_ae_threshold : AET04_PI cut-off (default 0.10, ">= 10% of patients").
    ctcae : criteria file in mmtrial/data (default ``ctcae_v5``).
    hyponatremia_assume_symptomatic : grade 125-129 mmol/L as 3 (True) or 2 (default False).
    creatinine_baseline_arm : ``above_uln`` (default), ``any`` or ``off``.
    shift_tests : tests with an LBT14 shift table and a row in LBT15 (shifts to grade 3-4).
    swimmer_max_subjects : lanes in the swimmer plot (default 60).
    """

    teae_window_days: int = 30
    missing_onset: str = "emergent"
    common_ae_threshold: float = 0.10
    ctcae: str = "ctcae_v5"
    hyponatremia_assume_symptomatic: bool = False
    creatinine_baseline_arm: str = "above_uln"
    shift_tests: tuple[str, ...] = ("PLAT", "NEUT", "HGB", "SODIUM", "CREAT", "WBC", "LYM")
    swimmer_max_subjects: int = 60
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.common_ae_threshold <= 1:
            raise ValueError(f"[safety] common_ae_threshold: allowed (0, 1]; got {self.common_ae_threshold}")
        if self.extra:
            raise ValueError(f"[safety]: unknown keys {sorted(self.extra)}")

    @classmethod
    def from_protocol(cls, p: Protocol) -> SafetyOptions:
        raw = dict(p.section("safety"))
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kw = {k: v for k, v in raw.items() if k in known}
        if "shift_tests" in kw:
            kw["shift_tests"] = tuple(kw["shift_tests"])
        return cls(**kw, extra={k: v for k, v in raw.items() if k not in known})

    def grading_policy(self) -> GradingPolicy:
        return GradingPolicy(
            assume=frozenset({"symptomatic"}) if self.hyponatremia_assume_symptomatic else frozenset(),
            creatinine_baseline_arm=self.creatinine_baseline_arm,  # type: ignore[arg-type]
        )


def exposure_options(p: Protocol) -> ExposureOptions:
    raw = dict(p.section("exposure"))
    plain = ("duration_end", "min_interruption_days", "cycle_source", "delay_is_interruption", "min_delay_days",
             "dose_change_tolerance", "planned_last_cycle")
    known = {"frequencies", *plain}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"[exposure]: unknown keys {sorted(unknown)}; allowed {sorted(known)}")
    kw: dict[str, Any] = {"cycle_length_days": p.regimen.cycle_length_days}
    if "frequencies" in raw:
        kw["frequencies"] = {str(k).upper(): tuple(int(x) for x in v) for k, v in raw["frequencies"].items()}
    for k in plain:
        if k in raw:
            kw[k] = raw[k]
    return ExposureOptions(**kw)


def drug_ladder_for(p: Protocol):
    """``Protocol.ladder_for(drug, cycle)`` (per-drug ladders), or ``None`` for a protocol model
    without it (the study drug's ``[dose_ladder]`` is then the only ladder)."""
    f = getattr(p, "ladder_for", None)
    if not callable(f):
        return None
    names = {n.upper() for n in p.regimen.drug_names()}

    def ladder_for(drug: str, cycle: int):
        return f(drug, cycle) if drug.upper() in names else []

    return ladder_for


def exposure_notes(p: Protocol, eo: ExposureOptions, cycle_source: str, adex: pd.DataFrame) -> list[str]:
    """The rules behind the exposure table, printed as its footnotes (docs/exposure.md)."""
    reg = p.regimen
    notes = [{"dose_period": "Duration = first dose to the end of the period covered by the last dose "
                             "(the day before the next planned dose), inclusive, in weeks.",
              "interval_end": "Duration = first dose to the end of the last dosing interval (EXENDT), "
                              "inclusive, in weeks.",
              "last_dose": "Duration = first dose to last dose, inclusive, in weeks."}[eo.duration_end]]
    lens = sorted({ph.cycle_length_days for ph in reg.effective_phases()})
    cyc_len = " or ".join(f"{n}" for n in lens) + "-day"
    if cycle_source == "INFERRED":
        notes.append(f"Cycles ({cyc_len}, as the regimen plans them) inferred from dosing: cycle 1 starts at "
                     "the first dose; a new cycle starts at the first dose on or after the planned cycle "
                     "length since the previous cycle start; a later start is a delay.")
    else:
        notes.append(f"Cycles from ex {'EXCYCLE' if cycle_source == 'EXCYCLE' else 'VISIT'}; a cycle number "
                     "skipped is a missed cycle; a cycle starting after the previous start + its planned "
                     "length is delayed.")
    notes.append("Planned weekly dose = planned dose of the cycles the drug was taken in / their planned "
                 "weeks (averaged over the cycle, planned rest included"
                 + ("; the last cycle only up to the end of treatment" if eo.planned_last_cycle == "treated_days"
                    else "; the last cycle whole") + "). Relative dose intensity = (cumulative "
                 "dose / weeks from the start of the drug's first cycle to the end of treatment) / planned "
                 "weekly dose.")
    notes.append("Interruption: days of a dosing window without the planned dose (each dose covers the days "
                 "up to the next planned dose); the planned rest of a cycle is not an interruption"
                 + ("; days delaying a cycle start count as interruption days too (protocol option)."
                    if eo.delay_is_interruption else "; a delayed cycle start is counted as a delay, not an "
                    "interruption."))
    notes.append(f"Reduction: a dose lower than the previous one by more than {eo.dose_change_tolerance:.0%} "
                 "relative to the dose planned for that cycle and day (planned step-up doses and changes of "
                 "phase are not modifications).")
    units = {d.unit for ph in reg.effective_phases() for d in ph.drugs}
    if "mg/m2" in units:
        f = {"mosteller": "Mosteller (sqrt(height cm x weight kg / 3600))",
             "dubois": "DuBois (0.007184 x height cm^0.725 x weight kg^0.425)"}[reg.bsa_formula]
        notes.append(f"mg/m2 doses: body-surface area by {f} from vs HEIGHT and WEIGHT, the last "
                     "measurement on or before each planned dose.")
    if "mg/kg" in units:
        notes.append("mg/kg doses: vs WEIGHT, the last measurement on or before each planned dose.")
    return notes


#: Bundled dose-modification tables by study drug (mmtrial/data): the XPOVIO table is STORM's.
BUNDLED_DOSE_RULES: dict[str, str] = {"SELINEXOR": "dose_rules.toml", "POMALIDOMIDE": "dose_rules_pomalidomide.toml"}


class DoseRulesConfig(BaseModel):
    """Protocol ``[dose_rules]`` section: the study drug's dose-modification table and how it is applied."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field("", description="the study drug's rule table (TOML, as data/dose_rules.toml; a path "
                                      "relative to the protocol file); empty: the bundled table for the study "
                                      "drug when there is one (SELINEXOR: XPOVIO Table 2; POMALIDOMIDE: POMALYST "
                                      "Table 1), else no rule checks")
    action_window_days: int = Field(7, ge=0, description="the dose in force this many days after the finding "
                                                         "is the action taken")
    trigger: Literal["onset", "every"] = Field("onset", description="a lab rule fires at the onset of each "
                                                                    "episode or at every qualifying value")
    check_recovery: bool = Field(True, description="flag restarts made before the recovery the rule requires")
    include_unverified: bool = Field(False, description="also apply rules tagged U (not verified against the "
                                                        "label); off by default and listed as off in the report")


def dose_rule_options(p: Protocol) -> tuple[DoseRuleOptions, DoseRuleSet]:
    """The ``[dose_rules]`` options and the rule table in force (rules tagged U dropped unless
    ``include_unverified``; the dropped ones are in ``rules_off(p)``)."""
    ro, rules, _ = _dose_rules(p)
    return ro, rules


def rules_off(p: Protocol) -> tuple[DoseRule, ...]:
    """Rules of the table not applied because they are unverified (tag U) and not switched on."""
    return _dose_rules(p)[2]


def _dose_rules(p: Protocol) -> tuple[DoseRuleOptions, DoseRuleSet, tuple[DoseRule, ...]]:
    cfg = DoseRulesConfig.model_validate(p.section("dose_rules"))
    ro = DoseRuleOptions(action_window_days=cfg.action_window_days, trigger=cfg.trigger,
                         check_recovery=cfg.check_recovery)
    drug = p.regimen.study_drug.upper()
    if cfg.file:
        from pathlib import Path

        path = Path(cfg.file)
        if not path.is_absolute() and p.source_path:
            path = Path(p.source_path).parent / path
        if not path.exists():
            raise FileNotFoundError(f"file = {cfg.file!r}: no such dose-rule table ({path})")
        table = DoseRuleSet.load(path)
    elif drug in BUNDLED_DOSE_RULES:
        from importlib import resources
        from pathlib import Path

        table = DoseRuleSet.load(Path(str(resources.files("mmtrial.data").joinpath(BUNDLED_DOSE_RULES[drug]))))
    else:
        return ro, DoseRuleSet(version="none", source=f"no dose-modification rules for {drug} in the protocol "
                               "([dose_rules] file)", rules=()), ()
    keep = tuple(r for r in table.rules if cfg.include_unverified or r.tag == "C")
    off = tuple(r for r in table.rules if r not in keep)
    return ro, dataclasses.replace(table, rules=keep), off


#: The lb variables :func:`~mmtrial.derive.toxgrade.derive_adlb` reads (the step hands it only these;
#: tests/steps/test_exposure_safety_step.py checks that ADLB is the same as from every variable).
ADLB_LB_VARIABLES: tuple[str, ...] = ("USUBJID", "LBTESTCD", "LBCAT", "LBSTRESN", "LBSTRESU", "LBSTNRLO",
                                      "LBSTNRHI", "LBDT", "LBSEQ", "ROWNUM")


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _exposure_by_arm(p: Protocol, ex: pd.DataFrame, adsl: pd.DataFrame, adae: pd.DataFrame,
                     eo: ExposureOptions, vs: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ADEXLVL/ADEX of a randomised trial (derive/exposure.py ``derive_exposure_by_arm``): the arm
    received is ACTARMCD when it is an arm of the protocol, else the randomised ARMCD."""
    from mmtrial.derive.exposure import derive_exposure_by_arm

    codes = {c.upper() for c in p.arms}
    act = adsl["ACTARMCD"].astype("string").str.upper() if "ACTARMCD" in adsl else adsl["ARMCD"].astype("string")
    arm = act.where(act.isin(codes).fillna(False), adsl["ARMCD"].astype("string").str.upper())
    arm_of = pd.Series(arm.to_numpy(), index=adsl["USUBJID"].astype(object).to_numpy())
    per_arm = {c: p.model_copy(update={"regimen": p.regimen_for(c)}) for c in p.arms}
    return derive_exposure_by_arm(ex, adsl, arm_of=arm_of, regimens={c: q.regimen for c, q in per_arm.items()},
                                  ladders={c: q.dose_ladder for c, q in per_arm.items()},
                                  ladder_fors={c: drug_ladder_for(q) for c, q in per_arm.items()},
                                  options=eo, vs=vs, adae=adae)


def run(a: Analysis) -> None:
    """Derive ADAE, ADLB, ADEX/ADEXLVL, dose-rule checks; add results, methods and sections."""
    p = a.protocol
    adsl = a.adam["adsl"]
    so = SafetyOptions.from_protocol(p)
    eo = exposure_options(p)
    ro, rules = dose_rule_options(p)
    criteria = GradingCriteria.load(so.ctcae)
    policy = so.grading_policy()
    study_drug = p.regimen.study_drug.upper()

    # ADLB first, and lb not read after it: only the variables derive_adlb reads are held while it
    # runs (shared, not copied), lb itself is narrowed to the records later steps read before it
    # runs (the pipeline's plan, Study.last_read), and the exposure derivations, dose rules and
    # safety tables run without lb's records (issue 15: at 100,000 subjects the step peaked at
    # 7.7 GB in the dose rules with lb held, derive_adlb at 7.2 GB after the exposure derivations)
    lb = a.study.get("lb")
    if lb is None:
        lb = _empty(["USUBJID", "LBTESTCD", "LBSTRESN", "LBSTRESU", "LBDT"])
    lb = lb[[c for c in lb.columns if c in ADLB_LB_VARIABLES]]
    a.study.last_read("lb")
    adlb = derive_adlb(lb, adsl, criteria=criteria,
                       options=AdlbOptions(on_treatment_window_days=so.teae_window_days, policy=policy))
    del lb
    ae = a.study.get("ae")
    if ae is None:
        ae = _empty(["USUBJID", "AEDECOD", "AEBODSYS", "AESTDT", "AETOXGR"])
    adae = derive_adae(ae, adsl, options=TeaeOptions(window_days=so.teae_window_days,
                                                    missing_onset=so.missing_onset))  # type: ignore[arg-type]
    del ae
    a.study.last_read("ae")  # the pipeline's plan for a domain after its last reader, done now (issue 15)
    ex = a.study["ex"]
    if p.is_randomised and "ARMCD" in adsl:  # each subject against the regimen of the arm received
        adexlvl, adex = _exposure_by_arm(p, ex, adsl, adae, eo, a.study.get("vs"))
        a.issues.extend(adexlvl.attrs.get("issues", []))
    else:
        adexlvl = derive_exposure_intervals(ex, ladder=p.dose_ladder, regimen=p.regimen, options=eo,
                                            end_fallback=adsl, vs=a.study.get("vs"), ladder_for=drug_ladder_for(p))
        a.issues.extend(adexlvl.attrs.get("issues", []))
        adex = derive_adex(adexlvl, adsl, regimen=p.regimen, ladder=p.dose_ladder, adae=adae, options=eo)
    exp_info = adexlvl.attrs.get("exposure", {})
    adexlvl.attrs = {}
    adexcyc = exp_info.get("cycles")
    cycle_source = str(exp_info.get("cycle_source", "INFERRED"))
    a.study.last_read("vs")
    events = derive_rule_events(adlb, adae, rules, options=ro)
    checks = derive_rule_checks(events, adexlvl, adlb, rules, study_drug=study_drug,
                                ladder_levels=[lvl.level for lvl in p.dose_ladder.levels], options=ro)
    a.adam["adae"] = adae
    a.adam["adlb"] = adlb
    a.adam["adex"] = adex
    a.adam["adexlvl"] = adexlvl
    if adexcyc is not None:
        a.adam["adexcyc"] = adexcyc
    a.adam["adexchk"] = checks

    # ---- methods and footnotes -------------------------------------------------------------
    saf_n = int((adsl["SAFFL"] == "Y").sum())
    pop_note = f"Safety population: {p.populations.safety} (N = {saf_n})."
    teae_note = (f"Treatment-emergent: onset from the first dose to {so.teae_window_days} days after "
                 "the last dose; AE grades are the investigator's CTCAE v5.0 grades.")
    # the criteria's name already ends "(CTCAE)": name, then version, with no nested brackets
    ctcae_note = f"Laboratory grades: NCI {criteria.name} v{criteria.version}."
    grading_notes = policy.describe()
    a.methods["safety"] = {
        "population": p.populations.safety,
        "teae_window_days": so.teae_window_days,
        "teae_missing_onset": so.missing_onset,
        "ctcae_version": criteria.version,
        "ctcae_file": so.ctcae,
        "grading_policy": grading_notes,
        "baseline": "last non-missing value on or before the first dose",
        "worst_grade": "highest grade after the first dose up to last dose + TEAE window",
        "common_ae_threshold": so.common_ae_threshold,
        "dose_rules": {"version": rules.version, "source": rules.source,
                       "action_window_days": ro.action_window_days, "trigger": ro.trigger,
                       "check_recovery": ro.check_recovery,
                       "unconfirmed_rules": [r.id for r in rules.rules if r.tag == "U"],
                       "rules_off": [r.id for r in rules_off(p)]},
    }
    a.methods["exposure"] = {
        "study_drug": study_drug,
        "dose_ladder": p.dose_ladder.source,
        "frequencies": {k: list(v) for k, v in eo.frequencies.items()},
        "duration_end": eo.duration_end,
        "min_interruption_days": eo.min_interruption_days,
        "cycle_lengths_days": sorted({ph.cycle_length_days for ph in p.regimen.effective_phases()}),
        "cycle_source": cycle_source,
        "cycle_source_option": eo.cycle_source,
        "delay_is_interruption": eo.delay_is_interruption,
        "min_delay_days": eo.min_delay_days,
        "dose_change_tolerance": eo.dose_change_tolerance,
        "planned_last_cycle": eo.planned_last_cycle,
        "bsa_formula": p.regimen.bsa_formula,
        "planned_weekly_dose": "planned dose of the drug's cycles (Regimen.schedule, step-up doses "
                               "included, body-size doses from vs) / their planned weeks; the last "
                               "cycle per planned_last_cycle",
        "relative_dose_intensity": "(cumulative dose / weeks from the drug's first cycle start to the "
                                   "end of treatment) / planned weekly dose",
        "interruption": "days of a dosing window not covered by a dose (each dose covers up to the next "
                        "planned dose); planned rest is not an interruption",
        "delay": "a cycle starting after the previous start + its planned length",
        "reduction": "a dose lower than the previous one relative to the plan in force",
    }
    exp_notes = [pop_note, *exposure_notes(p, eo, cycle_source, adex)]
    rule_notes = [
        pop_note,
        f"Rules: {rules.version}. Tag C = confirmed in a retrieved copy of the label; tag U = "
        "not yet verified against the label (implemented as data; verify before relying on it).",
        f"Action taken = the study-drug dose in force {ro.action_window_days} days after the "
        "finding (or the change that follows it); lab rules fire "
        + ("at the onset of each episode." if ro.trigger == "onset" else "at every qualifying value."),
        "Restart expected at one dose level lower than the level in force at the finding; below "
        "the last level of the ladder the label calls for permanent discontinuation.",
    ]
    if rules_off(p):
        rule_notes.append("Not applied (tag U: not verified against the label; [dose_rules] include_unverified "
                          "= true turns them on): " + "; ".join(f"{r.id} ({r.reaction})" for r in rules_off(p)) + ".")
    saf_notes = [pop_note, teae_note]
    lab_notes = [pop_note, ctcae_note, *grading_notes]

    # ---- sections -------------------------------------------------------------------------
    drugs = [study_drug, *sorted(set(adex["EXTRT"]) - {study_drug})]
    a.sections.append(Section(id="disposition", title="Patient disposition", order=15, blocks=[
        ts.table_disposition(adsl, footnotes=[pop_note]),
    ]))
    seg, marks = compute_swimmer_data(adexlvl, adsl, study_drug=study_drug, adae=adae,
                                      adrs=a.adam.get("adrs"), max_subjects=so.swimmer_max_subjects)
    labels = {lvl.level: lvl.label for lvl in p.dose_ladder.levels}
    n_lanes = seg["USUBJID"].nunique() if len(seg) else 0
    a.sections.append(Section(id="exposure", title="Exposure and dose modifications", order=30, blocks=[
        tx.table_exposure(adex, adsl, drugs=drugs, footnotes=exp_notes),
        tx.table_modification_reasons(adexlvl, adsl, study_drug=study_drug, footnotes=[pop_note]),
        # drawn when the report reads it: a randomised study's report replaces it with one per arm (issue 15)
        DeferredFigure(id="mmtrial-F02", title=f"{study_drug.title()} dose level over time (swimmer plot)",
               alt=(f"Swimmer plot of {n_lanes} patients: horizontal bars show weeks on "
                    f"{study_drug.title()} coloured by dose level, gaps are interruptions; markers "
                    "show grade 3 or higher adverse events, first response of PR or better, "
                    "progression and death."),
               draw=lambda: plot_swimmer(seg, marks, ladder_labels=labels),
               footnotes=[f"Up to {so.swimmer_max_subjects} patients shown (responders "
                                   "first, then the longest treated), ordered by duration."]),
        tx.table_dose_rule_summary(checks, rules, adsl, footnotes=rule_notes),
        tx.listing_dose_rule_deviations(checks, footnotes=rule_notes),
    ]))
    blocks: list = [
        ts.table_teae_overview(adae, adsl, footnotes=saf_notes),
        ts.table_ae_by_soc_pt(adae, adsl, footnotes=saf_notes),
        ts.table_common_ae(adae, adsl, threshold=so.common_ae_threshold, footnotes=saf_notes),
        ts.table_ae_by_soc_pt(adae, adsl, footnotes=saf_notes, id="STF-T10",
                              title="Serious treatment-emergent adverse events by system organ "
                              "class and preferred term", subset=adae["AESERFL"] == "Y"),
        ts.table_ae_actions(adae, adsl, footnotes=saf_notes),
        ts.table_deaths(adsl, adae, window_days=so.teae_window_days, footnotes=[pop_note]),
        ts.table_lab_worst_grade(adlb, adsl, footnotes=lab_notes),
        ts.table_lab_vs_ae(adlb, adae, adsl, ae_terms={t.paramcd: t.ae_terms for t in criteria.terms},
                           footnotes=[*lab_notes, teae_note]),
    ]
    for pc in so.shift_tests:
        t = ts.table_lab_shift(adlb, adsl, pc, footnotes=lab_notes)
        if t is not None:
            blocks.append(t)
    t15 = ts.table_lab_shift_to_grade34(adlb, adsl, so.shift_tests, footnotes=lab_notes)
    if t15 is not None:
        blocks.append(t15)
    if a.study.synthetic:
        blocks.insert(0, Text("Synthetic data: these tables describe a simulated study."))
    a.sections.append(Section(id="safety", title="Safety", order=60, blocks=blocks))

    # ---- results.json ---------------------------------------------------------------------
    a.results["safety"] = summarise_safety(adae, adlb, adsl, adex, checks, criteria=criteria,
                                           study_drug=study_drug, window_days=so.teae_window_days)


def summarise_safety(adae, adlb, adsl, adex, checks, *, criteria: GradingCriteria, study_drug: str,
                     window_days: int) -> dict[str, Any]:
    """The ``safety`` part of results.json (data contract: per PT any grade and grade >= 3;
    lab-derived worst grades per CTCAE term; exposure, disposition, deaths, rule deviations)."""
    saf = ts.safety_population(adsl)
    n = len(saf)
    te = ts.teae(adae, adsl, ["USUBJID", "AEDECOD", "AEBODSYS", "ATOXGR", "AESERFL"])
    w = ts.worst_grade_per_subject_pt(te) if len(te) else te.assign(_G=[])
    per_pt = w.assign(ANY=1, G3=(w["_G"] >= 3).astype(int)).groupby("AEDECOD").agg(
        soc=("AEBODSYS", "first"), any_grade=("ANY", "sum"), grade_3_plus=("G3", "sum"))
    per_pt = per_pt.sort_values(["any_grade"], ascending=False)
    by_pt = {str(k): {"soc": None if pd.isna(soc) else str(soc), "any_grade": int(n_any), "grade_3_plus": int(n_g3)}
             for k, soc, n_any, n_g3 in zip(per_pt.index, per_pt["soc"], per_pt["any_grade"], per_pt["grade_3_plus"],
                                             strict=True)}  # columns, not a Series per row (iterrows)
    wl = ts.worst_lab_grades(adlb, adsl)
    labs: dict[str, Any] = {}
    for t in criteria.terms:
        d = wl.loc[wl["PARAMCD"] == t.paramcd]
        if d.empty:
            continue
        g = d["ATOXGR"].astype(float)
        labs[t.term] = {"paramcd": t.paramcd, "n": len(d),
                        **{f"grade_{k}": int((g == k).sum()) for k in (0, 1, 2, 3, 4)},
                        "grade_3_4": int((g >= 3).sum()), "any_grade": int((g >= 1).sum())}
    eot = saf.get("EOTSTT", pd.Series(pd.NA, index=saf.index)).astype("string").str.upper()
    dth = (saf.get("DTHFL", pd.Series(pd.NA, index=saf.index)).astype("string").str.upper() == "Y").fillna(False)
    reas = saf.get("DCTREAS", pd.Series(pd.NA, index=saf.index)).astype("string").str.upper().fillna("NOT RECORDED")
    disc = (eot == "DISCONTINUED").fillna(False)
    eos = saf.get("EOSSTT", pd.Series(pd.NA, index=saf.index)).astype("string").str.upper()
    fu = disc & ~dth & ~eos.isin(["DISCONTINUED", "COMPLETED"]).fillna(False)
    deaths = ts.compute_death_causes(adsl, adae)  # the same rule as the deaths table (DTHT01)
    fatal = adae.loc[adae["AEFATFL"] == "Y"]
    gov = checks.loc[checks["GOVFL"] == "Y"] if len(checks) else checks
    dev = gov.loc[gov["DEVFL"] == "Y"] if len(gov) else gov
    return {
        "population": "safety",
        "n": n,
        "ctcae_version": criteria.version,
        "teae_window_days": window_days,
        "patients_with_teae": int(te["USUBJID"].nunique()),
        "patients_with_grade_3_plus_teae": int(te.loc[te["ATOXGR"] >= 3, "USUBJID"].nunique()),
        "patients_with_serious_teae": int(te.loc[te["AESERFL"] == "Y", "USUBJID"].nunique()),
        "by_preferred_term": by_pt,
        "lab_worst_grade": labs,
        "exposure": tx.summarise_exposure(adex, study_drug),
        "disposition": {
            "on_treatment": int((eot == "ONGOING").fillna(False).sum()),
            "discontinued_treatment": int(disc.sum()),
            "discontinued_by_reason": {str(k): int(v) for k, v in reas[disc].value_counts().items()},
            "in_follow_up": int(fu.sum()),
            "died": int(dth.sum()),
        },
        "deaths": {
            "total": int(dth.sum()),
            "progressive_disease": int(deaths["DTHCAT"].eq("PROGRESSIVE DISEASE").sum()),
            "adverse_event": int(deaths["DTHCAT"].eq("ADVERSE EVENT").sum()),
            "fatal_teae_related": int(fatal.loc[(fatal["AERELFL"] == "Y") & (fatal["TRTEMFL"] == "Y"),
                                                "USUBJID"].nunique()),
        },
        "dose_rule_deviations": {
            "events_checked": len(gov),
            "deviations": len(dev),
            "patients": int(dev["USUBJID"].nunique()) if len(dev) else 0,
            "by_type": {str(k): int(v) for k, v in (dev["DEVTYPE"].value_counts().items() if len(dev) else [])},
        },
    }


__all__ = ["SafetyOptions", "dose_rule_options", "drug_ladder_for", "exposure_notes", "exposure_options", "run",
           "summarise_safety"]
