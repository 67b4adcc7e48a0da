"""MAIC (issue 16): method-of-moments weights reproduce the target exactly; ESS and weights of the
Roche MAIC package's worked example (vignette output); an independent optimiser (scipy BFGS on
Signorovitch's Q, as the R packages do); the vectorised bootstrap against its definition
(replicated rows); the love plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.stats.maic import (
    _solve_moments,
    _weighted_median_batch,
    compare_maic,
    compute_ess,
    compute_maic_weights,
)
from mmtrial.stats.weighting import compute_smd, compute_weighted_km

DATA = Path(__file__).parent / "data"


def _roche_example():
    """The Roche MAIC package's example (github Roche/MAIC, inst/extdata, Apache-2.0; commit
    33df775): 500 simulated intervention patients and the comparator's aggregate data; SEX coded
    1 = male as in the vignette; AGE matched on mean and SD (the vignette's AGE_SQUARED)."""
    d = pd.read_csv(DATA / "roche_maic_adsl.csv")
    a = pd.read_csv(DATA / "roche_maic_aggregate.csv").iloc[0]
    X = pd.DataFrame({"AGE": d["AGE"].astype(float), "SEX": (d["SEX"] == "Male").astype(float),
                      "SMOKE": d["SMOKE"].astype(float), "ECOG0": d["ECOG0"].astype(float)})
    target = {"AGE": a["age.mean"], "SEX": a["prop.male"], "SMOKE": a["prop.smoke"], "ECOG0": a["prop.ecog0"]}
    return X, target, {"AGE": a["age.sd"]}


def test_roche_maic_vignette_ess_and_weights():
    # Expected: Roche MAIC vignette "Matching-Adjusted Indirect Comparison: Example using the MAIC
    # package" (docs/articles/MAIC.html): estimate_ess -> 157.0715; first six weights 1.301506,
    # 7.024764e-08, 6.384284e-02, 1.204094, 1.371621e-06, 1.204094; summarize_wts: mean 0.3763805,
    # sd 0.556692, max 2.373310. R's optim(BFGS) stops at reltol 1e-8, so agreement is to ~5-6
    # significant digits (our solution matches the target moments to 1e-12); tiny weights
    # (1e-7) are the most sensitive to that stopping point.
    X, target, sd = _roche_example()
    w = compute_maic_weights(X, target, target_sd=sd)
    assert compute_ess(w) == pytest.approx(157.0715, rel=1e-5)
    np.testing.assert_allclose(w[[0, 3, 5]], [1.301506, 1.204094, 1.204094], rtol=2e-6)
    np.testing.assert_allclose(w[[1, 2, 4]], [7.024764e-08, 6.384284e-02, 1.371621e-06], rtol=1e-3)
    assert w.mean() == pytest.approx(0.3763805, rel=1e-6)
    assert w.std(ddof=1) == pytest.approx(0.556692, rel=1e-5)
    assert w.max() == pytest.approx(2.373310, rel=1e-5)
    # the weighted means reproduce the published means and SD exactly
    m = (w @ X.to_numpy()) / w.sum()
    np.testing.assert_allclose(m, list(target.values()), rtol=0, atol=1e-8)
    sd_w = np.sqrt((w @ X["AGE"].to_numpy() ** 2) / w.sum() - m[0] ** 2)
    assert sd_w == pytest.approx(sd["AGE"], abs=1e-8)


def test_maic_weights_agree_with_scipy_bfgs_on_signorovitch_q():
    # Independent optimiser: scipy BFGS minimising Q(b) = sum exp(z_i b) (Signorovitch 2010
    # appendix; the R packages' optim(method = "BFGS")) on the centred data, without squared terms.
    from scipy.optimize import minimize

    X, target, _ = _roche_example()
    Z = X.to_numpy() - np.array(list(target.values()))
    res = minimize(lambda b: np.exp(Z @ b).sum(), np.zeros(4), jac=lambda b: Z.T @ np.exp(Z @ b),
                   method="BFGS", options={"gtol": 1e-12, "maxiter": 10_000})
    w_ref = np.exp(Z @ res.x)
    w = compute_maic_weights(X, target)
    np.testing.assert_allclose(w, w_ref, rtol=1e-5)
    assert compute_ess(w) == pytest.approx(compute_ess(w_ref), rel=1e-7)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(15, 300), p=st.integers(1, 4))
def test_maic_weights_reproduce_any_reachable_target_exactly(seed, n, p):
    # Property (Signorovitch 2010): for a target inside the data's convex hull the weighted means
    # equal the target; we draw the target as a positively weighted mean of the data (inside the
    # hull by construction), binary and continuous covariates.
    rng = np.random.default_rng(seed)
    cols = {f"c{j}": rng.normal(50, 10, n) if j % 2 == 0 else rng.integers(0, 2, n).astype(float) for j in range(p)}
    X = pd.DataFrame(cols)
    if any(X[c].nunique() < 2 for c in X):
        return
    v = rng.dirichlet(np.ones(n) * 2)
    target = {c: float(v @ X[c].to_numpy()) for c in X}
    w = compute_maic_weights(X, target)
    assert np.all(w > 0)
    m = (w @ X.to_numpy()) / w.sum()
    scale = X.to_numpy().std(0)
    np.testing.assert_allclose((m - list(target.values())) / scale, 0, atol=1e-8)
    assert 1 <= compute_ess(w) <= n + 1e-9


def test_maic_target_outside_the_data_is_an_error():
    X = pd.DataFrame({"AGE": [50.0, 60, 70], "MALE": [1.0, 0, 1]})
    with pytest.raises(ValueError, match=r"outside \(or on the edge of\) the range"):
        compute_maic_weights(X, {"AGE": 80.0, "MALE": 0.5})
    with pytest.raises(ValueError, match="outside"):
        compute_maic_weights(X, {"AGE": 60.0, "MALE": 1.0})  # a proportion of 1 on the edge
    with pytest.raises(ValueError, match=r"\['ECOG'\] are not columns"):
        compute_maic_weights(X, {"ECOG": 0.3})


def test_ess_hand_worked():
    # (sum w)^2 / sum w^2 (Kish 1965; TSD 18 Appendix D): (2 + 1 + 1)^2 / (4 + 1 + 1) = 16/6.
    assert compute_ess([2, 1, 1]) == pytest.approx(16 / 6)
    assert compute_ess(np.full(7, 0.3)) == pytest.approx(7)


def test_batched_bootstrap_equals_refitting_each_resample():
    # A resample with multinomial counts c is the data with row i repeated c_i times: the batched
    # solution must equal compute_maic_weights on the replicated rows (definition of the bootstrap).
    X, target, _ = _roche_example()
    X = X.iloc[:120].reset_index(drop=True)
    Z = X.to_numpy() - np.array(list(target.values()))
    rng = np.random.default_rng(3)
    counts = np.stack([np.bincount(rng.integers(0, 120, 120), minlength=120) for _ in range(3)]).astype(float)
    beta, ok = _solve_moments(Z, counts)
    for b in range(3):  # three resamples
        if not ok[b]:
            continue
        rep = X.loc[X.index.repeat(counts[b].astype(int))]
        w_rep = compute_maic_weights(rep, target)
        w_batch = np.exp(Z @ beta[b])[X.index.repeat(counts[b].astype(int))]
        np.testing.assert_allclose(w_batch, w_rep, rtol=1e-6)


def test_batched_weighted_median_equals_weighted_km():
    # The vectorised bootstrap median = the first time the weighted KM (R survfit) is <= 0.5.
    rng = np.random.default_rng(5)
    t = np.ceil(rng.exponential(10, 80))
    e = rng.integers(0, 2, 80)
    W = rng.exponential(1, (4, 80))
    got = _weighted_median_batch(t, e, W)
    for b in range(4):
        km = compute_weighted_km(t, e, W[b])
        below = km.surv <= 0.5
        assert got[b] == (km.time[np.argmax(below)] if below.any() else np.nan) or (np.isnan(got[b]) and not below.any())


def test_compare_maic_binary_and_time_to_event():
    X, target, sd = _roche_example()
    rng = np.random.default_rng(8)
    resp = (rng.uniform(size=len(X)) < 0.2 + 0.3 * (X["AGE"] > 60)).astype(int).to_numpy()
    r = compare_maic(X, target, target_sd=sd, response=resp, published={"proportion": 0.25, "n": 300},
                     n_boot=300, seed=1)
    w = compute_maic_weights(X, target, target_sd=sd)
    assert r.estimate_weighted == pytest.approx(w @ resp / w.sum())
    assert r.estimate_unweighted == pytest.approx(resp.mean())
    assert r.ess == pytest.approx(compute_ess(w))
    assert r.ci[0] < r.estimate_weighted < r.ci[1]
    assert r.difference == pytest.approx(r.estimate_weighted - 0.25)
    assert r.difference_ci[0] < r.difference < r.difference_ci[1]
    np.testing.assert_allclose(r.balance["mean_weighted"], r.balance["target"], atol=1e-8)
    again = compare_maic(X, target, target_sd=sd, response=resp, n_boot=300, seed=1)
    assert again.ci == r.ci  # seeded: reproducible
    t = rng.exponential(12, len(X))
    ev = (rng.uniform(size=len(X)) < 0.8).astype(int)
    s = compare_maic(X, target, target_sd=sd, time=t, event=ev, published={"median": 8.0}, n_boot=200, seed=2)
    assert s.estimate_weighted == compute_weighted_km(t, ev, w).median
    assert s.ci[0] is not None and s.ci[0] <= s.estimate_weighted
    assert s.difference == pytest.approx(s.estimate_weighted - 8.0)
    assert s.as_dict()["outcome"] == "median"


def test_love_plot_svg_is_deterministic_and_labelled():
    from mmtrial.figures.love import love_figure, love_svg

    X = _roche_example()[0]
    g = (np.arange(len(X)) % 3 == 0).astype(int)
    smd = compute_smd(X, g, np.where(g == 1, 1.0, 2.0))
    a = love_svg(smd, "Balance before and after weighting")
    assert a == love_svg(smd, "Balance before and after weighting")
    assert "<title>Balance before and after weighting</title>" in a
    fig = love_figure(smd)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-1] in set(smd["covariate"])
    with pytest.raises(ValueError, match="needs columns"):
        love_figure(smd.drop(columns="smd_weighted"))
