"""Tests of the response classifier (issue 8): statistics against independent references,
the honest procedure (no leakage), planted signal, determinism.

Permutation counts are kept small here for speed (19 permutations: the smallest attainable
p-value is 1/20 = 0.05); the protocol default is 200.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mmtrial.stats import proportion_ci
from mmtrial.stats.classifier import (
    ClassifierOptions,
    _param_grid,
    _Seeds,
    build_pipeline,
    compute_auc,
    compute_auc_ci,
    compute_delong,
    compute_f_statistic,
    compute_performance,
    fit_response_classifier,
    tune_in_training_fold,
)

FAST = dict(permutations=0)


def _panel(n1: int = 16, n0: int = 19, p: int = 300, planted: int = 4, effect: float = 0.0, seed: int = 0):
    """Simulated panel: n1 responders, n0 non-responders, p markers, the first ``planted`` shifted
    by ``effect`` SD in responders (numpy, independent of the project simulator)."""
    rng = np.random.default_rng(seed)
    n = n1 + n0
    y = pd.Series(np.r_[np.ones(n1, int), np.zeros(n0, int)], index=[f"S{i:03d}" for i in range(n)])
    X = pd.DataFrame(rng.normal(size=(n, p)), index=y.index, columns=[f"M{j:04d}" for j in range(p)])
    X.iloc[:, :planted] += effect * y.to_numpy()[:, None]
    return X, y


# --- Wilson interval (STORM validation accuracy) -------------------------------------------------


def test_wilson_10_of_12_gives_storm_published_55_2_to_95_3():
    # validation.md section 1 / domain.md 1.11: 83% = 10/12, Wilson 55.2-95.3 (Clopper-Pearson 51.6-97.9)
    lo, hi = proportion_ci(10, 12, method="wilson")
    assert (round(lo * 100, 1), round(hi * 100, 1)) == (55.2, 95.3)


def test_accuracy_10_of_12_in_performance_uses_wilson_55_2_to_95_3():
    # 12 validation subjects, 10 classified correctly -> accuracy 10/12 with the Wilson CI above
    y = pd.Series([1] * 5 + [0] * 7, index=[f"V{i}" for i in range(12)])
    p = pd.Series([0.9, 0.8, 0.7, 0.6, 0.3, 0.1, 0.2, 0.3, 0.4, 0.2, 0.1, 0.7], index=y.index)
    perf = compute_performance(y, p, options=ClassifierOptions())
    assert (perf.accuracy.x, perf.accuracy.n) == (10, 12)
    assert perf.accuracy.method == "wilson"
    assert [round(v * 100, 1) for v in perf.accuracy.ci] == [55.2, 95.3]
    # sensitivity 4/5 (subject V4 missed), specificity 6/7 (V11 false positive): hand count
    assert (perf.sensitivity.x, perf.sensitivity.n, perf.specificity.x, perf.specificity.n) == (4, 5, 6, 7)


# --- univariate screen ---------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 12), st.integers(3, 12))
def test_f_statistic_equals_sklearn_f_classif_and_scipy_t_squared(seed, n1, n0):
    from sklearn.feature_selection import f_classif

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n1 + n0, 7)) * rng.uniform(0.1, 100, size=7) + rng.uniform(-50, 50, size=7)
    y = np.r_[np.ones(n1), np.zeros(n0)]
    f = compute_f_statistic(X, y)
    np.testing.assert_allclose(f, f_classif(X, y)[0], rtol=1e-7, atol=1e-9)  # f_classif sums squares: cancellation
    t = stats.ttest_ind(X[y == 1], X[y == 0]).statistic  # pooled two-sample t (scipy)
    np.testing.assert_allclose(f, t**2, rtol=1e-7, atol=1e-9)


def test_f_statistic_constant_column_scores_zero_and_perfect_separation_inf():
    y = np.array([1, 1, 0, 0])
    X = np.array([[0.1, 5.0], [0.1, 5.0], [0.1, 1.0], [0.1, 1.0]])
    assert compute_f_statistic(X, y).tolist() == [0.0, np.inf]


# --- AUC and its CI ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=2, max_size=25), st.integers(0, 10_000))
def test_auc_equals_sklearn_roc_auc_score_with_ties(scores, seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=len(scores))
    y[0], y[1] = 0, 1
    s = np.asarray(scores, dtype=float)
    assert compute_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def _delong_bruteforce(y, s):
    """DeLong 1988 definitions written out pairwise (independent of the midrank algorithm)."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10 = psi.mean(axis=1)  # structural component per positive
    v01 = psi.mean(axis=0)  # per negative
    auc = psi.mean()
    s10 = ((v10 - auc) ** 2).sum() / (len(pos) - 1)
    s01 = ((v01 - auc) ** 2).sum() / (len(neg) - 1)
    return auc, s10 / len(pos) + s01 / len(neg)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 15), st.integers(2, 15), st.booleans())
def test_delong_midrank_equals_pairwise_definition(seed, m, n, ties):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 4, size=m + n).astype(float) if ties else rng.normal(size=m + n)
    y = np.r_[np.ones(m, int), np.zeros(n, int)]
    auc, var = compute_delong(y, s)
    auc_b, var_b = _delong_bruteforce(y, s)
    assert auc == pytest.approx(auc_b, abs=1e-12)
    assert var == pytest.approx(var_b, abs=1e-12)


def test_delong_ci_matches_pROC_on_tied_example():
    # R 4.x, pROC 1.18.0:
    #   y <- c(1,1,1,1,1,0,0,0,0,0,0); s <- c(0.9,0.8,0.7,0.55,0.4,0.7,0.5,0.4,0.3,0.2,0.1)
    #   r <- roc(y, s, levels=c(0,1), direction="<"); auc(r) 0.8666667; var(r) 0.0124166666667
    #   ci.auc(r, method="delong") 0.6482677-1 (upper limit clipped at 1)
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.55, 0.4, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1])
    auc, var = compute_delong(y, s)
    assert auc == pytest.approx(26 / 30, abs=1e-12)
    assert var == pytest.approx(0.0124166666667, abs=1e-12)
    est = compute_auc_ci(y, s, method="delong")
    assert est.ci[0] == pytest.approx(0.6482677, abs=5e-8)
    assert est.ci[1] == 1.0


@pytest.mark.r
def test_delong_ci_matches_live_pROC():
    if shutil.which("Rscript") is None:
        pytest.skip("R is not installed")
    ok = subprocess.run(["Rscript", "-e", "library(pROC)"], capture_output=True)
    if ok.returncode != 0:
        pytest.skip("R package pROC is not installed (apt-get install r-cran-proc)")
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(17, int), np.zeros(23, int)]
    s = np.round(rng.normal(size=40) + 0.8 * y, 1)  # rounded: ties
    code = (f"suppressMessages(library(pROC)); y <- c({','.join(map(str, y))}); s <- c({','.join(map(str, s))});"
            "r <- roc(y, s, levels=c(0,1), direction='<', quiet=TRUE); ci <- ci.auc(r, method='delong');"
            "cat(sprintf('%.12f %.12f %.12f %.12f', auc(r), var(r), ci[1], ci[3]))")
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=True).stdout.split()
    auc_r, var_r, lo_r, hi_r = map(float, out)
    auc, var = compute_delong(y, s)
    est = compute_auc_ci(y, s, method="delong")
    assert auc == pytest.approx(auc_r, abs=1e-10)
    assert var == pytest.approx(var_r, abs=1e-10)
    assert est.ci == pytest.approx((lo_r, hi_r), abs=1e-9)


def test_bootstrap_auc_ci_is_seeded_and_agrees_with_delong_on_large_sample():
    rng = np.random.default_rng(11)
    y = np.r_[np.ones(300, int), np.zeros(300, int)]
    s = rng.normal(size=600) + 1.0 * y
    a = compute_auc_ci(y, s, method="bootstrap", bootstrap_reps=2000, seed=5)
    b = compute_auc_ci(y, s, method="bootstrap", bootstrap_reps=2000, seed=5)
    d = compute_auc_ci(y, s, method="delong")
    assert a.ci == b.ci
    assert a.estimate == pytest.approx(d.estimate)
    # both are valid large-sample intervals: limits agree to within 0.01
    assert a.ci == pytest.approx(d.ci, abs=0.01)


# --- nested tuning equals GridSearchCV -----------------------------------------------------------


@pytest.mark.parametrize("model", ["l1-logistic", "elasticnet-logistic", "random-forest"])
def test_inner_tuning_equals_gridsearchcv_on_the_full_pipeline(model):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    X, y = _panel(n1=12, n0=14, p=60, effect=1.0, seed=4)
    opts = ClassifierOptions(model=model, k_grid=(2, 4), c_grid=(0.1, 1.0, 10.0), l1_ratio_grid=(0.3, 0.8),
                             rf_trees=15, **FAST)
    seeds = _Seeds(outer=1, inner=2, model=3, permutation=4)
    best, mean = tune_in_training_fold(X.to_numpy(), y.to_numpy(), options=opts, impute=False, seeds=seeds)
    grid = _param_grid(opts)
    pipe = build_pipeline(opts, grid[0], impute=False, random_state=seeds.model)
    param_grid: dict[str, list] = {"select__k": [2, 4]}
    for key in grid[0]:
        if key != "k":
            param_grid[f"model__{key}"] = sorted({g[key] for g in grid})
    gs = GridSearchCV(pipe, param_grid, cv=StratifiedKFold(3, shuffle=True, random_state=seeds.inner),
                      scoring="roc_auc").fit(X.to_numpy(), y.to_numpy())
    ours = {tuple(sorted(g.items())): m for g, m in zip(grid, mean, strict=True)}
    theirs = {tuple(sorted((k.split("__")[1], v) for k, v in p.items())): m
              for p, m in zip(gs.cv_results_["params"], gs.cv_results_["mean_test_score"], strict=True)}
    assert ours.keys() == theirs.keys()
    for k, v in ours.items():
        assert v == pytest.approx(theirs[k], abs=1e-9), k
    if np.sum(mean == mean.max()) == 1:
        assert {f"model__{k}" if k != "k" else "select__k": v for k, v in best.items()} == gs.best_params_


# --- the honest procedure ------------------------------------------------------------------------


def test_no_signal_accuracy_ci_covers_half_and_permutation_p_not_small():
    # labels carry no information (independent noise); an honest procedure reports chance accuracy
    X, y = _panel(p=1000, effect=0.0, seed=22)
    y = pd.Series(np.random.default_rng(5).permutation(y.to_numpy()), index=y.index)
    res = fit_response_classifier(X, y, options=ClassifierOptions(permutations=19))
    lo, hi = res.cv.accuracy.ci
    assert lo <= 0.5 <= hi
    assert res.cv.auc.ci[0] <= 0.5 <= res.cv.auc.ci[1]
    assert res.permutation.p_value > 0.1
    # control: the leaky procedure (select the 4 markers on all subjects, then cross-validate)
    # reports a high accuracy on the same noise, so this test can tell the two apart
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    top = np.argsort(compute_f_statistic(X.to_numpy(), y.to_numpy()))[-4:]
    leaky = cross_val_score(LogisticRegression(), X.to_numpy()[:, top], y.to_numpy(),
                            cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
    assert leaky > 0.75
    assert res.cv.accuracy.estimate < leaky - 0.2


def test_test_fold_label_never_reaches_its_own_prediction():
    # leave-one-out: the model that predicts subject i is built (selection, tuning, fit) without
    # subject i, so flipping i's label cannot change i's predicted probability
    X, y = _panel(n1=9, n0=9, p=80, effect=1.0, seed=8)
    opts = ClassifierOptions(outer_folds=0, k_markers=3, c_grid=(0.3, 3.0), **FAST)
    base = fit_response_classifier(X, y, options=opts).cv.predictions["probability"]
    for i in (0, 12):
        y2 = y.copy()
        y2.iloc[i] = 1 - y2.iloc[i]
        flipped = fit_response_classifier(X, y2, options=opts).cv.predictions["probability"]
        assert flipped.iloc[i] == base.iloc[i]


def test_planted_signal_markers_selected_most_often_and_accuracy_high():
    X, y = _panel(p=500, planted=4, effect=2.0, seed=2)
    res = fit_response_classifier(X, y, options=ClassifierOptions(permutations=19))
    planted = {"M0000", "M0001", "M0002", "M0003"}
    assert set(res.selection_counts.index[:4]) == planted
    assert (res.selection_frequency.loc[sorted(planted)] >= 0.6).all()
    assert set(res.selected_markers) == planted
    assert res.cv.accuracy.estimate >= 0.8
    assert res.cv.auc.estimate >= 0.85
    assert res.permutation.p_value == pytest.approx(1 / 20)  # the smallest attainable with 19
    assert res.coefficients.gt(0).sum() >= 2  # planted markers are higher in responders


@pytest.mark.parametrize("model", ["elasticnet-logistic", "random-forest"])
def test_alternative_models_find_planted_signal(model):
    X, y = _panel(p=200, planted=4, effect=2.0, seed=2)
    res = fit_response_classifier(X, y, options=ClassifierOptions(model=model, rf_trees=30, **FAST))
    assert set(res.selection_counts.index[:4]) == {"M0000", "M0001", "M0002", "M0003"}
    assert res.cv.accuracy.estimate >= 0.75
    if model == "random-forest":
        assert res.coefficient_kind == "impurity importance"
        assert res.coefficients.sum() == pytest.approx(1.0)


def test_deterministic_under_seed_and_seed_matters():
    X, y = _panel(p=200, effect=1.0, seed=9)
    opts = ClassifierOptions(permutations=3, seed=123)
    a = fit_response_classifier(X, y, options=opts)
    b = fit_response_classifier(X, y, options=opts)
    pd.testing.assert_frame_equal(a.cv.predictions, b.cv.predictions)
    pd.testing.assert_series_equal(a.selection_counts, b.selection_counts)
    assert a.permutation.null == b.permutation.null
    assert a.to_dict() == b.to_dict()
    c = fit_response_classifier(X, y, options=ClassifierOptions(permutations=0, seed=124))
    assert not np.array_equal(a.cv.predictions["fold"], c.cv.predictions["fold"])


def test_parallel_permutations_give_the_same_result():
    X, y = _panel(n1=10, n0=10, p=50, effect=0.5, seed=1)
    opts = ClassifierOptions(permutations=4, c_grid=(0.3, 3.0))
    a = fit_response_classifier(X, y, options=opts)
    b = fit_response_classifier(X, y, options=ClassifierOptions(**{**opts.to_dict(), "n_jobs": 2}))
    assert a.permutation.null == b.permutation.null


def test_validation_set_predicted_by_final_model_with_wilson_ci():
    X, y = _panel(n1=21, n0=26, p=200, effect=2.0, seed=6)
    val = X.index[-12:]
    res = fit_response_classifier(X.drop(val), y.drop(val), options=ClassifierOptions(**FAST),
                                  X_validation=X.loc[val], y_validation=y.loc[val])
    v = res.validation
    assert v.accuracy.n == 12
    expected = res.final_pipeline.predict_proba(X.loc[val].to_numpy())[:, 1]
    np.testing.assert_allclose(v.predictions["probability"].to_numpy(), expected)
    assert v.accuracy.ci == pytest.approx(proportion_ci(v.accuracy.x, 12, method="wilson"))
    assert res.n == 35 and res.to_dict()["validation"]["accuracy"]["n"] == 12


def test_missing_values_imputed_inside_pipeline_or_rejected():
    X, y = _panel(p=50, effect=2.0, seed=3)
    X.iloc[2, 0] = np.nan
    X.iloc[5, 7] = np.nan
    res = fit_response_classifier(X, y, options=ClassifierOptions(**FAST))
    assert res.missing_values == 2
    assert "impute" in res.final_pipeline.named_steps
    with pytest.raises(ValueError, match=r"subject 'S002', marker 'M0000' is missing"):
        fit_response_classifier(X, y, options=ClassifierOptions(missing="error", **FAST))


def test_too_few_subjects_per_class_is_a_clear_error():
    X, y = _panel(n1=4, n0=10, p=20, seed=1)
    with pytest.raises(ValueError, match=r"4 responders and 10 non-responders; each class needs at least"):
        fit_response_classifier(X, y, options=ClassifierOptions(**FAST))


def test_bad_inputs_named():
    X, y = _panel(p=10, seed=1)
    with pytest.raises(ValueError, match=r"y must be 0/1.*'S000' has 2"):
        fit_response_classifier(X, y.replace({1: 2}), options=ClassifierOptions(**FAST))
    with pytest.raises(ValueError, match="same index"):
        fit_response_classifier(X, y.iloc[::-1], options=ClassifierOptions(**FAST))
    with pytest.raises(ValueError, match=r"k = 20 markers requested but X has only 10"):
        fit_response_classifier(X, y, options=ClassifierOptions(k_markers=20, **FAST))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"model": "svm"}, r"model must be one of \['l1-logistic', 'elasticnet-logistic', 'random-forest'\]; got 'svm'"),
    ({"outer_folds": 1}, r"outer_folds must be >= 2 \(or 0 for leave-one-out\); got 1"),
    ({"c_grid": (0.0,)}, r"every c_grid value must be positive and finite; got 0.0"),
    ({"accuracy_ci": "exact"}, r"accuracy_ci must be one of .*; got 'exact'"),
    ({"l1_ratio_grid": (1.5,)}, r"every l1_ratio_grid value must be in \(0, 1.0\]; got 1.5"),
])
def test_options_check_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassifierOptions(**kwargs)


def test_roc_points_trace_the_reported_auc():
    # the drawn ROC (points joined by straight lines) has area = the Mann-Whitney AUC, ties included
    y = pd.Series([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], index=[f"T{i}" for i in range(11)])
    p = pd.Series([0.9, 0.8, 0.7, 0.55, 0.4, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1], index=y.index)
    perf = compute_performance(y, p, options=ClassifierOptions())
    area = np.trapezoid(perf.roc["tpr"], perf.roc["fpr"])
    assert area == pytest.approx(26 / 30, abs=1e-12) == perf.auc.estimate
