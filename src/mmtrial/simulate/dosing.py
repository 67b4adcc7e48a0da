"""The protocol's regimen as the simulator's dosing plan, and the ex and vs domains it produces.

Model (docs/simulator.md, "Dosing and toxicity"): the regimen (``Protocol.regimen``: cycles,
phases, dosing days, units, step-up doses) gives, for each cycle number and day of the cycle,
the planned dose of each drug (:meth:`Regimen.schedule`). The study drug follows a dose ladder:
the protocol's ``[dose_ladder]`` when its first level is the regimen's dose (STORM: XPOVIO
Table 1, which also changes the weekly pattern), else ``[simulation] reduction_fractions`` of
the protocol dose. Administrations are recorded one per drug and day; ``ex`` is written from
them (one row per dosing run, see :func:`build_ex`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmtrial.protocol.regimen import Regimen, compute_bsa, compute_dose_mg
from mmtrial.simulate._builder import FrameBuilder

#: EXDOSFRQ for a weekly pattern of days (CDISC FREQ terms; derive/exposure.py DEFAULT_FREQUENCIES)
WEEKLY_CODES: dict[tuple[int, ...], str] = {(1,): "QW", (1, 3): "BIW", (1, 2, 3, 4, 5, 6, 7): "QD"}


@dataclass(frozen=True)
class DosingPlan:
    """Planned doses by drug, ladder level, cycle and cycle day (index 0 unused for cycle and day).

    ``table[drug, level, cycle, day]`` is the dose per administration in the drug's unit (0 = none);
    non-study drugs have the same slice at every level. ``cycle_len[c]`` is cycle c's planned
    length; ``ref_weekly`` the study drug's planned weekly dose averaged over cycle 1 (level 0,
    step-up doses excluded): a week's toxicity exposure is the week's study-drug dose over it.
    """

    names: tuple[str, ...]
    units: tuple[str, ...]
    routes: tuple[str, ...]
    study: int
    table: np.ndarray
    cycle_len: np.ndarray
    weekly_code: tuple[tuple[str | None, ...], ...]  # [drug][level]: EXDOSFRQ of whole-week runs
    ref_weekly: float
    n_levels: int

    @property
    def body_size(self) -> bool:
        return any(u != "mg" for u in self.units)


@dataclass(frozen=True)
class LadderLevel:
    """One level of the study drug's ladder in one phase: dose per administration (drug's unit),
    dosing days within the cycle and, for a weekly pattern, its days of the week."""

    dose: float
    days: tuple[int, ...]
    days_of_week: tuple[int, ...] | None


def study_ladder(protocol, regimen: Regimen, fractions: list[float] | None) -> dict[int, list[LadderLevel]]:
    """The study drug's ladder in each phase (keyed by the phase's first cycle).

    The protocol's ladder for the study drug when it has one (``Protocol.ladder_for``: XPOVIO
    label Table 1 for STORM, 80 mg twice weekly -> 100, 80, 60 mg once weekly, domain.md 1.10;
    a level may change the dosing days); otherwise ``fractions`` of the protocol dose on the
    drug's own days (``[simulation] reduction_fractions``, a simulation assumption), or the
    protocol dose alone (no reduction steps: the dosing model holds instead of reducing).
    """
    drug = regimen.study_drug
    has = protocol is not None and getattr(protocol, "ladder_spec", None) is not None \
        and protocol.ladder_spec(drug) is not None
    out: dict[int, list[LadderLevel]] = {}
    for ph in regimen.effective_phases():
        c = ph.cycles[0]
        d = regimen.drug(drug, c)
        if d is None:
            out[c] = []
        elif has:
            out[c] = [LadderLevel(float(st.dose), tuple(st.days), st.days_of_week)
                      for st in protocol.ladder_for(drug, c)]
        else:
            days = d.days_in_cycle(ph.cycle_length_days)
            dow = tuple(d.days_of_week) if d.days_of_week is not None else None
            out[c] = [LadderLevel(d.dose * f, days, dow) for f in (fractions or [1.0])]
    return out


def build_plan(regimen: Regimen, ladder: dict[int, list[LadderLevel]], max_days: int) -> DosingPlan:
    """The dense plan for enough cycles to cover ``max_days`` days without delays."""
    phases = regimen.effective_phases()
    lens: list[int] = []
    total = 0
    while total <= max_days + 1:
        c = len(lens) + 1
        ph = next((p for p in phases if p.cycles[0] <= c <= p.cycles[1]), phases[-1])
        lens.append(ph.cycle_length_days)
        total += ph.cycle_length_days
    n_cyc = len(lens)
    sched = regimen.schedule(n_cyc)
    names = tuple(dict.fromkeys(sched["DRUG"]))
    study = names.index(regimen.study_drug.upper())
    n_lv = max((len(v) for v in ladder.values()), default=1) or 1
    day_max = max(max(lens), int(sched["CYCLEDY"].max()))
    table = np.zeros((len(names), n_lv, n_cyc + 1, day_max + 1), dtype=np.float64)
    di = sched["DRUG"].map({n: i for i, n in enumerate(names)}).to_numpy()
    cyc = sched["CYCLE"].to_numpy()
    cdy = sched["CYCLEDY"].to_numpy()
    table[di, :, cyc, cdy] = sched["DOSE"].to_numpy()[:, None]
    stepup = np.zeros(table.shape[2:], dtype=bool)
    su = (sched["STEPUP"] == "Y").to_numpy() & (di == study)
    stepup[cyc[su], cdy[su]] = True
    base = table[study, 0].copy()
    day_idx = np.arange(day_max + 1)
    phase_first = np.array([regimen.phase_of(max(c, 1)).cycles[0] for c in range(n_cyc + 1)])
    for first, levels in ladder.items():
        rows = np.flatnonzero(phase_first == first)
        for lv in range(1, n_lv):
            if lv >= len(levels):
                table[study, lv, rows] = 0.0
                continue
            L = levels[lv]
            on_day = np.isin(day_idx, L.days)
            # a level with its own days doses on them (planned rest stays rest); a step-up day
            # keeps the smaller of the step-up dose and the level's dose
            tab = np.where(on_day[None, :], L.dose, 0.0)
            tab = np.where(stepup[rows] & (base[rows] > 0), np.minimum(base[rows], L.dose), tab)
            table[study, lv, rows] = tab
    units, routes, codes = [], [], []
    whole_weeks = all(n % 7 == 0 for n in lens)
    for i, name in enumerate(names):
        d = regimen.drug(name, 1) or next(
            x for p in phases for x in p.drugs if x.name.upper() == name)
        units.append(d.unit)
        routes.append(d.route)
        same = all((regimen.drug(name, p.cycles[0]) or d).days_of_week == d.days_of_week for p in phases)
        ok = whole_weeks and same and not d.step_up
        lv_codes = []
        for lv in range(n_lv):
            if i == study:
                pats = {tuple(v[lv].days_of_week) if lv < len(v) and v[lv].days_of_week else None
                        for v in ladder.values() if v}
                pat = next(iter(pats)) if len(pats) == 1 else None
            else:
                pat = tuple(d.days_of_week) if d.days_of_week is not None else None
            lv_codes.append(WEEKLY_CODES.get(pat) if ok and pat is not None else None)
        codes.append(tuple(lv_codes))
    ref = regimen.planned_weekly_dose(regimen.study_drug, 1)
    return DosingPlan(names=names, units=tuple(units), routes=tuple(routes), study=study, table=table,
                      cycle_len=np.array([lens[0], *lens], dtype=np.int64), weekly_code=tuple(codes),
                      ref_weekly=float(ref), n_levels=n_lv)


@dataclass
class Administrations:
    """One record per drug administered: subject, day (0 = first dose), drug, level, cycle, dose."""

    subj: np.ndarray
    day: np.ndarray
    drug: np.ndarray
    level: np.ndarray
    cycle: np.ndarray
    dose: np.ndarray  # in the drug's protocol unit

    def keep(self, mask: np.ndarray) -> Administrations:
        return Administrations(*(getattr(self, f)[mask] for f in
                                 ("subj", "day", "drug", "level", "cycle", "dose")))


def arm_label(regimen: Regimen) -> tuple[str, str]:
    """ARMCD and ARM from the regimen's cycle-1 drugs (STORM: SELDEX, "SELINEXOR 80 MG + ...")."""
    drugs = regimen.effective_phases()[0].drugs
    parts = [f"{d.name.upper()} {d.dose:g} {d.unit.upper()}" for d in drugs]
    pats = {tuple(d.days_of_week) if d.days_of_week else None for d in drugs}
    words = {(1,): "ONCE WEEKLY", (1, 3): "TWICE WEEKLY", (1, 2, 3, 4, 5, 6, 7): "DAILY"}
    arm = " + ".join(parts)
    if len(pats) == 1 and (pat := next(iter(pats))) in words:
        arm += " " + words[pat]
    armcd = "".join(d.name.upper()[:3] for d in drugs)[:20]
    return armcd, arm


# --- body size ----------------------------------------------------------------------------------
@dataclass
class BodySize:
    """Height (cm, per subject) and weight (kg) per subject and cycle (column c = cycle c; 0 = screening)."""

    height: np.ndarray
    weight: np.ndarray  # n x (C + 1)


def simulate_body_size(rng: np.random.Generator, male: np.ndarray, n_cycles: int, cfg) -> BodySize:
    """Heights (normal by sex), baseline weight (lognormal) and a random walk of weight per cycle."""
    n = len(male)
    h = np.where(male, cfg.height_cm[0], cfg.height_cm[1]) + cfg.height_sd_cm * rng.standard_normal(n)
    h = np.round(np.clip(h, 140.0, 205.0), 0)
    w0 = np.clip(cfg.weight_kg_median * np.exp(cfg.weight_sigma * rng.standard_normal(n)), 38.0, 160.0)
    steps = cfg.weight_change_per_cycle * rng.standard_normal((n, n_cycles))
    steps[:, 0] = 0.0  # cycle 1 is dosed on the screening weight
    w = np.round(np.clip(w0[:, None] * np.exp(np.cumsum(steps, axis=1)), 35.0, 170.0), 1)
    return BodySize(height=h, weight=np.concatenate([np.round(w0, 1)[:, None], w], axis=1))


def compute_admin_dose_mg(adm: Administrations, plan: DosingPlan, body: BodySize | None,
                          bsa_formula: str) -> np.ndarray:
    """EXDOSE in mg: body-size doses from the height and the weight of the administration's cycle
    (the weight measured on its day 1; cycle 1 on the screening weight), rounded to 0.01 mg."""
    unit = np.asarray(plan.units, dtype=object)[adm.drug]
    if body is None:
        return adm.dose.astype(np.float64)
    c = np.minimum(adm.cycle, body.weight.shape[1] - 1)
    wt = body.weight[adm.subj, c]
    bsa = compute_bsa(body.height[adm.subj], wt, bsa_formula)  # type: ignore[arg-type]
    return np.round(compute_dose_mg(adm.dose, unit, bsa, wt), 2)


def build_vs(study_id: str, usubjid: np.ndarray, first_dose: np.ndarray, screen: np.ndarray,
             body: BodySize, cycle_start: np.ndarray) -> pd.DataFrame:
    """vs: HEIGHT (cm) and WEIGHT (kg) at screening (baseline), WEIGHT on day 1 of cycles 2, 3, ..."""
    b = FrameBuilder(["STUDYID", "USUBJID", "VSTESTCD", "VSTEST", "VSSTRESN", "VSSTRESU", "VISIT",
                      "VSBLFL", "VSDTC"], numeric=("VSSTRESN",), dates=("VSDTC",))
    n = len(usubjid)
    idx = np.arange(n)
    for code, name, val, unit in (("HEIGHT", "Height", body.height, "cm"), ("WEIGHT", "Weight", body.weight[:, 0], "kg")):
        b.add(n, STUDYID=study_id, USUBJID=(usubjid, idx), VSTESTCD=code, VSTEST=name, VSSTRESN=val,
              VSSTRESU=unit, VISIT="SCREENING", VSBLFL="Y", VSDTC=screen.astype(float))
    cs = cycle_start[:, 2:]  # cycles 2.. (cycle 1 uses screening)
    si, ci = np.nonzero(~np.isnan(cs))
    cyc = ci + 2
    labels = np.char.add(np.char.add("CYCLE ", np.arange(cs.shape[1] + 2).astype(str)), " DAY 1").astype(object)
    wcol = np.minimum(cyc, body.weight.shape[1] - 1)
    b.add(len(si), STUDYID=study_id, USUBJID=(usubjid, si), VSTESTCD="WEIGHT", VSTEST="Weight",
          VSSTRESN=body.weight[si, wcol], VSSTRESU="kg", VISIT=(labels, cyc),
          VSDTC=first_dose[si] + cs[si, ci])
    vs = b.build()
    return vs.sort_values(["USUBJID", "VSDTC", "VSTESTCD"], kind="stable").reset_index(drop=True)


# --- ex ------------------------------------------------------------------------------------------
EX_COLUMNS = ["STUDYID", "USUBJID", "EXTRT", "EXDOSE", "EXDOSU", "EXDOSFRQ", "EXROUTE", "EXSTDTC",
              "EXENDTC", "EXCYCLE", "EXADJ"]


def build_ex(study_id: str, usubjid: np.ndarray, first_dose: np.ndarray, adm: Administrations,
             dose_mg: np.ndarray, plan: DosingPlan, hold_weeks: np.ndarray) -> pd.DataFrame:
    """ex: one row per dosing run of each drug (docs/simulator.md, "ex").

    A drug dosed on a weekly pattern in whole-week cycles (STORM: days 1 and 3 of every week)
    gives one row per run of consecutive weeks at one dose with the full pattern, EXDOSFRQ ``BIW``
    / ``QW`` / ``QD`` (EXSTDTC the first, EXENDTC the last administration). Every other
    administration is grouped into runs of consecutive days at one dose within one cycle: ``QD``
    for two days or more, ``ONCE`` for a single day, with the cycle number in EXCYCLE. EXADJ ``ADVERSE EVENT``: the row's dose is
    below the protocol dose (a ladder reduction) or the row is the first after an interruption or
    a delayed cycle (a held week since the drug's previous administration).
    """
    b = FrameBuilder(EX_COLUMNS, numeric=("EXDOSE", "EXCYCLE"), dates=("EXSTDTC", "EXENDTC"))
    if len(adm.subj) == 0:
        return b.build()
    order = np.lexsort((adm.day, adm.drug, adm.subj))
    s, d, g, lv, c, dmg = (adm.subj[order], adm.day[order], adm.drug[order], adm.level[order],
                           adm.cycle[order], dose_mg[order])
    lv = np.where(g == plan.study, lv, 0)
    week = d // 7
    codes = np.array([[x or "" for x in row] for row in plan.weekly_code], dtype=object)
    code = codes[g, lv]
    # weekly form: the week's administrations are the pattern's first days at one dose (a full
    # week, or the last week of a run cut short, e.g. by death: it counts the same doses)
    pattern = {"QW": (0,), "BIW": (0, 2), "QD": tuple(range(7))}
    per_wk = np.array([len(pattern.get(x, ())) for x in codes.ravel()]).reshape(codes.shape)
    pat_tab = np.full((*codes.shape, 7), -1)
    for (i, j), x in np.ndenumerate(codes):
        pat_tab[i, j, : len(pattern.get(x, ()))] = pattern.get(x, ())
    key = np.stack([s, g, week])
    new_wk = np.r_[True, (np.diff(key, axis=1) != 0).any(axis=0)]
    wk_first = np.flatnonzero(new_wk)
    wk_id = np.cumsum(new_wk) - 1
    rank = np.arange(len(s)) - wk_first[wk_id]
    on_pattern = pat_tab[g, lv, np.minimum(rank, 6)] == d - 7 * week
    wk_ok = np.minimum.reduceat(on_pattern.astype(np.int64), wk_first)[wk_id] == 1
    wk_count = np.bincount(wk_id)[wk_id]
    wk_min = np.minimum.reduceat(dmg, wk_first)[wk_id]
    wk_max = np.maximum.reduceat(dmg, wk_first)[wk_id]
    weekly = (code != "") & wk_ok & (wk_count <= per_wk[g, lv]) & (wk_min == wk_max)
    full = weekly & (wk_count == per_wk[g, lv])
    # holds between consecutive administrations of a drug
    holdcum = np.cumsum(hold_weeks, axis=1)
    hc = holdcum[s, np.minimum(week, holdcum.shape[1] - 1)]
    first_of_drug = np.r_[True, (s[1:] != s[:-1]) | (g[1:] != g[:-1])]
    prev_hc = np.r_[0, hc[:-1]]
    after_hold = ~first_of_drug & (hc - np.where(first_of_drug, hc, prev_hc) > 0)
    reduced = lv > 0

    # run boundaries
    prev = lambda a: np.r_[a[0], a[:-1]]  # noqa: E731
    brk_common = first_of_drug | (dmg != prev(dmg)) | (weekly != prev(weekly)) | (lv != prev(lv))
    new_week = week != prev(week)
    brk_weekly = brk_common | after_hold | new_week & ((week != prev(week) + 1) | ~prev(full))
    brk_daily = brk_common | (d != prev(d) + 1) | (c != prev(c)) | after_hold
    brk = np.where(weekly, brk_weekly, brk_daily)
    brk[0] = True
    starts = np.flatnonzero(brk)
    ends = np.r_[starts[1:] - 1, len(s) - 1]
    n_in = ends - starts + 1
    rs = starts
    frq = np.where(weekly[rs], code[rs], np.where(n_in > 1, "QD", "ONCE")).astype(object)
    adj = (reduced[rs] | after_hold[rs]) & ~first_of_drug[rs]
    frq_names, frq_codes = np.unique(frq, return_inverse=True)
    names = np.asarray(plan.names, dtype=object)
    routes = np.asarray(plan.routes, dtype=object)
    b.add(len(rs), STUDYID=study_id, USUBJID=(usubjid, s[rs]), EXTRT=(names, g[rs]), EXDOSE=dmg[rs],
          EXDOSU="mg", EXDOSFRQ=(frq_names, frq_codes), EXROUTE=(routes, g[rs]),
          EXSTDTC=first_dose[s[rs]] + d[rs].astype(float), EXENDTC=first_dose[s[rs]] + d[ends].astype(float),
          EXCYCLE=np.where(weekly[rs], np.nan, c[rs].astype(float)),
          EXADJ=(["ADVERSE EVENT"], np.zeros(len(rs), np.int64), ~adj))
    ex = b.build()
    if ex["EXCYCLE"].isna().all():  # weekly runs may span cycles: no cycle number (STORM)
        ex = ex.drop(columns="EXCYCLE")
    return ex.sort_values(["USUBJID", "EXTRT", "EXSTDTC"], kind="stable").reset_index(drop=True)


__all__ = [
    "Administrations",
    "BodySize",
    "DosingPlan",
    "LadderLevel",
    "arm_label",
    "build_ex",
    "build_plan",
    "build_vs",
    "compute_admin_dose_mg",
    "simulate_body_size",
    "study_ladder",
]
