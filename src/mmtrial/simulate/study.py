"""The synthetic STORM-like study: orchestrates the generative model and builds the SDTM domains.

``simulate_study`` draws, for all subjects at once (numpy, no loop per subject or record):
demographics; the latent disease and response class (``disease``); prior therapy
(``history``); the assessment calendar with missed visits; progression, death, withdrawal
and data cut-off; the weekly dosing and toxicity model (``treatment``); adverse events;
disposition; subsequent therapy; the biomarker panel; and the ground truth.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtrial._io import check_output_folder, finish_dir, new_temp_dir, remove_tree
from mmtrial.protocol.model import Protocol
from mmtrial.simulate import disease as dz
from mmtrial.simulate._builder import FrameBuilder
from mmtrial.simulate._frames import constcol, datecol, explode_index, strcol
from mmtrial.simulate.config import SimulationConfig, simulation_params
from mmtrial.simulate.dosing import (
    arm_label,
    build_ex,
    build_plan,
    build_vs,
    compute_admin_dose_mg,
    simulate_body_size,
    study_ladder,
)
from mmtrial.simulate.history import simulate_history
from mmtrial.simulate.params import CATEGORIES, SimulationParams
from mmtrial.simulate.treatment import (
    ACT_DISCONTINUE,
    ACT_INTERRUPT,
    ACT_REDUCE,
    HOLD,
    OFF,
    TRIG_HGB,
    TRIG_NEUT,
    TRIG_PLAT,
    TRIG_SODIUM,
    ctcae_grade,
    simulate_treatment,
)

GENERATOR = "mmtrial.simulate"
MODEL_VERSION = "1.2"  # 1.2: the regimen from the protocol; 1.1: OS by response class
DOMAINS = ("dm", "ex", "lb", "ae", "ds", "cm", "rs", "pr", "tu", "tr", "mh")
INF = 10**7
ProgressFn = Callable[[str, float], None]


@dataclass
class SimulatedStudy:
    """A simulated study: SDTM-style domains, per-subject ground truth and metadata."""

    domains: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)
    #: one row per subject and cycle started: USUBJID, CYCLE, CYCLEN (planned length), START_DT,
    #: PLANNED_START_DT (previous cycle's start + its length), DELAY_DAYS (written as _truth_cycles.csv)
    cycles: pd.DataFrame | None = None


@dataclass(frozen=True)
class ArmFrame:
    """The subjects of one arm of a randomised study, drawn by :mod:`mmtrial.simulate.twoarm`.

    ``simulate_study(..., arm_frame=...)`` uses these instead of its own draws: subject ids and
    sites, first-dose days (days since 1970-01-01), the study's common data cut-off, the arm's
    (ARMCD, ARM) and the prior-therapy generator (same signature as ``simulate_history``).
    """

    usubjid: np.ndarray
    site: np.ndarray
    first_dose: np.ndarray
    cutoff: int
    arm: tuple[str, str]
    history: Callable[..., Any]
    #: per-subject multiplier of the latent progression and death times (a prognostic factor, e.g.
    #: R-ISS III; ``None``: 1 for every subject)
    time_ratio: np.ndarray | None = None
    #: crossover of this (control) arm's subjects to the experimental drug after progression
    crossover: CrossoverPlan | None = None


@dataclass(frozen=True)
class CrossoverPlan:
    """Crossover of a control arm (:mod:`mmtrial.simulate.twoarm`, ``[simulation.two_arm]``).

    A subject whose confirmed progression is observed and whose new therapy starts on or after it
    crosses over when ``draw < prob`` (``draw``: one uniform number per subject); survival after
    the switch is multiplied by ``acceleration_factor`` (rank-preserving structural failure time
    model, Robins & Tsiatis 1991: untreated remaining time x factor), so a crossover-adjusted
    analysis (RPSFTM) has a known truth.
    """

    draw: np.ndarray
    prob: float
    acceleration_factor: float = 1.0


def _days(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


def _lognormal(rng, median, sigma, n):
    return median * np.exp(sigma * rng.standard_normal(n))


def _first_true(mask: np.ndarray, default: int) -> np.ndarray:
    return np.where(mask.any(axis=1), mask.argmax(axis=1), default)


def _last_true(mask: np.ndarray, default: int) -> np.ndarray:
    k = mask.shape[1]
    return np.where(mask.any(axis=1), k - 1 - mask[:, ::-1].argmax(axis=1), default)


def load_simulation(protocol: Protocol | str | Path | None,
                    params: SimulationParams | None = None) -> tuple[Protocol, SimulationConfig, SimulationParams]:
    """The protocol (``None``: bundled STORM), its ``[simulation]`` options and the parameters.

    A ``[simulation]`` section that does not validate raises ``mmtrial.errors.ProtocolError``
    naming the file and the key.
    """
    from pydantic import ValidationError

    from mmtrial.errors import ProtocolError

    proto = protocol if isinstance(protocol, Protocol) else Protocol.load(protocol)
    try:
        cfg = SimulationConfig.model_validate(proto.section("simulation"))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(["simulation", *(str(x) for x in err["loc"])])
        raise ProtocolError(err["msg"], file=proto.source_path, key=key) from None
    base = params or SimulationParams()
    if "assessment_interval" not in cfg.params:  # before the PFS/OS targets are solved for
        base = replace(base, assessment_interval=int(proto.visits.response_assessment_days))
    p = simulation_params(cfg, base)
    return proto, cfg, p


def simulate_study(n: int | None = None, seed: int | None = None, params: SimulationParams | None = None,
                   progress: ProgressFn | None = None,
                   protocol: Protocol | str | Path | None = None,
                   arm_frame: ArmFrame | None = None) -> SimulatedStudy:
    """Simulate a single-arm study of ``n`` subjects from ``seed`` under ``protocol``'s regimen.

    Parameters
    ----------
    n : number of subjects (the safety population; about 1% have no measurable disease);
        default the protocol's ``[simulation] n``, else 122.
    seed : random seed; the same (n, seed, params, protocol) gives identical frames; default the
        protocol's ``[simulation] seed``, else 7.
    params : model parameters (default: the calibrated :class:`SimulationParams`); the
        protocol's ``[simulation]`` options are applied on top (docs/simulator.md).
    progress : optional callback ``progress(stage, fraction)`` with fraction in [0, 1].
    protocol : a :class:`Protocol` or a protocol file; ``None`` is the bundled STORM protocol.
        Its regimen (cycles, dosing days, phases, units, step-up doses) and dose ladder drive
        the dosing model.
    arm_frame : one arm of a randomised study (:class:`ArmFrame`; simulate/twoarm.py): its
        subjects, first doses, the common cut-off, its ARMCD/ARM and prior-therapy generator.

    Returns
    -------
    SimulatedStudy with ``domains`` (dm ex lb ae ds cm rs pr tu tr mh, and vs when a dose is
    per m2 or per kg; dates ISO 8601 text), ``truth`` (one row per subject) and ``metadata``
    (``synthetic=True``, generator, seed, protocol ...).
    """
    proto, cfg, p = load_simulation(protocol, params)
    n = cfg.n if n is None and cfg.n is not None else (122 if n is None else n)
    seed = cfg.seed if seed is None and cfg.seed is not None else (7 if seed is None else seed)
    if n < 1:
        raise ValueError(f"simulate_study: n must be >= 1; got {n!r}")
    if proto.is_randomised and arm_frame is None:  # a randomised study: each arm with this model
        from mmtrial.simulate.twoarm import simulate_two_arm

        return simulate_two_arm(proto, cfg, n, seed, params=params, progress=progress)
    regimen = proto.regimen
    report = progress or (lambda stage, frac: None)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(12)]
    (r_demo, r_dis, r_course, r_evt, r_tox, r_ae, r_hist, r_bio, r_rs, r_misc, r_lab, r_adh) = streams
    report("subjects", 0.02)

    # --- subjects ---------------------------------------------------------------------------
    site = r_demo.integers(1, p.n_sites + 1, n)
    usubjid = np.char.add(np.char.add(np.char.zfill(site.astype(str), 3), "-"),
                          np.char.zfill(np.arange(1, n + 1).astype(str), 6)).astype(object)
    age = np.clip(np.rint(r_demo.normal(p.age_median, p.age_sd, n)), p.age_min, p.age_max)
    male = r_demo.random(n) < p.male_fraction
    race_names = np.array([r for r, _ in p.race_probs], dtype=object)
    race_p = np.array([w for _, w in p.race_probs])
    race = r_demo.choice(len(race_names), n, p=race_p / race_p.sum())
    start = _days(p.enrollment_start)
    first_dose = np.sort(start + r_demo.integers(0, p.enrollment_days + 1, n))
    cutoff = int(first_dose.max()) + p.cutoff_after_last_days
    if arm_frame is not None:  # one arm of a randomised study: its subjects and the common cut-off
        if len(arm_frame.usubjid) != n:
            raise ValueError(f"simulate_study: arm_frame has {len(arm_frame.usubjid)} subjects, n = {n}")
        usubjid, site = arm_frame.usubjid, arm_frame.site
        first_dose, cutoff = np.asarray(arm_frame.first_dose, dtype=np.int64), int(arm_frame.cutoff)
    cut_rel = (cutoff - first_dose).astype(float)

    # --- disease, biomarker latent score, response class -----------------------------------
    dis = dz.sample_disease(r_dis, n, p)
    planted = r_bio.standard_normal((n, len(p.biomarker_planted)))
    signs = np.array([s for _, s in p.biomarker_planted])
    score = planted @ signs / np.sqrt(len(signs))
    cls = dz.sample_classes(r_dis, dis.route, score, p)
    measurable = dis.route != dz.NONE
    report("disease course", 0.10)

    # --- assessment calendar (every 28 days, jitter, missed visits) --------------------------
    k_max = int(min(60, np.ceil(cut_rel.max() / p.assessment_interval) + 2))
    sched = (p.assessment_interval * np.arange(1, k_max + 1)[None, :]
             + r_course.integers(-p.assessment_jitter, p.assessment_jitter + 1, (n, k_max)))
    missed = r_course.random((n, k_max)) < p.missed_visit_prob
    order = np.argsort(missed, axis=1, kind="stable")
    vday = np.take_along_axis(sched, order, axis=1).astype(float)
    n_perf = (~missed).sum(axis=1)
    vday[np.arange(k_max)[None, :] >= n_perf[:, None]] = np.inf
    jj = np.arange(k_max)[None, :]

    prog_med = dict(p.prog_median_days)
    med = np.array([prog_med.get(c, 1.0) for c in CATEGORIES])[cls]
    t_prog = _lognormal(r_course, 1.0, p.prog_sigma, n) * med
    if arm_frame is not None and arm_frame.time_ratio is not None:
        t_prog = t_prog * arm_frame.time_ratio
    course = dz.design_course(r_course, cls, dis.route, dis, vday, n_perf, t_prog, p)
    ratio = dz.apply_progression(r_course, dis, course)
    j_pd = course.j_pd
    has_pd_grid = j_pd + 1 < n_perf
    first_pd = np.where(has_pd_grid, np.take_along_axis(vday, np.minimum(j_pd, k_max - 1)[:, None], 1)[:, 0], np.inf)
    confirm = np.where(has_pd_grid, np.take_along_axis(vday, np.minimum(j_pd + 1, k_max - 1)[:, None], 1)[:, 0], np.inf)

    # --- events: death, withdrawal, physician decision, cut-off ------------------------------
    is_ne = cls == dz.NE
    t_death_pre = r_evt.exponential(365.0 / p.death_hazard_per_year, n)
    # post-progression survival: lognormal, median by latent response class (deeper response,
    # longer survival after progression; docs/simulator.md "Events and follow-up")
    pps_by_class = dict(p.pps_median_days_by_class)
    pps_med = np.array([pps_by_class.get(c, p.pps_median_days) for c in CATEGORIES])[cls]
    pps = _lognormal(r_evt, 1.0, p.pps_sigma, n) * pps_med
    pps = np.where(cls == dz.PD, np.minimum(pps, r_evt.exponential(p.pd_class_death_median_days / np.log(2), n)), pps)
    if arm_frame is not None and arm_frame.time_ratio is not None:  # a prognostic factor (docs/simulator.md)
        pps = pps * arm_frame.time_ratio
        t_death_pre = t_death_pre * arm_frame.time_ratio
    t_wd = r_evt.exponential(365.0 / max(p.withdrawal_hazard_per_year, 1e-9), n)
    t_phys = r_evt.exponential(365.0 / max(p.physician_decision_hazard_per_year, 1e-9), n)
    t_ne = r_evt.uniform(4, 25, n)
    ne_death = r_evt.random(n) < p.ne_death_fraction
    t_death_pre = np.where(is_ne & ne_death, t_ne, t_death_pre)
    t_wd = np.where(is_ne & ~ne_death, t_ne, t_wd)
    # a terminal event never falls between the first PD and its confirmation
    shift = r_evt.uniform(1, 10, n)
    for arr in (t_death_pre, t_wd):
        inside = (arr >= first_pd) & (arr <= confirm)
        arr[inside] = confirm[inside] + shift[inside]
    inside = (cut_rel >= first_pd) & (cut_rel < confirm)
    cut_rel = np.where(inside, confirm, cut_rel)
    death = np.minimum(t_death_pre, confirm + pps)
    death_cause = np.where(t_death_pre <= confirm + pps, 1, 0)  # 0 progression, 1 other
    planned_eot = np.minimum.reduce([first_pd, death, t_wd, t_phys, cut_rel])
    planned_eot = np.where(is_ne, t_ne, planned_eot)
    planned_weeks = np.ceil(np.maximum(planned_eot, 1.0) / 7.0).astype(np.int64)
    report("dosing and toxicity", 0.25)

    # --- non-haematological adverse events (pre-drawn onsets) and the dosing model -----------
    frail = np.exp(p.toxicity_frailty_sigma * r_tox.standard_normal(n)
                   - 0.5 * p.toxicity_frailty_sigma**2)  # shared susceptibility, mean 1
    nh = _draw_nonheme(r_ae, frail, p)
    w_max = int(planned_weeks.max())
    g3_grid = np.zeros((n, w_max + 4), dtype=bool)
    g3 = (nh["grade"] >= 3) & (nh["onset"] < planned_eot[nh["subj"]])
    wk0 = (nh["onset"][g3] // 7).astype(np.int64) + 1
    for off in range(p.nonheme_g3_hold_weeks[1]):  # offsets of the hold, not records
        sel = off < nh["hold"][g3]
        g3_grid[nh["subj"][g3][sel], np.minimum(wk0[sel] + off, w_max + 3)] = True
    plan = build_plan(regimen, study_ladder(proto, regimen, cfg.reduction_fractions), 7 * w_max)
    tx = simulate_treatment(r_tox, planned_weeks, g3_grid[:, :w_max], frail, p, plan,
                            rng_adherence=r_adh, missed_dose_prob=cfg.missed_dose_prob)

    # fatal adverse event while on treatment
    on_end = np.fmin(planned_eot, np.where(tx.disc_ae, tx.disc_day + 1, np.inf))
    t_fatal = r_evt.exponential(365.0 / max(p.fatal_ae_hazard_per_year, 1e-9), n)
    ne_fatal = is_ne & ne_death & (r_evt.random(n) < 0.5)
    t_fatal = np.where(ne_fatal, t_death_pre, np.where(is_ne, np.inf, t_fatal))
    fatal = (t_fatal < on_end) & (t_fatal <= death) & (t_fatal < cut_rel)
    death = np.where(fatal, t_fatal, death)
    death_cause = np.where(fatal, 2, death_cause)  # 2 adverse event
    died = death <= cut_rel
    # truncate the weekly grids at death
    wk = 7.0 * np.arange(w_max)[None, :]
    after_death = wk >= death[:, None]
    tx.level[after_death] = OFF
    for v in tx.labs.values():
        v[after_death] = np.nan
    assert tx.admin is not None and tx.cycle_start is not None
    adm = tx.admin.keep(tx.admin.day < death[tx.admin.subj])  # nothing given on or after death
    last_dose = np.zeros(n)  # the study drug's last administration (RFXENDTC)
    sd = adm.drug == plan.study
    np.maximum.at(last_dose, adm.subj[sd], adm.day[sd].astype(float))
    last_dose = np.minimum(last_dose, np.where(died, np.floor(death), np.inf))
    cycle_start = np.where(tx.cycle_start < death[:, None], tx.cycle_start, np.nan)
    disc_ae = tx.disc_ae & (tx.disc_day < death)

    # end of treatment: reason and day
    eot_reasons = np.array(["PROGRESSIVE DISEASE", "ADVERSE EVENT", "DEATH", "WITHDRAWAL BY SUBJECT",
                            "PHYSICIAN DECISION", "ONGOING"], dtype=object)
    cand = np.stack([first_pd, np.where(disc_ae, tx.disc_day, np.inf), death, t_wd, t_phys, cut_rel])
    cand[:, is_ne] = np.inf
    # a not-evaluable subject who dies (before the cut-off) before withdrawing ends treatment by death
    cand[2, is_ne] = np.where(ne_death | died, death, np.inf)[is_ne]
    cand[3, is_ne] = np.where(~ne_death, t_wd, np.inf)[is_ne]
    eot_reason = cand.argmin(axis=0)
    eot_day = cand.min(axis=0)
    eot_day = np.maximum(eot_day, last_dose)
    eot_day = np.minimum(eot_day, np.where(died, death, np.inf))  # never after death (input check AFTER_DEATH)
    ongoing = eot_reason == 5

    # new anti-myeloma therapy: after discontinuation for AE without PD, and after PD
    newtx = np.full(n, np.inf)
    ae_nt = disc_ae & (r_evt.random(n) < p.newtx_after_ae_prob)
    s = tx.disc_day + r_evt.uniform(14, 60, n)
    s = np.where((s >= first_pd) & (s <= confirm), confirm + r_evt.uniform(1, 10, n), s)
    newtx = np.where(ae_nt, s, newtx)
    pd_nt = (confirm < death) & (confirm <= cut_rel) & (r_evt.random(n) < p.subsequent_therapy_prob)
    newtx = np.fmin(newtx, np.where(pd_nt, confirm + r_evt.uniform(7, 45, n), np.inf))
    newtx = np.where((newtx < death) & (newtx <= cut_rel), newtx, np.inf)

    # assessments performed: before death, withdrawal, new therapy, cut-off; up to confirmation
    fu_end = np.minimum.reduce([death - 0.5, t_wd, newtx - 0.5, cut_rel, confirm])
    inc = (vday <= fu_end[:, None]) & (jj < n_perf[:, None]) & (jj <= (j_pd + 1)[:, None])
    inc &= ~is_ne[:, None]
    level = np.where(inc, course.level, -1)
    pd_obs = has_pd_grid & (confirm <= fu_end)
    crossed = np.zeros(n, dtype=bool)
    if arm_frame is not None and arm_frame.crossover is not None:
        death, died, crossed = _cross_over(arm_frame.crossover, pd_obs, first_pd, newtx, death, cut_rel)
    report("truth", 0.40)

    truth = _truth(usubjid, first_dose, level, inc, vday, pd_obs, first_pd, death, died,
                   death_cause, measurable, dis, cls, newtx, cut_rel, t_wd, score, planted, p)
    report("laboratory domain", 0.50)
    hist = (arm_frame.history if arm_frame is not None else simulate_history)(r_hist, usubjid, first_dose,
                                                                               dis.terms, p)

    lb = _lb(r_lab, p, usubjid, first_dose, male, dis, ratio, course, inc, vday, tx, truth, cls)
    report("adverse events", 0.75)
    ae = _ae(r_ae, p, usubjid, first_dose, tx, nh, eot_day, death, died, death_cause, fatal, cut_rel)
    body = simulate_body_size(r_adh, male, plan.table.shape[2] - 1, cfg) if plan.body_size else None
    dose_mg = compute_admin_dose_mg(adm, plan, body, regimen.bsa_formula)
    ex = build_ex(p.study_id, usubjid, first_dose, adm, dose_mg, plan, tx.level == HOLD)
    ds = _ds(r_misc, p, usubjid, first_dose, eot_reason, eot_reasons, eot_day, ongoing, died, death,
             death_cause, t_wd, cut_rel, is_ne, ne_death, last_dose, vday, inc)
    dm = _dm(p, usubjid, site, age, male, race, race_names, first_dose, last_dose, died, death,
             arm_frame.arm if arm_frame is not None else arm_label(regimen))
    rs = _rs(r_rs, p, usubjid, first_dose, level, vday, inc, hist.rs)
    cm = _cm_subsequent(r_misc, p, usubjid, first_dose, newtx, hist.cm)
    tu, tr = _tu_tr(r_misc, p, usubjid, first_dose, dis, ratio, inc, vday, first_pd, pd_obs)
    report("assembling", 0.92)

    truth["TRUE_PENTA"] = np.where(hist.penta, "Y", "N")
    truth["TRUE_NREG"] = hist.n_regimens
    truth["TRUE_TRANSPLANT"] = np.where(hist.transplant, "Y", "N")
    truth["TRUE_EOT_REASON"] = eot_reasons[eot_reason]
    truth["TRUE_LAST_DOSE_DT"] = datecol(first_dose + last_dose.astype(np.int64))
    modified = ((tx.level > 0) | (tx.level == HOLD)).any(axis=1) | (tx.n_delays > 0)
    truth["TRUE_DOSE_MODIFIED"] = np.where(modified, "Y", "N")
    truth["TRUE_N_CYCLES"] = (~np.isnan(cycle_start)).sum(axis=1)
    truth["TRUE_N_DELAYS"] = tx.n_delays
    truth["TRUE_MISSED_DOSES"] = tx.missed
    # full adherence: every planned administration up to the last dose given on its day at the
    # protocol dose (no reduction, interruption, delay or missed dose)
    truth["TRUE_FULL_ADHERENCE"] = np.where(~modified & (tx.missed == 0), "Y", "N")
    if arm_frame is not None and arm_frame.crossover is not None:
        truth["TRUE_CROSSOVER"] = np.where(crossed, "Y", "N")
        truth["TRUE_CROSSOVER_DT"] = datecol(first_dose + np.where(crossed, np.floor(newtx), 0).astype(np.int64),
                                             ~crossed)
    domains = {"dm": dm, "ex": ex, "lb": lb, "ae": ae, "ds": ds, "cm": cm, "rs": rs,
               "pr": hist.pr, "tu": tu, "tr": tr, "mh": hist.mh}
    if body is not None:
        screen_vs = first_dose - r_adh.integers(3, 15, n)
        domains["vs"] = build_vs(p.study_id, usubjid, first_dose, screen_vs, body, cycle_start)
    note = ("Synthetic data from mmtrial's STORM-like simulator; not trial data." if proto.study.id == "STORM"
            else f"Synthetic data from mmtrial's simulator under protocol {proto.study.id}; not trial data.")
    meta = {"synthetic": True, "generator": GENERATOR, "version": MODEL_VERSION, "seed": int(seed),
            "n": int(n), "study_id": p.study_id, "data_cutoff": str(np.datetime64(cutoff, "D")),
            "protocol": proto.source_path, "protocol_id": proto.study.id,
            "study_drug": regimen.study_drug.upper(), "params": p.to_dict(),
            "simulation": cfg.model_dump(mode="json"), "note": note}
    report("done", 1.0)
    return SimulatedStudy(domains=domains, truth=truth, metadata=meta,
                          cycles=_truth_cycles(usubjid, first_dose, cycle_start, plan.cycle_len))


def _cross_over(plan: CrossoverPlan, pd_obs: np.ndarray, first_pd: np.ndarray, newtx: np.ndarray,
                death: np.ndarray, cut_rel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Death, died and crossed-over after the crossover of a control arm (:class:`CrossoverPlan`).

    Eligible: confirmed progression observed and the new therapy (the crossover regimen) started
    on or after the progression date (data contract v2). The survival remaining at the switch is
    multiplied by the acceleration factor: death' = x + AF (death - x), x the switch day
    (Robins & Tsiatis 1991: the untreated remaining time is (death' - x) / AF).
    """
    eligible = pd_obs & np.isfinite(newtx) & (np.floor(newtx) >= np.floor(first_pd))
    crossed = eligible & (np.asarray(plan.draw) < plan.prob)
    x = np.where(crossed, newtx, 0.0)
    death = np.where(crossed, x + plan.acceleration_factor * (death - x), death)
    return death, death <= cut_rel, crossed


def _truth_cycles(usubjid, first_dose, cycle_start, cycle_len) -> pd.DataFrame:
    """Cycles started per subject with their planned and actual start (ground truth)."""
    si, ci = np.nonzero(~np.isnan(cycle_start))
    start = cycle_start[si, ci]
    prev = np.where(ci > 1, cycle_start[si, np.maximum(ci - 1, 0)] + cycle_len[np.maximum(ci - 1, 0)], 0.0)
    return pd.DataFrame({
        "USUBJID": strcol(usubjid, si),
        "CYCLE": ci.astype(np.int64),
        "CYCLEN": cycle_len[ci].astype(np.int64),
        "START_DT": datecol(first_dose[si] + start.astype(np.int64)),
        "PLANNED_START_DT": datecol(first_dose[si] + prev.astype(np.int64)),
        "DELAY_DAYS": (start - prev).astype(np.int64),
    })


# ---------------------------------------------------------------------------------------------
def _draw_nonheme(rng: np.random.Generator, frail: np.ndarray,
                  p: SimulationParams) -> dict[str, np.ndarray]:
    """One potential episode per subject and term: onset day, grade, duration, hold weeks.

    The chance that an episode is grade 3 scales with the subject's shared susceptibility.
    """
    n = len(frail)
    t = len(p.nonheme_aes)
    prob = np.array([a[2] for a in p.nonheme_aes])
    onset_mean = np.array([a[3] for a in p.nonheme_aes])
    p3 = np.array([a[4] for a in p.nonheme_aes])
    occurs = rng.random((n, t)) < prob[None, :]
    subj, term = np.nonzero(occurs)
    m = len(subj)
    onset = np.floor(rng.exponential(onset_mean[term])) + 1.0
    u = rng.random(m)
    grade = np.where(u < np.minimum(p3[term] * frail[subj], 0.95), 3,
                     np.where(rng.random(m) < 0.62, 1, 2))
    dur = np.ceil(rng.exponential(12.0, m)) + 2.0
    hold = rng.integers(p.nonheme_g3_hold_weeks[0], p.nonheme_g3_hold_weeks[1] + 1, m)
    return {"subj": subj, "term": term, "onset": onset, "grade": grade, "dur": dur, "hold": hold,
            "u": rng.random(m), "u2": rng.random(m)}


def _truth(usubjid, first_dose, level, inc, vday, pd_obs, first_pd, death, died, death_cause,
           measurable, dis, cls, newtx, cut_rel, t_wd, score, planted, p) -> pd.DataFrame:
    """Confirmed best response and dates from the designed per-assessment categories.

    Rule (Kumar 2016; Durie 2006): a category needs two consecutive assessments at that level
    or better; SD needs one; PD needs two consecutive PD assessments; NE without assessments.
    The response (progression) date is the first assessment of the confirming pair.
    """
    n, _k = level.shape
    rank = np.where(level >= 0, dz.RANK[np.maximum(level, 0)], -1)
    nxt = np.concatenate([rank[:, 1:], np.full((n, 1), -1)], axis=1)
    pair = np.minimum(rank, nxt)
    pair_ok = np.where(pair >= dz.RANK[dz.MR], pair, -1)
    best_pair = pair_ok.max(axis=1)
    any_sd = (rank >= dz.RANK[dz.SD]).any(axis=1)
    pd_pair = ((rank == dz.RANK[dz.PD]) & (nxt == dz.RANK[dz.PD])).any(axis=1)
    best_rank = np.where(best_pair >= 0, best_pair,
                         np.where(any_sd, dz.RANK[dz.SD],
                                  np.where(pd_pair, dz.RANK[dz.PD], dz.RANK[dz.NE])))
    cat_of_rank = np.array(CATEGORIES, dtype=object)[::-1]  # rank 0 NE ... 7 sCR
    bor = cat_of_rank[best_rank]
    resp_j = _first_true(pair >= dz.RANK[dz.PR], -1)
    mr_j = _first_true(pair >= dz.RANK[dz.MR], -1)
    day_at = lambda jx: np.where(jx >= 0, np.take_along_axis(  # noqa: E731
        np.where(np.isfinite(vday), vday, 0), np.maximum(jx, 0)[:, None], 1)[:, 0], np.nan)
    resp_day = np.where(best_rank >= dz.RANK[dz.PR], day_at(resp_j), np.nan)
    mr_day = np.where(best_rank >= dz.RANK[dz.MR], day_at(mr_j), np.nan)
    pd_day = np.where(pd_obs, first_pd, np.nan)
    last_j = _last_true(inc, -1)
    last_adq = np.where(pd_obs, np.nan, day_at(last_j))
    # PFS (truth): PD or death (without new therapy before it), else censored at the last
    # adequate assessment (day 0 when none); days = date - first dose + 1 (ADaM convention)
    death_event = died & (death < newtx) & np.isnan(pd_day)
    pfs_evt = ~np.isnan(pd_day) | death_event
    pfs_day = np.where(~np.isnan(pd_day), pd_day,
                       np.where(death_event, death, np.nan_to_num(last_adq, nan=0.0)))
    lka = np.where(died, death, np.minimum(cut_rel, t_wd))
    os_day = np.where(died, death, lka)

    def dt(days):
        d = np.asarray(days, dtype=float)
        miss = ~np.isfinite(d)
        return datecol(first_dose + np.where(miss, 0, np.floor(d)).astype(np.int64), miss)

    causes = np.array(["PROGRESSIVE DISEASE", "OTHER", "ADVERSE EVENT"], dtype=object)
    bor = np.where(measurable, bor, None)
    out = pd.DataFrame({
        "USUBJID": pd.Series(usubjid).astype("str"),
        "TRUE_MEASURABLE": np.where(measurable, "Y", "N"),
        "TRUE_ROUTE": dz.ROUTE_NAMES[dis.route],
        "TRUE_MTYPE": np.array(["IGG", "IGA", "LIGHT CHAIN"], dtype=object)[dis.mtype],
        "TRUE_LC": np.where(dis.kappa, "KAPPA", "LAMBDA"),
        "TRUE_CLASS": np.array(CATEGORIES, dtype=object)[cls],
        "TRUE_BOR": pd.Series(bor, dtype="str"),
        "TRUE_RESPONDER": np.where(measurable, np.where(best_rank >= dz.RANK[dz.PR], "Y", "N"), None),
        "TRUE_CBR": np.where(measurable, np.where(best_rank >= dz.RANK[dz.MR], "Y", "N"), None),
        "TRUE_RESP_DT": dt(resp_day),
        "TRUE_MR_DT": dt(mr_day),
        "TRUE_PD_DT": dt(pd_day),
        "TRUE_DTH_DT": dt(np.where(died, death, np.nan)),
        "TRUE_DTH_CAUSE": np.where(died, causes[death_cause], None),
        "TRUE_NEWTX_DT": dt(newtx),
        "TRUE_LAST_ADEQ_DT": dt(last_adq),
        "TRUE_FIRST_DOSE_DT": dt(np.zeros(n)),
        "TRUE_PFS_DAYS": np.floor(pfs_day) + 1,
        "TRUE_PFS_EVENT": pfs_evt.astype(np.int64),
        "TRUE_OS_DAYS": np.floor(os_day) + 1,
        "TRUE_OS_EVENT": died.astype(np.int64),
        "TRUE_TTR_DAYS": np.floor(resp_day) + 1,
        "TRUE_N_ASSESSMENTS": inc.sum(axis=1),
        "PLANTED_SCORE": score,
    })
    for (name, _), col in zip(p.biomarker_planted, planted.T, strict=True):
        out[f"PLANTED_{name}"] = col
    for c in ("TRUE_MEASURABLE", "TRUE_ROUTE", "TRUE_MTYPE", "TRUE_LC", "TRUE_CLASS", "TRUE_RESPONDER",
              "TRUE_CBR", "TRUE_DTH_CAUSE"):
        out[c] = out[c].astype("str")
    return out


# --- laboratory ------------------------------------------------------------------------------
LB_COLUMNS = ["USUBJID", "LBCAT", "LBSCAT", "LBTESTCD", "LBSPEC", "LBSTRESN",
              "LBSTRESC", "LBSTRESU", "LBSTNRLO", "LBSTNRHI", "VISIT", "LBDTC"]
TESTS = {  # testcd: (name, spec, unit, lo, hi, alt unit, factor to alt, decimals in alt)
    "PLAT": ("Platelets", "BLOOD", "10^9/L", 150.0, 400.0, None, 1.0, 0),
    "NEUT": ("Neutrophils", "BLOOD", "10^9/L", 2.0, 7.5, None, 1.0, 2),
    "HGB": ("Hemoglobin", "BLOOD", "g/dL", 12.0, 16.0, "g/L", 10.0, 0),
    "WBC": ("Leukocytes", "BLOOD", "10^9/L", 4.0, 11.0, None, 1.0, 2),
    "LYM": ("Lymphocytes", "BLOOD", "10^9/L", 1.0, 4.0, None, 1.0, 2),
    "SODIUM": ("Sodium", "SERUM", "mmol/L", 135.0, 145.0, None, 1.0, 0),
    "CREAT": ("Creatinine", "SERUM", "mg/dL", 0.6, 1.2, "umol/L", 88.42, 0),
    "CACORR": ("Corrected Calcium", "SERUM", "mg/dL", 8.5, 10.5, None, 1.0, 1),
}


LAB_DECIMALS = {"PLAT": 0, "NEUT": 2, "HGB": 1, "WBC": 2, "LYM": 2, "SODIUM": 0, "CREAT": 2, "CACORR": 1}

# Physiological floors of the linear lab models (default units): (floor, softness). The dosing
# model lowers haemoglobin and sodium linearly with exposure, which unbounded reaches values no
# patient has (Hb -39.7 g/dL). Recorded values pass through a soft floor: unchanged well above
# it (< 0.001 difference 3.5 softness units above), approaching it smoothly below (in practice
# transfusion and sodium correction intervene). Both floors lie below every CTCAE v5.0
# threshold (Hb < 8 g/dL grade 3; Na < 120 mmol/L grade 4), so grades, dose decisions and the
# STORM calibration are unchanged; data/plausibility.toml LAB_RANGE holds what is plausible.
LAB_FLOORS = {"HGB": (4.5, 0.5), "SODIUM": (110.0, 1.0)}


def bound_lab_values(code: str, values: np.ndarray) -> np.ndarray:
    """Soft physiological floor ``floor + s * log(1 + exp((x - floor) / s))`` (LAB_FLOORS)."""
    if code not in LAB_FLOORS:
        return values
    floor, s = LAB_FLOORS[code]
    return floor + s * np.logaddexp(0.0, (values - floor) / s)


def _visit_labels(k: int, offset_week: int = 0) -> np.ndarray:
    c = np.arange(k) + 2
    return np.char.add(np.char.add("CYCLE ", c.astype(str)), " DAY 1").astype(object)


def _lb(rng, p, usubjid, first_dose, male, dis, ratio, course, inc, vday, tx, truth, cls):
    b = FrameBuilder(LB_COLUMNS, numeric=("LBSTRESN", "LBSTNRLO", "LBSTNRHI"), dates=("LBDTC",))
    n = len(usubjid)
    subj_cats = usubjid
    alt = dis.alt_units

    # weekly haematology and chemistry while on treatment
    w_max = tx.level.shape[1]
    week_labels = np.array([f"CYCLE {w // 4 + 1} DAY {(w % 4) * 7 + 1}" for w in range(w_max)],
                           dtype=object)  # one label per week of the grid
    for code, (_name, spec, unit, lo, hi, alt_unit, fac, nd) in TESTS.items():
        grid = tx.labs[code]
        si, wi = np.nonzero(~np.isnan(grid))
        val = np.round(bound_lab_values(code, grid[si, wi].astype(np.float64)), LAB_DECIMALS[code])
        lo_v = np.where((code == "HGB") & male[si], 13.0, lo)
        hi_v = np.where((code == "HGB") & male[si], 17.0, hi)
        use_alt = alt[si] if alt_unit else np.zeros(len(si), bool)
        val = np.where(use_alt, np.round(val * fac, nd), val)
        units = [unit, alt_unit or unit]
        b.add(len(si), USUBJID=(subj_cats, si),
              LBCAT="HEMATOLOGY" if spec == "BLOOD" else "CHEMISTRY",
              LBTESTCD=code, LBSPEC=spec, LBSTRESN=val,
              LBSTRESU=(units, use_alt.astype(np.int64)),
              LBSTNRLO=np.where(use_alt, lo_v * fac, lo_v), LBSTNRHI=np.where(use_alt, hi_v * fac, hi_v),
              VISIT=(week_labels, wi), LBDTC=first_dose[si] + 7 * wi)

    # disease assessments: screening baseline and each performed assessment
    screen = first_dose - rng.integers(3, 15, n)
    k = ratio.shape[1]
    r_all = np.concatenate([np.ones((n, 1)), np.nan_to_num(ratio, nan=1.0)], axis=1)
    days = np.concatenate([screen[:, None].astype(float), first_dose[:, None] + vday], axis=1)
    incl = np.concatenate([np.ones((n, 1), bool), inc], axis=1)
    lvl = np.concatenate([np.full((n, 1), dz.SD), np.where(inc, course.level, -1)], axis=1)
    labels = np.concatenate([["SCREENING"], _visit_labels(k)]).astype(object)
    heavy_like = (dis.mtype < 2)
    kap_norm = np.where(dis.kappa, dz.KAPPA_NORMAL, dz.LAMBDA_NORMAL)  # involved chain normal
    un_norm = np.where(dis.kappa, dz.LAMBDA_NORMAL, dz.KAPPA_NORMAL)
    rc = np.minimum(r_all, 1.0)
    uninv = dis.uninv0[:, None] + (un_norm - dis.uninv0)[:, None] * (1.0 - rc)
    urine_route = dis.route == dz.URINE
    serum = np.where(heavy_like[:, None], dis.m0[:, None] * r_all, 0.0)
    urine = np.where(urine_route[:, None], dis.u0[:, None] * r_all, dis.u0[:, None] * r_all ** 2)
    inv = np.where(heavy_like[:, None], kap_norm[:, None] + dis.excess0[:, None] * r_all,
                   uninv + dis.dflc0[:, None] * r_all)
    kappa = np.where(dis.kappa[:, None], inv, uninv)
    lam = np.where(dis.kappa[:, None], uninv, inv)
    si, ji = np.nonzero(incl)
    d = days[si, ji]
    a = alt[si]
    lab = (labels, ji)
    common = dict(USUBJID=(subj_cats, si), LBCAT="DISEASE ASSESSMENT", VISIT=lab,
                  LBDTC=d)
    sv = np.round(serum[si, ji], 2)
    b.add(len(si), **common, LBTESTCD="MPROTEIN", LBSPEC="SERUM",
          LBSTRESN=np.where(a, np.round(sv * 10, 1), sv), LBSTRESU=(["g/dL", "g/L"], a.astype(np.int64)))
    b.add(len(si), **common, LBTESTCD="MPROTEIN", LBSPEC="URINE",
          LBSTRESN=np.round(urine[si, ji], 0), LBSTRESU="mg/24h")
    # FLC (occasionally missing for heavy-chain subjects, where it is not the response marker)
    flc_keep = ~(heavy_like[si] & (ji > 0) & (lvl[si, ji] > dz.CR)
                 & (rng.random(len(si)) < p.missing_flc_prob))
    fs, fj, fa = si[flc_keep], ji[flc_keep], a[flc_keep]
    for code, _name, mat, lo, hi in (("KAPPAFLC", "Kappa Free Light Chain", kappa, 0.33, 1.94),
                                    ("LAMBDFLC", "Lambda Free Light Chain", lam, 0.57, 2.63)):
        v = np.round(mat[fs, fj], 2)
        b.add(len(fs), USUBJID=(subj_cats, fs), LBCAT="DISEASE ASSESSMENT",
              VISIT=(labels, fj), LBDTC=days[fs, fj], LBTESTCD=code, LBSPEC="SERUM",
              LBSTRESN=np.where(fa, np.round(v * 10, 1), v),
              LBSTRESU=(["mg/dL", "mg/L"], fa.astype(np.int64)),
              LBSTNRLO=np.where(fa, lo * 10, lo), LBSTNRHI=np.where(fa, hi * 10, hi))
    # immunofixation: at screening and whenever the designed level is VGPR or better
    ife = (ji == 0) | ((lvl[si, ji] >= 0) & (lvl[si, ji] <= dz.VGPR))
    isi, iji = si[ife], ji[ife]
    cr_level = (lvl[isi, iji] >= 0) & (lvl[isi, iji] <= dz.CR) & (iji > 0)
    serum_pos = ~cr_level
    urine_pos = ~cr_level & ((dis.u0[isi] > 0) | ~heavy_like[isi])
    for spec, pos in (("SERUM", serum_pos), ("URINE", urine_pos)):
        b.add(len(isi), USUBJID=(subj_cats, isi), LBCAT="DISEASE ASSESSMENT",
              VISIT=(labels, iji), LBDTC=days[isi, iji], LBTESTCD="IFE",
              LBSPEC=spec, LBSTRESC=(["NEGATIVE", "POSITIVE"], pos.astype(np.int64)), LBSTRESU=None)
    # marrow: screening plasma cells; at the first CR-level assessment plasma cells and clonality
    b.add(n, USUBJID=(subj_cats, np.arange(n)), LBCAT="DISEASE ASSESSMENT",
          VISIT="SCREENING", LBDTC=screen, LBTESTCD="BMPC",
          LBSPEC="BONE MARROW", LBSTRESN=np.round(dis.bmpc0, 0), LBSTRESU="%")
    at_cr = np.where(inc, course.level, -1)
    at_cr = (at_cr >= 0) & (at_cr <= dz.CR)
    first_cr = _first_true(at_cr, -1)
    cs = np.flatnonzero(first_cr >= 0)
    cj = first_cr[cs]
    cday = first_dose[cs] + vday[cs, cj]
    for code, _name, kwargs in (
            ("BMPC", "Bone Marrow Plasma Cells",
             dict(LBSTRESN=np.round(rng.uniform(0.5, 3.5, len(cs)), 1), LBSTRESU="%")),
            ("BMCLONAL", "Clonal Plasma Cells in Marrow",
             dict(LBSTRESC=(["NEGATIVE", "POSITIVE"], (cls[cs] != dz.SCR).astype(np.int64)),
                  LBSTRESU=None))):
        b.add(len(cs), USUBJID=(subj_cats, cs), LBCAT="DISEASE ASSESSMENT",
              VISIT=(labels[1:], cj), LBDTC=cday, LBTESTCD=code, LBSPEC="BONE MARROW",
              **kwargs)

    # cytogenetics (before first dose)
    cyto = p.cyto_probs
    for code, prob in cyto:
        pos = rng.random(n) < prob
        b.add(n, USUBJID=(subj_cats, np.arange(n)), LBCAT="CYTOGENETICS",
              LBTESTCD=code,
              LBSPEC="BONE MARROW", LBSTRESC=(["NEGATIVE", "POSITIVE"], pos.astype(np.int64)),
              LBSTRESU=None, VISIT="SCREENING", LBDTC=screen)

    _biomarkers(rng, p, b, usubjid, truth, screen)
    return b.build()


def _biomarkers(rng, p, b, usubjid, truth, screen) -> None:
    """Pre-treatment panel (NPX, log2 scale) for a training and a validation set.

    Planted markers equal the latent values that drive response (plus assay noise); the others
    are noise. Subjects are sampled among the efficacy population with responders enriched as in
    STORM's analysis (16 responders and 19 non-responders in training; issue 8).
    """
    resp = (truth["TRUE_RESPONDER"] == "Y").to_numpy()
    meas = (truth["TRUE_MEASURABLE"] == "Y").to_numpy()
    idx_r = rng.permutation(np.flatnonzero(resp & meas))
    idx_n = rng.permutation(np.flatnonzero(~resp & meas))
    n_tr_r = min(p.biomarker_training_responders, len(idx_r))
    n_tr_n = min(p.biomarker_training_n - p.biomarker_training_responders, len(idx_n))
    n_va_r = min(p.biomarker_validation_responders, len(idx_r) - n_tr_r)
    n_va_n = min(p.biomarker_validation_n - p.biomarker_validation_responders, len(idx_n) - n_tr_n)
    train = np.concatenate([idx_r[:n_tr_r], idx_n[:n_tr_n]])
    valid = np.concatenate([idx_r[n_tr_r:n_tr_r + n_va_r], idx_n[n_tr_n:n_tr_n + n_va_n]])
    subj = np.sort(np.concatenate([train, valid]))
    if len(subj) == 0:
        return
    split = np.isin(subj, valid).astype(np.int64)
    planted_names = [m for m, _ in p.biomarker_planted]
    names = planted_names + [f"PRT{i:03d}" for i in range(1, p.biomarker_n_markers - len(planted_names) + 1)]
    m = len(names)
    latent = rng.standard_normal((len(subj), m))
    planted = truth[[f"PLANTED_{x}" for x in planted_names]].to_numpy()[subj]
    signs = np.array([sg for _, sg in p.biomarker_planted])
    load = p.biomarker_marker_loading
    common = signs[None, :] * truth["PLANTED_SCORE"].to_numpy()[subj][:, None]
    marker = load * common + np.sqrt(1.0 - load**2) * planted
    latent[:, : len(planted_names)] = marker + 0.25 * latent[:, : len(planted_names)]
    centre = rng.uniform(2.0, 9.0, m)
    spread = rng.uniform(0.5, 1.5, m)
    vals = np.round(centre[None, :] + spread[None, :] * latent, 3)
    si = np.repeat(subj, m)
    mi = np.tile(np.arange(m), len(subj))
    b.add(len(si), USUBJID=(usubjid, si), LBCAT="BIOMARKER",
          LBSCAT=(["TRAINING", "VALIDATION"], np.repeat(split, m)), LBTESTCD=(names, mi),
          LBSPEC="PLASMA", LBSTRESN=vals[np.repeat(np.arange(len(subj)), m), mi],
          LBSTRESU="NPX", VISIT="SCREENING", LBDTC=screen[si])


# --- adverse events -------------------------------------------------------------------------
AE_COLUMNS = ["STUDYID", "USUBJID", "AETERM", "AEDECOD", "AEBODSYS", "AESTDTC", "AEENDTC", "AETOXGR",
              "AESER", "AEREL", "AEACN", "AEOUT"]
ACN = ["DOSE NOT CHANGED", "DOSE REDUCED", "DRUG INTERRUPTED", "DRUG WITHDRAWN", "NOT APPLICABLE"]
OUT = ["RECOVERED/RESOLVED", "NOT RECOVERED/NOT RESOLVED", "FATAL"]
LAB_AES = (  # lab test, trigger code, AEDECOD, AEBODSYS
    ("PLAT", TRIG_PLAT, "THROMBOCYTOPENIA", "BLOOD AND LYMPHATIC SYSTEM DISORDERS"),
    ("HGB", TRIG_HGB, "ANAEMIA", "BLOOD AND LYMPHATIC SYSTEM DISORDERS"),
    ("NEUT", TRIG_NEUT, "NEUTROPENIA", "BLOOD AND LYMPHATIC SYSTEM DISORDERS"),
    ("SODIUM", TRIG_SODIUM, "HYPONATRAEMIA", "METABOLISM AND NUTRITION DISORDERS"),
)
FATAL_TERMS = (("SEPSIS", "INFECTIONS AND INFESTATIONS"), ("PNEUMONIA", "INFECTIONS AND INFESTATIONS"),
               ("CARDIAC ARREST", "CARDIAC DISORDERS"), ("RESPIRATORY FAILURE",
                                                         "RESPIRATORY, THORACIC AND MEDIASTINAL DISORDERS"))


def _ae(rng, p, usubjid, first_dose, tx, nh, eot_day, death, died, death_cause, fatal, cut_rel):
    b = FrameBuilder(AE_COLUMNS, numeric=("AETOXGR",), dates=("AESTDTC", "AEENDTC"))
    n, w_max = tx.level.shape
    # laboratory AEs: runs of weeks graded worse than baseline; grade = worst in the run
    for test, trig, decod, soc in LAB_AES:
        grid = tx.labs[test]
        g = ctcae_grade(test, grid)
        base = g[:, 0]
        worse = (g > np.maximum(base, 0)[:, None]) & (g >= 1)
        prev = np.concatenate([np.zeros((n, 1), bool), worse[:, :-1]], axis=1)
        nxt = np.concatenate([worse[:, 1:], np.zeros((n, 1), bool)], axis=1)
        st_s, st_w = np.nonzero(worse & ~prev)
        en_s, en_w = np.nonzero(worse & ~nxt)
        if len(st_s) == 0:
            continue
        flat = worse.ravel()
        gf = np.where(flat, g.ravel(), 0)
        starts_flat = st_s * w_max + st_w
        ends_flat = en_s * w_max + en_w
        runmax = np.maximum.reduceat(gf, starts_flat)  # runs never cross subjects
        # worst action this term triggered during the run
        act = np.where(tx.trigger.ravel() == trig, tx.action.ravel(), 0).astype(np.int64)
        act_code = np.select([act == ACT_DISCONTINUE, act == ACT_INTERRUPT, act == ACT_REDUCE], [3, 2, 1], 0)
        run_act = np.maximum.reduceat(act_code, starts_flat)
        # reduceat spans to the next start, which can include later weeks of other runs: mask
        run_act = np.where(ends_flat >= starts_flat, run_act, 0)
        if test == "SODIUM":  # 125-129 mmol/L: grade 3 when symptomatic (CTCAE v5.0)
            na_min = np.minimum.reduceat(np.where(flat, grid.ravel(), np.inf), starts_flat)
            symptomatic = (na_min < 130) & (rng.random(len(runmax)) < p.hyponatremia_symptomatic_prob)
            runmax = np.where((runmax == 2) & symptomatic, 3, runmax)
        report = (runmax >= 2) | (rng.random(len(runmax)) < 0.4)
        has_next_lab = (en_w + 1 < w_max) & ~np.isnan(grid[en_s, np.minimum(en_w + 1, w_max - 1)])
        end_day = np.where(has_next_lab, 7.0 * (en_w + 1), np.nan)
        sel = np.flatnonzero(report)
        s = st_s[sel]
        b.add(len(sel), STUDYID=p.study_id, USUBJID=(usubjid, s), AETERM=decod.capitalize(),
              AEDECOD=decod, AEBODSYS=soc, AESTDTC=first_dose[s] + 7.0 * st_w[sel],
              AEENDTC=first_dose[s] + end_day[sel], AETOXGR=runmax[sel].astype(float),
              AESER=(["N", "Y"], ((runmax[sel] >= 4) & (rng.random(len(sel)) < 0.25)).astype(np.int64)),
              AEREL=(["N", "Y"], (rng.random(len(sel)) < 0.9).astype(np.int64)),
              AEACN=(ACN, run_act[sel]),
              AEOUT=(OUT, np.isnan(end_day[sel]).astype(np.int64)))

    # non-haematological AEs: treatment-emergent (onset by end of treatment + 30 days)
    subj, term = nh["subj"], nh["term"]
    onset = nh["onset"]
    te = (onset <= eot_day[subj] + 30) & (onset < death[subj]) & (onset <= cut_rel[subj])
    subj, term, onset = subj[te], term[te], onset[te]
    grade, dur, u, u2 = nh["grade"][te], nh["dur"][te], nh["u"][te], nh["u2"][te]
    decods = np.array([a[0] for a in p.nonheme_aes], dtype=object)
    socs = np.array([a[1] for a in p.nonheme_aes], dtype=object)
    pser = np.array([a[5] for a in p.nonheme_aes])
    end = onset + dur
    resolved = (end < death[subj]) & (end <= cut_rel[subj])
    wk = np.minimum((onset // 7).astype(np.int64) + 1, w_max - 1)
    on_tx = onset < eot_day[subj]
    held = tx.level[subj, wk] == HOLD
    acn = np.where(~on_tx, 4, np.where((grade >= 3) & held, 2, 0))
    infection = np.isin(decods[term], ["PNEUMONIA", "SEPSIS", "UPPER RESPIRATORY TRACT INFECTION"])
    rel = np.where(infection, u < 0.3, u < 0.85)
    b.add(len(subj), STUDYID=p.study_id, USUBJID=(usubjid, subj),
          AETERM=(np.char.capitalize(decods.astype(str)), term), AEDECOD=(decods, term),
          AEBODSYS=(socs, term), AESTDTC=first_dose[subj] + onset,
          AEENDTC=np.where(resolved, first_dose[subj] + end, np.nan), AETOXGR=grade.astype(float),
          AESER=(["N", "Y"], (u2 < pser[term]).astype(np.int64)),
          AEREL=(["N", "Y"], rel.astype(np.int64)), AEACN=(ACN, acn),
          AEOUT=(OUT, (~resolved).astype(np.int64)))

    # fatal adverse events (grade 5) on the day of death
    fs = np.flatnonzero(fatal & died)
    ft = rng.choice(len(FATAL_TERMS), len(fs), p=[0.4, 0.35, 0.15, 0.1])
    names = np.array([t for t, _ in FATAL_TERMS], dtype=object)
    fsoc = np.array([s for _, s in FATAL_TERMS], dtype=object)
    onset_f = np.maximum(np.floor(death[fs]) - rng.integers(0, 6, len(fs)), 0)
    b.add(len(fs), STUDYID=p.study_id, USUBJID=(usubjid, fs),
          AETERM=(np.char.capitalize(names.astype(str)), ft), AEDECOD=(names, ft), AEBODSYS=(fsoc, ft),
          AESTDTC=first_dose[fs] + onset_f + 0.0, AEENDTC=first_dose[fs] + np.floor(death[fs]),
          AETOXGR=5.0, AESER="Y", AEREL=(["N", "Y"], (rng.random(len(fs)) < 0.2).astype(np.int64)),
          AEACN=(ACN, np.full(len(fs), 3)), AEOUT="FATAL")
    ae = b.build()
    return ae.sort_values(["USUBJID", "AESTDTC", "AEDECOD"], kind="stable").reset_index(drop=True)


# --- disposition, demographics ----------------------------------------------------------------
def _ds(rng, p, usubjid, first_dose, eot_reason, eot_names, eot_day, ongoing, died, death, cause,
        t_wd, cut_rel, is_ne, ne_death, last_dose, vday, inc) -> pd.DataFrame:
    b = FrameBuilder(["STUDYID", "USUBJID", "DSCAT", "DSSCAT", "DSDECOD", "DSTERM", "DSSTDTC"],
                     dates=("DSSTDTC",))
    n = len(usubjid)
    e = np.flatnonzero(~ongoing)
    b.add(len(e), STUDYID=p.study_id, USUBJID=(usubjid, e), DSCAT="DISPOSITION EVENT",
          DSSCAT="END OF TREATMENT", DSDECOD=(eot_names, eot_reason[e]),
          DSTERM=(eot_names, eot_reason[e]), DSSTDTC=first_dose[e] + np.floor(eot_day[e]))
    causes = np.array(["MULTIPLE MYELOMA PROGRESSION", "DEATH NOT OTHERWISE SPECIFIED",
                       "FATAL ADVERSE EVENT"], dtype=object)
    d = np.flatnonzero(died)
    b.add(len(d), STUDYID=p.study_id, USUBJID=(usubjid, d), DSCAT="DISPOSITION EVENT",
          DSSCAT="END OF STUDY", DSDECOD="DEATH", DSTERM=(causes, cause[d]),
          DSSTDTC=first_dose[d] + np.floor(death[d]))
    wd = np.flatnonzero(~died & (t_wd <= cut_rel))
    b.add(len(wd), STUDYID=p.study_id, USUBJID=(usubjid, wd), DSCAT="DISPOSITION EVENT",
          DSSCAT="END OF STUDY", DSDECOD="WITHDRAWAL BY SUBJECT", DSTERM="WITHDRAWAL OF CONSENT",
          DSSTDTC=first_dose[wd] + np.floor(t_wd[wd]))
    # last known alive: last contact of survival follow-up, never before any recorded visit
    alive = np.flatnonzero(~died)
    last_visit = np.where(inc, vday, 0).max(axis=1)
    contact = np.where(t_wd <= cut_rel, t_wd, cut_rel - rng.integers(0, 15, n))
    contact = np.maximum.reduce([contact, last_dose, last_visit, eot_day * np.isfinite(eot_day)])
    contact = np.minimum(contact, np.maximum(cut_rel, last_visit))
    b.add(len(alive), STUDYID=p.study_id, USUBJID=(usubjid, alive), DSCAT="OTHER EVENT",
          DSDECOD="LAST KNOWN ALIVE", DSTERM="LAST KNOWN ALIVE",
          DSSTDTC=first_dose[alive] + np.floor(contact[alive]))
    ds = b.build()
    return ds.sort_values(["USUBJID", "DSSTDTC"], kind="stable").reset_index(drop=True)


def _dm(p, usubjid, site, age, male, race, race_names, first_dose, last_dose, died, death, arm):
    n = len(usubjid)
    return pd.DataFrame({
        "STUDYID": constcol(p.study_id, n),
        "USUBJID": strcol(usubjid, np.arange(n)),
        "SITEID": strcol(np.char.zfill(np.arange(p.n_sites + 1).astype(str), 3), site),
        "AGE": age.astype(float),
        "SEX": strcol(["F", "M"], male.astype(np.int64)),
        "RACE": strcol(race_names, race),
        "ARMCD": constcol(arm[0], n),
        "ARM": constcol(arm[1], n),
        "RFXSTDTC": datecol(first_dose),
        "RFXENDTC": datecol(first_dose + last_dose.astype(np.int64)),
        "DTHFL": strcol(["Y"], np.zeros(n, np.int64), ~died),
        "DTHDTC": datecol(first_dose + np.where(died, np.floor(death), 0).astype(np.int64), ~died),
    })


# --- responses, subsequent therapy, lesions -------------------------------------------------
def _rs(rng, p, usubjid, first_dose, level, vday, inc, rs_prior) -> pd.DataFrame:
    """Independent assessor's response at each assessment: the designed category, with ~3% of
    assessments read one category away (disagreement for concordance analyses)."""
    si, ji = np.nonzero(inc)
    lv = level[si, ji]
    flip = rng.random(len(si)) < 0.03
    step = np.where(rng.random(len(si)) < 0.5, -1, 1)
    lv2 = np.where(flip & (lv >= dz.VGPR) & (lv <= dz.SD), np.clip(lv + step, dz.VGPR, dz.SD), lv)
    b = FrameBuilder(["STUDYID", "USUBJID", "RSCAT", "RSTESTCD", "RSSTRESC", "RSEVAL", "RSGRPID", "RSDTC"],
                     dates=("RSDTC",))
    b.add(len(si), STUDYID=p.study_id, USUBJID=(usubjid, si), RSCAT="STUDY TREATMENT",
          RSTESTCD="OVRLRESP", RSSTRESC=(list(CATEGORIES), lv2), RSEVAL="INDEPENDENT ASSESSOR",
          RSDTC=first_dose[si] + vday[si, ji])
    on_study = b.build()
    rs = pd.concat([rs_prior, on_study[list(rs_prior.columns)]], ignore_index=True)
    return rs.sort_values(["USUBJID", "RSDTC"], kind="stable").reset_index(drop=True)


SUBSEQUENT = (("CARFILZOMIB", "CYCLOPHOSPHAMIDE", "DEXAMETHASONE"), ("BENDAMUSTINE", "DEXAMETHASONE"),
              ("BELANTAMAB MAFODOTIN",), ("ISATUXIMAB", "POMALIDOMIDE", "DEXAMETHASONE"),
              ("VENETOCLAX", "DEXAMETHASONE"), ("MELPHALAN FLUFENAMIDE", "DEXAMETHASONE"),
              ("DEXAMETHASONE", "CYCLOPHOSPHAMIDE", "ETOPOSIDE", "CISPLATIN"))


def _cm_subsequent(rng, p, usubjid, first_dose, newtx, cm_prior) -> pd.DataFrame:
    subj = np.flatnonzero(np.isfinite(newtx))
    reg = rng.integers(0, len(SUBSEQUENT), len(subj))
    ndr = np.array([len(r) for r in SUBSEQUENT])
    drugs = np.array(sorted({d for r in SUBSEQUENT for d in r}), dtype=object)
    code = np.full((len(SUBSEQUENT), 4), -1)
    for i, r in enumerate(SUBSEQUENT):  # the small regimen table
        code[i, : len(r)] = np.searchsorted(drugs, r)
    ri, pos = explode_index(ndr[reg])
    s = subj[ri]
    b = FrameBuilder(list(cm_prior.columns), dates=("CMSTDTC", "CMENDTC"))
    b.add(len(ri), STUDYID=p.study_id, USUBJID=(usubjid, s), CMTRT=(drugs, code[reg[ri], pos]),
          CMCAT="SUBSEQUENT ANTI-MYELOMA THERAPY", CMGRPID="S01",
          CMSTDTC=first_dose[s] + np.floor(newtx[s]))
    cm = pd.concat([cm_prior, b.build()], ignore_index=True)
    return cm


def _tu_tr(rng, p, usubjid, first_dose, dis, ratio, inc, vday, first_pd, pd_obs):
    """New lesions at the first PD assessment for some progressors (tu); plasmacytoma SPD (tr)
    following the serum M-protein ratio, so IMWG reads the same category from either."""
    n = len(usubjid)
    nl = np.flatnonzero(pd_obs & (rng.random(n) < p.new_lesion_prob))
    tu = FrameBuilder(["STUDYID", "USUBJID", "TUTESTCD", "TUSTRESC", "TULOC", "TUDTC"], dates=("TUDTC",))
    tu.add(len(nl), STUDYID=p.study_id, USUBJID=(usubjid, nl), TUTESTCD="TUMIDENT",
           TUSTRESC="NEW LESION", TULOC=(["BONE", "SOFT TISSUE"], rng.integers(0, 2, len(nl))),
           TUDTC=first_dose[nl] + first_pd[nl])
    has = dis.plasmacytoma_spd > 0
    tr = FrameBuilder(["STUDYID", "USUBJID", "TRTESTCD", "TRLNKID", "TRSTRESN", "TRSTRESU", "TRDTC"],
                      numeric=("TRSTRESN",), dates=("TRDTC",))
    ps = np.flatnonzero(has)
    tr.add(len(ps), STUDYID=p.study_id, USUBJID=(usubjid, ps), TRTESTCD="SPD", TRLNKID="P01",
           TRSTRESN=np.round(dis.plasmacytoma_spd[ps], 0), TRSTRESU="mm2",
           TRDTC=first_dose[ps] - 7.0)
    si, ji = np.nonzero(inc & has[:, None])
    tr.add(len(si), STUDYID=p.study_id, USUBJID=(usubjid, si), TRTESTCD="SPD", TRLNKID="P01",
           TRSTRESN=np.round(dis.plasmacytoma_spd[si] * ratio[si, ji], 0), TRSTRESU="mm2",
           TRDTC=first_dose[si] + vday[si, ji])
    trf = tr.build().sort_values(["USUBJID", "TRDTC"], kind="stable").reset_index(drop=True)
    return tu.build(), trf


# --- writing ----------------------------------------------------------------------------------
def write_study(sim: SimulatedStudy, out_dir: str | Path, fmt: str = "csv",
                progress: ProgressFn | None = None) -> Path:
    """Write the domains, ``_truth.csv`` and ``study.json`` to ``out_dir`` atomically.

    Files are written to a temporary folder beside ``out_dir`` and moved into place at the end
    (an existing folder is replaced only after the new one is complete). ``out_dir`` follows the
    output-folder rules (docs/cli.md): absent, empty, or a study folder an earlier
    ``write_study`` wrote; anything else raises :class:`~mmtrial.errors.OutputFolderError`.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"write_study: fmt must be 'csv' or 'parquet'; got {fmt!r}")
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    given = Path(out_dir)
    out_dir = check_output_folder(given, kind="study")
    tmp = new_temp_dir(out_dir, kind="study")
    try:
        items = [*sim.domains.items(), ("_truth", sim.truth)]
        if sim.cycles is not None:
            items.append(("_truth_cycles", sim.cycles))
        for i, (name, df) in enumerate(items):
            table = pa.Table.from_pandas(df, preserve_index=False)
            if fmt == "parquet" and not name.startswith("_"):
                pq.write_table(table, tmp / f"{name}.parquet")
            else:
                pacsv.write_csv(table, tmp / f"{name}.csv",
                                write_options=pacsv.WriteOptions(quoting_style="needed"))
            if progress:
                progress(f"write {name}", (i + 1) / (len(items) + 1))
        meta = dict(sim.metadata)
        meta["domains"] = {k: len(v) for k, v in sim.domains.items()}
        meta["format"] = fmt
        (tmp / "study.json").write_text(json.dumps(meta, indent=2, default=_json) + "\n", "utf-8")
        finish_dir(tmp, out_dir, kind="study", status="complete")
        if progress:
            progress("written", 1.0)
    finally:
        if tmp.exists():
            remove_tree(tmp)
    return given


def _json(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"study.json: cannot serialise {type(o).__name__}")
