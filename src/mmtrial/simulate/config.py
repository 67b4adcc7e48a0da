"""The protocol's ``[simulation]`` section: disease, toxicity and conduct assumptions as data.

Every option is optional; an absent option keeps the simulator's calibrated STORM default
(:class:`~mmtrial.simulate.params.SimulationParams`; calibration in docs/simulator.md against Chari A
et al., N Engl J Med 2019;381:727-738, ../shared/reference/domain.md section 5). The options and
their defaults are documented in docs/simulator.md, "The [simulation] section".

    [simulation]
    n = 150
    response_rates = { sCR = 0.0, CR = 0.05, VGPR = 0.15, PR = 0.3, MR = 0.1, SD = 0.25, PD = 0.1, NE = 0.05 }
    pfs_median_months = 9.0
    missed_dose_prob = 0.02
    [simulation.toxicity_scale]
    platelets = 0.5

``SimulationConfig`` is the options model (pydantic, unknown keys refused); the protocol loader
registers it for ``[simulation]``. :func:`simulation_params` turns it into ``SimulationParams``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmtrial.simulate.params import CATEGORIES, SimulationParams

#: STORM's published medians the calibrated defaults reproduce (months; domain.md 1.4, tag C).
STORM_PFS_MONTHS = 3.7
STORM_OS_MONTHS = 8.6


class ToxicityScale(BaseModel):
    """Multipliers of the calibrated STORM sensitivities (1 = selinexor-dexamethasone in STORM)."""

    model_config = ConfigDict(extra="forbid")
    platelets: float = Field(1.0, ge=0, description="platelet fall per unit of exposure")
    neutrophils: float = Field(1.0, ge=0)
    hemoglobin: float = Field(1.0, ge=0)
    sodium: float = Field(1.0, ge=0)
    nonhematologic: float = Field(1.0, ge=0, description="probability of each non-haematological AE (capped at 1)")


class AdverseEventSpec(BaseModel):
    """One non-haematological adverse event of the model (``SimulationParams.nonheme_aes`` row)."""

    model_config = ConfigDict(extra="forbid")
    term: str = Field(min_length=1, description="AEDECOD (MedDRA preferred term)")
    soc: str = Field(min_length=1, description="AEBODSYS (MedDRA system organ class)")
    prob: float = Field(ge=0, le=1, description="probability of an episode while exposed")
    onset_mean_days: float = Field(gt=0, description="mean onset day (exponential)")
    grade3_prob: float = Field(ge=0, le=1, description="probability the episode is grade 3 (frailty-scaled; "
                                                       "else grade 1 or 2 as 62:38)")
    serious_prob: float = Field(0.0, ge=0, le=1, description="probability the episode is serious")


class StratumSpec(BaseModel):
    """How the simulator draws one stratification factor (``[simulation.two_arm.strata.<QNAM>]``)."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field("", description="suppdm QLABEL (default: the QNAM)")
    derived: Literal["prior_pi", "prior_lines", ""] = Field(
        "", description="prior_pi: Y/N from the simulated prior therapy (a proteasome inhibitor in any prior "
                        "line); prior_lines: 1 / >1 prior lines; empty: drawn from levels")
    levels: dict[str, float] = Field(default_factory=dict, description="QVAL values and their probabilities")
    time_ratio: dict[str, float] = Field(
        default_factory=dict, description="prognostic effect: a level's multiplier of the latent progression and "
                                          "death times (< 1: worse prognosis); levels not named: 1")

    @model_validator(mode="after")
    def _one(self) -> StratumSpec:
        if bool(self.derived) == bool(self.levels):
            raise ValueError("give exactly one of derived or levels")
        if self.levels and (min(self.levels.values()) < 0 or abs(sum(self.levels.values()) - 1.0) > 1e-6):
            raise ValueError(f"levels: probabilities >= 0 summing to 1; got {self.levels}")
        if self.time_ratio and self.derived:
            raise ValueError("time_ratio: only for a factor drawn from levels")
        unknown = sorted(set(self.time_ratio) - set(self.levels))
        if unknown:
            raise ValueError(f"time_ratio: {unknown[0]!r} is not one of the levels {sorted(self.levels)}")
        if any(not 0.05 <= v <= 20 for v in self.time_ratio.values()):
            raise ValueError(f"time_ratio: multipliers between 0.05 and 20; got {self.time_ratio}")
        return self


#: BOSTON's stratification factors (Grosicki S et al., Lancet 2020;396:1563-73; data contract v2).
BOSTON_STRATA: dict[str, dict[str, Any]] = {
    "STRATPI": {"label": "Prior proteasome inhibitor", "derived": "prior_pi"},
    "STRATLOT": {"label": "Prior lines of therapy", "derived": "prior_lines"},
    "STRATRISS": {"label": "R-ISS stage", "levels": {"III": 0.185, "I/II": 0.815}},
}


class TwoArmSimulation(BaseModel):
    """``[simulation.two_arm]``: randomisation, baseline factors and crossover of a two-arm study."""

    model_config = ConfigDict(extra="forbid")
    block_size: int = Field(4, ge=2, description="permuted-block size within each stratum (a multiple of the "
                                                 "allocation ratio's sum)")
    prior_lines_probs: tuple[float, float, float] = Field(
        (0.49, 0.32, 0.19), description="probability of 1, 2 and 3 prior lines of therapy")
    prior_pi_prob: float = Field(0.76, ge=0, le=1, description="a proteasome inhibitor in a prior line")
    transplant_prob: float = Field(0.39, ge=0, le=1, description="prior autologous transplant (line 1)")
    randomisation_to_dose_days: tuple[int, int] = Field((0, 7), description="days from randomisation to the "
                                                                            "first dose (uniform, inclusive)")
    crossover_prob: float = Field(0.5, ge=0, le=1, description="a control subject whose subsequent therapy "
                                                              "starts after progression takes the crossover regimen")
    crossover_regimens: list[list[str]] = Field(
        default_factory=lambda: [["SELINEXOR", "BORTEZOMIB", "DEXAMETHASONE"], ["SELINEXOR", "DEXAMETHASONE"]],
        description="crossover regimens (cm CMTRT), drawn with crossover_regimen_probs")
    crossover_regimen_probs: list[float] = Field(default_factory=lambda: [0.6, 0.4])
    crossover_acceleration_factor: float = Field(
        1.0, ge=0.1, le=10, description="survival remaining at the crossover is multiplied by this factor (RPSFTM's "
                                         "acceleration factor exp(-psi) of the experimental drug; 1: no effect)")
    not_treated_prob: float = Field(0.0, ge=0, le=0.5, description="a randomised subject is never treated "
                                                                   "(ACTARMCD NOTTRT, no ex)")
    strata: dict[str, StratumSpec] = Field(
        default_factory=lambda: {k: StratumSpec.model_validate(v) for k, v in BOSTON_STRATA.items()},
        description="how each stratification factor is drawn (default: BOSTON's three)")

    @field_validator("prior_lines_probs")
    @classmethod
    def _lines(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) < 0 or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"prior_lines_probs: >= 0 and sum to 1; got {list(v)}")
        return v

    @model_validator(mode="after")
    def _crossover(self) -> TwoArmSimulation:
        if len(self.crossover_regimens) != len(self.crossover_regimen_probs) or not self.crossover_regimens:
            raise ValueError("crossover_regimens and crossover_regimen_probs must have the same, non-zero length")
        if abs(sum(self.crossover_regimen_probs) - 1.0) > 1e-6:
            raise ValueError(f"crossover_regimen_probs must sum to 1; got {self.crossover_regimen_probs}")
        if self.randomisation_to_dose_days[0] < 0 or self.randomisation_to_dose_days[1] < self.randomisation_to_dose_days[0]:
            raise ValueError("randomisation_to_dose_days: 0 <= low <= high")
        return self


class SimulationConfig(BaseModel):
    """Options of the ``[simulation]`` protocol section (docs/simulator.md)."""

    model_config = ConfigDict(extra="forbid")
    n: int | None = Field(None, ge=1, description="subjects when the command line gives no --n")
    seed: int | None = Field(None, ge=0, description="random seed when the command line gives no --seed")
    response_rates: dict[str, float] | None = Field(
        None, description="latent best-response class probabilities (sCR CR VGPR PR MR SD PD NE; sum 1)")
    pfs_median_months: float | None = Field(None, gt=0, description="target median PFS (approximate)")
    os_median_months: float | None = Field(None, gt=0, description="target median OS (approximate)")
    toxicity_scale: ToxicityScale = Field(default_factory=ToxicityScale)
    missed_dose_prob: float = Field(0.0, ge=0, le=1, description="a planned administration not taken")
    dose_rule_adherence: float | None = Field(
        None, ge=0, le=1, description="probability a dose-modification rule is followed when it applies")
    reduction_fractions: list[float] | None = Field(
        None, description="dose levels as fractions of the protocol dose when the protocol has no ladder for "
                          "the study drug (default: none, the dose is held instead of reduced)")
    height_cm: tuple[float, float] = Field((175.0, 162.0), description="mean height of men, women (cm)")
    height_sd_cm: float = Field(7.0, ge=0)
    weight_kg_median: float = Field(75.0, gt=0)
    weight_sigma: float = Field(0.18, ge=0, description="log-scale SD of baseline weight")
    weight_change_per_cycle: float = Field(0.02, ge=0, description="log-scale SD of the weight change per cycle")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="any SimulationParams field by name (advanced)")
    additional_aes: list[AdverseEventSpec] = Field(
        default_factory=list, description="non-haematological adverse events added to the model's list "
                                          "(e.g. peripheral neuropathy of a bortezomib arm)")
    arms: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="randomised trials: per-arm options ([simulation.arms.<ARMCD>]), "
                                          "any option of this section; they override the options above for that arm")
    two_arm: TwoArmSimulation = Field(default_factory=lambda: TwoArmSimulation(),
                                      description="randomised trials: randomisation, baseline factors, crossover")

    @field_validator("response_rates")
    @classmethod
    def _rates(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        unknown = sorted(set(v) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"response_rates: unknown categories {unknown}; allowed {list(CATEGORIES)}")
        if any(x < 0 for x in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"response_rates: must be >= 0 and sum to 1; got sum {sum(v.values()):.4f}")
        return v

    @field_validator("reduction_fractions")
    @classmethod
    def _fractions(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if not v or v[0] != 1.0 or any(b >= a for a, b in itertools.pairwise(v)) or min(v) <= 0:
            raise ValueError(f"reduction_fractions: start at 1.0 and decrease, all > 0; got {v}")
        return v

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(SimulationParams)}
        unknown = sorted(set(v) - names)
        if unknown:
            raise ValueError(f"params: unknown SimulationParams fields {unknown}")
        return v

    @model_validator(mode="after")
    def _arm_options(self) -> SimulationConfig:
        for code in self.arms:
            arm_config(self, code)  # each arm's merged options must validate
        return self

    @model_validator(mode="after")
    def _medians(self) -> SimulationConfig:
        if (self.pfs_median_months is not None and self.os_median_months is not None
                and self.os_median_months <= self.pfs_median_months):
            raise ValueError(f"os_median_months ({self.os_median_months}) must exceed pfs_median_months "
                             f"({self.pfs_median_months})")
        return self


def _tuple(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_tuple(x) for x in v)
    return v


def _surrogate_medians(p: SimulationParams, k_pfs: float, k_os: float, draws: int = 20000) -> tuple[float, float]:
    """Median PFS and OS (days) of a fast surrogate of the disease model (docs/simulator.md).

    Latent class from ``class_probs``; latent progression lognormal (class median x ``k_pfs``),
    seen at the first assessment on or after it and no earlier than the class's first possible
    PD assessment (PD 1, SD 2, responders 3); death before progression at the other-cause
    hazard, and at the fatal-AE hazard while on treatment (until progression or a physician's
    decision); death after progression at the confirmation (next assessment) plus the
    post-progression survival (class median x ``k_os``; class PD's early-death hazard), or
    earlier from other causes. Common random numbers (fixed seed), so
    the medians are smooth in ``k``. Ignores missed visits, withdrawals and the cut-off.
    """
    rng = np.random.default_rng(20190822)
    cp = np.asarray(p.class_probs) / np.sum(p.class_probs)
    cls = rng.choice(len(CATEGORIES), draws, p=cp)
    prog = dict(p.prog_median_days)
    med = np.array([prog.get(c, 1.0) for c in CATEGORIES])[cls] * k_pfs
    t_prog = med * np.exp(p.prog_sigma * rng.standard_normal(draws))
    a = p.assessment_interval
    first = np.array([3, 3, 3, 3, 3, 2, 1, 10**6])[cls]
    visit = np.maximum(np.ceil(t_prog / a), first)
    visit = np.where(cls == CATEGORIES.index("PD"), 1, visit)
    pd_day = np.where(cls == CATEGORIES.index("NE"), np.inf, visit * a)
    t_death = rng.exponential(365.0 / p.death_hazard_per_year, draws)
    # fatal adverse events only while on treatment (until progression or a physician's decision)
    t_fatal = rng.exponential(365.0 / p.fatal_ae_hazard_per_year, draws)
    t_phys = rng.exponential(365.0 / max(p.physician_decision_hazard_per_year, 1e-9), draws)
    t_death = np.where(t_fatal < np.minimum(pd_day, t_phys), np.minimum(t_fatal, t_death), t_death)
    pps_c = dict(p.pps_median_days_by_class)
    pps_med = np.array([pps_c.get(c, p.pps_median_days) for c in CATEGORIES])[cls] * k_os
    pps = pps_med * np.exp(p.pps_sigma * rng.standard_normal(draws))
    pd_extra = rng.exponential(p.pd_class_death_median_days / np.log(2), draws)
    pps = np.where(cls == CATEGORIES.index("PD"), np.minimum(pps, pd_extra), pps)
    t_other = rng.exponential(365.0 / p.death_hazard_per_year, draws)  # after progression
    pfs = np.minimum(pd_day, t_death)
    os_ = np.where(t_death < pd_day, t_death, np.minimum(t_other, pd_day + a + pps))
    ok = cls != CATEGORIES.index("NE")
    return float(np.median(pfs[ok])), float(np.median(os_[ok]))


def _solve(f, target: float, lo: float = 0.05, hi: float = 20.0) -> float:
    """Scale k in [lo, hi] with f(k) = target by bisection on log k (f increasing)."""
    for _ in range(50):
        mid = float(np.sqrt(lo * hi))
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


def scale_for_medians(p: SimulationParams, pfs_months: float | None,
                      os_months: float | None) -> tuple[float, float]:
    """Scales of the latent progression and post-progression times for target medians.

    The surrogate (:func:`_surrogate_medians`) is solved *relative to itself at the calibrated
    defaults*: k makes surrogate(p, k) / surrogate(STORM defaults, 1) equal target / STORM's
    median (3.7 and 8.6 months, domain.md 1.4), so the surrogate's own bias at STORM cancels
    while p's response classes and hazards act through surrogate(p, k). The OS scale is then
    refined with the simulator itself (:func:`_refine_os`).
    """
    # the surrogate's bias at the calibrated STORM defaults (same assessment interval), where the
    # simulator is known to give STORM's medians; p's own class mix and hazards enter through f(k)
    ref = dataclasses.replace(SimulationParams(), assessment_interval=p.assessment_interval)
    base_pfs, base_os = _surrogate_medians(ref, 1.0, 1.0)
    k_pfs = 1.0
    if pfs_months is not None:
        goal = base_pfs * pfs_months / STORM_PFS_MONTHS
        k_pfs = _solve(lambda k: _surrogate_medians(p, k, 1.0)[0], goal)
    k_os = 1.0
    if os_months is not None:
        goal = base_os * os_months / STORM_OS_MONTHS
        k_os = _solve(lambda k: _surrogate_medians(p, k_pfs, k)[1], goal, lo=0.01, hi=50.0)
        k_os = _refine_os(p, k_pfs, k_os, os_months)
    return k_pfs, k_os


def _scaled(p: SimulationParams, k_pfs: float, k_os: float) -> SimulationParams:
    return dataclasses.replace(
        p, prog_median_days=tuple((c, d * k_pfs) for c, d in p.prog_median_days),
        pps_median_days=p.pps_median_days * k_os,
        pps_median_days_by_class=tuple((c, d * k_os) for c, d in p.pps_median_days_by_class))


@functools.lru_cache(maxsize=32)
def _refine_os(p: SimulationParams, k_pfs: float, k_os: float, os_months: float) -> float:
    """Secant steps on log k_os with the simulator itself (2,000 subjects, fixed seed).

    The surrogate misses part of how survival after progression adds up (it under-predicts the
    OS gain of a larger scale), so up to three simulations correct it, each with at least ten
    years of follow-up after the last enrolment; a median still not reached counts as too long.
    """
    from mmtrial.simulate.calibration import DAYS_PER_MONTH, km_median
    from mmtrial.simulate.study import simulate_study

    def f(x: float) -> float:
        # long follow-up, so that the median is reached whatever the protocol's cut-off
        q = dataclasses.replace(_scaled(p, k_pfs, float(np.exp(x))),
                                cutoff_after_last_days=max(p.cutoff_after_last_days, 3650))
        tr = simulate_study(2000, 20190822, params=q).truth
        m = km_median(tr["TRUE_OS_DAYS"].to_numpy(float), tr["TRUE_OS_EVENT"].to_numpy(bool))
        return float(np.log(m / DAYS_PER_MONTH / os_months)) if np.isfinite(m) else 1.0

    x0 = float(np.log(k_os))
    f0 = f(x0)
    x1 = x0 - f0
    for _ in range(2):
        if abs(f0) < 0.02:
            break
        f1 = f(x1)
        slope = (f1 - f0) / (x1 - x0) if x1 != x0 else 1.0
        slope = slope if slope > 0.2 else 1.0
        x0, f0 = x1, f1
        x1 = x0 - f0 / slope
    return float(np.exp(x1 if abs(f0) >= 0.02 else x0))


def arm_config(cfg: SimulationConfig, armcd: str) -> SimulationConfig:
    """The options of arm ``armcd``: the section's options with ``[simulation.arms.<ARMCD>]`` on top.

    ``params`` and ``toxicity_scale`` merge key by key; any other option is replaced. An arm
    without its own table uses the section's options (no difference between arms).
    """
    arm = next((v for k, v in cfg.arms.items() if k.upper() == armcd.upper()), None)
    if not arm:
        return cfg
    base = cfg.model_dump(exclude={"arms"})
    merged = {**base, **arm}
    for key in ("params", "toxicity_scale"):
        if key in arm:
            merged[key] = {**base.get(key, {}), **arm[key]}
    return SimulationConfig.model_validate(merged)


def simulation_params(cfg: SimulationConfig, base: SimulationParams | None = None) -> SimulationParams:
    """``SimulationParams`` with the section's options applied to ``base`` (default: STORM's).

    PFS and OS targets scale the latent progression medians and the post-progression survival
    medians (:func:`scale_for_medians`; approximate, docs/simulator.md, "Targets").
    """
    p = base or SimulationParams()
    upd: dict[str, Any] = {k: _tuple(v) for k, v in cfg.params.items()}
    if cfg.response_rates is not None:
        upd["class_probs"] = tuple(float(cfg.response_rates.get(c, 0.0)) for c in CATEGORIES)
    if upd:
        p = dataclasses.replace(p, **upd)
        upd = {}
    if cfg.pfs_median_months is not None or cfg.os_median_months is not None:
        k_pfs, k_os = scale_for_medians(p, cfg.pfs_median_months, cfg.os_median_months)
        p = _scaled(p, k_pfs, k_os)
    if cfg.dose_rule_adherence is not None:
        upd["dose_rule_adherence"] = cfg.dose_rule_adherence
    ts = cfg.toxicity_scale
    for name, k in (("plat_sens_median", ts.platelets), ("anc_sens_median", ts.neutrophils),
                    ("hgb_sens_median", ts.hemoglobin), ("sodium_sens_median", ts.sodium)):
        if k != 1.0:
            upd[name] = getattr(p, name) * k
    if ts.nonhematologic != 1.0:
        upd["nonheme_aes"] = tuple((a[0], a[1], min(a[2] * ts.nonhematologic, 1.0), *a[3:])
                                   for a in p.nonheme_aes)
    if cfg.additional_aes:
        upd["nonheme_aes"] = (*upd.get("nonheme_aes", p.nonheme_aes),
                              *((e.term.upper(), e.soc.upper(), e.prob, e.onset_mean_days, e.grade3_prob,
                                 e.serious_prob) for e in cfg.additional_aes))
    return dataclasses.replace(p, **upd) if upd else p


__all__ = ["AdverseEventSpec", "SimulationConfig", "StratumSpec", "ToxicityScale", "TwoArmSimulation", "arm_config",
           "scale_for_medians", "simulation_params"]
