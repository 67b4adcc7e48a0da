"""Calibration: the simulated BOSTON lands near the published aggregates (Grosicki 2020).

Published values (boston.toml [published], tag C): median PFS 13.93 (SVd) and 9.46 (Vd) months,
stratified HR 0.70, ORR 76.4% and 62.3%, CR or better 16.9% and 10.6%, grade 3/4
thrombocytopenia 39% and 17%, grade >= 2 peripheral neuropathy 21% and 34%. Aggregates are
computed here from the simulator's ground truth (PFS from randomisation, Kaplan-Meier median by
simulate.calibration.km_median; HR by mmtrial.stats.twoarm.compute_stratified_cox with the three
strata, Breslow ties). The tolerances bound the mean over the seeds: a few seeds by default, 30
under ``--sweeps`` (docs/simulator.md, "BOSTON calibration", has the table).

Disposition (issue 13): "the primary reason for treatment discontinuation was disease progression"
(ASH Clinical News summary of the Lancet paper; boston.toml [published]
primary_discontinuation_reason, tag C), so in each arm the mean percentage of subjects whose
treatment ended for PROGRESSIVE DISEASE exceeds that of every other end-of-treatment reason. The
adverse-event discontinuation rates (about 21% / 16%) are tag U (not in a retrieved source): a
calibration target of the simulator, never an oracle here.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mmtrial.protocol import load_protocol
from mmtrial.simulate import simulate_study
from mmtrial.simulate.calibration import (
    PUBLISHED_BOSTON,
    discontinuation_pct,
    summarize_two_arm,
    two_arm_times,
)
from mmtrial.stats.twoarm import combine_strata, compute_stratified_cox

#: quantity: (tolerance on the mean of 3 studies, tolerance on the mean of 30 studies). Per-study SDs
#: (30 studies): PFS medians about 2.0 (SVd) and 1.5 (Vd) months, HR 0.12 (published 95% CI
#: 0.53-0.93, SE of log HR about 0.14), ORR 3-4 points, CR 2-3 points, AE rates 2-4 points; the 30-study
#: tolerances are about 2-3 Monte Carlo SEs of the mean.
TOLERANCES = {
    "median_pfs_months_SVD": (2.0, 0.9), "median_pfs_months_VD": (1.5, 0.7), "pfs_hr": (0.12, 0.05),
    "orr_pct_SVD": (6.0, 3.0), "orr_pct_VD": (6.0, 3.0),
    "cr_or_better_pct_SVD": (5.0, 2.5), "cr_or_better_pct_VD": (5.0, 2.5),
    "g34_thrombocytopenia_pct_SVD": (6.0, 3.0), "g34_thrombocytopenia_pct_VD": (6.0, 3.0),
    "g2plus_peripheral_neuropathy_pct_SVD": (6.0, 3.0), "g2plus_peripheral_neuropathy_pct_VD": (6.0, 3.0),
}


def boston_aggregates(seed: int) -> dict[str, float]:
    sim = simulate_study(seed=seed, protocol="boston")
    out = summarize_two_arm(sim)
    days, event, arm = two_arm_times(sim, "PFS")
    strata = combine_strata(*(sim.truth[q].to_numpy() for q in ("STRATPI", "STRATLOT", "STRATRISS")))
    out["pfs_hr"] = compute_stratified_cox(days, event, (arm == "SVD").astype(int), strata=strata).hr
    return out


def _check_disposition(df: pd.DataFrame) -> None:
    primary = load_protocol("boston").published["primary_discontinuation_reason"]
    for arm in ("SVD", "VD"):
        cols = [c for c in df.columns if c.startswith("disc_") and c.endswith(f"_pct_{arm}")]
        means = df[cols].fillna(0.0).mean()  # a reason absent from a study is 0% there
        top = means.idxmax()
        assert top == f"disc_{primary}_pct_{arm}", f"{arm}: most frequent reason {top}\n{means}"


def _check(seeds: range, which: int) -> pd.DataFrame:
    df = pd.DataFrame([boston_aggregates(s) for s in seeds])
    _check_disposition(df)
    table = pd.DataFrame({"simulated": df.mean(), "published": pd.Series(PUBLISHED_BOSTON)}).dropna()
    table["tolerance"] = [TOLERANCES[k][which] for k in table.index]
    off = table[(table["simulated"] - table["published"]).abs() > table["tolerance"]]
    assert off.empty, f"outside the stated tolerance:\n{off}"
    return table


@pytest.mark.slow
def test_boston_calibration_few_seeds():
    _check(range(3), 0)


@pytest.mark.sweep
def test_boston_calibration_30_seeds():
    _check(range(100, 130), 1)


def test_discontinuation_pct_hand_counted():
    # hand count: arm of 4 subjects; A and B ended for PD, C for an AE, D still on treatment
    # (no END OF TREATMENT row); E is another arm's; the END OF STUDY row of A is not a reason
    ds = pd.DataFrame({
        "USUBJID": ["A", "A", "B", "C", "E"],
        "DSSCAT": ["END OF TREATMENT", "END OF STUDY", "END OF TREATMENT", "END OF TREATMENT", "END OF TREATMENT"],
        "DSDECOD": ["PROGRESSIVE DISEASE", "DEATH", "PROGRESSIVE DISEASE", "ADVERSE EVENT", "ADVERSE EVENT"],
    })
    got = discontinuation_pct(ds, pd.Series(["A", "B", "C", "D"]))
    assert got == {"PROGRESSIVE DISEASE": 50.0, "ADVERSE EVENT": 25.0}


def test_disposition_check_fails_when_ae_dominates():
    # the check can fail: AE 40% > PD 20% in SVD
    df = pd.DataFrame({"disc_PROGRESSIVE DISEASE_pct_SVD": [20.0], "disc_ADVERSE EVENT_pct_SVD": [40.0],
                       "disc_PROGRESSIVE DISEASE_pct_VD": [30.0], "disc_ADVERSE EVENT_pct_VD": [10.0]})
    with pytest.raises(AssertionError, match="SVD: most frequent reason disc_ADVERSE EVENT"):
        _check_disposition(df)
