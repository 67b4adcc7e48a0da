"""Coverage of the external-control comparison on simulated cohorts with a KNOWN effect and KNOWN
confounding (simulate/cohort.py: treatment at the first triple-class-refractory line depends on
age, prior lines, penta-refractoriness; survival depends on the same covariates; conditional
log HR = CohortParams.log_hr).

Estimand: the marginal hazard ratio among the treated (ATT, what IPTW-ATT estimates), computed
from the simulator's potential outcomes T1 and T0 of the treated patients (same uniform draw,
same censoring), pooled over the replicates: a Cox fit of T1 versus T0 with patients as clusters.

Oracle of coverage: a 95% CI should cover the estimand in about 95% of replicates with the
correct adjustment (all confounders in the propensity model) and visibly less without it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.derive.eligibility import Criterion, EligibilityRule
from mmtrial.external.compare import compare_external
from mmtrial.simulate.cohort import simulate_cohort

COVARIATES = ["AGE", "MALE", "NPRIOR", "PENTAFL"]
TCR = EligibilityRule(criteria=(Criterion("TCR", "Triple-class refractory",
                                          ("refractory:PI", "refractory:IMID", "refractory:ANTI-CD38")),),
                      label_population=())


def _truth_frame(truth: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Index patients straight from the simulator's truth (covariates and outcome at the index)."""
    x = truth.loc[truth["INDEXFL"] == "Y"]
    treated = (x["TREATED"] == "Y").to_numpy()
    t = np.where(treated, x["T1DAYS"], x["T0DAYS"])
    c = x["CENSDAYS"].to_numpy()
    f = pd.DataFrame({"ID": x["USUBJID"].to_numpy(), "CLUSTER": x["USUBJID"].to_numpy(), "AGE": x["AGEIDX"].to_numpy(),
                      "MALE": x["MALE"].to_numpy(), "NPRIOR": x["NPRIOR"].to_numpy(),
                      "PENTAFL": (x["PENTAFL"] == "Y").astype(float).to_numpy(),
                      "OSDAYS": np.ceil(np.minimum(t, c)), "OSEVENT": (t <= c).astype(float)})
    return f, treated


def _marginal_att(truths: list[pd.DataFrame]) -> float:
    """The ATT estimand from the treated patients' potential outcomes (module docstring)."""
    from mmtrial.stats.weighting import compute_weighted_cox

    tt = pd.concat([t.loc[t["TREATED"] == "Y"] for t in truths], ignore_index=True)
    c = tt["CENSDAYS"].to_numpy()
    t1, t0 = tt["T1DAYS"].to_numpy(), tt["T0DAYS"].to_numpy()
    n = len(tt)
    return compute_weighted_cox(np.r_[np.minimum(t1, c), np.minimum(t0, c)],
                                np.r_[t1 <= c, t0 <= c].astype(int), np.r_[np.ones(n), np.zeros(n)],
                                None, np.r_[np.arange(n), np.arange(n)]).hr


def _coverage(seeds, n: int) -> tuple[int, int, int, float]:
    truths = [simulate_cohort(n, seed=s).truth for s in seeds]
    hr = _marginal_att(truths)
    adj = una = 0
    for tr in truths:
        f, g = _truth_frame(tr)
        r = compare_external(f[g], f[~g], covariates=COVARIATES, endpoints=("OS",)).results["endpoints"]["OS"]
        adj += r["hr_ci"][0] <= hr <= r["hr_ci"][1]
        una += r["hr_unadjusted_ci"][0] <= hr <= r["hr_unadjusted_ci"][1]
    return adj, una, len(truths), hr


def test_coverage_sample():
    """A sample of 12 replicates (the sweep runs 300): adjusted covers in >= 10, unadjusted in <= 6."""
    adj, una, r, hr = _coverage(range(100, 112), 1500)
    assert 0.6 < hr < 0.85  # near the conditional exp(log_hr) = 0.70, not equal (non-collapsibility)
    assert adj >= 10, f"adjusted CI covered the effect in {adj}/{r}"
    assert una <= 6, f"unadjusted CI covered the effect in {una}/{r}"
    assert adj - una >= 4


@pytest.mark.sweep
def test_coverage_sweep():
    """300 replicates: adjusted coverage within Monte-Carlo error of 95% (>= 91.5%), unadjusted < 60%."""
    adj, una, r, _ = _coverage(range(1000, 1300), 1500)
    assert adj / r >= 0.915, f"adjusted coverage {adj}/{r}"
    assert una / r < 0.6, f"unadjusted coverage {una}/{r}"


def _end_to_end(seed: int, n: int):
    """Simulated SDTM frames -> lines and refractory status -> emulation -> IPTW comparison."""
    from mmtrial.external.cohort import check_cohort_domains
    from mmtrial.external.emulate import EmulationOptions, emulate_target_trial
    from mmtrial.external.history import derive_cohort_history
    from mmtrial.external.trial import derive_external_frame

    sim = simulate_cohort(n, seed=seed)
    raw = {}
    for k, v in sim.domains.items():
        v = v.astype("string").reset_index(drop=True)
        v.insert(0, "ROWNUM", np.arange(1, len(v) + 1))
        raw[k] = v
    frames, _ = check_cohort_domains(raw, label="sim")
    e = emulate_target_trial(derive_cohort_history(frames), frames, eligibility=TCR,
                             options=EmulationOptions(measurable="ignore"))
    f = derive_external_frame(e.index)
    g = e.index["DRUGS"].str.contains("selinexor").to_numpy()  # the study regimen at the index line
    r = compare_external(f[g], f[~g], covariates=COVARIATES, endpoints=("OS",)).results["endpoints"]["OS"]
    return r, sim.truth


@pytest.mark.slow
def test_end_to_end_pipeline_covers_the_effect():
    """Two cohorts through the whole pipeline (derived lines, refractory status, emulation): the
    adjusted CI covers the estimand; the unadjusted estimate is biased toward benefit (treated
    patients are younger, less pretreated, less often penta-refractory)."""
    runs = [_end_to_end(s, 2500) for s in (7, 8)]
    hr = _marginal_att([t for _, t in runs])
    for r, _ in runs:
        assert r["hr_ci"][0] <= hr <= r["hr_ci"][1], (r["hr_ci"], hr)
        assert r["hr_unadjusted"] < r["hr"]
    assert sum(r["hr_unadjusted_ci"][0] <= hr <= r["hr_unadjusted_ci"][1] for r, _ in runs) <= 1


@pytest.mark.sweep
def test_end_to_end_coverage_sweep():
    """100 cohorts through the whole pipeline: adjusted coverage >= 90%, unadjusted < 60%."""
    runs = [_end_to_end(s, 1500) for s in range(2000, 2100)]
    hr = _marginal_att([t for _, t in runs])
    adj = sum(r["hr_ci"][0] <= hr <= r["hr_ci"][1] for r, _ in runs)
    una = sum(r["hr_unadjusted_ci"][0] <= hr <= r["hr_unadjusted_ci"][1] for r, _ in runs)
    assert adj >= 90 and una < 60, (adj, una)
