"""Prior anti-myeloma therapy: regimens, transplants, responses; every subject triple-class refractory.

Model (docs/simulator.md, "Prior therapy"): regimen 1 is a bortezomib-based induction, followed
for transplant-eligible subjects by an autologous stem-cell transplant and lenalidomide
maintenance (one planned sequence, linked by CMLNKGRP/PRLNKGRP: IMWG one line, Rajkumar 2015);
maintenance (or continuous Rd) ends in progression on therapy, so every subject is
lenalidomide-refractory. The last one to three regimens are *key* regimens drawn from a template
that makes the subject refractory (progression on or within 60 days of the last dose: Rajkumar
2011) to a PI, an IMiD and daratumumab, and for the penta-refractory templates to bortezomib,
carfilzomib, lenalidomide, pomalidomide and daratumumab. Non-penta templates leave at least one of
the five drugs never refractory. Regimens between are *fillers* built from other drugs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmtrial.simulate._frames import constcol, datecol, explode_index, strcol
from mmtrial.simulate.params import SimulationParams

V, K, R, P, D = "BORTEZOMIB", "CARFILZOMIB", "LENALIDOMIDE", "POMALIDOMIDE", "DARATUMUMAB"
DEX, CY = "DEXAMETHASONE", "CYCLOPHOSPHAMIDE"

#: every regimen the simulator uses (one row of cm per drug)
CATALOGUE: tuple[tuple[str, ...], ...] = (
    (V, R, DEX), (V, CY, DEX), (V, "THALIDOMIDE", DEX),  # 0-2 induction
    (R,), (R, DEX),  # 3-4 maintenance / continuous Rd
    ("MELPHALAN", "PREDNISONE"), (CY, DEX), ("BENDAMUSTINE", DEX), ("IXAZOMIB", DEX),  # 5-8 fillers
    ("PANOBINOSTAT", DEX), ("VENETOCLAX", DEX), (DEX, CY, "ETOPOSIDE", "CISPLATIN"),  # 9-11
    ("THALIDOMIDE", DEX), ("ELOTUZUMAB", DEX), ("DOXORUBICIN", DEX),  # 12-14
    (D, V, DEX), (K, P, DEX), (K, DEX), (D, P, DEX), (P, V, DEX), (D, K, DEX),  # 15-20 keys
    (D, R, DEX), (K, CY, DEX),  # 21-22 keys
    (P, DEX),  # 23: pomalidomide exposure (coverage filler)
)
INDUCTION_IDS, INDUCTION_P = np.array([0, 1, 2]), np.array([0.6, 0.25, 0.15])
FILLER_IDS = np.arange(5, 15)
#: key templates: catalogue ids in time order (the last is the last prior regimen), -1 padding
TEMPLATES = np.array([
    [15, -1, -1],  # 0 non-penta: DVd (V, R via maintenance, D)
    [17, 18, -1],  # 1 non-penta: Kd then DPd (bortezomib never refractory)
    [21, 22, -1],  # 2 non-penta: DRd then KCd (pomalidomide and bortezomib never refractory)
    [15, 16, -1],  # 3 penta: DVd then KPd
    [19, 20, -1],  # 4 penta: PVd then DKd
    [1, 17, 18],  # 5 penta: VCd, Kd, DPd
])
PENTA_TEMPLATE = np.array([False, False, False, True, True, True])
N_KEYS = (TEMPLATES >= 0).sum(axis=1)
#: STORM eligibility (NEJM 2019; domain.md 1.1) requires prior *exposure* to bortezomib,
#: carfilzomib, lenalidomide, pomalidomide, daratumumab, glucocorticoids and an alkylator. The
#: first filler regimens of each template cover the exposures its key regimens miss; they end for
#: toxicity (no progression within 60 days), so they add exposure without refractoriness.
#: -2 stands for an alkylator filler drawn per subject (MP, CyDex or bendamustine-dex).
COVERAGE = np.array([
    [22, 23],  # 0 DVd: carfilzomib + cyclophosphamide (KCd), pomalidomide (Pd)
    [-2, -1],  # 1 Kd, DPd: an alkylator
    [23, -1],  # 2 DRd, KCd: pomalidomide
    [-2, -1],  # 3 DVd, KPd: an alkylator
    [-2, -1],  # 4 PVd, DKd: an alkylator
    [-1, -1],  # 5 VCd, Kd, DPd: all exposures already
])
N_COV = (COVERAGE != -1).sum(axis=1)
ALKYLATOR_FILLERS = np.array([5, 6, 7])
PRIOR_RESPONSES = np.array(["VGPR", "PR", "MR", "SD"], dtype=object)


@dataclass
class History:
    """Prior-therapy frames and per-subject summaries."""

    cm: pd.DataFrame
    rs: pd.DataFrame
    pr: pd.DataFrame
    mh: pd.DataFrame
    dx_day: np.ndarray  # diagnosis, days since epoch
    n_regimens: np.ndarray
    penta: np.ndarray  # designed penta-refractory status
    transplant: np.ndarray


def _lognormal(rng, median, sigma, n):
    return median * np.exp(sigma * rng.standard_normal(n))


def simulate_history(rng: np.random.Generator, usubjid: np.ndarray, first_dose: np.ndarray,
                     mh_terms: np.ndarray, p: SimulationParams) -> History:
    """Regimens (cm), prior-therapy responses (rs), transplants (pr) and diagnosis (mh)."""
    n = len(usubjid)
    n_reg = np.clip(np.rint(_lognormal(rng, p.prior_regimens_median, p.prior_regimens_sigma, n)),
                    p.prior_regimens_min, p.prior_regimens_max).astype(np.int64)
    m_avail = n_reg - 2
    p_ge4 = max(float(np.mean(m_avail >= 2)), 1e-9)
    penta = (m_avail >= 2) & (rng.random(n) < min(p.penta_fraction / p_ge4, 1.0))
    # template among those that fit (penta: 3, 4 need 2 key slots, 5 needs 3)
    t_pen = np.where((m_avail >= 3) & (rng.random(n) < 0.4), 5, rng.choice([3, 4], n))
    t_non = np.where(m_avail >= 2, rng.choice([0, 1, 2], n, p=[0.4, 0.35, 0.25]), 0)
    template = np.where(penta, t_pen, t_non)
    m_key = N_KEYS[template]
    n_reg = np.minimum(np.maximum(n_reg, 2 + N_COV[template] + m_key), p.prior_regimens_max)
    transplant = rng.random(n) < p.transplant_fraction

    owner, pos = explode_index(n_reg)
    rows = len(owner)
    r_of = n_reg[owner]
    key_pos = pos - (r_of - m_key[owner])
    kind = np.where(pos == 0, 0, np.where(pos == 1, 1, np.where(key_pos >= 0, 3, 2)))
    cat_id = np.select(
        [kind == 0, kind == 1, kind == 3],
        [rng.choice(INDUCTION_IDS, rows, p=INDUCTION_P),
         np.where(transplant[owner], 3, 4),
         TEMPLATES[template[owner], np.clip(key_pos, 0, 2)]],
        default=rng.choice(FILLER_IDS, rows))
    cov_pos = pos - 2
    is_cov = (kind == 2) & (cov_pos < N_COV[template[owner]])
    cov_id = COVERAGE[template[owner], np.clip(cov_pos, 0, 1)]
    cov_id = np.where(cov_id == -2, rng.choice(ALKYLATOR_FILLERS, n)[owner], cov_id)
    cat_id = np.where(is_cov, cov_id, cat_id)
    last = pos == r_of - 1
    # how the regimen ended: 0 planned/completed, 1 PD on therapy, 2 PD within 60 days, 3 toxicity
    filler_pd = rng.random(rows) < 0.6
    within60 = (rng.random(rows) < p.refractory_within_60_fraction) & ~last
    end_kind = np.select([kind == 0, is_cov | ((kind == 2) & ~filler_pd)], [0, 3],
                         default=np.where(within60, 2, 1))

    dur = np.select([kind == 0, kind == 1],
                    [rng.uniform(100, 180, rows),
                     np.clip(_lognormal(rng, p.maintenance_median_days, 0.6, rows), 120, 3000)],
                    default=np.clip(_lognormal(rng, p.regimen_median_days, 0.65, rows), 90, 1000))
    dur = np.rint(dur)
    pd_off = np.select([end_kind == 1, end_kind == 2, end_kind == 3],
                       [dur - rng.integers(0, 22, rows), dur + rng.integers(7, 51, rows),
                        dur + rng.integers(90, 301, rows)], default=np.nan)
    asct_gap = np.where((kind == 0) & transplant[owner], rng.integers(21, 46, rows), 0)
    asct_to_maint = np.where((kind == 0) & transplant[owner], rng.integers(60, 101, rows), 0)
    gap_next = rng.integers(7, 31, rows)
    advance = np.where(kind == 0, dur + asct_gap + asct_to_maint + gap_next,
                       np.fmax(dur, np.nan_to_num(pd_off, nan=0)) + gap_next)
    # start of each regimen relative to the first regimen (exclusive cumulative sum per subject)
    csum = np.cumsum(advance)
    first_row = np.cumsum(n_reg) - n_reg
    start_rel = csum - advance - (csum[first_row] - advance[first_row])[owner]
    end_rel = start_rel + dur
    washout = rng.integers(14, 46, n)
    total = end_rel[last] + washout  # one per subject, in owner order
    first_reg = (first_dose - total).astype(np.int64)
    start = first_reg[owner] + start_rel.astype(np.int64)
    end = first_reg[owner] + end_rel.astype(np.int64)
    pd_day = start + np.nan_to_num(pd_off, nan=0).astype(np.int64)
    has_pd = ~np.isnan(pd_off)
    dx_day = first_reg - rng.integers(14, 46, n)

    link = (kind <= 1) & transplant[owner]
    rsdisc = np.select([(end_kind == 0) & transplant[owner], end_kind == 0, end_kind == 3], [0, 1, 3], 2)
    scat = np.where(kind == 0, 0, np.where((kind == 1) & transplant[owner], 1, 2))

    # rs: best response (not for PD-as-best) and the progression of each regimen
    best = rng.choice(4, rows, p=[0.12, 0.38, 0.2, 0.3])
    best = np.where(kind == 0, rng.choice(2, rows, p=[0.6, 0.4]), best)  # induction VGPR/PR
    best_day = start + np.rint(0.35 * np.where(has_pd, pd_day - start, dur)).astype(np.int64)
    best_day = np.maximum(best_day, start + 1)
    rs_owner = np.concatenate([np.arange(rows), np.flatnonzero(has_pd)])
    rs_is_pd = np.concatenate([np.zeros(rows, bool), np.ones(has_pd.sum(), bool)])
    rs_val = np.where(rs_is_pd, 4, np.concatenate([best, np.zeros(has_pd.sum(), np.int64)]))
    rs_day = np.where(rs_is_pd, np.concatenate([best_day, pd_day[has_pd]]),
                      np.concatenate([best_day, np.zeros(has_pd.sum(), np.int64)]))
    rs_day = np.where(rs_is_pd, rs_day, np.minimum(rs_day, np.concatenate(
        [np.where(has_pd, pd_day - 1, end), np.zeros(has_pd.sum(), np.int64)])))
    # pr: the transplant of the planned induction -> ASCT -> maintenance sequence
    ind = np.flatnonzero((kind == 0) & transplant[owner])
    cm, rs, pr, mh = history_frames(
        p, usubjid, owner=owner, pos=pos, cat_id=cat_id, start=start, end=end, link=link, rsdisc=rsdisc,
        scat=scat, rs_owner=rs_owner, rs_val=rs_val, rs_day=rs_day, asct=ind, asct_day=end[ind] + asct_gap[ind],
        mh_terms=mh_terms, dx_day=dx_day)
    return History(cm=cm, rs=rs, pr=pr, mh=mh, dx_day=dx_day, n_regimens=n_reg,
                   penta=PENTA_TEMPLATE[template], transplant=transplant)


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cats, codes = np.unique(values.astype(str), return_inverse=True)
    return cats, codes


def history_frames(p: SimulationParams, usubjid: np.ndarray, *, owner: np.ndarray, pos: np.ndarray,
                   cat_id: np.ndarray, start: np.ndarray, end: np.ndarray, link: np.ndarray, rsdisc: np.ndarray,
                   scat: np.ndarray, rs_owner: np.ndarray, rs_val: np.ndarray, rs_day: np.ndarray,
                   asct: np.ndarray, asct_day: np.ndarray, mh_terms: np.ndarray,
                   dx_day: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The cm, rs, pr and mh domains from one row per prior regimen (shared by the late-line
    history here and the early-line history of simulate/history_early.py).

    ``owner``/``pos``: each regimen's subject and its position; ``cat_id``: its row of
    :data:`CATALOGUE`; ``link``: part of the transplant sequence (CMLNKGRP L01); ``rsdisc``: code
    into PLANNED, COMPLETED, PROGRESSIVE DISEASE, TOXICITY; ``scat``: INDUCTION, MAINTENANCE or none;
    ``rs_owner``/``rs_val``/``rs_day``: the prior-therapy responses (regimen, code into
    PRIOR_RESPONSES + PD, day); ``asct``: the regimens followed by a transplant on ``asct_day``.
    """
    n = len(usubjid)
    grp = np.char.add("R", np.char.zfill((pos + 1).astype(str), 2))
    grp_names, grp_code = np.unique(grp, return_inverse=True)
    rsdisc_names = np.array(["PLANNED", "COMPLETED", "PROGRESSIVE DISEASE", "TOXICITY"], dtype=object)
    scat_names = np.array(["INDUCTION", "MAINTENANCE", ""], dtype=object)

    # cm: one row per drug per regimen
    ndrug = np.array([len(c) for c in CATALOGUE])
    drug_names = np.array(sorted({d for c in CATALOGUE for d in c}), dtype=object)
    drug_code = np.full((len(CATALOGUE), 4), -1)
    for i, c in enumerate(CATALOGUE):  # the small catalogue table, not the data
        drug_code[i, : len(c)] = np.searchsorted(drug_names, c)
    r_idx, d_pos = explode_index(ndrug[cat_id])
    cm = pd.DataFrame({
        "STUDYID": constcol(p.study_id, len(r_idx)),
        "USUBJID": strcol(usubjid, owner[r_idx]),
        "CMTRT": strcol(drug_names, drug_code[cat_id[r_idx], d_pos]),
        "CMCAT": constcol("PRIOR ANTI-MYELOMA THERAPY", len(r_idx)),
        "CMSCAT": strcol(scat_names, scat[r_idx], scat[r_idx] == 2),
        "CMGRPID": strcol(grp_names, grp_code[r_idx]),
        "CMLNKGRP": strcol(["L01"], np.zeros(len(r_idx), np.int64), ~link[r_idx]),
        "CMSTDTC": datecol(start[r_idx]),
        "CMENDTC": datecol(end[r_idx]),
        "CMRSDISC": strcol(rsdisc_names, rsdisc[r_idx]),
    })

    # rs: in subject and date order
    order = np.lexsort((rs_day, owner[rs_owner]))
    rs_owner, rs_val, rs_day = rs_owner[order], rs_val[order], rs_day[order]
    nrs = len(rs_owner)
    rs = pd.DataFrame({
        "STUDYID": constcol(p.study_id, nrs),
        "USUBJID": strcol(usubjid, owner[rs_owner]),
        "RSCAT": constcol("PRIOR THERAPY", nrs),
        "RSTESTCD": constcol("OVRLRESP", nrs),
        "RSSTRESC": strcol(np.append(PRIOR_RESPONSES, "PD"), rs_val),
        "RSEVAL": constcol("INVESTIGATOR", nrs),
        "RSGRPID": strcol(grp_names, grp_code[rs_owner]),
        "RSDTC": datecol(rs_day),
    })
    npr = len(asct)
    pr = pd.DataFrame({
        "STUDYID": constcol(p.study_id, npr),
        "USUBJID": strcol(usubjid, owner[asct]),
        "PRTRT": constcol("AUTOLOGOUS STEM CELL TRANSPLANT", npr),
        "PRCAT": constcol("STEM CELL TRANSPLANT", npr),
        "PRSTDTC": datecol(asct_day),
        "PRLNKGRP": constcol("L01", npr),
    })
    mh = pd.DataFrame({
        "STUDYID": constcol(p.study_id, n),
        "USUBJID": strcol(usubjid, np.arange(n)),
        "MHCAT": constcol("PRIMARY DIAGNOSIS", n),
        "MHTERM": strcol(*_codes(mh_terms)),
        "MHDECOD": constcol("PLASMA CELL MYELOMA", n),
        "MHSTDTC": datecol(dx_day),
    })
    return cm, rs, pr, mh
