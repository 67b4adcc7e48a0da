"""Every parameter of the STORM-like study simulator, with documented, calibrated defaults.

The defaults were tuned (docs/simulator.md, "Calibration") so that a 122-subject study lands
near the published STORM Part 2 aggregates (Chari A et al., N Engl J Med 2019;381:727-738;
../shared/reference/domain.md section 5). Sources of each target are given next to the
parameter; "calibrated" means the value was fitted by simulation, not read from a paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: IMWG response categories, best first (Kumar 2016), plus NE.
CATEGORIES: tuple[str, ...] = ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE")


@dataclass(frozen=True)
class SimulationParams:
    """Parameters of the generative model (see docs/simulator.md for the model).

    Every field has a default; build a variant with ``dataclasses.replace(params, ...)``.
    Probabilities are per subject unless stated; times are days unless the name says otherwise.
    """

    # --- study frame ------------------------------------------------------------------------
    study_id: str = "MMTRIAL-SIM"  # docs/data-contract.md: the simulator writes MMTRIAL-SIM
    n_sites: int = 60  # STORM: 60 centres (domain.md 1.1, C)
    enrollment_start: str = "2016-05-02"  # STORM Part 2 enrolment from May 2016 (domain.md 1.1, U)
    enrollment_days: int = 640  # spread of first-dose dates (about 21 months)
    cutoff_after_last_days: int = 200  # data cut-off: last first dose + this

    # --- demographics (domain.md 1.2) ------------------------------------------------------
    age_median: float = 65.0  # C
    age_sd: float = 8.5
    age_min: int = 40  # U
    age_max: int = 86  # U
    male_fraction: float = 0.59  # U
    race_probs: tuple[tuple[str, float], ...] = (
        ("WHITE", 0.78), ("BLACK OR AFRICAN AMERICAN", 0.15), ("ASIAN", 0.03), ("OTHER", 0.04))

    # --- myeloma type and measurable disease ------------------------------------------------
    igg_fraction: float = 0.55  # heavy-chain IgG
    iga_fraction: float = 0.20  # heavy-chain IgA; the rest light-chain only
    kappa_fraction: float = 0.62  # light-chain type kappa (else lambda)
    nonmeasurable_fraction: float = 0.01  # leave the efficacy population (STORM 122 of 123)
    lc_urine_measurable_fraction: float = 0.45  # light-chain subjects with urine M >= 300 mg/24h
    heavy_urine_present_fraction: float = 0.30  # heavy-chain subjects with a small urine M-protein
    serum_m_median: float = 2.4  # g/dL, baseline serum M-protein (heavy chain), lognormal
    serum_m_sigma: float = 0.55
    serum_m_min: float = 1.0  # keeps every heavy-chain subject measurable at the 1 g/dL threshold
    serum_m_max: float = 8.5
    urine_lc_median: float = 900.0  # mg/24h, light-chain urine route, lognormal in [300, 1500]
    dflc_median: float = 60.0  # mg/dL, light-chain FLC route, lognormal, >= 15
    bmpc_median: float = 45.0  # % marrow plasma cells at baseline
    alt_units_fraction: float = 0.03  # subjects whose labs come in alternative units

    # --- response classes: marginal probabilities (domain.md 1.3, 5) ------------------------
    # sCR 2, CR 0, VGPR 6, PR 24, MR 16, SD 48, PD+NE 26 of 122 (PD/NE split U: 20/6 used)
    class_probs: tuple[float, ...] = (0.025, 0.0, 0.052, 0.21, 0.14, 0.39, 0.158, 0.025)
    biomarker_effect: float = 3.0  # log-odds of response per SD of the planted marker score

    # --- timing of response and progression ----------------------------------------------
    assessment_interval: int = 28  # days between disease assessments (protocol [visits])
    assessment_jitter: int = 3  # +- days around the scheduled day
    missed_visit_prob: float = 0.04  # an assessment visit missed entirely
    missing_flc_prob: float = 0.05  # FLC missing at a visit (heavy-chain subjects; not needed)
    # probability that the first response is seen at assessment 1, 2, 3 (TTR 4.1 wk, C)
    response_visit_probs: tuple[float, float, float] = (0.80, 0.14, 0.06)
    # latent progression time (days from first dose), lognormal medians by class; calibrated to
    # median PFS 3.7 mo, DOR 4.4 mo (C)
    prog_median_days: tuple[tuple[str, float], ...] = (
        ("sCR", 420.0), ("CR", 380.0), ("VGPR", 220.0), ("PR", 150.0), ("MR", 130.0), ("SD", 95.0))
    prog_sigma: float = 0.62
    # death after progression: post-progression survival (days from the PD confirmation),
    # lognormal with a median by latent response class: the deeper the response, the slower
    # the disease that returns (and the more subsequent therapy the subject can take), so
    # survival after progression is longer. Classes not listed use ``pps_median_days``.
    # Calibrated to median OS 8.6 months overall and 15.6 months for both >= PR and >= MR
    # (Chari NEJM 2019; domain.md 1.4, C); MR is set near PR because STORM reports the same
    # median OS for >= MR as for >= PR (the MR subjects' shorter PFS is offset after progression).
    pps_median_days: float = 95.0  # SD, PD and NE (calibrated: median OS 8.6 mo, C)
    pps_median_days_by_class: tuple[tuple[str, float], ...] = (
        ("sCR", 450.0), ("CR", 420.0), ("VGPR", 340.0), ("PR", 275.0), ("MR", 310.0))
    pps_sigma: float = 0.95
    death_hazard_per_year: float = 0.12  # death before progression, other causes
    fatal_ae_hazard_per_year: float = 0.30  # fatal adverse event while on treatment (12/123, C)
    pd_class_death_median_days: float = 90.0  # additional early-death hazard for class PD
    withdrawal_hazard_per_year: float = 0.02
    physician_decision_hazard_per_year: float = 0.25
    ne_death_fraction: float = 0.55  # class NE: study ends before day 28 by death (else withdrawal)
    subsequent_therapy_prob: float = 0.55  # after confirmed PD, if alive
    newtx_after_ae_prob: float = 0.35  # new therapy after discontinuation for AE without PD
    new_lesion_prob: float = 0.10  # progressors whose PD also shows a new lesion (tu)
    plasmacytoma_prob: float = 0.08  # heavy-chain subjects with a measured plasmacytoma (tr)

    # --- dosing and toxicity (XPOVIO label Table 2, domain.md 1.10) --------------------------
    # the regimen and its dose ladder come from the protocol ([regimen], [dose_ladder]; STORM:
    # selinexor 80 mg + dexamethasone 20 mg twice weekly, ladder 160 -> 100 -> 80 -> 60 mg/week, C)
    exposure_memory: float = 0.72  # weekly carry-over of drug effect (toxicity model)
    plat_median: float = 150.0  # 10^9/L baseline, lognormal, >= 75 (eligibility)
    plat_sigma: float = 0.42
    plat_sens_median: float = 1.3  # per unit of exposure, log-scale drop; calibrated (G3/4 59%)
    plat_sens_sigma: float = 0.3
    anc_median: float = 2.9
    anc_sigma: float = 0.40
    anc_sens_median: float = 0.42  # calibrated (G3/4 neutropenia 21%)
    anc_sens_sigma: float = 0.3
    hgb_mean: float = 10.3
    hgb_sd: float = 1.4
    hgb_sens_median: float = 1.7  # g/dL per unit of exposure; calibrated (G3 anemia 44%)
    hgb_sens_sigma: float = 0.3
    sodium_mean: float = 138.0
    sodium_sd: float = 2.6
    sodium_sens_median: float = 4.2  # mmol/L per unit of exposure; calibrated (G3/4 22%)
    sodium_sens_sigma: float = 0.4
    toxicity_frailty_sigma: float = 1.2  # log-SD of a susceptibility shared by all four labs
    hyponatremia_symptomatic_prob: float = 0.6  # 125-129 mmol/L episodes reported as grade 3
    lab_noise: float = 0.1  # multiplicative noise (log-scale SD) on cell counts
    dose_rule_adherence: float = 0.7  # probability the label's dose rule is followed at a visit
    min_weeks_between_reductions: int = 3

    # non-haematological adverse events: (AEDECOD, AEBODSYS, probability while exposed,
    # onset mean days, P(grade 3), serious probability); any-grade targets domain.md 1.5
    nonheme_aes: tuple[tuple[str, str, float, float, float, float], ...] = (
        ("FATIGUE", "GENERAL DISORDERS AND ADMINISTRATION SITE CONDITIONS", 0.76, 12.0, 0.22, 0.02),
        ("NAUSEA", "GASTROINTESTINAL DISORDERS", 0.75, 7.0, 0.10, 0.01),
        ("DECREASED APPETITE", "METABOLISM AND NUTRITION DISORDERS", 0.56, 14.0, 0.05, 0.0),
        ("WEIGHT DECREASED", "INVESTIGATIONS", 0.50, 25.0, 0.02, 0.0),
        ("DIARRHOEA", "GASTROINTESTINAL DISORDERS", 0.46, 18.0, 0.06, 0.01),
        ("VOMITING", "GASTROINTESTINAL DISORDERS", 0.43, 10.0, 0.04, 0.01),
        ("CONSTIPATION", "GASTROINTESTINAL DISORDERS", 0.22, 20.0, 0.01, 0.0),
        ("DYSPNOEA", "RESPIRATORY, THORACIC AND MEDIASTINAL DISORDERS", 0.22, 25.0, 0.04, 0.02),
        ("UPPER RESPIRATORY TRACT INFECTION", "INFECTIONS AND INFESTATIONS", 0.21, 30.0, 0.02, 0.01),
        ("PYREXIA", "GENERAL DISORDERS AND ADMINISTRATION SITE CONDITIONS", 0.18, 25.0, 0.03, 0.03),
        ("VISION BLURRED", "EYE DISORDERS", 0.12, 30.0, 0.0, 0.0),
        ("DIZZINESS", "NERVOUS SYSTEM DISORDERS", 0.15, 20.0, 0.01, 0.0),
        ("PNEUMONIA", "INFECTIONS AND INFESTATIONS", 0.12, 35.0, 0.75, 0.85),
        ("SEPSIS", "INFECTIONS AND INFESTATIONS", 0.05, 35.0, 0.90, 1.0),
        ("ACUTE KIDNEY INJURY", "RENAL AND URINARY DISORDERS", 0.05, 30.0, 0.40, 0.60),
    )
    nonheme_g3_hold_weeks: tuple[int, int] = (1, 3)  # interruption after a grade 3 event

    # --- prior therapy (domain.md 1.2) -----------------------------------------------------
    prior_regimens_median: float = 7.0  # C; range 3-18 (C)
    prior_regimens_sigma: float = 0.38
    prior_regimens_min: int = 3
    prior_regimens_max: int = 18
    penta_fraction: float = 0.68  # 83/122 (C)
    transplant_fraction: float = 0.83  # U
    maintenance_median_days: float = 650.0  # calibrated to diagnosis 6.6 years before (C)
    regimen_median_days: float = 160.0
    refractory_within_60_fraction: float = 0.2  # PD within 60 days after the last dose

    # --- cytogenetics (high-risk 53%, C; definition U) ----------------------------------
    cyto_probs: tuple[tuple[str, float], ...] = (
        ("DEL17P", 0.30), ("T414", 0.25), ("T1416", 0.10), ("GAIN1Q", 0.40))

    # --- biomarker panel (domain.md 1.11) -----------------------------------------------
    biomarker_n_markers: int = 50
    biomarker_planted: tuple[tuple[str, float], ...] = (
        ("IRF3", 1.0), ("ARL2BP", 1.0), ("ZBTB17", -1.0), ("ATRX", 1.0))  # names U
    #: each planted marker measures the common response score with this loading (the rest is the
    #: marker's own signal): proteins of one pathway move together, so each alone is informative
    #: (per-marker correlation with response about 0.6 at the default; 0 gives independent markers)
    biomarker_marker_loading: float = 0.8
    biomarker_training_n: int = 35  # C
    biomarker_training_responders: int = 16  # 16 responders + 19 non-responders (issue 8)
    biomarker_validation_n: int = 12  # C
    biomarker_validation_responders: int = 5

    def __post_init__(self) -> None:
        if len(self.class_probs) != len(CATEGORIES):
            raise ValueError(f"SimulationParams.class_probs: expected {len(CATEGORIES)} values "
                             f"({', '.join(CATEGORIES)}); got {len(self.class_probs)}")
        if abs(sum(self.class_probs) - 1.0) > 1e-6 or min(self.class_probs) < 0:
            raise ValueError(f"SimulationParams.class_probs: must be >= 0 and sum to 1; got "
                             f"{self.class_probs} (sum {sum(self.class_probs):.4f})")
        if abs(sum(self.response_visit_probs) - 1.0) > 1e-6:
            raise ValueError("SimulationParams.response_visit_probs: must sum to 1; got "
                             f"{self.response_visit_probs}")
        for name in ("nonmeasurable_fraction", "penta_fraction", "missed_visit_prob",
                     "dose_rule_adherence", "transplant_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"SimulationParams.{name}: allowed 0..1; got {v!r}")
        if self.igg_fraction + self.iga_fraction > 1.0:
            raise ValueError("SimulationParams: igg_fraction + iga_fraction must be <= 1; got "
                             f"{self.igg_fraction + self.iga_fraction}")
        if not self.prior_regimens_min >= 3:
            raise ValueError("SimulationParams.prior_regimens_min: allowed >= 3 (triple-class "
                             f"refractory needs 3 regimens); got {self.prior_regimens_min}")
        for name in ("prog_median_days", "pps_median_days_by_class"):
            for cat, days in getattr(self, name):
                if cat not in CATEGORIES or not days > 0:
                    raise ValueError(f"SimulationParams.{name}: expected (category, days > 0) "
                                     f"with category one of {', '.join(CATEGORIES)}; got "
                                     f"({cat!r}, {days!r})")
        if not self.pps_median_days > 0:
            raise ValueError(f"SimulationParams.pps_median_days: allowed > 0; got "
                             f"{self.pps_median_days!r}")
        if self.biomarker_n_markers < len(self.biomarker_planted):
            raise ValueError("SimulationParams.biomarker_n_markers: must be >= the planted markers; "
                             f"got {self.biomarker_n_markers}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists) for ``study.json``."""
        return asdict(self)
