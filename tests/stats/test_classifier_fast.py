"""The fast path of the response classifier gives the scikit-learn pipeline's results bit for bit
(issue 15).

Reference: scikit-learn itself. ``_nested_cv(..., fast_fit=False)`` runs every fit through
``build_pipeline`` (SimpleImputer -> SelectKBest -> StandardScaler -> LogisticRegression
(liblinear)) and ``predict_proba``; the fast path calls the same liblinear routine directly. The
tests require exact equality (``np.array_equal``), not closeness: results.json must not change.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrial.stats import classifier as C
from mmtrial.stats.classifier import ClassifierOptions, fit_response_classifier


def _panel(n1: int, n0: int, p: int, effect: float, seed: int, missing: float = 0.0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n1, int), np.zeros(n0, int)]
    X = rng.normal(size=(n1 + n0, p))
    X[:, :3] += effect * y[:, None]
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X, rng.permutation(y)


def _both(X, y, opts, impute):
    seeds = C._seeds(opts.seed)
    with warnings.catch_warnings():
        C._ignore_convergence()
        fast = C._nested_cv(X, y, options=opts, impute=impute, seeds=seeds)
        ref = C._nested_cv(X, y, options=opts, impute=impute, seeds=seeds, fast_fit=False)
    return fast, ref


def test_fast_liblinear_path_is_active_for_l1_logistic():
    opts = ClassifierOptions()
    assert C._liblinear_l1(opts, C._seeds(opts.seed).model) is not None
    assert C._liblinear_l1(ClassifierOptions(model="random-forest"), 1) is None


@pytest.mark.parametrize(
    ("case", "opts", "missing"),
    [
        ("default 5x3", ClassifierOptions(permutations=0), 0.0),
        ("leave-one-out, k grid", ClassifierOptions(permutations=0, outer_folds=0, k_grid=(2, 5),
                                                    c_grid=(0.1, 3.0)), 0.0),
        ("no class weight, missing values", ClassifierOptions(permutations=0, class_weight="none"), 0.04),
        ("accuracy tuning", ClassifierOptions(permutations=0, tuning_score="accuracy", seed=3), 0.0),
        ("log-loss tuning", ClassifierOptions(permutations=0, tuning_score="neg_log_loss", seed=5), 0.0),
    ],
)
def test_fast_nested_cv_equals_sklearn_pipeline_bit_for_bit(case, opts, missing):
    small = opts.outer_folds == 0
    for seed, effect in ((1, 0.0), (3, 3.0)):
        X, y = _panel(5 if small else 12, 6 if small else 14, 30, effect, seed, missing)
        impute = bool(np.isnan(X).any())
        (p1, f1, m1, t1), (p2, f2, m2, t2) = _both(X, y, opts, impute)
        assert np.array_equal(p1, p2), (case, seed)
        assert np.array_equal(f1, f2) and np.array_equal(m1, m2) and t1 == t2, (case, seed)


def test_liblinear_fit_equals_logistic_regression_on_separable_and_tied_data():
    # perfectly separable (coefficients grow until max_iter) and duplicated rows (ties)
    from sklearn.linear_model import LogisticRegression

    opts = ClassifierOptions()
    fit = C._liblinear_l1(opts, 77)
    Z = np.r_[np.linspace(-2, -0.1, 9), np.linspace(0.1, 2, 9)][:, None] * np.ones((1, 3))
    Z[:, 1] = np.repeat([0.0, 1.0, 0.5], 6)
    y = np.r_[np.zeros(9, int), np.ones(9, int)]
    for C_ in (0.03, 1.0, 10.0):
        est = LogisticRegression(C=C_, l1_ratio=1.0, solver="liblinear", class_weight="balanced",
                                 intercept_scaling=C.INTERCEPT_SCALING, random_state=77, max_iter=1000)
        with warnings.catch_warnings():
            C._ignore_convergence()
            est.fit(Z, y)
        coef, icpt = fit.fit(Z, y, C_)
        assert np.array_equal(coef, est.coef_) and np.array_equal(icpt, est.intercept_)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.9, 1.0])),
                min_size=2, max_size=30))
def test_pairwise_auc_equals_midrank_auc_exactly(pairs):
    # Hanley & McNeil 1982: both are the Mann-Whitney U / (m n); ties (repeated values) count 1/2
    y = np.array([int(a) for a, _ in pairs])
    s = np.array([b for _, b in pairs])
    a, b = C._auc_pairwise(y, s), C.compute_auc(y, s)
    assert (np.isnan(a) and np.isnan(b)) or a == b


def test_permutation_null_is_the_same_in_process_and_in_workers():
    X, y = _panel(12, 14, 40, 1.0, seed=9)
    Xd = pd.DataFrame(X, columns=[f"M{j}" for j in range(40)], index=[f"S{i}" for i in range(26)])
    ys = pd.Series(y, index=Xd.index)
    base = ClassifierOptions(permutations=5, n_jobs=1)
    one = fit_response_classifier(Xd, ys, options=base)
    two = fit_response_classifier(Xd, ys, options=dataclasses.replace(base, n_jobs=2))
    assert one.permutation.null == two.permutation.null
    assert one.permutation.p_value == two.permutation.p_value
    assert len(one.permutation.null) == 5


def test_permutation_test_matches_the_sklearn_pipeline_reference():
    # the whole test, each permutation refitted through build_pipeline (fast_fit=False)
    X, y = _panel(12, 14, 40, 1.5, seed=11)
    opts = ClassifierOptions(permutations=3, n_jobs=1)
    seeds = C._seeds(opts.seed)
    with warnings.catch_warnings():
        C._ignore_convergence()
        prob, *_ = C._nested_cv(X, y, options=opts, impute=False, seeds=seeds, fast_fit=False)
        observed = C._statistic(opts.permutation_statistic, y, prob, opts.threshold)
        rng = np.random.default_rng(seeds.permutation)
        perms = rng.permuted(np.tile(y, (3, 1)), axis=1)
        ref_null = []
        for b in range(3):
            pb, *_ = C._nested_cv(X, perms[b], options=opts, impute=False, seeds=seeds, fast_fit=False)
            ref_null.append(C._statistic(opts.permutation_statistic, perms[b], pb, opts.threshold))
    test = C.compute_permutation_test(X, y, observed, options=opts, impute=False, seeds=seeds)
    assert list(test.null) == ref_null


def test_worker_count():
    assert C._worker_count(1, 50) == 1
    assert C._worker_count(2, 1) == 1
    assert C._worker_count(8, 3) == 3
    assert C._worker_count(-1, 100) == (os.cpu_count() or 1)


@settings(max_examples=60, deadline=None)
@given(y=st.lists(st.integers(0, 1), min_size=6, max_size=60), folds=st.integers(2, 6),
       seed=st.integers(0, 2**32 - 1))
def test_numpy_stratified_folds_equal_scikit_learn(y, folds, seed):
    # oracle: scikit-learn's StratifiedKFold(folds, shuffle=True, random_state=seed).split
    import warnings

    from mmtrial.stats.classifier import _numpy_stratified_kfold, _sklearn_stratified_kfold

    y = np.asarray(y)
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        try:
            ours = _numpy_stratified_kfold(y, folds, seed)
        except ValueError as exc:
            ours = str(exc)
    with warnings.catch_warnings(record=True) as ref_w:
        warnings.simplefilter("always")
        try:
            ref = _sklearn_stratified_kfold(y, folds, seed)
        except ValueError as exc:
            ref = str(exc)
    if isinstance(ref, str):
        assert ours == ref
        return
    assert len(ours) == len(ref) == folds
    for (tr, te), (rtr, rte) in zip(ours, ref, strict=True):
        assert np.array_equal(tr, rtr) and np.array_equal(te, rte)
    assert [str(w.message) for w in ours_w if w.category is UserWarning] == \
        [str(w.message) for w in ref_w if w.category is UserWarning]


def test_stratified_folds_use_the_checked_numpy_path():
    from mmtrial.stats import classifier as C

    y = np.array([0, 1] * 10)
    assert [t.tolist() for _, t in C._stratified_kfold(y, 3, 5)] == \
        [t.tolist() for _, t in C._sklearn_stratified_kfold(y, 3, 5)]
    assert C._KFOLD_OK == [True]  # a verified scikit-learn release, or the run-time self-check passed


# --- issue 15: the direct path needs no scikit-learn import; its pieces equal scikit-learn's ---------


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), p=st.integers(1, 6), seed=st.integers(0, 2**32 - 1),
       missing=st.sampled_from([0.0, 0.1, 0.5]), constant=st.booleans(), scale=st.sampled_from([1e-6, 1.0, 1e6]))
def test_imputer_and_scaler_arithmetic_equal_scikit_learn(n, p, seed, missing, constant, scale):
    # oracle: SimpleImputer(strategy="median", keep_empty_features=True) and StandardScaler
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * scale + rng.normal() * scale
    X = np.round(X, int(rng.integers(0, 6))) if rng.random() < 0.3 else X  # ties
    if constant:
        X[:, 0] = X[0, 0]
    X[rng.random(X.shape) < missing] = np.nan
    if rng.random() < 0.2:
        X[:, -1] = np.nan  # a column with no observed value
    Xte = rng.normal(size=(5, p))
    Xte[0, 0] = np.nan
    imp = SimpleImputer(strategy="median", keep_empty_features=True).fit(X)
    med = C.compute_training_medians(X)
    assert np.array_equal(med, imp.statistics_)
    Xi = C.impute_medians(X, med)
    assert np.array_equal(Xi, imp.transform(X)) and np.array_equal(C.impute_medians(Xte, med), imp.transform(Xte))
    sc = StandardScaler().fit(Xi)
    mean, scale_ = C.compute_standard_scaling(Xi)
    assert np.array_equal(mean, sc.mean_) and np.array_equal(scale_, sc.scale_)
    Xt = C.impute_medians(Xte, med)
    assert np.array_equal(C.standard_scale(Xi, mean, scale_), sc.transform(Xi))
    assert np.array_equal(C.standard_scale(Xt, mean, scale_), sc.transform(Xt))


@settings(max_examples=60, deadline=None)
@given(y=st.lists(st.integers(0, 1), min_size=2, max_size=50), seed=st.integers(0, 2**32 - 1),
       ties=st.booleans())
def test_roc_points_equal_scikit_learn_roc_curve(y, seed, ties):
    # oracle: sklearn.metrics.roc_curve(y, score, drop_intermediate=False)
    from sklearn.metrics import roc_curve

    y = np.asarray(y)
    if y.min() == y.max():
        return
    rng = np.random.default_rng(seed)
    s = rng.random(y.size)
    if ties:
        s = np.round(s, 1)
    ours = C.compute_roc_points(y, s)
    ref = roc_curve(y, s, drop_intermediate=False)
    for a, b in zip(ours, ref, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_direct_liblinear_constants_are_scikit_learns():
    # oracle: scikit-learn's own solver-type table and LogisticRegression's defaults as _model sets them
    from sklearn.svm._base import _get_liblinear_solver_type

    assert _get_liblinear_solver_type("ovr", "l1", "logistic_regression", False) == C._LiblinearL1.SOLVER_L1R_LR
    ref = C._model(ClassifierOptions(), {"C": 1.0}, 1)
    assert (ref.tol, ref.max_iter) == (C._LiblinearL1.TOL, C._LiblinearL1.MAX_ITER)
    assert ref.intercept_scaling == C.INTERCEPT_SCALING


def test_installed_scikit_learn_release_is_verified():
    # The tests of this file compare the direct paths with scikit-learn on the installed release.
    # After an upgrade this fails until the release is added to VERIFIED_SKLEARN (once the rest of
    # this file passes); until then the run-time self-checks stay on.
    import sklearn

    assert ".".join(sklearn.__version__.split(".")[:2]) in C.VERIFIED_SKLEARN
    assert C._sklearn_release_verified()


def test_final_pipeline_is_fitted_on_first_use_and_agrees():
    # oracle: the scikit-learn pipeline refitted on all data (build_pipeline), as before issue 15
    X, y = _panel(12, 14, 30, 2.0, seed=4, missing=0.03)
    Xd = pd.DataFrame(X, columns=[f"M{j}" for j in range(30)], index=[f"S{i}" for i in range(26)])
    ys = pd.Series(y, index=Xd.index)
    res = fit_response_classifier(Xd, ys, options=ClassifierOptions(permutations=0))
    pipe = res.final_pipeline
    assert pipe._pipeline is None  # not fitted by the analysis
    model = pipe.named_steps["model"]
    assert list(Xd.columns[pipe.named_steps["select"].get_support()]) == sorted(res.selected_markers,
                                                                                 key=list(Xd.columns).index)
    coef = pd.Series(model.coef_[0], index=Xd.columns[pipe.named_steps["select"].get_support()])
    assert coef.reindex(res.coefficients.index).tolist() == res.coefficients.tolist()
    assert float(model.intercept_[0]) == res.intercept


def test_unverified_scikit_learn_release_runs_the_self_checks(monkeypatch):
    # on a release not in VERIFIED_SKLEARN the first use compares the direct paths with
    # scikit-learn at run time (as before issue 15) and keeps them only when equal
    monkeypatch.setattr(C, "_VERIFIED", [False])
    monkeypatch.setattr(C, "_KFOLD_OK", [])
    monkeypatch.setattr(C, "_LIBLINEAR_OK", {})
    opts = ClassifierOptions()
    assert C._liblinear_l1(opts, 77) is not None
    assert {(opts.class_weight, 77): True} == C._LIBLINEAR_OK
    C._stratified_kfold(np.array([0, 1] * 8), 3, 5)
    assert C._KFOLD_OK == [True]
    # a fitter that disagrees with scikit-learn is refused
    monkeypatch.setattr(C, "_LIBLINEAR_OK", {})
    monkeypatch.setattr(C._LiblinearL1, "TOL", 1e-1)
    monkeypatch.setattr(C, "_FITTERS", {})
    assert C._liblinear_l1(opts, 78) is None


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(6, 30), st.integers(1, 5))
def test_fit_path_equals_one_fit_per_penalty_and_writes_no_input(seed, n, k):
    # the tuning grid of one split fitted by fit_path: each fit identical to fit() alone (which
    # test_liblinear_fit_equals_logistic_regression_... ties to scikit-learn), and liblinear
    # writes none of the arrays that fit_path reuses across the penalties
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, k))
    y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
    Zc, yc = Z.copy(), y.copy()
    fit = C._liblinear_l1(ClassifierOptions(), 5)
    Cs = (0.03, 0.3, 3.0, 10.0)
    path = fit.fit_path(Z, y, Cs)
    assert np.array_equal(Z, Zc) and np.array_equal(y, yc)
    for C_, (coef, icpt) in zip(Cs, path, strict=True):
        one = fit.fit(Z, y, C_)
        assert np.array_equal(coef, one[0]) and np.array_equal(icpt, one[1])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 20), st.integers(1, 7))
def test_auc_of_rows_equals_pairwise_auc_of_each_row(seed, n, rows):
    # oracle: _auc_pairwise (itself equal to the midrank AUC, test above), row by row
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    P = rng.choice([0.0, 0.2, 0.5, 0.5, 0.7, 1.0], size=(rows, n))
    got = C._auc_pairwise_rows(y, P)
    want = np.array([C._auc_pairwise(y, p) for p in P])
    assert np.array_equal(got, want, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 40), st.integers(1, 6))
def test_f_statistic_means_are_numpys_mean(seed, n, p):
    # compute_f_statistic takes group means as sum / count; oracle: the same formula with
    # ndarray.mean (its earlier form), bit for bit
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).round(int(rng.integers(0, 4)))
    y = np.r_[0, 1, rng.integers(0, 2, n - 2)].astype(bool)
    Xs = X - X[:1]
    m, m1, m0 = Xs.mean(axis=0), Xs[y].mean(axis=0), Xs[~y].mean(axis=0)
    ssb = y.sum() * (m1 - m) ** 2 + (~y).sum() * (m0 - m) ** 2
    ssw = ((Xs[y] - m1) ** 2).sum(axis=0) + ((Xs[~y] - m0) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(np.isnan(f := ssb / (ssw / (n - 2))), 0.0, f)
    assert np.array_equal(C.compute_f_statistic(X, y), want)


def test_stratified_folds_from_kept_fold_numbers_equal_fresh_ones():
    # _shuffled_fold_numbers keeps each (seed, folds, class sizes) result; a second call (kept
    # arrays) must give the folds of a fresh computation, and scikit-learn's (the oracle)
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(8)
    y = (rng.random(29) < 0.45).astype(int)
    C._FOLD_NUMBERS.clear()
    first = C._numpy_stratified_kfold(y, 4, 99)
    perm = rng.permutation(y)  # same class sizes, same class first: the kept arrays are used
    j = int(np.flatnonzero(perm == y[0])[0])
    perm[[0, j]] = perm[[j, 0]]
    for labels in (y, perm):
        got = C._numpy_stratified_kfold(labels, 4, 99)
        ref = list(StratifiedKFold(4, shuffle=True, random_state=99).split(np.zeros(labels.size), labels))
        assert all(np.array_equal(a, b) for g, r in zip(got, ref, strict=True) for a, b in zip(g, r, strict=True))
    assert all(np.array_equal(a, b) for g, r in zip(first, C._numpy_stratified_kfold(y, 4, 99), strict=True)
               for a, b in zip(g, r, strict=True))
    assert len(C._FOLD_NUMBERS) == 1
