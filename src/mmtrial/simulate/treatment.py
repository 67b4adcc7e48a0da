"""Dosing, blood counts and chemistry on treatment, with the label's dose-modification rules.

Model (docs/simulator.md, "Dosing and toxicity"): a weekly state machine, vectorised over all
subjects (the loop runs over weeks, never over subjects or records). Drug exposure ``E`` carries
over week to week (``E <- memory * E + weekly dose / 160``); platelets and neutrophils fall
log-linearly with ``E``, haemoglobin and sodium linearly, each with a subject-specific
sensitivity. Before each week's dose the label's rules (XPOVIO Table 2, domain.md 1.10) act on
the week's labs: platelets 25-<75 x10^9/L, ANC 0.5-<1.0 x10^9/L or Hb < 8 g/dL reduce one level;
platelets < 25, ANC < 0.5, sodium <= 130 mmol/L or a grade 3 non-haematological event interrupt;
treatment restarts one level lower once platelets >= 50, ANC >= 1.0, sodium > 130, Hb >= 8 and
the event has resolved. The ladder is 160 -> 100 -> 80 -> 60 mg/week, then discontinuation
(label Table 1). Each rule is followed with probability ``dose_rule_adherence``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmtrial.simulate.params import SimulationParams

# action codes on the weekly grid
ACT_NONE, ACT_REDUCE, ACT_INTERRUPT, ACT_RESUME, ACT_DISCONTINUE = 0, 1, 2, 3, 4
# trigger codes (which lab or event called for the action)
TRIG_NONE, TRIG_PLAT, TRIG_NEUT, TRIG_SODIUM, TRIG_HGB, TRIG_NONHEME = 0, 1, 2, 3, 4, 5
OFF, HOLD = -2, -1  # dose-level codes besides 0..3


@dataclass
class Treatment:
    """Weekly grids (n x W) and per-subject results of the dosing model."""

    level: np.ndarray  # OFF, HOLD or ladder index 0..3 of the week's dose
    action: np.ndarray
    trigger: np.ndarray
    labs: dict[str, np.ndarray]  # PLAT NEUT HGB SODIUM WBC LYM CREAT CACORR (NaN off treatment)
    disc_ae: np.ndarray  # bool: ladder exhausted (discontinued for an adverse event)
    disc_day: np.ndarray  # day of the discontinuation decision (NaN if none)
    last_dose_day: np.ndarray  # day of the last dose (days from first dose)


def _lognormal(rng, median, sigma, n):
    return median * np.exp(sigma * rng.standard_normal(n))


def simulate_treatment(rng: np.random.Generator, planned_weeks: np.ndarray, nonheme_g3: np.ndarray,
                       frail: np.ndarray, p: SimulationParams) -> Treatment:
    """Run the weekly dosing model for ``planned_weeks`` weeks per subject (labs on day 7w).

    ``nonheme_g3`` (n x W bool) marks weeks with an active grade 3 non-haematological event;
    ``frail`` is each subject's susceptibility shared by all toxicities (mean-one lognormal).
    """
    n = len(planned_weeks)
    w_max = int(planned_weeks.max()) if n else 0
    weekly = np.asarray(p.ladder_weekly_mg, dtype=float)
    p0 = np.maximum(_lognormal(rng, p.plat_median, p.plat_sigma, n), 75.0)
    n0 = np.maximum(_lognormal(rng, p.anc_median, p.anc_sigma, n), 1.0)
    h0 = np.clip(rng.normal(p.hgb_mean, p.hgb_sd, n), 8.0, 15.5)
    na0 = np.clip(rng.normal(p.sodium_mean, p.sodium_sd, n), 131.0, 146.0)
    l0 = np.maximum(_lognormal(rng, 1.1, 0.45, n), 0.2)
    cr0 = np.clip(_lognormal(rng, 0.95, 0.3, n), 0.4, 2.4)
    ca0 = rng.normal(9.4, 0.45, n)
    a_p = frail * _lognormal(rng, p.plat_sens_median, p.plat_sens_sigma, n)
    a_n = frail * _lognormal(rng, p.anc_sens_median, p.anc_sens_sigma, n)
    a_h = frail * _lognormal(rng, p.hgb_sens_median, p.hgb_sens_sigma, n)
    a_s = frail * _lognormal(rng, p.sodium_sens_median, p.sodium_sens_sigma, n)
    a_l = _lognormal(rng, 0.08, 0.5, n)

    shape = (n, w_max)
    level_g = np.full(shape, OFF, dtype=np.int8)
    action_g = np.zeros(shape, dtype=np.int8)
    trigger_g = np.zeros(shape, dtype=np.int8)
    names = ("PLAT", "NEUT", "HGB", "SODIUM", "WBC", "LYM", "CREAT", "CACORR")
    labs = {k: np.full(shape, np.nan, dtype=np.float32) for k in names}

    level = np.zeros(n, dtype=np.int64)
    hold = np.zeros(n, dtype=bool)
    disc = np.zeros(n, dtype=bool)
    disc_day = np.full(n, np.nan)
    last_red = np.full(n, -99)
    last_dose = np.zeros(n)
    expo = np.zeros(n)
    sig = p.lab_noise
    for w in range(w_max):  # weeks, vectorised over the subjects still on treatment
        ix = np.flatnonzero((w < planned_weeks) & ~disc)
        m = len(ix)
        if m == 0:
            break
        e = expo[ix]
        z = rng.standard_normal((6, m))
        vals = {
            "PLAT": np.round(p0[ix] * np.exp(-a_p[ix] * e + sig * z[0]), 0),
            "NEUT": np.round(n0[ix] * np.exp(-a_n[ix] * e + 1.5 * sig * z[1]), 2),
            "HGB": np.round(h0[ix] - a_h[ix] * e + 0.3 * z[2], 1),
            "SODIUM": np.round(na0[ix] - a_s[ix] * e + 1.3 * z[3], 0),
            "LYM": np.round(l0[ix] * np.exp(-a_l[ix] * e + sig * z[4]), 2),
            "CREAT": np.round(cr0[ix] * np.exp(0.06 * z[5]), 2),
            "CACORR": np.round(ca0[ix] + 0.2 * z[4], 1),
        }
        vals["WBC"] = np.round(vals["NEUT"] + vals["LYM"] + np.maximum(0.45 + 0.1 * z[5], 0.1), 2)
        for key, val in vals.items():
            labs[key][ix, w] = val
        plt, anc, hgb, na = vals["PLAT"], vals["NEUT"], vals["HGB"], vals["SODIUM"]
        lv = level[ix]
        hd = hold[ix]
        if w == 0:
            dose_now = np.ones(m, bool)
            act = np.zeros(m, np.int8)
            trig = np.zeros(m, np.int8)
        else:
            follow = rng.random(m) < p.dose_rule_adherence
            nh = nonheme_g3[ix, w]
            recovered = (plt >= 50) & (anc >= 1.0) & (na > 130) & (hgb >= 8) & ~nh
            resume = hd & recovered
            res_disc = resume & (lv + 1 > 3)
            lv = np.where(resume & ~res_disc, lv + 1, lv)
            hd = hd & ~resume
            dosing = ~hd & ~res_disc & ~resume
            t_int = np.select([plt < 25, anc < 0.5, na <= 130, nh],
                              [TRIG_PLAT, TRIG_NEUT, TRIG_SODIUM, TRIG_NONHEME], TRIG_NONE)
            interrupt = dosing & follow & (t_int > 0)
            t_red = np.select([plt < 75, anc < 1.0, hgb < 8], [TRIG_PLAT, TRIG_NEUT, TRIG_HGB],
                              TRIG_NONE)
            reduce = (dosing & ~interrupt & follow & (t_red > 0)
                      & (w - last_red[ix] >= p.min_weeks_between_reductions))
            red_disc = reduce & (lv + 1 > 3)
            lv = np.where(reduce & ~red_disc, lv + 1, lv)
            last_red[ix] = np.where(reduce, w, last_red[ix])
            hd = hd | interrupt
            newly_disc = res_disc | red_disc
            disc_day[ix] = np.where(newly_disc, 7.0 * w, disc_day[ix])
            disc[ix] = disc[ix] | newly_disc
            dose_now = (dosing & ~interrupt & ~red_disc) | (resume & ~res_disc)
            act = np.select([newly_disc, interrupt, resume, reduce],
                            [ACT_DISCONTINUE, ACT_INTERRUPT, ACT_RESUME, ACT_REDUCE], ACT_NONE)
            trig = np.where(interrupt, t_int, np.where(reduce | red_disc, t_red, TRIG_NONE))
            trig = np.where(res_disc, trigger_g[ix, w - 1], trig)
        level[ix] = lv
        hold[ix] = hd
        level_g[ix, w] = np.where(dose_now, lv, HOLD).astype(np.int8)
        action_g[ix, w] = act
        trigger_g[ix, w] = trig
        dose = np.where(dose_now, weekly[np.minimum(lv, 3)], 0.0)
        last_dose[ix] = np.where(dose_now, 7.0 * w + np.where(lv == 0, 2.0, 0.0), last_dose[ix])
        expo[ix] = p.exposure_memory * e + dose / weekly[0]
    return Treatment(level=level_g, action=action_g, trigger=trigger_g, labs=labs,
                     disc_ae=~np.isnan(disc_day), disc_day=disc_day, last_dose_day=last_dose)


# CTCAE v5.0 lab grades (domain.md section 3): thresholds in default units, lower is worse
CTCAE_LOW = {
    "PLAT": (150.0, 75.0, 50.0, 25.0),  # LLN, <75 G2, <50 G3, <25 G4
    "NEUT": (2.0, 1.5, 1.0, 0.5),
    "HGB": (12.0, 10.0, 8.0, -np.inf),  # grade 4 needs clinical information
    "SODIUM": (135.0, 130.0, 125.0, 120.0),  # 125-129 graded 2 (asymptomatic), 120-124 -> 3
}


def ctcae_grade(test: str, values: np.ndarray) -> np.ndarray:
    """CTCAE v5.0 grade of a low value (0 when >= LLN; -1 where the value is NaN).

    Hyponatremia: < LLN-130 grade 1; 125-129 grade 2 (asymptomatic; symptom status is not
    simulated); 120-124 grade 3; < 120 grade 4 (CTCAE v5.0, domain.md section 3).
    """
    lln, g2, g3, g4 = CTCAE_LOW[test]
    with np.errstate(invalid="ignore"):
        g = np.select([values < g4, values < g3, values < g2, values < lln], [4, 3, 2, 1], 0)
    return np.where(np.isnan(values), -1, g)
