"""Simulated randomised studies: crossover changes survival after the switch by a known
acceleration factor (so RPSFTM has a truth), randomised subjects who are never treated
(ACTARMCD NOTTRT), and a prognostic stratification factor (R-ISS III).

The expected values are the simulator's own stated model (docs/simulator.md, "Two-arm studies"):
death' = x + AF (death - x) for a control subject crossing over at day x (Robins & Tsiatis 1991's
rank-preserving model); the same seed with another factor changes nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmtrial.protocol
from mmtrial.simulate import simulate_study
from mmtrial.simulate.calibration import two_arm_times

# each test simulates small BOSTON studies (a few seconds each); the RPSFTM check three full ones
pytestmark = pytest.mark.slow

BOSTON = Path(mmtrial.protocol.__file__).parent / "boston.toml"


def _variant(tmp_path: Path, name: str, **two_arm) -> Path:
    """boston.toml with [simulation.two_arm] keys replaced (or added) and the R-ISS time ratio
    removed unless given."""
    lines = BOSTON.read_text("utf-8").splitlines()
    keep_ratio = two_arm.pop("keep_time_ratio", False)
    out, section = [], ""
    for ln in lines:
        s = ln.strip()
        if s.startswith("["):
            section = s
        key = s.split("=")[0].strip() if "=" in s else ""
        if section == "[simulation.two_arm]" and key in two_arm:
            continue
        if key == "time_ratio" and not keep_ratio:
            continue
        out.append(ln)
        if s == "[simulation.two_arm]":
            out += [f"{k} = {v}" for k, v in two_arm.items()]
    p = tmp_path / f"{name}.toml"
    p.write_text("\n".join(out) + "\n", "utf-8")
    return p


def _days(s) -> np.ndarray:
    """Days since 1970-01-01 of ISO dates; NaN when missing."""
    return (pd.to_datetime(pd.Series(s)) - pd.Timestamp("1970-01-01")).dt.days.to_numpy(float)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cross")
    one = simulate_study(n=100, seed=11, protocol=str(_variant(tmp, "af1", crossover_acceleration_factor=1.0)))
    two = simulate_study(n=100, seed=11, protocol=str(_variant(tmp, "af2", crossover_acceleration_factor=2.0)))
    return one, two


def test_crossover_multiplies_the_survival_after_the_switch(pair):
    one, two = pair
    t1, t2 = one.truth, two.truth
    assert (t1["TRUE_CROSSOVER"] == t2["TRUE_CROSSOVER"]).all()  # who crosses over does not depend on AF
    cross = (t1["TRUE_CROSSOVER"] == "Y").to_numpy()
    assert cross.sum() >= 3
    # not crossing over: the same survival
    pd.testing.assert_series_equal(t1.loc[~cross, "TRUE_OS_DAYS"], t2.loc[~cross, "TRUE_OS_DAYS"])
    x = _days(t1["TRUE_CROSSOVER_DT"])
    d1, d2 = _days(t1["TRUE_DTH_DT"]), _days(t2["TRUE_DTH_DT"])
    both = cross & np.isfinite(d1) & np.isfinite(d2)
    assert both.sum() >= 2
    # death' - x = 2 (death - x), within the day rounding of the three dates
    np.testing.assert_allclose(d2[both] - x[both], 2 * (d1[both] - x[both]), atol=2.0)
    # a crosser who died with AF 1 lives at least as long with AF 2 (or is censored at the cut-off)
    later = cross & np.isfinite(d1)
    assert (t2.loc[later, "TRUE_OS_DAYS"].to_numpy() >= t1.loc[later, "TRUE_OS_DAYS"].to_numpy()).all()


def test_crossover_death_dates_are_the_domains_death_dates(pair):
    _, two = pair
    dm = two.domains["dm"].set_index("USUBJID")
    tr = two.truth.set_index("USUBJID")
    dth = dm.loc[tr.index, "DTHDTC"].astype("string").fillna("")
    assert (dth.to_numpy() == tr["TRUE_DTH_DT"].astype("string").fillna("").to_numpy()).all()
    cm = two.domains["cm"]
    cross_ids = tr.index[tr["TRUE_CROSSOVER"] == "Y"]
    sub = cm[(cm["CMCAT"] == "SUBSEQUENT ANTI-MYELOMA THERAPY") & cm["USUBJID"].isin(cross_ids)]
    assert set(sub.loc[sub["CMTRT"] == "SELINEXOR", "USUBJID"]) == set(cross_ids)


def test_never_treated_subjects_have_no_exposure_and_actual_arm_nottrt(tmp_path):
    sim = simulate_study(n=50, seed=5, protocol=str(_variant(tmp_path, "nt", not_treated_prob=0.2)))
    tr = sim.truth
    nt = set(tr.loc[tr["TRUE_TREATED"] == "N", "USUBJID"])
    assert 2 <= len(nt) <= 22  # Binomial(50, 0.2): mean 10, within about 3 SD
    dm = sim.domains["dm"]
    m = dm["USUBJID"].isin(nt)
    assert (dm.loc[m, "ACTARMCD"] == "NOTTRT").all() and (dm.loc[m, "ACTARM"] == "Not Treated").all()
    assert (dm.loc[~m, "ACTARMCD"] == dm.loc[~m, "ARMCD"]).all()
    assert dm.loc[m, "RFXSTDTC"].isna().all()
    for name in ("ex", "ae"):
        assert not sim.domains[name]["USUBJID"].isin(nt).any()
    assert set(sim.domains["ex"]["USUBJID"]) == set(dm.loc[~m, "USUBJID"])
    ds = sim.domains["ds"]
    assert not (ds["USUBJID"].isin(nt) & (ds["DSSCAT"] == "END OF TREATMENT")).any()
    # still randomised (ITT): one RANDOMIZED milestone each
    assert set(ds.loc[ds["DSDECOD"] == "RANDOMIZED", "USUBJID"]) >= nt


def test_the_not_treated_default_changes_nothing(tmp_path):
    a = simulate_study(n=24, seed=3, protocol=str(_variant(tmp_path, "z0", not_treated_prob=0.0)))
    assert "TRUE_TREATED" not in a.truth
    assert (a.domains["dm"]["ACTARMCD"] == a.domains["dm"]["ARMCD"]).all()


def test_riss_iii_time_ratio_is_each_subjects_multiplier(tmp_path):
    base = simulate_study(n=80, seed=2, protocol=str(_variant(tmp_path, "r1")))
    prog = simulate_study(n=80, seed=2, protocol=str(_variant(tmp_path, "r2", keep_time_ratio=True)))
    t0, t1 = base.truth, prog.truth
    assert "TRUE_TIME_RATIO" not in t0
    assert (t0["STRATRISS"] == t1["STRATRISS"]).all()  # the strata are drawn before the arms' models
    iii = (t1["STRATRISS"] == "III").to_numpy()
    assert 4 <= iii.sum() <= 35  # Binomial(80, 0.185)
    np.testing.assert_array_equal(t1["TRUE_TIME_RATIO"].to_numpy(), np.where(iii, 0.6, 1.0))
    # deaths of R-ISS III subjects come earlier (or move before the cut-off); the prognostic
    # effect on PFS is checked on full studies in test_rpsftm_recovers_... (pooled Cox HR)
    d0, d1 = _days(t0["TRUE_DTH_DT"]), _days(t1["TRUE_DTH_DT"])
    assert np.nansum(np.isfinite(d1[iii])) >= np.nansum(np.isfinite(d0[iii]))


def test_rpsftm_recovers_the_crossover_acceleration_factor_and_riss_iii_is_prognostic():
    # boston.toml: crossover_acceleration_factor 1.3 = the ratio of the arms' assumed OS medians
    # (30 / 23 months), so the experimental effect on OS and the crossover effect are the same
    # (RPSFTM's common-effect assumption); the true factor must lie in the RPSFTM 95% CI.
    from mmtrial.stats.rpsftm import fit_rpsftm
    from mmtrial.stats.twoarm import combine_strata

    pfs = []
    for seed in (0, 1, 2):
        s = simulate_study(seed=seed, protocol="boston")
        tr = s.truth
        days, evt, arm_ = two_arm_times(s, "PFS")
        pfs.append(pd.DataFrame({"t": days, "e": evt, "iii": (tr["STRATRISS"] == "III").to_numpy(int),
                                 "stratum": [f"{seed}|{x}" for x in arm_]}))
        t, e, arm = two_arm_times(s, "OS")
        rand = _days(tr["TRUE_RAND_DT"])
        cens = _days(pd.Series([s.metadata["data_cutoff"]] * len(tr))) - rand + 1
        after = t - (_days(tr["TRUE_CROSSOVER_DT"]) - rand)
        a = (arm == "SVD").astype(int)
        on = np.where(a == 1, t, np.where(np.isfinite(after), np.clip(after, 0, t), 0.0))
        st = combine_strata(*(tr[q].to_numpy() for q in ("STRATPI", "STRATLOT", "STRATRISS")))
        r = fit_rpsftm(t, e, a, on, np.maximum(cens, t), strata=st)
        assert r.n_switchers >= 10
        lo, hi = r.acceleration_factor_ci
        assert lo < 1.3 < hi, (seed, r.acceleration_factor, r.acceleration_factor_ci)
    # R-ISS III is prognostic (boston.toml time_ratio III = 0.6): PFS hazard ratio III vs I/II,
    # Cox stratified by study and arm, clearly above 1
    from mmtrial.stats.twoarm import compute_stratified_cox

    d = pd.concat(pfs, ignore_index=True)
    hr = compute_stratified_cox(d["t"], d["e"], d["iii"], d["stratum"])
    assert hr.ci[0] > 1.0 and hr.hr > 1.2, hr

