"""Prior therapy of an earlier-relapse population: one to three prior lines (BOSTON-like).

Model (docs/simulator.md, "Two-arm studies"): the number of prior lines, prior proteasome-
inhibitor (PI) therapy and a prior autologous transplant are given per subject (drawn before
randomisation, because two of them are stratification factors). Line 1 is an induction regimen
(bortezomib-based when the subject has prior PI therapy, else lenalidomide-, thalidomide- or
melphalan-based); with a transplant it is followed by the transplant and lenalidomide maintenance,
one planned sequence linked by CMLNKGRP/PRLNKGRP (one line: Rajkumar SV et al., Blood
2015;126:921-922). Lines 2 and 3 are single regimens (PI-containing ones only for subjects with
prior PI therapy). Every line ends in progression, on therapy or after it (a relapse), and the
next line starts 1-4 weeks after that progression, so each regimen is one line.

The frames have the columns of :func:`mmtrial.simulate.history.simulate_history`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mmtrial.simulate._frames import explode_index
from mmtrial.simulate.history import History, _lognormal, history_frames
from mmtrial.simulate.params import SimulationParams

#: catalogue ids (mmtrial.simulate.history.CATALOGUE) by role
PI_INDUCTION = np.array([0, 1, 2])  # VRd, VCd, VTd
PI_INDUCTION_P = np.array([0.5, 0.3, 0.2])
NON_PI_INDUCTION = np.array([4, 12, 5])  # Rd, Td, MP
NON_PI_INDUCTION_P = np.array([0.5, 0.3, 0.2])
MAINTENANCE = 3  # lenalidomide
LATER_ANY = np.array([21, 17, 15, 8, 23, 18, 13])  # DRd, Kd, DVd, ixazomib-d, Pd, DPd, elotuzumab-d
LATER_ANY_P = np.array([0.25, 0.15, 0.15, 0.1, 0.15, 0.1, 0.1])
LATER_NON_PI = np.array([21, 23, 18, 13, 4])  # DRd, Pd, DPd, elotuzumab-d, Rd
LATER_NON_PI_P = np.array([0.35, 0.2, 0.2, 0.1, 0.15])


def early_history(n_lines: np.ndarray, prior_pi: np.ndarray, transplant: np.ndarray) -> Callable[..., History]:
    """A prior-therapy generator (``simulate_history``'s signature) for these subjects' lines."""
    n_lines = np.asarray(n_lines, dtype=np.int64)
    prior_pi = np.asarray(prior_pi, dtype=bool)
    transplant = np.asarray(transplant, dtype=bool)

    def generate(rng: np.random.Generator, usubjid: np.ndarray, first_dose: np.ndarray,
                 mh_terms: np.ndarray, p: SimulationParams) -> History:
        return simulate_early_history(rng, usubjid, first_dose, mh_terms, p, n_lines, prior_pi, transplant)

    return generate


def simulate_early_history(rng: np.random.Generator, usubjid: np.ndarray, first_dose: np.ndarray,
                           mh_terms: np.ndarray, p: SimulationParams, n_lines: np.ndarray,
                           prior_pi: np.ndarray, transplant: np.ndarray) -> History:
    """Regimens (cm), prior responses (rs), transplants (pr) and diagnosis (mh) for 1-3 prior lines."""
    n = len(usubjid)
    n_reg = n_lines + transplant.astype(np.int64)
    owner, pos = explode_index(n_reg)
    rows = len(owner)
    tx = transplant[owner]
    # kind: 0 induction, 1 maintenance (transplant subjects' position 1), 2 later line
    kind = np.where(pos == 0, 0, np.where((pos == 1) & tx, 1, 2))
    induction = np.where(prior_pi[owner], rng.choice(PI_INDUCTION, rows, p=PI_INDUCTION_P),
                         rng.choice(NON_PI_INDUCTION, rows, p=NON_PI_INDUCTION_P))
    later = np.where(prior_pi[owner], rng.choice(LATER_ANY, rows, p=LATER_ANY_P),
                     rng.choice(LATER_NON_PI, rows, p=LATER_NON_PI_P))
    cat_id = np.select([kind == 0, kind == 1], [induction, MAINTENANCE], default=later)
    last = pos == n_reg[owner] - 1
    # how the regimen ended: 0 planned (induction before transplant), 1 PD on therapy, 2 completed,
    # then a relapse off therapy
    planned = (kind == 0) & tx
    on_pd = rng.random(rows) < np.where(kind == 1, 0.8, 0.55)
    end_kind = np.where(planned, 0, np.where(on_pd, 1, 2))
    dur = np.select([kind == 0, kind == 1],
                    [rng.uniform(100, 200, rows),
                     np.clip(_lognormal(rng, p.maintenance_median_days, 0.6, rows), 120, 2500)],
                    default=np.clip(_lognormal(rng, 300.0, 0.6, rows), 90, 1500))
    dur = np.rint(dur)
    pd_off = np.select([end_kind == 1, end_kind == 2],
                       [dur - rng.integers(0, 22, rows), dur + rng.integers(90, 541, rows)], default=np.nan)
    asct_gap = np.where(planned, rng.integers(21, 46, rows), 0)
    asct_to_maint = np.where(planned, rng.integers(60, 101, rows), 0)
    gap_next = rng.integers(7, 31, rows)
    advance = np.where(planned, dur + asct_gap + asct_to_maint, np.fmax(dur, np.nan_to_num(pd_off, nan=0)) + gap_next)
    csum = np.cumsum(advance)
    first_row = np.cumsum(n_reg) - n_reg
    start_rel = csum - advance - (csum[first_row] - advance[first_row])[owner]
    end_rel = start_rel + dur
    pd_rel = start_rel + np.nan_to_num(pd_off, nan=0)
    washout = rng.integers(14, 46, n)
    total = np.fmax(end_rel, pd_rel)[last] + washout  # last regimen's end or progression, then washout
    first_reg = (first_dose - total).astype(np.int64)
    start = first_reg[owner] + start_rel.astype(np.int64)
    end = first_reg[owner] + end_rel.astype(np.int64)
    pd_day = first_reg[owner] + pd_rel.astype(np.int64)
    has_pd = ~np.isnan(pd_off)
    dx_day = first_reg - rng.integers(14, 46, n)

    link = (kind <= 1) & tx
    rsdisc = np.select([end_kind == 0, end_kind == 2], [0, 1], 2)
    scat = np.where((kind == 0) & tx, 0, np.where(kind == 1, 1, 2))

    # rs: best response of each regimen (deeper in early lines), then its progression
    best = rng.choice(4, rows, p=[0.35, 0.4, 0.15, 0.1])
    best_day = start + np.rint(0.35 * np.where(has_pd, np.minimum(pd_day, end) - start, dur)).astype(np.int64)
    best_day = np.maximum(best_day, start + 1)
    rs_owner = np.concatenate([np.arange(rows), np.flatnonzero(has_pd)])
    rs_is_pd = np.concatenate([np.zeros(rows, bool), np.ones(has_pd.sum(), bool)])
    rs_val = np.where(rs_is_pd, 4, np.concatenate([best, np.zeros(has_pd.sum(), np.int64)]))
    rs_day = np.concatenate([np.minimum(best_day, np.where(has_pd, pd_day - 1, end)), pd_day[has_pd]])
    ind = np.flatnonzero(planned)
    cm, rs, pr, mh = history_frames(
        p, usubjid, owner=owner, pos=pos, cat_id=cat_id, start=start, end=end, link=link, rsdisc=rsdisc,
        scat=scat, rs_owner=rs_owner, rs_val=rs_val, rs_day=rs_day, asct=ind, asct_day=end[ind] + asct_gap[ind],
        mh_terms=mh_terms, dx_day=dx_day)
    return History(cm=cm, rs=rs, pr=pr, mh=mh, dx_day=dx_day, n_regimens=n_reg,
                   penta=np.zeros(n, bool), transplant=transplant.copy())
