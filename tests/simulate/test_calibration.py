"""Calibration: 50 simulated 122-subject studies land near STORM's published aggregates.

Published values: domain.md sections 1.3-1.5 and 5 (Chari NEJM 2019; tag C). Tolerances are
stated per quantity: they bound the mean over 50 studies (its Monte Carlo SD is about 1/7 of
the per-study SD), so a drift of the model's defaults fails the test.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mmtrial.simulate import SimulationParams, simulate_study
from mmtrial.simulate.calibration import calibration_table, km_median
from support import sweeps

# quantity: (published STORM value, tolerance on the mean of 50 studies)
TARGETS = {
    "orr_pct": (26.2, 3.0),  # ORR 32/122 (NEJM abstract)
    "cbr_pct": (39.3, 3.0),  # >= MR 48/122
    "median_pfs_months": (3.7, 0.4),
    "median_os_months": (8.6, 0.8),
    # median OS among subjects with BOR >= PR and >= MR: 15.6 months each (x-mol; domain.md 1.4,
    # C). Per-study SD is about 2 months (about 30 and 48 subjects), so +- 2.5 bounds the mean.
    "median_os_ge_pr_months": (15.6, 2.5),
    "median_os_ge_mr_months": (15.6, 2.5),
    "median_dor_months": (4.4, 0.8),
    "median_ttr_weeks": (4.1, 0.5),
    "g34_thrombocytopenia_pct": (59.0, 6.0),
    "g34_anemia_pct": (44.0, 6.0),
    "g34_hyponatremia_pct": (22.0, 5.0),
    "g34_neutropenia_pct": (21.0, 5.0),
    "median_treatment_weeks": (9.0, 1.5),
    "penta_pct": (68.0, 4.0),
    "median_prior_regimens": (7.0, 0.5),
    "median_years_since_diagnosis": (6.6, 0.5),
    "high_risk_cyto_pct": (53.0, 5.0),
}


@pytest.mark.slow
def test_mean_over_50_studies_matches_storm_within_tolerance():
    """50 studies under ``--sweeps``; by default the first 20 (the same seeds), with each tolerance
    widened by sqrt(50/20), since the Monte Carlo SD of a mean over k studies is proportional to
    1/sqrt(k) (the suite's time budget, docs/design.md "The test suite's time")."""
    k = 50 if sweeps.FULL else 20
    widen = math.sqrt(50 / k)
    table = calibration_table(n=122, seeds=range(k))
    mean = table["simulated_mean"]
    for key, (published, tol) in TARGETS.items():
        assert abs(mean[key] - published) <= tol * widen, \
            f"{key}: simulated {mean[key]:.2f} vs {published} +- {tol * widen:.2f} ({k} studies)"
    # category counts: sCR 2, VGPR 6, PR 24, MR 16 of 122 (domain.md 1.3)
    for key, published in (("scr_n", 2), ("vgpr_n", 6), ("pr_n", 24), ("mr_n", 16)):
        assert abs(mean[key] - published) <= max(1.5, 0.15 * published) * widen, key
    assert abs(mean["n_efficacy"] - 122 * 0.99) < 1.0
    # the responder OS medians are reached in almost every study (STORM reached them), so the
    # mean above is not an average over a selected few (at most 5 of 50 studies not reached)
    for key in ("median_os_ge_pr_months", "median_os_ge_mr_months"):
        assert table.loc[key, "n_not_reached"] <= 5 * k / 50, key


def test_km_median_hand_worked():
    # times 1..6 all events: S = 5/6, 4/6, 3/6 at t=3 -> median 3 (first S(t) <= 0.5)
    assert km_median(np.arange(1, 7), np.ones(6)) == 3
    # censoring at 2: S(1)=5/6, S(3)=5/6*3/4=0.625, S(4)=0.4167 -> median 4
    assert km_median(np.array([1, 2, 3, 4, 5, 6]), np.array([1, 0, 1, 1, 1, 1])) == 4
    # never below 0.5 -> not reached
    assert np.isnan(km_median(np.array([1, 2, 3, 4]), np.array([1, 0, 0, 0])))


def _post_progression_median(params: SimulationParams, classes: tuple[str, ...]) -> float:
    """KM median (days) of death after the first PD among subjects of latent ``classes``."""
    tr = simulate_study(n=3000, seed=11, params=params).truth
    sel = tr[tr["TRUE_CLASS"].isin(classes) & tr["TRUE_PD_DT"].notna()]
    pd_dt = pd.to_datetime(sel["TRUE_PD_DT"])
    end = pd.to_datetime(sel["TRUE_FIRST_DOSE_DT"]) + pd.to_timedelta(sel["TRUE_OS_DAYS"] - 1, unit="D")
    return km_median(((end - pd_dt).dt.days).to_numpy(float), sel["TRUE_OS_EVENT"].to_numpy(bool))


def test_post_progression_survival_follows_the_response_class():
    # pps_median_days_by_class: PR 275 / MR 310 days vs 95 for SD (params.py, calibrated to
    # OS >= PR and >= MR 15.6 months, domain.md 1.4). Counting from the first PD (about 4 weeks
    # before the confirmation the model's survival starts from), PR-or-MR subjects live about
    # (290 + 28) / (95 + 28) = 2.6 times longer than SD subjects; with no class entries, 1.
    p = SimulationParams()
    ratio = _post_progression_median(p, ("PR", "MR")) / _post_progression_median(p, ("SD",))
    assert 2.0 < ratio < 3.5, ratio
    flat = replace(p, pps_median_days_by_class=())
    ratio_flat = _post_progression_median(flat, ("PR", "MR")) / _post_progression_median(flat, ("SD",))
    assert 0.75 < ratio_flat < 1.35, ratio_flat


def test_post_progression_parameters_are_validated_with_the_value():
    with pytest.raises(ValueError, match=r"pps_median_days_by_class.*'XR'"):
        SimulationParams(pps_median_days_by_class=(("XR", 100.0),))
    with pytest.raises(ValueError, match=r"pps_median_days_by_class.*-5"):
        SimulationParams(pps_median_days_by_class=(("PR", -5.0),))
    with pytest.raises(ValueError, match="pps_median_days: allowed > 0; got 0"):
        SimulationParams(pps_median_days=0.0)
