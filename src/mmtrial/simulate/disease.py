"""Latent disease: myeloma type, measurable disease, response class and the marker course.

Model (docs/simulator.md, "Disease course"): each subject has one latent tumour-burden ratio
``r`` per disease assessment (1 = baseline). The ratio follows the subject's response class:
a descent to the class's band (the first response is seen at assessment 1, 2 or 3), a plateau
that never rises 25% above its running minimum, and a progression that is detected at the first
assessment after the latent progression time and confirmed at the next one. The serum M-protein,
urine M-protein and free light chains are functions of ``r`` (urine falls as ``r**2``: light-chain
clearance is faster than the intact immunoglobulin's), with band edges kept clear of the IMWG
thresholds (Kumar 2016; Durie 2006) so that the IMWG rules applied to the labs give back the class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmtrial.simulate.params import CATEGORIES, SimulationParams

# routes (the marker that measures the disease)
HEAVY, URINE, FLC, NONE = 0, 1, 2, 3
ROUTE_NAMES = np.array(["M-PROTEIN", "M-PROTEIN", "FLC", "NONE"], dtype=object)
# class codes follow CATEGORIES: 0 sCR, 1 CR, 2 VGPR, 3 PR, 4 MR, 5 SD, 6 PD, 7 NE
SCR, CR, VGPR, PR, MR, SD, PD, NE = range(8)
#: rank of each category for "best" comparisons (higher is better)
RANK = np.array([7, 6, 5, 4, 3, 2, 1, 0])

# band of the nadir ratio per (route, class): [low, high]; plateau values <= nadir * PLATEAU_MAX
PLATEAU_MAX = 1.12
BANDS = {
    (HEAVY, VGPR): (0.02, 0.07), (HEAVY, PR): (0.15, 0.40), (HEAVY, MR): (0.56, 0.62),
    (HEAVY, SD): (0.80, 1.00), (URINE, VGPR): (0.02, 0.045), (URINE, SD): (0.80, 1.00),
    (FLC, PR): (0.15, 0.40), (FLC, SD): (0.80, 1.00), (NONE, SD): (0.80, 1.00),
}
URINE_PR_VALUES = (115.0, 168.0)  # mg/24h: PR by "< 200 mg/24h" but not VGPR (< 100)
PD_ABS = {HEAVY: 0.5, URINE: 200.0, FLC: 10.0, NONE: 0.5}  # Kumar 2016 PD absolute minimums
KAPPA_NORMAL, LAMBDA_NORMAL = 1.25, 1.45  # mg/dL, typical normal serum free light chains


@dataclass
class Disease:
    """Baseline disease per subject (arrays of length n)."""

    mtype: np.ndarray  # 0 IgG, 1 IgA, 2 light chain only
    kappa: np.ndarray  # bool: kappa light chain (else lambda)
    route: np.ndarray  # HEAVY, URINE, FLC, NONE
    m0: np.ndarray  # serum M-protein g/dL
    u0: np.ndarray  # urine M-protein mg/24h
    dflc0: np.ndarray  # involved minus uninvolved FLC mg/dL
    uninv0: np.ndarray  # uninvolved FLC mg/dL
    excess0: np.ndarray  # involved FLC above normal (heavy chain), mg/dL
    bmpc0: np.ndarray  # marrow plasma cells %
    plasmacytoma_spd: np.ndarray  # mm^2, 0 when none
    alt_units: np.ndarray  # bool

    @property
    def terms(self) -> np.ndarray:
        """MHTERM of the primary diagnosis."""
        lc = np.where(self.kappa, "KAPPA", "LAMBDA")
        heavy = np.where(self.mtype == 0, "IGG", "IGA")
        return np.where(self.mtype == 2, lc + " LIGHT CHAIN MULTIPLE MYELOMA",
                        heavy + " " + lc + " MULTIPLE MYELOMA")


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def sample_disease(rng: np.random.Generator, n: int, p: SimulationParams) -> Disease:
    """Myeloma type, light chain, baseline markers and the measurable-disease route."""
    u = rng.random(n)
    mtype = np.where(u < p.igg_fraction, 0, np.where(u < p.igg_fraction + p.iga_fraction, 1, 2))
    kappa = rng.random(n) < p.kappa_fraction
    heavy = mtype < 2
    lc_urine = (~heavy) & (rng.random(n) < p.lc_urine_measurable_fraction)
    route = np.where(heavy, HEAVY, np.where(lc_urine, URINE, FLC))
    nonmeas = rng.random(n) < p.nonmeasurable_fraction
    route = np.where(nonmeas, NONE, route)

    m0 = np.clip(_lognormal(rng, p.serum_m_median, p.serum_m_sigma, n), p.serum_m_min, p.serum_m_max)
    m0 = np.where(heavy, m0, 0.0)
    u_heavy = np.where(rng.random(n) < p.heavy_urine_present_fraction, rng.uniform(20, 150, n), 0.0)
    u_lc_urine = np.clip(_lognormal(rng, p.urine_lc_median, 0.45, n), 300.0, 1500.0)
    u_lc_flc = np.where(rng.random(n) < 0.6, rng.uniform(10, 150, n), 0.0)
    u0 = np.where(heavy, u_heavy, np.where(route == URINE, u_lc_urine, u_lc_flc))
    uninv0 = rng.uniform(0.25, 0.9, n)  # suppressed uninvolved light chain
    dflc0 = np.where(route == FLC, np.maximum(_lognormal(rng, p.dflc_median, 0.8, n), 15.0),
                     np.maximum(_lognormal(rng, 35.0, 0.9, n), 12.0))
    dflc0 = np.where(heavy, 0.0, dflc0)
    excess0 = np.where(heavy, _lognormal(rng, 6.0, 0.9, n), 0.0)
    # not measurable: low serum M (< 0.5 g/dL), urine < 150 mg/24h, involved FLC < 8 mg/dL
    m0 = np.where(nonmeas & heavy, rng.uniform(0.1, 0.4, n), m0)
    u0 = np.where(nonmeas, np.minimum(u0, rng.uniform(0, 140, n)), u0)
    dflc0 = np.where(nonmeas & ~heavy, rng.uniform(1.0, 5.0, n), dflc0)
    excess0 = np.where(nonmeas & heavy, rng.uniform(0.5, 3.0, n), excess0)
    bmpc0 = np.clip(_lognormal(rng, p.bmpc_median, 0.5, n), 5.0, 95.0)
    bmpc0 = np.where(nonmeas, rng.uniform(8.0, 25.0, n), bmpc0)  # never the marrow route (< 30%)
    spd = np.where(heavy & ~nonmeas & (rng.random(n) < p.plasmacytoma_prob),
                   _lognormal(rng, 600.0, 0.6, n), 0.0)
    alt = rng.random(n) < p.alt_units_fraction
    return Disease(mtype, kappa, route, m0, u0, dflc0, uninv0, excess0, bmpc0, spd, alt)


def _logit(x: np.ndarray | float) -> np.ndarray | float:
    return np.log(x) - np.log1p(-x)


def responder_probability(score: np.ndarray, p_resp: float, effect: float) -> np.ndarray:
    """P(PR or better | marker score) = expit(a + effect * score), ``a`` solving E[p] = p_resp.

    The intercept is found on a Gauss-Hermite grid for a standard normal score, so the
    marginal response rate stays at ``p_resp`` whatever the planted effect.
    """
    x, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    lo, hi = -20.0, 20.0
    for _ in range(80):  # bisection on a scalar, not a loop over subjects
        mid = 0.5 * (lo + hi)
        if (w / (1 + np.exp(-(mid + effect * x)))).sum() < p_resp:
            lo = mid
        else:
            hi = mid
    return 1.0 / (1.0 + np.exp(-(0.5 * (lo + hi) + effect * score)))


def sample_classes(rng: np.random.Generator, route: np.ndarray, score: np.ndarray,
                   p: SimulationParams) -> np.ndarray:
    """Latent best-response class per subject (codes of CATEGORIES).

    Responders (PR or better) are drawn from the biomarker-dependent probability; within
    responders and non-responders the class follows ``class_probs``. Light-chain routes cannot
    show MR (IMWG defines MR on M-protein only) or CR/sCR in this model (their IMWG reading is
    ambiguous without serum M-protein); the FLC route also has no VGPR. The MR share of
    heavy-chain subjects is raised so the marginal MR rate stays at ``class_probs``.
    """
    n = len(route)
    cp = np.asarray(p.class_probs, dtype=float)
    p_resp = cp[:4].sum()
    resp = rng.random(n) < responder_probability(score, p_resp, p.biomarker_effect)
    heavy_frac = max(float(np.mean((route == HEAVY) | (route == NONE))), 1e-9) if n else 1.0
    within_r = cp[:4] / p_resp
    nonr = cp[4:].copy()
    mr_heavy = min(nonr[0] / heavy_frac, nonr[0] + nonr[1] * 0.9)
    nonr_heavy = np.array([mr_heavy, nonr[1] - (mr_heavy - nonr[0]), nonr[2], nonr[3]])
    nonr_lc = np.array([0.0, nonr[0] + nonr[1], nonr[2], nonr[3]])
    u = rng.random(n)
    c_resp = np.searchsorted(np.cumsum(within_r), u * within_r.sum(), side="right")
    heavy_like = (route == HEAVY) | (route == NONE)
    c_nh = 4 + np.searchsorted(np.cumsum(nonr_heavy), u * nonr_heavy.sum(), side="right")
    c_nl = 4 + np.searchsorted(np.cumsum(nonr_lc), u * nonr_lc.sum(), side="right")
    cls = np.where(resp, np.minimum(c_resp, 3), np.where(heavy_like, np.minimum(c_nh, 7),
                                                         np.minimum(c_nl, 7)))
    cls = np.where((route == URINE) & (cls < VGPR), VGPR, cls)
    cls = np.where((route == FLC) & (cls < PR), PR, cls)
    return cls.astype(np.int64)


@dataclass
class Course:
    """Designed marker course on each subject's performed assessments (n x K arrays)."""

    ratio: np.ndarray  # latent ratio r of the route marker (heavy: serum M / M0)
    level: np.ndarray  # designed IMWG category code per assessment (CATEGORIES), -1 none
    j_resp: np.ndarray  # first assessment index at the first response level (responders)
    j_best: np.ndarray  # first assessment index at the best band
    j_pd: np.ndarray  # first PD assessment index (K when none within the grid)


def design_course(rng: np.random.Generator, cls: np.ndarray, route: np.ndarray, dis: Disease,
                  vday: np.ndarray, n_perf: np.ndarray, t_prog: np.ndarray,
                  p: SimulationParams) -> Course:
    """Ratios and designed categories per performed assessment (vectorised over subjects).

    Rules kept by construction (Kumar 2016, domain.md 2.1-2.3): values fall monotonically to the
    class's band, never rise >= 25% above the running minimum before the designed progression,
    stay in the best band for at least two consecutive assessments, and at progression rise by
    >= 40% and >= 1.3 x the absolute minimum above the nadir (confirmed at the next assessment).
    """
    n, k = vday.shape
    j = np.arange(k)[None, :]
    responder = cls <= MR
    rv = np.asarray(p.response_visit_probs)
    j_resp = np.searchsorted(np.cumsum(rv), rng.random(n) * rv.sum(), side="right")
    j_resp = np.where(responder, np.minimum(j_resp, 2), 0)
    deepen = np.where(cls == VGPR, rng.choice(3, n, p=[0.5, 0.3, 0.2]),
                      np.where(cls <= CR, rng.choice(3, n, p=[0.2, 0.4, 0.4]), 0))
    j_best = np.where(responder, j_resp + deepen, 0)
    # first performed assessment at or after the latent progression time
    after = (vday >= t_prog[:, None]) & (j < n_perf[:, None])
    j_lat = np.where(after.any(axis=1), after.argmax(axis=1), k)
    j_min = np.where(cls == PD, 0, np.where(cls == SD, 1, j_best + 2))
    j_pd = np.where(cls == PD, 0, np.maximum(j_lat, j_min))
    j_pd = np.where(cls == NE, k, j_pd)

    # nadir band per subject
    lo = np.ones(n)
    hi = np.ones(n)
    for (rt, c), (a, b) in BANDS.items():
        sel = (route == rt) & (cls == c)
        lo[sel], hi[sel] = a, b
    sd_like = np.isin(cls, [SD, PD, NE])
    for rt in (HEAVY, URINE, FLC, NONE):
        sel = (route == rt) & sd_like
        lo[sel], hi[sel] = BANDS.get((rt, SD), (0.8, 1.0))
    nadir = rng.uniform(lo, hi)
    urine_pr = (route == URINE) & (cls == PR)
    nadir = np.where(urine_pr, rng.uniform(*URINE_PR_VALUES, n) / np.maximum(dis.u0, 1.0), nadir)
    nadir = np.where(cls <= CR, 0.0, nadir)

    # descent: SD-like levels before the first response, PR-like levels while deepening
    sd_level = np.minimum(rng.uniform(0.86, 0.98, (n, k)), 1.0)
    pr_level = rng.uniform(0.18, 0.40, (n, k))
    pr_level = np.where((route == URINE)[:, None],
                        rng.uniform(*URINE_PR_VALUES, (n, k)) / np.maximum(dis.u0, 1.0)[:, None],
                        pr_level)
    plateau = nadir[:, None] * (1.0 + np.where(j == j_best[:, None], 0.0,
                                               rng.uniform(0.0, PLATEAU_MAX - 1.0, (n, k))))
    ratio = np.where(j < j_resp[:, None], sd_level,
                     np.where(j < j_best[:, None], pr_level, plateau))
    # descending phases must be monotone: cumulative minimum before the plateau
    desc = j < j_best[:, None]
    ratio_desc = np.minimum.accumulate(np.where(desc, ratio, np.inf), axis=1)
    ratio = np.where(desc, ratio_desc, ratio)
    # SD-like classes: plateau from the first assessment (first value is the nadir)
    ratio = np.where(sd_like[:, None], plateau, ratio)

    # designed category per assessment (before progression)
    best_level = cls.copy()
    best_level = np.where(sd_like, SD, best_level)
    level = np.where(j < j_resp[:, None], SD, np.where(j < j_best[:, None], PR, best_level[:, None]))
    level = np.where(sd_like[:, None], SD, level)
    level = np.where(j < n_perf[:, None], level, -1)
    return Course(ratio=ratio, level=level.astype(np.int64), j_resp=j_resp, j_best=j_best,
                  j_pd=j_pd.astype(np.int64))


def route_values(dis: Disease, ratio: np.ndarray) -> np.ndarray:
    """Value of the route's marker (serum g/dL, urine mg/24h, dFLC mg/dL) at ratio ``ratio``."""
    base = np.select([dis.route == HEAVY, dis.route == URINE, dis.route == FLC],
                     [dis.m0, dis.u0, dis.dflc0], default=np.where(dis.m0 > 0, dis.m0, dis.dflc0))
    return base[:, None] * ratio


#: Highest simulated serum M-protein at PD confirmation, g/dL (below the 20 g/dL plausibility bound).
SERUM_CONFIRM_MAX = 15.0


def apply_progression(rng: np.random.Generator, dis: Disease, course: Course) -> np.ndarray:
    """Raise the route marker at the first PD assessment and its confirmation (Kumar 2016 PD).

    Returns the final ratio matrix. PD value = max(nadir * U(1.40, 1.80), nadir + abs_min *
    U(1.3, 1.8)); abs_min is 0.5 g/dL serum (1 g/dL when the nadir is >= 5 g/dL), 200 mg/24h
    urine, 10 mg/dL dFLC. The confirmation value is 1.10-1.40 times the PD value; a serum
    M-protein confirmation is capped at 15 g/dL (or the PD value when higher), so a simulated study
    stays inside the input checks' physiological range (data/plausibility.toml: 0-20 g/dL).
    """
    n, k = course.ratio.shape
    j = np.arange(k)[None, :]
    vals = route_values(dis, course.ratio)
    # running nadir (baseline included) up to the assessment before PD
    base = route_values(dis, np.ones((n, 1)))[:, 0]
    before = j < course.j_pd[:, None]
    nadir = np.minimum(base, np.where(before, vals, np.inf).min(axis=1))
    abs_min = np.array([PD_ABS[r] for r in range(4)])[dis.route]
    abs_min = np.where((dis.route == HEAVY) & (nadir >= 5.0), 1.0, abs_min)
    v_pd = np.maximum(nadir * rng.uniform(1.40, 1.80, n), nadir + abs_min * rng.uniform(1.3, 1.8, n))
    v_conf = v_pd * rng.uniform(1.10, 1.40, n)
    v_conf = np.where(dis.route == HEAVY, np.minimum(v_conf, np.maximum(v_pd, SERUM_CONFIRM_MAX)), v_conf)
    vals = np.where(j == course.j_pd[:, None], v_pd[:, None], vals)
    vals = np.where(j == course.j_pd[:, None] + 1, v_conf[:, None], vals)
    vals = np.where(j > course.j_pd[:, None] + 1, np.nan, vals)
    ratio = vals / np.maximum(base, 1e-9)[:, None]
    lvl = np.where(j >= course.j_pd[:, None], PD, course.level)
    course.level = np.where(course.level < 0, -1, lvl)
    return ratio


def category_names() -> np.ndarray:
    return np.array(CATEGORIES, dtype=object)
