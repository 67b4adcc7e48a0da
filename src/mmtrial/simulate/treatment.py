"""Dosing, blood counts and chemistry on treatment, with the label's dose-modification rules.

Model (docs/simulator.md, "Dosing and toxicity"): a weekly state machine, vectorised over all
subjects (the loop runs over weeks, never over subjects or records). Drug exposure ``E`` carries
over week to week (``E <- memory * E + weekly dose / 160``); platelets and neutrophils fall
log-linearly with ``E``, haemoglobin and sodium linearly, each with a subject-specific
sensitivity. Before each week's dose the label's rules (XPOVIO Table 2, domain.md 1.10) act on
the week's labs: platelets 25-<75 x10^9/L, ANC 0.5-<1.0 x10^9/L or Hb < 8 g/dL reduce one level;
platelets < 25, ANC < 0.5, sodium <= 130 mmol/L or a grade 3 non-haematological event interrupt;
treatment restarts one level lower once platelets >= 50, ANC >= 1.0, sodium > 130, Hb >= 8 and
the event has resolved. The ladder is the protocol's (STORM: 160 -> 100 -> 80 -> 60 mg/week, then
discontinuation; label Table 1). Each rule is followed with probability ``dose_rule_adherence``.

Within each week the days are walked (vectorised over subjects) through the protocol's cycles
(:class:`~mmtrial.simulate.dosing.DosingPlan`): a cycle that falls due while the subject is held
starts on the first day dosing resumes (a cycle delay); a hold within a cycle skips its planned
administrations (an interruption); planned rest days are simply days without a planned dose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmtrial.simulate.dosing import Administrations, DosingPlan
from mmtrial.simulate.params import SimulationParams

# action codes on the weekly grid
ACT_NONE, ACT_REDUCE, ACT_INTERRUPT, ACT_RESUME, ACT_DISCONTINUE = 0, 1, 2, 3, 4
# trigger codes (which lab or event called for the action)
TRIG_NONE, TRIG_PLAT, TRIG_NEUT, TRIG_SODIUM, TRIG_HGB, TRIG_NONHEME = 0, 1, 2, 3, 4, 5
OFF, HOLD = -2, -1  # dose-level codes besides 0..3
#: walk a week's days as one array when every cycle lasts 7 days or more (same result, faster)
VECTORISED_WEEK = True


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
    admin: Administrations | None = None  # every administration (days from first dose)
    cycle_start: np.ndarray | None = None  # n x (C + 1): actual start day of cycle c (NaN: not started)
    n_delays: np.ndarray | None = None  # cycles whose start was delayed
    delay_days: np.ndarray | None = None  # total days of delay
    missed: np.ndarray | None = None  # administrations missed (adherence), per subject


def _lognormal(rng, median, sigma, n):
    return median * np.exp(sigma * rng.standard_normal(n))


def simulate_treatment(rng: np.random.Generator, planned_weeks: np.ndarray, nonheme_g3: np.ndarray,
                       frail: np.ndarray, p: SimulationParams, plan: DosingPlan,
                       rng_adherence: np.random.Generator | None = None,
                       missed_dose_prob: float = 0.0) -> Treatment:
    """Run the weekly dosing model for ``planned_weeks`` weeks per subject (labs on day 7w).

    ``nonheme_g3`` (n x W bool) marks weeks with an active grade 3 non-haematological event;
    ``frail`` is each subject's susceptibility shared by all toxicities (mean-one lognormal).
    ``plan`` is the protocol's regimen; a week's exposure is the study drug's dose given that
    week over ``plan.ref_weekly``. Each planned administration is missed with probability
    ``missed_dose_prob`` (drawn from ``rng_adherence``, so the other draws do not move).
    """
    n = len(planned_weeks)
    w_max = int(planned_weeks.max()) if n else 0
    top = plan.n_levels - 1  # the last ladder level; one more reduction discontinues
    n_cyc = plan.table.shape[2] - 1
    day_max = plan.table.shape[3] - 1
    clen = plan.cycle_len
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
    cyc = np.ones(n, dtype=np.int64)  # current cycle
    cst = np.zeros(n, dtype=np.int64)  # its start day
    waiting = np.zeros(n, dtype=bool)  # a cycle is due but the subject is held (delay)
    due_day = np.zeros(n, dtype=np.int64)
    cycle_start = np.full((n, n_cyc + 1), np.nan)
    cycle_start[:, 1] = 0.0
    n_delays = np.zeros(n, dtype=np.int64)
    delay_days = np.zeros(n, dtype=np.int64)
    missed = np.zeros(n, dtype=np.int64)
    recs: list[tuple[np.ndarray, ...]] = []
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
            # resume one level lower (XPOVIO, POMALYST); a drug without reduction steps resumes at
            # its dose (e.g. daratumumab: doses are held, never reduced)
            res_disc = resume & (lv + 1 > top) & (top > 0)
            lv = np.where(resume & ~res_disc, lv + min(top, 1), lv)
            hd = hd & ~resume
            dosing = ~hd & ~res_disc & ~resume
            t_int = np.select([plt < 25, anc < 0.5, na <= 130, nh],
                              [TRIG_PLAT, TRIG_NEUT, TRIG_SODIUM, TRIG_NONHEME], TRIG_NONE)
            interrupt = dosing & follow & (t_int > 0)
            t_red = np.select([plt < 75, anc < 1.0, hgb < 8], [TRIG_PLAT, TRIG_NEUT, TRIG_HGB],
                              TRIG_NONE)
            reduce = (dosing & ~interrupt & follow & (t_red > 0)
                      & (w - last_red[ix] >= p.min_weeks_between_reductions))
            if top == 0:  # no reduction steps: the reduction rule holds the dose instead
                interrupt = interrupt | reduce
                t_int = np.where(reduce, t_red, t_int)
                reduce = np.zeros(m, dtype=bool)
            red_disc = reduce & (lv + 1 > top)
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
        dose = _walk_week(w, ix, dose_now, np.minimum(lv, top), plan, clen, n_cyc, day_max, cyc, cst,
                          waiting, due_day, cycle_start, n_delays, delay_days, missed, recs,
                          rng_adherence if missed_dose_prob > 0 else None, missed_dose_prob)
        expo[ix] = p.exposure_memory * e + dose / plan.ref_weekly
    if recs:
        adm = Administrations(*(np.concatenate([r[i] for r in recs]) for i in range(6)))
    else:
        adm = Administrations(*(np.zeros(0, dtype=t) for t in (np.int64, np.int64, np.int64, np.int64,
                                                                 np.int64, np.float64)))
    np.maximum.at(last_dose, adm.subj, adm.day.astype(float))
    return Treatment(level=level_g, action=action_g, trigger=trigger_g, labs=labs,
                     disc_ae=~np.isnan(disc_day), disc_day=disc_day, last_dose_day=last_dose,
                     admin=adm, cycle_start=cycle_start, n_delays=n_delays, delay_days=delay_days,
                     missed=missed)


def _walk_week(w, ix, dose_now, lv, plan, clen, n_cyc, day_max, cyc, cst, waiting, due_day, cycle_start,
               n_delays, delay_days, missed, recs, rng_adh, missed_prob) -> np.ndarray:
    """The seven days of week ``w`` for subjects ``ix``: cycle starts and delays, administrations.

    Returns each subject's study-drug dose in the week (protocol unit). A cycle ends after its
    planned length; the next starts that day when the subject is dosing this week, otherwise on
    the first day of the first week dosing resumes (the delay is counted). Planned doses of
    held weeks are not given (interruptions). Records are appended to ``recs``.
    """
    m = len(ix)
    if VECTORISED_WEEK and clen[1:].min() >= 7:
        return _walk_week_vectorised(w, ix, dose_now, lv, plan, clen, n_cyc, day_max, cyc, cst, waiting,
                                     due_day, cycle_start, n_delays, delay_days, missed, recs, rng_adh,
                                     missed_prob)
    wdose = np.zeros(m)
    n_drugs = plan.table.shape[0]
    for k in range(7):
        day = 7 * w + k
        ci, si, wt = cyc[ix], cst[ix], waiting[ix]
        ended = ~wt & (day >= si + clen[np.minimum(ci, n_cyc)])
        due_day[ix] = np.where(ended, day, due_day[ix])
        due = ended | wt
        go = due & dose_now & (ci < n_cyc)
        delayed = go & wt
        ci = np.where(go, ci + 1, ci)
        si = np.where(go, day, si)
        wt = due & ~go
        if go.any():
            cycle_start[ix[go], ci[go]] = day
        if delayed.any():
            n_delays[ix] += delayed
            delay_days[ix] += np.where(delayed, day - due_day[ix], 0)
        cyc[ix], cst[ix], waiting[ix] = ci, si, wt
        cd = day - si + 1
        active = dose_now & ~wt & (cd <= day_max)
        cdc = np.clip(cd, 0, day_max)
        for j in range(n_drugs):
            dj = plan.table[j, lv, ci, cdc]
            give = active & (dj > 0)
            if rng_adh is not None:
                miss = give & (rng_adh.random(m) < missed_prob)
                missed[ix] += miss
                give &= ~miss
            if not give.any():
                continue
            g = np.flatnonzero(give)
            recs.append((ix[g], np.full(len(g), day, dtype=np.int64), np.full(len(g), j, dtype=np.int64),
                         lv[g].astype(np.int64), ci[g], dj[g]))
            if j == plan.study:
                wdose += np.where(give, dj, 0.0)
    return wdose


def _walk_week_vectorised(w, ix, dose_now, lv, plan, clen, n_cyc, day_max, cyc, cst, waiting, due_day,
                          cycle_start, n_delays, delay_days, missed, recs, rng_adh, missed_prob) -> np.ndarray:
    """:func:`_walk_week` for cycles of 7 days or more (at most one cycle start per week): the
    seven days as one (subjects x 7) array. Same rules and records."""
    m = len(ix)
    w0 = 7 * w
    ci, si, wt = cyc[ix], cst[ix], waiting[ix]
    end = np.maximum(si + clen[np.minimum(ci, n_cyc)], w0)
    ended = ~wt & (end < w0 + 7)
    due_day[ix] = np.where(ended, end, due_day[ix])
    due = ended | wt
    t = np.where(wt, w0, end)  # the day the next cycle can start (a waiting subject: this week's first)
    go = due & dose_now & (ci < n_cyc)
    delayed = go & wt
    ci_new = np.where(go, ci + 1, ci)
    if go.any():
        cycle_start[ix[go], ci_new[go]] = t[go]
    if delayed.any():
        n_delays[ix] += delayed
        delay_days[ix] += np.where(delayed, t - due_day[ix], 0)
    cyc[ix] = ci_new
    cst[ix] = np.where(go, t, si)
    waiting[ix] = due & ~go
    days = w0 + np.arange(7)[None, :]
    after = go[:, None] & (days >= t[:, None])
    cmat = np.where(after, ci_new[:, None], ci[:, None])
    smat = np.where(after, t[:, None], si[:, None])
    cd = days - smat + 1
    # waiting days (a cycle due while held) have no dose; held weeks have none anyway
    waiting_day = (due & ~go)[:, None] & (days >= t[:, None])
    active = dose_now[:, None] & ~waiting_day & (cd <= day_max)
    cdc = np.clip(cd, 0, day_max)
    lvm = np.broadcast_to(lv[:, None], cdc.shape)
    wdose = np.zeros(m)
    for j in range(plan.table.shape[0]):
        dj = plan.table[j, lvm, cmat, cdc]
        give = active & (dj > 0)
        if rng_adh is not None:
            miss = give & (rng_adh.random(give.shape) < missed_prob)
            missed[ix] += miss.sum(axis=1)
            give &= ~miss
        r, k = np.nonzero(give)
        if len(r) == 0:
            continue
        recs.append((ix[r], w0 + k.astype(np.int64), np.full(len(r), j, dtype=np.int64), lv[r].astype(np.int64),
                     cmat[r, k], dj[r, k]))
        if j == plan.study:
            wdose += np.where(give, dj, 0.0).sum(axis=1)
    return wdose


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
