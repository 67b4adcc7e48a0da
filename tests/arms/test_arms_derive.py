"""Two-arm derivations on hand-made frames: ADSL arm/treatment/population variables (ADaMIG v1.3
section 3.2; data contract v2), randomised default endpoints, crossover, exposure per arm
(each subject against its own arm's regimen), and the landmark rate difference (R survfit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmtrial.derive.arms import (
    derive_adsl_arms,
    derive_randomised_endpoints,
    derive_var_pprotfl,
    derive_vars_crossover,
)
from support.rscript import run_r


def _domains():
    dm = pd.DataFrame({"USUBJID": ["1", "2", "3", "4"], "ARMCD": ["SVD", "VD", "VD", "SCRNFAIL"],
                       "ARM": ["S+V+d", "V+d", "V+d", "Screen Failure"],
                       "ACTARMCD": ["SVD", "SVD", "NOTTRT", "SCRNFAIL"],
                       "ACTARM": ["S+V+d", "S+V+d", "Not Treated", "Screen Failure"]})
    ds = pd.DataFrame({"USUBJID": ["1", "2", "3"], "DSDECOD": ["RANDOMIZED"] * 3,
                       "DSSTDT": pd.to_datetime(["2020-01-02", "2020-01-05", "2020-01-09"])})
    supp = pd.DataFrame({"USUBJID": ["1", "2", "3", "1"], "RDOMAIN": ["DM"] * 4,
                         "QNAM": ["STRATPI", "STRATPI", "STRATPI", "STRATLOT"], "QVAL": ["Y", "N", "Y", "1"]})
    adsl = pd.DataFrame({"USUBJID": ["1", "2", "3", "4"], "SAFFL": ["Y", "Y", "N", "N"]})
    return adsl, {"dm": dm, "ds": ds, "suppdm": supp}


def test_adsl_arms_hand_worked():
    """Subject 2 was randomised to VD but received SVD: planned VD (TRT01PN 2), actual SVD
    (TRT01AN 1); subject 3 was randomised, never treated (ITT yes, safety no); subject 4 is a
    screen failure (not randomised, no arm numbers)."""
    adsl, doms = _domains()
    out = derive_adsl_arms(adsl, doms, labels={"SVD": "S+V+d", "VD": "V+d"}, experimental="SVD", control="VD",
                           strata=["STRATPI", "STRATLOT"], per_protocol=True)
    assert out["TRT01P"].tolist() == ["S+V+d", "V+d", "V+d", "Screen Failure"]
    assert out["TRT01PN"].astype(object).where(out["TRT01PN"].notna(), None).tolist() == [1, 2, 2, None]
    assert out["TRT01A"].tolist() == ["S+V+d", "S+V+d", None, None]
    assert out["TRT01AN"].astype(object).where(out["TRT01AN"].notna(), None).tolist() == [1, 1, None, None]
    assert out["ITTFL"].tolist() == ["Y", "Y", "Y", "N"]
    assert out["SAFFL"].tolist() == ["Y", "Y", "N", "N"]
    assert out["PPROTFL"].tolist() == ["Y", "N", "N", "N"]  # 2 not treated as randomised; 3 not treated
    assert out["RANDDT"].dt.strftime("%Y-%m-%d").fillna("").tolist() == ["2020-01-02", "2020-01-05", "2020-01-09", ""]
    assert out["STRATPI"].tolist() == ["Y", "N", "Y", None]
    assert out["STRATLOT"].tolist() == ["1", None, None, None]


def test_pprotfl_needs_itt_and_treatment():
    df = pd.DataFrame({"ARMCD": ["A", "A"], "ACTARMCD": ["A", "A"], "ITTFL": ["Y", "N"], "SAFFL": ["Y", "Y"]})
    assert derive_var_pprotfl(df)["PPROTFL"].tolist() == ["Y", "N"]


def test_crossover_rules():
    """Only control subjects; only listed drugs; only subsequent therapy; only on/after PD; first such record."""
    adsl = pd.DataFrame({"USUBJID": list("12345"), "ARMCD": ["VD", "VD", "VD", "VD", "SVD"],
                         "PDDT": pd.to_datetime(["2020-03-01", "2020-03-01", None, "2020-03-01", "2020-03-01"])})
    cm = pd.DataFrame({
        "USUBJID": ["1", "1", "2", "3", "4", "5"],
        "CMCAT": ["SUBSEQUENT ANTI-MYELOMA THERAPY"] * 3 + ["SUBSEQUENT ANTI-MYELOMA THERAPY",
                                                            "PRIOR ANTI-MYELOMA THERAPY", "SUBSEQUENT ANTI-MYELOMA THERAPY"],
        "CMTRT": ["SELINEXOR", "SELINEXOR", "CARFILZOMIB", "SELINEXOR", "SELINEXOR", "SELINEXOR"],
        "CMSTDT": pd.to_datetime(["2020-05-01", "2020-03-01", "2020-04-01", "2020-04-01", "2020-04-01", "2020-04-01"])})
    out = derive_vars_crossover(adsl, cm, control="VD", drugs=["selinexor"])
    assert out["CROSSFL"].tolist() == ["Y", "N", "N", "N", ""]
    assert out["CROSSDT"].dt.strftime("%Y-%m-%d").fillna("").tolist() == ["2020-03-01", "", "", "", ""]


def test_randomised_endpoints_from_storm_defaults():
    from mmtrial.steps.tte import _storm_endpoints

    e = derive_randomised_endpoints(_storm_endpoints())
    assert {k: v["start"] for k, v in e.items()} == {"OS": "RANDDT", "PFS": "RANDDT", "DOR": "RSPDT",
                                                      "TTR": "RANDDT", "TTNT": "RANDDT"}
    assert e["PFS"]["population"] == {"ITTFL": "Y"} and e["DOR"]["population"] == {"ITTFL": "Y", "RSPFL": "Y"}
    assert e["PFS"]["events"] == _storm_endpoints()["PFS"]["events"]
    assert "new_therapy_var" not in e["OS"]
    c = derive_randomised_endpoints(_storm_endpoints(), censor_os_at_crossover=True)["OS"]
    assert c["new_therapy_var"] == "CROSSDT" and c["censors"][0]["date"] == "CROSSDT"


def test_os_censored_at_crossover_only_when_asked():
    """censor_os: a control subject who crossed over and died later is censored at CROSSDT; without
    it the death counts (ITT)."""
    from mmtrial.derive.tte import derive_adtte, endpoint_specs_from_config
    from mmtrial.steps.tte import _storm_endpoints

    adsl = pd.DataFrame({"USUBJID": ["1", "2", "3"], "ITTFL": ["Y"] * 3,
                         "RANDDT": pd.to_datetime(["2020-01-01"] * 3),
                         "DTHFL": ["Y", "N", "Y"], "DTHDT": pd.to_datetime(["2020-06-01", None, "2020-02-01"]),
                         "LSTALVDT": pd.to_datetime(["2020-06-01", "2020-07-01", "2020-02-01"]),
                         "CROSSFL": ["Y", "Y", "N"], "CROSSDT": pd.to_datetime(["2020-04-01", "2020-05-01", None])})
    for censor, want in ((False, [(0, 153), (1, 183), (0, 32)]), (True, [(1, 92), (1, 122), (0, 32)])):
        ep = {"OS": derive_randomised_endpoints(_storm_endpoints(), censor_os_at_crossover=censor)["OS"]}
        specs = endpoint_specs_from_config(ep, interval_days=28, window_days=7)
        t = derive_adtte(adsl, None, specs=specs)
        assert list(zip(t["CNSR"], t["AVAL"].astype(int), strict=True)) == want


def test_exposure_against_each_arms_regimen(tmp_path):
    """Arm A plans 10 mg once weekly, arm B 20 mg twice weekly of the same drug; each subject
    took its own arm's dose for four weeks: planned weekly dose 10 and 40 mg, RDI 1 for both."""
    from mmtrial.protocol.model import Protocol
    from mmtrial.steps.exposure_safety import _exposure_by_arm, exposure_options

    toml = """
[study]
id = "X"
title = "x"
[arms.A]
[arms.A.regimen]
cycle_length_days = 28
study_drug = "DRUGX"
drugs = [ { name = "DRUGX", dose_mg = 10, days_of_week = [1] } ]
[arms.B]
[arms.B.regimen]
cycle_length_days = 28
study_drug = "DRUGX"
drugs = [ { name = "DRUGX", dose_mg = 20, days_of_week = [1, 3] } ]
[randomisation]
experimental = "A"
control = "B"
"""
    (tmp_path / "p.toml").write_text(toml)
    p = Protocol.load(tmp_path / "p.toml")
    ex = pd.DataFrame({"USUBJID": ["1", "2"], "EXTRT": ["DRUGX", "DRUGX"], "EXDOSE": [10.0, 20.0],
                       "EXDOSU": ["mg", "mg"], "EXDOSFRQ": ["QW", "BIW"],
                       "EXSTDT": pd.to_datetime(["2020-01-01", "2020-01-01"]),
                       "EXENDT": pd.to_datetime(["2020-01-28", "2020-01-28"]), "ROWNUM": [1, 2]})
    adsl = pd.DataFrame({"USUBJID": ["1", "2"], "ARMCD": ["A", "B"], "ACTARMCD": ["A", "B"],
                         "TRTSDT": pd.to_datetime(["2020-01-01"] * 2), "TRTEDT": pd.to_datetime(["2020-01-25"] * 2)})
    _, adex = _exposure_by_arm(p, ex, adsl, pd.DataFrame(), exposure_options(p), None)
    adex = adex.set_index("USUBJID")
    assert adex.loc["1", "ARMCD"] == "A" and adex.loc["2", "ARMCD"] == "B"
    assert adex.loc["1", "PLNWKDOS"] == pytest.approx(10.0) and adex.loc["2", "PLNWKDOS"] == pytest.approx(40.0)
    assert adex.loc["1", "CUMDOSE"] == pytest.approx(40.0) and adex.loc["2", "CUMDOSE"] == pytest.approx(160.0)
    assert adex["RDI"].to_numpy() == pytest.approx([1.0, 1.0])


R_LANDMARK = """
suppressMessages(library(survival))
a <- commandArgs(TRUE); d <- read.csv(a[1])
out <- NULL
for (g in c(1, 0)) {
  f <- survfit(Surv(time, event) ~ 1, data = d[d$group == g, ])
  s <- summary(f, times = c(5, 10, 15))
  out <- rbind(out, data.frame(group = g, time = s$time, surv = s$surv, se = s$std.err))
}
write.csv(out, stdout(), row.names = FALSE)
"""


def test_landmark_rate_difference_matches_r_survfit(tmp_path):
    """S(t) and its Greenwood SE per arm equal R summary(survfit(...), times)$surv / $std.err;
    the difference's CI is (S1 - S0) +- 1.96 sqrt(se1^2 + se0^2)."""
    from mmtrial.stats.survival import kaplan_meier, km_options
    from mmtrial.stats.twoarm import compute_km_rate_difference

    rng = np.random.default_rng(11)
    n = 120
    g = rng.integers(0, 2, n)
    t = np.round(rng.exponential(np.where(g == 1, 14, 9)), 0) + 1
    c = np.round(rng.uniform(3, 25, n), 0)
    e = (t <= c).astype(int)
    time = np.minimum(t, c)
    d = pd.DataFrame({"time": time, "event": e, "group": g})
    r = run_r(tmp_path, R_LANDMARK, d)
    opts = km_options("r")
    km1 = kaplan_meier(time[g == 1], e[g == 1], options=opts)
    km0 = kaplan_meier(time[g == 0], e[g == 0], options=opts)
    got = compute_km_rate_difference(km1, km0, [5, 10, 15])
    for k, x in enumerate(got):
        r1 = r[(r.group == 1) & (r.time == x.time)].iloc[0]
        r0 = r[(r.group == 0) & (r.time == x.time)].iloc[0]
        assert x.surv == pytest.approx((r1.surv, r0.surv), rel=1e-9)
        assert x.se == pytest.approx((r1.se, r0.se), rel=1e-9)
        se = np.hypot(r1.se, r0.se)
        assert x.ci == pytest.approx((r1.surv - r0.surv - 1.959963984540054 * se,
                                      r1.surv - r0.surv + 1.959963984540054 * se), rel=1e-9)
        assert k < 3


def test_rpsftm_inputs_hand_worked():
    """Time on the experimental drug: experimental arm = whole follow-up; control switcher = from
    CROSSDT to the end of follow-up (+ 1 day, as AVAL); censoring time = randomisation to cut-off."""
    from mmtrial.steps.comparison import compute_rpsftm_inputs

    adsl = pd.DataFrame({"USUBJID": ["1", "2", "3"], "ARMCD": ["SVD", "VD", "VD"], "ITTFL": ["Y"] * 3,
                         "CROSSDT": pd.to_datetime([None, "2020-03-01", None])})
    adtte = pd.DataFrame({"USUBJID": ["1", "2", "3"], "PARAMCD": ["OS"] * 3, "AVAL": [100.0, 121.0, 50.0],
                          "CNSR": [0, 1, 0], "STARTDT": pd.to_datetime(["2020-01-01"] * 3),
                          "ADT": pd.to_datetime(["2020-04-09", "2020-04-30", "2020-02-19"])})
    d = compute_rpsftm_inputs(adsl, adtte, experimental="SVD", cutoff=pd.Timestamp("2020-12-31"), add_one=True)
    assert d["arm"].tolist() == [1, 0, 0]
    assert d["on_time"].tolist() == [100.0, 61.0, 0.0]  # 2020-03-01 .. 2020-04-30 = 60 days + 1
    assert d["censor_time"].tolist() == [366.0] * 3  # 2020 is a leap year: 365 days + 1
    assert d["event"].tolist() == [1, 0, 1]


def test_one_sided_logrank_is_half_the_two_sided_in_the_direction_of_benefit():
    """Phi(z) with z = (O - E)/sqrt(V): p1 = p2 / 2 when the experimental arm has fewer events than
    expected, 1 - p2 / 2 otherwise (the two-sided p is chi-square(1) of z^2)."""
    from mmtrial.stats.twoarm import compute_logrank_one_sided, compute_stratified_logrank

    rng = np.random.default_rng(4)
    g = rng.integers(0, 2, 200)
    for scale in (np.where(g == 1, 20, 10), np.where(g == 1, 10, 20)):
        t = np.round(rng.exponential(scale), 0) + 1
        e = (rng.random(200) < 0.8).astype(int)
        two = compute_stratified_logrank(t, e, g).p_value
        one = compute_logrank_one_sided(t, e, g)
        r = compute_stratified_logrank(t, e, g)
        want = two / 2 if r.observed < r.expected else 1 - two / 2
        assert one == pytest.approx(want, rel=1e-9)


def test_subgroups_pfs_levels_and_non_estimable_level():
    """One row per level with n and events; a level where one arm has no event gets no HR
    (the Cox likelihood is monotone there) and says why; age is split at 65 (< 65 / >= 65)."""
    from mmtrial.steps.comparison import ComparisonOptions, compute_subgroups_pfs

    n = 40
    rng = np.random.default_rng(2)
    arm = np.array(["A", "B"] * (n // 2))
    sex = np.array(["F"] * 20 + ["M"] * 20)
    adsl = pd.DataFrame({"USUBJID": [str(i) for i in range(n)], "ARMCD": arm, "ITTFL": "Y",
                         "AGE": np.where(np.arange(n) % 3 == 0, 70, 60), "SEX": sex, "STRATPI": "Y"})
    cnsr = np.where(rng.random(n) < 0.3, 1, 0)
    cnsr[(sex == "F") & (arm == "A")] = 1  # no PFS event among women of arm A
    adtte = pd.DataFrame({"USUBJID": adsl["USUBJID"], "PARAMCD": "PFS", "AVAL": rng.integers(10, 400, n).astype(float),
                          "CNSR": cnsr})
    rows = compute_subgroups_pfs(adsl, adtte, experimental="A", strata=["STRATPI"], ties="breslow", level=0.95,
                                 opts=ComparisonOptions(), labels={"STRATPI": "Prior PI"})
    by = {(r["subgroup"], r["level"]): r for r in rows}
    assert by[("Age", "<65")]["n"] + by[("Age", ">=65")]["n"] == n
    assert by[("Age", ">=65")]["n"] == int((adsl["AGE"] >= 65).sum())
    women = by[("Sex", "F")]
    assert women["events_by_arm"][0] == 0 and np.isnan(women["hr"]) and "no events" in women["not_estimable"]
    men = by[("Sex", "M")]
    assert np.isfinite(men["hr"]) and men["events"] == int(((sex == "M") & (cnsr == 0)).sum())
    assert by[("Prior PI", "Y")]["n"] == n
